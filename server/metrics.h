// Counters of one process and their Prometheus text exposition.
// Rule: counters only go up; gauges are read from their owners when /metrics is rendered.
#pragma once
#include <cstdint>
#include <string>

namespace roomcast::server {

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

  void observe_latency(double ms);
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
