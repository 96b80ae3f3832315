// Rooms and messages: what each client message does, and how broker messages reach local members.
// Rule: `joined` goes out only once the room's subscription is confirmed; a chat is acked or
// answered with an error, never left silent.
#include "server/hub.h"

#include <sys/time.h>

#include <algorithm>
#include <memory>

#include "protocol/api_body.h"
#include "protocol/http_path.h"
#include "protocol/utf8.h"
#include "server/connection.h"
#include "server/log.h"
#include "server/server.h"

namespace roomcast::server {

using protocol::ClientMessage;
using protocol::ErrorCode;
using protocol::MsgType;
using protocol::User;

namespace {

int64_t wall_ms() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
}

double wall_ms_precise() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return static_cast<double>(tv.tv_sec) * 1000.0 + static_cast<double>(tv.tv_usec) / 1000.0;
}

}  // namespace

Hub::Hub(Server* server) : server_(server) {}

Hub::~Hub() = default;

void Hub::attach(Broker* broker) {
  const Config& cfg = server_->config();
  RoomLimits limits;
  limits.history = static_cast<size_t>(cfg.history);
  limits.max_rooms = static_cast<size_t>(cfg.max_rooms);
  // A `joined` must always fit through --max-outbound, or a joiner would be closed as a slow reader.
  limits.joined_max_bytes = std::min<size_t>(512 * 1024, cfg.max_outbound / 2);
  Server* server = server_;
  rooms_ = std::make_unique<Rooms>(broker, &server_->frames(), &server_->metrics(), limits, [server](uint64_t id) -> Member* {
    Connection* c = server->find(id);
    return c && c->is_websocket() ? c : nullptr;
  });
}

void Hub::on_open(Connection& c, std::string_view target) {
  std::string_view path, query;
  protocol::split_target(target, &path, &query);
  // With a token, ?name= cannot change the identity (section 8).
  auto name = c.authenticated() ? std::nullopt : protocol::query_param(query, "name");
  if (name) {
    if (protocol::valid_user_name(*name)) {
      c.user().name = *name;
      c.set_identified();
    } else {
      error(c, ErrorCode::BadRequest, "name must be 1-64 characters without control characters; using " + c.user().name, "");
    }
  }
  if (auto room = protocol::query_param(query, "room")) {
    if (protocol::valid_room_id(*room)) join(c, *room, "", std::nullopt);
    else error(c, ErrorCode::BadRoom, "room must be 1-64 characters of [A-Za-z0-9_.:-]", "");
  }
}

void Hub::on_message(Connection& c, std::string_view text) {
  ClientMessage m;
  protocol::MessageError err;
  bool ok = protocol::parse_client_message(text, &m, &err);
  bool flooding = false;
  if (!c.take_token(server_->now_ms(), &flooding)) {
    server_->metrics().rate_limited++;
    if (flooding) {
      LOG_INFO("conn %llu (%s): flooding (over 1000 refused in 10 s): closing 1008", (unsigned long long)c.id(), c.who().c_str());
      c.close_ws(protocol::kClosePolicy, "rate limit exceeded");
      return;
    }
    error(c, ErrorCode::RateLimited, "too many messages; slow down", ok ? m.ref : err.ref);
    return;
  }
  if (!ok) {
    if (err.too_deep) server_->metrics().bound_hit(Bound::JsonDepth, "a client sent JSON nested deeper than 64 levels: bad_json");
    error(c, err.code, err.message, err.ref);
    return;
  }
  switch (m.type) {
    case MsgType::Hello: hello(c, m); break;
    case MsgType::Create: {
      if (c.authenticated() && c.grant().rooms_limited) {
        error(c, ErrorCode::Unauthorized, "a token with a rooms claim may not create rooms", m.ref);
        return;
      }
      if (c.room_slots().size() >= static_cast<size_t>(server_->config().max_rooms)) {
        error(c, ErrorCode::BadRequest, "too many rooms on one connection (--max-rooms " + std::to_string(server_->config().max_rooms) + "); leave one first", m.ref);
        return;
      }
      adopt_user(c, m.user);
      std::string id = protocol::new_room_id();
      if (id.empty()) {
        error(c, ErrorCode::Unavailable, "could not generate a room id", m.ref);
        return;
      }
      c.send_text(protocol::encode_created(id, m.ref));
      join(c, id, m.ref, std::nullopt);
      break;
    }
    case MsgType::Join:
      adopt_user(c, m.user);
      join(c, m.room_id, m.ref, m.since);
      break;
    case MsgType::Leave: leave(c, m.room_id, m.ref); break;
    case MsgType::Chat: chat(c, m); break;
    case MsgType::Ping: c.send_text(protocol::encode_pong(m.ref)); break;
    case MsgType::Refresh: refresh(c, m); break;
  }
}

