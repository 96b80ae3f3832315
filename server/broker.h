// The broker interface: how rooms reach every instance. Two implementations: in-process
// (standalone) and Redis (a thin adapter over redis/).
// Rule: payloads are opaque bytes (a complete JSON event); callbacks go to one long-lived BrokerEvents.
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace roomcast::server {

class BrokerEvents {
 public:
  virtual ~BrokerEvents() = default;
  // A message published to room (by any instance), in the room's one order.
  virtual void on_broker_message(std::string_view room, std::string_view payload) = 0;
  // The subscription to room is confirmed (again after every broker reconnect).
  virtual void on_broker_subscribed(std::string_view room) = 0;
  // The broker became reachable (true) or unreachable (false).
  virtual void on_broker_state(bool up) = 0;
};

class Broker {
 public:
  // Called once with status 0 and the id the broker gave the chat, or a negative status (not sent).
  using PublishDone = std::function<void(int status, std::string_view id)>;
  // Called once with the retained chat events after `after_id` (oldest first), or a negative status.
  using HistoryDone = std::function<void(int status, std::vector<std::string> events, bool truncated)>;

  virtual ~Broker() = default;
  virtual int start() = 0;
  // Closes everything; done() runs once all handles are closed.
  virtual void stop(std::function<void()> done) = 0;
  virtual bool up() const = 0;
  virtual const char* mode() const = 0;  // "standalone" or "redis", for logs and metrics only
  virtual bool standalone() const = 0;   // in-process: no other instance, no cluster-wide state
  virtual void subscribe(std::string_view room) = 0;
  virtual void unsubscribe(std::string_view room) = 0;
  // Publishes a chat event whose id the broker assigns: payload = prefix + id + suffix. Returns 0, or a
  // negative error when it cannot be sent now (done is then never called).
  virtual int publish_chat(std::string_view room, std::string_view prefix, std::string_view suffix, PublishDone done) = 0;
  // Publishes any other event (presence). Returns 0 or a negative error.
  virtual int publish_event(std::string_view room, std::string_view payload) = 0;
  // Reads the room's retained chat events, oldest first: those after `since` when it is not empty,
  // else the last `limit`. truncated: events after `since` were dropped from the history. Returns 0
  // (done called once, maybe at once) or a negative error (done never called).
  virtual int history(std::string_view room, std::string_view since, size_t limit, HistoryDone done) = 0;
  // Cluster-wide membership (Redis: the hash <prefix>room:R:members, field = user id). Standalone
  // brokers keep none (cluster_members() false) and the hub answers from its own rooms.
  using MembersDone = std::function<void(int status, std::vector<std::string> users_json)>;
  virtual bool cluster_members() const { return false; }
  virtual void member_join(std::string_view room, std::string_view user_id, std::string_view user_json) {}
  virtual void member_leave(std::string_view room, std::string_view user_id) {}
  // Reads the room's members on live instances. Returns 0 (done called once) or a negative error.
  virtual int members(std::string_view room, MembersDone done) { return -1; }
  virtual uint64_t reconnects() const { return 0; }
  virtual size_t subscriptions() const = 0;
};

}  // namespace roomcast::server
