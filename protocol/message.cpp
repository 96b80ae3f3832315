// Chat messages of the wire contract (sections 3 and 4): JSON in, validated commands out; events out.
// Rule: JSON is read and written with rapidjson only; no string is pasted into JSON by hand.
#include "protocol/message.h"

#include "protocol/utf8.h"

#include <rapidjson/document.h>
#include <rapidjson/encodedstream.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstring>

#include "protocol/json_write.h"

namespace roomcast::protocol {

namespace {

using json::Writer;
using json::done;
using json::put;
using json::field;

struct Table {
  const char* name;
  ErrorCode code;
};

void key(Writer& w, const char* k) { w.Key(k); }

void put_user(Writer& w, const User& u) {
  w.StartObject();
  key(w, "id");
  put(w, u.id);
  key(w, "name");
  put(w, u.name);
  w.EndObject();
}

void put_ref(Writer& w, std::string_view ref) {
  if (ref.empty()) return;
  key(w, "ref");
  w.RawValue(ref.data(), ref.size(), rapidjson::kStringType);
}


// Hands SAX events on to a Document, refusing nesting deeper than kMaxJsonDepth.
class DepthLimit {
 public:
  explicit DepthLimit(rapidjson::Document& doc) : doc_(doc) {}
  bool too_deep() const { return too_deep_; }

  bool Null() { return doc_.Null(); }
  bool Bool(bool b) { return doc_.Bool(b); }
  bool Int(int i) { return doc_.Int(i); }
  bool Uint(unsigned u) { return doc_.Uint(u); }
  bool Int64(int64_t i) { return doc_.Int64(i); }
  bool Uint64(uint64_t u) { return doc_.Uint64(u); }
  bool Double(double d) { return doc_.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) { return doc_.RawNumber(s, n, copy); }
  bool String(const char* s, rapidjson::SizeType n, bool copy) { return doc_.String(s, n, copy); }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) { return doc_.Key(s, n, copy); }
  bool StartObject() { return enter() && doc_.StartObject(); }
  bool EndObject(rapidjson::SizeType members) { return leave() && doc_.EndObject(members); }
  bool StartArray() { return enter() && doc_.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) { return leave() && doc_.EndArray(elements); }

 private:
  bool enter() {
    if (++depth_ <= kMaxJsonDepth) return true;
    too_deep_ = true;
    return false;
  }
  bool leave() {
    --depth_;
    return true;
  }

