// redis/cluster.cpp: the Redis Cluster client: slot map, nodes, routed commands, sharded subscriptions.
// Rule: Node objects are only ever retired to a graveyard emptied from the timer, never freed inside their own
// callbacks; user callbacks run after the client's state is consistent again.
#include "redis/cluster.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <utility>

#include "redis/owner_calls.h"
#include "redis/resp.h"
#include "redis/resp_conn.h"
#include "redis/slots.h"
#include "redis/subscriptions.h"

namespace roomcast::redis {

namespace {

constexpr int kMaxRedirects = 5;           // MOVED/ASK followed per command
constexpr uint64_t kTryAgainMs = 1000;     // TRYAGAIN (a slot half migrated) retried this long (a chat expires after 1 s anyway)
constexpr uint64_t kRefreshMs = 5000;      // slot map refresh when all is well
constexpr uint64_t kRefreshFastMs = 500;   // ... and while a wanted channel has no reachable owner
constexpr uint64_t kRefreshMinMs = 100;    // ... and never more often (nodes disagree for a moment mid-migration)

// One command of the caller's, kept formatted so that a redirect sends the same bytes again.
struct Cmd {
  std::string resp;            // the command in RESP
  uint16_t slot = 0;           // its first key's slot (keyed only)
  bool keyed = false;          // routed by slot; else to any node
  bool publish = false;        // counted as a publish on the node it goes to
  int redirects = 0;           // MOVED/ASK followed so far
  uint64_t retry_until = 0;    // TRYAGAIN: retried until then (0: not yet refused)
  bool asking = false;         // sent after ASKING (one command, on the ASK target)
  std::string key;             // its routing key (publishes only: for on_asked_publish)
  ReplyCallback cb;            // called exactly once
};

// What a reply on a command connection answers, in send order.
enum class Entry : uint8_t { Setup, Ignore, Probe, Slots, User };
struct Inflight {
  Entry kind;
  std::unique_ptr<Cmd> cmd;  // User only
};

// An SSUBSCRIBE/SUNSUBSCRIBE sent on a subscribe connection, answer not yet seen.
struct SubSent {
  bool subscribe;
  std::string channel;
};

enum class NodeState : uint8_t { Connecting, Up, Backoff };

const char* node_state_name(NodeState s) {
  switch (s) {
    case NodeState::Connecting: return "connecting";
    case NodeState::Up: return "up";
    case NodeState::Backoff: return "backoff";
  }
  return "?";
}

std::string_view view(const redisReply* r) { return std::string_view(r->str, r->len); }

}  // namespace

struct ClusterClient::Impl : RespTracker {
  // One node: a command connection and a subscribe connection, rebuilt together.
  struct Node : RespHandler {
    Impl* impl = nullptr;
    std::string ip;
    int port = 0;
    std::string addr;                  // "ip:port" (IPv6: "[ip]:port"), its name in logs and metrics
    NodeState state = NodeState::Backoff;
    RespConn* cmd = nullptr;           // commands; null when not connected
    RespConn* sub = nullptr;           // SSUBSCRIBE and the probe; null when not connected
    int cmd_setup_left = 0;            // setup replies still expected on cmd
    int sub_setup_left = 0;            // setup replies still expected on sub (before any push)
    uint64_t connect_started = 0;      // uv_now() of the current attempt
    uint64_t retry_at = 0;             // BACKOFF: next attempt
    uint32_t attempt = 0;              // failed attempts since the last up
    bool ever_up = false;
    std::deque<Inflight> inflight;                 // sent on cmd, in order
    std::vector<std::unique_ptr<Cmd>> waiting;     // redirected here while CONNECTING
    Subscriptions subs;                            // channels wanted on this node
    std::deque<SubSent> sub_sent;                  // answers expected on sub, in order
    std::string probe_channel;                     // a shard channel in a slot it owns ("" if none)
    bool probe_confirmed = false;                  // its SSUBSCRIBE answered on this connection
    struct Probe {
      uint64_t seq, sent_at;
      uint64_t answered_at = 0;                    // when the node ran its SPUBLISH (0: not yet)
    };
    std::deque<Probe> probes;                      // not yet back on sub, oldest first
    uint64_t last_cmd_reply = 0, last_sub_msg = 0;  // uv_now() of the last reply on each connection
    uint64_t probe_seq = 0, last_probe = 0;
    bool suspect = false;                          // the last tick judged a probe timeout (judged again once)
    uint32_t slots = 0;                            // slots it owns in the current map
    uint64_t commands = 0, publishes = 0, reconnects = 0;

    void on_conn_open(RespConn*) override {}
    void on_conn_reply(RespConn* c, redisReply* r) override {
      if (c == cmd) impl->cmd_reply(this, r);
      else if (c == sub) impl->sub_reply(this, r);
    }
    void on_conn_lost(RespConn* c, const char* why) override {
      std::string what = std::string(c == cmd ? "command" : "subscribe") + " connection: " + why;
      if (c == cmd) cmd = nullptr;
      if (c == sub) sub = nullptr;
      impl->drop(this, what.c_str());
    }
  };

