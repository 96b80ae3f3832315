// Unit tests of the server API's JSON (PROTOCOL.md section 9): request bodies in, values or error codes out;
// answers and control messages out as exact JSON text.
// Rule: every refusal of section 9 has a row (bad_request, bad_room, too_large), and every field a row.
#include <string>
#include <vector>

#include "protocol/api_body.h"

// cmocka last: its fail() macro would clash with names in the headers above.
#include "unit_check.h"

using namespace roomcast::protocol;

namespace {

const char* code_name(bool ok, const ApiError& e) { return ok ? "ok" : error_code_name(e.code); }

void test_publish_table(void**) {
  const std::string big(kMaxChatBytes, 'x');
  struct Row {
    const char* what;
    std::string body;
    const char* want;  // "ok" or the error code
  } rows[] = {
      {"room and message", R"({"roomId":"r1","message":"hi"})", "ok"},
      {"with a user", R"({"roomId":"r1","message":"hi","user":{"id":"bot-1","name":"Bot"}})", "ok"},
      {"message of 16384 bytes", "{\"roomId\":\"r\",\"message\":\"" + big + "\"}", "ok"},
      {"message of 16385 bytes", "{\"roomId\":\"r\",\"message\":\"" + big + "x\"}", "too_large"},
      {"empty body", "", "bad_request"},
      {"not JSON", "roomId=r1", "bad_request"},
      {"truncated JSON", R"({"roomId":"r1","message":"hi")", "bad_request"},
      {"an array", R"(["r1","hi"])", "bad_request"},
      {"a string", R"("hi")", "bad_request"},
      {"trailing garbage", R"({"roomId":"r1","message":"hi"} x)", "bad_request"},
      {"no roomId", R"({"message":"hi"})", "bad_request"},
      {"roomId a number", R"({"roomId":5,"message":"hi"})", "bad_request"},
      {"room alias is not roomId", R"({"room":"r1","message":"hi"})", "bad_request"},
      {"bad room id", R"({"roomId":"a b","message":"hi"})", "bad_room"},
      {"empty room id", R"({"roomId":"","message":"hi"})", "bad_room"},
      {"room id of 65", "{\"roomId\":\"" + std::string(65, 'a') + "\",\"message\":\"hi\"}", "bad_room"},
      {"no message", R"({"roomId":"r1"})", "bad_request"},
      {"message not a string", R"({"roomId":"r1","message":{"a":1}})", "bad_request"},
      {"empty message", R"({"roomId":"r1","message":""})", "bad_request"},
      {"lone surrogate", R"({"roomId":"r1","message":"a\udd0ab"})", "bad_request"},
      {"user not an object", R"({"roomId":"r1","message":"hi","user":"bob"})", "bad_request"},
      {"user without name", R"({"roomId":"r1","message":"hi","user":{"id":"bob"}})", "bad_request"},
      {"user with a bad id", R"({"roomId":"r1","message":"hi","user":{"id":"b b","name":"Bob"}})", "bad_request"},
      {"user with a control character", R"({"roomId":"r1","message":"hi","user":{"id":"b","name":"B\u0001"}})", "bad_request"},
      {"deep nesting is just a bad user", "{\"roomId\":\"r\",\"message\":\"m\",\"user\":" + std::string(10000, '[') +
                                              std::string(10000, ']') + "}", "bad_request"},
  };
  for (const Row& r : rows) {
    PublishRequest p;
    ApiError e;
    bool ok = parse_publish_request(r.body, &p, &e);
    EXPECT(std::string(code_name(ok, e)) == r.want, "[%s] got %s (%s), want %s", r.what, code_name(ok, e), e.message.c_str(), r.want);
    if (!ok) EXPECT(!e.message.empty(), "[%s] an error says why", r.what);
  }
}

void test_publish_values(void**) {
  PublishRequest p;
  ApiError e;
  REQUIRE(parse_publish_request(R"({"roomId":"a.b:c","message":"h\u00e9 \"x\""})", &p, &e), "%s", e.message.c_str());
  EXPECT(p.room_id == "a.b:c", "room %s", p.room_id.c_str());
  EXPECT(p.message == "h\xc3\xa9 \"x\"", "message %s", p.message.c_str());
  EXPECT(p.user.id == "server" && p.user.name == "server", "default user %s/%s", p.user.id.c_str(), p.user.name.c_str());
  REQUIRE(parse_publish_request(R"({"user":{"name":"Bot","id":"b1"},"message":"m","roomId":"r"})", &p, &e), "%s", e.message.c_str());
  EXPECT(p.user.id == "b1" && p.user.name == "Bot", "user %s/%s", p.user.id.c_str(), p.user.name.c_str());
}

void test_disconnect_table(void**) {
  struct Row {
    const char* what;
    std::string body;
    const char* want;  // the user id, or "" for bad_request
  } rows[] = {
      {"user id", R"({"userId":"bob"})", "bob"},
      {"other fields ignored", R"({"userId":"a.b-c","why":"spam"})", "a.b-c"},
      {"no userId", R"({"user":"bob"})", ""},
      {"userId a number", R"({"userId":7})", ""},
      {"bad user id", R"({"userId":"b o b"})", ""},
      {"empty user id", R"({"userId":""})", ""},
      {"not an object", R"(["bob"])", ""},
      {"not JSON", "userId=bob", ""},
  };
  for (const Row& r : rows) {
    std::string id;
    ApiError e;
    bool ok = parse_disconnect_request(r.body, &id, &e);
    if (*r.want) EXPECT(ok && id == r.want, "[%s] got %d %s (%s)", r.what, ok, id.c_str(), e.message.c_str());
    else EXPECT(!ok && e.code == ErrorCode::BadRequest, "[%s] accepted %s", r.what, id.c_str());
  }
}

void test_answers_and_control(void**) {
  struct Row {
    const char* what;
    std::string got, want;
  } rows[] = {
      {"publish answer", publish_answer("1700000000000-3"), R"({"id":"1700000000000-3"})"},
      {"empty room", room_state_body("r1", {}, 0, false, {}, false), R"({"roomId":"r1","count":0,"members":[],"history":[]})"},
      {"room with members and history",
       room_state_body("r1", {User{"u1", "A \"b\""}}, 1, false, {R"({"type":"chat","id":"1-0"})", R"({"type":"chat","id":"2-0"})"}, false),
       R"({"roomId":"r1","count":1,"members":[{"id":"u1","name":"A \"b\""}],"history":[{"type":"chat","id":"1-0"},{"type":"chat","id":"2-0"}]})"},
      {"both cut", room_state_body("r", {User{"u1", "A"}}, 3000, true, {}, true),
       R"({"roomId":"r","count":3000,"members":[{"id":"u1","name":"A"}],"membersTruncated":true,"history":[],"truncated":true})"},
      {"disconnect control", encode_disconnect_control("bob"), R"({"type":"disconnect","userId":"bob"})"},
  };
  for (const Row& r : rows) EXPECT(r.got == r.want, "[%s]\n  got  %s\n  want %s", r.what, r.got.c_str(), r.want.c_str());
  std::string id;
  EXPECT(parse_disconnect_control(encode_disconnect_control("a:b"), &id) && id == "a:b", "round trip %s", id.c_str());
  EXPECT(!parse_disconnect_control(R"({"type":"other","userId":"bob"})", &id), "another type");
  EXPECT(!parse_disconnect_control(R"({"type":"disconnect","userId":"b b"})", &id), "bad user id");
  EXPECT(!parse_disconnect_control("garbage", &id), "not JSON");
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      TEST(test_publish_table),
      TEST(test_publish_values),
      TEST(test_disconnect_table),
      TEST(test_answers_and_control),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
