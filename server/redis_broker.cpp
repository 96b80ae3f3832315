// The Redis broker: a thin adapter from the server's Broker interface to redis::Client.
// Rule: a chat is one script call that appends to the room's stream and PUBLISHes once, so the stream
// order and the channel order are one order; a chat whose answer was lost is answered only once
// Redis has said whether it ran (its record in this instance's chat list), never guessed.
#include "server/redis_broker.h"

#include <sys/time.h>

#include <algorithm>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "redis/client.h"
#include "redis/cluster.h"
#include "server/log.h"

namespace roomcast::server {

namespace {

// KEYS[1] stream, KEYS[2] this instance's chat record list (Redis Cluster: of this room, in its slot).
// ARGV[1] event prefix, ARGV[2] suffix, ARGV[3] history length, ARGV[4] stream TTL in ms,
// ARGV[5] deadline in Redis's own clock (ms), ARGV[6] the chat's sequence number, ARGV[7] record cap,
// ARGV[8] PUBLISH (one Redis) or SPUBLISH (Redis Cluster: KEYS all share the room's hash tag, one slot),
// ARGV[9] the room's channel. (Not among KEYS: while a slot migrates, Redis counts a declared key it
// cannot find as missing and answers TRYAGAIN; a channel is never found.)
// A chat that reaches Redis after its deadline is refused, so once Redis's clock has passed the
// deadline of every chat in doubt, the record list tells exactly which of them ran.
// Old entries go by XDEL rather than XADD MAXLEN: trimming leaves XINFO's max-deleted-entry-id at
// 0-0, and the history read needs it to say `truncated` exactly.
const char* kPublishScript =
    "local t = redis.call('TIME')\n"
    "if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[5]) then\n"
    "  return redis.error_reply('EXPIRED chat reached Redis after its deadline')\n"
    "end\n"
    "local id\n"
    "if redis.call('EXISTS', KEYS[1]) == 0 then\n"  // a new stream: its first entry says so (field c)
    "  id = redis.call('XADD', KEYS[1], '*', 'p', ARGV[1], 's', ARGV[2], 'c', '1')\n"
    "else\n"
    "  id = redis.call('XADD', KEYS[1], '*', 'p', ARGV[1], 's', ARGV[2])\n"
    "end\n"
    "local extra = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[3])\n"
    "if extra > 0 then\n"
    "  local old = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', extra)\n"
    "  for i = 1, #old do redis.call('XDEL', KEYS[1], old[i][1]) end\n"
    "end\n"
    "redis.call(ARGV[8], ARGV[9], ARGV[1] .. id .. ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
    "redis.call('RPUSH', KEYS[2], ARGV[6] .. ' ' .. id)\n"
    "redis.call('LTRIM', KEYS[2], -tonumber(ARGV[7]), -1)\n"
    "redis.call('PEXPIRE', KEYS[2], 86400000)\n"
    "return id\n";

// KEYS[1] chat record list; ARGV[1] the latest deadline of the chats in doubt. {0, ms to wait} while
// Redis's clock has not passed it, else {1, records}.
const char* kResolveScript =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "if now <= tonumber(ARGV[1]) then return {0, tonumber(ARGV[1]) - now + 1} end\n"
    "return {1, redis.call('LRANGE', KEYS[1], 0, -1), redis.call('EXISTS', KEYS[1])}\n";

// The stream's newest id ('0-0' when it has none) and newest deleted id, as a Lua prelude.
const char* kStreamInfo =
    "local position, maxdel = '0-0', '0-0'\n"
    "local exists = redis.call('EXISTS', KEYS[1]) == 1\n"
    "if exists then\n"
    "  local info = redis.call('XINFO', 'STREAM', KEYS[1])\n"
    "  for i = 1, #info, 2 do\n"
    "    if info[i] == 'last-generated-id' then position = info[i + 1] end\n"
    "    if info[i] == 'max-deleted-entry-id' then maxdel = info[i + 1] end\n"
    "  end\n"
    "end\n"
    "local function is_zero(a) return string.match(a, '^0+-?0*$') ~= nil end\n"
    "local function older(a, b)\n"
    "  local a1, a2 = string.match(a, '^(%d+)-?(%d*)$')\n"
    "  local b1, b2 = string.match(b, '^(%d+)-?(%d*)$')\n"
    "  a1, a2, b1, b2 = tonumber(a1), tonumber(a2) or 0, tonumber(b1), tonumber(b2) or 0\n"
    "  return a1 < b1 or (a1 == b1 and a2 < b2)\n"
    "end\n"
    // True when chats after `since` may have been lost: one was deleted (trimmed), or the stream is gone
    // (expired, evicted) or was made anew after `since` (its first entry is marked c=1): a client that
    // saw `since` in this room saw a stream that no longer exists.
    "local function lost_after(since)\n"
    "  if is_zero(since) then return false end\n"
    "  if not exists then return true end\n"
    "  if older(since, maxdel) then return true end\n"
    "  local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]\n"
    "  if first and older(since, first[1]) then\n"
    "    for j = 1, #first[2], 2 do if first[2][j] == 'c' then return true end end\n"
    "  end\n"
    "  return false\n"
    "end\n";

// For `joined`. KEYS[1] stream; ARGV[1] since ('' for none), ARGV[2] count (without since), ARGV[3]
// byte budget. Walks back from the newest entry in pages; returns {truncated, entries newest first,
// position}. truncated: cut by the budget, or an entry after since was deleted.
const std::string kHistoryScript = std::string(kStreamInfo) +
    "local since, count, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local out, truncated, bytes, top = {}, 0, 0, '+'\n"
    "if since ~= '' and lost_after(since) then truncated = 1 end\n"
    "while exists do\n"
    "  local want = 64\n"
    "  if since == '' then want = math.min(want, count - #out) end\n"
    "  if want <= 0 then break end\n"
    "  local low = '-'\n"
    "  if since ~= '' then low = '(' .. since end\n"
    "  local page = redis.call('XREVRANGE', KEYS[1], top, low, 'COUNT', want)\n"
    "  for i = 1, #page do\n"
    "    local f, size = page[i][2], 0\n"
    "    for j = 2, #f, 2 do size = size + #f[j] end\n"
    "    if bytes + size > budget then truncated = 1; exists = false; break end\n"
    "    bytes = bytes + size\n"
    "    out[#out + 1] = page[i]\n"
    "  end\n"
    "  if #page < want then break end\n"
    "  top = '(' .. page[#page][1]\n"
    "end\n"
    "return {truncated, out, position}\n";

// For back-fill. KEYS[1] stream; ARGV[1] after, ARGV[2] count. Returns {truncated, entries oldest
// first, position}.
const std::string kReadAfterScript = std::string(kStreamInfo) +
    "local out = {}\n"
    "if exists then out = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2]) end\n"
    "local truncated = 0\n"
    "if lost_after(ARGV[1]) then truncated = 1 end\n"
    "return {truncated, out, position}\n";

// Members: field = user id; value = one line per connection of that user, "<instance>/<key>\t<user
// JSON>", so a user with two tabs is one field and one connection leaving removes only its own line.
// Lines are changed by scripts only (read-modify-write is atomic there).
// KEYS[1] members hash; ARGV[1] user id, ARGV[2] "<instance>/<key>", ARGV[3] user JSON ('' to remove).
const char* kMemberSetScript =
    "local v = redis.call('HGET', KEYS[1], ARGV[1]) or ''\n"
    "local out, tag = {}, ARGV[2] .. '\\t'\n"
    "for line in string.gmatch(v, '[^\\n]+') do\n"
    "  if string.sub(line, 1, #tag) ~= tag then out[#out + 1] = line end\n"
    "end\n"
    "if ARGV[3] ~= '' then out[#out + 1] = tag .. ARGV[3] end\n"
    "if #out == 0 then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], table.concat(out, '\\n')) end\n"
    "return #out\n";

// KEYS[1] members hash; ARGV[1] instance key prefix. Returns one user JSON per user id with a line of
// a live instance. Lines of instances whose liveness key expired (--instance-ttl after their last
// heartbeat) are skipped, not deleted: the reaper removes them and tells the rooms (presence leave).
const char* kMembersScript =
    "local all, out, alive = redis.call('HGETALL', KEYS[1]), {}, {}\n"
    "for i = 1, #all, 2 do\n"
    "  for line in string.gmatch(all[i + 1], '[^\\n]+') do\n"
    "    local inst, user = string.match(line, '^(.*)/%d+\\t(.*)$')\n"
    "    if inst then\n"
    "      if alive[inst] == nil then alive[inst] = redis.call('EXISTS', ARGV[1] .. inst) == 1 end\n"
    "      if alive[inst] then out[#out + 1] = user; break end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

// A Lua function shared by both reapers: removes from the members hash the lines of a dead instance's
// connections ("<instance>/<digits>\t<user>") and publishes each one's presence `leave` on the channel
// with the publish command given (PUBLISH, or SPUBLISH in a cluster). Returns the lines removed.
const char* kReapLines =
    "local function reap_lines(hash, channel, room, inst, publish)\n"
    "  local tag, reaped = inst .. '/', 0\n"
    "  local all = redis.call('HGETALL', hash)\n"
    "  for i = 1, #all, 2 do\n"
    "    local keep, gone = {}, 0\n"
    "    for line in string.gmatch(all[i + 1], '[^\\n]+') do\n"
    "      local head, user = string.match(line, '^(.*)\\t(.*)$')\n"
    "      if head and string.sub(head, 1, #tag) == tag and string.match(string.sub(head, #tag + 1), '^%d+$') then\n"
    "        gone = gone + 1\n"
    "        redis.call(publish, channel,\n"
    "          '{\"type\":\"presence\",\"event\":\"leave\",\"roomId\":\"' .. room .. '\",\"user\":' .. user .. '}')\n"
    "      else\n"
    "        keep[#keep + 1] = line\n"
    "      end\n"
    "    end\n"
    "    if gone > 0 then\n"
    "      reaped = reaped + gone\n"
    "      if #keep == 0 then redis.call('HDEL', hash, all[i]) else redis.call('HSET', hash, all[i], table.concat(keep, '\\n')) end\n"
    "    end\n"
    "  end\n"
    "  return reaped\n"
    "end\n";

// Redis Cluster: KEYS: liveness keys (all in the {roomcast} slot). Returns 1 or 0 for each.
const char* kExistsScript =
    "local out = {}\n"
    "for i, k in ipairs(KEYS) do out[i] = redis.call('EXISTS', k) end\n"
    "return out\n";

// The reaper, run with every heartbeat. ARGV[1] key prefix, ARGV[2] this instance, ARGV[3] '1' to
// treat this instance's own old entries as dead (a restart under the same --instance-id), ARGV[4] the
// instance TTL in ms, ARGV[5] how many of a dead instance's rooms left to clean to return (kReapBatch).
// The instance set is a sorted set: instance -> Redis time (ms) of its last
// heartbeat. An instance whose liveness key is gone and whose last heartbeat is older than the TTL is
// taken out of the set by exactly one reaper (ZREM answers 1 once), which removes its member lines,
// publishes their presence `leave` on each room's channel (every surviving instance hears each leave
// once). An instance that finds itself missing from the set (it was only cut off; or Redis lost it)
// enters its members again and announces them.
// An instance reaps only while its own heartbeats flow (its previous one is recent): after a stretch in
// which nobody could write (an outage, maxmemory), everybody's heartbeat is old, and nobody may
// mistake the others for dead before they had a turn. Its ZADD is a write: refused, nothing is reaped.
// Returns {members reaped (of this instance's earlier process), 1 if this instance had been reaped, then for
// each dead instance still being reaped: its id, its rooms left to clean}.
const std::string kReapScript = std::string(kReapLines) +
    "local prefix, self, ttl = ARGV[1], ARGV[2], tonumber(ARGV[4])\n"
    "local set = prefix .. 'roomcast:instances'\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local reaped = 0\n"
    "local function reap(inst)\n"
    "  local rooms_key = prefix .. 'roomcast:instance:' .. inst .. ':rooms'\n"
    "  for _, room in ipairs(redis.call('SMEMBERS', rooms_key)) do\n"
    "    reaped = reaped + reap_lines(prefix .. 'room:' .. room .. ':members', prefix .. 'room:' .. room, room, inst, 'PUBLISH')\n"
    "  end\n"
    "  redis.call('DEL', rooms_key)\n"
    "end\n"
    // Another instance's rooms go to a reaping set, cleaned room by room (kRoomReapScript): one script
    // over all its rooms would hold Redis for seconds at a million members (every probe then fails).
    "local reaping = prefix .. 'roomcast:reaping'\n"
    "local function hand_over(inst)\n"
    "  local rooms_key = prefix .. 'roomcast:instance:' .. inst .. ':rooms'\n"
    "  local todo = reaping .. ':' .. inst\n"
    "  redis.call('SUNIONSTORE', todo, todo, rooms_key)\n"
    "  redis.call('DEL', rooms_key)\n"
    "  if redis.call('SCARD', todo) > 0 then redis.call('SADD', reaping, inst) end\n"
    "end\n"
    "local prev = redis.call('ZSCORE', set, self)\n"
    "redis.call('ZADD', set, now, self)\n"
    "local was_reaped = 0\n"
    "if ARGV[3] == '1' then reap(self)\n"
    "elseif not prev then\n"  // taken for dead, and back: it enters its members again; nothing left to clean
    "  was_reaped = 1\n"
    "  redis.call('DEL', reaping .. ':' .. self)\n"
    "  redis.call('SREM', reaping, self)\n"
    "end\n"
    "if prev and now - tonumber(prev) <= ttl / 2 then\n"
    "  for _, inst in ipairs(redis.call('ZRANGEBYSCORE', set, '-inf', now - ttl)) do\n"
    "    if inst ~= self and redis.call('EXISTS', prefix .. 'roomcast:instance:' .. inst) == 0 then\n"
    "      if redis.call('ZREM', set, inst) == 1 then hand_over(inst) end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local out = {reaped, was_reaped}\n"
    "for _, inst in ipairs(redis.call('SMEMBERS', reaping)) do\n"
    "  out[#out + 1] = inst\n"
    "  out[#out + 1] = redis.call('SRANDMEMBER', reaping .. ':' .. inst, ARGV[5])\n"
    "end\n"
    "return out\n";

// Redis Cluster's heartbeat: the instance set, liveness keys and room sets share the hash tag {roomcast}, so
// this script touches one slot; a dead instance's member lines live in each room's slot and are removed
// by kRoomReapScript. The one instance whose ZREM took it out moves its room set to a reaping set, which
// every heartbeat returns until each room is clean (kReapedRoomScript): a room whose master is down
// then, or a reaper that dies half-way, only delays the removal. KEYS[1] the instance set; ARGV[1]
// the bookkeeping prefix ("<prefix>roomcast:{roomcast}:"), ARGV[2] this instance, ARGV[3] '1' to treat
// its own old entries as dead, ARGV[4] the instance TTL in ms, ARGV[5] kReapBatch.
// Returns {1 if this instance had been reaped, live instances, dead instance, its rooms left to clean, ...}.
const char* kClusterReapScript =
    "local prefix, self, ttl = ARGV[1], ARGV[2], tonumber(ARGV[4])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local out = {0, {}}\n"
    "local function reap(inst)\n"
    "  local rooms_key = prefix .. 'instance:' .. inst .. ':rooms'\n"
    "  local reaping = prefix .. 'reaping:' .. inst\n"
    "  redis.call('SUNIONSTORE', reaping, reaping, rooms_key)\n"
    "  redis.call('DEL', rooms_key)\n"
    "  if redis.call('SCARD', reaping) > 0 then redis.call('SADD', prefix .. 'reaping', inst) end\n"
    "end\n"
    "local prev = redis.call('ZSCORE', KEYS[1], self)\n"
    "redis.call('ZADD', KEYS[1], now, self)\n"
    "if ARGV[3] == '1' then reap(self)\n"
    "elseif not prev then\n"  // taken for dead, and back: it enters its members again; nothing left to clean
    "  out[1] = 1\n"
    "  redis.call('DEL', prefix .. 'reaping:' .. self)\n"
    "  redis.call('SREM', prefix .. 'reaping', self)\n"
    "end\n"
    "if prev and now - tonumber(prev) <= ttl / 2 then\n"
    "  for _, inst in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - ttl)) do\n"
    "    if inst ~= self and redis.call('EXISTS', prefix .. 'instance:' .. inst) == 0 then\n"
    "      if redis.call('ZREM', KEYS[1], inst) == 1 then reap(inst) end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for _, inst in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do\n"
    "  if inst == self or redis.call('EXISTS', prefix .. 'instance:' .. inst) == 1 then table.insert(out[2], inst) end\n"
    "end\n"
    "for _, inst in ipairs(redis.call('SMEMBERS', prefix .. 'reaping')) do\n"
    "  out[#out + 1] = inst\n"
    "  out[#out + 1] = redis.call('SRANDMEMBER', prefix .. 'reaping:' .. inst, ARGV[5])\n"
    "end\n"
    "return out\n";

// Redis Cluster: one room of a dead instance is clean (kRoomReapScript answered). KEYS[1] the instance's
// reaping set, KEYS[2] the set of instances being reaped ({roomcast} slot); ARGV[1] the instance, ARGV[2]
// the room.
const char* kReapedRoomScript =
    "redis.call('SREM', KEYS[1], ARGV[2])\n"
    "if redis.call('SCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end\n"
    "return 1\n";

// Redis Cluster: one room's part of a reaping. KEYS[1] the members hash; ARGV[1] the dead instance, ARGV[2]
// the room id, ARGV[3] the room's channel (same slot), ARGV[4] PUBLISH or SPUBLISH. Removes its lines,
// publishes their leaves. (One Redis uses it too, for instances other than itself.)
const std::string kRoomReapScript = std::string(kReapLines) +
    "return reap_lines(KEYS[1], ARGV[3], ARGV[2], ARGV[1], ARGV[4])\n";

// Rooms of a dead instance each heartbeat returns, at random among those left: every instance cleans
// the rooms it is given, so returning them all made every instance clean every room (at a million
// members, 56 instances x ~18,000 rooms of scripts per heartbeat, and every reply ~18,000 names long).
constexpr const char* kReapBatch = "256";
constexpr int64_t kPublishDeadlineMs = 1000;  // a chat must reach Redis within this (see kPublishScript)
// Redis Cluster: the message on a room's channel telling every instance to back-fill the room (see
// on_asked_publish); never given to clients.
constexpr std::string_view kResyncEvent = "{\"type\":\"resync\"}";
constexpr uint64_t kResolveRetryMs = 250;    // chats in doubt not resolved: asked about again after this
constexpr size_t kChatRecords = 8192;         // records kept per instance: over the chats-in-flight bound

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

int64_t wall_ms() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
}

int broker_status(int client_status) {
  switch (client_status) {
    case redis::kOk: return kBrokerOk;
    case redis::kErrDown: return kBrokerDown;
    case redis::kErrDisconnected: return kBrokerDisconnected;
    case redis::kErrStopped: return kBrokerStopped;
    default: return kBrokerFailed;
  }
}

class RedisBroker : public Broker {
 public:
  // cluster: seeds is the Redis Cluster to use (url unused); else url is the one Redis.
  RedisBroker(uv_loop_t* loop, const Config& config, bool cluster, redis::Url url, std::vector<redis::Url> seeds,
              BrokerEvents* events)
      : events_(events),
        cluster_(cluster),
        prefix_(config.redis_prefix),
        meta_(config.redis_prefix + (cluster ? "roomcast:{roomcast}:" : "roomcast:")),
        publish_cmd_(cluster ? "SPUBLISH" : "PUBLISH"),
        history_(std::to_string(config.history)),
        history_ttl_ms_(std::to_string(static_cast<int64_t>(config.history_ttl * 1000))),
        // Redis Cluster: this process's name in Redis is its --instance-id and its start time, so that a
        // process restarted under the same id never shares member lines with its predecessor: those are
        // reaped as a dead instance's, by whichever instance sees it first, room by room (below).
        instance_(cluster ? config.instance_id + "~" + std::to_string(wall_ms()) : config.instance_id),
        instance_ttl_ms_(static_cast<uint64_t>(config.instance_ttl * 1000)) {
    uv_timer_init(loop, &heartbeat_);
    uv_timer_init(loop, &resolve_timer_);
    heartbeat_.data = resolve_timer_.data = this;
    redis::Options opts;
    opts.instance_id = config.instance_id;
    opts.prefix = config.redis_prefix;
    opts.log_level = config.log_level;
    opts.probe_interval_ms = static_cast<uint64_t>(config.redis_probe_interval * 1000);
    opts.probe_deadline_ms = std::max<uint64_t>(3000, 3 * opts.probe_interval_ms);
    opts.log = [](int level, const std::string& line) { RC_LOG(level, "%s", line.c_str()); };
    redis::Client::Callbacks cb;
    cb.on_message = [this](std::string_view channel, std::string_view payload) {
      std::string_view room;
      if (room_of(channel, &room) && payload == kResyncEvent) events_->on_broker_gap(room);
      else if (room_of(channel, &room)) events_->on_broker_message(room, payload);
      else if (channel == control_channel()) events_->on_broker_control(payload);
    };
    cb.on_subscribed = [this](std::string_view channel) {
      std::string_view room;
      if (!room_of(channel, &room)) return;
      // Redis Cluster: a room subscribed again on its slot's (new) owner can have its chats in doubt
      // resolved there now.
      if (cluster_ && ready_ && doubts_.count(records_key(room))) resolve();
      events_->on_broker_subscribed(room);
    };
    cb.on_state = [this](bool up) { on_client_state(up); };
    cb.on_lost = [this](std::string_view channel) {
      std::string_view room;
      if (room_of(channel, &room)) events_->on_broker_lost(room);
    };
    cb.on_node_up = [this] { on_node_up(); };
    // A chat that ran on a slot's importing node (ASK) reached no subscriber: every instance subscribed
    // on the slot's owner is told to back-fill the room from its stream (they may never send a command
    // to that room themselves, so only a message on the room's channel reaches them all).
    cb.on_asked_publish = [this](std::string_view key) {
      std::string_view room;
      if (!room_of_stream(key, &room)) return;
      std::string chan = channel(room);
      client_->command({publish_cmd_, chan, kResyncEvent}, [](int, const redis::Value&) {});
    };
    if (cluster)
      client_ = std::make_unique<redis::ClusterClient>(loop, std::move(seeds), std::move(opts), std::move(cb));
    else
      client_ = std::make_unique<redis::Client>(loop, std::move(url), std::move(opts), std::move(cb));
  }

