// Unit tests of the chat messages of the wire contract (PROTOCOL.md sections 3 and 4): tables of
// client JSON in, commands or error codes out; server events parsed back with rapidjson.
// Rule: every type and alias of section 3 and every error code that parsing can give has a row.
#include <rapidjson/document.h>

#include <optional>
#include <string>
#include <vector>

#include "protocol/message.h"

// cmocka last: its fail() macro would clash with names in the headers above.
#include "unit_check.h"

using namespace roomcast::protocol;



namespace {

const char* type_name(MsgType t) {
  switch (t) {
    case MsgType::Hello: return "Hello";
    case MsgType::Create: return "Create";
    case MsgType::Join: return "Join";
    case MsgType::Leave: return "Leave";
    case MsgType::Chat: return "Chat";
    case MsgType::Ping: return "Ping";
    case MsgType::Refresh: return "Refresh";
  }
  return "?";
}

std::string rep(const std::string& s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; i++) out += s;
  return out;
}

const std::string k64 = rep("a", 64);   // longest room id / user id
const std::string k65 = rep("a", 65);

// ---- parse table ------------------------------------------------------------------------------

struct ParseRow {
  const char* name;
  std::string json;
  bool ok = true;
  MsgType type = MsgType::Ping;       // ok rows
  std::string room;                   // ok rows
  std::string message;                // ok rows
  std::optional<User> user;           // ok rows
  std::optional<std::string> since;   // ok rows
  ErrorCode code = ErrorCode::BadRequest;  // error rows
  std::string ref;                    // both: the ref as JSON text

  ParseRow with_user(std::string id, std::string name_) const {
    ParseRow r = *this;
    r.user = User{std::move(id), std::move(name_)};
    return r;
  }
  ParseRow with_since(std::string s) const {
    ParseRow r = *this;
    r.since = std::move(s);
    return r;
  }
  ParseRow with_ref(std::string ref_) const {
    ParseRow r = *this;
    r.ref = std::move(ref_);
    return r;
  }
};

ParseRow ok(const char* name, std::string json, MsgType type, std::string room = "", std::string message = "") {
  ParseRow r;
  r.name = name;
  r.json = std::move(json);
  r.type = type;
  r.room = std::move(room);
  r.message = std::move(message);
  return r;
}

ParseRow bad(const char* name, std::string json, ErrorCode code) {
  ParseRow r;
  r.name = name;
  r.json = std::move(json);
  r.ok = false;
  r.code = code;
  return r;
}

void check_parse_rows(const std::vector<ParseRow>& rows) {
  for (const ParseRow& row : rows) {
    ClientMessage msg;
    MessageError err;
    msg.room_id = "stale";
    err.ref = "stale";
    bool got = parse_client_message(row.json, &msg, &err);
    if (!row.ok) {
      EXPECT(!got, "[%s] accepted as %s, want error %s", row.name, type_name(msg.type), error_code_name(row.code));
      if (!got) {
        EXPECT(err.code == row.code, "[%s] error %s (%s), want %s", row.name, error_code_name(err.code),
               err.message.c_str(), error_code_name(row.code));
        EXPECT(err.ref == row.ref, "[%s] error ref '%s', want '%s'", row.name, err.ref.c_str(), row.ref.c_str());
        EXPECT(!err.message.empty(), "[%s] an error has a message", row.name);
      }
      continue;
    }
    EXPECT(got, "[%s] refused with %s (%s)", row.name, error_code_name(err.code), err.message.c_str());
    if (!got) continue;
    EXPECT(msg.type == row.type, "[%s] type %s, want %s", row.name, type_name(msg.type), type_name(row.type));
    EXPECT(msg.room_id == row.room, "[%s] room '%s', want '%s'", row.name, msg.room_id.c_str(), row.room.c_str());
    EXPECT(msg.message == row.message, "[%s] message of %zu bytes, want %zu", row.name, msg.message.size(),
           row.message.size());
    EXPECT(msg.user.has_value() == row.user.has_value(), "[%s] user present %d, want %d", row.name,
           msg.user.has_value(), row.user.has_value());
    if (msg.user && row.user)
      EXPECT(msg.user->id == row.user->id && msg.user->name == row.user->name, "[%s] user {%s,%s}", row.name,
             msg.user->id.c_str(), msg.user->name.c_str());
    EXPECT(msg.since == row.since, "[%s] since '%s'", row.name, msg.since ? msg.since->c_str() : "(none)");
    EXPECT(msg.ref == row.ref, "[%s] ref '%s', want '%s'", row.name, msg.ref.c_str(), row.ref.c_str());
  }
}

