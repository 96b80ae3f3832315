// The hub: what each client message does, and where broker events go.
// Rule: every chat goes through the broker and comes back before any member sees it, so all
// members everywhere see one order; a chat is answered (ack or error) exactly once, never left silent.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/message.h"
#include "server/broker.h"
#include "server/room.h"

namespace roomcast::server {

class Connection;
class Server;

class Hub : public BrokerEvents {
 public:
  explicit Hub(Server* server);
  ~Hub() override;

  // A WebSocket opened on target ("/ws?room=R&name=N").
  void on_open(Connection& c, std::string_view target);
  // One complete text message from c.
  void on_message(Connection& c, std::string_view text);
  // c is closing: it leaves every room (presence leave to the others).
  void on_close(Connection& c);
  // Releases lingering rooms, retries reads.
  void tick(uint64_t now_ms);

  // Why a chat was not sent (publish_chat): the error code and a human-readable message.
  struct ChatRefusal {
    protocol::ErrorCode code;
    std::string message;
  };
  // The one path of every chat, a member's or the server API's: checks the room id, the message and
  // the user (section 2 rules), the broker (up, chats in flight), and publishes. Returns nullopt when
  // the chat went to the broker (done is called once, later: 0 and the chat's id, or a negative
  // BrokerError meaning it was not published), else why not (done is never called).
  std::optional<ChatRefusal> publish_chat(std::string_view room_id, const protocol::User& user, std::string_view message,
                                          Broker::PublishDone done);
  // Closes (4003) every WebSocket of this instance whose user id is user_id. Returns how many.
  size_t disconnect_user(std::string_view user_id);

  // The room's members on every instance (cluster mode), or on this one; done may run at once.
  void room_members(std::string_view room_id, std::function<void(MemberList)> done);
  const Rooms& rooms() const { return *rooms_; }
  size_t room_count() const { return rooms_->size(); }
  size_t chats_in_flight() const { return chats_in_flight_; }

  // BrokerEvents
  void on_broker_message(std::string_view room, std::string_view payload) override;
  void on_broker_subscribed(std::string_view room) override;
  void on_broker_lost(std::string_view room) override;
  void on_broker_gap(std::string_view room) override;
  void on_broker_state(bool up) override;
  void on_broker_control(std::string_view payload) override;

  // Chats sent to the broker and not yet answered, at most (beyond: `unavailable`).
  static constexpr size_t kMaxChatsInFlight = 4096;

 private:
  void hello(Connection& c, const protocol::ClientMessage& m);
  // A new token for the same sub: its claims (rooms, exp) apply from now on.
  void refresh(Connection& c, const protocol::ClientMessage& m);
  void join(Connection& c, const std::string& room_id, const std::string& ref, const std::optional<std::string>& since);
  void leave(Connection& c, const std::string& room_id, const std::string& ref);
  void chat(Connection& c, protocol::ClientMessage& m);
  void adopt_user(Connection& c, const std::optional<protocol::User>& user);
  void error(Connection& c, protocol::ErrorCode code, std::string_view message, std::string_view ref);

  Server* server_;                // owns the hub
  std::unique_ptr<Rooms> rooms_;  // created when the broker exists (attach)
  size_t chats_in_flight_ = 0;    // publish_chat accepted, done not yet called

 public:
  // Connects the rooms to the broker (the server makes the broker after the hub).
  void attach(Broker* broker);
};

}  // namespace roomcast::server
