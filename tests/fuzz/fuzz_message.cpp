// Fuzzer 3: parse_client_message on arbitrary text; every encoder fed the parsed fields must write
// valid JSON (read back with rapidjson), and chat events must round-trip their id.
// Two levels: (1) rapidjson's default parse must accept the output; (2) when the input itself is
// valid UTF-8 (the WebSocket layer guarantees that for real text frames), the output must also be
// valid UTF-8 (RFC 8259 section 8.1; it goes out in text frames), checked with
// kParseValidateEncodingFlag and an independent validator.
#include <rapidjson/document.h>

#include <cinttypes>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "protocol/message.h"

using namespace roomcast::protocol;

namespace {

bool strict_input = false;  // the fuzz input is valid UTF-8

// Known finding (README.md, "Findings"): rapidjson 1.1.0 turns a lone low-surrogate escape
// "\uDC00".."\uDFFF" into the bytes ED B0..BF xx, which parse_client_message keeps in message/ref
// and the encoders write out. FUZZ_SKIP_KNOWN=1 skips the UTF-8 level for such inputs so that a
// run can look for other problems.
bool has_low_surrogate_escape(std::string_view text) {
  for (size_t i = 0; i + 3 < text.size(); i++)
    if (text[i] == '\\' && text[i + 1] == 'u' && (text[i + 2] == 'd' || text[i + 2] == 'D') &&
        std::strchr("cdefCDEF", text[i + 3]))
      return true;
  return false;
}

void check_json(const std::string& out, const char* what, rapidjson::Document* doc_out = nullptr) {
  rapidjson::Document doc;
  doc.Parse(out.data(), out.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    fuzz::print_hex(what, out.data(), out.size(), 256);
    FUZZ_CHECK(false, "%s is not a JSON object (rapidjson error %d at %zu)", what, static_cast<int>(doc.GetParseError()),
               doc.GetErrorOffset());
  }
  if (strict_input) {
    bool utf8 = fuzz::strict_utf8(reinterpret_cast<const uint8_t*>(out.data()), out.size());
    rapidjson::Document strict;
    strict.Parse<rapidjson::kParseValidateEncodingFlag>(out.data(), out.size());
    if (!utf8 || strict.HasParseError()) {
      fuzz::print_hex(what, out.data(), out.size(), 256);
      FUZZ_CHECK(false, "%s is not valid UTF-8 JSON although the input was valid UTF-8", what);
    }
  }
  if (doc_out) doc_out->Swap(doc);
}

std::string str(const rapidjson::Value& v) { return std::string(v.GetString(), v.GetStringLength()); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  static const bool skip_known = std::getenv("FUZZ_SKIP_KNOWN") != nullptr;
  strict_input = fuzz::strict_utf8(data, size) && !(skip_known && has_low_surrogate_escape(text));
  ClientMessage msg;
  MessageError err;
  bool ok = parse_client_message(text, &msg, &err);
  if (!ok) {
    FUZZ_CHECK(!err.message.empty(), "failure without a message");
    check_json(encode_error(err.code, err.message, err.ref), "encode_error(parse error)");
    return 0;
  }
  FUZZ_CHECK(msg.ref.size() <= 2 * kMaxRefBytes + 2 || msg.ref[0] == '"', "ref '%s'", msg.ref.c_str());

  User user = msg.user ? *msg.user : User{"u1", "Una"};
  if (user.id.empty()) user.id = "anon-x";
  std::string room = msg.room_id.empty() ? "room-1" : msg.room_id;
  std::string message = msg.message.empty() ? "hi" : msg.message;
  std::string since = msg.since ? *msg.since : "1700000000000-0";
  int64_t ts = 1700000000000 + static_cast<int64_t>(size);

  rapidjson::Document d;
  // The instance is the operator's text (--instance-id); the fuzzed message stands in for any UTF-8.
  check_json(encode_hello(user, message, msg.ref), "encode_hello", &d);
  FUZZ_CHECK(str(d["user"]["id"]) == user.id && str(d["user"]["name"]) == user.name, "hello user differs");
  FUZZ_CHECK(d.HasMember("instance") && str(d["instance"]) == message, "hello instance differs");
  if (!msg.ref.empty()) {
    // The ref goes back as it came.
    FUZZ_CHECK(d.HasMember("ref"), "hello lost the ref");
  }
  check_json(encode_created(room, msg.ref), "encode_created", &d);
  FUZZ_CHECK(str(d["roomId"]) == room, "created roomId differs");
  check_json(encode_left(room, msg.ref), "encode_left");
  check_json(encode_presence(true, room, user), "encode_presence(join)");
  std::string pres = encode_presence(false, room, user);
  check_json(pres, "encode_presence(leave)");
  FUZZ_CHECK(presence_user_id(pres) == user.id, "presence_user_id '%s' vs '%s'", presence_user_id(pres).c_str(),
             user.id.c_str());
  check_json(encode_ack(msg.ref, since), "encode_ack");
  check_json(encode_pong(msg.ref), "encode_pong");
  for (int c = 0; c <= static_cast<int>(ErrorCode::Unauthorized); c++)
    check_json(encode_error(static_cast<ErrorCode>(c), message, msg.ref), "encode_error");
  {
    std::string q = "{\"q\":" + json_quote(message) + "}";
    check_json(q, "json_quote", &d);
    FUZZ_CHECK(str(d["q"]) == message, "json_quote does not round-trip");
  }
  std::string uj = encode_user(user);
  rapidjson::Document ud;
  ud.Parse(uj.data(), uj.size());
  FUZZ_CHECK(!ud.HasParseError() && ud.IsObject(), "encode_user is not a JSON object");
  User back;
  FUZZ_CHECK(parse_user(uj, &back) && back.id == user.id && back.name == user.name, "encode_user/parse_user round trip");

  // A chat event completed by the broker's way: prefix + id + suffix.
  std::string ev = chat_event_prefix(room, user, message, ts) + "123-4" + std::string(kChatEventSuffix);
  check_json(ev, "chat event", &d);
  FUZZ_CHECK(str(d["message"]) == message, "chat event message differs after a round trip");
  FUZZ_CHECK(str(d["roomId"]) == room, "chat event roomId differs");
  FUZZ_CHECK(str(d["id"]) == "123-4", "chat event id field '%s'", str(d["id"]).c_str());
  std::string_view id = chat_event_id(ev);
  FUZZ_CHECK(id == "123-4", "chat_event_id returned '%.*s'", static_cast<int>(id.size()), id.data());
  FUZZ_CHECK(is_chat_event(ev), "is_chat_event false for a chat event");
  FUZZ_CHECK(chat_event_ts(ev) == ts, "chat_event_ts %" PRId64 " vs %" PRId64, chat_event_ts(ev), ts);

  std::vector<User> members{user, User{"u2", "Two"}};
  std::vector<std::string> history{ev, ev};
  JoinedReply j;
  j.room_id = room;
  j.you = &user;
  j.members = &members;
  j.count = members.size();
  j.members_truncated = size & 2;
  j.history = &history;
  j.truncated = size & 1;
  j.ref = msg.ref;
  check_json(encode_joined(j), "encode_joined", &d);
  FUZZ_CHECK(d["history"].IsArray() && d["history"].Size() == 2, "joined history");
  return 0;
}
