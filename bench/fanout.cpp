// Fan-out scenario: N members join one room (or R rooms), P publish-only connections (or, with --talk,
// every member) send M chats each, every chat carries its send time (monotonic ns) and every member
// times its delivery. Speaks roomcast's JSON, Socket.IO's Engine.IO v4 and nchan's (HTTP POST) dialects.
// Rooms are ROOM-0 .. ROOM-(R-1), or named one by one (--room a,b,c).
// Rule: deliveries expected = chats acked x reading members of the chat's room; anything less is
// reported as lost, never hidden; a chat delivered to a member of another room is misrouted and fails
// the run.
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

enum class Dia { Roomcast, SocketIo, Nchan };

struct Peer {
  Client* client = nullptr;   // nullptr once closed
  bool publisher = false;     // a publish-only connection
  bool sender = false;        // sends chats: a publisher, or any member with --talk
  uint32_t index = 0;         // member number or publisher number
  uint32_t id = 0;            // sender number written into its chats (publisher or member number)
  bool ready = false;         // member: `joined` seen; publisher: open
  // Senders only.
  uint32_t sent = 0, acked = 0, refused = 0, inflight = 0;
  std::string http_in;        // nchan publisher: bytes of responses not yet complete
};

// Replaces "{room}" in a path template.
std::string with_room(const std::string& path, const std::string& room) {
  std::string out = path;
  size_t p = out.find("{room}");
  if (p != std::string::npos) out.replace(p, 6, room);
  return out;
}

class Fanout : public ClientEvents {
 public:
  Fanout(const CommonOptions& common, const FanoutOptions& opt) : common_(common), opt_(opt) {}
  int run();

  void on_open(Client& c) override;
  void on_text(Client& c, std::string_view text) override;
  void on_closed(Client& c, int code, const char* why) override;
  void on_raw(Client& c, const char* data, size_t len) override;

 private:
  const std::string& room_name(uint32_t r) const { return room_ids_[r]; }
  uint32_t member_room(const Peer& p) const { return p.index % static_cast<uint32_t>(opt_.rooms); }
  // The room of a sender's chat number seq.
  uint32_t chat_room(const Peer& p, uint32_t seq) const {
    return p.publisher ? (p.index + seq) % static_cast<uint32_t>(opt_.rooms) : member_room(p);
  }
  // The same from what a delivery carries: sender number (publisher or member) and seq.
  uint32_t chat_room_of(uint64_t sender, uint64_t seq) const {
    return static_cast<uint32_t>((opt_.talk ? sender : sender + seq) % static_cast<uint64_t>(opt_.rooms));
  }
  void resolved(Peer& p, uint32_t seq, bool ack);
  enum class Phase { Setup, Publishing, Draining, Done };
  void launch();
  void member_ready(Client& c, Peer& p);
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

  Dia dia_ = Dia::Roomcast;
  int senders_ = 0;                      // publishers, or members with --talk
  uint32_t slots_ = 0;                   // senders a member can hear from: P, or the largest room with --talk
  std::vector<std::string> room_ids_;    // [room]: its id
  std::vector<uint64_t> room_acked_;     // chats acked per room
  std::vector<uint32_t> room_readers_;   // reading (not stalled) members per room
  std::vector<uint32_t> last_seq_;       // [member * slots + sender slot]: highest seq delivered
  std::vector<uint32_t> latency_us_;     // one sample per delivery
  uint64_t received_ = 0, valid_ = 0, out_of_order_ = 0, presence_ = 0, foreign_ = 0, misrouted_ = 0;
  std::map<std::string, uint64_t> errors_;   // error code -> count (members and publishers)
  std::map<std::string, uint64_t> closes_;   // why a connection ended before the run did
  uint64_t t_setup_ns_ = 0, t_start_ns_ = 0, t_last_ack_ns_ = 0, t_last_delivery_ns_ = 0, t_end_ns_ = 0;
  uint64_t last_progress_ns_ = 0, last_print_ns_ = 0;
  std::string msg_buf_;                  // reused JSON of one chat
  uint64_t sent_total_ = 0;              // --talk with --rate: chats handed out so far
  size_t cursor_ = 0;                    // --talk with --rate: next sender to offer a chat