void Hub::hello(Connection& c, const ClientMessage& m) {
  adopt_user(c, m.user);
  c.send_text(protocol::encode_hello(c.user(), server_->config().instance_id, m.ref));
}

void Hub::adopt_user(Connection& c, const std::optional<User>& user) {
  if (!user || c.identified()) return;  // the first identity sticks
  c.user().name = user->name;
  c.user().id = user->id.empty() ? "u-" + protocol::random_base32(12) : user->id;
  c.set_identified();
}

void Hub::refresh(Connection& c, const ClientMessage& m) {
  if (!c.authenticated()) {
    error(c, ErrorCode::BadRequest, "authentication is off on this server: there is no token to refresh", m.ref);
    return;
  }
  AuthGrant grant;
  if (server_->check_token(m.token, &grant, "refresh") != AuthRefusal::None) {
    error(c, ErrorCode::Unauthorized, "the token was refused; the current one stays", m.ref);
    return;
  }
  if (grant.user.id != c.user().id) {
    error(c, ErrorCode::Unauthorized, "the token is for another user; the current one stays", m.ref);
    return;
  }
  int64_t exp = grant.exp;
  c.set_grant(std::move(grant));
  c.send_text(protocol::encode_refreshed(exp, m.ref));
}

void Hub::join(Connection& c, const std::string& room_id, const std::string& ref, const std::optional<std::string>& since) {
  if (c.authenticated() && !c.grant().may_enter(room_id)) {
    error(c, ErrorCode::Unauthorized, "the token does not allow room " + room_id, ref);
    return;
  }
  if (rooms_->join(c, room_id, ref, since.value_or("")) == Rooms::JoinResult::TooManyRooms) {
    // Every room costs a broker subscription: one connection cannot make an instance hold thousands.
    error(c, ErrorCode::BadRequest, "too many rooms on one connection (--max-rooms " + std::to_string(server_->config().max_rooms) + "); leave one first", ref);
  }
}

void Hub::leave(Connection& c, const std::string& room_id, const std::string& ref) {
  if (!rooms_->leave(c, room_id)) {
    error(c, ErrorCode::NotMember, "not a member of " + room_id, ref);
    return;
  }
  c.send_text(protocol::encode_left(room_id, ref));
}

void Hub::on_close(Connection& c) { rooms_->drop(c); }

void Hub::tick(uint64_t now_ms) {
  if (rooms_) rooms_->tick(now_ms);  // (no rooms when the broker could not be made: start() fails)
}

void Hub::room_members(std::string_view room_id, std::function<void(MemberList)> done) {
  rooms_->list_members(room_id, std::move(done));
}

void Hub::chat(Connection& c, ClientMessage& m) {
  if (m.room_id.empty()) {
    // chat_message without a room: the connection's only room.
    if (c.room_slots().size() != 1) {
      error(c, ErrorCode::BadRequest, "chat_message without room needs exactly one joined room", m.ref);
      return;
    }
    m.room_id = c.room_slots().front().room->id;
  }
  if (c.authenticated() && !c.grant().may_enter(m.room_id)) {
    error(c, ErrorCode::Unauthorized, "the token does not allow room " + m.room_id, m.ref);
    return;
  }
  uint64_t conn_id = c.id();
  std::string ref = m.ref;
  Server* server = server_;
  auto refused = publish_chat(m.room_id, c.user(), m.message, [server, conn_id, ref](int status, std::string_view id) {
    Connection* sender = server->find(conn_id);
    if (!sender || !sender->is_websocket()) return;
    if (status < 0)
      sender->send_text(protocol::encode_error(ErrorCode::Unavailable, "the message broker refused or dropped the message; it was not sent", ref));
    else if (!ref.empty())
      sender->send_text(protocol::encode_ack(ref, id));
  });
  if (refused) error(c, refused->code, refused->message, m.ref);
}

