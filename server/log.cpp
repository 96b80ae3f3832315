// One logging macro for the whole server: timestamped lines on stderr, one write each.
// Rule: a log line is formatted into one buffer and written with one call, so processes sharing a terminal do not interleave mid-line.
#include "server/log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

namespace roomcast::server {

int g_log_level = kLogInfo;
static char g_instance[96] = "-";

void log_set_instance(const char* id) { snprintf(g_instance, sizeof(g_instance), "%s", id); }

int log_level_from_name(const char* name) {
  static const char* names[] = {"error", "warn", "info", "debug"};
  for (int i = 0; i < 4; i++)
    if (strcmp(name, names[i]) == 0) return i;
  return -1;
}

void log_write(int level, const char* fmt, ...) {
  static const char* tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
  char line[2048];
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s [%s] ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(tv.tv_usec / 1000),
                   tags[level < 0 ? 0 : level > 3 ? 3 : level], g_instance);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && n < static_cast<int>(sizeof(line))) n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
  va_end(ap);
  if (n >= static_cast<int>(sizeof(line)) - 1) n = sizeof(line) - 2;
  line[n++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, static_cast<size_t>(n));
  (void)w;
}

}  // namespace roomcast::server
