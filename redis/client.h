// redis/client.h: the Redis broker of one roomcast process: pipelined commands, Pub/Sub, reconnects.
// Rule: nothing from hiredis or server/ is visible here; payloads are opaque bytes; errors are values.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace roomcast::redis {

// Error codes: every function that can fail returns 0 or one of these (all negative).
enum Errc : int {
  kOk = 0,
  kErrInvalid = -1,       // bad argument (empty argv, malformed URL, ...)
  kErrDown = -2,          // the client is not connected: the command was not sent, no callback
  kErrDisconnected = -3,  // the connection dropped before the reply came (callback status)
  kErrStopped = -4,       // stop() was called (as a return value: no callback; as a status: dropped)
  kErrState = -5,         // call not allowed in this state (start() twice, start() after stop())
  kErrIo = -6,            // a local facility failed (e.g. a poll handle for a socket)
};
// A stable lower-case name for an Errc ("ok", "down", ...); "unknown" for anything else.
const char* error_name(int err);

struct Url {
  std::string host = "127.0.0.1";  // name or IP literal (an IPv6 literal is written [::1] in a URL)
  int port = 6379;                 // 1..65535
  int db = 0;                      // SELECT index, >= 0
  std::string user;                // ACL user (AUTH user password); empty: AUTH password
  std::string password;            // AUTH password; empty: no AUTH
};
// Parses redis://[[user]:password@]host[:port][/db], as redis-cli does: "pw@host" and ":pw@host" carry
// a password only; userinfo may be %XX-encoded. Other schemes (rediss://) are refused.
// Returns 0 and fills *out, or kErrInvalid and leaves *out untouched.
int parse_url(std::string_view text, Url* out);

struct Options {
  std::string instance_id;  // e.g. "host:pid": names the probe channel and both connections
                            // (CLIENT SETNAME roomcast:<id>:pub / :sub) and tags every log line
  std::string prefix;       // prepended to the probe channel name (callers prefix their own channels)
  uint64_t probe_interval_ms = 1000;  // one probe PUBLISH per interval while up
  uint64_t probe_deadline_ms = 3000;  // a probe not back by then: declared down, both connections rebuilt
  uint64_t connect_timeout_ms = 3000; // both connections ready within this, or the attempt is abandoned
  uint64_t backoff_min_ms = 100, backoff_max_ms = 2000;  // capped exponential backoff with jitter
  size_t resubscribe_batch = 500;     // SUBSCRIBE channels per command when re-subscribing
  int log_level = 2;                  // lines above this level are not even formatted
  std::function<void(int level, const std::string& line)> log;  // level: 0 error,1 warn,2 info,3 debug
};

// An owned copy of one Redis reply (RESP2 types).
struct Value {
  enum class Type : uint8_t { Nil, String, Integer, Array, Status, Error };
  Type type = Type::Nil;
  std::string str;              // the bytes of a String, Status or Error
  long long integer = 0;        // the value of an Integer
  std::vector<Value> elements;  // the items of an Array
  bool is_nil() const { return type == Type::Nil; }
  bool is_error() const { return type == Type::Error; }
};

// Status 0 with the reply (a Redis error reply is status 0 with reply.type == Error), or a negative
// Errc (kErrDisconnected, kErrStopped) with a Nil reply when the connection went away first.
using ReplyCallback = std::function<void(int status, const Value& reply)>;

// What the broker needs of Redis: commands routed to the right node, a set of wanted channels kept
// subscribed across failures, and a state. Two implementations: Client (one Redis: PUBLISH/SUBSCRIBE)
// and ClusterClient (Redis Cluster: SPUBLISH/SSUBSCRIBE on each slot's owner, redis/cluster.h).
// Single-threaded: every method on the loop's thread; callbacks never come from inside the call that caused them.
class Connection {
 public:
  struct Callbacks {
    std::function<void(std::string_view channel, std::string_view payload)> on_message;
    std::function<void(std::string_view channel)> on_subscribed;  // Redis confirmed the subscription (again after each loss)
    std::function<void(bool up)> on_state;  // up: commands can be sent; called on every change
    // Cluster only: the channel's subscription ended while the rest stayed up (its node failed, its slot
    // moved); messages may have been missed from here until on_subscribed confirms it again.
    std::function<void(std::string_view channel)> on_lost;
    // Cluster only: a node (re)connected while the cluster as a whole stayed up (its keys may be new).
    std::function<void()> on_node_up;
    // Cluster only: a publish ran after an ASK redirect (its slot is migrating), on a node that does not
    // serve the slot's shard channels yet: subscribers on the slot's owner did not hear it. key: its key.
    std::function<void(std::string_view key)> on_asked_publish;
  };
  struct Stats {
    uint64_t reconnects;     // times a connection came back up after having been up and lost it
    uint64_t commands;       // commands accepted (command() that returned 0)
    uint64_t messages_in;    // messages handed to on_message
    uint64_t subscriptions;  // channels currently wanted (subscribe()d and not unsubscribe()d)
  };