  int start() override {
    uint64_t every = std::max<uint64_t>(instance_ttl_ms_ / 3, 100);
    uv_timer_start(&heartbeat_, [](uv_timer_t* t) { static_cast<RedisBroker*>(t->data)->heartbeat(); }, every, every);
    // The control channel (server API, section 9) is wanted for the process's life: the client
    // subscribes it again after every reconnect, like the rooms.
    client_->subscribe(control_channel());
    control_wanted_ = true;
    return client_->start() == 0 ? 0 : kBrokerFailed;
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
      uv_close(reinterpret_cast<uv_handle_t*>(&resolve_timer_), nullptr);
      // Chats still in doubt: their senders are closing; nothing more can be said of them.
      auto doubts = std::move(doubts_);
      doubts_.clear();
      for (auto& [records, doubt] : doubts)
        for (auto& [seq, chat] : doubt) chat.done(kBrokerStopped, {});
      client_->stop(std::move(stop_done_));
    };
    // (Redis Cluster: the chat records are per room, in each room's slot; they expire.)
    int sent = cluster_ ? client_->command({"DEL", instance_key()}, [finish](int, const redis::Value&) { finish(); })
                        : client_->command({"DEL", instance_key(), chats_key()}, [finish](int, const redis::Value&) { finish(); });
    if (client_->up() && sent == 0) {
      client_->command({cluster_ ? "ZREM" : "SREM", meta_ + "instances", instance_}, [](int, const redis::Value&) {});
      drain_finish_ = finish;
      uv_timer_start(&heartbeat_, [](uv_timer_t* t) { static_cast<RedisBroker*>(t->data)->drain_finish_(); }, 1000, 0);
    } else {
      finish();
    }
  }