  // A channel wanted by the caller.
  struct Chan {
    uint16_t slot = 0;
    Node* node = nullptr;  // the node it is wanted on (its slot's owner when last mapped), or none
    bool lost = false;     // reported lost, not confirmed since
    bool dropped = false;  // Redis ended it on node by itself: subscribe again once the map says where
  };

  Impl(uv_loop_t* loop, std::vector<Url> seeds, Options options, Callbacks callbacks)
      : loop_(loop), seeds_(std::move(seeds)), opt_(std::move(options)), cb_(std::move(callbacks)) {
    rng_.seed(static_cast<unsigned>(std::hash<std::string>()(opt_.instance_id) ^ uv_hrtime()));
    slots_.fill(nullptr);
    if (!seeds_.empty()) {
      user_ = seeds_[0].user;
      password_ = seeds_[0].password;
    }
  }

  uv_loop_t* loop_;
  std::vector<Url> seeds_;
  std::vector<std::pair<std::string, int>> seed_addrs_;  // resolved seeds
  std::string user_, password_;
  Options opt_;
  Callbacks cb_;

  std::map<std::string, std::unique_ptr<Node>> nodes_;  // by addr
  std::vector<std::unique_ptr<Node>> graveyard_;         // forgotten nodes, freed on the next tick
  std::array<Node*, kSlots> slots_;                      // owner of each slot (null: none known)
  bool map_loaded_ = false;
  size_t masters_ = 0;
  std::map<std::string, Chan, std::less<>> chans_;
  std::deque<std::unique_ptr<Cmd>> retry_;               // refused with TRYAGAIN, sent again on the next tick
  bool refresh_inflight_ = false, refresh_wanted_ = false;
  uint64_t last_refresh_ = 0;

  uv_timer_t tick_;
  bool started_ = false, stopping_ = false, done_called_ = false, was_up_ = false;
  int open_handles_ = 0;  // connections and the timer not yet through their close callbacks
  std::function<void()> done_;
  Stats stats_{};
  uint64_t moved_ = 0, ask_ = 0, refreshes_ = 0, forgotten_reconnects_ = 0;
  std::minstd_rand rng_;

  // ---- logging and user callbacks -------------------------------------------------------------

  void logf(int level, const char* fmt, ...) __attribute__((format(printf, 3, 4))) {
    va_list ap;
    va_start(ap, fmt);
    vlog_line(opt_, "redis cluster", level, fmt, ap);
    va_end(ap);
  }

  template <class F, class... A>
  void call(const char* what, F& f, A&&... a) {
    call_owner(opt_, "redis cluster", what, f, std::forward<A>(a)...);
  }

  void on_conn_freed() override {
    --open_handles_;
    maybe_done();
  }

  // ---- nodes -----------------------------------------------------------------------------------

