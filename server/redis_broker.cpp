// The Redis broker: a thin adapter from the server's Broker interface to redis::Client.
// Rule: a chat is one script call that appends to the room's stream and PUBLISHes once, so the
// stream order and the channel order are the same order, and the id comes from the stream.
#include "server/redis_broker.h"

#include <sys/time.h>

#include <algorithm>
#include <cstdlib>
#include <initializer_list>

#include "redis/client.h"
#include "server/log.h"

namespace roomcast::server {

namespace {

// KEYS[1] stream, KEYS[2] channel; ARGV[1] event prefix, ARGV[2] suffix, ARGV[3] history length,
// ARGV[4] stream TTL in ms. The stream keeps prefix and suffix; an event is p .. id .. s.
// Old entries go by XDEL rather than XADD MAXLEN: trimming leaves XINFO's max-deleted-entry-id at
// 0-0, and the history read needs it to say `truncated` exactly.
// ARGV[5]: a deadline in Redis's own clock (ms), or 0. A chat that reaches Redis after it is refused:
// the instance may already have answered `unavailable` (say, after a freeze), so it must not appear late.
const char* kPublishScript =
    "if ARGV[5] ~= '0' then\n"
    "  local t = redis.call('TIME')\n"
    "  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[5]) then\n"
    "    return redis.error_reply('EXPIRED chat reached Redis after its deadline')\n"
    "  end\n"
    "end\n"
    "local id = redis.call('XADD', KEYS[1], '*', 'p', ARGV[1], 's', ARGV[2])\n"
    "local extra = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[3])\n"
    "if extra > 0 then\n"
    "  local old = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', extra)\n"
    "  for i = 1, #old do redis.call('XDEL', KEYS[1], old[i][1]) end\n"
    "end\n"
    "redis.call('PUBLISH', KEYS[2], ARGV[1] .. id .. ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
    "return id\n";

// KEYS[1] stream; ARGV[1] since ('' for none), ARGV[2] count. Returns {truncated, entries}, where
// truncated is 1 when the stream dropped an entry newer than since (XINFO's max-deleted-entry-id).
const char* kHistoryScript =
    "local since, entries, truncated = ARGV[1], nil, 0\n"
    "if since == '' then\n"
    "  entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[2])\n"
    "else\n"
    "  entries = redis.call('XRANGE', KEYS[1], '(' .. since, '+')\n"
    "  if redis.call('EXISTS', KEYS[1]) == 1 then\n"
    "    local info = redis.call('XINFO', 'STREAM', KEYS[1])\n"
    "    for i = 1, #info, 2 do\n"
    "      if info[i] == 'max-deleted-entry-id' then\n"
    "        local a1, a2 = string.match(since, '^(%d+)-?(%d*)$')\n"
    "        local b1, b2 = string.match(info[i + 1], '^(%d+)-(%d+)$')\n"
    "        a1, a2, b1, b2 = tonumber(a1), tonumber(a2) or 0, tonumber(b1), tonumber(b2)\n"
    "        if a1 < b1 or (a1 == b1 and a2 < b2) then truncated = 1 end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return {truncated, entries}\n";

// Rebuilds one event from an XRANGE entry [id, [field, value, ...]].
bool entry_event(const redis::Value& entry, std::string* out) {
  if (entry.type != redis::Value::Type::Array || entry.elements.size() != 2) return false;
  const redis::Value& fields = entry.elements[1];
  const std::string* p = nullptr;
  const std::string* s = nullptr;
  for (size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
    if (fields.elements[i].str == "p") p = &fields.elements[i + 1].str;
    if (fields.elements[i].str == "s") s = &fields.elements[i + 1].str;
  }
  if (!p || !s) return false;
  *out = *p + entry.elements[0].str + *s;
  return true;
}

// Membership: field = user id, value = "<instance id>\n<user json>". An instance keeps the key
// <prefix>roomcast:instance:<id> alive (30 s TTL, renewed every 10 s); members of an instance whose
// key is gone are dropped when read, so a dead instance's members vanish within 30 s.
// KEYS[1] members hash; ARGV[1] instance key prefix. Returns the user JSON of live members.
const char* kMembersScript =
    "local all, out, alive = redis.call('HGETALL', KEYS[1]), {}, {}\n"
    "for i = 1, #all, 2 do\n"
    "  local v = all[i + 1]\n"
    "  local nl = string.find(v, '\\n', 1, true)\n"
    "  if nl then\n"
    "    local inst = string.sub(v, 1, nl - 1)\n"
    "    if alive[inst] == nil then alive[inst] = redis.call('EXISTS', ARGV[1] .. inst) == 1 end\n"
    "    if alive[inst] then out[#out + 1] = string.sub(v, nl + 1) else redis.call('HDEL', KEYS[1], all[i]) end\n"
    "  else\n"
    "    redis.call('HDEL', KEYS[1], all[i])\n"
    "  end\n"
    "end\n"
    "return out\n";

// KEYS[1] members hash; ARGV[1] user id, ARGV[2] this instance's id. Removes the field only if this
// instance wrote it (the same user may have joined again elsewhere since).
const char* kMemberLeaveScript =
    "local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if v and string.sub(v, 1, #ARGV[2] + 1) == ARGV[2] .. '\\n' then redis.call('HDEL', KEYS[1], ARGV[1]) end\n"
    "return 0\n";

constexpr uint64_t kInstanceTtlMs = 30000, kHeartbeatMs = 10000;
constexpr int64_t kPublishDeadlineMs = 1000;  // a chat must reach Redis within this (see kPublishScript)

constexpr const char* kHistoryTtlMs = "604800000";  // a week without a message and the history goes

class RedisBroker : public Broker {
 public:
  RedisBroker(uv_loop_t* loop, const Config& config, redis::Url url, BrokerEvents* events)
      : events_(events),
        prefix_(config.redis_prefix),
        history_(std::to_string(config.history)),
        instance_(config.instance_id) {
    uv_timer_init(loop, &heartbeat_);
    heartbeat_.data = this;
    redis::Options opts;
    opts.instance_id = config.instance_id;
    opts.prefix = config.redis_prefix;
    opts.log_level = config.log_level;
    opts.log = [](int level, const std::string& line) { RC_LOG(level, "%s", line.c_str()); };
    redis::Client::Callbacks cb;
    cb.on_message = [this](std::string_view channel, std::string_view payload) {
      std::string_view room;
      if (room_of(channel, &room)) events_->on_broker_message(room, payload);
    };
    cb.on_subscribed = [this](std::string_view channel) {
      std::string_view room;
      if (room_of(channel, &room)) events_->on_broker_subscribed(room);
    };
    cb.on_state = [this](bool up) {
      if (up) heartbeat();
      events_->on_broker_state(up);
    };
    client_ = std::make_unique<redis::Client>(loop, std::move(url), std::move(opts), std::move(cb));
  }

