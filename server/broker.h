// The broker interface: how rooms reach every instance. Two implementations: in-process
// (standalone) and Redis (a thin adapter over redis/).
// Rule: payloads are opaque bytes (a complete JSON event); callbacks go to one long-lived BrokerEvents,
// always from the loop (never from inside the call that caused them), so both brokers re-enter the
// room code the same way.
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace roomcast::server {

// Errors of every broker call and callback: 0 or one of these.
enum BrokerError : int {
  kBrokerOk = 0,
  kBrokerDown = -1,          // not connected: nothing was sent
  kBrokerFailed = -2,        // the broker answered with an error: the command had no effect
  kBrokerDisconnected = -3,  // the connection dropped before the answer (a read only; chats are resolved)
  kBrokerStopped = -4,       // stop() was called
  kBrokerBusy = -5,          // too much in flight: nothing was sent
};
// A stable lower-case name for a BrokerError ("down", ...).
const char* broker_error_name(int err);

class BrokerEvents {
 public:
  virtual ~BrokerEvents() = default;
  // A message published to room (by any instance), in the room's one order.
  virtual void on_broker_message(std::string_view room, std::string_view payload) = 0;
  // The subscription to room is confirmed (again after every broker reconnect).
  virtual void on_broker_subscribed(std::string_view room) = 0;
  // The broker became reachable (true) or unreachable (false). Every subscription is confirmed again
  // (on_broker_subscribed) after a false; confirmations may come before the true.
  virtual void on_broker_state(bool up) = 0;
  // Redis Cluster: the room's subscription ended while the broker stayed up (its master failed, its slot
  // moved): chats may be missed from here until on_broker_subscribed confirms it again on the new owner.
  virtual void on_broker_lost(std::string_view room) {}
  // Redis Cluster: chats of the room may have been published where this instance's subscription did not
  // hear them (through another node, mid-migration); the room's stream has them.
  virtual void on_broker_gap(std::string_view room) {}
  // A message of the control channel (PROTOCOL.md section 9), published by any instance, this one too.
  virtual void on_broker_control(std::string_view payload) {}
};

// A read of a room's retained chats.
struct HistoryRead {
  std::vector<std::string> events;  // chat events, oldest first
  bool truncated = false;           // events after `since` were dropped from the history
  std::string position;             // the room's newest chat id when the read ran ("0-0": none yet):
                                    // every later chat has a larger id and reaches subscribers live
};

class Broker {
 public:
  // Called once: 0 and the id the broker gave the chat, or a negative BrokerError meaning the chat
  // was NOT published and never will be. A chat whose fate is unknown (the connection dropped before
  // its answer) is not answered until the broker has found out.
  using PublishDone = std::function<void(int status, std::string_view id)>;
  using HistoryDone = std::function<void(int status, HistoryRead read)>;
  using MembersDone = std::function<void(int status, std::vector<std::string> users_json)>;

  virtual ~Broker() = default;
  virtual int start() = 0;
  // Closes everything; done() runs once all handles are closed.
  virtual void stop(std::function<void()> done) = 0;
  virtual bool up() const = 0;
  virtual const char* mode() const = 0;  // "standalone", "redis" or "cluster", for logs and metrics only
  virtual bool standalone() const = 0;   // in-process: no other instance, no cluster-wide state
  virtual void subscribe(std::string_view room) = 0;
  virtual void unsubscribe(std::string_view room) = 0;
  // Publishes a chat event whose id the broker assigns: payload = prefix + id + suffix. Returns 0
  // (done called once, later), or a negative BrokerError when it cannot be sent now (done never called).
  virtual int publish_chat(std::string_view room, std::string_view prefix, std::string_view suffix, PublishDone done) = 0;
  // Publishes any other event (presence). Returns 0 or a negative BrokerError.
  virtual int publish_event(std::string_view room, std::string_view payload) = 0;
  // For `joined`: the room's newest retained chat events, returned oldest first: those after `since`
  // when it is not empty, else the last `limit` (0: none, only the position); at most max_bytes of
  // events in all, newest kept (truncated when cut). Returns 0 (done called once, later) or a
  // negative BrokerError (done never called).
  virtual int history(std::string_view room, std::string_view since, size_t limit, size_t max_bytes, HistoryDone done) = 0;
  // For back-fill: the oldest `count` retained chat events after `after`, oldest first (fewer: that
  // is all). truncated: events after `after` were dropped from the history. Returns as history().
  virtual int read_after(std::string_view room, std::string_view after, size_t count, HistoryDone done) = 0;
  // Cluster-wide membership (Redis: the hash <prefix>room:R:members, field = user id), one entry per
  // connection (member_key, unique in this process) under its user's field, so one connection
  // leaving never removes another's entry. Standalone brokers keep none (cluster_members() false)
  // and the rooms answer from their own members.
  virtual bool cluster_members() const { return false; }
  virtual void member_join(std::string_view room, std::string_view user_id, std::string_view member_key,
                           std::string_view user_json) {}
  // last_local: no other member of this instance is left in the room.
  virtual void member_leave(std::string_view room, std::string_view user_id, std::string_view member_key, bool last_local) {}
  // Reads the users (JSON) of the room on live instances, one per user id. Returns 0
  // (done called once, later) or a negative BrokerError.
  virtual int members(std::string_view room, MembersDone done) { return kBrokerFailed; }
  // Publishes payload on the control channel, which every instance hears (on_broker_control), this
  // one too; nothing is kept. Redis: the channel <prefix>roomcast:control. Returns 0 (done called once,
  // later: 0 once the broker took it, or a negative BrokerError) or a negative BrokerError (done never called).
  virtual int publish_control(std::string_view payload, std::function<void(int status)> done) { return kBrokerFailed; }
  virtual uint64_t reconnects() const { return 0; }
  // Every room subscribed has a reachable Redis node (Redis Cluster: its slot's owner answers).
  virtual bool reachable() const { return up(); }
  // Redis Cluster (sharded Pub/Sub, per-slot owners).
  virtual bool cluster() const { return false; }
  // Redis Cluster: masters in the slot map (0 otherwise).
  virtual size_t masters() const { return 0; }
  // Appends the broker's own Prometheus lines (Redis Cluster: per node).
  virtual void write_metrics(std::string* out) const {}
  virtual size_t subscriptions() const = 0;
};

}  // namespace roomcast::server
