// Fan-out scenario: N members join one room (or spread over R rooms), P publish-only connections send
// M chats each, every chat carries its send time (monotonic ns) and every member times its delivery.
// Rule: deliveries expected = chats acked x members (of the chat's room); anything less is reported as
// lost, never hidden.
#include <signal.h>
#include <unistd.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <map>
#include <memory>

#include "bench/bench.h"
#include "bench/probe.h"

namespace roomcast::bench {

namespace {

// Reads an unsigned decimal at s[*pos], advancing *pos. Returns false when there is no digit.
bool read_uint(std::string_view s, size_t* pos, uint64_t* out) {
  uint64_t v = 0;
  size_t i = *pos;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') v = v * 10 + static_cast<uint64_t>(s[i++] - '0');
  if (i == *pos) return false;
  *pos = i;
  *out = v;
  return true;
}

// The string value of "key":"..." in a server event (no escapes expected in the values read here).
std::string_view string_field(std::string_view text, std::string_view key) {
  std::string needle = "\"" + std::string(key) + "\":\"";
  size_t p = text.find(needle);
  if (p == std::string_view::npos) return {};
  p += needle.size();
  size_t end = text.find('"', p);
  return end == std::string_view::npos ? std::string_view() : text.substr(p, end - p);
}

// The numeric "ref" of a reply, or -1.
int64_t ref_of(std::string_view text) {
  size_t p = text.find("\"ref\":");
  if (p == std::string_view::npos) return -1;
  p += 6;
  uint64_t v = 0;
  return read_uint(text, &p, &v) ? static_cast<int64_t>(v) : -1;
}

bool starts(std::string_view text, std::string_view prefix) { return text.rfind(prefix, 0) == 0; }

struct Peer {
  Client* client = nullptr;   // nullptr once closed
  bool publisher = false;
  uint32_t index = 0;         // member number or publisher number
  bool ready = false;         // member: `joined` seen; publisher: open
  // Publisher only.
  uint32_t sent = 0, acked = 0, refused = 0, inflight = 0;
};

class Fanout : public ClientEvents {
 public:
  Fanout(const CommonOptions& common, const FanoutOptions& opt) : common_(common), opt_(opt) {}
  int run();

  void on_open(Client& c) override;
  void on_text(Client& c, std::string_view text) override;
  void on_closed(Client& c, int code, const char* why) override;

 private:
  enum class Phase { Setup, Publishing, Draining, Done };
  void launch();
  void maybe_start();
  void begin();
  void pump(Peer& p);
  void pump_all();
  void send_chat(Peer& p);
  void on_delivery(Peer& m, std::string_view text);
  void on_reply(Peer& p, std::string_view text);
  void watch();
  void finish(const char* why);
  int report();
  uint64_t expected() const;
  bool publishing_done() const;
  uint32_t room_of_chat(uint32_t publisher, uint64_t seq) const {
    return static_cast<uint32_t>((publisher + seq) % static_cast<uint64_t>(opt_.rooms));
  }

  const CommonOptions& common_;
  FanoutOptions opt_;
  uv_loop_t loop_;
  uv_timer_t watch_timer_, pace_timer_, limit_timer_;
  uv_signal_t sigint_, sigterm_;
  std::vector<Peer> peers_;              // members first, then publishers
  size_t next_launch_ = 0;               // next peer to connect
  int settingup_ = 0;                    // peers connected or connecting and not ready
  int members_ready_ = 0, publishers_ready_ = 0;
  Phase phase_ = Phase::Setup;
  const char* end_reason_ = "";
  bool setup_failed_ = false;
  std::string setup_error_;