  static std::string addr_of(const std::string& ip, int port) {
    return (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
  }

  Node* find_node(const std::string& ip, int port) {
    auto it = nodes_.find(addr_of(ip, port));
    return it == nodes_.end() ? nullptr : it->second.get();
  }

  // The node at ip:port, created (and connecting) if it is new.
  Node* node_for(const std::string& ip, int port) {
    if (Node* n = find_node(ip, port)) return n;
    auto n = std::make_unique<Node>();
    n->impl = this;
    n->ip = ip;
    n->port = port;
    n->addr = addr_of(ip, port);
    Node* raw = n.get();
    nodes_.emplace(raw->addr, std::move(n));
    connect(raw);
    return raw;
  }

  void cmd_send(Node* n, std::initializer_list<std::string_view> argv, Entry kind) {
    n->cmd->send(std::vector<std::string_view>(argv));
    n->inflight.push_back(Inflight{kind, nullptr});
  }

  void sub_send(Node* n, bool subscribe, std::string_view channel) {
    if (!n->sub) return;
    n->sub->send({subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE", channel});
    n->sub_sent.push_back(SubSent{subscribe, std::string(channel)});
  }

  void connect(Node* n) {
    n->state = NodeState::Connecting;
    n->connect_started = uv_now(loop_);
    n->cmd = RespConn::open(loop_, n->ip, n->port, n, this);
    if (n->cmd) ++open_handles_;
    n->sub = RespConn::open(loop_, n->ip, n->port, n, this);
    if (n->sub) ++open_handles_;
    if (!n->cmd || !n->sub) return drop(n, "cannot open a socket");
    logf(3, "%s: connecting", n->addr.c_str());
    // Both: [AUTH] CLIENT SETNAME PING, queued now and written once connected. A refused SETNAME is ignored.
    n->cmd_setup_left = n->sub_setup_left = 0;
    for (RespConn* c : {n->cmd, n->sub}) {
      int& left = c == n->cmd ? n->cmd_setup_left : n->sub_setup_left;
      if (!password_.empty()) {
        if (user_.empty()) c->send({"AUTH", password_});
        else c->send({"AUTH", user_, password_});
        left++;
      }
      c->send({"CLIENT", "SETNAME", client_name(opt_.instance_id, c == n->cmd ? "cmd" : "sub")});
      left++;
      c->send({"PING"});
      left++;
    }
    for (int i = 0; i < n->cmd_setup_left; i++) n->inflight.push_back(Inflight{Entry::Setup, nullptr});
    n->probe_confirmed = false;
    n->probes.clear();
    if (!n->probe_channel.empty()) sub_send(n, true, n->probe_channel);
    n->subs.reset();
    for (std::string_view ch : n->subs.resubscribe_all()) sub_send(n, true, ch);
  }

  void maybe_up(Node* n) {
    if (n->state != NodeState::Connecting || n->cmd_setup_left > 0 || n->sub_setup_left > 0) return;
    n->state = NodeState::Up;
    n->attempt = 0;
    if (n->ever_up) n->reconnects++;
    logf(n->ever_up ? 1 : 2, "%s: %s (%u slots, %llu channels)", n->addr.c_str(), n->ever_up ? "reconnected" : "connected",
         n->slots, static_cast<unsigned long long>(n->subs.wanted_count()));
    n->ever_up = true;
    n->last_probe = n->last_cmd_reply = n->last_sub_msg = uv_now(loop_);
    auto waiting = std::move(n->waiting);
    n->waiting.clear();
    for (auto& c : waiting) send_to(n, std::move(c));
    if (!map_loaded_ || refresh_wanted_) request_refresh();
    bool whole_was_up = was_up_;
    update_state();
    if (whole_was_up && !stopping_) call("on_node_up", cb_.on_node_up);
  }

  uint64_t backoff_ms(uint32_t attempt) {
    uint64_t lo = std::max<uint64_t>(opt_.backoff_min_ms, 1), hi = std::max(opt_.backoff_max_ms, lo), base = lo;
    for (uint32_t i = 0; i < attempt && base < hi; ++i) base *= 2;
    base = std::min(base, hi);
    return base / 2 + rng_() % (base / 2 + 1);
  }

  // The node's connections are gone or going: fail what waits on them, report its channels lost, retry later.
  void drop(Node* n, const char* why) {
    if (n->state == NodeState::Backoff) return;
    bool was_up = n->state == NodeState::Up;
    if (stopping_) logf(3, "%s: closing", n->addr.c_str());
    else if (was_up) logf(1, "%s: lost (%s); its %u slots are unreachable until it or a replica answers", n->addr.c_str(), why, n->slots);
    else logf(n->attempt < 3 ? 2 : 3, "%s: connect attempt %u failed: %s", n->addr.c_str(), n->attempt + 1, why);
    n->state = NodeState::Backoff;
    n->retry_at = uv_now(loop_) + backoff_ms(n->attempt++);
    if (n->cmd) n->cmd->close();
    if (n->sub) n->sub->close();
    n->cmd = n->sub = nullptr;
    std::vector<std::pair<std::unique_ptr<Cmd>, int>> failed;
    for (Inflight& e : n->inflight) {
      if (e.kind == Entry::Slots) refresh_inflight_ = false;
      if (e.kind == Entry::User) failed.emplace_back(std::move(e.cmd), stopping_ ? kErrStopped : kErrDisconnected);
    }
    n->inflight.clear();
    for (auto& c : n->waiting) failed.emplace_back(std::move(c), stopping_ ? kErrStopped : kErrDown);
    n->waiting.clear();
    n->subs.reset();
    n->sub_sent.clear();
    n->probes.clear();
    n->probe_confirmed = false;
    if (stopping_) {
      for (auto& [c, status] : failed) call("reply", c->cb, status, Value{});
      return;
    }
    std::vector<std::string> lost;
    for (auto& [name, c] : chans_)
      if (c.node == n) lost.push_back(name);
    request_refresh();
    update_state();
    for (auto& [c, status] : failed) call("reply", c->cb, status, Value{});
    report_lost(lost);
  }

  void report_lost(const std::vector<std::string>& names) {
    for (const std::string& name : names) {
      if (stopping_) return;
      auto it = chans_.find(name);
      if (it == chans_.end() || it->second.lost) continue;
      it->second.lost = true;
      logf(3, "%s: subscription lost", name.c_str());
      call("on_lost", cb_.on_lost, std::string_view(name));
    }
  }

  Node* any_up_node() {
    std::vector<Node*> up;
    for (auto& [addr, n] : nodes_)
      if (n->state == NodeState::Up) up.push_back(n.get());
    if (up.empty()) return nullptr;
    return up[rng_() % up.size()];
  }

  void update_state() {
    bool now = up_now();
    if (now == was_up_ || stopping_) return;
    was_up_ = now;
    logf(now ? 2 : 1, "cluster %s (%zu masters known)", now ? "reachable" : "unreachable: no master answers", masters_);
    call("on_state", cb_.on_state, now);
  }

  bool up_now() const {
    if (!map_loaded_ || stopping_) return false;
    for (const auto& [addr, n] : nodes_)
      if (n->state == NodeState::Up && n->slots > 0) return true;
    return false;
  }

  // ---- command connection -----------------------------------------------------------------------

  void cmd_reply(Node* n, redisReply* reply) {
    if (n->inflight.empty()) return drop(n, "a reply nobody asked for");
    n->last_cmd_reply = uv_now(loop_);
    Inflight e = std::move(n->inflight.front());
    n->inflight.pop_front();
    bool error = reply->type == REDIS_REPLY_ERROR;
    switch (e.kind) {
      case Entry::Setup:
        if (error) {
          logf(1, "%s: setup refused: %.*s", n->addr.c_str(), static_cast<int>(reply->len), reply->str);
          return drop(n, "setup refused");
        }
        n->cmd_setup_left--;
        return maybe_up(n);
      case Entry::Ignore: return;
      case Entry::Probe:
        for (auto& p : n->probes)
          if (p.answered_at == 0) {
            p.answered_at = uv_now(loop_);
            break;
          }
        if (error) {
          logf(2, "%s: probe refused (%.*s); reading the slot map again", n->addr.c_str(), static_cast<int>(reply->len), reply->str);
          request_refresh();
        }
        return;
      case Entry::Slots: {
        refresh_inflight_ = false;
        std::vector<SlotRange> ranges;
        if (!error && parse_cluster_slots(to_value(reply), &ranges) && !ranges.empty()) {
          apply_map(ranges, n);
        } else {
          logf(1, "%s: CLUSTER SLOTS gave no usable map%s%.*s", n->addr.c_str(), error ? ": " : "",
               error ? static_cast<int>(reply->len) : 0, error ? reply->str : "");
        }
        if (refresh_wanted_) try_refresh();
        return;
      }
      case Entry::User: return user_reply(n, std::move(e.cmd), reply);
    }
  }

  void user_reply(Node* n, std::unique_ptr<Cmd> c, redisReply* reply) {
    if (reply->type == REDIS_REPLY_ERROR) {
      std::string_view err = view(reply);
      Redirect r;
      if (parse_redirect(err, &r) && c->redirects < kMaxRedirects) {
        c->redirects++;
        std::string host = r.host.empty() || r.host == "?" ? n->ip : r.host;
        Node* to = node_for(host, r.port);
        if (r.ask) {
          ask_++;
          c->asking = true;
        } else {
          moved_++;
          c->asking = false;
          if (c->slot == r.slot && c->keyed) slots_[r.slot] = to;
          request_refresh();
        }
        logf(3, "%s: %.*s", n->addr.c_str(), static_cast<int>(err.size()), err.data());
        return send_to(to, std::move(c));
      }
      if (err.rfind("TRYAGAIN", 0) == 0) {
        uint64_t now = uv_now(loop_);
        if (c->retry_until == 0) c->retry_until = now + kTryAgainMs;
        if (now < c->retry_until) {
          c->redirects = 0;  // the slot's owner sends it on with ASK again: that one is not a loop
          retry_.push_back(std::move(c));
          return;
        }
      }
    }
    bool asked_publish = c->asking && c->publish && reply->type != REDIS_REPLY_ERROR;
    call("reply", c->cb, 0, to_value(reply));
    if (asked_publish && !stopping_) {
      std::string key = c->key;
      call("on_asked_publish", cb_.on_asked_publish, std::string_view(key));
    }
  }

  // Sends (or queues) a command on n; a node that cannot take it fails it with kErrDown.
  void send_to(Node* n, std::unique_ptr<Cmd> c) {
    if (n->state == NodeState::Connecting) {
      n->waiting.push_back(std::move(c));
      return;
    }
    if (n->state != NodeState::Up || !n->cmd) {
      call("reply", c->cb, kErrDown, Value{});
      return;
    }
    if (c->asking) cmd_send(n, {"ASKING"}, Entry::Ignore);
    n->cmd->send_formatted(c->resp);
    n->commands++;
    if (c->publish) n->publishes++;
    n->inflight.push_back(Inflight{Entry::User, std::move(c)});
  }

  int submit(const std::vector<std::string_view>& argv, ReplyCallback cb, bool publish) {
    if (stopping_) return kErrStopped;
    if (argv.empty()) return kErrInvalid;
    if (!up_now()) return kErrDown;
    std::string_view key = routing_key(argv);
    auto c = std::make_unique<Cmd>();
    c->keyed = !key.empty();
    if (c->keyed) c->slot = key_slot(key);
    Node* n = c->keyed ? slots_[c->slot] : any_up_node();
    if (!n || n->state != NodeState::Up) return kErrDown;
    format_command(argv, &c->resp);
    c->publish = publish;
    if (publish) c->key = std::string(key);
    c->cb = std::move(cb);
    stats_.commands++;
    send_to(n, std::move(c));
    return kOk;
  }

  // ---- subscribe connection ---------------------------------------------------------------------

  void sub_reply(Node* n, redisReply* reply) {
    n->last_sub_msg = uv_now(loop_);
    if (n->sub_setup_left > 0 && reply->type != REDIS_REPLY_ARRAY) {
      if (reply->type == REDIS_REPLY_ERROR) {
        logf(1, "%s: subscribe connection setup refused: %.*s", n->addr.c_str(), static_cast<int>(reply->len), reply->str);
        return drop(n, "setup refused");
      }
      n->sub_setup_left--;
      return maybe_up(n);
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      if (n->sub_sent.empty()) return drop(n, "an error nobody asked for on the subscribe connection");
      SubSent s = std::move(n->sub_sent.front());
      n->sub_sent.pop_front();
      logf(2, "%s: %s %s refused: %.*s", n->addr.c_str(), s.subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE", s.channel.c_str(),
           static_cast<int>(reply->len), reply->str);
      if (!s.subscribe) {
        n->subs.on_unsubscribe_reply(s.channel);
      } else if (s.channel == n->probe_channel) {
        n->probe_confirmed = false;
        request_refresh();
      } else {
        channel_dropped(n, s.channel, true);
      }
      return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    const redisReply* kind = reply->element[0];
    const redisReply* chan = reply->element[1];
    if (kind->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING) return;
    std::string_view k = view(kind), ch = view(chan);
    if (k == "smessage") {
      const redisReply* payload = reply->element[2];
      if (payload->type != REDIS_REPLY_STRING) return;
      if (ch == n->probe_channel) return probe_back(n, view(payload));
      if (!n->subs.wanted(ch)) return;  // unsubscribed, or moved to another node
      stats_.messages_in++;
      call("on_message", cb_.on_message, ch, view(payload));
    } else if (k == "ssubscribe") {
      if (!n->sub_sent.empty() && n->sub_sent.front().subscribe && n->sub_sent.front().channel == ch) n->sub_sent.pop_front();
      if (ch == n->probe_channel) {
        n->probe_confirmed = true;
        return;
      }
      if (!n->subs.on_subscribe_reply(ch)) return;
      auto it = chans_.find(ch);
      if (it == chans_.end() || it->second.node != n) return;
      it->second.lost = it->second.dropped = false;
      logf(3, "%s: subscribed %.*s", n->addr.c_str(), static_cast<int>(ch.size()), ch.data());
      call("on_subscribed", cb_.on_subscribed, ch);  // ch lives in the reply
    } else if (k == "sunsubscribe") {
      if (!n->sub_sent.empty() && !n->sub_sent.front().subscribe && n->sub_sent.front().channel == ch) {
        n->sub_sent.pop_front();
        n->subs.on_unsubscribe_reply(ch);
        return;
      }
      // Not an answer: Redis ended it because the channel's slot left this node.
      logf(2, "%s: Redis ended %.*s (its slot moved)", n->addr.c_str(), static_cast<int>(ch.size()), ch.data());
      if (ch == n->probe_channel) {
        n->probe_confirmed = false;
        request_refresh();
        return;
      }
      channel_dropped(n, std::string(ch), false);
    }
  }

  // Redis ended (or refused) the channel's subscription on n: lost until the map says where it lives now.
  void channel_dropped(Node* n, const std::string& ch, bool answered) {
    n->subs.on_dropped(ch, answered);
    auto it = chans_.find(ch);
    if (it != chans_.end() && it->second.node == n) it->second.dropped = true;
    request_refresh();
    report_lost({ch});
  }

  void probe_back(Node* n, std::string_view payload) {
    uint64_t seq = 0;
    for (char ch : payload) {
      if (ch < '0' || ch > '9') return;
      seq = seq * 10 + static_cast<uint64_t>(ch - '0');
    }
    while (!n->probes.empty() && n->probes.front().seq <= seq) n->probes.pop_front();
  }

  // ---- slot map ---------------------------------------------------------------------------------

  void request_refresh() {
    refresh_wanted_ = true;
    try_refresh();
  }

  void try_refresh() {
    if (refresh_inflight_ || stopping_ || !started_) return;
    if (map_loaded_ && uv_now(loop_) - last_refresh_ < kRefreshMinMs) return;  // the timer asks again
    Node* n = any_up_node();
    if (!n) return ensure_seeds();
    refresh_wanted_ = false;
    refresh_inflight_ = true;
    last_refresh_ = uv_now(loop_);
    cmd_send(n, {"CLUSTER", "SLOTS"}, Entry::Slots);
  }

  // Nothing answers: go back to the seeds (nodes already known keep retrying on their own).
  void ensure_seeds() {
    for (auto& [addr, n] : nodes_)
      if (n->state == NodeState::Connecting) return;
    if (seed_addrs_.empty()) resolve_seeds();
    for (const auto& [ip, port] : seed_addrs_)
      if (!find_node(ip, port)) node_for(ip, port);
  }

  void resolve_seeds() {
    for (const Url& u : seeds_) {
      unsigned char buf[sizeof(struct in6_addr)];
      if (inet_pton(AF_INET, u.host.c_str(), buf) == 1 || inet_pton(AF_INET6, u.host.c_str(), buf) == 1) {
        seed_addrs_.emplace_back(u.host, u.port);
        continue;
      }
      // Seeds are named once, at start (or when every node is lost): a blocking lookup there is acceptable.
      struct addrinfo hints, *res = nullptr;
      std::memset(&hints, 0, sizeof hints);
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      if (getaddrinfo(u.host.c_str(), nullptr, &hints, &res) != 0 || !res) {
        logf(1, "cannot resolve seed %s", u.host.c_str());
        continue;
      }
      char ip[INET6_ADDRSTRLEN];
      const void* a = res->ai_family == AF_INET6
                          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr)
                          : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr);
      if (inet_ntop(res->ai_family, a, ip, sizeof ip)) seed_addrs_.emplace_back(ip, u.port);
      freeaddrinfo(res);
    }
  }

  void apply_map(const std::vector<SlotRange>& ranges, Node* from) {
    std::array<Node*, kSlots> next;
    next.fill(nullptr);
    for (const SlotRange& r : ranges) {
      std::string host = r.host.empty() || r.host == "?" ? from->ip : r.host;
      Node* n = node_for(host, r.port);
      for (uint32_t s = r.first; s <= r.last; s++) next[s] = n;
    }
    size_t changed = 0;
    for (uint32_t s = 0; s < kSlots; s++)
      if (next[s] != slots_[s]) changed++;
    slots_ = next;
    bool first = !map_loaded_;
    map_loaded_ = true;
    refreshes_++;
    for (auto& [addr, n] : nodes_) n->slots = 0;
    std::map<Node*, uint16_t> first_slot;
    for (uint32_t s = 0; s < kSlots; s++) {
      if (!slots_[s]) continue;
      if (slots_[s]->slots++ == 0) first_slot[slots_[s]] = static_cast<uint16_t>(s);
    }
    masters_ = first_slot.size();
    if (changed > 0)
      logf(first ? 2 : 1, "slot map: %zu masters; %zu slots %s", masters_, changed, first ? "mapped" : "changed owner");

    // Each master probes a shard channel of one of its own slots.
    for (auto& [addr, n] : nodes_) {
      auto it = first_slot.find(n.get());
      std::string want = it == first_slot.end()
                             ? std::string()
                             : opt_.prefix + "roomcast:probe:{" + tag_for_slot(it->second) + "}:" + opt_.instance_id;
      if (want == n->probe_channel) continue;
      if (!n->probe_channel.empty()) sub_send(n.get(), false, n->probe_channel);
      n->probe_channel = want;
      n->probe_confirmed = false;
      n->probes.clear();
      if (!want.empty()) sub_send(n.get(), true, want);
    }

    // Every wanted channel to its slot's owner.
    std::vector<std::string> lost;
    for (auto& [name, c] : chans_) {
      Node* owner = slots_[c.slot];
      if (owner != c.node) {
        if (c.node) {
          if (c.node->subs.unwant(name, c.node->sub != nullptr)) sub_send(c.node, false, name);
          lost.push_back(name);
        }
        c.node = owner;
        c.dropped = false;
        if (owner && owner->subs.want(name, owner->sub != nullptr)) sub_send(owner, true, name);
      } else if (c.dropped && owner) {
        c.dropped = false;
        if (owner->subs.resend(name, owner->sub != nullptr)) sub_send(owner, true, name);
      }
    }

    // Nodes that own no slot are forgotten (a failed master; a seed or a master that became a replica):
    // replicas need no connection. The node that answered this map stays until the next one.
    std::vector<std::pair<std::unique_ptr<Cmd>, int>> failed;
    for (auto it = nodes_.begin(); it != nodes_.end();) {
      Node* n = it->second.get();
      if (n->slots > 0 || n == from) {
        ++it;
        continue;
      }
      logf(2, "%s: forgotten (owns no slot, %s)", n->addr.c_str(), node_state_name(n->state));
      forgotten_reconnects_ += n->reconnects;
      if (n->cmd) n->cmd->close();
      if (n->sub) n->sub->close();
      n->cmd = n->sub = nullptr;
      for (Inflight& e : n->inflight) {
        if (e.kind == Entry::Slots) refresh_inflight_ = false;
        if (e.kind == Entry::User) failed.emplace_back(std::move(e.cmd), kErrDisconnected);
      }
      n->inflight.clear();
      for (auto& c : n->waiting) failed.emplace_back(std::move(c), kErrDown);
      n->waiting.clear();
      for (auto& [name, c] : chans_)
        if (c.node == n) c.node = nullptr;
      graveyard_.push_back(std::move(it->second));
      it = nodes_.erase(it);
    }
    update_state();
    for (auto& [c, status] : failed) call("reply", c->cb, status, Value{});
    report_lost(lost);
  }

  bool reachable_now() const {
    if (!up_now()) return false;
    for (const auto& [name, c] : chans_) {
      Node* o = slots_[c.slot];
      if (!o || o->state != NodeState::Up) return false;
    }
    return true;
  }

  // ---- timer ------------------------------------------------------------------------------------

  static void on_tick(uv_timer_t* t) {
    Impl* self = static_cast<Impl*>(t->data);
    try {
      self->tick();
    } catch (...) {
      self->logf(0, "unexpected exception in the cluster timer");
    }
  }

  void tick() {
    if (stopping_) return;
    graveyard_.clear();
    uint64_t now = uv_now(loop_);
    std::vector<Node*> all;
    for (auto& [addr, n] : nodes_) all.push_back(n.get());
    for (Node* n : all) {
      if (stopping_) return;
      if (n->state == NodeState::Connecting && now - n->connect_started >= opt_.connect_timeout_ms) {
        drop(n, "not ready within the connect timeout");
      } else if (n->state == NodeState::Backoff && now >= n->retry_at) {
        connect(n);
      } else if (n->state == NodeState::Up) {
        // As in Client::tick: down when a probe is overdue and a connection has been silent for the
        // deadline (nothing answered on cmd; or the SPUBLISH ran and sub heard nothing since). A node
        // that is only behind keeps answering and is not cut off.
        const Node::Probe* p = n->probes.empty() ? nullptr : &n->probes.front();
        uint64_t deadline = opt_.probe_deadline_ms;
        bool overdue = p && now - p->sent_at >= deadline;
        bool cmd_silent = now - n->last_cmd_reply >= deadline;
        bool sub_silent = p && p->answered_at != 0 && now - std::max(p->answered_at, n->last_sub_msg) >= deadline;
        if (overdue && (cmd_silent || sub_silent) && !n->suspect) {
          n->suspect = true;  // judged again at the next tick, after a loop turn has read (see Client::tick)
        } else if (overdue && (cmd_silent || sub_silent)) {
          logf(1, "%s: probe %llu not back after %llu ms (%s)", n->addr.c_str(), static_cast<unsigned long long>(p->seq),
               static_cast<unsigned long long>(now - p->sent_at),
               cmd_silent ? "no reply from the node meanwhile" : "its SPUBLISH ran, but the subscription heard nothing");
          n->suspect = false;
          drop(n, "probe timeout");
          continue;
        } else {
          n->suspect = false;
        }
        if (!n->suspect && n->probe_confirmed && now - n->last_probe >= opt_.probe_interval_ms) {
          std::string seq = std::to_string(++n->probe_seq);
          cmd_send(n, {"SPUBLISH", n->probe_channel, seq}, Entry::Probe);
          n->probes.push_back(Node::Probe{n->probe_seq, now});
          n->last_probe = now;
        }
      }
    }
    if (stopping_) return;
    auto retry = std::move(retry_);
    retry_.clear();
    for (auto& c : retry) {
      Node* n = c->keyed ? slots_[c->slot] : any_up_node();
      if (n) send_to(n, std::move(c));
      else call("reply", c->cb, kErrDown, Value{});
    }
    uint64_t every = refresh_wanted_ ? kRefreshMinMs : reachable_now() ? kRefreshMs : kRefreshFastMs;
    if (now - last_refresh_ >= every) request_refresh();
  }

  uint64_t tick_ms() const {
    uint64_t t = std::min({opt_.probe_interval_ms, opt_.probe_deadline_ms, opt_.connect_timeout_ms}) / 4;
    return std::clamp<uint64_t>(t, 10, 100);
  }

  // ---- shutdown ---------------------------------------------------------------------------------

  static void on_timer_closed(uv_handle_t* h) {
    Impl* self = static_cast<Impl*>(h->data);
    --self->open_handles_;
    self->maybe_done();
  }

  void maybe_done() {
    if (!stopping_ || done_called_ || open_handles_ != 0) return;
    done_called_ = true;
    std::function<void()> done = std::move(done_);
    if (done) {
      try {
        done();
      } catch (...) {
      }
    }
  }
};

// ---- ClusterClient ---------------------------------------------------------------------------------

ClusterClient::ClusterClient(uv_loop_t* loop, std::vector<Url> seeds, Options options, Callbacks callbacks)
    : impl_(std::make_unique<Impl>(loop, std::move(seeds), std::move(options), std::move(callbacks))) {}

ClusterClient::~ClusterClient() { assert(!impl_->started_ || impl_->done_called_); }

int ClusterClient::start() {
  Impl& s = *impl_;
  if (s.started_ || s.stopping_) return kErrState;
  if (s.seeds_.empty()) return kErrInvalid;
  s.started_ = true;
  uv_timer_init(s.loop_, &s.tick_);
  s.tick_.data = &s;
  s.open_handles_++;
  uv_timer_start(&s.tick_, Impl::on_tick, s.tick_ms(), s.tick_ms());
  struct sigaction sa;
  if (sigaction(SIGPIPE, nullptr, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
  s.resolve_seeds();
  s.logf(2, "starting: %zu seed(s), probe every %llu ms", s.seed_addrs_.size(), static_cast<unsigned long long>(s.opt_.probe_interval_ms));
  s.ensure_seeds();
  return kOk;
}

void ClusterClient::stop(std::function<void()> done) {
  Impl& s = *impl_;
  if (s.stopping_) return;
  s.stopping_ = true;
  s.done_ = std::move(done);
  s.logf(2, "stopping");
  std::vector<Impl::Node*> all;
  for (auto& [addr, n] : s.nodes_) all.push_back(n.get());
  for (Impl::Node* n : all) s.drop(n, "stopping");  // commands waiting get kErrStopped
  auto retry = std::move(s.retry_);
  s.retry_.clear();
  for (auto& c : retry) s.call("reply", c->cb, kErrStopped, Value{});
  if (!s.started_) {  // never started: a throwaway timer, so that done() still comes from the loop
    s.started_ = true;
    uv_timer_init(s.loop_, &s.tick_);
    s.tick_.data = &s;
    s.open_handles_++;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&s.tick_), Impl::on_timer_closed);
}

bool ClusterClient::up() const { return impl_->up_now(); }

int ClusterClient::command(const std::vector<std::string_view>& argv, ReplyCallback cb) {
  return impl_->submit(argv, std::move(cb), false);
}

int ClusterClient::publish(const std::vector<std::string_view>& argv, ReplyCallback cb) {
  return impl_->submit(argv, std::move(cb), true);
}

void ClusterClient::subscribe(std::string_view channel) {
  Impl& s = *impl_;
  if (s.stopping_ || s.chans_.count(channel)) return;
  Impl::Chan c;
  c.slot = key_slot(channel);
  c.node = s.map_loaded_ ? s.slots_[c.slot] : nullptr;
  auto [it, added] = s.chans_.emplace(std::string(channel), c);
  if (c.node && c.node->subs.want(it->first, c.node->sub != nullptr)) s.sub_send(c.node, true, it->first);
}

void ClusterClient::unsubscribe(std::string_view channel) {
  Impl& s = *impl_;
  auto it = s.chans_.find(channel);
  if (s.stopping_ || it == s.chans_.end()) return;
  Impl::Node* n = it->second.node;
  if (n && n->subs.unwant(channel, n->sub != nullptr)) s.sub_send(n, false, channel);
  s.chans_.erase(it);
}

bool ClusterClient::is_subscribed(std::string_view channel) const {
  auto it = impl_->chans_.find(channel);
  return it != impl_->chans_.end() && it->second.node && it->second.node->subs.confirmed(channel);
}

ClusterClient::Stats ClusterClient::stats() const {
  Stats st = impl_->stats_;
  st.reconnects = impl_->forgotten_reconnects_;
  for (const auto& [addr, n] : impl_->nodes_) st.reconnects += n->reconnects;
  st.subscriptions = impl_->chans_.size();
  return st;
}

bool ClusterClient::reachable() const { return impl_->reachable_now(); }

size_t ClusterClient::masters() const { return impl_->masters_; }

void ClusterClient::write_metrics(std::string* out) const {
  const Impl& s = *impl_;
  auto line = [out](const char* name, const std::string& labels, unsigned long long v) {
    *out += name;
    if (!labels.empty()) *out += "{" + labels + "}";
    *out += " " + std::to_string(v) + "\n";
  };
  *out += "# HELP roomcast_redis_masters Redis Cluster masters in the current slot map.\n# TYPE roomcast_redis_masters gauge\n";
  line("roomcast_redis_masters", "", s.masters_);
  *out += "# HELP roomcast_redis_slot_map_refreshes_total Slot maps read (CLUSTER SLOTS).\n"
          "# TYPE roomcast_redis_slot_map_refreshes_total counter\n";
  line("roomcast_redis_slot_map_refreshes_total", "", s.refreshes_);
  *out += "# HELP roomcast_redis_redirects_total MOVED and ASK redirects followed.\n# TYPE roomcast_redis_redirects_total counter\n";
  line("roomcast_redis_redirects_total", "kind=\"moved\"", s.moved_);
  line("roomcast_redis_redirects_total", "kind=\"ask\"", s.ask_);
  struct Family {
    const char* name;
    const char* type;
    const char* help;
  };
  const Family families[] = {
      {"roomcast_redis_node_up", "gauge", "1 while the node's connections are up."},
      {"roomcast_redis_node_slots", "gauge", "Slots the node owns in the current map."},
      {"roomcast_redis_node_subscriptions", "gauge", "Shard channels wanted on the node."},
      {"roomcast_redis_node_commands_total", "counter", "Commands sent to the node."},
      {"roomcast_redis_node_publishes_total", "counter", "Chats published on the node."},
  };
  for (const Family& f : families) {
    *out += std::string("# HELP ") + f.name + " " + f.help + "\n# TYPE " + f.name + " " + f.type + "\n";
    for (const auto& [addr, n] : s.nodes_) {
      std::string labels = "node=\"" + addr + "\"";
      unsigned long long v = 0;
      std::string_view name = f.name;
      if (name == "roomcast_redis_node_up") v = n->state == NodeState::Up;
      else if (name == "roomcast_redis_node_slots") v = n->slots;
      else if (name == "roomcast_redis_node_subscriptions") v = n->subs.wanted_count();
      else if (name == "roomcast_redis_node_commands_total") v = n->commands;
      else v = n->publishes;
      line(f.name, labels, v);
    }
  }
}

}  // namespace roomcast::redis