  virtual ~Connection() = default;
  virtual int start() = 0;
  virtual void stop(std::function<void()> done) = 0;
  virtual bool up() const = 0;
  // Pipelined command, routed by its first key (cluster). Returns 0 (cb called exactly once, later),
  // kErrDown, kErrStopped or kErrInvalid (no callback). See Client::command.
  virtual int command(const std::vector<std::string_view>& argv, ReplyCallback cb) = 0;
  // The same, counted as a publish on its node (a chat).
  virtual int publish(const std::vector<std::string_view>& argv, ReplyCallback cb) { return command(argv, std::move(cb)); }
  virtual void subscribe(std::string_view channel) = 0;
  virtual void unsubscribe(std::string_view channel) = 0;
  virtual bool is_subscribed(std::string_view channel) const = 0;
  virtual Stats stats() const = 0;
  // Every wanted channel has a reachable owner (one Redis: up()).
  virtual bool reachable() const { return up(); }
  // Masters known (one Redis: 1).
  virtual size_t masters() const { return 1; }
  // Appends per-node Prometheus lines (cluster only).
  virtual void write_metrics(std::string* out) const {}
};

// Two connections to one Redis: "pub" for commands, "sub" for SUBSCRIBE. Both are rebuilt together
// after any failure, with capped exponential backoff:
//
//   start() --> [RESOLVING] --> CONNECTING --pub and sub ready--> UP
//                    ^              |                             |
//                    |   refused / error / connect timeout   drop / error reply / probe timeout
//                    |              v                             v
//                    +--- timer --- BACKOFF <---------------------+
//   stop(), from any state --> STOPPED; done() once every handle is closed
//
// RESOLVING (uv_getaddrinfo) only for a host name with no untried address left. "pub ready": its
// [AUTH] CLIENT SETNAME [SELECT] PING are answered; "sub ready": its [AUTH] CLIENT SETNAME and probe
// channel SUBSCRIBE are. A refused SETNAME is only logged.
//
// Single-threaded: every method must be called on the loop's thread. Callbacks may call any method,
// including stop(); the Client must not be destroyed inside one of its callbacks other than done().
class Client final : public Connection {
 public:
  Client(uv_loop_t* loop, Url url, Options options, Callbacks callbacks);
  ~Client() override;  // only before start() or after stop() has called back
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Starts connecting; never blocks; Redis down at start is fine (keeps retrying).
  // Returns 0, or kErrState if already started or stopped.
  int start() override;
  // Closes contexts, timers and polls. Accepted commands not yet answered get kErrStopped (some
  // possibly before stop() returns); no on_message/on_subscribed/on_state after it; done() once
  // every handle is closed (always later, from the loop; the Client may be destroyed inside done()).
  // Only the first call counts. Also valid if start() was never called.
  void stop(std::function<void()> done) override;
  bool up() const override;

  // Commands on the pub context, pipelined. Returns 0 (accepted: cb called exactly once, never from
  // inside this call), kErrDown (not up), kErrStopped or kErrInvalid (no callback in those cases).
  // Redis runs them, and callbacks come, in issue order, without exception: scripts go as EVAL
  // through here (never EVALSHA, whose NOSCRIPT retry could not keep its place in that order).
  // Do not send blocking commands (BLPOP, ...): the probe would time out behind them.
  int command(const std::vector<std::string_view>& argv, ReplyCallback cb) override;

  // The set of channels wanted. Idempotent; the set survives reconnects: after every reconnect all
  // wanted channels are re-subscribed in batches and on_subscribed fires again for each.
  // on_message is called only for wanted channels (none after unsubscribe() returns). Redis confirms
  // a SUBSCRIBE before the channel's first message, but with subscribe/unsubscribe/subscribe in
  // flight, on_subscribed waits for the last reply while messages of the first may already arrive.
  void subscribe(std::string_view channel) override;
  void unsubscribe(std::string_view channel) override;
  // True once Redis confirmed the latest SUBSCRIBE of a wanted channel on the current connection.
  bool is_subscribed(std::string_view channel) const override;

  Stats stats() const override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace roomcast::redis
