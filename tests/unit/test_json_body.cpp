// Unit tests of the HTTP answers' JSON bodies: values in, the exact JSON text out, escaping included.
// Rule: every body of PROTOCOL.md section 1 has a row, and every string field a row with characters to escape.
#include <string>
#include <vector>

#include "protocol/json_body.h"

// cmocka last: its fail() macro would clash with names in the headers above.
#include "unit_check.h"

using namespace roomcast::protocol;

namespace {

void test_bodies(void**) {
  Health ok;
  ok.up = true;
  ok.redis = "standalone";
  ok.connections = 3;
  ok.websockets = 2;
  ok.instance = "host:42";
  Health down = ok;
  down.up = false;
  down.redis = "down";
  down.instance = "odd \"name\"\\\n";
  struct Row {
    const char* what;
    std::string got, want;
  } rows[] = {
      {"error without message", error_body("bad_room"), R"({"error":"bad_room"})"},
      {"error with message", error_body("forbidden", "origin not allowed"),
       R"({"error":"forbidden","message":"origin not allowed"})"},
      {"error message escaped", error_body("bad_request", "a \"quoted\" \\ reason\r\n\x01"),
       R"({"error":"bad_request","message":"a \"quoted\" \\ reason\r\n\u0001"})"},
      {"created", created_body("abcdefghij"), R"({"roomId":"abcdefghij"})"},
      {"room nobody is in", room_body("r1", {}, 0, false), R"({"roomId":"r1","members":[],"count":0,"ws":"/ws?room=r1"})"},
      {"room with members", room_body("a.b:c-d_e", {User{"u1", "Bob"}, User{"u2", "\xc3\xa9l\xc3\xa8ve \"x\""}}, 2, false),
       "{\"roomId\":\"a.b:c-d_e\",\"members\":[{\"id\":\"u1\",\"name\":\"Bob\"},{\"id\":\"u2\",\"name\":"
       "\"\xc3\xa9l\xc3\xa8ve \\\"x\\\"\"}],\"count\":2,\"ws\":\"/ws?room=a.b:c-d_e\"}"},
      {"room listing cut", room_body("big", {User{"u1", "Bob"}}, 5000, true),
       R"({"roomId":"big","members":[{"id":"u1","name":"Bob"}],"count":5000,"membersTruncated":true,"ws":"/ws?room=big"})"},
      {"health ok", health_body(ok),
       R"({"status":"ok","redis":"standalone","connections":3,"websockets":2,"instance":"host:42"})"},
      {"health degraded, odd instance", health_body(down),
       R"({"status":"degraded","redis":"down","connections":3,"websockets":2,"instance":"odd \"name\"\\\n"})"},
  };
  for (const Row& r : rows) EXPECT(r.got == r.want, "[%s]\n  got  %s\n  want %s", r.what, r.got.c_str(), r.want.c_str());
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      TEST(test_bodies),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