  bool cluster_members() const override { return true; }
  void member_join(std::string_view room, std::string_view user_id, std::string_view member_key,
                   std::string_view user_json) override {
    std::string id = line_id(room, member_key);
    lines_[id] = Line{std::string(user_id), std::string(user_json), 0, false};
    send_line(id);
  }
  void member_leave(std::string_view room, std::string_view user_id, std::string_view member_key, bool last_local) override {
    std::string id = line_id(room, member_key);
    lines_[id] = Line{std::string(user_id), std::string(), 0, false};
    send_line(id);
    // (Not resent: a room left in this set only costs the reaper a look.)
    if (last_local) client_->command({"SREM", instance_rooms_key(), room}, [](int, const redis::Value&) {});
  }
  int members(std::string_view room, MembersDone done) override {
    if (cluster_) return members_cluster(room, std::move(done));
    std::string key = members_key(room), inst = prefix_ + "roomcast:instance:";
    return eval(kMembersScript, {key}, {inst}, [done = std::move(done)](int status, const redis::Value& reply) {
      std::vector<std::string> users;
      if (status != 0 || reply.type != redis::Value::Type::Array) {
        done(status < 0 ? broker_status(status) : kBrokerFailed, {});
        return;
      }
      for (const redis::Value& v : reply.elements) users.push_back(v.str);
      done(kBrokerOk, std::move(users));
    });
  }
  bool up() const override { return ready_ && client_->up(); }
  const char* mode() const override { return cluster_ ? "cluster" : "redis"; }
  bool reachable() const override { return up() && client_->reachable(); }
  bool cluster() const override { return cluster_; }
  size_t masters() const override { return cluster_ ? client_->masters() : 0; }
  void write_metrics(std::string* out) const override { client_->write_metrics(out); }
  bool standalone() const override { return false; }
  void subscribe(std::string_view room) override { client_->subscribe(channel(room)); }
  void unsubscribe(std::string_view room) override { client_->unsubscribe(channel(room)); }
  uint64_t reconnects() const override { return client_->stats().reconnects; }
  // Rooms only: the control channel is not a room's subscription.
  size_t subscriptions() const override {
    size_t n = client_->stats().subscriptions;
    return control_wanted_ && n > 0 ? n - 1 : n;
  }