  MetricsMap metrics_before_, metrics_after_;
  bool metrics_ok_ = true;
  std::string metrics_error_;
  std::vector<ProcSample> proc_setup_, proc_before_, proc_after_;
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
  dia_ = opt_.dialect == "socketio" ? Dia::SocketIo : opt_.dialect == "nchan" ? Dia::Nchan : Dia::Roomcast;
  if (opt_.talk) opt_.publishers = 0;
  peers_.resize(static_cast<size_t>(opt_.members + opt_.publishers));
  if (opt_.room.find(',') != std::string::npos) {  // a list of room ids, one per room (main() checked the count)
    size_t from = 0;
    while (from <= opt_.room.size()) {
      size_t comma = std::min(opt_.room.find(',', from), opt_.room.size());
      room_ids_.push_back(opt_.room.substr(from, comma - from));
      from = comma + 1;
    }
  } else {
    for (int r = 0; r < opt_.rooms; r++) room_ids_.push_back(opt_.rooms == 1 ? opt_.room : opt_.room + "-" + std::to_string(r));
  }
  room_acked_.assign(static_cast<size_t>(opt_.rooms), 0);
  room_readers_.assign(static_cast<size_t>(opt_.rooms), 0);
  for (int i = 0; i < opt_.members + opt_.publishers; i++) {
    Peer& p = peers_[static_cast<size_t>(i)];
    p.publisher = i >= opt_.members;
    p.index = static_cast<uint32_t>(p.publisher ? i - opt_.members : i);
    p.sender = p.publisher || opt_.talk;
    p.id = p.index;
    if (!p.publisher && p.index >= static_cast<uint32_t>(opt_.stalled)) room_readers_[member_room(p)]++;
  }
  senders_ = opt_.talk ? opt_.members : opt_.publishers;
  slots_ = opt_.talk ? static_cast<uint32_t>((opt_.members + opt_.rooms - 1) / opt_.rooms) : static_cast<uint32_t>(opt_.publishers);
  last_seq_.assign(static_cast<size_t>(opt_.members) * slots_, 0);
  uint64_t reads = 0;
  for (uint32_t r : room_readers_) reads += r;
  latency_us_.reserve(static_cast<size_t>(std::min<uint64_t>(
      reads * static_cast<uint64_t>(opt_.messages) * static_cast<uint64_t>(std::max(senders_, 1)) / static_cast<uint64_t>(opt_.rooms), 200000000ULL)));
  for (pid_t pid : common_.pids) proc_setup_.push_back(read_proc(pid));

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
    // Member i is the k-th (k = i / rooms) of room r = i % rooms and goes to endpoint (k + r) % E: every
    // room's members alternate over the endpoints, and rooms smaller than E still load them all evenly
    // (with one room: member i on endpoint i % E). Publishers: i % E.
    size_t e = p.publisher ? p.index
                           : p.index / static_cast<uint32_t>(opt_.rooms) + p.index % static_cast<uint32_t>(opt_.rooms);
    const Endpoint* ep = &common_.endpoints[e % common_.endpoints.size()];
    p.client = new Client(&loop_, this, ep, static_cast<uint32_t>(i));
    if (dia_ == Dia::SocketIo) p.client->set_dialect(Dialect::EngineIo);
    if (dia_ == Dia::Nchan) {
      if (p.publisher) p.client->set_dialect(Dialect::Raw);
      else p.client->set_path(with_room(ep->path, room_name(member_room(p))));
    }
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
  if (dia_ == Dia::Nchan) {  // subscribed by the upgrade itself
    member_ready(c, p);
    return;
  }
  std::string room = room_name(member_room(p));
  if (dia_ == Dia::SocketIo) {
    c.send_text("420[\"join\",\"" + room + "\"]");  // ack id 0: chats use their seq (from 1)
    return;
  }
  std::string join = "{\"type\":\"join\",\"roomId\":\"" + room + "\",\"user\":{\"id\":\"m" + std::to_string(p.index) +
                     "\",\"name\":\"member " + std::to_string(p.index) + "\"}}";
  c.send_text(join);
}

void Fanout::member_ready(Client& c, Peer& p) {
  if (p.ready) return;
  p.ready = true;
  if (p.index < static_cast<uint32_t>(opt_.stalled)) c.pause_reading();
  members_ready_++;
  settingup_--;
  launch();
  maybe_start();
}

