// JSON bodies of the HTTP answers (PROTOCOL.md section 1): errors, created rooms, room info, health.
// Rule: a user is written by encode_user (message.cpp) only, so the room API and the WebSocket events agree.
#include "protocol/json_body.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "protocol/message.h"

#include "protocol/json_write.h"

namespace roomcast::protocol {

namespace {

using json::Writer;
using json::done;
using json::put;



}  // namespace

std::string error_body(std::string_view code, std::string_view message) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("error");
  put(w, code);
  if (!message.empty()) {
    w.Key("message");
    put(w, message);
  }
  w.EndObject();
  return done(buf);
}

std::string created_body(std::string_view room_id) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("roomId");
  put(w, room_id);
  w.EndObject();
  return done(buf);
}

std::string room_body(std::string_view room_id, const std::vector<User>& members, size_t count, bool members_truncated) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("roomId");
  put(w, room_id);
  w.Key("members");
  w.StartArray();
  for (const User& u : members) {
    std::string user = encode_user(u);
    w.RawValue(user.data(), user.size(), rapidjson::kObjectType);
  }
  w.EndArray();
  w.Key("count");
  w.Uint64(count);
  if (members_truncated) {
    w.Key("membersTruncated");
    w.Bool(true);
  }
  w.Key("ws");
  put(w, "/ws?room=" + std::string(room_id));  // the room-id alphabet needs no escaping in a query
  w.EndObject();
  return done(buf);
}

std::string health_body(const Health& h) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("status");
  put(w, h.up ? "ok" : "degraded");
  w.Key("redis");
  put(w, h.redis);
  if (h.masters >= 0) {
    w.Key("masters");
    w.Int(h.masters);
  }
  w.Key("connections");
  w.Uint64(h.connections);
  w.Key("websockets");
  w.Uint64(h.websockets);
  w.Key("instance");
  put(w, h.instance);
  w.EndObject();
  return done(buf);
}

std::string rooms_summary_body(const RoomsSummary& s) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("instance");
  put(w, s.instance);
  w.Key("rooms");
  w.Uint64(s.rooms);
  w.Key("members");
  w.Uint64(s.members);
  w.Key("heldBytes");
  w.Uint64(s.held_bytes);
  w.Key("limit");
  w.Uint64(s.limit);
  w.Key("top");
  w.StartArray();
  for (const RoomSummary& r : s.top) {
    w.StartObject();
    w.Key("id");
    put(w, r.id);
    w.Key("state");
    put(w, r.state);
    w.Key("members");
    w.Uint64(r.members);
    w.Key("users");
    w.Uint64(r.users);
    w.Key("heldBytes");
    w.Uint64(r.held_bytes);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return done(buf);
}

}  // namespace roomcast::protocol
