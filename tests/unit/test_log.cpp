// Unit tests of the logging macro: the level is checked before any argument is evaluated, text lines keep their
// format, and a JSON line is one valid object whatever the bytes (escapes, invalid UTF-8, a message cut short).
// Rule: a table of messages in, the exact line out (the timestamp replaced by TS).
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "server/log.h"

// cmocka last: its fail() macro would clash with names in the headers above.
#include "unit_check.h"

using namespace roomcast::server;

namespace {

// True when s starts with a timestamp like 2026-11-24T02:31:18.779Z.
bool is_timestamp(const char* s) {
  const char* shape = "dddd-dd-ddTdd:dd:dd.dddZ";
  for (int i = 0; shape[i]; i++) {
    if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i]) return false;
  }
  return true;
}

// Runs f with stderr redirected to a temporary file; returns what was written, the timestamp replaced by TS.
template <typename F>
std::string captured(F f) {
  char path[] = "/tmp/roomcast-test-log-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0, "mkstemp");
  unlink(path);
  int saved = dup(STDERR_FILENO);
  dup2(fd, STDERR_FILENO);
  f();
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::string out;
  char buf[4096];
  lseek(fd, 0, SEEK_SET);
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  for (size_t at = 0; at + 24 <= out.size(); at++)
    if (is_timestamp(out.c_str() + at)) out.replace(at, 24, "TS");
  return out;
}

int g_evaluated = 0;
const char* counted(const char* s) {
  g_evaluated++;
  return s;
}

void test_level_checked_before_formatting(void**) {
  g_log_level = kLogInfo;
  log_set_format(kLogText);
  std::string out = captured([] {
    LOG_DEBUG("%s", counted("never"));
    LOG_INFO("%s", counted("shown"));
  });
  EXPECT(g_evaluated == 1, "arguments of a skipped level were evaluated (%d)", g_evaluated);
  EXPECT(out.find("never") == std::string::npos, "%s", out.c_str());
  EXPECT(out.find("shown") != std::string::npos, "%s", out.c_str());
}

void test_text_lines(void**) {
  g_log_level = kLogDebug;
  log_set_format(kLogText);
  log_set_instance("host:1");
  std::string out = captured([] {
    LOG_ERROR("a %d", 1);
    LOG_WARN("b");
    LOG_INFO("c \"q\"");
    LOG_DEBUG("d");
  });
  EXPECT(out == "TS ERROR [host:1] a 1\nTS WARN  [host:1] b\nTS INFO  [host:1] c \"q\"\nTS DEBUG [host:1] d\n", "%s",
         out.c_str());
}

struct JsonRow {
  const char* msg;       // the message (formatted with %s)
  const char* expected;  // the msg field as written
};

void test_json_lines(void**) {
  g_log_level = kLogDebug;
  log_set_format(kLogJson);
  log_set_instance("web\"1\\:0");
  static const JsonRow rows[] = {
      {"plain", "plain"},
      {"quote \" backslash \\ slash /", "quote \\\" backslash \\\\ slash /"},
      {"nl\ntab\tcr\r", "nl\\ntab\\tcr\\r"},
      {"ctl \x01\x1f del \x7f", "ctl \\u0001\\u001f del \x7f"},
      {"utf-8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "utf-8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
      {"bad \xff end", "bad \\ufffd end"},
      {"cut \xe2\x82", "cut \\ufffd\\ufffd"},
      {"overlong \xc0\xaf", "overlong \\ufffd\\ufffd"},
      {"surrogate \xed\xa0\x80", "surrogate \\ufffd\\ufffd\\ufffd"},
      {"too big \xf4\x90\x80\x80", "too big \\ufffd\\ufffd\\ufffd\\ufffd"},
  };
  for (const JsonRow& row : rows) {
    std::string out = captured([&] { LOG_WARN("%s", row.msg); });
    std::string want = std::string("{\"ts\":\"TS\",\"level\":\"warn\",\"instance\":\"web\\\"1\\\\:0\",\"msg\":\"") +
                       row.expected + "\"}\n";
    EXPECT(out == want, "row %s\n got %s\nwant %s", row.expected, out.c_str(), want.c_str());
  }
  log_set_instance("-");
  log_set_format(kLogText);
}

void test_json_long_messages_stay_one_object(void**) {
  g_log_level = kLogInfo;
  log_set_format(kLogJson);
  for (char fill : {'a', '\x01', '\xff'}) {
    std::string big(5000, fill);
    std::string out = captured([&] { LOG_INFO("%s", big.c_str()); });
    EXPECT(out.size() > 2048, "cut too short: %zu", out.size());
    EXPECT(out.compare(out.size() - 3, 3, "\"}\n") == 0, "line does not end the object");
    EXPECT(out.find('\n') == out.size() - 1, "more than one line");
    size_t msg = out.find("\"msg\":\"");
    REQUIRE(msg != std::string::npos, "no msg");
    // Every escape inside msg is complete (a cut never splits \u00XX).
    std::string body = out.substr(msg + 7, out.size() - msg - 10);
    for (size_t i = 0; i < body.size(); i++) {
      if (body[i] != '\\') continue;
      EXPECT(i + 1 < body.size(), "escape at the end");
      if (body[i + 1] == 'u') EXPECT(i + 5 < body.size(), "\\u cut short");
      i += body[i + 1] == 'u' ? 5 : 1;
    }
  }
  log_set_format(kLogText);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      TEST(test_level_checked_before_formatting),
      TEST(test_text_lines),
      TEST(test_json_lines),
      TEST(test_json_long_messages_stay_one_object),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