  int start() override {
    uv_timer_start(&heartbeat_, [](uv_timer_t* t) { static_cast<RedisBroker*>(t->data)->heartbeat(); }, kHeartbeatMs, kHeartbeatMs);
    return client_->start() == 0 ? 0 : UV_EINVAL;
  }
  void stop(std::function<void()> done) override {
    // Commands queued so far (presence leaves, member removals) must reach Redis before the client
    // closes: replies come in order, so the DEL's reply means every earlier command was handled.
    // A Redis that does not answer within a second does not hold the shutdown up.
    stop_done_ = std::move(done);
    auto finish = [this] {
      if (stopping_) return;
      stopping_ = true;
      uv_close(reinterpret_cast<uv_handle_t*>(&heartbeat_), nullptr);
      client_->stop(std::move(stop_done_));
    };
    if (client_->up() && client_->command({"DEL", instance_key()}, [finish](int, const redis::Value&) { finish(); }) == 0) {
      drain_finish_ = finish;
      uv_timer_start(&heartbeat_, [](uv_timer_t* t) { static_cast<RedisBroker*>(t->data)->drain_finish_(); }, 1000, 0);
    } else {
      finish();
    }
  }

  bool cluster_members() const override { return true; }
  void member_join(std::string_view room, std::string_view user_id, std::string_view user_json) override {
    std::string key = channel(room) + ":members", value = instance_ + "\n" + std::string(user_json);
    client_->command({"HSET", key, user_id, value}, [](int, const redis::Value&) {});
  }
  void member_leave(std::string_view room, std::string_view user_id) override {
    std::string key = channel(room) + ":members";
    eval(kMemberLeaveScript, {key}, {user_id, instance_}, [](int, const redis::Value&) {});
  }
  int members(std::string_view room, MembersDone done) override {
    std::string key = channel(room) + ":members", inst = prefix_ + "roomcast:instance:";
    return eval(kMembersScript, {key}, {inst}, [done = std::move(done)](int status, const redis::Value& reply) {
      std::vector<std::string> users;
      if (status != 0 || reply.type != redis::Value::Type::Array) {
        done(status < 0 ? status : -1, {});
        return;
      }
      for (const redis::Value& v : reply.elements) users.push_back(v.str);
      done(0, std::move(users));
    });
  }
  bool up() const override { return client_->up(); }
  const char* mode() const override { return "redis"; }
  bool standalone() const override { return false; }
  void subscribe(std::string_view room) override { client_->subscribe(channel(room)); }
  void unsubscribe(std::string_view room) override { client_->unsubscribe(channel(room)); }
  uint64_t reconnects() const override { return client_->stats().reconnects; }
  size_t subscriptions() const override { return client_->stats().subscriptions; }