  int publish_chat(std::string_view room, std::string_view prefix, std::string_view suffix, PublishDone done) override {
    if (!up()) return kBrokerDown;
    // While chats are in doubt, their records must stay among the newest of the capped list: no new
    // chat until they are resolved (about a second after a reconnect).
    std::string stream = channel(room) + ":log", chan = channel(room), records = records_key(room);
    if (doubts_.count(records)) return kBrokerBusy;
    int64_t deadline = wall_ms() + clock_offset_ms_ + kPublishDeadlineMs;
    uint64_t seq = ++chat_seq_;
    std::string deadline_text = std::to_string(deadline), seq_text = std::to_string(seq), cap = std::to_string(kChatRecords);
    return eval(kPublishScript, {stream, records},
                {prefix, suffix, history_, history_ttl_ms_, deadline_text, seq_text, cap, publish_cmd_, chan},
                [this, seq, deadline, records, done = std::move(done)](int status, const redis::Value& reply) {
                  if (status == 0 && reply.type == redis::Value::Type::String) {
                    learn_clock(reply.str);
                    done(kBrokerOk, reply.str);
                  } else if (status == redis::kErrDisconnected) {
                    // It may have run: answer once Redis says (resolve()).
                    doubts_[records].emplace(seq, Doubt{deadline, std::move(done)});
                  } else {
                    if (status == 0) LOG_WARN("redis: chat not published: %s", reply.str.c_str());
                    done(status < 0 ? broker_status(status) : kBrokerFailed, {});
                  }
                },
                true);
  }