void Fanout::on_text(Client& c, std::string_view text) {
  Peer& p = peers_[c.index()];
  if (dia_ == Dia::Nchan) {
    if (!p.publisher) on_delivery(p, text);
    return;
  }
  if (dia_ == Dia::SocketIo) {
    if (starts(text, "42[\"chat\"")) {
      if (!p.publisher) on_delivery(p, text);
    } else if (starts(text, "430")) {
      if (!p.publisher) member_ready(c, p);
    } else if (starts(text, "43") && p.sender) {
      size_t pos = 2;
      uint64_t ref = 0;
      if (read_uint(text, &pos, &ref) && ref > 0 && ref <= p.sent && p.inflight > 0) resolved(p, static_cast<uint32_t>(ref), true);
    }
    return;
  }
  if (p.publisher) {
    on_reply(p, text);
    return;
  }
  if (starts(text, "{\"type\":\"chat\"")) {
    on_delivery(p, text);
  } else if (starts(text, "{\"type\":\"presence\"")) {
    presence_++;
  } else if (starts(text, "{\"type\":\"joined\"")) {
    member_ready(c, p);
  } else if (p.sender && (starts(text, "{\"type\":\"ack\"") || (p.ready && starts(text, "{\"type\":\"error\"")))) {
    on_reply(p, text);
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
  if (p.sender) {
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
  if (!opt_.talk || opt_.rate <= 0) {
    for (size_t i = opt_.talk ? 0 : static_cast<size_t>(opt_.members); i < peers_.size(); i++) pump(peers_[i]);
    return;
  }
  // Many senders at a total rate: hand out this tick's chats round-robin, O(chats) rather than
  // O(senders) per 1 ms tick (the bench must not be what limits rooms where everyone talks).
  if (phase_ != Phase::Publishing) return;
  double elapsed = static_cast<double>(uv_hrtime() - t_start_ns_) / 1e9;
  uint64_t allowed = std::min<uint64_t>(static_cast<uint64_t>(opt_.rate * elapsed) + 1,
                                        static_cast<uint64_t>(opt_.messages) * static_cast<uint64_t>(senders_));
  size_t misses = 0;
  while (sent_total_ < allowed && misses < static_cast<size_t>(senders_)) {
    Peer& p = peers_[cursor_];
    cursor_ = (cursor_ + 1) % static_cast<size_t>(senders_);
    if (p.client && p.sent < static_cast<uint32_t>(opt_.messages) && p.inflight < static_cast<uint32_t>(opt_.window)) {
      send_chat(p);
      sent_total_++;
      misses = 0;
    } else {
      misses++;
    }
  }
}

// nchan publishers: pipelined HTTP responses, one per POST, in order; 2xx is an ack.
void Fanout::on_raw(Client& c, const char* data, size_t len) {
  Peer& p = peers_[c.index()];
  p.http_in.append(data, len);
  for (;;) {
    size_t end = p.http_in.find("\r\n\r\n");
    if (end == std::string::npos) return;
    size_t body = 0, cl = p.http_in.find("Content-Length:");
    if (cl == std::string::npos) cl = p.http_in.find("content-length:");
    if (cl != std::string::npos && cl < end) {
      size_t pos = cl + 15;
      while (pos < end && p.http_in[pos] == ' ') pos++;
      uint64_t v = 0;
      if (read_uint(p.http_in, &pos, &v)) body = static_cast<size_t>(v);
    }
    if (p.http_in.size() < end + 4 + body) return;
    bool ok = p.http_in.size() > 9 && p.http_in[9] == '2';
    if (!ok) errors_["http " + p.http_in.substr(9, 3)]++;
    p.http_in.erase(0, end + 4 + body);
    if (p.inflight > 0) resolved(p, p.acked + p.refused + 1, ok);
  }
}

void Fanout::pump(Peer& p) {
  if (phase_ != Phase::Publishing || !p.client) return;
  if (opt_.talk && opt_.rate > 0) return;  // pump_all hands out the chats
  uint64_t allowed = static_cast<uint64_t>(opt_.messages);
  if (opt_.rate > 0) {
    double per_pub = opt_.rate / senders_;
    double elapsed = static_cast<double>(uv_hrtime() - t_start_ns_) / 1e9;
    allowed = std::min<uint64_t>(allowed, static_cast<uint64_t>(per_pub * elapsed) + 1);
  }
  while (p.client && p.sent < allowed && p.inflight < static_cast<uint32_t>(opt_.window)) send_chat(p);
}

void Fanout::send_chat(Peer& p) {
  uint32_t seq = ++p.sent;
  p.inflight++;
  char head[80];
  int n = snprintf(head, sizeof(head), "%" PRIu64 " %u %u ", uv_hrtime(), p.id, seq);
  const std::string& room = room_name(chat_room(p, seq));
  std::string text(head, static_cast<size_t>(n));
  if (opt_.size > n) text.append(static_cast<size_t>(opt_.size - n), 'x');
  if (dia_ == Dia::Nchan) {
    const Endpoint* ep = p.client->endpoint();
    p.client->send_raw("POST " + with_room(ep->path, room) + " HTTP/1.1\r\nHost: " + ep->host_port +
                       "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(text.size()) + "\r\n\r\n" + text);
    return;
  }
  if (dia_ == Dia::SocketIo) {
    p.client->send_text("42" + std::to_string(seq) + "[\"chat\",{\"room\":\"" + room + "\",\"message\":\"" + text + "\"}]");
    return;
  }
  msg_buf_.assign("{\"type\":\"chat\",\"roomId\":\"");
  msg_buf_.append(room);
  msg_buf_.append("\",\"ref\":");
  msg_buf_.append(std::to_string(seq));
  msg_buf_.append(",\"message\":\"");
  msg_buf_.append(text);
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
  resolved(p, static_cast<uint32_t>(ref), ack);
}

void Fanout::resolved(Peer& p, uint32_t seq, bool ack) {
  if (ack) {
    p.acked++;
    room_acked_[chat_room(p, seq)]++;
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
  size_t pos = dia_ == Dia::Nchan ? 0 : text.find("\"message\":\"");
  uint64_t t = 0, pub = 0, seq = 0;
  if (pos == std::string_view::npos) {
    foreign_++;
    return;
  }
  if (dia_ != Dia::Nchan) pos += 11;
  if (!read_uint(text, &pos, &t) || ++pos > text.size() || !read_uint(text, &pos, &pub) || ++pos > text.size() ||
      !read_uint(text, &pos, &seq) || pub >= static_cast<uint64_t>(senders_) || seq == 0 ||
      seq > static_cast<uint64_t>(opt_.messages) || t > now || t < t_start_ns_) {
    foreign_++;  // not one of this run's chats
    return;
  }
  if (chat_room_of(pub, seq) != member_room(m)) {
    misrouted_++;  // a chat of another room
    return;
  }
  uint64_t slot = opt_.talk ? pub / static_cast<uint64_t>(opt_.rooms) : pub;
  if (slot >= slots_) {
    foreign_++;
    return;
  }
  uint32_t& last = last_seq_[static_cast<size_t>(m.index) * slots_ + slot];
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
  uint64_t total = 0;
  for (size_t r = 0; r < room_acked_.size(); r++) total += room_acked_[r] * room_readers_[r];
  return total;
}

bool Fanout::publishing_done() const {
  for (size_t i = opt_.talk ? 0 : static_cast<size_t>(opt_.members); i < peers_.size(); i++) {
    const Peer& p = peers_[i];
    if (p.sender && p.client && (p.sent < static_cast<uint32_t>(opt_.messages) || p.inflight > 0)) return false;
  }
  return true;
}

void Fanout::watch() {
  if (phase_ == Phase::Setup || phase_ == Phase::Done) return;
  uint64_t now = uv_hrtime();
  if (now - last_print_ns_ >= 2000000000ULL) {
    last_print_ns_ = now;
    uint64_t sent = 0, acked = 0;
    for (size_t i = 0; i < peers_.size(); i++) {
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
  for (size_t i = 0; i < peers_.size(); i++) {
    sent += peers_[i].sent;
    acked += peers_[i].acked;
    refused += peers_[i].refused;
  }
  uint64_t exp = expected();
  uint64_t lost = exp > valid_ ? exp - valid_ : 0;
  std::string endpoints;
  for (const Endpoint& ep : common_.endpoints) endpoints += (endpoints.empty() ? "" : ", ") + ep.url;
  printf("roomcast-bench fanout%s%s\n", common_.label.empty() ? "" : ": ", common_.label.c_str());
  std::string rooms_text = opt_.rooms == 1 ? "room " + room_ids_.front()
                                             : std::to_string(opt_.rooms) + " rooms " + room_ids_.front() + " .. " + room_ids_.back() +
                                                   " (member i in room i % " + std::to_string(opt_.rooms) + ")";
  printf("  setup       %d members in %s, %s, spread over %s (dialect %s)\n", opt_.members, rooms_text.c_str(),
         opt_.talk ? "every member publishing" : (std::to_string(opt_.publishers) + " publish-only connections").c_str(), endpoints.c_str(),
         opt_.dialect.c_str());
  if (opt_.stalled > 0)
    printf("  stalled     %d of the members stop reading once joined (expected to be closed as slow consumers)\n", opt_.stalled);
  printf("  load        %d chats per sender, %d bytes each, window %d, rate %s\n", opt_.messages, opt_.size, opt_.window,
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
  printf("  deliveries  expected %" PRIu64 " (acked chats x the reading members of their room), received %" PRIu64 " %s", exp,
         valid_, lost == 0 ? "(none lost)" : ("(LOST " + std::to_string(lost) + ")").c_str());
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
    char secs[32];  // seconds of CPU (utime+stime) over the run: cluster.sh and bench.py divide it by chats, deliveries
    snprintf(secs, sizeof secs, "%.3f", proc_after_[i].cpu_s - proc_before_[i].cpu_s);
    cpu_kv += " cpusec_" + proc_after_[i].comm + "_" + std::to_string(common_.pids[i]) + "=" + secs;
  }
  // CPU-normalised figures: utime+stime of every --pid (servers and Redis), per delivery and per join.
  double srv_cpu = 0, setup_cpu = 0;
  for (size_t i = 0; i < proc_before_.size() && i < proc_after_.size(); i++)
    if (proc_before_[i].ok && proc_after_[i].ok) srv_cpu += proc_after_[i].cpu_s - proc_before_[i].cpu_s;
  for (size_t i = 0; i < proc_setup_.size() && i < proc_before_.size(); i++)
    if (proc_setup_[i].ok && proc_before_[i].ok) setup_cpu += proc_before_[i].cpu_s - proc_setup_[i].cpu_s;
  double setup_s = static_cast<double>(t_start_ns_ - t_setup_ns_) / 1e9 - 0.3;
  if (!common_.pids.empty()) {
    printf("  per unit    server+Redis CPU %.3f us per delivery (%.3f s over %" PRIu64 "); setup: %.2f s, %.1f us of CPU per member joined\n",
           valid_ ? srv_cpu * 1e6 / static_cast<double>(valid_) : 0.0, srv_cpu, valid_, setup_s,
           opt_.members ? setup_cpu * 1e6 / opt_.members : 0.0);
  }
  char extra[512];
  snprintf(extra, sizeof extra,
           " dialect=%s rooms=%d talk=%d misrouted=%" PRIu64 " chats_per_s=%.0f publish_s=%.3f delivery_s=%.3f srv_cpu_s=%.3f"
           " cpu_us_per_delivery=%.4f setup_s=%.3f join_cpu_us=%.2f wall_s=%.3f presence=%" PRIu64,
           opt_.dialect.c_str(), opt_.rooms, opt_.talk ? 1 : 0, misrouted_, pub_s > 0 ? static_cast<double>(acked) / pub_s : 0, pub_s,
           del_s, srv_cpu, valid_ ? srv_cpu * 1e6 / static_cast<double>(valid_) : 0.0, setup_s,
           opt_.members ? setup_cpu * 1e6 / opt_.members : 0.0, wall, presence_);
  cpu_kv += extra;
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
         " slow_consumer_drops=%.0f %s\n",
         common_.label.c_str(),
         lost == 0 && out_of_order_ == 0 && misrouted_ == 0 && std::string(end_reason_) == "all delivered" ? "ok" : "incomplete",
         opt_.members, opt_.publishers, sent, acked, exp, valid_, lost, opt_.stalled, out_of_order_, per_s, p50, p90, p99, mx, err_total, drops,
         cpu_kv.c_str());
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