void test_parse_types_and_aliases(void**) {
  const std::vector<ParseRow> rows = {
      ok("hello", R"({"type":"hello","user":{"id":"u1","name":"Bob"}})", MsgType::Hello).with_user("u1", "Bob"),
      ok("hello, UTF-8 name", R"({"type":"hello","user":{"id":"u-1.x:y_Z","name":"Zoë 😀"}})", MsgType::Hello)
          .with_user("u-1.x:y_Z", "Zo\xc3\xab \xf0\x9f\x98\x80"),
      ok("create", R"({"type":"create"})", MsgType::Create),
      ok("create with a user", R"({"type":"create","user":{"id":"u1","name":"Bob"}})", MsgType::Create)
          .with_user("u1", "Bob"),
      ok("join", R"({"type":"join","roomId":"r1"})", MsgType::Join, "r1"),
      ok("join with room", R"({"type":"join","room":"r1"})", MsgType::Join, "r1"),
      ok("join: roomId wins over room", R"({"type":"join","roomId":"a","room":"b"})", MsgType::Join, "a"),
      ok("join with a user", R"({"type":"join","roomId":"r1","user":{"id":"u1","name":"Bob"}})", MsgType::Join, "r1")
          .with_user("u1", "Bob"),
      ok("join with since", R"({"type":"join","roomId":"r1","since":"1700000000000-0"})", MsgType::Join, "r1")
          .with_since("1700000000000-0"),
      ok("join with a plain-number since", R"({"type":"join","roomId":"r1","since":"42"})", MsgType::Join, "r1")
          .with_since("42"),
      ok("join ignores a bare name", R"({"type":"join","roomId":"r1","name":"Bob"})", MsgType::Join, "r1"),
      ok("SUBSCRIBE", R"({"type":"SUBSCRIBE","room":"r1"})", MsgType::Join, "r1"),
      ok("SUBSCRIBE with roomId", R"({"type":"SUBSCRIBE","roomId":"r1"})", MsgType::Join, "r1"),
      ok("join_room", R"({"type":"join_room","room":"r1"})", MsgType::Join, "r1"),
      ok("join_room with a name", R"({"type":"join_room","room":"r1","name":"Bob"})", MsgType::Join, "r1")
          .with_user("", "Bob"),
      ok("join_room with a user", R"({"type":"join_room","room":"r1","user":{"id":"u1","name":"Bob"}})", MsgType::Join,
         "r1")
          .with_user("u1", "Bob"),
      ok("join_room: user wins over name", R"({"type":"join_room","room":"r1","name":"Al","user":{"id":"u1","name":"Bob"}})",
         MsgType::Join, "r1")
          .with_user("u1", "Bob"),
      ok("leave", R"({"type":"leave","roomId":"r1"})", MsgType::Leave, "r1"),
      ok("leave with room", R"({"type":"leave","room":"r1"})", MsgType::Leave, "r1"),
      ok("UNSUBSCRIBE", R"({"type":"UNSUBSCRIBE","room":"r1"})", MsgType::Leave, "r1"),
      ok("exit", R"({"type":"exit","roomId":"r1"})", MsgType::Leave, "r1"),
      ok("chat", R"({"type":"chat","roomId":"r1","message":"hi"})", MsgType::Chat, "r1", "hi"),
      ok("chat with room", R"({"type":"chat","room":"r1","message":"hi"})", MsgType::Chat, "r1", "hi"),
      ok("sendMessage", R"({"type":"sendMessage","roomId":"r1","message":"hi"})", MsgType::Chat, "r1", "hi"),
      ok("chat_message without a room", R"({"type":"chat_message","message":"hi"})", MsgType::Chat, "", "hi"),
      ok("chat_message with a room", R"({"type":"chat_message","room":"r1","message":"hi"})", MsgType::Chat, "r1", "hi"),
      ok("ping", R"({"type":"ping"})", MsgType::Ping),
      ok("unknown fields are ignored", R"({"type":"ping","extra":[1,{"a":null}],"user":5})", MsgType::Ping),
      ok("blanks around the object", " \t\r\n{ \"type\" : \"ping\" }\n ", MsgType::Ping),
      ok("escapes in a message", R"({"type":"chat","roomId":"r1","message":"a\"b\\c\n\u00e9\ud83d\ude00"})",
         MsgType::Chat, "r1", "a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80"),
      ok("64-character room id", R"({"type":"join","roomId":")" + k64 + "\"}", MsgType::Join, k64),
      ok("every room-id character", R"({"type":"join","roomId":"AZaz09_-.:"})", MsgType::Join, "AZaz09_-.:"),
      ok("64-character user id and name", R"({"type":"hello","user":{"id":")" + k64 + R"(","name":")" + k64 + "\"}}",
         MsgType::Hello)
          .with_user(k64, k64),
      ok("64 two-byte characters in a name",
         R"({"type":"hello","user":{"id":"u","name":")" + rep("\xc3\xa9", 64) + "\"}}", MsgType::Hello)
          .with_user("u", rep("\xc3\xa9", 64)),
  };
  check_parse_rows(rows);
}

