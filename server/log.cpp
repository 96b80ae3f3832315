// One logging macro for the whole server: timestamped lines on stderr, one write each; text or JSON lines.
// Rule: a log line is formatted into one buffer and written with one call, so processes sharing a terminal do not
// interleave mid-line; a JSON line is always one valid object (bytes that are not UTF-8 become U+FFFD).
#include "server/log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

namespace roomcast::server {

int g_log_level = kLogInfo;
static int g_log_format = kLogText;
static char g_instance[96] = "-";

void log_set_instance(const char* id) { snprintf(g_instance, sizeof(g_instance), "%s", id); }

void log_set_format(int format) { g_log_format = format == kLogJson ? kLogJson : kLogText; }

namespace {

constexpr size_t kMaxMessage = 2048;  // bytes of one formatted message (longer ones are cut)

// Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not one.
size_t utf8_sequence(const unsigned char* s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  unsigned min;
  unsigned cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07, min = 0x10000;
  else return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// Appends s as the inside of a JSON string to out (capacity cap; stops early so that 4 bytes stay free for the
// caller's closing). Returns the new length. Hand-written rather than rapidjson: no allocation, and invalid UTF-8 is
// replaced instead of failing the line.
size_t json_escape(char* out, size_t at, size_t cap, const char* s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s);
  for (size_t i = 0; i < n;) {
    if (at + 10 > cap) break;  // room for one escaped character (6) and the line's end ("}\n)
    unsigned char c = p[i];
    if (c == '"' || c == '\\') {
      out[at++] = '\\';
      out[at++] = static_cast<char>(c);
      i++;
    } else if (c < 0x20) {
      out[at++] = '\\';
      if (c == '\n') out[at++] = 'n';
      else if (c == '\t') out[at++] = 't';
      else if (c == '\r') out[at++] = 'r';
      else {
        memcpy(out + at, "u00", 3);
        at += 3;
        out[at++] = hex[c >> 4];
        out[at++] = hex[c & 15];
      }
      i++;
    } else {
      size_t len = utf8_sequence(p + i, n - i);
      if (len == 0) {
        memcpy(out + at, "\\ufffd", 6);
        at += 6;
        i++;
      } else {
        memcpy(out + at, p + i, len);
        at += len;
        i += len;
      }
    }
  }
  return at;
}

}  // namespace

void log_write(int level, const char* fmt, ...) {
  static const char* tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
  static const char* names[] = {"error", "warn", "info", "debug"};
  level = level < 0 ? 0 : level > 3 ? 3 : level;
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char ts[64];  // room for any int the compiler cannot rule out
  snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(tv.tv_usec / 1000));

  char msg[kMaxMessage];
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  size_t msg_len = m < 0 ? 0 : static_cast<size_t>(m) >= sizeof(msg) ? sizeof(msg) - 1 : static_cast<size_t>(m);

  // JSON may grow each byte to 6 (\u00XX); the head (ts, level, instance) fits in the rest.
  char line[kMaxMessage * 6 + 1024];
  size_t n;
  if (g_log_format == kLogJson) {
    n = static_cast<size_t>(snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"instance\":\"", ts, names[level]));
    n = json_escape(line, n, sizeof(line), g_instance, strlen(g_instance));
    memcpy(line + n, "\",\"msg\":\"", 9);
    n += 9;
    n = json_escape(line, n, sizeof(line), msg, msg_len);
    memcpy(line + n, "\"}", 2);
    n += 2;
  } else {
    n = static_cast<size_t>(snprintf(line, sizeof(line), "%s %s [%s] ", ts, tags[level], g_instance));
    memcpy(line + n, msg, msg_len);
    n += msg_len;
  }
  line[n++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, n);
  (void)w;
}

}  // namespace roomcast::server