  int publish_chat(std::string_view room, std::string_view prefix, std::string_view suffix, PublishDone done) override {
    std::string stream = channel(room) + ":log", chan = channel(room);
    // Redis's clock is learnt from the ids it gives (their first part is its time in ms).
    std::string deadline = clock_known_ ? std::to_string(wall_ms() + clock_offset_ms_ + kPublishDeadlineMs) : "0";
    return eval(kPublishScript, {stream, chan}, {prefix, suffix, history_, kHistoryTtlMs, deadline},
                [this, done = std::move(done)](int status, const redis::Value& reply) {
                  if (status == 0 && reply.type == redis::Value::Type::String) {
                    int64_t redis_ms = std::strtoll(reply.str.c_str(), nullptr, 10);
                    if (redis_ms > 0) {
                      clock_offset_ms_ = redis_ms - wall_ms();
                      clock_known_ = true;
                    }
                    done(0, reply.str);
                  } else {
                    if (status == 0) LOG_WARN("redis: chat not published: %s", reply.str.c_str());
                    done(status < 0 ? status : -1, {});
                  }
                });
  }

  int history(std::string_view room, std::string_view since, size_t limit, HistoryDone done) override {
    std::string stream = channel(room) + ":log", count = std::to_string(limit > 0 ? limit : 1);
    bool newest_first = since.empty();
    return eval(kHistoryScript, {stream}, {since, count},
                         [done = std::move(done), newest_first](int status, const redis::Value& reply) {
                           std::vector<std::string> events;
                           if (status != 0 || reply.type != redis::Value::Type::Array || reply.elements.size() != 2) {
                             if (status == 0) LOG_WARN("redis: history script failed: %s", reply.str.c_str());
                             done(status < 0 ? status : -1, {}, false);
                             return;
                           }
                           for (const redis::Value& e : reply.elements[1].elements) {
                             std::string event;
                             if (entry_event(e, &event)) events.push_back(std::move(event));
                           }
                           if (newest_first) std::reverse(events.begin(), events.end());
                           done(0, std::move(events), reply.elements[0].integer == 1);
                         });
  }

  int publish_event(std::string_view room, std::string_view payload) override {
    std::string chan = channel(room);
    return client_->command({"PUBLISH", chan, payload}, [](int, const redis::Value&) {});
  }

 private:
  std::string channel(std::string_view room) const { return prefix_ + "room:" + std::string(room); }

  // EVAL, never EVALSHA: an EVALSHA answered NOSCRIPT is retried after the ones pipelined behind it,
  // which may succeed meanwhile (another instance loaded the script) and so overtake it. Redis
  // caches the compiled script by its SHA-1 either way; only the script text travels each time.
  int eval(const char* script, std::initializer_list<std::string_view> keys,
           std::initializer_list<std::string_view> args, redis::ReplyCallback cb) {
    std::string numkeys = std::to_string(keys.size());
    std::vector<std::string_view> argv{"EVAL", script, numkeys};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return client_->command(argv, std::move(cb));
  }
  static int64_t wall_ms() {
    struct timeval tv;
    gettimeofday(&tv, nullptr);
    return static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
  }
  std::string instance_key() const { return prefix_ + "roomcast:instance:" + instance_; }
  void heartbeat() {
    if (!client_->up()) return;
    client_->command({"SET", instance_key(), "1", "PX", std::to_string(kInstanceTtlMs)}, [](int, const redis::Value&) {});
    // Learn Redis's clock (for chat deadlines) before the first chat, and follow it afterwards.
    client_->command({"TIME"}, [this](int status, const redis::Value& reply) {
      if (status != 0 || reply.type != redis::Value::Type::Array || reply.elements.size() != 2) return;
      int64_t ms = std::strtoll(reply.elements[0].str.c_str(), nullptr, 10) * 1000 +
                   std::strtoll(reply.elements[1].str.c_str(), nullptr, 10) / 1000;
      clock_offset_ms_ = ms - wall_ms();
      clock_known_ = true;
    });
  }
  bool room_of(std::string_view channel, std::string_view* room) const {
    std::string head = prefix_ + "room:";
    if (channel.substr(0, head.size()) != head) return false;
    *room = channel.substr(head.size());
    return true;
  }

  BrokerEvents* events_;                  // the hub; outlives the broker
  std::string prefix_;                    // --redis-prefix
  std::string history_;                   // stream length to keep, as text
  std::string instance_;                  // --instance-id
  uv_timer_t heartbeat_;                  // renews the instance key; in stop(), the drain deadline
  std::function<void()> stop_done_;       // stop()'s callback, until the drain ends
  std::function<void()> drain_finish_;    // ends the drain (reply or deadline, whichever first)
  bool stopping_ = false;                 // the client's stop() was called
  int64_t clock_offset_ms_ = 0;           // Redis's clock minus ours, from the last chat id
  bool clock_known_ = false;              // clock_offset_ms_ is set
  std::unique_ptr<redis::Client> client_;
};

}  // namespace

std::unique_ptr<Broker> make_redis_broker(uv_loop_t* loop, const Config& config, BrokerEvents* events) {
  redis::Url url;
  if (redis::parse_url(config.redis_url, &url) != 0) {
    LOG_ERROR("bad --redis URL '%s': expected redis://[:password@]host[:port][/db]", config.redis_url.c_str());
    return nullptr;
  }
  return std::make_unique<RedisBroker>(loop, config, std::move(url), events);
}

}  // namespace roomcast::server
