// Rooms and messages: what each client message does, and how broker messages reach local members.
// Rule: every chat goes through the broker and comes back before any member sees it, so all
// members everywhere see one order; an event is framed once and its bytes shared by all recipients.
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/message.h"
#include "server/broker.h"
#include "server/rooms.h"

namespace roomcast::server {

class Connection;
class Server;
struct JoinFetch;

class Hub : public BrokerEvents {
 public:
  explicit Hub(Server* server) : server_(server) {}
  ~Hub() override = default;

  // A WebSocket opened on target ("/ws?room=R&name=N").
  void on_open(Connection& c, std::string_view target);
  // One complete text message from c.
  void on_message(Connection& c, std::string_view text);
  // c is closing: it leaves every room (presence leave to the others).
  void on_close(Connection& c);
  // Unsubscribes rooms whose linger time has passed.
  void tick(uint64_t now_ms);

  // Users currently in a room on this instance (deduplicated by id).
  std::vector<protocol::User> local_members(std::string_view room_id) const;
  // Users in a room on every instance (cluster mode), or on this one; done may run at once.
  void room_members(std::string_view room_id, std::function<void(std::vector<protocol::User>)> done);
  size_t room_count() const { return rooms_.size(); }
  const RoomRegistry& rooms() const { return rooms_; }

  // BrokerEvents
  void on_broker_message(std::string_view room, std::string_view payload) override;
  void on_broker_subscribed(std::string_view room) override;
  void on_broker_state(bool up) override;

 private:
  void hello(Connection& c, const protocol::ClientMessage& m);
  void join(Connection& c, const std::string& room_id, const std::string& ref, const std::optional<std::string>& since);
  void leave(Connection& c, const std::string& room_id, const std::string& ref);
  void chat(Connection& c, protocol::ClientMessage& m);
  void adopt_user(Connection& c, const std::optional<protocol::User>& user);
  void activate(Room* room, Room::Entry& e);
  void rejoin(Connection& c, Room* room, const std::string& ref, const std::string& since);
  void finish_join(uint64_t conn_id, const std::string& room_id, const JoinFetch& fetch);
  void left_room(Room* room, Connection& c, bool was_active);
  static void merge_users(std::vector<protocol::User>* into, const std::vector<protocol::User>& more);
  void start_backfill(Room* room);
  void activate_waiting(Room* room);
  void finish_backfill(const std::string& room_id, int status, std::vector<std::string> events);
  void deliver_chat(Room* room, std::string_view event);
  void member_removed(Room* room);
  void unsubscribe(Room* room);
  void error(Connection& c, protocol::ErrorCode code, std::string_view message, std::string_view ref);
  void fan_out(Room* room, std::string_view payload, std::string_view skip_user);

  Server* server_;      // owns the hub
  static constexpr uint64_t kLingerMs = 1000;
  RoomRegistry rooms_;                  // rooms with local members (or a subscription in flight)
  std::vector<std::string> lingering_;  // ids of rooms that went empty, oldest first
};

}  // namespace roomcast::server