std::optional<Hub::ChatRefusal> Hub::publish_chat(std::string_view room_id, const User& user, std::string_view message,
                                                  Broker::PublishDone done) {
  // Members' chats were checked by parse_client_message, API chats by parse_publish_request; checked
  // again here so that no caller can put an invalid chat in a room's history.
  if (!protocol::valid_room_id(room_id)) return ChatRefusal{ErrorCode::BadRoom, "roomId must be 1-64 characters of [A-Za-z0-9_.:-]"};
  if (message.empty()) return ChatRefusal{ErrorCode::BadRequest, "message must not be empty"};
  if (message.size() > protocol::kMaxChatBytes) return ChatRefusal{ErrorCode::TooLarge, "message is over 16384 bytes"};
  if (!protocol::valid_utf8(message)) return ChatRefusal{ErrorCode::BadRequest, "message is not valid Unicode"};
  if (!protocol::valid_user_id(user.id) || !protocol::valid_user_name(user.name))
    return ChatRefusal{ErrorCode::BadRequest, "user must be {\"id\":..,\"name\":..} with valid values"};
  if (!server_->broker().up()) {
    server_->metrics().publish_errors++;
    return ChatRefusal{ErrorCode::Unavailable, "the message broker is unreachable; the message was not sent"};
  }
  if (chats_in_flight_ >= kMaxChatsInFlight) {
    server_->metrics().publish_errors++;
    server_->metrics().bound_hit(Bound::ChatsInFlight, "more chats waiting for the broker than the process allows (4096); answering unavailable");
    return ChatRefusal{ErrorCode::Unavailable, "too many messages waiting for the broker; the message was not sent"};
  }
  std::string prefix = protocol::chat_event_prefix(room_id, user, message, wall_ms());
  Server* server = server_;
  size_t* in_flight = &chats_in_flight_;
  int r = server_->broker().publish_chat(room_id, prefix, protocol::kChatEventSuffix,
                                         [server, in_flight, done = std::move(done)](int status, std::string_view id) {
                                           (*in_flight)--;
                                           if (status < 0) server->metrics().publish_errors++;
                                           done(status, id);
                                         });
  if (r < 0) {
    server_->metrics().publish_errors++;
    return ChatRefusal{ErrorCode::Unavailable, "the message broker cannot take it now; the message was not sent"};
  }
  chats_in_flight_++;
  server_->metrics().publishes++;
  return std::nullopt;
}

size_t Hub::disconnect_user(std::string_view user_id) {
  // Ids first: closing runs the rooms' leave code, which must not run inside the walk of connections.
  std::vector<uint64_t> ids;
  server_->for_each_connection([&](Connection& c) {
    if (c.is_websocket() && c.user().id == user_id) ids.push_back(c.id());
  });
  for (uint64_t id : ids) {
    Connection* c = server_->find(id);
    if (c && c->is_websocket()) c->close_ws(protocol::kCloseDisconnected, "disconnected by the server");
  }
  return ids.size();
}

void Hub::on_broker_control(std::string_view payload) {
  std::string user_id;
  if (!protocol::parse_disconnect_control(payload, &user_id)) {
    LOG_DEBUG("broker: control message ignored (not understood)");
    return;
  }
  size_t n = disconnect_user(user_id);
  if (n > 0) LOG_INFO("server API: %zu connections of one user closed 4003", n);
}

void Hub::error(Connection& c, ErrorCode code, std::string_view message, std::string_view ref) {
  c.send_text(protocol::encode_error(code, message, ref));
}

void Hub::on_broker_message(std::string_view room_id, std::string_view payload) {
  server_->metrics().broker_messages_in++;
  if (protocol::is_chat_event(payload)) {
    int64_t ts = protocol::chat_event_ts(payload);
    if (ts > 0) {
      double ms = wall_ms_precise() - static_cast<double>(ts);
      server_->metrics().observe_latency(ms < 0 ? 0 : ms);
    }
  }
  rooms_->on_message(room_id, payload);
}

void Hub::on_broker_subscribed(std::string_view room_id) { rooms_->on_subscribed(room_id); }

void Hub::on_broker_lost(std::string_view room_id) { rooms_->on_lost(room_id); }

void Hub::on_broker_gap(std::string_view room_id) { rooms_->on_gap(room_id); }

void Hub::on_broker_state(bool up) {
  if (up) LOG_INFO("broker %s: up", server_->broker().mode());
  else LOG_WARN("broker %s: down; chats are answered `unavailable` until it is back", server_->broker().mode());
  rooms_->on_state(up);
}

}  // namespace roomcast::server