void test_parse_errors(void**) {
  const std::vector<ParseRow> rows = {
      bad("empty text", "", ErrorCode::BadJson),
      bad("blanks only", "  \n", ErrorCode::BadJson),
      bad("not JSON", "hello", ErrorCode::BadJson),
      bad("array", "[]", ErrorCode::BadJson),
      bad("array of a message", R"([{"type":"ping"}])", ErrorCode::BadJson),
      bad("string", R"("ping")", ErrorCode::BadJson),
      bad("number", "42", ErrorCode::BadJson),
      bad("null", "null", ErrorCode::BadJson),
      bad("true", "true", ErrorCode::BadJson),
      bad("unterminated object", R"({"type":"ping")", ErrorCode::BadJson),
      bad("unterminated string", R"({"type":"ping)", ErrorCode::BadJson),
      bad("two objects", R"({"type":"ping"}{"type":"ping"})", ErrorCode::BadJson),
      bad("trailing garbage", R"({"type":"ping"} x)", ErrorCode::BadJson),
      bad("trailing comma", R"({"type":"ping",})", ErrorCode::BadJson),
      bad("single quotes", "{'type':'ping'}", ErrorCode::BadJson),
      bad("bare key", "{type:\"ping\"}", ErrorCode::BadJson),
      bad("lone surrogate escape", R"({"type":"chat","roomId":"r","message":"\ud800"})", ErrorCode::BadJson),
      bad("type missing", "{}", ErrorCode::BadRequest),
      bad("type missing, other fields", R"({"roomId":"r1","message":"hi"})", ErrorCode::BadRequest),
      bad("type a number", R"({"type":5})", ErrorCode::BadRequest),
      bad("type null", R"({"type":null})", ErrorCode::BadRequest),
      bad("type an array", R"({"type":["ping"]})", ErrorCode::BadRequest),
      bad("type an object", R"({"type":{"name":"ping"}})", ErrorCode::BadRequest),
      bad("unknown type", R"({"type":"dance"})", ErrorCode::UnknownType),
      ok("refresh", R"({"type":"refresh","token":"a.b.c"})", MsgType::Refresh),
      bad("refresh without token", R"({"type":"refresh"})", ErrorCode::BadRequest),
      bad("refresh with a number token", R"({"type":"refresh","token":5})", ErrorCode::BadRequest),
      bad("empty type", R"({"type":""})", ErrorCode::UnknownType),
      bad("types are case-sensitive: PING", R"({"type":"PING"})", ErrorCode::UnknownType),
      bad("types are case-sensitive: Join", R"({"type":"Join","roomId":"r1"})", ErrorCode::UnknownType),
      bad("aliases are case-sensitive: subscribe", R"({"type":"subscribe","room":"r1"})", ErrorCode::UnknownType),
      bad("server-side type: joined", R"({"type":"joined","roomId":"r1"})", ErrorCode::UnknownType),
      bad("type with a blank", R"({"type":"ping "})", ErrorCode::UnknownType),
      bad("hello without user", R"({"type":"hello"})", ErrorCode::BadRequest),
      bad("hello with a string user", R"({"type":"hello","user":"Bob"})", ErrorCode::BadRequest),
      bad("hello with a name only", R"({"type":"hello","name":"Bob"})", ErrorCode::BadRequest),
      bad("hello, user without id", R"({"type":"hello","user":{"name":"Bob"}})", ErrorCode::BadRequest),
      bad("hello, user without name", R"({"type":"hello","user":{"id":"u1"}})", ErrorCode::BadRequest),
      bad("hello, numeric id", R"({"type":"hello","user":{"id":1,"name":"Bob"}})", ErrorCode::BadRequest),
      bad("hello, empty id", R"({"type":"hello","user":{"id":"","name":"Bob"}})", ErrorCode::BadRequest),
      bad("hello, id with a blank", R"({"type":"hello","user":{"id":"u 1","name":"Bob"}})", ErrorCode::BadRequest),
      bad("hello, 65-character id", R"({"type":"hello","user":{"id":")" + k65 + R"(","name":"Bob"}})",
          ErrorCode::BadRequest),
      bad("hello, empty name", R"({"type":"hello","user":{"id":"u1","name":""}})", ErrorCode::BadRequest),
      bad("hello, 65-character name", R"({"type":"hello","user":{"id":"u1","name":")" + k65 + "\"}}",
          ErrorCode::BadRequest),
      bad("hello, 65 two-byte characters", R"({"type":"hello","user":{"id":"u1","name":")" + rep("\xc3\xa9", 65) + "\"}}",
          ErrorCode::BadRequest),
      bad("hello, control character in name", R"({"type":"hello","user":{"id":"u1","name":"a\u0007b"}})",
          ErrorCode::BadRequest),
      bad("hello, newline in name", R"({"type":"hello","user":{"id":"u1","name":"a\nb"}})", ErrorCode::BadRequest),
      bad("create with a bad user", R"({"type":"create","user":{"id":"u 1","name":"Bob"}})", ErrorCode::BadRequest),
      bad("join with a bad user", R"({"type":"join","roomId":"r1","user":{"id":"u1"}})", ErrorCode::BadRequest),
      bad("join_room with a control character in name", R"({"type":"join_room","room":"r1","name":"a\u0001"})",
          ErrorCode::BadRequest),
      bad("join_room with an empty name", R"({"type":"join_room","room":"r1","name":""})", ErrorCode::BadRequest),
      bad("join_room with a numeric name", R"({"type":"join_room","room":"r1","name":7})", ErrorCode::BadRequest),
      bad("join without a room", R"({"type":"join"})", ErrorCode::BadRequest),
      bad("SUBSCRIBE without a room", R"({"type":"SUBSCRIBE"})", ErrorCode::BadRequest),
      bad("join_room without a room", R"({"type":"join_room","name":"Bob"})", ErrorCode::BadRequest),
      bad("leave without a room", R"({"type":"leave"})", ErrorCode::BadRequest),
      bad("exit without a room", R"({"type":"exit"})", ErrorCode::BadRequest),
      bad("chat without a room", R"({"type":"chat","message":"hi"})", ErrorCode::BadRequest),
      bad("sendMessage without a room", R"({"type":"sendMessage","message":"hi"})", ErrorCode::BadRequest),
      bad("chat without a message", R"({"type":"chat","roomId":"r1"})", ErrorCode::BadRequest),
      bad("chat_message without a message", R"({"type":"chat_message"})", ErrorCode::BadRequest),
      bad("chat with a numeric message", R"({"type":"chat","roomId":"r1","message":5})", ErrorCode::BadRequest),
      bad("chat with a null message", R"({"type":"chat","roomId":"r1","message":null})", ErrorCode::BadRequest),
      bad("chat with an object message", R"({"type":"chat","roomId":"r1","message":{"text":"hi"}})",
          ErrorCode::BadRequest),
      bad("chat with an empty message", R"({"type":"chat","roomId":"r1","message":""})", ErrorCode::BadRequest),
      bad("since a number", R"({"type":"join","roomId":"r1","since":1700000000000})", ErrorCode::BadRequest),
      bad("since empty", R"({"type":"join","roomId":"r1","since":""})", ErrorCode::BadRequest),
      bad("since not an id", R"({"type":"join","roomId":"r1","since":"abc"})", ErrorCode::BadRequest),
      bad("since with three parts", R"({"type":"join","roomId":"r1","since":"1-2-3"})", ErrorCode::BadRequest),
      bad("since with a trailing dash", R"({"type":"join","roomId":"r1","since":"1-"})", ErrorCode::BadRequest),
      bad("since with 20 digits", R"({"type":"join","roomId":"r1","since":"12345678901234567890-0"})",
          ErrorCode::BadRequest),
      bad("since null", R"({"type":"join","roomId":"r1","since":null})", ErrorCode::BadRequest),
      bad("empty room id", R"({"type":"join","roomId":""})", ErrorCode::BadRoom),
      bad("room id with a blank", R"({"type":"join","roomId":"a b"})", ErrorCode::BadRoom),
      bad("room id with a slash", R"({"type":"join","roomId":"a/b"})", ErrorCode::BadRoom),
      bad("room id with #", R"({"type":"join","roomId":"r#1"})", ErrorCode::BadRoom),
      bad("room id with a non-ASCII letter", R"({"type":"join","roomId":"caf\u00e9"})", ErrorCode::BadRoom),
      bad("room id with NUL", R"({"type":"join","roomId":"a\u0000b"})", ErrorCode::BadRoom),
      bad("65-character room id", R"({"type":"join","roomId":")" + k65 + "\"}", ErrorCode::BadRoom),
      bad("bad room via room", R"({"type":"SUBSCRIBE","room":"x y"})", ErrorCode::BadRoom),
      bad("leave a bad room", R"({"type":"leave","roomId":"x y"})", ErrorCode::BadRoom),
      bad("chat to a bad room", R"({"type":"chat","roomId":"x y","message":"hi"})", ErrorCode::BadRoom),
      bad("chat_message to a bad room", R"({"type":"chat_message","room":"x y","message":"hi"})", ErrorCode::BadRoom),
  };
  check_parse_rows(rows);
}

