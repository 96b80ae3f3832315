// One logging macro for the whole server: the level is checked before anything is formatted.
// Rule: expected events (a peer closing, a client's bad input) log at debug, never at warn or error.
#pragma once
#include <cstdarg>

namespace roomcast::server {

enum LogLevel { kLogError = 0, kLogWarn = 1, kLogInfo = 2, kLogDebug = 3 };
// text: `2026-11-24T02:31:18.779Z INFO  [host:pid] msg`; json: {"ts":..,"level":..,"instance":..,"msg":..} per line.
enum LogFormat { kLogText = 0, kLogJson = 1 };

extern int g_log_level;  // messages above this level are skipped

// Sets the instance id printed on every line ("host:pid").
void log_set_instance(const char* id);
// Sets the line format (kLogText or kLogJson).
void log_set_format(int format);
void log_write(int level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace roomcast::server

#define RC_LOG(level, ...)                                                                     \
  do {                                                                                         \
    if ((level) <= ::roomcast::server::g_log_level) ::roomcast::server::log_write((level), __VA_ARGS__); \
  } while (0)
#define LOG_ERROR(...) RC_LOG(::roomcast::server::kLogError, __VA_ARGS__)
#define LOG_WARN(...) RC_LOG(::roomcast::server::kLogWarn, __VA_ARGS__)
#define LOG_INFO(...) RC_LOG(::roomcast::server::kLogInfo, __VA_ARGS__)
#define LOG_DEBUG(...) RC_LOG(::roomcast::server::kLogDebug, __VA_ARGS__)