  int history(std::string_view room, std::string_view since, size_t limit, size_t max_bytes, HistoryDone done) override {
    std::string stream = channel(room) + ":log", count = std::to_string(limit), budget = std::to_string(max_bytes);
    return eval(kHistoryScript.c_str(), {stream}, {since, count, budget}, [done = std::move(done)](int status, const redis::Value& reply) {
      read_reply(status, reply, true, done);
    });
  }

  int read_after(std::string_view room, std::string_view after, size_t count, HistoryDone done) override {
    std::string stream = channel(room) + ":log", n = std::to_string(count);
    return eval(kReadAfterScript.c_str(), {stream}, {after, n}, [done = std::move(done)](int status, const redis::Value& reply) {
      read_reply(status, reply, false, done);
    });
  }

  int publish_control(std::string_view payload, std::function<void(int status)> done) override {
    if (!up()) return kBrokerDown;
    return broker_status(client_->command({publish_cmd_, control_channel(), payload}, [done = std::move(done)](int status, const redis::Value& reply) {
      done(status < 0 ? broker_status(status) : status != 0 || reply.is_error() ? kBrokerFailed : kBrokerOk);
    }));
  }

  int publish_event(std::string_view room, std::string_view payload) override {
    std::string chan = channel(room);
    return broker_status(client_->command({publish_cmd_, chan, payload}, [](int, const redis::Value&) {}));
  }

 private:
  // This instance's member lines as they should be in Redis: a join (user_json set) stays here while
  // the member is in the room; a leave (user_json empty) until Redis confirms it. An operation Redis
  // did not confirm (down, refused under maxmemory) is sent again with the next heartbeat; after this
  // instance was reaped (cut off longer than --instance-ttl), every join is entered again.
  // By line_id(room, member key): the hash (members_key(room)) and the entry (member_entry(member key))
  // are made from it when the line is sent, so that an idle member costs here only this and its id.
  struct Line {
    std::string user_id;
    std::string user_json;  // empty: the line is to be removed
    uint64_t gen;           // of the latest send: only its reply may confirm it
    bool confirmed;
    bool inflight = false;  // its latest send is not answered yet: the heartbeat does not send it again
                            // (under load a resend would only push the answer that confirms it further back)
  };

  void send_line(const std::string& id) {
    auto it = lines_.find(id);
    if (it == lines_.end() || !up()) return;  // sent again once the broker is up
    Line& l = it->second;
    uint64_t gen = l.gen = ++line_gen_;
    l.confirmed = false;
    std::string_view room = line_room(id);
    int rc = eval(kMemberSetScript, {members_key(room)}, {l.user_id, member_entry(line_member(id)), l.user_json}, [this, id, gen](int status, const redis::Value& reply) {
      auto found = lines_.find(id);
      if (found == lines_.end() || found->second.gen != gen) return;
      found->second.inflight = false;
      if (status != 0 || reply.is_error()) return;  // the next heartbeat sends it again
      if (found->second.user_json.empty()) lines_.erase(found);
      else found->second.confirmed = true;
    });
    l.inflight = rc == 0;
    if (!l.user_json.empty()) client_->command({"SADD", instance_rooms_key(), room}, [](int, const redis::Value&) {});
  }

  // This instance was cut off long enough to be taken for dead: its lines were removed and every room
  // was told its members left. Enter them again and tell the rooms they are back.
  void rejoin_after_reaped() {
    size_t n = 0;
    std::vector<std::string> ids;
    for (const auto& [id, l] : lines_)
      if (!l.user_json.empty()) ids.push_back(id);
    for (const std::string& id : ids) {
      send_line(id);
      const Line& l = lines_[id];
      std::string room(line_room(id));
      std::string presence = "{\"type\":\"presence\",\"event\":\"join\",\"roomId\":\"" + room + "\",\"user\":" + l.user_json + "}";
      client_->command({publish_cmd_, channel(room), presence}, [](int, const redis::Value&) {});
      n++;
    }
    LOG_WARN("redis: this instance had been taken for dead (cut off over --instance-ttl): %zu members entered again", n);
  }

  struct Doubt {
    int64_t deadline;   // the chat's deadline in Redis's clock
    PublishDone done;   // its sender's answer
  };

  static void read_reply(int status, const redis::Value& reply, bool newest_first, const HistoryDone& done) {
    if (status != 0 || reply.type != redis::Value::Type::Array || reply.elements.size() != 3) {
      if (status == 0) LOG_WARN("redis: history script failed: %s", reply.str.c_str());
      done(status < 0 ? broker_status(status) : kBrokerFailed, {});
      return;
    }
    HistoryRead read;
    read.truncated = reply.elements[0].integer == 1;
    for (const redis::Value& e : reply.elements[1].elements) {
      std::string event;
      if (entry_event(e, &event)) read.events.push_back(std::move(event));
    }
    if (newest_first) std::reverse(read.events.begin(), read.events.end());
    read.position = reply.elements[2].str;
    done(kBrokerOk, std::move(read));
  }

  void on_client_state(bool up) {
    if (!up) {
      // Told even when the rooms never heard "up" on that connection: subscriptions it confirmed are gone.
      ready_ = false;
      uv_timer_stop(&resolve_timer_);
      events_->on_broker_state(false);
      return;
    }
    become_ready();
  }