// docs/protocol.md ("Message parsing"): a roomId (or room) that is not a string is bad_room, a
// missing one bad_request.
void test_room_of_wrong_type(void**) {
  const std::vector<ParseRow> rows = {
      bad("numeric roomId", R"({"type":"join","roomId":5})", ErrorCode::BadRequest),
      bad("null roomId", R"({"type":"join","roomId":null})", ErrorCode::BadRequest),
      bad("array roomId", R"({"type":"leave","roomId":["r1"]})", ErrorCode::BadRequest),
      bad("numeric room", R"({"type":"chat","room":1,"message":"hi"})", ErrorCode::BadRequest),
      bad("numeric roomId wins over a good room", R"({"type":"join","roomId":1,"room":"r1"})", ErrorCode::BadRequest),
  };
  check_parse_rows(rows);
}

// rapidjson decodes an escaped lone low surrogate into bytes that are not UTF-8; relayed, they would
// make every member's client drop its connection (found by tests/fuzz/fuzz_message).
void test_lone_surrogates(void**) {
  const std::vector<ParseRow> rows = {
      bad("lone low surrogate in message", R"({"type":"chat","roomId":"r1","message":"a\udd0ab"})", ErrorCode::BadRequest),
      bad("lone low surrogate in ref", R"({"type":"ping","ref":"0\udd0aaaa"})", ErrorCode::BadRequest),
      bad("lone high surrogate", R"({"type":"chat","roomId":"r1","message":"a\ud800b"})", ErrorCode::BadJson),
  };
  check_parse_rows(rows);
}

// JSON nested deeper than kMaxJsonDepth (64) is bad_json, told apart by too_deep (the server counts it
// as a bound). rapidjson's recursive parser overflowed the stack on 131072 '[' (reachable once
// --max-message is over 128 KiB): the rows of a million levels would crash a recursive parse.
void test_json_depth(void**) {
  // A ping whose extra field nests `depth` containers in all, the message object included.
  auto nested = [](size_t depth, const std::string& inner = "\"x\"") {
    return R"({"type":"ping","x":)" + rep("[", depth - 1) + inner + rep("]", depth - 1) + "}";
  };
  struct Row {
    const char* name;
    std::string json;
    bool ok;          // parses to a ping
    bool too_deep;    // error rows: refused for its depth
  };
  const std::vector<Row> rows = {
      {"depth 2", nested(2), true, false},
      {"depth 64, arrays", nested(64), true, false},
      {"depth 64, objects", R"({"type":"ping","x":)" + rep(R"({"a":)", 63) + "1" + rep("}", 63) + "}", true, false},
      {"depth 64 of brackets inside a string", R"({"type":"ping","x":")" + rep("[", 1000) + "\"}", true, false},
      {"64 containers one after the other", R"({"type":"ping","x":[)" + rep("[[]],", 63) + "[[]]]}", true, false},
      {"depth 65, arrays", nested(65), false, true},
      {"depth 65, objects", R"({"type":"ping","x":)" + rep(R"({"a":)", 64) + "1" + rep("}", 64) + "}", false, true},
      {"depth 65, unterminated", rep("[", 65), false, true},
      {"131072 [", rep("[", 131072), false, true},
      {"a million [", rep("[", 1 << 20), false, true},
      {"a million [ then ]", rep("[", 1 << 20) + rep("]", 1 << 20), false, true},
      {"half a million {\"a\":", rep(R"({"a":)", 1 << 19), false, true},
      {"a million levels inside a message", nested(1 << 20), false, true},
      {"depth 64, not an object", rep("[", 64) + rep("]", 64), false, false},
      {"depth 10, unterminated", rep("[", 10), false, false},
      {"syntax error at depth 3", R"({"type":"ping","x":[[}]]})", false, false},
  };
  for (const Row& r : rows) {
    ClientMessage m;
    MessageError err;
    bool ok = parse_client_message(r.json, &m, &err);
    EXPECT(ok == r.ok, "[%s] parse returned %d: %s", r.name, ok, err.message.c_str());
    if (ok) {
      EXPECT(m.type == MsgType::Ping, "[%s] type %s", r.name, type_name(m.type));
      continue;
    }
    EXPECT(err.code == ErrorCode::BadJson, "[%s] code %s", r.name, error_code_name(err.code));
    EXPECT(err.too_deep == r.too_deep, "[%s] too_deep %d", r.name, err.too_deep);
    if (r.too_deep) EXPECT(err.message.find("64") != std::string::npos, "[%s] message %s", r.name, err.message.c_str());
  }
  EXPECT(kMaxJsonDepth == 64, "kMaxJsonDepth %d", kMaxJsonDepth);
  // Users (from the broker) are read with the same limit.
  User u;
  EXPECT(!parse_user(rep("[", 1 << 20), &u), "deep user parsed");
}