  std::vector<std::string> room_ids_;    // [room]
  std::vector<uint64_t> room_acked_;     // [room]: chats acked in that room
  std::vector<uint64_t> room_reading_;   // [room]: members of that room that read (not stalled)
  std::vector<uint32_t> last_seq_;       // [member * P + publisher]: highest seq delivered
  std::vector<uint32_t> latency_us_;     // one sample per delivery
  uint64_t received_ = 0, valid_ = 0, out_of_order_ = 0, presence_ = 0, foreign_ = 0, misrouted_ = 0;
  std::map<std::string, uint64_t> errors_;   // error code -> count (members and publishers)
  std::map<std::string, uint64_t> closes_;   // why a connection ended before the run did
  uint64_t t_setup_ns_ = 0, t_start_ns_ = 0, t_last_ack_ns_ = 0, t_last_delivery_ns_ = 0, t_end_ns_ = 0;
  uint64_t last_progress_ns_ = 0, last_print_ns_ = 0;
  std::string msg_buf_;                  // reused JSON of one chat

  MetricsMap metrics_before_, metrics_after_;
  bool metrics_ok_ = true;
  std::string metrics_error_;
  std::vector<ProcSample> proc_before_, proc_after_;
  double self_cpu_before_ = 0, self_cpu_after_ = 0;
  double machine_before_ = 0, machine_after_ = 0;
};

MetricsMap fetch_all(const std::vector<Endpoint>& eps, bool* ok, std::string* err) {
  MetricsMap sum;
  std::vector<std::string> seen;
  for (const Endpoint& ep : eps) {
    if (std::find(seen.begin(), seen.end(), ep.host_port) != seen.end()) continue;
    seen.push_back(ep.host_port);
    std::string body, e;
    if (!http_get(ep, "/metrics", &body, &e)) {
      *ok = false;
      *err = ep.host_port + ": " + e;
      continue;
    }
    for (const auto& [k, v] : parse_metrics(body)) sum[k] += v;
  }
  return sum;
}

int Fanout::run() {
  uv_loop_init(&loop_);
  peers_.resize(static_cast<size_t>(opt_.members + opt_.publishers));
  for (int i = 0; i < opt_.members + opt_.publishers; i++) {
    Peer& p = peers_[static_cast<size_t>(i)];
    p.publisher = i >= opt_.members;
    p.index = static_cast<uint32_t>(p.publisher ? i - opt_.members : i);
  }
  size_t rooms = static_cast<size_t>(opt_.rooms);
  if (opt_.room.find(',') != std::string::npos) {  // a list of room ids, one per room
    size_t from = 0;
    while (from <= opt_.room.size()) {
      size_t comma = std::min(opt_.room.find(',', from), opt_.room.size());
      room_ids_.push_back(opt_.room.substr(from, comma - from));
      from = comma + 1;
    }
  } else {
    for (size_t r = 0; r < rooms; r++) room_ids_.push_back(rooms == 1 ? opt_.room : opt_.room + "-" + std::to_string(r));
  }
  room_acked_.assign(rooms, 0);
  room_reading_.assign(rooms, 0);
  for (int i = opt_.stalled; i < opt_.members; i++) room_reading_[static_cast<size_t>(i) % rooms]++;
  last_seq_.assign(static_cast<size_t>(opt_.members) * static_cast<size_t>(opt_.publishers), 0);
  latency_us_.reserve(static_cast<size_t>(opt_.members) * static_cast<size_t>(opt_.publishers) * static_cast<size_t>(opt_.messages) /
                      rooms + 1024);

  uv_timer_init(&loop_, &watch_timer_);
  uv_timer_init(&loop_, &pace_timer_);
  uv_timer_init(&loop_, &limit_timer_);
  watch_timer_.data = pace_timer_.data = limit_timer_.data = this;
  uv_timer_start(&watch_timer_, [](uv_timer_t* t) { static_cast<Fanout*>(t->data)->watch(); }, 100, 100);
  uv_timer_start(&limit_timer_, [](uv_timer_t* t) { static_cast<Fanout*>(t->data)->finish("time limit"); },
                 static_cast<uint64_t>(common_.timeout_s * 1000), 0);
  uv_signal_init(&loop_, &sigint_);
  uv_signal_init(&loop_, &sigterm_);
  sigint_.data = sigterm_.data = this;
  auto on_sig = [](uv_signal_t* s, int) { static_cast<Fanout*>(s->data)->finish("signal"); };
  uv_signal_start(&sigint_, on_sig, SIGINT);
  uv_signal_start(&sigterm_, on_sig, SIGTERM);

  t_setup_ns_ = uv_hrtime();
  launch();
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  return report();
}

void Fanout::launch() {
  while (phase_ == Phase::Setup && settingup_ < common_.concurrency && next_launch_ < peers_.size()) {
    size_t i = next_launch_++;
    Peer& p = peers_[i];
    // A member is the k-th of its room r: endpoint (k + r) % E spreads every room's members over the
    // endpoints (with one room: member i on endpoint i % E, as before). Publishers: i % E.
    uint32_t slot = p.publisher ? p.index
                                : p.index / static_cast<uint32_t>(opt_.rooms) + p.index % static_cast<uint32_t>(opt_.rooms);
    const Endpoint* ep = &common_.endpoints[slot % common_.endpoints.size()];
    p.client = new Client(&loop_, this, ep, static_cast<uint32_t>(i));
    settingup_++;
    p.client->start();  // may report a failure at once (on_closed)
  }
}

void Fanout::on_open(Client& c) {
  Peer& p = peers_[c.index()];
  if (p.publisher) {
    p.ready = true;
    publishers_ready_++;
    settingup_--;
    launch();
    maybe_start();
    return;
  }
  const std::string& room = room_ids_[p.index % static_cast<uint32_t>(opt_.rooms)];
  std::string join = "{\"type\":\"join\",\"roomId\":\"" + room + "\",\"user\":{\"id\":\"m" + std::to_string(p.index) +
                     "\",\"name\":\"member " + std::to_string(p.index) + "\"}}";
  c.send_text(join);
}

void Fanout::on_text(Client& c, std::string_view text) {
  Peer& p = peers_[c.index()];
  if (p.publisher) {
    on_reply(p, text);
    return;
  }
  if (starts(text, "{\"type\":\"chat\"")) {
    on_delivery(p, text);
  } else if (starts(text, "{\"type\":\"presence\"")) {
    presence_++;
  } else if (starts(text, "{\"type\":\"joined\"")) {
    if (!p.ready) {
      p.ready = true;
      if (p.index < static_cast<uint32_t>(opt_.stalled)) c.pause_reading();
      members_ready_++;
      settingup_--;
      launch();
      maybe_start();
    }
  } else if (starts(text, "{\"type\":\"error\"")) {
    errors_[std::string(string_field(text, "code"))]++;
    if (!p.ready) {
      setup_failed_ = true;
      setup_error_ = "join refused: " + std::string(text.substr(0, 200));
      finish("setup failed");
    }
  }
}

void Fanout::on_closed(Client& c, int code, const char* why) {
  Peer& p = peers_[c.index()];
  p.client = nullptr;
  if (phase_ == Phase::Done) return;  // we closed it
  std::string key = std::string(p.publisher ? "publisher " : "member ") + why;
  if (code != 0) key += " " + std::to_string(code);
  closes_[key]++;
  if (phase_ == Phase::Setup) {
    setup_failed_ = true;
    setup_error_ = "connection " + std::to_string(c.index()) + " to " + c.endpoint()->url + " failed during setup: " + why;
    finish("setup failed");
    return;
  }
  if (p.publisher) {
    p.inflight = 0;  // unresolved chats of a closed publisher count neither as acked nor as refused
    if (publishing_done() && phase_ == Phase::Publishing) phase_ = Phase::Draining;
  }
}

void Fanout::maybe_start() {
  if (phase_ != Phase::Setup || members_ready_ < opt_.members || publishers_ready_ < opt_.publishers) return;
  double setup_s = static_cast<double>(uv_hrtime() - t_setup_ns_) / 1e9;
  fprintf(stderr, "fanout: %d members joined and %d publishers open in %.2f s; publishing in 0.3 s\n", opt_.members, opt_.publishers, setup_s);
  // Let the presence events of the last joins settle before the first reading.
  uv_timer_start(&pace_timer_, [](uv_timer_t* t) { static_cast<Fanout*>(t->data)->begin(); }, 300, 0);
}

void Fanout::begin() {
  if (phase_ != Phase::Setup) return;
  metrics_before_ = fetch_all(common_.endpoints, &metrics_ok_, &metrics_error_);
  proc_before_.clear();
  for (pid_t pid : common_.pids) proc_before_.push_back(read_proc(pid));
  self_cpu_before_ = self_cpu_seconds();
  machine_before_ = machine_busy_seconds();
  phase_ = Phase::Publishing;
  t_start_ns_ = last_progress_ns_ = last_print_ns_ = uv_hrtime();
  if (opt_.rate > 0) uv_timer_start(&pace_timer_, [](uv_timer_t* t) { static_cast<Fanout*>(t->data)->pump_all(); }, 1, 1);
  pump_all();
}

void Fanout::pump_all() {
  for (size_t i = static_cast<size_t>(opt_.members); i < peers_.size(); i++) pump(peers_[i]);
}

void Fanout::pump(Peer& p) {
  if (phase_ != Phase::Publishing || !p.client) return;
  uint64_t allowed = static_cast<uint64_t>(opt_.messages);
  if (opt_.rate > 0) {
    double per_pub = opt_.rate / opt_.publishers;
    double elapsed = static_cast<double>(uv_hrtime() - t_start_ns_) / 1e9;
    allowed = std::min<uint64_t>(allowed, static_cast<uint64_t>(per_pub * elapsed) + 1);
  }
  while (p.client && p.sent < allowed && p.inflight < static_cast<uint32_t>(opt_.window)) send_chat(p);
}

void Fanout::send_chat(Peer& p) {
  uint32_t seq = ++p.sent;
  p.inflight++;
  char head[80];
  int n = snprintf(head, sizeof(head), "%" PRIu64 " %u %u ", uv_hrtime(), p.index, seq);
  msg_buf_.assign("{\"type\":\"chat\",\"roomId\":\"");
  msg_buf_.append(room_ids_[room_of_chat(p.index, seq)]);
  msg_buf_.append("\",\"ref\":");
  msg_buf_.append(std::to_string(seq));
  msg_buf_.append(",\"message\":\"");
  msg_buf_.append(head, static_cast<size_t>(n));
  if (opt_.size > n) msg_buf_.append(static_cast<size_t>(opt_.size - n), 'x');
  msg_buf_.append("\"}");
  p.client->send_text(msg_buf_);
}

void Fanout::on_reply(Peer& p, std::string_view text) {
  bool ack = starts(text, "{\"type\":\"ack\"");
  bool err = !ack && starts(text, "{\"type\":\"error\"");
  if (err) errors_[std::string(string_field(text, "code"))]++;
  if (!ack && !err) return;
  int64_t ref = ref_of(text);
  if (ref <= 0 || ref > static_cast<int64_t>(p.sent) || p.inflight == 0) return;
  if (ack) {
    p.acked++;
    room_acked_[room_of_chat(p.index, static_cast<uint64_t>(ref))]++;
  } else {
    p.refused++;
  }
  p.inflight--;
  t_last_ack_ns_ = uv_hrtime();
  if (publishing_done()) {
    if (phase_ == Phase::Publishing) phase_ = Phase::Draining;
  } else {
    pump(p);
  }
}

void Fanout::on_delivery(Peer& m, std::string_view text) {
  if (m.index < static_cast<uint32_t>(opt_.stalled)) return;  // bytes read before the pause took effect
  uint64_t now = uv_hrtime();
  received_++;
  size_t pos = text.find("\"message\":\"");
  uint64_t t = 0, pub = 0, seq = 0;
  if (pos == std::string_view::npos) {
    foreign_++;
    return;
  }
  pos += 11;
  if (!read_uint(text, &pos, &t) || ++pos > text.size() || !read_uint(text, &pos, &pub) || ++pos > text.size() ||
      !read_uint(text, &pos, &seq) || pub >= static_cast<uint64_t>(opt_.publishers) || seq == 0 ||
      seq > static_cast<uint64_t>(opt_.messages) || t > now || t < t_start_ns_) {
    foreign_++;  // not one of this run's chats
    return;
  }
  if (room_of_chat(static_cast<uint32_t>(pub), seq) != m.index % static_cast<uint32_t>(opt_.rooms)) {
    misrouted_++;  // a chat of another room
    return;
  }
  uint32_t& last = last_seq_[static_cast<size_t>(m.index) * static_cast<size_t>(opt_.publishers) + pub];
  if (seq <= last) {
    out_of_order_++;  // a repeat or an overtaken chat: a broken room order
    return;
  }
  last = static_cast<uint32_t>(seq);
  valid_++;
  uint64_t us = (now - t) / 1000;
  latency_us_.push_back(us > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(us));
  t_last_delivery_ns_ = last_progress_ns_ = now;
}

uint64_t Fanout::expected() const {
  uint64_t n = 0;
  for (size_t r = 0; r < room_acked_.size(); r++) n += room_acked_[r] * room_reading_[r];
  return n;
}

bool Fanout::publishing_done() const {
  for (size_t i = static_cast<size_t>(opt_.members); i < peers_.size(); i++) {
    const Peer& p = peers_[i];
    if (p.client && (p.sent < static_cast<uint32_t>(opt_.messages) || p.inflight > 0)) return false;
  }
  return true;
}

void Fanout::watch() {
  if (phase_ == Phase::Setup || phase_ == Phase::Done) return;
  uint64_t now = uv_hrtime();
  if (now - last_print_ns_ >= 2000000000ULL) {
    last_print_ns_ = now;
    uint64_t sent = 0, acked = 0;
    for (size_t i = static_cast<size_t>(opt_.members); i < peers_.size(); i++) {
      sent += peers_[i].sent;
      acked += peers_[i].acked;
    }
    fprintf(stderr, "fanout: %.1f s: sent %" PRIu64 ", acked %" PRIu64 ", delivered %" PRIu64 "\n",
            static_cast<double>(now - t_start_ns_) / 1e9, sent, acked, valid_);
  }
  if (phase_ != Phase::Draining) return;
  if (valid_ >= expected()) {
    finish("all delivered");
    return;
  }
  uint64_t since = std::max(last_progress_ns_, t_last_ack_ns_);
  if (static_cast<double>(now - since) / 1e9 >= opt_.drain_s) finish("no delivery for the drain period");
}

void Fanout::finish(const char* why) {
  if (phase_ == Phase::Done) return;
  bool measured = phase_ != Phase::Setup;
  phase_ = Phase::Done;
  end_reason_ = why;
  t_end_ns_ = uv_hrtime();
  if (measured) {
    self_cpu_after_ = self_cpu_seconds();
    machine_after_ = machine_busy_seconds();
    proc_after_.clear();
    for (pid_t pid : common_.pids) proc_after_.push_back(read_proc(pid));
    metrics_after_ = fetch_all(common_.endpoints, &metrics_ok_, &metrics_error_);
  }
  for (Peer& p : peers_)
    if (p.client) p.client->close("bench done");
  for (uv_handle_t* h : {reinterpret_cast<uv_handle_t*>(&watch_timer_), reinterpret_cast<uv_handle_t*>(&pace_timer_),
                         reinterpret_cast<uv_handle_t*>(&limit_timer_), reinterpret_cast<uv_handle_t*>(&sigint_),
                         reinterpret_cast<uv_handle_t*>(&sigterm_)})
    uv_close(h, nullptr);
}

int Fanout::report() {
  uint64_t sent = 0, acked = 0, refused = 0;
  for (size_t i = static_cast<size_t>(opt_.members); i < peers_.size(); i++) {
    sent += peers_[i].sent;
    acked += peers_[i].acked;
    refused += peers_[i].refused;
  }
  uint64_t exp = expected();
  uint64_t lost = exp > valid_ ? exp - valid_ : 0;
  std::string endpoints;
  for (const Endpoint& ep : common_.endpoints) endpoints += (endpoints.empty() ? "" : ", ") + ep.url;
  printf("roomcast-bench fanout%s%s\n", common_.label.empty() ? "" : ": ", common_.label.c_str());
  if (opt_.rooms == 1)
    printf("  setup       %d members in room %s, %d publish-only connections, spread over %s\n", opt_.members,
           opt_.room.c_str(), opt_.publishers, endpoints.c_str());
  else
    printf("  setup       %d members in %d rooms %s .. %s (member i in room i %% %d), %d publish-only connections\n"
           "              (chat s of publisher p to room (p + s) %% %d), spread over %s\n",
           opt_.members, opt_.rooms, room_ids_.front().c_str(), room_ids_.back().c_str(), opt_.rooms, opt_.publishers,
           opt_.rooms, endpoints.c_str());
  if (opt_.stalled > 0)
    printf("  stalled     %d of the members stop reading once joined (expected to be closed as slow consumers)\n", opt_.stalled);
  printf("  load        %d chats per publisher, %d bytes each, window %d, rate %s\n", opt_.messages, opt_.size, opt_.window,
         opt_.rate > 0 ? (std::to_string(static_cast<long>(opt_.rate)) + "/s").c_str() : "unlimited (window-bound)");
  if (setup_failed_ || t_start_ns_ == 0) {
    printf("  FAILED      %s (%s)\n", setup_error_.empty() ? "setup did not complete" : setup_error_.c_str(), end_reason_);
    printf("RESULT mode=fanout label=%s status=setup_failed\n", common_.label.c_str());
    return 2;
  }
  double pub_s = static_cast<double>((t_last_ack_ns_ ? t_last_ack_ns_ : t_end_ns_) - t_start_ns_) / 1e9;
  double del_s = static_cast<double>((t_last_delivery_ns_ ? t_last_delivery_ns_ : t_end_ns_) - t_start_ns_) / 1e9;
  double per_s = del_s > 0 ? static_cast<double>(valid_) / del_s : 0;
  std::string errs;
  uint64_t err_total = 0;
  for (const auto& [code, n] : errors_) {
    errs += (errs.empty() ? "" : ", ") + code + " " + std::to_string(n);
    err_total += n;
  }
  printf("  published   %" PRIu64 " sent, %" PRIu64 " acked, %" PRIu64 " refused, %.0f chats/s acked\n", sent, acked, refused,
         pub_s > 0 ? static_cast<double>(acked) / pub_s : 0);
  printf("  deliveries  expected %" PRIu64 " (to the %d reading members%s), received %" PRIu64 " %s", exp,
         opt_.members - opt_.stalled, opt_.rooms > 1 ? " of each chat's room" : "", valid_,
         lost == 0 ? "(none lost)" : ("(LOST " + std::to_string(lost) + ")").c_str());
  if (out_of_order_ || foreign_) printf(", %" PRIu64 " out of order or repeated, %" PRIu64 " unrecognised", out_of_order_, foreign_);
  if (misrouted_) printf(", %" PRIu64 " MISROUTED (a chat of another room)", misrouted_);
  printf("\n  throughput  %.0f deliveries/s (%" PRIu64 " in %.2f s, first send to last delivery)\n", per_s, valid_, del_s);
  double p50 = quantile(latency_us_, 0.50) / 1000, p90 = quantile(latency_us_, 0.90) / 1000,
         p99 = quantile(latency_us_, 0.99) / 1000, mx = quantile(latency_us_, 1.0) / 1000;
  printf("  latency     publish -> delivery, ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  (%zu samples)\n", p50, p90, p99, mx,
         latency_us_.size());
  printf("  errors      %s\n", errs.empty() ? "none" : errs.c_str());
  if (!closes_.empty()) {
    std::string cl;
    for (const auto& [k, n] : closes_) cl += (cl.empty() ? "" : ", ") + k + " x" + std::to_string(n);
    printf("  closed      %s\n", cl.c_str());
  }
  double drops = metric(metrics_after_, "roomcast_slow_consumer_drops_total") - metric(metrics_before_, "roomcast_slow_consumer_drops_total");
  double limited = metric(metrics_after_, "roomcast_rate_limited_total") - metric(metrics_before_, "roomcast_rate_limited_total");
  double out = metric(metrics_after_, "roomcast_messages_out_total") - metric(metrics_before_, "roomcast_messages_out_total");
  double s50 = histogram_quantile(metrics_before_, metrics_after_, 0.5), s99 = histogram_quantile(metrics_before_, metrics_after_, 0.99);
  if (metrics_ok_)
    printf("  /metrics    slow-consumer drops %.0f, rate_limited %.0f, messages_out +%.0f, server publish->fan-out p50 <= %g ms, p99 <= %g ms\n",
           drops, limited, out, s50, s99);
  else
    printf("  /metrics    unreadable: %s\n", metrics_error_.c_str());
  double wall = static_cast<double>(t_end_ns_ - t_start_ns_) / 1e9;
  int ours = static_cast<int>((self_cpu_after_ - self_cpu_before_) / wall * 100);
  std::string cpu = "bench " + std::to_string(ours) + "%";
  std::string cpu_kv = "cpu_bench=" + std::to_string(static_cast<int>((self_cpu_after_ - self_cpu_before_) / wall * 100));
  for (size_t i = 0; i < common_.pids.size() && i < proc_before_.size() && i < proc_after_.size(); i++) {
    if (!proc_before_[i].ok || !proc_after_[i].ok) continue;
    int pct = static_cast<int>((proc_after_[i].cpu_s - proc_before_[i].cpu_s) / wall * 100);
    ours += pct;
    cpu += ", " + proc_after_[i].comm + "[" + std::to_string(common_.pids[i]) + "] " + std::to_string(pct) + "%";
    cpu_kv += " cpu_" + proc_after_[i].comm + "_" + std::to_string(common_.pids[i]) + "=" + std::to_string(pct);
    char secs[32];
    snprintf(secs, sizeof(secs), "%.3f", proc_after_[i].cpu_s - proc_before_[i].cpu_s);
    cpu_kv += " cpusec_" + proc_after_[i].comm + "_" + std::to_string(common_.pids[i]) + "=" + secs;
  }
  int machine = static_cast<int>((machine_after_ - machine_before_) / wall * 100);
  if (machine < ours) machine = ours;  // clock-tick rounding of short runs: "outside" is never below zero
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  printf("  cpu         %s of one core over %.2f s; the machine: %d%% of %ld00%% busy (%d%% outside the processes named:\n"
         "              kernel softirq work of loopback, other programs)\n",
         cpu.c_str(), wall, machine, cores, machine - ours);
  cpu_kv += " cpu_machine=" + std::to_string(machine) + " cpu_other=" + std::to_string(machine - ours);
  printf("  ended       %s\n", end_reason_);
  printf("RESULT mode=fanout label=%s status=%s members=%d publishers=%d sent=%" PRIu64 " acked=%" PRIu64 " expected=%" PRIu64
         " received=%" PRIu64 " lost=%" PRIu64 " stalled=%d out_of_order=%" PRIu64 " deliveries_per_s=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f errors=%" PRIu64
         " slow_consumer_drops=%.0f %s rooms=%d misrouted=%" PRIu64 " chats_per_s=%.0f publish_s=%.3f delivery_s=%.3f wall_s=%.3f\n",
         common_.label.c_str(),
         lost == 0 && out_of_order_ == 0 && misrouted_ == 0 && std::string(end_reason_) == "all delivered" ? "ok" : "incomplete",
         opt_.members, opt_.publishers, sent, acked, exp, valid_, lost, opt_.stalled, out_of_order_, per_s, p50, p90, p99, mx, err_total, drops,
         cpu_kv.c_str(), opt_.rooms, misrouted_, pub_s > 0 ? static_cast<double>(acked) / pub_s : 0, pub_s, del_s, wall);
  fflush(stdout);
  if (std::string(end_reason_) == "time limit") return 2;
  return lost == 0 && out_of_order_ == 0 && misrouted_ == 0 ? 0 : 3;
}

}  // namespace

int run_fanout(const CommonOptions& common, const FanoutOptions& opt) {
  FanoutOptions o = opt;
  if (o.room.empty()) o.room = "bench-" + std::to_string(getpid()) + "-" + std::to_string(uv_hrtime() % 1000000000ULL);
  auto f = std::make_unique<Fanout>(common, o);
  return f->run();
}

}  // namespace roomcast::bench