  // Learns Redis's clock (every chat carries a deadline in it), then reports up to the rooms.
  void become_ready() {
    if (time_pending_ || ready_ || !client_->up()) return;
    time_pending_ = true;
    int rc = client_->command({"TIME"}, [this](int status, const redis::Value& reply) {
      if (status != 0 || !parse_time(reply)) {  // dropped again (the next up retries) or odd: the heartbeat retries
        time_pending_ = false;
        return;
      }
      if (cluster_ && first_heartbeat_) return first_cluster_heartbeat();
      time_pending_ = false;
      ready_now();
    });
    if (rc != 0) time_pending_ = false;
  }

  // Redis Cluster: the first heartbeat goes through before the broker reports up, so that member listings
  // know the live instances from the start. Until its {roomcast} master answers, the broker is not up.
  void first_cluster_heartbeat() {
    std::string set = meta_ + "instances", ttl = std::to_string(instance_ttl_ms_);
    int sent = eval(kClusterReapScript, {set}, {meta_, instance_, "1", ttl, kReapBatch}, [this](int status, const redis::Value& reply) {
      time_pending_ = false;
      if (status != 0 || reply.is_error()) {
        if (status == 0) LOG_WARN("redis: first heartbeat refused (%s); retrying", reply.str.c_str());
        return;  // the next node up or heartbeat tick tries again
      }
      first_heartbeat_ = false;
      cluster_heartbeat_reply(status, reply);
      ready_now();
    });
    if (sent != 0) time_pending_ = false;
  }

  void ready_now() {
    ready_ = true;
    heartbeat();
    resolve();
    std::vector<std::string> ids;
    for (const auto& [id, l] : lines_)
      if (!l.confirmed) ids.push_back(id);
    for (const std::string& id : ids) send_line(id);
    events_->on_broker_state(true);
  }

  bool parse_time(const redis::Value& reply) {
    if (reply.type != redis::Value::Type::Array || reply.elements.size() != 2) return false;
    int64_t ms = std::strtoll(reply.elements[0].str.c_str(), nullptr, 10) * 1000 +
                 std::strtoll(reply.elements[1].str.c_str(), nullptr, 10) / 1000;
    clock_offset_ms_ = ms - wall_ms();
    return true;
  }

  // Redis's clock is learnt from the ids it gives too (their first part is its time in ms).
  void learn_clock(const std::string& id) {
    int64_t redis_ms = std::strtoll(id.c_str(), nullptr, 10);
    if (redis_ms > 0) clock_offset_ms_ = redis_ms - wall_ms();
  }

  // Answers the chats in doubt from this instance's record lists (one Redis: one list; Redis Cluster: one
  // per room, in the room's slot), once Redis's clock is past all their deadlines (until then a paused
  // chat could still run).
  void resolve() {
    if (doubts_.empty() || stopping_) return;
    if (!up()) return resolve_later(kResolveRetryMs);  // (an up resolves at once too)
    for (auto& [records, doubt] : doubts_) {
      if (resolving_.count(records)) continue;
      int64_t latest = 0;
      for (const auto& [seq, d] : doubt) latest = std::max(latest, d.deadline);
      std::string deadline = std::to_string(latest);
      resolving_.insert(records);
      int rc = eval(kResolveScript, {records}, {deadline}, [this, records = records](int status, const redis::Value& reply) {
        resolved(records, status, reply);
      });
      if (rc != 0) {  // the room's node is down (a cluster master failing over): try again shortly
        resolving_.erase(records);
        resolve_later(kResolveRetryMs);
      }
    }
  }

  // Chats in doubt block their room: whatever kept them from being resolved (a node down, CLUSTERDOWN
  // while a master rejoins, a dropped reply), they are asked about again until Redis answers.
  void resolve_later(uint64_t ms) {
    if (stopping_) return;
    uv_timer_start(&resolve_timer_, [](uv_timer_t* t) { static_cast<RedisBroker*>(t->data)->resolve(); }, ms, 0);
  }

  void resolved(const std::string& records, int status, const redis::Value& reply) {
    resolving_.erase(records);
    auto found = doubts_.find(records);
    if (found == doubts_.end()) return;
    if (status != 0 || reply.type != redis::Value::Type::Array || reply.elements.size() < 2) {
      if (status == 0) LOG_WARN("redis: chats in doubt not resolved yet (%s); asking again", reply.str.c_str());
      return resolve_later(kResolveRetryMs);
    }
    if (reply.elements[0].integer == 0) return resolve_later(static_cast<uint64_t>(std::max<long long>(reply.elements[1].integer, 1)));
    std::unordered_map<uint64_t, std::string> ran;
    for (const redis::Value& v : reply.elements[1].elements) {
      size_t sp = v.str.find(' ');
      if (sp != std::string::npos) ran.emplace(std::strtoull(v.str.c_str(), nullptr, 10), v.str.substr(sp + 1));
    }
    if (reply.elements.size() == 3 && reply.elements[2].integer == 0)
      LOG_WARN("redis: the chat records %s are gone (expired after a day, or Redis lost them): "
               "chats in doubt are answered unavailable though some may have been published", records.c_str());
    auto doubt = std::move(found->second);
    doubts_.erase(found);
    size_t acked = 0;
    for (auto& [seq, d] : doubt) {
      auto it = ran.find(seq);
      if (it != ran.end()) {
        acked++;
        d.done(kBrokerOk, it->second);
      } else {
        d.done(kBrokerFailed, {});
      }
    }
    LOG_INFO("redis: %zu chats whose answer was lost: %zu had been published, %zu had not", doubt.size(), acked,
             doubt.size() - acked);
  }

  // EVAL, never EVALSHA: an EVALSHA answered NOSCRIPT would be retried after the ones pipelined
  // behind it and could be overtaken. Redis caches the compiled script by its SHA-1 either way.
  int eval(const char* script, std::initializer_list<std::string_view> keys,
           std::initializer_list<std::string_view> args, redis::ReplyCallback cb, bool publish = false) {
    std::string numkeys = std::to_string(keys.size());
    std::vector<std::string_view> argv{"EVAL", script, numkeys};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return broker_status(publish ? client_->publish(argv, std::move(cb)) : client_->command(argv, std::move(cb)));
  }