  rapidjson::Document& doc_;
  int depth_ = 0;          // containers open at this point
  bool too_deep_ = false;  // stopped at a container beyond kMaxJsonDepth
};

enum class Parsed { Ok, Bad, TooDeep };

// Parses text into *doc with no recursion (rapidjson's iterative parser: its stack is on the heap) and
// at most kMaxJsonDepth levels, so no text can exhaust the stack or make the tree arbitrarily deep.
// Every JSON the server reads goes through here.
Parsed parse_json(std::string_view text, rapidjson::Document* doc) {
  DepthLimit limit(*doc);
  bool ok = false;
  auto generate = [&](rapidjson::Document&) {
    rapidjson::MemoryStream ms(text.data(), text.size());
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> is(ms);
    rapidjson::Reader reader;
    ok = !reader.Parse<rapidjson::kParseIterativeFlag>(is, limit).IsError();
    return ok;
  };
  doc->Populate(generate);
  if (limit.too_deep()) return Parsed::TooDeep;
  return ok ? Parsed::Ok : Parsed::Bad;
}


bool fail(MessageError* err, ErrorCode code, std::string text) {
  err->code = code;
  err->message = std::move(text);
  return false;
}

// Reads a user object; returns false when present but invalid.
bool read_user(const rapidjson::Value& v, User* out) {
  if (!v.IsObject()) return false;
  const rapidjson::Value* id = field(v, "id");
  const rapidjson::Value* name = field(v, "name");
  if (!id || !name || !id->IsString() || !name->IsString()) return false;
  std::string_view sid(id->GetString(), id->GetStringLength()), sname(name->GetString(), name->GetStringLength());
  if (!valid_user_id(sid) || !valid_user_name(sname)) return false;
  out->id = std::string(sid);
  out->name = std::string(sname);
  return true;
}

// Reads roomId (or its alias room). Returns false with err set when missing/bad; optional rooms may be absent.
bool read_room(const rapidjson::Value& obj, bool required, ClientMessage* msg, MessageError* err) {
  const rapidjson::Value* v = field(obj, "roomId");
  if (!v) v = field(obj, "room");
  if (!v) return required ? fail(err, ErrorCode::BadRequest, "roomId is required") : true;
  if (!v->IsString()) return fail(err, ErrorCode::BadRequest, "roomId must be a string");
  std::string_view id(v->GetString(), v->GetStringLength());
  if (!valid_room_id(id)) return fail(err, ErrorCode::BadRoom, "roomId must be 1-64 characters of [A-Za-z0-9_.:-]");
  msg->room_id = std::string(id);
  return true;
}

bool read_message(const rapidjson::Value& obj, ClientMessage* msg, MessageError* err) {
  const rapidjson::Value* v = field(obj, "message");
  if (!v || !v->IsString()) return fail(err, ErrorCode::BadRequest, "message must be a string");
  if (v->GetStringLength() == 0) return fail(err, ErrorCode::BadRequest, "message must not be empty");
  if (v->GetStringLength() > kMaxChatBytes) return fail(err, ErrorCode::TooLarge, "message is over 16384 bytes");
  // rapidjson turns an escaped lone surrogate ("\udd0a") into bytes that are not UTF-8; relayed, they
  // would make every member's browser drop its connection.
  if (!valid_utf8(std::string_view(v->GetString(), v->GetStringLength())))
    return fail(err, ErrorCode::BadRequest, "message is not valid Unicode (lone surrogate escape)");
  msg->message.assign(v->GetString(), v->GetStringLength());
  return true;
}

// Reads an optional "user" (and, when allow_name, a bare "name"). Invalid ones are bad_request.
bool read_optional_user(const rapidjson::Value& obj, bool allow_name, ClientMessage* msg, MessageError* err) {
  if (const rapidjson::Value* u = field(obj, "user")) {
    User user;
    if (!read_user(*u, &user)) return fail(err, ErrorCode::BadRequest, "user must be {\"id\":..,\"name\":..} with valid values");
    msg->user = std::move(user);
  } else if (allow_name) {
    if (const rapidjson::Value* n = field(obj, "name")) {
      if (!n->IsString() || !valid_user_name(std::string_view(n->GetString(), n->GetStringLength())))
        return fail(err, ErrorCode::BadRequest, "name must be 1-64 characters without control characters");
      msg->user = User{"", std::string(n->GetString(), n->GetStringLength())};
    }
  }
  return true;
}

}  // namespace

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::BadJson: return "bad_json";
    case ErrorCode::BadRequest: return "bad_request";
    case ErrorCode::UnknownType: return "unknown_type";
    case ErrorCode::BadRoom: return "bad_room";
    case ErrorCode::NotMember: return "not_member";
    case ErrorCode::TooLarge: return "too_large";
    case ErrorCode::RateLimited: return "rate_limited";
    case ErrorCode::Unavailable: return "unavailable";
    case ErrorCode::Unauthorized: return "unauthorized";
  }
  return "bad_request";
}

