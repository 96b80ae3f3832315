// JSON of the server API (PROTOCOL.md section 9): request bodies in, answers and control messages out.
// Rule: bodies are at most 64 KiB (the HTTP parser's bound) and parsed iteratively, so no body can
// exhaust the stack; every value is checked with the same functions as a WebSocket client's.
#include "protocol/api_body.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "protocol/utf8.h"

#include "protocol/json_write.h"

namespace roomcast::protocol {

namespace {

using json::Writer;
using json::done;
using json::put;
using json::field;



bool fail(ApiError* err, ErrorCode code, std::string message) {
  err->code = code;
  err->message = std::move(message);
  return false;
}

// Parses body into *doc; false unless it is one JSON object.
bool parse_object(std::string_view body, rapidjson::Document* doc) {
  doc->Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  return !doc->HasParseError() && doc->IsObject();
}


std::string_view text(const rapidjson::Value& v) { return std::string_view(v.GetString(), v.GetStringLength()); }

}  // namespace

User api_default_user() { return User{"server", "server"}; }

bool parse_publish_request(std::string_view body, PublishRequest* out, ApiError* err) {
  rapidjson::Document doc;
  if (!parse_object(body, &doc)) return fail(err, ErrorCode::BadRequest, "the body must be a JSON object");
  const rapidjson::Value* room = field(doc, "roomId");
  if (!room || !room->IsString()) return fail(err, ErrorCode::BadRequest, "roomId must be a string");
  if (!valid_room_id(text(*room))) return fail(err, ErrorCode::BadRoom, "roomId must be 1-64 characters of [A-Za-z0-9_.:-]");
  const rapidjson::Value* message = field(doc, "message");
  if (!message || !message->IsString()) return fail(err, ErrorCode::BadRequest, "message must be a string");
  if (message->GetStringLength() == 0) return fail(err, ErrorCode::BadRequest, "message must not be empty");
  if (message->GetStringLength() > kMaxChatBytes) return fail(err, ErrorCode::TooLarge, "message is over 16384 bytes");
  // An escaped lone surrogate ("\udd0a") becomes bytes that are not UTF-8 (see message.cpp).
  if (!valid_utf8(text(*message))) return fail(err, ErrorCode::BadRequest, "message is not valid Unicode (lone surrogate escape)");
  User user = api_default_user();
  if (const rapidjson::Value* u = field(doc, "user")) {
    const rapidjson::Value* id = u->IsObject() ? field(*u, "id") : nullptr;
    const rapidjson::Value* name = u->IsObject() ? field(*u, "name") : nullptr;
    if (!id || !name || !id->IsString() || !name->IsString() || !valid_user_id(text(*id)) || !valid_user_name(text(*name)))
      return fail(err, ErrorCode::BadRequest, "user must be {\"id\":..,\"name\":..} with valid values");
    user = User{std::string(text(*id)), std::string(text(*name))};
  }
  out->room_id = std::string(text(*room));
  out->message = std::string(text(*message));
  out->user = std::move(user);
  return true;
}

bool parse_disconnect_request(std::string_view body, std::string* user_id, ApiError* err) {
  rapidjson::Document doc;
  if (!parse_object(body, &doc)) return fail(err, ErrorCode::BadRequest, "the body must be a JSON object");
  const rapidjson::Value* id = field(doc, "userId");
  if (!id || !id->IsString() || !valid_user_id(text(*id)))
    return fail(err, ErrorCode::BadRequest, "userId must be 1-64 characters of [A-Za-z0-9_.:-]");
  *user_id = std::string(text(*id));
  return true;
}

std::string publish_answer(std::string_view chat_id) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("id");
  put(w, chat_id);
  w.EndObject();
  return done(buf);
}

std::string room_state_body(std::string_view room_id, const std::vector<User>& members, size_t count, bool members_truncated,
                            const std::vector<std::string>& history, bool truncated) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("roomId");
  put(w, room_id);
  w.Key("count");
  w.Uint64(count);
  w.Key("members");
  w.StartArray();
  for (const User& u : members) {
    std::string user = encode_user(u);
    w.RawValue(user.data(), user.size(), rapidjson::kObjectType);
  }
  w.EndArray();
  if (members_truncated) {
    w.Key("membersTruncated");
    w.Bool(true);
  }
  w.Key("history");
  w.StartArray();
  // Events come from the broker as the server wrote them (chat_event_prefix): complete JSON objects.
  for (const std::string& e : history) w.RawValue(e.data(), e.size(), rapidjson::kObjectType);
  w.EndArray();
  if (truncated) {
    w.Key("truncated");
    w.Bool(true);
  }
  w.EndObject();
  return done(buf);
}

std::string encode_disconnect_control(std::string_view user_id) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("type");
  put(w, "disconnect");
  w.Key("userId");
  put(w, user_id);
  w.EndObject();
  return done(buf);
}

bool parse_disconnect_control(std::string_view payload, std::string* user_id) {
  rapidjson::Document doc;
  if (!parse_object(payload, &doc)) return false;
  const rapidjson::Value* type = field(doc, "type");
  const rapidjson::Value* id = field(doc, "userId");
  if (!type || !type->IsString() || text(*type) != "disconnect") return false;
  if (!id || !id->IsString() || !valid_user_id(text(*id))) return false;
  *user_id = std::string(text(*id));
  return true;
}

}  // namespace roomcast::protocol
