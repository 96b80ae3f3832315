// Unit tests of one instance's rooms (server/room.h) against a fake Redis: seeded random schedules that
// delay, reorder, fail and drop the broker's answers, with every member's log checked by an oracle after
// every step (antirez's rax-test, Jepsen's checkers, FoundationDB's simulation), plus table cases.
// Rule: a chat published to a room after a member's `joined` reaches it once, in id order, with no gap
// the stream could have filled, until the member joins again (a new session: what it missed before is
// what since is for); `joined` comes only from a successful read while the subscription holds, and
// answers the join whose ref it carries, with that join's since.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "protocol/ids.h"
#include "protocol/message.h"
#include "protocol/ws_codec.h"
#include "server/broker.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/room.h"
#include "server/shared_buf.h"

// cmocka last: its fail() macro would clash with names in the headers above.
#include "unit_check.h"

using namespace roomcast::server;
using roomcast::protocol::MsgId;
using roomcast::protocol::User;
namespace proto = roomcast::protocol;

namespace {

constexpr uint64_t kEpochMs = 1700000000000ull;

std::string id_text(const MsgId& id) { return proto::format_message_id(id); }
MsgId id_of(std::string_view text) {
  MsgId id;
  if (!proto::parse_message_id(text, &id)) id = MsgId{UINT64_MAX, UINT64_MAX};
  return id;
}
std::string json_of(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

// ---- the fake broker ------------------------------------------------------------------------------
// Redis as the rooms see it through RedisBroker. One stream per room: ids "<ms>-<seq>" in publish order,
// a retention limit that deletes the oldest entries and remembers the newest deleted id (XDEL, XINFO).
// A command connection: commands run at Redis in order at some later step, their replies come back in
// that order, later still. A pub/sub connection: SUBSCRIBE/UNSUBSCRIBE run in order, and what Redis pushes
// (confirmations, messages) comes back in the order Redis made it, so a confirmation precedes its
// channel's messages, and a chat published after a read ran arrives before or after that read's reply.
// The client's own bookkeeping follows redis/subscriptions.cpp: a confirmation counts only for the latest
// SUBSCRIBE of a wanted channel, and messages of unwanted channels are dropped.
class FakeRedis final : public Broker {
 public:
  enum class Conn { Down, Connected, Ready };  // Connected: re-subscribing, up() still false
  enum class Kind { History, ReadAfter, Publish, Members, MemberJoin, MemberLeave };
  struct Pub {
    std::string payload;
    bool trimmed = false;  // deleted from the stream by the retention limit
  };
  // A reply being delivered to the rooms (the oracle looks at it from inside member callbacks).
  struct Reply {
    bool active = false;
    Kind kind = Kind::Publish;
    std::string room;
    int status = 0;
    uint64_t gen = 0;  // the room's subscription at Redis when the command ran (0: none)
    std::vector<std::string> users;  // Members: the users (JSON) it answers
    uint64_t seq = 0;       // History: its number in the order the history reads were asked (from 1)
    std::string since;      // History: the since it asked with
    std::string position;   // History, successful: the stream's last id when it ran
  };

  // Knobs.
  size_t retention = 1000000;  // entries a stream keeps
  bool cluster = false;        // cluster-wide members (member_join, members)
  bool echo_presence = true;   // presence events reach subscribers
  unsigned fail_pct = 0;       // reads failing when Redis runs them (kBrokerFailed)
  unsigned busy_pct = 0;       // reads refused at the call (kBrokerBusy)
  unsigned fail_next = 0;      // the next reads Redis runs fail
  bool silent_drops = false;   // a drop before ready() is not reported (RedisBroker did so before 7da7d92)
  bool state_first = false;    // a drop says on_state(false) before failing the replies owed
  Rng* rng = nullptr;
  const uint64_t* clock = nullptr;
  Rooms* rooms = nullptr;

  std::string action;  // what the last exec_* / deliver_* did (for traces)
  // What happened, for coverage.
  size_t histories = 0, read_afters = 0, failed = 0, refused = 0, disconnects = 0, confirmations = 0;
  uint64_t history_asked = 0;  // history reads asked for so far (refused ones not counted)
  std::map<std::string, int> presence;  // "room join|leave user" -> publish_event calls

  // ---- Broker ----
  int start() override { return 0; }
  void stop(std::function<void()> done) override { done(); }
  bool up() const override { return conn_ == Conn::Ready; }
  const char* mode() const override { return "fake"; }
  bool standalone() const override { return false; }
  bool cluster_members() const override { return cluster; }
  size_t subscriptions() const override {
    size_t n = 0;
    for (const auto& [name, c] : chans_) n += c.wanted;
    return n;
  }

  void subscribe(std::string_view room) override {
    Chan& c = chans_[std::string(room)];
    if (c.wanted) return;
    c.wanted = true;
    if (conn_ == Conn::Down || c.sent) return;
    c.sent = true;
    c.confirmed = false;
    c.outstanding++;
    sub_cmds_.emplace_back(true, std::string(room));
  }
  void unsubscribe(std::string_view room) override {
    auto it = chans_.find(std::string(room));
    if (it == chans_.end() || !it->second.wanted) return;
    Chan& c = it->second;
    c.wanted = false;
    c.confirmed = false;
    if (conn_ != Conn::Down && c.sent) {
      c.sent = false;
      c.outstanding++;
      sub_cmds_.emplace_back(false, std::string(room));
    }
    maybe_erase(it);
  }
  int publish_chat(std::string_view, std::string_view, std::string_view, PublishDone) override { return kBrokerFailed; }
  int publish_event(std::string_view room, std::string_view payload) override {
    bool join = payload.find("\"event\":\"join\"") != std::string_view::npos;
    presence[std::string(room) + (join ? " join " : " leave ") + proto::presence_user_id(payload)]++;
    if (conn_ == Conn::Down) return kBrokerDown;
    Cmd c;
    c.kind = Kind::Publish;
    c.room = std::string(room);
    c.arg = std::string(payload);
    cmds_.push_back(std::move(c));
    return 0;
  }
  int history(std::string_view room, std::string_view since, size_t limit, size_t max_bytes, HistoryDone done) override {
    if (int rc = refuse()) return rc;
    Cmd c;
    c.kind = Kind::History;
    c.room = std::string(room);
    c.arg = std::string(since);
    c.limit = limit;
    c.max_bytes = max_bytes;
    c.seq = ++history_asked;
    c.on_read = std::move(done);
    cmds_.push_back(std::move(c));
    return 0;
  }
  int read_after(std::string_view room, std::string_view after, size_t count, HistoryDone done) override {
    if (int rc = refuse()) return rc;
    Cmd c;
    c.kind = Kind::ReadAfter;
    c.room = std::string(room);
    c.arg = std::string(after);
    c.limit = count;
    c.on_read = std::move(done);
    cmds_.push_back(std::move(c));
    return 0;
  }
  void member_join(std::string_view room, std::string_view user_id, std::string_view key, std::string_view user_json) override {
    if (conn_ == Conn::Down) return;
    Cmd c;
    c.kind = Kind::MemberJoin;
    c.room = std::string(room);
    c.arg = std::string(user_id) + "\n" + std::string(key);
    c.arg2 = std::string(user_json);
    cmds_.push_back(std::move(c));
  }
  void member_leave(std::string_view room, std::string_view user_id, std::string_view key, bool) override {
    if (conn_ == Conn::Down) return;
    Cmd c;
    c.kind = Kind::MemberLeave;
    c.room = std::string(room);
    c.arg = std::string(user_id) + "\n" + std::string(key);
    cmds_.push_back(std::move(c));
  }
  int members(std::string_view room, MembersDone done) override {
    if (!cluster) return kBrokerFailed;
    if (int rc = refuse()) return rc;
    Cmd c;
    c.kind = Kind::Members;
    c.room = std::string(room);
    c.on_members = std::move(done);
    cmds_.push_back(std::move(c));
    return 0;
  }

  // ---- Redis: what other instances do, and what runs when ----

  // Another instance publishes a chat: it runs at Redis now (XADD, trim, PUBLISH).
  MsgId publish_external(const std::string& room, const User& user, std::string_view text) {
    Stream& s = streams_[room];
    MsgId id = *clock > s.last.ms ? MsgId{*clock, 0} : MsgId{s.last.ms, s.last.seq + 1};
    s.last = id;
    std::string payload = proto::chat_event_prefix(room, user, text, static_cast<int64_t>(*clock)) + id_text(id) +
                          std::string(proto::kChatEventSuffix);
    s.entries.emplace_back(id, payload);
    std::map<MsgId, Pub>& log = pubs_[room];
    log[id] = Pub{payload, false};
    while (s.entries.size() > retention) {
      s.max_deleted = s.entries.front().first;
      log[s.max_deleted].trimmed = true;
      s.entries.pop_front();
    }
    push_message(room, payload);
    return id;
  }

  // Redis runs the oldest command not run yet. Returns false when there is none.
  bool exec_cmd() {
    if (executed_ == cmds_.size()) return false;
    Cmd& c = cmds_[executed_++];
    c.executed = true;
    auto sub = redis_subs_.find(c.room);
    c.gen = sub == redis_subs_.end() ? 0 : sub->second;
    action = "redis runs " + std::string(kind_name(c.kind)) + " " + c.room + " '" + c.arg.substr(0, 40) + "'";
    switch (c.kind) {
      case Kind::History:
      case Kind::ReadAfter:
      case Kind::Members:
        if (fail_next > 0 || (fail_pct && rng->below(100) < fail_pct)) {
          if (fail_next > 0) fail_next--;
          c.status = kBrokerFailed;
          failed++;
          action += ": FAILS";
          break;
        }
        if (c.kind == Kind::History) run_history(c);
        if (c.kind == Kind::ReadAfter) run_read_after(c);
        if (c.kind != Kind::Members)
          action += ": " + std::to_string(c.read.events.size()) + " events, position " + c.read.position +
                    (c.read.truncated ? ", truncated" : "");
        if (c.kind == Kind::Members)  // one user per field (user id) with a line left
          for (const auto& [user, lines] : hash_[c.room])
            if (!lines.empty()) c.users.push_back(lines.begin()->second);
        break;
      case Kind::Publish:
        if (echo_presence) push_message(c.room, c.arg);
        break;
      case Kind::MemberJoin:
      case Kind::MemberLeave: {
        size_t cut = c.arg.find('\n');
        std::string user = c.arg.substr(0, cut), key = c.arg.substr(cut + 1);
        if (c.kind == Kind::MemberJoin) hash_[c.room][user][key] = c.arg2;
        else if (hash_[c.room][user].erase(key) && hash_[c.room][user].empty()) hash_[c.room].erase(user);
        break;
      }
    }
    return true;
  }
  // The oldest reply comes back (only once its command ran).
  bool deliver_cmd() {
    if (executed_ == 0) return false;
    Cmd c = std::move(cmds_.front());
    cmds_.pop_front();
    executed_--;
    action = "reply to " + std::string(kind_name(c.kind)) + " " + c.room + (c.status ? " (failed)" : "");
    answer(c, c.status);
    return true;
  }
  // Redis runs the oldest SUBSCRIBE or UNSUBSCRIBE.
  bool exec_sub() {
    if (sub_cmds_.empty()) return false;
    auto [subscribe, room] = std::move(sub_cmds_.front());
    sub_cmds_.pop_front();
    action = std::string("redis runs ") + (subscribe ? "SUBSCRIBE " : "UNSUBSCRIBE ") + room;
    if (subscribe) {
      if (!redis_subs_.count(room)) redis_subs_[room] = ++next_gen_;
      sub_out_.push_back(Push{Push::Confirm, room, ""});
    } else {
      redis_subs_.erase(room);
      sub_out_.push_back(Push{Push::Unconfirm, room, ""});
    }
    return true;
  }
  // The oldest push of the pub/sub connection reaches the client.
  bool deliver_sub() {
    if (sub_out_.empty()) return false;
    Push p = std::move(sub_out_.front());
    sub_out_.pop_front();
    action = std::string(p.kind == Push::Message ? "message " : p.kind == Push::Confirm ? "confirmation " : "unsubscribed ") +
             p.room + (p.kind == Push::Message && proto::is_chat_event(p.payload) ? " " + std::string(proto::chat_event_id(p.payload)) : "");
    auto it = chans_.find(p.room);
    if (it == chans_.end()) return true;
    Chan& c = it->second;
    if (p.kind == Push::Message) {
      if (c.wanted) rooms->on_message(p.room, p.payload);
    } else if (p.kind == Push::Unconfirm) {
      if (c.outstanding > 0) c.outstanding--;
      maybe_erase(it);
    } else {
      if (c.outstanding > 0) c.outstanding--;
      if (c.outstanding == 0 && c.sent) {
        c.confirmed = true;
        if (c.wanted) {
          confirmations++;
          rooms->on_subscribed(p.room);
        }
      } else {
        maybe_erase(it);
      }
    }
    return true;
  }
  // Both connections drop: every reply owed fails, then the rooms hear the broker is down.
  bool disconnect() {
    if (conn_ == Conn::Down) return false;
    bool report = conn_ == Conn::Ready || !silent_drops;
    conn_ = Conn::Down;
    disconnects++;
    sub_cmds_.clear();
    sub_out_.clear();
    redis_subs_.clear();
    for (auto it = chans_.begin(); it != chans_.end();) {
      it->second.sent = false;
      it->second.outstanding = 0;
      it->second.confirmed = false;
      it = it->second.wanted ? std::next(it) : chans_.erase(it);
    }
    std::deque<Cmd> owed;
    owed.swap(cmds_);
    executed_ = 0;
    if (report && state_first) rooms->on_state(false);
    dropping_ = true;
    for (Cmd& c : owed) answer(c, kBrokerDisconnected);
    dropping_ = false;
    if (report && !state_first) rooms->on_state(false);
    return true;
  }
  // The connections are back: every wanted channel is subscribed again (up() stays false until ready()).
  bool reconnect() {
    if (conn_ != Conn::Down) return false;
    conn_ = Conn::Connected;
    for (auto& [room, c] : chans_) {
      c.sent = true;
      c.outstanding = 1;
      c.confirmed = false;
      sub_cmds_.emplace_back(true, room);
    }
    return true;
  }
  // The broker is up for the rooms (RedisBroker: Redis's clock is known). any_time: also before the
  // re-subscriptions are confirmed (they travel on the other connection).
  bool ready(bool any_time) {
    if (conn_ != Conn::Connected) return false;
    if (!any_time && !resubscribed()) return false;
    conn_ = Conn::Ready;
    rooms->on_state(true);
    return true;
  }

  // ---- what the oracle reads ----
  Conn conn() const { return conn_; }
  // True while the replies owed are failed on a drop: the rooms have not heard of the drop yet.
  bool dropping() const { return dropping_; }
  const Reply& reply() const { return reply_; }
  // The number of the reply being delivered (from 1), 0 outside a reply.
  uint64_t replying() const { return reply_.active ? replies_ : 0; }
  const Reply& previous() const { return previous_; }
  const std::map<MsgId, Pub>& pubs(const std::string& room) { return pubs_[room]; }
  bool wanted(const std::string& room) const {
    auto it = chans_.find(room);
    return it != chans_.end() && it->second.wanted;
  }
  bool confirmed(const std::string& room) const {
    auto it = chans_.find(room);
    return conn_ != Conn::Down && it != chans_.end() && it->second.wanted && it->second.confirmed;
  }
  uint64_t redis_gen(const std::string& room) const {
    auto it = redis_subs_.find(room);
    return it == redis_subs_.end() ? 0 : it->second;
  }
  bool idle() const { return cmds_.empty() && sub_cmds_.empty() && sub_out_.empty(); }
  size_t pending_cmds() const { return cmds_.size(); }
  size_t unrun_cmds() const { return cmds_.size() - executed_; }
  size_t pending_pushes() const { return sub_out_.size(); }
  bool resubscribed() const {
    if (!sub_cmds_.empty()) return false;
    for (const Push& p : sub_out_)
      if (p.kind == Push::Confirm) return false;
    return true;
  }

 private:
  struct Cmd {
    Kind kind = Kind::Publish;
    std::string room, arg, arg2;  // since/after/payload/member key; user JSON
    size_t limit = 0, max_bytes = 0;
    HistoryDone on_read;
    MembersDone on_members;
    bool executed = false;
    int status = 0;
    HistoryRead read;
    std::vector<std::string> users;
    uint64_t gen = 0;
    uint64_t seq = 0;  // History: see Reply::seq
  };
  struct Push {
    enum { Confirm, Unconfirm, Message } kind;
    std::string room, payload;
  };
  struct Chan {
    bool wanted = false, sent = false, confirmed = false;
    int outstanding = 0;
  };
  struct Stream {
    std::deque<std::pair<MsgId, std::string>> entries;  // retained, oldest first
    MsgId last, max_deleted;                            // last generated id, newest deleted id (0-0: none)
  };

  static const char* kind_name(Kind k) {
    switch (k) {
      case Kind::History: return "history";
      case Kind::ReadAfter: return "read_after";
      case Kind::Publish: return "publish";
      case Kind::Members: return "members";
      case Kind::MemberJoin: return "member_join";
      case Kind::MemberLeave: return "member_leave";
    }
    return "?";
  }
  int refuse() {
    if (conn_ == Conn::Down) return kBrokerDown;
    if (busy_pct && rng->below(100) < busy_pct) {
      refused++;
      return kBrokerBusy;
    }
    return 0;
  }
  void push_message(const std::string& room, const std::string& payload) {
    if (conn_ != Conn::Down && redis_subs_.count(room)) sub_out_.push_back(Push{Push::Message, room, payload});
  }
  void maybe_erase(std::map<std::string, Chan>::iterator it) {
    if (!it->second.wanted && !it->second.sent && it->second.outstanding == 0) chans_.erase(it);
  }
  // The history script of redis_broker.cpp: newest first within the count (or everything after since)
  // and the byte budget; truncated when cut by the budget or when an entry after since was deleted.
  void run_history(Cmd& c) {
    histories++;
    Stream& s = streams_[c.room];
    c.read.position = id_text(s.last);
    MsgId since;
    bool have_since = !c.arg.empty() && proto::parse_message_id(c.arg, &since);
    if (have_since && since < s.max_deleted) c.read.truncated = true;
    size_t bytes = 0;
    for (auto e = s.entries.rbegin(); e != s.entries.rend(); ++e) {
      if (have_since ? !(since < e->first) : c.read.events.size() >= c.limit) break;
      if (bytes + e->second.size() > c.max_bytes) {
        c.read.truncated = true;
        break;
      }
      bytes += e->second.size();
      c.read.events.push_back(e->second);
    }
    std::reverse(c.read.events.begin(), c.read.events.end());
  }
  void run_read_after(Cmd& c) {
    read_afters++;
    Stream& s = streams_[c.room];
    c.read.position = id_text(s.last);
    MsgId after = id_of(c.arg);
    for (const auto& [id, payload] : s.entries) {
      if (!(after < id)) continue;
      if (c.read.events.size() >= c.limit) break;
      c.read.events.push_back(payload);
    }
    c.read.truncated = after < s.max_deleted;
  }
  void answer(Cmd& c, int status) {
    if (!c.on_read && !c.on_members) return;
    replies_++;
    reply_ = Reply{true, c.kind, c.room, status, c.gen, status == 0 ? c.users : std::vector<std::string>{}, c.seq,
                   c.kind == Kind::History ? c.arg : std::string(), status == 0 ? c.read.position : std::string()};
    if (c.on_read) c.on_read(status, status == 0 ? std::move(c.read) : HistoryRead{});
    if (c.on_members) c.on_members(status, status == 0 ? std::move(c.users) : std::vector<std::string>{});
    previous_ = reply_;
    reply_ = Reply{};
  }

  Conn conn_ = Conn::Ready;
  bool dropping_ = false;
  std::deque<Cmd> cmds_;  // sent on the command connection, not answered; the first executed_ ran
  size_t executed_ = 0;
  std::deque<std::pair<bool, std::string>> sub_cmds_;  // (SUBSCRIBE?, room) not run yet
  std::deque<Push> sub_out_;                           // pushed by Redis, not read yet
  std::map<std::string, uint64_t> redis_subs_;         // Redis's side: room -> subscription generation
  uint64_t next_gen_ = 0;
  std::map<std::string, Chan> chans_;                  // the client's side
  std::map<std::string, Stream> streams_;
  std::map<std::string, std::map<MsgId, Pub>> pubs_;   // every chat ever published, by room
  // Cluster members: room -> user id -> member key -> user JSON (a field per user, a line per connection).
  std::map<std::string, std::map<std::string, std::map<std::string, std::string>>> hash_;
  Reply reply_, previous_;
  uint64_t replies_ = 0;
};

// ---- members, the naive model and the oracle ------------------------------------------------------

class World;

class FakeMember final : public Member {
 public:
  FakeMember(World* world, size_t client, uint64_t id, User user)
      : world_(world), client_(client), id_(id), user_(std::move(user)) {}
  uint64_t member_id() const override { return id_; }
  const User& member_user() const override { return user_; }
  void send_frame(SharedBuf* frame) override;
  void send_event(std::string_view json) override;
  size_t client() const { return client_; }
  std::vector<std::string> log;  // every event it was given, in order

 private:
  World* world_;
  size_t client_;
  uint64_t id_;
  User user_;
};

struct Config {
  size_t rooms = 2, clients = 3;
  size_t retention = 1000000;
  RoomLimits limits;
  bool cluster = false;
  unsigned fail_pct = 0, busy_pct = 0;
  bool ready_early = true;  // on_state(true) may come before the re-subscriptions are confirmed
  bool shared_user = false;  // clients 0 and 1 are one user on two connections
  unsigned storms = 1;       // weight of disconnects and failed reads in the schedule
  bool silent_drops = false;  // see FakeRedis::silent_drops
  bool state_first = false;   // see FakeRedis::state_first
};

// One join request (first or repeated) as the member sent it.
constexpr size_t kJoinsWaiting = 8;  // Rooms::kMaxJoinsWaiting: joins of a room one member may have unanswered

struct JoinReq {
  std::string ref;    // unique per join (JSON text)
  std::string since;  // "" for none
  uint64_t asked = 0;  // history reads asked for before it was sent: its answer comes from a later one
};

// The model's view of one member in one room, from its join to its leave.
// Sessions (room.h): every `joined` starts one, answering the join whose ref it carries, with that join's
// since. Every join is answered, in turn (since 7d6a311; before, joins sent while the seat waited
// coalesced), except one sent with kJoinsWaiting unanswered: an error with its ref answers it. A session
// ends at the member's next join: what it was not given by then it is owed only if a later `joined`'s
// history covers it (that is what since is for), so obligations are per session.
struct SeatModel {
  bool got_joined = false;     // a `joined` reached it (announced: a presence leave is owed)
  std::deque<JoinReq> pending;  // joins sent and not answered yet, oldest first
  // The current session (from the latest `joined`).
  bool has_floor = false;
  MsgId floor;                 // every chat above it must reach the member in this session
  MsgId verified;              // chats up to here were checked against the stream
  bool has_last = false;
  MsgId last;                  // the last id of the session
  std::set<MsgId> received;    // ids given in this session
  bool ended = false;          // a join was sent after this session's `joined`: nothing more may come in it
  uint64_t closing = 0;        // a join was sent before it: only the reply that gave it (held chats) may give more
};

struct Client {
  User user;
  uint64_t member = 0;                    // its connection's member id, 0 while disconnected
  std::map<std::string, MsgId> last_seen;  // by room, across reconnections (what a client sends as since)
};

class World {
 public:
  World(const Config& c, uint64_t seed, bool verbose = false)
      : cfg(c), rng(seed * 0x9E3779B97F4A7C15ull + 0x1234567ull), verbose_(verbose) {
    broker.retention = cfg.retention;
    broker.cluster = cfg.cluster;
    broker.fail_pct = cfg.fail_pct;
    broker.busy_pct = cfg.busy_pct;
    broker.silent_drops = cfg.silent_drops;
    broker.state_first = cfg.state_first;
    broker.rng = &rng;
    broker.clock = &now;
    for (size_t i = 0; i < cfg.clients; i++) {
      size_t u = cfg.shared_user && i == 1 ? 0 : i;
      clients.push_back(Client{User{"u" + std::to_string(u), "user " + std::to_string(u)}, 0, {}});
    }
    for (size_t i = 0; i < cfg.rooms; i++) room_ids.push_back("room-" + std::to_string(i));
    rooms = std::make_unique<Rooms>(&broker, &frames, &metrics, cfg.limits, [this](uint64_t id) -> Member* {
      auto it = members.find(id);
      return it == members.end() ? nullptr : it->second.get();
    });
    broker.rooms = rooms.get();
    rooms->on_state(true);
    tick(0);
  }

  // ---- operations ----

  FakeMember* member_of(size_t c, bool make) {
    Client& cl = clients[c];
    if (!cl.member && make) {
      cl.member = next_member_++;
      members[cl.member] = std::make_unique<FakeMember>(this, c, cl.member, cl.user);
    }
    return cl.member ? members[cl.member].get() : nullptr;
  }
  size_t rooms_of(uint64_t member) const {
    size_t n = 0;
    for (const auto& [key, s] : seats) n += key.first == member;
    return n;
  }
  Rooms::JoinResult join(size_t c, const std::string& room, bool with_since) {
    FakeMember* m = member_of(c, true);
    std::string since;
    auto seen = clients[c].last_seen.find(room);
    if (with_since && seen != clients[c].last_seen.end()) since = id_text(seen->second);
    auto key = std::make_pair(m->member_id(), room);
    bool in = seats.count(key) > 0;
    bool refused = !in && rooms_of(m->member_id()) >= cfg.limits.max_rooms;
    std::string ref = "\"j" + std::to_string(++refs_) + "\"";
    last_ref = ref;
    note("join c%zu (m%llu) %s ref %s since '%s'%s", c, ull(m->member_id()), room.c_str(), ref.c_str(), since.c_str(), in ? " (again)" : "");
    SeatModel& s = seats[key];  // before the call: the model must know the seat whatever it is given
    bool over = s.pending.size() >= kJoinsWaiting;
    if (over) {
      expect_error_ = ref;  // answered at once with an error, not queued; the session goes on
    } else {
      s.pending.push_back(JoinReq{ref, since, broker.history_asked});
      if (s.got_joined) s.ended = true;  // the session it had ends here
    }
    Rooms::JoinResult res = rooms->join(*m, room, ref, since);
    if (over && !expect_error_.empty())
      bad("join-cap", "m%llu's join %s of %s, with %zu unanswered, got no error", ull(m->member_id()), ref.c_str(), room.c_str(), s.pending.size());
    expect_error_.clear();
    if ((res == Rooms::JoinResult::TooManyRooms) != refused)
      bad("max-rooms", "join of m%llu to %s: TooManyRooms %d, model %d", ull(m->member_id()), room.c_str(),
          res == Rooms::JoinResult::TooManyRooms, refused);
    if (res != Rooms::JoinResult::Ok) {
      if (!in) seats.erase(key);
      return res;
    }
    emptied_.erase(room);
    joins++;
    repeats += in;
    return res;
  }
  void leave(size_t c, const std::string& room) {
    FakeMember* m = member_of(c, false);
    if (!m) return;
    auto key = std::make_pair(m->member_id(), room);
    bool in = seats.count(key) > 0;
    note("leave c%zu (m%llu) %s", c, ull(m->member_id()), room.c_str());
    if (rooms->leave(*m, room) != in) bad("leave", "leave of m%llu from %s returned %d, model %d", ull(m->member_id()), room.c_str(), !in, in);
    if (in) seat_gone(key);
  }
  void drop(size_t c) {
    FakeMember* m = member_of(c, false);
    if (!m) return;
    uint64_t id = m->member_id();
    note("drop c%zu (m%llu)", c, ull(id));
    rooms->drop(*m);
    if (!m->room_slots().empty()) bad("drop", "m%llu still has %zu slots after drop", ull(id), m->room_slots().size());
    std::vector<std::pair<uint64_t, std::string>> gone;
    for (const auto& [key, s] : seats)
      if (key.first == id) gone.push_back(key);
    for (const auto& key : gone) seat_gone(key);
    members.erase(id);
    clients[c].member = 0;
    drops++;
  }
  MsgId publish(const std::string& room, size_t pad = 0) {
    std::string text = "m" + std::to_string(++chats) + std::string(pad, 'x');
    MsgId id = broker.publish_external(room, User{"poster", "Poster"}, text);
    note("chat %s %s", room.c_str(), id_text(id).c_str());
    return id;
  }
  void tick(uint64_t advance) {
    now += advance;
    rooms->tick(now);
    last_tick_ = now;
  }

  // Runs everything the broker owes, fault-free, until nothing moves.
  void settle() {
    for (int round = 0, idle = 0; round < 2000 && idle < 3; round++) {
      bool moved = false;
      while (broker.exec_sub()) moved = true;
      while (broker.deliver_sub()) moved = true;
      if (broker.ready(true)) moved = true;
      while (broker.exec_cmd()) {
        moved = true;
        if (round > 100) note("settling, round %d: %s", round, broker.action.c_str());
      }
      while (broker.deliver_cmd()) moved = true;
      tick(1);  // retries; a linger may end and unsubscribe
      idle = moved || !broker.idle() ? 0 : idle + 1;
    }
  }

  // One random step of the schedule.
  void random_step() {
    enum Op { Join, Again, Leave, Drop, Chat, Burst, Flow, FailRead, Disconnect, Reconnect, Ready, Tick, kOps };
    const unsigned weights[kOps] = {6, 2, 3, 1, 14, 1, 40, cfg.storms, cfg.storms, 4, 4, 5};
    unsigned total = 0;
    for (unsigned w : weights) total += w;
    unsigned pick = static_cast<unsigned>(rng.below(total));
    int op = 0;
    while (pick >= weights[op]) pick -= weights[op++];
    size_t c = rng.below(clients.size());
    const std::string& room = room_ids[rng.below(room_ids.size())];
    switch (op) {
      case Join: join(c, room, rng.below(2) == 0); break;
      case Again: {
        FakeMember* m = member_of(c, false);
        if (!m || m->room_slots().empty()) break;
        join(c, m->room_slots()[rng.below(m->room_slots().size())].room->id, rng.below(2) == 0);
        break;
      }
      case Leave: {
        FakeMember* m = member_of(c, false);
        if (m && !m->room_slots().empty() && rng.below(4) > 0) leave(c, m->room_slots()[rng.below(m->room_slots().size())].room->id);
        else leave(c, room);
        break;
      }
      case Drop: drop(c); break;
      case Chat: publish(room, rng.below(4) == 0 ? rng.below(120) : 0); break;
      case Burst:
        if (rng.below(8) == 0) {
          bool was = verbose_;
          verbose_ = false;
          MsgId from = publish(room);
          for (int i = 1; i < 270; i++) publish(room);
          verbose_ = was;
          note("burst: 270 chats in %s from %s", room.c_str(), id_text(from).c_str());
        }
        break;
      case Flow:  // a few of Redis's moves, in a random interleaving of the two connections
        for (size_t i = 0, n = 1 + rng.below(6); i < n; i++) {
          size_t k = rng.below(12);
          bool moved = k < 3 ? broker.exec_cmd() : k < 6 ? broker.deliver_cmd() : k < 8 ? broker.exec_sub() : broker.deliver_sub();
          if (moved) note("%s", broker.action.c_str());
        }
        break;
      case FailRead:
        note("fail the next read");
        broker.fail_next = 1;
        break;
      case Disconnect:
        note("disconnect");
        broker.disconnect();
        break;
      case Reconnect:
        if (broker.reconnect()) note("reconnect");
        break;
      case Ready:
        if (broker.ready(cfg.ready_early)) note("ready");
        break;
      case Tick: tick(1 + rng.below(cfg.limits.linger_ms)); break;
    }
  }

  // ---- the oracle ----

  void on_event(FakeMember& m, std::string_view text) {
    rapidjson::Document d;
    d.Parse(text.data(), text.size());
    if (!d.HasParseError() && d.IsObject() && d.HasMember("type") && d["type"].IsString() && d["type"].GetString() == std::string("error")) {
      std::string ref = d.HasMember("ref") ? json_of(d["ref"]) : "";
      if (expect_error_.empty() || ref != expect_error_)
        bad("error", "m%llu got an error%s: %.*s", ull(m.member_id()), expect_error_.empty() ? " outside a join over the cap" : " with another ref",
            int(std::min<size_t>(text.size(), 200)), text.data());
      expect_error_.clear();
      return;
    }
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("type") || !d["type"].IsString() || !d.HasMember("roomId")) {
      bad("event", "m%llu got an event that is not a room event: %.*s", ull(m.member_id()), int(std::min<size_t>(text.size(), 200)), text.data());
      return;
    }
    std::string type = d["type"].GetString(), room = d["roomId"].GetString();
    auto it = seats.find(std::make_pair(m.member_id(), room));
    if (it == seats.end()) {
      bad("stray", "m%llu got %s for %s, a room it is not in", ull(m.member_id()), type.c_str(), room.c_str());
      return;
    }
    SeatModel& s = it->second;
    if (type == "joined") {
      on_joined(m, s, room, d, text);
    } else if (type == "chat") {
      MsgId id = id_of(proto::chat_event_id(text));
      if (!s.got_joined) bad("chat-before-joined", "m%llu got chat %s in %s before its joined", ull(m.member_id()), id_text(id).c_str(), room.c_str());
      // A repeated join sent after the session's `joined` puts the seat back to waiting: live chats are
      // held until its own `joined` (a join sent while reading ends the session its read starts only
      // after that `joined` and the held chats given with it).
      if (s.ended || (s.closing && s.closing != broker.replying()))
        bad("chat-after-rejoin", "m%llu got chat %s in %s after its repeated join %s, before that join's joined", ull(m.member_id()),
            id_text(id).c_str(), room.c_str(), s.pending.empty() ? "?" : s.pending.back().ref.c_str());
      const auto& pubs = broker.pubs(room);
      auto p = pubs.find(id);
      if (p == pubs.end() || p->second.payload != text) bad("chat-payload", "m%llu got chat %s in %s that was not published so", ull(m.member_id()), id_text(id).c_str(), room.c_str());
      live++;
      note("    m%llu <- chat %s %s", ull(m.member_id()), room.c_str(), id_text(id).c_str());
      receive(m, s, room, id, true);
    } else if (type == "presence") {
      presences++;
      if (!s.got_joined) bad("presence-before-joined", "m%llu got presence in %s before its joined", ull(m.member_id()), room.c_str());
      if (proto::presence_user_id(text) == m.member_user().id) bad("presence-self", "m%llu got presence about its own user", ull(m.member_id()));
    } else {
      bad("event", "m%llu got a %s", ull(m.member_id()), type.c_str());
    }
  }

  void on_joined(FakeMember& m, SeatModel& s, const std::string& room, const rapidjson::Document& d, std::string_view text) {
    joined++;
    if (verbose_ && d.HasMember("history") && d["history"].IsArray()) {
      const auto& h = d["history"];
      note("    m%llu <- joined %s ref %s: %u chats %s..%s%s", ull(m.member_id()), room.c_str(),
           d.HasMember("ref") ? json_of(d["ref"]).c_str() : "-", h.Size(), h.Size() ? h[0]["id"].GetString() : "",
           h.Size() ? h[h.Size() - 1]["id"].GetString() : "", d.HasMember("truncated") ? " truncated" : "");
    }
    unsigned long long mid = ull(m.member_id());
    // Joined means subscribed: it comes from a successful history read (or the members read that follows
    // it), the subscription that read ran under still holds at Redis, and the client has it confirmed
    // (unless the connection just dropped and the rooms are yet to hear it: they back-fill then).
    const FakeRedis::Reply& rep = broker.reply();
    const FakeRedis::Reply* read = nullptr;
    if (rep.active && rep.room == room && rep.kind == FakeRedis::Kind::History) read = &rep;
    if (rep.active && rep.room == room && rep.kind == FakeRedis::Kind::Members && broker.previous().room == room &&
        broker.previous().kind == FakeRedis::Kind::History)
      read = &broker.previous();
    if (!read) bad("joined-outside-read", "m%llu got joined for %s outside the reply to a history read", mid, room.c_str());
    else if (read->status != 0) bad("joined-after-failed-read", "m%llu got joined for %s from a read that failed (%s)", mid, room.c_str(), broker_error_name(read->status));
    else if (read->gen == 0)
      bad("joined-unsubscribed", "m%llu got joined for %s from a read that ran while Redis had no subscription", mid, room.c_str());
    else if (broker.dropping())
      ;
    else if (broker.redis_gen(room) != read->gen)
      bad("joined-unsubscribed", "m%llu got joined for %s from a read that ran under subscription %llu, Redis has %llu now", mid, room.c_str(), ull(read->gen), ull(broker.redis_gen(room)));
    else if (!broker.confirmed(room)) bad("joined-unconfirmed", "m%llu got joined for %s while its subscription is not confirmed", mid, room.c_str());

    if (!d.HasMember("history") || !d["history"].IsArray() || !d.HasMember("count") || !d["count"].IsUint64() ||
        !d.HasMember("members") || !d["members"].IsArray()) {
      bad("joined-shape", "m%llu: %.*s", mid, int(std::min<size_t>(text.size(), 300)), text.data());
      return;
    }
    // The join it answers: the one whose ref it carries, the oldest unanswered (every join is answered,
    // in turn); a newer one must be answered later, by another `joined`.
    std::string ref = d.HasMember("ref") ? json_of(d["ref"]) : std::string();
    auto req_it = std::find_if(s.pending.begin(), s.pending.end(), [&](const JoinReq& q) { return q.ref == ref; });
    if (req_it == s.pending.end()) {
      bad("joined-ref", "m%llu: joined %s carries ref %s, which is no unanswered join of it (%zu unanswered)", mid, room.c_str(),
          ref.empty() ? "(none)" : ref.c_str(), s.pending.size());
      return;
    }
    if (req_it != s.pending.begin())
      bad("joined-turn", "m%llu: joined %s answers join %s, but the older join %s was never answered", mid, room.c_str(), ref.c_str(),
          s.pending.front().ref.c_str());
    JoinReq req = *req_it;
    s.pending.erase(s.pending.begin(), req_it + 1);
    // It answers that join with a read asked after it was sent, for its since.
    if (read && read->status == 0) {
      if (read->seq <= req.asked)
        bad("joined-early", "m%llu: joined %s answers join %s with history read #%llu, asked before that join was sent (#%llu was the last then)",
            mid, room.c_str(), ref.c_str(), ull(read->seq), ull(req.asked));
      if (read->since != req.since)
        bad("joined-since", "m%llu: joined %s answers join %s (since '%s') with a read since '%s'", mid, room.c_str(), ref.c_str(),
            req.since.c_str(), read->since.c_str());
    }
    // The history: published chats, oldest first, contiguous, all that join asked for up to the read's
    // position, cut only to fit.
    const std::map<MsgId, FakeRedis::Pub>& pubs = broker.pubs(room);
    std::vector<MsgId> ids;
    for (const auto& ev : d["history"].GetArray()) {
      std::string e = json_of(ev);
      MsgId id = id_of(proto::chat_event_id(e));
      auto p = pubs.find(id);
      if (p == pubs.end() || p->second.payload != e) bad("history-payload", "m%llu: joined %s holds %s, not as published", mid, room.c_str(), id_text(id).c_str());
      if (!ids.empty() && !(ids.back() < id)) bad("history-order", "m%llu: joined %s has %s after %s", mid, room.c_str(), id_text(id).c_str(), id_text(ids.back()).c_str());
      ids.push_back(id);
    }
    bool truncated = d.HasMember("truncated") && d["truncated"].IsBool() && d["truncated"].GetBool();
    truncateds += truncated;
    bool has_since = !req.since.empty();
    MsgId since = has_since ? id_of(req.since) : MsgId{};
    size_t limit = cfg.limits.history;
    bool has_position = read && read->status == 0 && !read->position.empty();
    MsgId position = has_position ? id_of(read->position) : MsgId{};
    if (has_position && (!ids.empty() || !truncated)) {
      // The read took the newest entries first: none up to its position is missing after the history's
      // end (retained then: newer than a retained one, or, empty and not truncated, after since or
      // retained now).
      auto from = !ids.empty() ? pubs.upper_bound(ids.back()) : has_since ? pubs.upper_bound(since) : pubs.begin();
      for (auto p = from; p != pubs.end() && !(position < p->first); ++p) {
        if (!ids.empty() || has_since || (limit > 0 && !p->second.trimmed)) {
          bad("history-tail", "m%llu: joined %s (since '%s') ends at %s, the read's position is %s, but %s is not in it%s", mid, room.c_str(),
              req.since.c_str(), ids.empty() ? "(empty)" : id_text(ids.back()).c_str(), id_text(position).c_str(), id_text(p->first).c_str(),
              truncated ? "" : " (not truncated)");
          break;
        }
      }
    }
    if (!ids.empty()) {
      for (auto p = pubs.lower_bound(ids.front()); p != pubs.end() && !(ids.back() < p->first); ++p)
        if (!std::binary_search(ids.begin(), ids.end(), p->first)) {
          bad("history-hole", "m%llu: joined %s lacks %s between %s and %s", mid, room.c_str(), id_text(p->first).c_str(), id_text(ids.front()).c_str(), id_text(ids.back()).c_str());
          break;
        }
      if (has_since && !truncated) {
        auto p = pubs.upper_bound(since);
        if (p != pubs.end() && p->first < ids.front())
          bad("history-since", "m%llu: joined %s answers join %s since %s; it starts at %s, so %s is missing, and truncated is not said",
              mid, room.c_str(), ref.c_str(), req.since.c_str(), id_text(ids.front()).c_str(), id_text(p->first).c_str());
      }
      if (!has_since && !truncated && ids.size() < limit)
        for (auto p = pubs.begin(); p != pubs.end() && p->first < ids.front(); ++p)
          if (!p->second.trimmed) {
            bad("history-short", "m%llu: joined %s answers join %s with %zu of %zu chats, without %s (retained)", mid, room.c_str(), ref.c_str(), ids.size(), limit, id_text(p->first).c_str());
            break;
          }
      auto p = pubs.lower_bound(ids.front());
      if (truncated && p != pubs.begin()) {
        --p;  // the chat just older than the history: it should be there if it fit
        bool asked = has_since ? since < p->first : ids.size() < limit;
        // (one byte of slack: counting a comma for the first event too is harmless)
        if (asked && !p->second.trimmed && text.size() + proto::joined_event_cost(p->second.payload) + 1 <= cfg.limits.joined_max_bytes)
          bad("joined-cut", "m%llu: joined %s is %zu bytes with %zu chats and truncated, but %s (%zu bytes) fit under %zu",
              mid, room.c_str(), text.size(), ids.size(), id_text(p->first).c_str(), p->second.payload.size(), cfg.limits.joined_max_bytes);
      }
    }
    if (text.size() > cfg.limits.joined_max_bytes) bad("joined-size", "m%llu: joined %s is %zu bytes, over %zu", mid, room.c_str(), text.size(), cfg.limits.joined_max_bytes);
    // Members: everyone announced here (with itself) and everyone the members read found, one per
    // user, listed up to the cap.
    std::set<std::string> users{m.member_user().id};
    for (const auto& [key, other] : seats)
      if (key.second == room && other.got_joined) users.insert(members[key.first]->member_user().id);
    if (rep.active && rep.kind == FakeRedis::Kind::Members)
      for (const std::string& json : rep.users) {
        User u;
        if (proto::parse_user(json, &u)) users.insert(u.id);
      }
    uint64_t count = d["count"].GetUint64();
    size_t listed = d["members"].Size();
    bool members_truncated = d.HasMember("membersTruncated") && d["membersTruncated"].GetBool();
    if (count != users.size()) bad("joined-count", "m%llu: joined %s says count %llu, model %zu", mid, room.c_str(), ull(count), users.size());
    if (listed != std::min<uint64_t>(count, cfg.limits.members_listed) || members_truncated != (count > cfg.limits.members_listed))
      bad("joined-members", "m%llu: joined %s lists %zu of %llu (membersTruncated %d)", mid, room.c_str(), listed, ull(count), members_truncated);
    std::set<std::string> listed_ids;
    for (const auto& u : d["members"].GetArray())
      if (u.IsObject() && u.HasMember("id") && u["id"].IsString()) listed_ids.insert(u["id"].GetString());
    if (listed_ids.size() != listed || (!members_truncated && listed_ids != users))
      bad("joined-members", "m%llu: joined %s lists %zu users (%zu distinct), not the model's %zu", mid, room.c_str(), listed, listed_ids.size(), users.size());

    // A `joined` starts a session: what it owes the member from now on starts at its floor. The
    // presence join is published for the seat's first `joined` only.
    if (!s.got_joined) presence_want[room + " join " + m.member_user().id]++;
    s.got_joined = true;
    s.has_floor = true;
    if (has_since && !truncated) s.floor = since;  // everything after since
    else if (!ids.empty()) s.floor = ids.front();  // everything from its history on (what was cut is said)
    else if (has_position) s.floor = position;     // nothing given: everything after the read
    else s.floor = pubs.empty() ? MsgId{0, 0} : pubs.rbegin()->first;  // (no read to go by: already flagged)
    s.verified = s.floor;
    s.received.clear();
    s.has_last = false;
    s.ended = false;
    s.closing = s.pending.empty() ? 0 : broker.replying();
    if (s.closing == 0 && !s.pending.empty()) s.closing = UINT64_MAX;  // (outside a reply: already flagged)
    for (const MsgId& id : ids) receive(m, s, room, id, false);
  }

  // One id given to a member: in order within its session, nothing skipped that the stream still holds.
  void receive(FakeMember& m, SeatModel& s, const std::string& room, const MsgId& id, bool is_live) {
    const std::map<MsgId, FakeRedis::Pub>& pubs = broker.pubs(room);
    unsigned long long mid = ull(m.member_id());
    if (s.has_last && !(s.last < id)) {
      bad(s.received.count(id) ? "duplicate" : "reorder", "m%llu in %s got %s after %s", mid, room.c_str(), id_text(id).c_str(), id_text(s.last).c_str());
    } else if (s.has_last && is_live) {
      for (auto p = pubs.upper_bound(s.last); p != pubs.end() && p->first < id; ++p)
        if (!p->second.trimmed) {
          bad("gap", "m%llu in %s got %s right after %s: %s (still retained) was skipped", mid, room.c_str(), id_text(id).c_str(), id_text(s.last).c_str(), id_text(p->first).c_str());
          break;
        }
    }
    if (s.has_floor && s.verified < id) {
      for (auto p = pubs.upper_bound(s.verified); p != pubs.end() && p->first < id; ++p)
        if (!p->second.trimmed && !s.received.count(p->first)) {
          bad("gap", "m%llu in %s got %s but never %s (still retained; owed since %s)", mid, room.c_str(), id_text(id).c_str(), id_text(p->first).c_str(), id_text(s.floor).c_str());
          break;
        }
      s.verified = id;
    }
    s.received.insert(id);
    s.last = id;
    s.has_last = true;
    MsgId& seen = clients[m.client()].last_seen[room];
    if (seen < id) seen = id;
  }

  // The two-way index, the rooms' states and held bytes, subscriptions, linger and presence, against the model.
  void check_structure() {
    std::map<std::string, size_t> model_rooms;
    for (const auto& [key, s] : seats) model_rooms[key.second]++;
    size_t visited = 0, held = 0;
    rooms->for_each([&](const Room& r) {
      visited++;
      const char* id = r.id.c_str();
      if (rooms->find(r.id) != &r) bad("index", "find(%s) is not the room for_each gives", id);
      if (!broker.wanted(r.id)) bad("subscription", "room %s exists without a subscription", id);
      if (r.seats.empty() != (r.state == RoomState::Lingering))
        bad("lingering", "room %s is %s with %zu seats", id, room_state_name(r.state), r.seats.size());
      if (r.seats.size() != model_rooms[r.id]) bad("seats", "room %s has %zu seats, model %zu", id, r.seats.size(), model_rooms[r.id]);
      size_t readers = 0, bytes = 0;
      for (const HeldEvent& h : r.held) bytes += h.payload.size();
      if (bytes != r.held_bytes) bad("held", "room %s: held_bytes %zu, held events %zu bytes", id, r.held_bytes, bytes);
      held += r.held_bytes;
      if (r.sync_inflight && r.state != RoomState::Syncing) bad("sync", "room %s has a sync in flight while %s", id, room_state_name(r.state));
      for (size_t i = 0; i < r.seats.size(); i++) {
        const Seat& seat = r.seats[i];
        readers += seat.state == SeatState::Reading;
        auto mit = members.find(seat.member->member_id());
        if (mit == members.end() || mit->second.get() != seat.member) {
          bad("index", "room %s seat %zu holds a member that is gone", id, i);
          continue;
        }
        size_t slots = 0;
        for (const RoomSlot& slot : seat.member->room_slots())
          if (slot.room == &r) {
            slots++;
            if (slot.seat != i) bad("index", "room %s: m%llu's slot says seat %u, it is seat %zu", id, ull(seat.member->member_id()), slot.seat, i);
          }
        if (slots != 1) bad("index", "room %s: m%llu has %zu slots for it", id, ull(seat.member->member_id()), slots);
        auto sit = seats.find(std::make_pair(seat.member->member_id(), r.id));
        if (sit == seats.end()) {
          bad("seats", "room %s seats m%llu, which the model has left", id, ull(seat.member->member_id()));
        } else if (seat.has_pos != sit->second.got_joined || seat.announced != sit->second.got_joined) {
          bad("seats", "room %s: m%llu has_pos %d announced %d, joined given %d", id, ull(seat.member->member_id()), seat.has_pos, seat.announced, sit->second.got_joined);
        }
      }
      if (readers != r.readers) bad("readers", "room %s counts %u readers, %zu seats are reading", id, r.readers, readers);
      if (r.readers == 0 && r.state != RoomState::Syncing && !r.held.empty())
        bad("held", "room %s (%s) holds %zu events with nobody reading", id, room_state_name(r.state), r.held.size());
    });
    if (visited != rooms->size()) bad("index", "for_each visits %zu rooms, size() %zu", visited, rooms->size());
    if (held != rooms->held_bytes()) bad("held", "held_bytes() %zu, rooms hold %zu", rooms->held_bytes(), held);
    if (broker.subscriptions() != rooms->size()) bad("subscription", "%zu rooms, %zu subscriptions", rooms->size(), broker.subscriptions());
    for (const auto& [id, n] : model_rooms)
      if (!rooms->find(id)) bad("seats", "room %s with %zu members does not exist", id.c_str(), n);
    for (const auto& [id, m] : members) {
      std::set<const Room*> seen;
      for (const RoomSlot& slot : m->room_slots()) {
        if (!seen.insert(slot.room).second) bad("index", "m%llu lists a room twice", ull(id));
        if (rooms->find(slot.room->id) != slot.room) bad("index", "m%llu's slot points at a room that is gone", ull(id));
        else if (slot.seat >= slot.room->seats.size() || slot.room->seats[slot.seat].member != m.get())
          bad("index", "m%llu's slot for %s points at another seat", ull(id), slot.room->id.c_str());
      }
      if (m->room_slots().size() != rooms_of(id)) bad("index", "m%llu is in %zu rooms, model %zu", ull(id), m->room_slots().size(), rooms_of(id));
    }
    for (const auto& [id, at] : emptied_)
      if (at + cfg.limits.linger_ms <= last_tick_ && rooms->find(id))
        bad("linger", "room %s, empty since %llu, still exists at %llu (linger %llu ms)", id.c_str(), ull(at), ull(last_tick_), ull(cfg.limits.linger_ms));
    if (presence_want != broker.presence) {
      std::string diff;
      std::set<std::string> keys;
      for (const auto& [k, n] : presence_want) keys.insert(k);
      for (const auto& [k, n] : broker.presence) keys.insert(k);
      for (const std::string& k : keys) {
        int want = presence_want.count(k) ? presence_want.at(k) : 0, got = broker.presence.count(k) ? broker.presence.at(k) : 0;
        if (want != got) diff += " [" + k + "] published " + std::to_string(got) + ", want " + std::to_string(want);
      }
      bad("presence", "%s", diff.c_str());
    }
  }

  // After the schedule: the broker comes back and answers everything; every member must then hold every
  // chat it is owed, every join be answered, nothing be held; then linger passes and empty rooms go.
  void quiesce_and_check() {
    note("quiesce");
    broker.fail_pct = broker.busy_pct = broker.fail_next = 0;
    broker.reconnect();
    settle();
    if (!broker.idle() || broker.conn() != FakeRedis::Conn::Ready)
      bad("quiesce", "the broker still has work after settling: %zu commands, %zu pushes", broker.pending_cmds(), broker.pending_pushes());
    for (const auto& [key, s] : seats) {
      unsigned long long mid = ull(key.first);
      const char* room = key.second.c_str();
      if (!s.got_joined) {
        bad("no-joined", "m%llu never got joined for %s", mid, room);
        continue;
      }
      if (!s.pending.empty()) bad("join-unanswered", "m%llu's join %s of %s was never answered", mid, s.pending.back().ref.c_str(), room);
      for (const auto& [id, pub] : broker.pubs(key.second))
        if (s.floor < id && !pub.trimmed && !s.received.count(id)) {
          bad("lost", "m%llu in %s never got %s (owed since %s)", mid, room, id_text(id).c_str(), id_text(s.floor).c_str());
          break;
        }
    }
    rooms->for_each([&](const Room& r) {
      if (r.state != RoomState::Live && r.state != RoomState::Lingering) bad("quiesce", "room %s is still %s", r.id.c_str(), room_state_name(r.state));
      for (const Seat& seat : r.seats)
        if (seat.state != SeatState::Active) bad("quiesce", "room %s: m%llu is not active", r.id.c_str(), ull(seat.member->member_id()));
      if (!broker.confirmed(r.id)) bad("quiesce", "room %s is not confirmed", r.id.c_str());
    });
    if (rooms->held_bytes() != 0) bad("held", "%zu bytes still held after quiescence", rooms->held_bytes());
    check_structure();
    tick(cfg.limits.linger_ms + 1);
    rooms->for_each([&](const Room& r) {
      if (r.seats.empty()) bad("linger", "room %s has no members and outlived its linger", r.id.c_str());
    });
    check_structure();
  }

  // ---- reporting ----

  [[gnu::format(printf, 3, 4)]] void bad(const char* category, const char* fmt, ...) {
    // ROOMS_IGNORE=cat1,cat2 looks past known findings (to see what else breaks).
    static const std::string ignore = getenv("ROOMS_IGNORE") ? "," + std::string(getenv("ROOMS_IGNORE")) + "," : "";
    if (!ignore.empty() && ignore.find("," + std::string(category) + ",") != std::string::npos) return;
    violations++;
    if (violations > 1) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    first_category = category;
    first = std::string(category) + (step ? ": step " + std::to_string(step) : std::string()) + ": " + buf;
    if (verbose_) print_message("    VIOLATION %s\n", first.c_str());
  }
  [[gnu::format(printf, 2, 3)]] void note(const char* fmt, ...) {
    if (!verbose_) return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (verbose_) print_message("  %4zu %s\n", step, buf);
  }
  static unsigned long long ull(uint64_t v) { return static_cast<unsigned long long>(v); }

  Config cfg;
  Rng rng;
  uint64_t now = kEpochMs;  // the fake clock: ticks and stream ids
  Metrics metrics;
  proto::WsFramePool frames;
  FakeRedis broker;
  std::vector<Client> clients;
  std::vector<std::string> room_ids;
  std::map<uint64_t, std::unique_ptr<FakeMember>> members;  // before rooms: ~Rooms touches their slots
  std::unique_ptr<Rooms> rooms;
  std::map<std::pair<uint64_t, std::string>, SeatModel> seats;  // (member, room) -> the model
  std::map<std::string, int> presence_want;                      // as FakeRedis::presence

  size_t step = 0, violations = 0;
  std::string first, first_category;
  std::string last_ref;  // the ref of the last join sent (JSON text)
  size_t joins = 0, repeats = 0, drops = 0, chats = 0, joined = 0, live = 0, truncateds = 0, presences = 0;

 private:
  void seat_gone(const std::pair<uint64_t, std::string>& key) {
    auto it = seats.find(key);
    if (it->second.got_joined) presence_want[key.second + " leave " + members[key.first]->member_user().id]++;
    seats.erase(it);
    for (const auto& [k, s] : seats)
      if (k.second == key.second) return;
    emptied_[key.second] = last_tick_;
  }

  bool verbose_;
  uint64_t last_tick_ = 0;
  uint64_t next_member_ = 1;
  uint64_t refs_ = 0;
  std::string expect_error_;  // the ref of a join over the cap being sent: its error is due now
  std::map<std::string, uint64_t> emptied_;  // rooms without members: since when (Rooms' tick time)
};

void FakeMember::send_frame(SharedBuf* frame) {
  // A server frame: FIN + text, unmasked, length in 7, 16 or 64 bits.
  const uint8_t* p = reinterpret_cast<const uint8_t*>(frame->data());
  size_t n = frame->size(), len = 0, header = 2;
  if (n < 2 || p[0] != 0x81 || (p[1] & 0x80)) {
    world_->bad("frame", "m%llu got a frame that is not an unmasked final text frame", World::ull(id_));
    return;
  }
  len = p[1] & 0x7f;
  if (len == 126) {
    header = 4;
    len = n >= 4 ? (size_t{p[2]} << 8 | p[3]) : 0;
  } else if (len == 127) {
    header = 10;
    len = 0;
    for (size_t i = 2; i < 10 && i < n; i++) len = len << 8 | p[i];
  }
  if (n != header + len) {
    world_->bad("frame", "m%llu got a frame of %zu bytes announcing %zu + %zu", World::ull(id_), n, header, len);
    return;
  }
  log.emplace_back(frame->data() + header, len);
  world_->on_event(*this, log.back());
}

void FakeMember::send_event(std::string_view json) {
  log.emplace_back(json);
  world_->on_event(*this, json);
}

// ---- random schedules ----------------------------------------------------------------------------

Config config_for(uint64_t seed) {
  Rng r(seed * 0xD1B54A32D192ED03ull + 7);
  Config c;
  c.rooms = 1 + r.below(3);
  c.clients = 2 + r.below(5);
  c.retention = r.below(4) == 0 ? 3 + r.below(12) : 1000000;
  c.limits.history = r.below(3) == 0 ? 1 + r.below(4) : 50;
  c.limits.joined_max_bytes = r.below(4) == 0 ? 600 + r.below(1500) : 512 * 1024;
  c.limits.held_room_bytes = r.below(4) == 0 ? 200 + r.below(600) : 4 << 20;
  c.limits.held_total_bytes = r.below(6) == 0 ? 700 : 64 << 20;
  c.limits.linger_ms = 10 + r.below(80);
  c.limits.max_rooms = r.below(4) == 0 ? 2 : 100;
  c.cluster = r.below(2) == 0;
  c.fail_pct = r.below(3) == 0 ? 0 : 3 + static_cast<unsigned>(r.below(15));
  c.busy_pct = r.below(4) == 0 ? 5 : 0;
  c.ready_early = r.below(2) == 0;
  c.shared_user = r.below(3) == 0;
  c.storms = static_cast<unsigned>(r.below(3));
  c.state_first = r.below(2) == 0;
  c.silent_drops = getenv("ROOMS_SILENT_DROPS") != nullptr;
  return c;
}

struct Findings {
  std::map<std::string, std::pair<uint64_t, std::string>> first;  // category -> (first seed, message)
  std::map<std::string, size_t> seeds;                             // category -> seeds failing on it
};

size_t run_seed(uint64_t seed, size_t steps, bool verbose, Findings* findings, World** keep = nullptr) {
  Config cfg = config_for(seed);
  World* w = new World(cfg, seed, verbose);
  if (verbose)
    print_message("seed %llu: %zu rooms, %zu clients, retention %zu, history %zu, joined max %zu, held %zu/%zu, linger %llu, "
                  "max rooms %zu, cluster %d, fail %u%%, busy %u%%, ready early %d, shared user %d\n",
                  World::ull(seed), cfg.rooms, cfg.clients, cfg.retention, cfg.limits.history, cfg.limits.joined_max_bytes,
                  cfg.limits.held_room_bytes, cfg.limits.held_total_bytes, World::ull(cfg.limits.linger_ms), cfg.limits.max_rooms,
                  cfg.cluster, cfg.fail_pct, cfg.busy_pct, cfg.ready_early, cfg.shared_user);
  for (w->step = 1; w->step <= steps && !w->violations; w->step++) {
    w->random_step();
    w->check_structure();
  }
  if (!w->violations) w->quiesce_and_check();
  size_t v = w->violations;
  if (v && findings) {
    findings->seeds[w->first_category]++;
    if (!findings->first.count(w->first_category)) findings->first[w->first_category] = {seed, w->first};
  }
  if (keep) *keep = w;
  else delete w;
  return v;
}

uint64_t env_number(const char* name, uint64_t fallback) {
  const char* v = getenv(name);
  return v && *v ? strtoull(v, nullptr, 0) : fallback;
}

// Random schedules, each seed with its own sizes and limits, each stopping at its first violation; a
// summary names every kind of violation with its first seed. ROOMS_SEED=n replays one seed with its
// trace; ROOMS_SEEDS, ROOMS_STEPS resize; ROOMS_IGNORE=kind,... looks past known findings;
// ROOMS_SILENT_DROPS=1 drops the connection before ready() without telling the rooms, as RedisBroker did
// before 7da7d92 (then a read may run, and `joined` be sent, under a confirmation that died with the
// connection: joined-unsubscribed/-unconfirmed, which the rooms cannot know; the confirmation that follows
// back-fills, so nothing is lost: ROOMS_IGNORE=joined-unsubscribed,joined-unconfirmed finds nothing else).
void test_random_schedules(void**) {
  size_t steps = env_number("ROOMS_STEPS", 400);
  Findings findings;
  if (getenv("ROOMS_SEED")) {
    uint64_t seed = env_number("ROOMS_SEED", 1);
    size_t v = run_seed(seed, steps, true, &findings);
    REQUIRE(v == 0, "seed %llu: %s", World::ull(seed), findings.first.empty() ? "" : findings.first.begin()->second.second.c_str());
    return;
  }
  size_t seeds = env_number("ROOMS_SEEDS", 1000), failing = 0;
  size_t joins = 0, repeats = 0, drops = 0, joined = 0, live = 0, truncated = 0, presences = 0, histories = 0, read_afters = 0,
         failed = 0, refused = 0, disconnects = 0, confirmations = 0, held_overflows = 0, joined_cuts = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t seed = 1; seed <= seeds; seed++) {
    World* w = nullptr;
    failing += run_seed(seed, steps, false, &findings, &w) > 0;
    joins += w->joins, repeats += w->repeats, drops += w->drops, joined += w->joined, live += w->live;
    truncated += w->truncateds, presences += w->presences;
    histories += w->broker.histories, read_afters += w->broker.read_afters, failed += w->broker.failed;
    refused += w->broker.refused, disconnects += w->broker.disconnects, confirmations += w->broker.confirmations;
    held_overflows += w->metrics.bound_hits[static_cast<int>(Bound::HeldEvents)];
    joined_cuts += w->metrics.bound_hits[static_cast<int>(Bound::JoinedSize)];
    delete w;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  print_message("%zu seeds x %zu steps in %.2f s: %zu joins (%zu repeated), %zu drops, %zu joined (%zu truncated), %zu live chats, "
                "%zu presence; broker: %zu history reads, %zu back-fill reads, %zu failed, %zu refused, %zu disconnects, "
                "%zu confirmations; %zu held overflows, %zu joined cut\n",
                seeds, steps, secs, joins, repeats, drops, joined, truncated, live, presences, histories, read_afters, failed,
                refused, disconnects, confirmations, held_overflows, joined_cuts);
  for (const auto& [category, first] : findings.first)
    print_error("  %-26s %3zu seed(s); first: ROOMS_SEED=%llu  %s\n", category.c_str(), findings.seeds[category],
                World::ull(first.first), first.second.c_str());
  EXPECT(failing == 0, "%zu of %zu seeds broke the promise (replay one with ROOMS_SEED=n)", failing, seeds);
  // (Seeds stop at their first violation: the amount of work is only meaningful when none broke. Since
  // 36be484 the held bound counts once per filling, not once per drop: about 0.9 per seed.)
  EXPECT(failing > 0 || (joined > 10 * seeds && live > 50 * seeds && disconnects > seeds && failed > 2 * seeds &&
                         read_afters > 2 * seeds && repeats > seeds && truncated > seeds / 2 && held_overflows > seeds / 2),
         "the schedules exercise too little");
}

// ---- table cases ----------------------------------------------------------------------------------

Config table_config() {
  Config c;
  c.rooms = 3;
  c.clients = 4;
  c.limits.linger_ms = 100;
  return c;
}

// Runs the commands and pushes the broker owes, in order, without faults.
void drain(World& w) {
  while (w.broker.exec_sub() || w.broker.deliver_sub() || w.broker.exec_cmd() || w.broker.deliver_cmd()) {
  }
}

size_t count_type(const FakeMember& m, const char* type) {
  std::string needle = std::string("{\"type\":\"") + type + "\"";
  size_t n = 0;
  for (const std::string& e : m.log) n += e.rfind(needle, 0) == 0;
  return n;
}

// Every chat id the member got in room, joined history and live, in order.
std::vector<std::string> ids_seen(const FakeMember& m) {
  std::vector<std::string> out;
  for (const std::string& e : m.log) {
    rapidjson::Document d;
    d.Parse(e.c_str());
    std::string type = d["type"].GetString();
    if (type == "chat") out.emplace_back(d["id"].GetString());
    if (type == "joined")
      for (const auto& ev : d["history"].GetArray()) out.emplace_back(ev["id"].GetString());
  }
  return out;
}

#define REQUIRE_CLEAN(w) REQUIRE((w).violations == 0, "oracle: %s", (w).first.c_str())

// (1) The broker drops while a first join's history read is in flight: no `joined` until it is back, then
// one with the real history (chats of the outage included) and nothing lost after.
void test_drop_during_first_read(void**) {
  for (int executed = 0; executed < 2; executed++) {
    for (int early = 0; early < 2; early++) {
      World w(table_config(), 1);
      w.publish("room-0");
      w.join(0, "room-0", false);
      drain(w);  // confirmed; the read ran and was answered
      w.join(1, "room-0", false);
      REQUIRE(w.broker.unrun_cmds() == 1, "the second member's history read is out");
      if (executed) w.broker.exec_cmd();  // it ran; its reply is on the wire
      w.publish("room-0");
      w.broker.disconnect();
      FakeMember* m = w.member_of(1, false);
      REQUIRE(count_type(*m, "joined") == 0, "no joined from a dropped read");
      w.publish("room-0");
      w.publish("room-0");
      w.broker.reconnect();
      if (early) w.broker.ready(true);  // up before the re-subscription is confirmed
      drain(w);
      w.broker.ready(true);
      REQUIRE(count_type(*m, "joined") == 0 || w.broker.confirmed("room-0"), "joined only once subscribed");
      drain(w);
      REQUIRE(count_type(*m, "joined") == 1, "joined once the broker is back (%zu)", count_type(*m, "joined"));
      w.publish("room-0");
      drain(w);
      REQUIRE(ids_seen(*m).size() == 5, "the history and the live chat, each once: %zu ids", ids_seen(*m).size());
      REQUIRE(ids_seen(*w.member_of(0, false)).size() == 5, "the first member: back-filled, then live");
      w.quiesce_and_check();
      REQUIRE_CLEAN(w);
    }
  }
}

// (2) A member joins during an outage and stays: it gets the chats of the outage once, and so does a member
// that was there before the outage (back-fill).
void test_join_during_outage(void**) {
  World w(table_config(), 2);
  w.join(0, "room-0", false);
  drain(w);
  w.publish("room-0");
  drain(w);
  w.broker.disconnect();
  w.join(1, "room-0", false);
  for (int i = 0; i < 3; i++) w.publish("room-0");
  w.tick(10);
  w.broker.reconnect();
  drain(w);
  w.broker.ready(false);
  drain(w);
  std::vector<std::string> a = ids_seen(*w.member_of(0, false)), b = ids_seen(*w.member_of(1, false));
  REQUIRE(a.size() == 4, "the old member: 1 before, 3 back-filled: %zu", a.size());
  REQUIRE(b.size() == 4, "the new member: 4 in its history: %zu", b.size());
  REQUIRE(std::set<std::string>(a.begin(), a.end()).size() == 4 && a == b, "once each, same order");
  w.quiesce_and_check();
  REQUIRE_CLEAN(w);
}

// (3) A chat published just before the history read's reply (after the read ran, or before it) is given once.
void test_chat_just_before_reply(void**) {
  for (int when = 0; when < 3; when++) {
    World w(table_config(), 3);
    w.publish("room-0");
    w.join(0, "room-0", false);
    w.broker.exec_sub();
    w.broker.deliver_sub();  // confirmed: the read is out
    if (when == 0) w.publish("room-0");  // before the read runs: in the history and live
    w.broker.exec_cmd();
    if (when >= 1) w.publish("room-0");  // after the read ran: only live
    if (when == 1) w.broker.deliver_sub();  // the live copy comes first
    w.broker.deliver_cmd();
    drain(w);
    std::vector<std::string> ids = ids_seen(*w.member_of(0, false));
    REQUIRE(ids.size() == 2 && ids[0] != ids[1], "case %d: two chats, once each (%zu)", when, ids.size());
    w.quiesce_and_check();
    REQUIRE_CLEAN(w);
  }
}

// (8) Churn in one room does not keep other lingering rooms from being released.
void test_churn_does_not_hold_linger(void**) {
  World w(table_config(), 8);
  w.join(0, "room-0", false);
  w.join(1, "room-1", false);
  drain(w);
  w.leave(0, "room-0");  // room-0 lingers from now (tick time)
  for (int i = 0; i < 30; i++) {
    w.join(1, "room-2", false);
    drain(w);
    w.leave(1, "room-2");
    w.tick(7);
  }
  REQUIRE(w.rooms->find("room-0") == nullptr, "room-0 released after its linger despite churn elsewhere");
  REQUIRE(!w.broker.wanted("room-0"), "and unsubscribed");
  w.check_structure();
  REQUIRE_CLEAN(w);
}

// (9) Rooms still subscribing while the broker is down are released when their members go.
void test_subscribing_rooms_released(void**) {
  World w(table_config(), 9);
  w.broker.disconnect();
  w.join(0, "room-0", false);
  w.join(1, "room-1", false);
  REQUIRE(w.rooms->size() == 2 && w.broker.wanted("room-0"), "subscribing while down");
  w.leave(0, "room-0");
  w.drop(1);
  REQUIRE(w.rooms->size() == 0 && w.broker.subscriptions() == 0, "both released: %zu rooms, %zu subscriptions", w.rooms->size(), w.broker.subscriptions());
  w.broker.reconnect();
  w.broker.ready(true);
  drain(w);
  REQUIRE(w.rooms->size() == 0, "nothing comes back");
  // Up, but the confirmation not there yet: the same.
  w.join(2, "room-2", false);
  w.leave(2, "room-2");
  REQUIRE(w.rooms->size() == 0 && !w.broker.wanted("room-2"), "released before its confirmation");
  drain(w);
  w.check_structure();
  REQUIRE_CLEAN(w);
}

// (15) A room erased and made again while a slow read is in flight: the stale reply is ignored.
void test_stale_reply_after_recreate(void**) {
  World w(table_config(), 15);
  for (int i = 0; i < 3; i++) w.publish("room-0");
  w.join(0, "room-0", false);
  w.broker.exec_sub();
  w.broker.deliver_sub();
  REQUIRE(w.broker.unrun_cmds() == 1, "the first read is out");
  w.leave(0, "room-0");
  w.tick(101);  // lingered out: erased, unsubscribed
  REQUIRE(w.rooms->size() == 0, "room-0 released");
  w.join(0, "room-0", true);
  w.publish("room-0");
  w.broker.exec_cmd();     // the stale read runs...
  w.broker.deliver_cmd();  // ...and is answered: ignored
  FakeMember* m = w.member_of(0, false);
  REQUIRE(count_type(*m, "joined") == 0, "no joined from the erased room's read");
  drain(w);
  REQUIRE(count_type(*m, "joined") == 1, "one joined, from the new room's read");
  REQUIRE(ids_seen(*m).size() == 4, "its history: %zu", ids_seen(*m).size());
  w.quiesce_and_check();
  REQUIRE_CLEAN(w);
}

// A repeated join whose read fails: the member stays active, and chats given meanwhile to the others
// reach it too, in order, before anything newer.
void test_repeated_join_read_fails(void**) {
  World w(table_config(), 16);
  w.join(0, "room-0", false);
  w.join(1, "room-0", false);
  drain(w);
  w.publish("room-0");
  drain(w);
  w.join(0, "room-0", false);  // again: its read is out
  w.publish("room-0");         // held for it, live for member 1
  w.broker.deliver_sub();
  w.broker.fail_next = 1;
  w.broker.exec_cmd();
  w.broker.deliver_cmd();  // the read fails
  w.publish("room-0");
  w.broker.deliver_sub();  // live, before any retry
  w.quiesce_and_check();
  REQUIRE_CLEAN(w);
}

// The i-th event of a member's log, parsed.
rapidjson::Document event_at(const FakeMember& m, size_t i) {
  rapidjson::Document d;
  d.Parse(m.log.at(i).c_str());
  return d;
}
std::string type_of(const rapidjson::Document& d) { return d.HasMember("type") ? d["type"].GetString() : ""; }
// A `joined`'s history ids, ref and truncated.
std::vector<std::string> history_ids(const rapidjson::Document& d) {
  std::vector<std::string> out;
  for (const auto& ev : d["history"].GetArray()) out.emplace_back(ev["id"].GetString());
  return out;
}
std::string ref_of(const rapidjson::Document& d) { return d.HasMember("ref") ? json_of(d["ref"]) : ""; }
bool truncated_of(const rapidjson::Document& d) { return d.HasMember("truncated") && d["truncated"].GetBool(); }
std::vector<std::string> texts(const std::vector<MsgId>& ids) {
  std::vector<std::string> out;
  for (const MsgId& id : ids) out.push_back(id_text(id));
  return out;
}

// A join sent while the seat's read is in flight is answered after it, each with its own ref and its own
// history: the reconnecting client asks first without since (the last --history chats), then with since
// (everything after it). A chat posted while the first read is out comes after the first `joined`
// (held), then in the second one's history (a new session), and the next one live, once.
void test_repeated_join_since_while_reading(void**) {
  Config c = table_config();
  c.limits.history = 2;
  World w(c, 17);
  for (int i = 0; i < 6; i++) w.publish("room-0");
  w.join(0, "room-0", false);
  drain(w);
  MsgId since = w.clients[0].last_seen["room-0"];
  std::vector<MsgId> missed;
  for (int i = 0; i < 5; i++) missed.push_back(w.publish("room-0"));
  drain(w);
  w.drop(0);  // the client reconnects and asks for what it missed, twice (once without since, then with it)
  drain(w);   // (the presence leave)
  w.join(0, "room-0", false);
  std::string first = w.last_ref;
  REQUIRE(w.broker.unrun_cmds() == 1, "the first join's read is out");
  w.clients[0].last_seen["room-0"] = since;
  w.join(0, "room-0", true);
  std::string second = w.last_ref;
  REQUIRE(w.broker.unrun_cmds() == 1, "no second read while the first is out");
  w.broker.exec_cmd();               // the first read runs
  MsgId x = w.publish("room-0");     // after it ran: held for the member
  w.broker.deliver_sub();
  w.broker.deliver_cmd();            // the first `joined`, then x; the second read goes out
  REQUIRE(w.broker.unrun_cmds() == 2, "the presence join and the second join's read are out after the first joined");
  drain(w);
  MsgId y = w.publish("room-0");
  drain(w);
  FakeMember* m = w.member_of(0, false);
  REQUIRE(m->log.size() == 4, "joined, chat, joined, chat: %zu events", m->log.size());
  rapidjson::Document j1 = event_at(*m, 0), c1 = event_at(*m, 1), j2 = event_at(*m, 2), c2 = event_at(*m, 3);
  REQUIRE(type_of(j1) == "joined" && ref_of(j1) == first, "the first joined answers the first join (%s)", ref_of(j1).c_str());
  REQUIRE(history_ids(j1) == texts({missed[3], missed[4]}) && !truncated_of(j1), "its history: the last 2 chats (%zu)", history_ids(j1).size());
  REQUIRE(type_of(c1) == "chat" && std::string(c1["id"].GetString()) == id_text(x), "then the chat held during its read");
  std::vector<MsgId> after = missed;
  after.push_back(x);
  REQUIRE(type_of(j2) == "joined" && ref_of(j2) == second, "the second joined answers the second join (%s)", ref_of(j2).c_str());
  REQUIRE(history_ids(j2) == texts(after) && !truncated_of(j2), "its history: everything after its since (%zu)", history_ids(j2).size());
  REQUIRE(type_of(c2) == "chat" && std::string(c2["id"].GetString()) == id_text(y), "then live");
  REQUIRE(w.broker.presence["room-0 join u0"] == 2, "one presence join per seat (two connections)");
  w.quiesce_and_check();
  REQUIRE_CLEAN(w);
}

// A member in the room repeats its join during an outage in which more chats than the history limit were
// posted. The repeated join is a new session, answered once the broker is back like a first join: without
// since, the last --history chats (the older ones are not owed: continuity is what since is for); with
// since (its last id), all of them. Two joins while the seat waits are answered in turn, each with its
// own ref and history (since 7d6a311; they coalesced before).
void test_repeated_join_during_outage(void**) {
  struct Case {
    const char* name;
    std::vector<bool> joins;  // with since? (each answered: all 6 outage chats with since, else the last 3)
  };
  const Case cases[] = {
      {"no since", {false}},
      {"since", {true}},
      {"since, then none", {true, false}},
      {"none, then since", {false, true}},
  };
  for (const Case& k : cases) {
    Config c = table_config();
    c.limits.history = 3;
    World w(c, 20);
    w.join(0, "room-0", false);
    drain(w);
    w.publish("room-0");
    drain(w);
    w.broker.disconnect();
    std::vector<MsgId> outage;
    for (int i = 0; i < 6; i++) outage.push_back(w.publish("room-0"));
    std::vector<std::string> refs;
    for (bool since : k.joins) {  // the client asks again while the server cannot answer
      w.join(0, "room-0", since);
      refs.push_back(w.last_ref);
    }
    w.broker.reconnect();
    w.broker.ready(true);
    drain(w);
    MsgId z = w.publish("room-0");
    drain(w);
    FakeMember* m = w.member_of(0, false);
    size_t n = k.joins.size();
    REQUIRE(count_type(*m, "joined") == 1 + n, "%s: the first joined and one answer per join: %zu", k.name, count_type(*m, "joined"));
    REQUIRE(m->log.size() == 3 + n, "%s: joined, chat, the answers, chat: %zu events", k.name, m->log.size());
    for (size_t i = 0; i < n; i++) {
      rapidjson::Document j = event_at(*m, 2 + i);
      REQUIRE(type_of(j) == "joined" && ref_of(j) == refs[i], "%s: answer %zu carries its join's ref (%s)", k.name, i, ref_of(j).c_str());
      std::vector<MsgId> want = k.joins[i] ? outage : std::vector<MsgId>(outage.end() - 3, outage.end());
      REQUIRE(history_ids(j) == texts(want) && !truncated_of(j), "%s: answer %zu: history of %zu chats, want %zu", k.name, i,
              history_ids(j).size(), want.size());
    }
    rapidjson::Document live = event_at(*m, 2 + n);
    REQUIRE(type_of(live) == "chat" && std::string(live["id"].GetString()) == id_text(z), "%s: then live", k.name);
    w.quiesce_and_check();
    REQUIRE_CLEAN(w);
  }
}

// Joins of one room waiting for their answer are bounded: one more is answered at once with an error
// carrying its ref (and is not queued); the others are answered in turn.
void test_repeated_joins_bounded(void**) {
  World w(table_config(), 25);
  w.join(0, "room-0", false);
  drain(w);
  w.broker.disconnect();
  std::vector<std::string> refs;
  for (size_t i = 0; i < kJoinsWaiting; i++) {
    w.join(0, "room-0", i % 2 == 0);
    refs.push_back(w.last_ref);
  }
  FakeMember* m = w.member_of(0, false);
  REQUIRE(m->log.size() == 1, "no answer while the broker is down: %zu events", m->log.size());
  w.join(0, "room-0", false);
  REQUIRE(m->log.size() == 2 && type_of(event_at(*m, 1)) == "error" && ref_of(event_at(*m, 1)) == w.last_ref,
          "one join too many: an error with its ref");
  w.broker.reconnect();
  w.broker.ready(true);
  drain(w);
  REQUIRE(m->log.size() == 2 + kJoinsWaiting, "every waiting join answered: %zu events", m->log.size());
  for (size_t i = 0; i < kJoinsWaiting; i++)
    REQUIRE(ref_of(event_at(*m, 2 + i)) == refs[i], "answer %zu carries ref %s", i, ref_of(event_at(*m, 2 + i)).c_str());
  w.quiesce_and_check();
  REQUIRE_CLEAN(w);
}

// A repeated join of an active member is a new session: from the join until its `joined` the member is
// given nothing (a chat meanwhile is held), then `joined` and, above its position, what was held.
void test_repeated_join_holds_live(void**) {
  World w(table_config(), 23);
  w.join(0, "room-0", false);
  w.join(1, "room-0", false);
  drain(w);
  MsgId a = w.publish("room-0");
  drain(w);
  FakeMember* m = w.member_of(0, false);
  size_t before = m->log.size();
  w.join(0, "room-0", false);  // again, while active: its read goes out
  std::string ref = w.last_ref;
  w.broker.exec_cmd();             // the read runs (position a)
  MsgId b = w.publish("room-0");   // after it: live for member 1, held for member 0
  w.broker.deliver_sub();
  REQUIRE(m->log.size() == before, "nothing for the rejoining member before its joined (%zu new events)", m->log.size() - before);
  std::vector<std::string> other = ids_seen(*w.member_of(1, false));
  REQUIRE(!other.empty() && other.back() == id_text(b), "the other member got it live");
  w.broker.deliver_cmd();
  REQUIRE(m->log.size() == before + 2, "joined and the held chat: %zu new events", m->log.size() - before);
  rapidjson::Document j = event_at(*m, before), held = event_at(*m, before + 1);
  REQUIRE(type_of(j) == "joined" && ref_of(j) == ref && history_ids(j) == texts({a}), "joined answers the repeated join with its history");
  REQUIRE(type_of(held) == "chat" && std::string(held["id"].GetString()) == id_text(b), "then the held chat");
  REQUIRE(w.broker.presence["room-0 join u0"] == 1, "no second presence join");
  w.quiesce_and_check();
  REQUIRE_CLEAN(w);
}

// A member whose first read finishes while a back-fill read (from a higher position) is in flight must
// not be given that page over the chats in between.
void test_backfill_page_skips_nobody(void**) {
  Config c = table_config();
  c.limits.held_room_bytes = 300;  // two held chats overflow: the room re-reads its stream
  World w(c, 21);
  w.join(0, "room-0", false);
  drain(w);  // A active
  w.join(1, "room-0", false);
  w.broker.exec_cmd();  // B's history read runs: position before c1
  w.publish("room-0", 100);
  w.publish("room-0", 100);
  w.broker.deliver_sub();  // c1: live to A, held for B
  w.broker.deliver_sub();  // c2: live to A; holding it overflows: back-fill from A's position (c2)
  w.publish("room-0", 100);
  w.broker.deliver_sub();  // c3: held while syncing
  w.broker.deliver_cmd();  // B's joined (history up to its position, before c1)
  drain(w);                // the back-fill page [c3] comes back
  std::vector<std::string> b = ids_seen(*w.member_of(1, false));
  REQUIRE(b.size() == 3, "B got %zu of the 3 chats", b.size());
  w.quiesce_and_check();
  REQUIRE_CLEAN(w);
}

// A broker that reports no outage when the connection drops before it was ready (RedisBroker before
// 7da7d92), though the rooms may already have been confirmed on that connection. A join's read then runs
// before the room is subscribed again; a chat posted in between must still reach the member.
void test_drop_before_ready(void**) {
  World w(table_config(), 22);
  w.broker.silent_drops = true;
  w.broker.disconnect();  // reported: it was ready
  w.broker.reconnect();
  w.join(0, "room-0", false);
  drain(w);  // confirmed while not ready: the room is live, the member waits for up
  w.broker.disconnect();  // not reported: it never was ready on this connection
  w.broker.reconnect();
  w.broker.ready(true);  // up before the re-subscription is confirmed: the member's read goes out
  w.broker.exec_cmd();   // and runs while Redis has no subscription for the room
  MsgId x = w.publish("room-0");
  drain(w);
  FakeMember* m = w.member_of(0, false);
  std::vector<std::string> ids = ids_seen(*m);
  EXPECT(std::find(ids.begin(), ids.end(), id_text(x)) != ids.end(), "the chat posted before the room was subscribed again was given (%zu ids)", ids.size());
  w.quiesce_and_check();
  REQUIRE_CLEAN(w);
}

// A `joined` over 512 KiB: its history is cut from the oldest end, with truncated, keeping all that fits.
void test_joined_size_limit(void**) {
  World w(table_config(), 18);
  for (int i = 0; i < 80; i++) w.publish("room-0", 12000);
  w.join(0, "room-0", false);
  drain(w);
  FakeMember* m = w.member_of(0, false);
  REQUIRE(count_type(*m, "joined") == 1, "joined");
  const std::string& j = m->log.front();
  rapidjson::Document d;
  d.Parse(j.c_str());
  size_t n = d["history"].Size();
  print_message("joined: %zu bytes, %zu of 50 asked chats\n", j.size(), n);
  EXPECT(j.size() <= 512 * 1024, "at most 512 KiB: %zu", j.size());
  EXPECT(d.HasMember("truncated") && d["truncated"].GetBool(), "truncated said");
  EXPECT(n > 0 && std::string(d["history"][n - 1]["id"].GetString()) == id_text(w.broker.pubs("room-0").rbegin()->first), "the newest chat kept");
  EXPECT(j.size() + 12200 > 512 * 1024, "cut no more than needed: %zu bytes with %zu chats of ~12 KB", j.size(), n);
  EXPECT(w.violations == 0, "oracle: %s", w.first.c_str());
}

// Never over the limit, whatever the sizes: when the broker's read fits its byte budget but the frame
// does not, the cut adds "truncated":true, and that must fit too. Sweeps chat sizes so the room left
// after the cut takes every value.
void test_joined_size_sweep(void**) {
  size_t over = 0, worst = 0, cases = 0, first_pad = 0;
  for (size_t pad = 0; pad < 120; pad++) {
    Config c = table_config();
    c.limits.joined_max_bytes = 1200;
    World w(c, 24);
    size_t bytes = 0;
    for (;;) {  // as many chats as the broker's budget (event bytes) takes whole
      MsgId id = w.publish("room-0", pad);
      bytes += w.broker.pubs("room-0").at(id).payload.size();
      if (bytes + w.broker.pubs("room-0").at(id).payload.size() > c.limits.joined_max_bytes) break;
    }
    w.join(0, "room-0", false);
    drain(w);
    FakeMember* m = w.member_of(0, false);
    REQUIRE(count_type(*m, "joined") == 1, "pad %zu: joined", pad);
    size_t size = m->log.front().size();
    cases++;
    if (size > c.limits.joined_max_bytes) {
      if (!over++) first_pad = pad;
      worst = std::max(worst, size - c.limits.joined_max_bytes);
    }
  }
  EXPECT(over == 0, "%zu of %zu joined frames exceeded the limit, by up to %zu bytes (first with %zu-byte padding)", over, cases,
         worst, first_pad);
}

// More than 1000 members: `joined` lists 1000, says membersTruncated, and counts them all.
void test_members_truncated(void**) {
  Config c = table_config();
  c.clients = 1001;
  World w(c, 19);
  w.broker.echo_presence = false;  // 10^6 presence frames would only slow the case down
  for (size_t i = 0; i < c.clients; i++) w.join(i, "room-0", false);
  drain(w);
  for (size_t i : {size_t{998}, size_t{999}, size_t{1000}}) {
    FakeMember* m = w.member_of(i, false);
    REQUIRE(count_type(*m, "joined") == 1, "member %zu joined", i);
    rapidjson::Document d;
    d.Parse(m->log.front().c_str());
    bool truncated = d.HasMember("membersTruncated") && d["membersTruncated"].GetBool();
    EXPECT(d["count"].GetUint64() == i + 1, "member %zu: count %llu", i, World::ull(d["count"].GetUint64()));
    EXPECT(d["members"].Size() == std::min<size_t>(i + 1, 1000), "member %zu: %u listed", i, d["members"].Size());
    EXPECT(truncated == (i + 1 > 1000), "member %zu: membersTruncated %d", i, truncated);
  }
  EXPECT(w.metrics.bound_hits[static_cast<int>(Bound::MembersListed)] == 1, "the bound bit once");
  w.check_structure();
  EXPECT(w.violations == 0, "oracle: %s", w.first.c_str());
}

// HeldQueue against a std::deque model: random pushes, pops and clears keep the same events in the same
// order, through the compactions; emptied, it owns no memory.
void test_held_queue_model(void**) {
  HeldQueue q;
  std::deque<uint64_t> model;
  uint64_t next = 1, seed = 12345;
  for (int step = 0; step < 200000; step++) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    uint32_t r = static_cast<uint32_t>(seed >> 33) % 100;
    if (r < 55) {
      q.push_back(HeldEvent{MsgId{next, 0}, std::to_string(next)});
      model.push_back(next++);
    } else if (r < 99) {
      if (model.empty()) continue;
      assert_true(q.front().id.ms == model.front());
      q.pop_front();
      model.pop_front();
    } else {
      q.clear();
      model.clear();
    }
    assert_int_equal(q.size(), model.size());
    assert_int_equal(q.empty(), model.empty());
    if (!model.empty()) {
      size_t i = static_cast<size_t>(seed >> 20) % model.size();
      assert_true(q[i].id.ms == model[i] && q[i].payload == std::to_string(model[i]));
    }
    if (step % 997 == 0) {
      size_t k = 0;
      for (const HeldEvent& h : q) assert_true(h.id.ms == model[k++]);
      assert_int_equal(k, model.size());
    }
  }
  while (!model.empty()) {
    q.pop_front();
    model.pop_front();
  }
  assert_true(q.empty() && q.begin() == q.end());
}

}  // namespace

int main() {
  g_log_level = kLogError;
  const struct CMUnitTest tests[] = {
      TEST(test_drop_during_first_read),
      TEST(test_join_during_outage),
      TEST(test_chat_just_before_reply),
      TEST(test_churn_does_not_hold_linger),
      TEST(test_subscribing_rooms_released),
      TEST(test_stale_reply_after_recreate),
      TEST(test_repeated_join_read_fails),
      TEST(test_repeated_join_since_while_reading),
      TEST(test_repeated_join_during_outage),
      TEST(test_repeated_join_holds_live),
      TEST(test_repeated_joins_bounded),
      TEST(test_backfill_page_skips_nobody),
      TEST(test_drop_before_ready),
      TEST(test_joined_size_limit),
      TEST(test_joined_size_sweep),
      TEST(test_members_truncated),
      TEST(test_random_schedules),
      TEST(test_held_queue_model),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