void test_message_size_limit(void**) {
  auto chat = [](const std::string& m) { return R"({"type":"chat","roomId":"r1","message":")" + m + "\"}"; };
  const std::string at = rep("x", 16384), over = rep("x", 16385);
  const std::string at2 = rep("\xc3\xa9", 8192), over2 = rep("\xc3\xa9", 8192) + "x";
  const std::string escaped_at = rep("\\u00e9", 8192);  // 8192 two-byte characters as escapes
  const std::string escaped_over = rep("\\u00e9", 8192) + "\\n";
  const std::vector<ParseRow> rows = {
      ok("16384 bytes", chat(at), MsgType::Chat, "r1", at),
      ok("16384 bytes as 8192 two-byte characters", chat(at2), MsgType::Chat, "r1", at2),
      ok("16384 bytes written as escapes", chat(escaped_at), MsgType::Chat, "r1", at2),
      ok("one byte", chat("x"), MsgType::Chat, "r1", "x"),
      bad("16385 bytes", chat(over), ErrorCode::TooLarge),
      bad("16385 bytes with two-byte characters", chat(over2), ErrorCode::TooLarge),
      bad("16385 bytes written as escapes", chat(escaped_over), ErrorCode::TooLarge),
      bad("64 KiB", chat(rep("x", 65536)), ErrorCode::TooLarge),
      bad("too large with a ref", R"({"type":"chat","roomId":"r1","ref":"big","message":")" + over + "\"}",
          ErrorCode::TooLarge)
          .with_ref("\"big\""),
      bad("too large via chat_message", R"({"type":"chat_message","message":")" + over + "\"}", ErrorCode::TooLarge),
  };
  check_parse_rows(rows);
  EXPECT(kMaxChatBytes == 16384, "kMaxChatBytes %zu", kMaxChatBytes);
}

void test_ref(void**) {
  const std::string r64 = rep("r", 64), r65 = rep("r", 65);
  const std::vector<ParseRow> rows = {
      ok("string ref", R"({"type":"ping","ref":"abc"})", MsgType::Ping).with_ref("\"abc\""),
      ok("numeric ref", R"({"type":"ping","ref":7})", MsgType::Ping).with_ref("7"),
      ok("zero ref", R"({"type":"ping","ref":0})", MsgType::Ping).with_ref("0"),
      ok("negative ref", R"({"type":"ping","ref":-12})", MsgType::Ping).with_ref("-12"),
      ok("fractional ref", R"({"type":"ping","ref":1.5})", MsgType::Ping).with_ref("1.5"),
      ok("empty string ref", R"({"type":"ping","ref":""})", MsgType::Ping).with_ref("\"\""),
      ok("ref with UTF-8", R"({"type":"ping","ref":"é"})", MsgType::Ping).with_ref("\"\xc3\xa9\""),
      ok("64-byte ref", R"({"type":"ping","ref":")" + r64 + "\"}", MsgType::Ping).with_ref("\"" + r64 + "\""),
      ok("64-byte ref of two-byte characters", R"({"type":"ping","ref":")" + rep("\xc3\xa9", 32) + "\"}", MsgType::Ping)
          .with_ref("\"" + rep("\xc3\xa9", 32) + "\""),
      ok("ref on a join", R"({"type":"join","roomId":"r1","ref":"j1"})", MsgType::Join, "r1").with_ref("\"j1\""),
      ok("ref on a chat", R"({"ref":99,"type":"chat","roomId":"r1","message":"m"})", MsgType::Chat, "r1", "m")
          .with_ref("99"),
      bad("65-byte ref", R"({"type":"ping","ref":")" + r65 + "\"}", ErrorCode::BadRequest),
      bad("object ref", R"({"type":"ping","ref":{"a":1}})", ErrorCode::BadRequest),
      bad("array ref", R"({"type":"ping","ref":[1]})", ErrorCode::BadRequest),
      bad("boolean ref", R"({"type":"ping","ref":true})", ErrorCode::BadRequest),
      bad("null ref", R"({"type":"ping","ref":null})", ErrorCode::BadRequest),
      // Errors caused by a message with a readable ref echo it.
      bad("unknown type echoes the ref", R"({"type":"dance","ref":"r1"})", ErrorCode::UnknownType).with_ref("\"r1\""),
      bad("missing type echoes the ref", R"({"ref":5})", ErrorCode::BadRequest).with_ref("5"),
      bad("missing room echoes the ref", R"({"type":"join","ref":"x"})", ErrorCode::BadRequest).with_ref("\"x\""),
      bad("bad room echoes the ref", R"({"type":"chat","roomId":"a b","message":"m","ref":1})", ErrorCode::BadRoom)
          .with_ref("1"),
      bad("bad since echoes the ref", R"({"type":"join","roomId":"r","since":"x","ref":"s"})", ErrorCode::BadRequest)
          .with_ref("\"s\""),
      bad("bad hello echoes the ref", R"({"type":"hello","ref":"h"})", ErrorCode::BadRequest).with_ref("\"h\""),
  };
  check_parse_rows(rows);
  EXPECT(kMaxRefBytes == 64, "kMaxRefBytes %zu", kMaxRefBytes);
}