  // Redis Cluster: every name of room R carries R as its hash tag, so all of a room lives in one slot.
  std::string channel(std::string_view room) const {
    return cluster_ ? prefix_ + "room:{" + std::string(room) + "}" : prefix_ + "room:" + std::string(room);
  }
  std::string control_channel() const { return meta_ + "control"; }
  std::string records_key(std::string_view room) const { return cluster_ ? channel(room) + ":chats:" + instance_ : chats_key(); }
  std::string members_key(std::string_view room) const { return channel(room) + ":members"; }
  std::string member_entry(std::string_view member_key) const { return instance_ + "/" + std::string(member_key); }
  // A member line's id: the room and the member key (neither has a newline).
  static std::string line_id(std::string_view room, std::string_view member_key) {
    std::string id;
    id.reserve(room.size() + 1 + member_key.size());
    return id.append(room).append(1, '\n').append(member_key);
  }
  static std::string_view line_room(std::string_view id) { return id.substr(0, id.find('\n')); }
  static std::string_view line_member(std::string_view id) { return id.substr(id.find('\n') + 1); }
  std::string instance_key() const { return meta_ + "instance:" + instance_; }
  std::string instance_rooms_key() const { return instance_key() + ":rooms"; }
  std::string chats_key() const { return prefix_ + "roomcast:chats:" + instance_; }

  void heartbeat() {
    if (!up()) {
      become_ready();
      return;
    }
    client_->command({"SET", instance_key(), "1", "PX", std::to_string(instance_ttl_ms_)}, [](int, const redis::Value&) {});
    // The first heartbeat Redis takes says entries left by an earlier process with this id are dead (not
    // again: members of this process may have entered lines since). A cluster's {roomcast} master may not
    // be up yet when the broker is: then nothing is sent, and the next heartbeat is the first.
    const char* self_dead = first_heartbeat_ ? "1" : "0";
    std::string ttl = std::to_string(instance_ttl_ms_);
    int sent;
    if (cluster_) {
      std::string set = meta_ + "instances";
      sent = eval(kClusterReapScript, {set}, {meta_, instance_, self_dead, ttl, kReapBatch}, [this](int status, const redis::Value& reply) {
        cluster_heartbeat_reply(status, reply);
      });
    } else {
      sent = eval(kReapScript.c_str(), {}, {prefix_, instance_, self_dead, ttl, kReapBatch}, [this](int status, const redis::Value& reply) {
        if (status != 0) return;
        if (reply.is_error()) {
          LOG_WARN("redis: heartbeat refused (%s): this instance cannot prove it is alive, and reaps nobody", reply.str.c_str());
          return;
        }
        if (reply.type != redis::Value::Type::Array || reply.elements.size() < 2) return;
        if (reply.elements[0].integer > 0)
          LOG_INFO("redis: %lld members of an earlier process with this id removed; their rooms were told", reply.elements[0].integer);
        for (size_t i = 2; i + 1 < reply.elements.size(); i += 2)
          for (const redis::Value& room : reply.elements[i + 1].elements) reap_room(reply.elements[i].str, room.str);
        if (reply.elements[1].integer == 1) rejoin_after_reaped();
      });
    }
    if (sent == 0) first_heartbeat_ = false;
    // Lines Redis refused (maxmemory) go again, now that it may take them.
    std::vector<std::string> ids;
    for (const auto& [id, l] : lines_)
      if (!l.confirmed && !l.inflight) ids.push_back(id);
    for (const std::string& id : ids) send_line(id);
    client_->command({"TIME"}, [this](int status, const redis::Value& reply) {
      if (status == 0) parse_time(reply);
    });
  }

  // Redis Cluster: the heartbeat's answer: instances alive (for member listings), whether this one had been
  // reaped, and the rooms of the instances this one reaped, whose member lines it now removes room by room.
  void cluster_heartbeat_reply(int status, const redis::Value& reply) {
    if (status != 0) return;
    if (reply.is_error()) {
      LOG_WARN("redis: heartbeat refused (%s): this instance cannot prove it is alive, and reaps nobody", reply.str.c_str());
      return;
    }
    if (reply.type != redis::Value::Type::Array || reply.elements.size() < 2) return;
    live_.clear();
    for (const redis::Value& v : reply.elements[1].elements) live_.insert(v.str);
    for (size_t i = 2; i + 1 < reply.elements.size(); i += 2) {
      const std::string& dead = reply.elements[i].str;
      for (const redis::Value& room : reply.elements[i + 1].elements) reap_room(dead, room.str);
    }
    if (reply.elements[0].integer == 1) rejoin_after_reaped();
  }

  // Removes a dead instance's lines from one room and tells the room; then marks the room
  // clean. Not done (the room's master down, CLUSTERDOWN): the next heartbeat returns it again. Every
  // instance may try; the room script is idempotent (a line is removed, and its leave published, once).
  void reap_room(const std::string& dead, const std::string& room) {
    std::string id = dead + '\n' + room;
    if (!reaping_.insert(id).second) return;  // already in flight here
    std::string key = members_key(room), chan = channel(room);
    int rc = eval(kRoomReapScript.c_str(), {key}, {dead, room, chan, publish_cmd_}, [this, id, dead, room](int st, const redis::Value& r) {
      reaping_.erase(id);
      if (st != 0 || r.type != redis::Value::Type::Integer) return;
      if (r.integer > 0) LOG_INFO("redis: room %s: %lld members of dead instance %s removed; the room was told", room.c_str(), r.integer, dead.c_str());
      std::string set = meta_ + "reaping:" + dead, index = meta_ + "reaping";
      eval(kReapedRoomScript, {set, index}, {dead, room}, [](int, const redis::Value&) {});
    });
    if (rc != 0) reaping_.erase(id);
  }

  // Redis Cluster: the users of a room whose lines belong to live instances. The liveness keys live in
  // another slot than the room, so the room's hash is read first, then the liveness of the instances
  // it names that the last heartbeat did not list (one script on the {roomcast} slot), then the filter
  // is applied here.
  struct MemberLine {
    std::string user_id, instance, user_json;
  };

  int members_cluster(std::string_view room, MembersDone done) {
    std::string key = members_key(room);
    return broker_status(client_->command({"HGETALL", key}, [this, done = std::move(done)](int status, const redis::Value& reply) {
      if (status != 0 || reply.type != redis::Value::Type::Array) {
        done(status < 0 ? broker_status(status) : kBrokerFailed, {});
        return;
      }
      auto lines = std::make_shared<std::vector<MemberLine>>();
      std::set<std::string> unknown;
      for (size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
        std::string_view value = reply.elements[i + 1].str;
        while (!value.empty()) {
          size_t nl = value.find('\n');
          std::string_view line = value.substr(0, nl);
          value = nl == std::string_view::npos ? std::string_view() : value.substr(nl + 1);
          size_t tab = line.find('\t');
          size_t slash = tab == std::string_view::npos ? tab : line.rfind('/', tab);
          if (slash == std::string_view::npos) continue;
          MemberLine m{reply.elements[i].str, std::string(line.substr(0, slash)), std::string(line.substr(tab + 1))};
          if (m.instance != instance_ && !live_.count(m.instance)) unknown.insert(m.instance);
          lines->push_back(std::move(m));
        }
      }
      if (unknown.empty()) return done(kBrokerOk, live_members(*lines, {}));
      std::vector<std::string> keys;
      for (const std::string& inst : unknown) keys.push_back(meta_ + "instance:" + inst);
      std::string n = std::to_string(keys.size());
      std::vector<std::string_view> argv{"EVAL", kExistsScript, n};
      argv.insert(argv.end(), keys.begin(), keys.end());
      std::vector<std::string> asked(unknown.begin(), unknown.end());
      int rc = client_->command(argv, [this, lines, asked, done](int st, const redis::Value& r) {
        if (st != 0 || r.type != redis::Value::Type::Array || r.elements.size() != asked.size()) {
          done(st < 0 ? broker_status(st) : kBrokerFailed, {});
          return;
        }
        std::set<std::string> alive;
        for (size_t k = 0; k < asked.size(); k++)
          if (r.elements[k].integer == 1) alive.insert(asked[k]);
        done(kBrokerOk, live_members(*lines, alive));
      });
      if (rc != 0) done(broker_status(rc), {});
    }));
  }