bool parse_client_message(std::string_view text, ClientMessage* msg, MessageError* err) {
  *msg = ClientMessage();
  *err = MessageError();
  rapidjson::Document doc;
  Parsed parsed = parse_json(text, &doc);
  if (parsed == Parsed::TooDeep) {
    err->too_deep = true;
    return fail(err, ErrorCode::BadJson, "JSON nested deeper than 64 levels");
  }
  if (parsed != Parsed::Ok || !doc.IsObject()) return fail(err, ErrorCode::BadJson, "expected one JSON object");

  if (const rapidjson::Value* ref = field(doc, "ref")) {
    if (!ref->IsString() && !ref->IsNumber())
      return fail(err, ErrorCode::BadRequest, "ref must be a string or a number");
    rapidjson::StringBuffer buf;
    Writer w(buf);
    ref->Accept(w);
    if (ref->IsString() ? ref->GetStringLength() > kMaxRefBytes : buf.GetSize() > kMaxRefBytes)
      return fail(err, ErrorCode::BadRequest, "ref is over 64 bytes");
    if (ref->IsString() && !valid_utf8(std::string_view(ref->GetString(), ref->GetStringLength())))
      return fail(err, ErrorCode::BadRequest, "ref is not valid Unicode (lone surrogate escape)");
    msg->ref = done(buf);
    err->ref = msg->ref;
  }

  const rapidjson::Value* type = field(doc, "type");
  if (!type || !type->IsString()) return fail(err, ErrorCode::BadRequest, "type must be a string");
  std::string_view t(type->GetString(), type->GetStringLength());

  if (t == "hello") {
    msg->type = MsgType::Hello;
    const rapidjson::Value* u = field(doc, "user");
    User user;
    if (!u || !read_user(*u, &user)) return fail(err, ErrorCode::BadRequest, "hello needs user {\"id\":..,\"name\":..}");
    msg->user = std::move(user);
    return true;
  }
  if (t == "create") {
    msg->type = MsgType::Create;
    return read_optional_user(doc, false, msg, err);
  }
  if (t == "join" || t == "SUBSCRIBE" || t == "join_room") {
    msg->type = MsgType::Join;
    if (!read_room(doc, true, msg, err) || !read_optional_user(doc, t == "join_room", msg, err)) return false;
    if (const rapidjson::Value* s = field(doc, "since")) {
      if (!s->IsString() || !valid_message_id(std::string_view(s->GetString(), s->GetStringLength())))
        return fail(err, ErrorCode::BadRequest, "since must be a message id such as \"1700000000000-0\"");
      msg->since = std::string(s->GetString(), s->GetStringLength());
    }
    return true;
  }
  if (t == "leave" || t == "UNSUBSCRIBE" || t == "exit") {
    msg->type = MsgType::Leave;
    return read_room(doc, true, msg, err);
  }
  if (t == "chat" || t == "sendMessage" || t == "chat_message") {
    msg->type = MsgType::Chat;
    return read_room(doc, t != "chat_message", msg, err) && read_message(doc, msg, err);
  }
  if (t == "ping") {
    msg->type = MsgType::Ping;
    return true;
  }
  if (t == "refresh") {
    msg->type = MsgType::Refresh;
    const rapidjson::Value* tok = field(doc, "token");
    if (!tok || !tok->IsString()) return fail(err, ErrorCode::BadRequest, "refresh needs token (a string)");
    msg->token.assign(tok->GetString(), tok->GetStringLength());
    return true;
  }
  return fail(err, ErrorCode::UnknownType, "unknown type");
}

std::string json_quote(std::string_view text) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  put(w, text);
  return done(buf);
}

std::string encode_user(const User& user) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  put_user(w, user);
  return done(buf);
}

bool parse_user(std::string_view json, User* out) {
  rapidjson::Document doc;
  return parse_json(json, &doc) == Parsed::Ok && read_user(doc, out);
}

std::string encode_hello(const User& user, std::string_view instance, std::string_view ref) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  key(w, "type");
  put(w, "hello");
  key(w, "user");
  put_user(w, user);
  if (!instance.empty()) {
    key(w, "instance");
    put(w, instance);
  }
  put_ref(w, ref);
  w.EndObject();
  return done(buf);
}

std::string encode_created(std::string_view room_id, std::string_view ref) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  key(w, "type");
  put(w, "created");
  key(w, "roomId");
  put(w, room_id);
  put_ref(w, ref);
  w.EndObject();
  return done(buf);
}