// A 64-byte string ref is at most 64 bytes whatever characters it holds; escaping is only how JSON
// writes it. The echo must parse back to the same string.
void test_ref_of_64_bytes_with_escapes(void**) {
  struct Row {
    const char* name;
    std::string json_text;  // the ref as the client writes it
    std::string value;      // its bytes
  } rows[] = {
      {"64 bytes ending in a quote", "\"" + rep("r", 63) + "\\\"\"", rep("r", 63) + "\""},
      {"64 bytes with a backslash", "\"\\\\" + rep("r", 63) + "\"", "\\" + rep("r", 63)},
      {"64 bytes with a newline", "\"" + rep("r", 63) + "\\n\"", rep("r", 63) + "\n"},
  };
  for (const Row& r : rows) {
    REQUIRE(r.value.size() == 64, "[%s] value of %zu bytes", r.name, r.value.size());
    ClientMessage msg;
    MessageError err;
    bool got = parse_client_message(R"({"type":"ping","ref":)" + r.json_text + "}", &msg, &err);
    EXPECT(got, "[%s] refused: %s %s", r.name, error_code_name(err.code), err.message.c_str());
    if (!got) continue;
    rapidjson::Document d;
    d.Parse(msg.ref.data(), msg.ref.size());
    EXPECT(!d.HasParseError() && d.IsString() && std::string(d.GetString(), d.GetStringLength()) == r.value,
           "[%s] ref '%s' does not read back", r.name, msg.ref.c_str());
  }
}

// ---- encoders ---------------------------------------------------------------------------------

// Parses an encoder's output; fails the test when it is not one JSON object.
rapidjson::Document parse_json(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  REQUIRE(!d.HasParseError() && d.IsObject(), "not a JSON object: %s", text.c_str());
  return d;
}

