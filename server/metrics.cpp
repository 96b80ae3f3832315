// Counters of one process and their Prometheus text exposition.
// Rule: every metric has HELP and TYPE lines, names end in _total for counters.
#include "server/metrics.h"

#include <cstdio>

#include "server/log.h"

namespace roomcast::server {

constexpr double Metrics::kBounds[];

void Metrics::observe_latency(double ms) {
  int i = 0;
  while (i < kBuckets && ms > kBounds[i]) i++;
  latency_buckets[i]++;
  latency_sum_ms += ms;
  latency_count++;
}

const char* bound_name(Bound b) {
  switch (b) {
    case Bound::MaxOutbound: return "max_outbound";
    case Bound::HttpOutbound: return "http_outbound";
    case Bound::MaxConnections: return "max_connections";
    case Bound::MaxRooms: return "max_rooms";
    case Bound::RateLimit: return "rate";
    case Bound::MaxMessage: return "max_message";
    case Bound::JsonDepth: return "json_depth";
    case Bound::HistoryMemory: return "history_memory";
    case Bound::JoinedSize: return "joined_size";
    case Bound::MembersListed: return "members_listed";
    case Bound::HeldEvents: return "held_events";
    case Bound::ChatsInFlight: return "chats_in_flight";
    case Bound::ApiBody: return "api_body";
    case Bound::kCount: break;
  }
  return "unknown";
}

void Metrics::bound_hit(Bound b, const char* detail) {
  int i = static_cast<int>(b);
  bound_hits[i]++;
  if (bound_logged[i]) return;
  bound_logged[i] = true;
  LOG_WARN("bound %s reached (logged once; see roomcast_bound_hits_total): %s", bound_name(b), detail);
}

namespace {
void metric(std::string& out, const char* name, const char* type, const char* help, double value, const std::string& labels = "") {
  char number[32];
  snprintf(number, sizeof(number), "%.17g", value);
  out.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ").append(name).append(" ").append(type);
  out.append("\n").append(name).append(labels).append(" ").append(number).append("\n");
}

// Escapes a Prometheus label value (backslash, quote, newline).
std::string label_value(const char* v) {
  std::string out;
  for (; *v; v++) {
    if (*v == '\\' || *v == '"') out.push_back('\\');
    if (*v == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(*v);
  }
  return out;
}
}  // namespace

std::string render_metrics(const Metrics& m, const Gauges& g) {
  std::string out;
  std::string labels = "{instance=\"" + label_value(g.instance) + "\",mode=\"" + g.mode + "\"}";
  metric(out, "roomcast_info", "gauge", "Instance identity.", 1, labels);
  metric(out, "roomcast_connections", "gauge", "Open TCP connections (HTTP and WebSocket).", g.connections);
  metric(out, "roomcast_websockets", "gauge", "Open WebSocket connections.", g.websockets);
  metric(out, "roomcast_rooms", "gauge", "Rooms with local members.", g.rooms);
  metric(out, "roomcast_subscriptions", "gauge", "Broker subscriptions held.", g.subscriptions);
  metric(out, "roomcast_outbound_bytes", "gauge", "Bytes queued to clients and not yet written.", g.outbound_bytes);
  metric(out, "roomcast_broker_up", "gauge", "1 when the broker is reachable.", g.broker_up);
  metric(out, "roomcast_connections_accepted_total", "counter", "TCP connections accepted.", m.connections_accepted);
  metric(out, "roomcast_http_requests_total", "counter", "HTTP requests answered.", m.http_requests);
  metric(out, "roomcast_messages_in_total", "counter", "WebSocket messages received from clients.", m.messages_in);
  metric(out, "roomcast_messages_out_total", "counter", "Events queued to clients, one per recipient.", m.messages_out);
  metric(out, "roomcast_bytes_in_total", "counter", "Bytes read from clients.", m.bytes_in);
  metric(out, "roomcast_bytes_out_total", "counter", "Bytes written to clients.", m.bytes_out);
  metric(out, "roomcast_slow_consumer_drops_total", "counter", "Connections closed for exceeding --max-outbound.", m.slow_consumer_drops);
  metric(out, "roomcast_rate_limited_total", "counter", "Client messages refused by the rate limit.", m.rate_limited);
  metric(out, "roomcast_publishes_total", "counter", "Chats published to the broker.", m.publishes);
  metric(out, "roomcast_publish_errors_total", "counter", "Chats answered unavailable.", m.publish_errors);
  metric(out, "roomcast_broker_messages_in_total", "counter", "Messages received from the broker.", m.broker_messages_in);
  metric(out, "roomcast_redis_reconnects_total", "counter", "Redis reconnections.", g.redis_reconnects);
  out += "# HELP roomcast_bound_hits_total Times each bound of the server bit (see docs/architecture.md).\n"
         "# TYPE roomcast_bound_hits_total counter\n";
  for (int i = 0; i < static_cast<int>(Bound::kCount); i++) {
    out.append("roomcast_bound_hits_total{bound=\"").append(bound_name(static_cast<Bound>(i))).append("\"} ");
    out.append(std::to_string(m.bound_hits[i])).append("\n");
  }
  out += "# HELP roomcast_auth_refused_total Tokens refused (authentication on), by reason.\n"
         "# TYPE roomcast_auth_refused_total counter\n";
  for (int i = 1; i < static_cast<int>(AuthRefusal::kCount); i++) {
    out.append("roomcast_auth_refused_total{reason=\"").append(auth_refusal_name(static_cast<AuthRefusal>(i))).append("\"} ");
    out.append(std::to_string(m.auth_refused[i])).append("\n");
  }
  out += "# HELP roomcast_publish_delivery_ms Chat publish (event ts) to local fan-out, milliseconds.\n"
         "# TYPE roomcast_publish_delivery_ms histogram\n";
  uint64_t cumulative = 0;
  char buf[160];
  for (int i = 0; i <= Metrics::kBuckets; i++) {
    cumulative += m.latency_buckets[i];
    if (i < Metrics::kBuckets) snprintf(buf, sizeof(buf), "roomcast_publish_delivery_ms_bucket{le=\"%g\"} %llu\n", Metrics::kBounds[i], static_cast<unsigned long long>(cumulative));
    else snprintf(buf, sizeof(buf), "roomcast_publish_delivery_ms_bucket{le=\"+Inf\"} %llu\n", static_cast<unsigned long long>(cumulative));
    out += buf;
  }
  snprintf(buf, sizeof(buf), "roomcast_publish_delivery_ms_sum %.17g\nroomcast_publish_delivery_ms_count %llu\n", m.latency_sum_ms, static_cast<unsigned long long>(m.latency_count));
  out += buf;
  if (!m.api_requests.empty()) {
    out += "# HELP roomcast_api_requests_total Server API calls (/api/...) by route and status.\n"
           "# TYPE roomcast_api_requests_total counter\n";
    for (const auto& [key, n] : m.api_requests) {
      out.append("roomcast_api_requests_total{route=\"").append(key.first).append("\",status=\"");
      out.append(std::to_string(key.second)).append("\"} ").append(std::to_string(n)).append("\n");
    }
  }
  return out;
}

}  // namespace roomcast::server
