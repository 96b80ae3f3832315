// JSON bodies of the HTTP answers (PROTOCOL.md section 1): errors, created rooms, room info, health, the admin port's room summary.
// Rule: every body is written with rapidjson's Writer; no value is pasted into JSON by hand.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/ids.h"

namespace roomcast::protocol {

// {"error":code}, or {"error":code,"message":message} when message is not empty.
std::string error_body(std::string_view code, std::string_view message = {});
// {"roomId":room_id}
std::string created_body(std::string_view room_id);
// {"roomId":..,"members":[user..],"count":N,"membersTruncated":true?,"ws":"/ws?room=<roomId>"} (room_id
// must be valid). members: those listed (at most the listing cap); count: all of them.
std::string room_body(std::string_view room_id, const std::vector<User>& members, size_t count, bool members_truncated);

struct Health {
  bool up = false;             // the broker is reachable: "status" "ok", else "degraded"
  std::string_view redis;      // "standalone", "up" or "down"
  uint64_t connections = 0;    // open TCP connections
  uint64_t websockets = 0;     // open WebSocket connections
  std::string_view instance;   // --instance-id
  int masters = -1;            // Redis Cluster: masters known (-1: not a cluster, not written)
};
// {"status":..,"redis":..,["masters":N,]"connections":N,"websockets":N,"instance":..}
std::string health_body(const Health& h);

// One room of an instance, as the admin port's /debug/rooms shows it.
struct RoomSummary {
  std::string_view id;      // room id
  std::string_view state;   // "subscribing", "syncing", "live", "lingering"
  uint64_t members = 0;     // local members (connections in the room on this instance)
  uint64_t users = 0;       // distinct users among them (announced)
  uint64_t held_bytes = 0;  // live chats held for readers
};
struct RoomsSummary {
  std::string_view instance;        // --instance-id
  uint64_t rooms = 0;               // rooms with local members (or lingering) on this instance
  uint64_t members = 0;             // seats over every room
  uint64_t held_bytes = 0;          // held bytes over every room
  size_t limit = 0;                 // the most rooms listed
  std::vector<RoomSummary> top;     // the biggest rooms, biggest first (at most limit)
};
// {"instance":..,"rooms":N,"members":N,"heldBytes":N,"limit":N,"top":[{"id":..,"state":..,"members":N,"users":N,"heldBytes":N}..]}
std::string rooms_summary_body(const RoomsSummary& s);

}  // namespace roomcast::protocol