  // One user per user id, from the lines of this instance, of the instances alive at the last heartbeat,
  // and of `alive`.
  std::vector<std::string> live_members(const std::vector<MemberLine>& lines, const std::set<std::string>& alive) const {
    std::vector<std::string> users;
    std::set<std::string_view> seen;
    for (const MemberLine& m : lines) {
      if (m.instance != instance_ && !live_.count(m.instance) && !alive.count(m.instance)) continue;
      if (seen.insert(m.user_id).second) users.push_back(m.user_json);
    }
    return users;
  }

  // Redis Cluster: a master (re)connected while the rest stayed up. A promoted replica may lack the newest
  // writes (asynchronous replication): enter every member line again, and resolve chats in doubt there.
  void on_node_up() {
    if (!ready_) return become_ready();
    if (!up()) return;
    for (auto& [id, l] : lines_) l.confirmed = false;
    std::vector<std::string> ids;
    for (const auto& [id, l] : lines_) ids.push_back(id);
    for (const std::string& id : ids) send_line(id);
    resolve();
  }

  // The room of a stream key (<prefix>room:{R}:log).
  bool room_of_stream(std::string_view key, std::string_view* room) const {
    constexpr std::string_view tail = ":log";
    if (key.size() <= tail.size() || key.substr(key.size() - tail.size()) != tail) return false;
    return room_of(key.substr(0, key.size() - tail.size()), room);
  }

  bool room_of(std::string_view channel, std::string_view* room) const {
    std::string head = prefix_ + (cluster_ ? "room:{" : "room:");
    if (channel.substr(0, head.size()) != head) return false;
    *room = channel.substr(head.size());
    if (cluster_) {
      if (room->empty() || room->back() != '}') return false;
      room->remove_suffix(1);
    }
    return true;
  }

  BrokerEvents* events_;                  // the hub; outlives the broker
  bool cluster_;                          // Redis Cluster (sharded Pub/Sub, names with hash tags)
  std::string prefix_;                    // --redis-prefix
  std::string meta_;                      // prefix of the instance bookkeeping keys and the control channel
  const char* publish_cmd_;               // PUBLISH, or SPUBLISH in a cluster
  std::string history_;                   // stream length to keep, as text
  std::string history_ttl_ms_;            // --history-ttl in ms, as text
  std::string instance_;                  // --instance-id (Redis Cluster: "~" and the start time appended)
  uint64_t instance_ttl_ms_;              // --instance-ttl in ms
  uv_timer_t heartbeat_;                  // renews the instance key; in stop(), the drain deadline
  uv_timer_t resolve_timer_;              // resolve() again once Redis's clock passed the deadlines
  std::function<void()> stop_done_;       // stop()'s callback, until the drain ends
  std::function<void()> drain_finish_;    // ends the drain (reply or deadline, whichever first)
  bool stopping_ = false;                 // the client's stop() was called
  bool ready_ = false;                    // client up and Redis's clock learnt: up() for the rooms
  bool first_heartbeat_ = true;           // no heartbeat of this process has been sent yet
  std::set<std::string> resolving_;       // record lists whose resolve script is in flight
  bool time_pending_ = false;             // become_ready()'s TIME is in flight
  bool control_wanted_ = false;           // the control channel is subscribed (from start() on)
  int64_t clock_offset_ms_ = 0;           // Redis's clock minus ours
  uint64_t chat_seq_ = 0;                 // sequence number of the last chat sent
  // Chats whose answer was lost, by record list, then sequence number. A room with chats in doubt takes no
  // new chat until they are resolved (their records must stay among the newest of the capped list).
  std::map<std::string, std::map<uint64_t, Doubt>> doubts_;
  std::unordered_set<std::string> live_;  // Redis Cluster: instances alive at the last heartbeat
  std::unordered_set<std::string> reaping_;  // Redis Cluster: "<dead>\n<room>" reaps in flight here
  std::unordered_map<std::string, Line> lines_;  // this instance's member lines, by line_id
  uint64_t line_gen_ = 0;
  std::unique_ptr<redis::Connection> client_;
};

}  // namespace

std::unique_ptr<Broker> make_redis_broker(uv_loop_t* loop, const Config& config, BrokerEvents* events) {
  redis::Url url;
  std::vector<redis::Url> seeds;
  if (!config.redis_cluster.empty()) {
    // host:port[,host:port...]; each may also be a redis:// URL (with a password).
    std::string_view list = config.redis_cluster;
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string item(list.substr(0, comma));
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      if (item.empty()) continue;
      redis::Url seed;
      std::string as_url = item.rfind("redis://", 0) == 0 ? item : "redis://" + item;
      if (redis::parse_url(as_url, &seed) != 0 || seed.db != 0) {
        LOG_ERROR("bad --redis-cluster seed '%s': expected host:port or redis://[:password@]host:port (no database: a cluster has only 0)",
                  item.c_str());
        return nullptr;
      }
      seeds.push_back(std::move(seed));
    }
    if (seeds.empty()) {
      LOG_ERROR("--redis-cluster names no seed node");
      return nullptr;
    }
    if (config.redis_prefix.find_first_of("{}") != std::string::npos) {
      LOG_ERROR("--redis-prefix must not contain { or } with --redis-cluster: it would change every name's hash slot");
      return nullptr;
    }
    return std::make_unique<RedisBroker>(loop, config, true, std::move(url), std::move(seeds), events);
  }
  if (redis::parse_url(config.redis_url, &url) != 0) {
    LOG_ERROR("bad --redis URL '%s': expected redis://[:password@]host[:port][/db]", config.redis_url.c_str());
    return nullptr;
  }
  return std::make_unique<RedisBroker>(loop, config, false, std::move(url), std::move(seeds), events);
}

}  // namespace roomcast::server
