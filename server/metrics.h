// Counters of one process and their Prometheus text exposition.
// Rule: counters only go up; gauges are read from their owners when /metrics is rendered.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "server/auth.h"

namespace roomcast::server {

// Every bound of the server that can bite: each has a counter (roomcast_bound_hits_total{bound=..})
// and one warning in the log the first time it bites (Metrics::bound_hit).
enum class Bound : uint8_t {
  MaxOutbound,     // --max-outbound: a WebSocket reader too slow, closed 1008
  HttpOutbound,    // --max-outbound on HTTP: pipelined answers pile up, reading paused
  MaxConnections,  // --max-connections: upgrade answered 503
  MaxRooms,        // --max-rooms: a join refused
  RateLimit,       // --rate: a message refused
  MaxMessage,      // --max-message: close 1009
  JsonDepth,       // JSON nested deeper than 64: bad_json
  HistoryMemory,   // --history-memory: the least recently used room's history dropped
  JoinedSize,      // `joined` over 512 KiB: history cut from its oldest end
  MembersListed,   // more than 1000 members: list cut, membersTruncated
  HeldEvents,      // live events held for readers of a room over its bound: the room re-reads its stream
  ChatsInFlight,   // chats sent to the broker and not answered, over the process's bound: unavailable
  ApiBody,         // a server API request body over 64 KiB: 413
  kCount
};
// The label value of a bound ("max_outbound", ...).
const char* bound_name(Bound b);

struct Metrics {
  uint64_t connections_accepted = 0;
  uint64_t messages_in = 0;           // client WebSocket messages received
  uint64_t messages_out = 0;          // events queued to clients (one per recipient)
  uint64_t bytes_in = 0;              // bytes read from clients
  uint64_t bytes_out = 0;             // bytes written to clients
  uint64_t slow_consumer_drops = 0;   // connections closed for exceeding --max-outbound
  uint64_t rate_limited = 0;          // messages refused by the rate limit
  uint64_t publishes = 0;             // chats published to the broker
  uint64_t publish_errors = 0;        // chats answered `unavailable`
  uint64_t broker_messages_in = 0;    // messages received from the broker
  uint64_t http_requests = 0;
  // Publish-to-delivery latency (event ts to fan-out on this instance), milliseconds.
  static constexpr int kBuckets = 12;
  static constexpr double kBounds[kBuckets] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000};
  uint64_t latency_buckets[kBuckets + 1] = {};  // last one: +Inf
  double latency_sum_ms = 0;
  uint64_t latency_count = 0;

  uint64_t auth_refused[static_cast<int>(AuthRefusal::kCount)] = {};  // tokens refused, by reason

  uint64_t bound_hits[static_cast<int>(Bound::kCount)] = {};
  bool bound_logged[static_cast<int>(Bound::kCount)] = {};

  // Server API calls (section 9) by route and status: roomcast_api_requests_total{route=..,status=..}.
  std::map<std::pair<std::string, int>, uint64_t> api_requests;

  void observe_latency(double ms);
  // Counts one bite of bound b; logs `detail` (a warning) the first time only.
  void bound_hit(Bound b, const char* detail);
};

struct Gauges {
  uint64_t connections, websockets, rooms, subscriptions, redis_reconnects, outbound_bytes;
  int broker_up;  // 1 up, 0 down
  const char* mode;
  const char* instance;
};

// Renders Prometheus text format 0.0.4.
std::string render_metrics(const Metrics& m, const Gauges& g);

}  // namespace roomcast::server
