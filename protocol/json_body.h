// JSON bodies of the HTTP answers (PROTOCOL.md section 1): errors, created rooms, room info, health.
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

}  // namespace roomcast::protocol