std::string str(const rapidjson::Value& v, const char* key) {
  auto it = v.FindMember(key);
  if (it == v.MemberEnd() || !it->value.IsString()) return "<missing>";
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

bool has(const rapidjson::Value& v, const char* key) { return v.HasMember(key); }

bool user_is(const rapidjson::Value& v, const char* key, const User& u) {
  auto it = v.FindMember(key);
  return it != v.MemberEnd() && it->value.IsObject() && str(it->value, "id") == u.id && str(it->value, "name") == u.name;
}

// Names that need escaping or are far from ASCII.
const std::vector<User> kUsers = {
    {"u1", "Bob"},
    {"x", "quote \" backslash \\ slash /"},
    {"y", "line\nbreak\ttab\x01 ctl"},
    {"z", "Zo\xc3\xab \xf0\x9f\x98\x80 \xe2\x80\xa8"},
};

void test_encode_simple_events(void**) {
  for (const User& u : kUsers) {
    rapidjson::Document d = parse_json(encode_hello(u, "", ""));
    EXPECT(str(d, "type") == "hello" && user_is(d, "user", u) && !has(d, "ref") && !has(d, "instance") &&
               d.MemberCount() == 2,
           "hello for %s", u.id.c_str());
    d = parse_json(encode_hello(u, "", "\"r1\""));
    EXPECT(str(d, "ref") == "r1" && !has(d, "instance") && d.MemberCount() == 3, "hello ref");
    // The instance that answered (--instance-id), a roomcast addition: exactly type, user, instance (, ref).
    d = parse_json(encode_hello(u, "host-1:4242", ""));
    EXPECT(str(d, "type") == "hello" && user_is(d, "user", u) && str(d, "instance") == "host-1:4242" &&
               !has(d, "ref") && d.MemberCount() == 3,
           "hello with instance for %s", u.id.c_str());
    d = parse_json(encode_hello(u, "eu \"west\" \\ 1", "7"));
    EXPECT(str(d, "instance") == "eu \"west\" \\ 1" && d.HasMember("ref") && d["ref"].IsInt() &&
               d["ref"].GetInt() == 7 && d.MemberCount() == 4,
           "hello with an instance that needs escaping, and a ref");
    d = parse_json(encode_presence(true, "room-1", u));
    EXPECT(str(d, "type") == "presence" && str(d, "event") == "join" && str(d, "roomId") == "room-1" &&
               user_is(d, "user", u),
           "presence join for %s", u.id.c_str());
    d = parse_json(encode_presence(false, "room-1", u));
    EXPECT(str(d, "event") == "leave" && user_is(d, "user", u), "presence leave");
    EXPECT(presence_user_id(encode_presence(true, "r", u)) == u.id, "presence_user_id of %s", u.id.c_str());
    EXPECT(presence_user_id(encode_presence(false, "r", u)) == u.id, "presence_user_id of a leave");
  }
  rapidjson::Document d = parse_json(encode_created("abcdefghij", ""));
  EXPECT(str(d, "type") == "created" && str(d, "roomId") == "abcdefghij" && !has(d, "ref"), "created");
  d = parse_json(encode_created("abcdefghij", "7"));
  EXPECT(d.HasMember("ref") && d["ref"].IsInt() && d["ref"].GetInt() == 7, "created with a numeric ref");
  d = parse_json(encode_left("r1", "\"x\""));
  EXPECT(str(d, "type") == "left" && str(d, "roomId") == "r1" && str(d, "ref") == "x", "left");
  d = parse_json(encode_left("r1", ""));
  EXPECT(!has(d, "ref"), "left without ref");
  d = parse_json(encode_ack("\"a\"", "1700000000000-3"));
  EXPECT(str(d, "type") == "ack" && str(d, "ref") == "a" && str(d, "id") == "1700000000000-3", "ack");
  d = parse_json(encode_ack("-1.5", "5"));
  EXPECT(d.HasMember("ref") && d["ref"].IsNumber() && d["ref"].GetDouble() == -1.5, "ack with a numeric ref");
  d = parse_json(encode_pong(""));
  EXPECT(str(d, "type") == "pong" && !has(d, "ref") && d.MemberCount() == 1, "pong");
  d = parse_json(encode_pong("\"p\""));
  EXPECT(str(d, "type") == "pong" && str(d, "ref") == "p", "pong with ref");
}

void test_encode_errors(void**) {
  struct Row {
    ErrorCode code;
    const char* name;
  } rows[] = {
      {ErrorCode::BadJson, "bad_json"},         {ErrorCode::BadRequest, "bad_request"},
      {ErrorCode::UnknownType, "unknown_type"}, {ErrorCode::BadRoom, "bad_room"},
      {ErrorCode::NotMember, "not_member"},     {ErrorCode::TooLarge, "too_large"},
      {ErrorCode::RateLimited, "rate_limited"}, {ErrorCode::Unavailable, "unavailable"},
      {ErrorCode::Unauthorized, "unauthorized"},
  };
  for (const Row& r : rows) {
    EXPECT(std::string(error_code_name(r.code)) == r.name, "name of %s: %s", r.name, error_code_name(r.code));
    rapidjson::Document d = parse_json(encode_error(r.code, "why \"it\" failed\n", ""));
    EXPECT(str(d, "type") == "error" && str(d, "code") == r.name && str(d, "message") == "why \"it\" failed\n" &&
               !has(d, "ref"),
           "error %s", r.name);
    d = parse_json(encode_error(r.code, "m", "\"ref-1\""));
    EXPECT(str(d, "ref") == "ref-1", "error %s with ref", r.name);
  }
  // A ref from the parser goes back out unchanged.
  ClientMessage msg;
  MessageError err;
  REQUIRE(!parse_client_message(R"({"type":"dance","ref":"a\"b"})", &msg, &err), "unknown type");
  rapidjson::Document d = parse_json(encode_error(err.code, err.message, err.ref));
  EXPECT(str(d, "code") == "unknown_type" && str(d, "ref") == "a\"b", "echoed ref %s", err.ref.c_str());
}

std::string chat_event(const std::string& room, const User& u, const std::string& message, int64_t ts,
                       const std::string& id) {
  return chat_event_prefix(room, u, message, ts) + id + std::string(kChatEventSuffix);
}

void test_chat_event(void**) {
  struct Row {
    std::string message;
    int64_t ts;
    std::string id;
  } rows[] = {
      {"hello", 1700000000000, "1700000000000-0"},
      {"", 0, "0"},
      {"tricky \"id\":\"fake\"} and \"ts\":123,", 1, "1-1"},
      {"\"id\":\"", 42, "9999999999999999999-9999999999999999999"},
      {"unicode \xe2\x82\xac \xf0\x9f\x98\x80 and \\ and \n", 4102444800000, "4102444800000-17"},
      {rep("m", 16384), 1700000000123, "1700000000123-5"},
  };
  for (const User& u : kUsers) {
    for (const Row& r : rows) {
      std::string ev = chat_event("room:1", u, r.message, r.ts, r.id);
      rapidjson::Document d = parse_json(ev);
      EXPECT(str(d, "type") == "chat" && str(d, "roomId") == "room:1" && str(d, "id") == r.id &&
                 str(d, "message") == r.message && user_is(d, "user", u),
             "chat event for %s / %s", u.id.c_str(), r.id.c_str());
      EXPECT(d.HasMember("ts") && d["ts"].IsInt64() && d["ts"].GetInt64() == r.ts, "ts of %s", r.id.c_str());
      EXPECT(chat_event_id(ev) == r.id, "chat_event_id '%.*s', want %s", (int)chat_event_id(ev).size(),
             chat_event_id(ev).data(), r.id.c_str());
      EXPECT(chat_event_ts(ev) == r.ts, "chat_event_ts %lld, want %lld", (long long)chat_event_ts(ev),
             (long long)r.ts);
      EXPECT(is_chat_event(ev), "is_chat_event");
      EXPECT(presence_user_id(ev).empty(), "a chat event is not a presence event");
    }
  }
  EXPECT(kChatEventSuffix == "\"}", "suffix");
  EXPECT(!is_chat_event(encode_hello(kUsers[0], "i:1", "")), "hello is not a chat event");
  EXPECT(!is_chat_event(encode_presence(true, "r", kUsers[0])), "presence is not a chat event");
  EXPECT(!is_chat_event(encode_error(ErrorCode::BadJson, "chat", "")), "error is not a chat event");
  EXPECT(chat_event_ts(encode_pong("")) == -1, "no ts in a pong");
  EXPECT(chat_event_id(encode_pong("")).empty(), "no id in a pong");
  EXPECT(presence_user_id(encode_pong("")).empty(), "no user in a pong");
  EXPECT(presence_user_id("{\"type\":\"presence\",\"user\":").empty(), "broken presence");
}

void test_encode_joined(void**) {
  const User me{"me", "Me"};
  const std::vector<User> members = {kUsers[0], kUsers[1], me};
  const std::vector<std::string> history = {chat_event("r1", kUsers[0], "one", 10, "10-0"),
                                            chat_event("r1", kUsers[2], "two \"quoted\"", 11, "11-0"),
                                            chat_event("r1", kUsers[3], "three", 11, "11-1")};
  struct Row {
    std::vector<User> members;
    std::vector<std::string> history;
    bool truncated;
    std::string ref;
    size_t count;
    bool members_truncated;
    size_t from;
  } rows[] = {
      {{}, {}, false, "", 0, false, 0},
      {members, {}, false, "\"j\"", 3, false, 0},
      {members, history, false, "3", 3, false, 0},
      {{me}, history, true, "", 5000, true, 0},
      {{me}, history, true, "", 1, false, 2},  // from: the oldest two left out
  };
  for (const Row& r : rows) {
    JoinedReply j;
    j.room_id = "r1";
    j.you = &me;
    j.members = &r.members;
    j.count = r.count;
    j.members_truncated = r.members_truncated;
    j.history = &r.history;
    j.history_from = r.from;
    j.truncated = r.truncated;
    j.ref = r.ref;
    std::string text = encode_joined(j);
    rapidjson::Document d = parse_json(text);
    EXPECT(str(d, "type") == "joined" && str(d, "roomId") == "r1" && user_is(d, "user", me), "joined: %s",
           text.c_str());
    EXPECT(d.HasMember("count") && d["count"].IsUint64() && d["count"].GetUint64() == r.count, "count");
    bool mt = d.HasMember("membersTruncated") && d["membersTruncated"].IsBool() && d["membersTruncated"].GetBool();
    EXPECT(mt == r.members_truncated, "membersTruncated %d", mt);
    size_t sent = r.history.size() - r.from;
    REQUIRE(d.HasMember("members") && d["members"].IsArray() && d["members"].Size() == r.members.size(), "members");
    for (size_t i = 0; i < r.members.size(); i++) {
      const rapidjson::Value& m = d["members"][static_cast<rapidjson::SizeType>(i)];
      EXPECT(m.IsObject() && str(m, "id") == r.members[i].id && str(m, "name") == r.members[i].name, "member %zu", i);
    }
    REQUIRE(d.HasMember("history") && d["history"].IsArray() && d["history"].Size() == sent, "history");
    for (size_t i = 0; i < sent; i++) {
      const rapidjson::Value& h = d["history"][static_cast<rapidjson::SizeType>(i)];
      EXPECT(h.IsObject() && str(h, "type") == "chat" && str(h, "id") == std::string(chat_event_id(r.history[r.from + i])),
             "history %zu in order", i);
    }
    // The size a caller budgets with: the encoding without history, plus each event's cost.
    JoinedReply bare = j;
    bare.history_from = r.history.size();
    size_t expect = encode_joined(bare).size();
    for (size_t i = r.from; i < r.history.size(); i++) expect += joined_event_cost(r.history[i]);
    if (sent > 0) expect -= 1;  // n events take n-1 commas
    EXPECT(text.size() == expect, "joined size %zu, budgeted %zu", text.size(), expect);
    bool truncated = d.HasMember("truncated") && d["truncated"].IsBool() && d["truncated"].GetBool();
    EXPECT(truncated == r.truncated, "truncated %d", truncated);
    if (r.ref.empty()) EXPECT(!has(d, "ref"), "no ref");
    else EXPECT(has(d, "ref"), "ref");
  }
}

void test_json_quote_and_users(void**) {
  const std::string samples[] = {"", "plain", "a\"b", "back\\slash", "new\nline", "\x01\x1f", "\xe2\x80\xa8",
                                 std::string("nul\0byte", 8), "</script>"};
  for (const std::string& s : samples) {
    std::string q = json_quote(s);
    rapidjson::Document d;
    d.Parse(q.data(), q.size());
    EXPECT(!d.HasParseError() && d.IsString() && std::string(d.GetString(), d.GetStringLength()) == s,
           "json_quote(%s) = %s does not read back", s.c_str(), q.c_str());
  }
  for (const User& u : kUsers) {
    std::string text = encode_user(u);
    rapidjson::Document d = parse_json(text);
    EXPECT(str(d, "id") == u.id && str(d, "name") == u.name && d.MemberCount() == 2, "encode_user %s", text.c_str());
  }
  User out;
  EXPECT(parse_user(encode_user(kUsers[0]), &out) && out.id == "u1" && out.name == "Bob", "round trip");
  EXPECT(parse_user(encode_user(kUsers[3]), &out) && out.id == kUsers[3].id && out.name == kUsers[3].name,
         "round trip UTF-8");
  const char* refused[] = {"", "{}", "[]", "not json", R"({"id":"u1"})", R"({"name":"Bob"})", R"({"id":"u 1","name":"B"})",
                           R"({"id":"u1","name":""})", R"({"id":"u1","name":"a\u0001"})", R"({"id":1,"name":"B"})"};
  for (const char* j : refused) EXPECT(!parse_user(j, &out), "parse_user(%s) must fail", j);
  EXPECT(!parse_user(encode_user(kUsers[2]), &out), "a name with control characters is not a valid user");
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      TEST(test_parse_types_and_aliases),
      TEST(test_parse_errors),
      TEST(test_room_of_wrong_type),
      TEST(test_lone_surrogates),
      TEST(test_json_depth),
      TEST(test_message_size_limit),
      TEST(test_ref),
      TEST(test_ref_of_64_bytes_with_escapes),
      TEST(test_encode_simple_events),
      TEST(test_encode_errors),
      TEST(test_chat_event),
      TEST(test_encode_joined),
      TEST(test_json_quote_and_users),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