std::string encode_joined(const JoinedReply& j) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  key(w, "type");
  put(w, "joined");
  key(w, "roomId");
  put(w, j.room_id);
  key(w, "user");
  put_user(w, *j.you);
  key(w, "count");
  w.Uint64(j.count);
  key(w, "members");
  w.StartArray();
  if (j.members)
    for (const User& m : *j.members) put_user(w, m);
  w.EndArray();
  if (j.members_truncated) {
    key(w, "membersTruncated");
    w.Bool(true);
  }
  key(w, "history");
  w.StartArray();
  if (j.history)
    for (size_t i = j.history_from; i < j.history->size(); i++)
      w.RawValue((*j.history)[i].data(), (*j.history)[i].size(), rapidjson::kObjectType);
  w.EndArray();
  if (j.truncated) {
    key(w, "truncated");
    w.Bool(true);
  }
  put_ref(w, j.ref);
  w.EndObject();
  return done(buf);
}

std::string encode_left(std::string_view room_id, std::string_view ref) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  key(w, "type");
  put(w, "left");
  key(w, "roomId");
  put(w, room_id);
  put_ref(w, ref);
  w.EndObject();
  return done(buf);
}

std::string encode_presence(bool join, std::string_view room_id, const User& user) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  key(w, "type");
  put(w, "presence");
  key(w, "event");
  put(w, join ? "join" : "leave");
  key(w, "roomId");
  put(w, room_id);
  key(w, "user");
  put_user(w, user);
  w.EndObject();
  return done(buf);
}

std::string encode_ack(std::string_view ref, std::string_view id) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  key(w, "type");
  put(w, "ack");
  put_ref(w, ref);
  key(w, "id");
  put(w, id);
  w.EndObject();
  return done(buf);
}

std::string encode_refreshed(int64_t exp, std::string_view ref) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  key(w, "type");
  put(w, "refreshed");
  if (exp > 0) {
    key(w, "exp");
    w.Int64(exp);
  }
  put_ref(w, ref);
  w.EndObject();
  return done(buf);
}

std::string encode_pong(std::string_view ref) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  key(w, "type");
  put(w, "pong");
  put_ref(w, ref);
  w.EndObject();
  return done(buf);
}

std::string encode_error(ErrorCode code, std::string_view message, std::string_view ref) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  key(w, "type");
  put(w, "error");
  key(w, "code");
  put(w, error_code_name(code));
  key(w, "message");
  put(w, message);
  put_ref(w, ref);
  w.EndObject();
  return done(buf);
}

std::string chat_event_prefix(std::string_view room_id, const User& user, std::string_view message, int64_t ts_ms) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  key(w, "type");
  put(w, "chat");
  key(w, "roomId");
  put(w, room_id);
  key(w, "ts");
  w.Int64(ts_ms);
  key(w, "user");
  put_user(w, user);
  key(w, "message");
  put(w, message);
  key(w, "id");
  put(w, "");
  w.EndObject();
  std::string out = done(buf);
  // Drop the empty id's closing quote and the brace: the caller appends id + kChatEventSuffix.
  out.resize(out.size() - kChatEventSuffix.size());
  return out;
}

bool is_chat_event(std::string_view event) { return event.rfind("{\"type\":\"chat\"", 0) == 0; }

std::string presence_user_id(std::string_view event) {
  if (event.rfind("{\"type\":\"presence\"", 0) != 0) return {};
  rapidjson::Document doc;
  if (parse_json(event, &doc) != Parsed::Ok || !doc.IsObject()) return {};
  const rapidjson::Value* user = field(doc, "user");
  const rapidjson::Value* id = user && user->IsObject() ? field(*user, "id") : nullptr;
  return id && id->IsString() ? std::string(id->GetString(), id->GetStringLength()) : std::string();
}

int64_t chat_event_ts(std::string_view event) {
  size_t pos = event.find("\"ts\":");
  if (pos == std::string_view::npos) return -1;
  int64_t v = 0;
  for (size_t i = pos + 5; i < event.size() && event[i] >= '0' && event[i] <= '9'; i++) v = v * 10 + (event[i] - '0');
  return v;
}

std::string_view chat_event_id(std::string_view event) {
  size_t pos = event.rfind("\"id\":\"");
  if (pos == std::string_view::npos || event.size() < pos + 6 + kChatEventSuffix.size()) return {};
  return event.substr(pos + 6, event.size() - kChatEventSuffix.size() - (pos + 6));
}

}  // namespace roomcast::protocol
