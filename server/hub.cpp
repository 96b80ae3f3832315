// Rooms and messages: what each client message does, and how broker messages reach local members.
// Rule: `joined` goes out only once the room's subscription is confirmed; a chat is acked or
// answered with an error, never left silent.
#include "server/hub.h"

#include <sys/time.h>

#include <algorithm>
#include <memory>

#include "protocol/http_path.h"
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

void Hub::on_open(Connection& c, std::string_view target) {
  std::string_view path, query;
  protocol::split_target(target, &path, &query);
  if (auto name = protocol::query_param(query, "name")) {
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
      LOG_INFO("conn %llu: flooding (over 1000 refused in 10 s): closing 1008", (unsigned long long)c.id());
      c.close_ws(protocol::kClosePolicy, "rate limit exceeded");
      return;
    }
    error(c, ErrorCode::RateLimited, "too many messages; slow down", ok ? m.ref : err.ref);
    return;
  }
  if (!ok) {
    error(c, err.code, err.message, err.ref);
    return;
  }
  switch (m.type) {
    case MsgType::Hello: hello(c, m); break;
    case MsgType::Create: {
      if (c.membership().rooms.size() >= static_cast<size_t>(server_->config().max_rooms)) {
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
  }
}

void Hub::hello(Connection& c, const ClientMessage& m) {
  adopt_user(c, m.user);
  c.send_text(protocol::encode_hello(c.user(), m.ref));
}

void Hub::adopt_user(Connection& c, const std::optional<User>& user) {
  if (!user || c.identified()) return;  // the first identity sticks
  c.user().name = user->name;
  c.user().id = user->id.empty() ? "u-" + protocol::random_base32(12) : user->id;
  c.set_identified();
}

void Hub::join(Connection& c, const std::string& room_id, const std::string& ref, const std::optional<std::string>& since) {
  Room* room = rooms_.get(room_id);
  if (Room::Entry* e = room->find(&c.membership())) {
    if (e->active) {
      // Already in: repeat `joined` (history and members as for a first join), no second presence.
      rejoin(c, room, ref, since.value_or(""));
    } else {
      e->wait->ref = ref;  // the latest join's ref is the one answered
    }
    return;
  }
  if (c.membership().rooms.size() >= static_cast<size_t>(server_->config().max_rooms)) {
    // Every room costs a broker subscription: one connection cannot make an instance hold thousands.
    error(c, ErrorCode::BadRequest, "too many rooms on one connection (--max-rooms " + std::to_string(server_->config().max_rooms) + "); leave one first", ref);
    rooms_.erase_if_unused(room);
    return;
  }
  rooms_.add(room, &c.membership());
  Room::Entry* e = room->find(&c.membership());
  e->wait = std::make_unique<JoinWait>(JoinWait{ref, since.value_or("")});
  switch (room->sub) {
    case SubState::Lingering:
      room->sub = SubState::Subscribed;
      [[fallthrough]];
    case SubState::Subscribed:
      if (server_->broker().up()) activate(room, *e);  // else when the broker is back
      break;
    case SubState::None:
      room->sub = SubState::Subscribing;
      LOG_DEBUG("room %s: subscribing", room->id.c_str());
      server_->broker().subscribe(room->id);  // may confirm at once (standalone)
      break;
    case SubState::Subscribing: break;
  }
}

// What `joined` waits for besides the subscription: the history and, in a cluster, the members.
struct JoinFetch {
  int waiting = 0;                     // replies still to come
  int history_status = 0;
  std::vector<std::string> events;     // history, oldest first
  bool truncated = false;
  bool have_members = false;           // members below came from the broker
  std::vector<User> members;           // cluster-wide members
};

void Hub::rejoin(Connection& c, Room* room, const std::string& ref, const std::string& since) {
  // The member keeps receiving live events meanwhile; a client dedupes the overlap by id.
  auto fetch = std::make_shared<JoinFetch>();
  Server* server = server_;
  uint64_t conn_id = c.id();
  std::string room_id = room->id;
  fetch->waiting = 2;
  auto finish = [server, conn_id, room_id, ref, fetch] {
    if (--fetch->waiting > 0) return;
    Connection* again = server->find(conn_id);
    if (again && again->is_websocket())
      again->send_text(protocol::encode_joined(room_id, again->user(), fetch->members, fetch->events, fetch->truncated, ref));
  };
  size_t limit = static_cast<size_t>(server_->config().history);
  int r = limit == 0 ? -1 : server_->broker().history(room_id, since, limit, [fetch, finish](int, std::vector<std::string> events, bool truncated) {
    fetch->events = std::move(events);
    fetch->truncated = truncated;
    finish();
  });
  if (r < 0) finish();
  room_members(room_id, [fetch, finish](std::vector<User> members) {
    fetch->members = std::move(members);
    finish();
  });
}

void Hub::activate(Room* room, Room::Entry& e) {
  // Subscribed: read the history (and the cluster's members), then answer `joined`. Live events
  // that arrive meanwhile are held so the joiner gets them after its history, once each.
  Connection* c = static_cast<Connection*>(e.member->owner);
  Broker& broker = server_->broker();
  e.wait->fetching = true;
  room->history_pending++;
  uint64_t conn_id = c->id();
  std::string room_id = room->id;
  auto fetch = std::make_shared<JoinFetch>();
  auto finish = [this, conn_id, room_id, fetch] {
    if (--fetch->waiting == 0) finish_join(conn_id, room_id, *fetch);
  };
  fetch->waiting = 1;  // released at the end of this function
  size_t limit = static_cast<size_t>(server_->config().history);
  if (limit > 0) {
    fetch->waiting++;
    int r = broker.history(room_id, e.wait->since, limit, [fetch, finish](int status, std::vector<std::string> events, bool truncated) {
      fetch->history_status = status;
      fetch->events = std::move(events);
      fetch->truncated = truncated;
      finish();
    });
    if (r < 0) {
      fetch->history_status = r;
      finish();
    }
  }
  if (broker.cluster_members()) {
    broker.member_join(room_id, c->user().id, protocol::encode_user(c->user()));
    fetch->waiting++;
    int r = broker.members(room_id, [fetch, finish](int status, std::vector<std::string> users) {
      if (status == 0) {
        fetch->have_members = true;
        for (const std::string& json : users) {
          User u;
          if (protocol::parse_user(json, &u)) fetch->members.push_back(std::move(u));
        }
      }
      finish();
    });
    if (r < 0) finish();
  }
  finish();
}

void Hub::finish_join(uint64_t conn_id, const std::string& room_id, const JoinFetch& fetch) {
  Room* room = rooms_.find(room_id);
  if (!room) return;
  if (room->history_pending > 0) room->history_pending--;
  Connection* c = server_->find(conn_id);
  Room::Entry* e = c && c->is_websocket() ? room->find(&c->membership()) : nullptr;
  if (e && !e->active && e->wait && e->wait->fetching) {
    if (fetch.history_status < 0) LOG_WARN("room %s: history unavailable; joined without it", room_id.c_str());
    std::string ref = std::move(e->wait->ref), since = std::move(e->wait->since);
    e->active = true;
    e->wait.reset();
    std::vector<User> members = local_members(room->id);
    if (fetch.have_members) merge_users(&members, fetch.members);
    const std::vector<std::string>& events = fetch.events;
    std::string threshold = events.empty() ? since : std::string(protocol::chat_event_id(events.back()));
    if (room->last_id.empty() && fetch.history_status == 0) {
      // The room's position in its stream, so a broker blip before its first live chat is still
      // back-filled: the newest retained event, or "0-0" when the stream had none.
      if (!events.empty()) room->last_id = std::string(protocol::chat_event_id(events.back()));
      else if (since.empty()) room->last_id = "0-0";  // (a client's `since` is never trusted as a position)
    }
    c->send_text(protocol::encode_joined(room->id, c->user(), members, events, fetch.truncated, ref));
    for (const std::string& held : room->held) {
      if (threshold.empty() || protocol::compare_message_ids(protocol::chat_event_id(held), threshold) > 0) c->send_text(held);
    }
    server_->broker().publish_event(room->id, protocol::encode_presence(true, room->id, c->user()));
  }
  if (room->history_pending == 0 && !room->backfilling) room->held.clear();
}

void Hub::merge_users(std::vector<User>* into, const std::vector<User>& more) {
  for (const User& u : more)
    if (std::none_of(into->begin(), into->end(), [&](const User& x) { return x.id == u.id; })) into->push_back(u);
}

void Hub::room_members(std::string_view room_id, std::function<void(std::vector<User>)> done) {
  std::vector<User> local = local_members(room_id);
  Broker& broker = server_->broker();
  if (!broker.cluster_members() || !broker.up()) {
    done(std::move(local));
    return;
  }
  auto shared_done = std::make_shared<std::function<void(std::vector<User>)>>(std::move(done));
  auto local_copy = std::make_shared<std::vector<User>>(local);
  int r = broker.members(room_id, [shared_done, local_copy](int status, std::vector<std::string> users) {
    std::vector<User> all = std::move(*local_copy);
    if (status == 0) {
      std::vector<User> remote;
      for (const std::string& json : users) {
        User u;
        if (protocol::parse_user(json, &u)) remote.push_back(std::move(u));
      }
      merge_users(&all, remote);
    }
    (*shared_done)(std::move(all));
  });
  if (r < 0) (*shared_done)(std::move(*local_copy));
}

void Hub::left_room(Room* room, Connection& c, bool was_active) {
  if (!was_active) return;
  server_->broker().publish_event(room->id, protocol::encode_presence(false, room->id, c.user()));
  if (!server_->broker().cluster_members()) return;
  // Another connection of the same user still in the room keeps the user a member.
  for (const Room::Entry& e : room->members)
    if (e.active && static_cast<Connection*>(e.member->owner)->user().id == c.user().id) return;
  server_->broker().member_leave(room->id, c.user().id);
}

void Hub::leave(Connection& c, const std::string& room_id, const std::string& ref) {
  Room* room = rooms_.find(room_id);
  bool was_active = false;
  if (!room || !rooms_.remove(room, &c.membership(), &was_active)) {
    error(c, ErrorCode::NotMember, "not a member of " + room_id, ref);
    return;
  }
  c.send_text(protocol::encode_left(room_id, ref));
  left_room(room, c, was_active);
  member_removed(room);
}

void Hub::on_close(Connection& c) {
  std::vector<Room*> rooms = c.membership().rooms;  // the loop below edits the original
  for (Room* room : rooms) {
    bool was_active = false;
    rooms_.remove(room, &c.membership(), &was_active);
    left_room(room, c, was_active);
    member_removed(room);
  }
}

void Hub::member_removed(Room* room) {
  if (!room->members.empty()) return;
  if (room->sub == SubState::Subscribed) {
    // Linger a little in Redis mode: a leave followed by a join costs no UNSUBSCRIBE/SUBSCRIBE pair.
    if (std::string_view(server_->broker().mode()) != "redis") {
      unsubscribe(room);
      return;
    }
    room->sub = SubState::Lingering;
    room->linger_until = server_->now_ms() + kLingerMs;
    lingering_.push_back(room->id);
  } else if (room->sub == SubState::None) {
    rooms_.erase_if_unused(room);
  }
}

void Hub::unsubscribe(Room* room) {
  LOG_DEBUG("room %s: unsubscribing", room->id.c_str());
  server_->broker().unsubscribe(room->id);
  room->sub = SubState::None;
  rooms_.erase_if_unused(room);
}

void Hub::tick(uint64_t now_ms) {
  // lingering_ is in linger order; a room may appear twice or have been revived: check each.
  size_t done = 0;
  for (; done < lingering_.size(); done++) {
    Room* r = rooms_.find(lingering_[done]);
    if (!r || r->sub != SubState::Lingering) continue;
    if (r->linger_until > now_ms) break;
    if (r->members.empty()) unsubscribe(r);
  }
  lingering_.erase(lingering_.begin(), lingering_.begin() + static_cast<ptrdiff_t>(done));
}

void Hub::chat(Connection& c, ClientMessage& m) {
  if (m.room_id.empty()) {
    // chat_message without a room: the connection's only room.
    if (c.membership().rooms.size() != 1) {
      error(c, ErrorCode::BadRequest, "chat_message without room needs exactly one joined room", m.ref);
      return;
    }
    m.room_id = c.membership().rooms.front()->id;
  }
  if (!server_->broker().up()) {
    server_->metrics().publish_errors++;
    error(c, ErrorCode::Unavailable, "the message broker is unreachable; the message was not sent", m.ref);
    return;
  }
  std::string prefix = protocol::chat_event_prefix(m.room_id, c.user(), m.message, wall_ms());
  uint64_t conn_id = c.id();
  std::string ref = m.ref;
  Server* server = server_;
  int r = server_->broker().publish_chat(m.room_id, prefix, protocol::kChatEventSuffix,
                                         [server, conn_id, ref](int status, std::string_view id) {
                                           Connection* sender = server->find(conn_id);
                                           if (status < 0) server->metrics().publish_errors++;
                                           if (!sender || !sender->is_websocket()) return;
                                           if (status < 0)
                                             sender->send_text(protocol::encode_error(ErrorCode::Unavailable, "the message broker dropped the message; it was not sent", ref));
                                           else if (!ref.empty())
                                             sender->send_text(protocol::encode_ack(ref, id));
                                         });
  if (r < 0) {
    server_->metrics().publish_errors++;
    error(c, ErrorCode::Unavailable, "the message broker is unreachable; the message was not sent", m.ref);
    return;
  }
  server_->metrics().publishes++;
}

void Hub::error(Connection& c, ErrorCode code, std::string_view message, std::string_view ref) {
  c.send_text(protocol::encode_error(code, message, ref));
}

std::vector<User> Hub::local_members(std::string_view room_id) const {
  std::vector<User> users;
  Room* room = rooms_.find(room_id);
  if (!room) return users;
  for (const Room::Entry& e : room->members) {
    if (!e.active) continue;
    const User& u = static_cast<Connection*>(e.member->owner)->user();
    if (std::none_of(users.begin(), users.end(), [&](const User& x) { return x.id == u.id; })) users.push_back(u);
  }
  return users;
}

void Hub::on_broker_message(std::string_view room_id, std::string_view payload) {
  server_->metrics().broker_messages_in++;
  Room* room = rooms_.find(room_id);
  if (!room) return;
  if (!protocol::is_chat_event(payload)) {
    fan_out(room, payload, protocol::presence_user_id(payload));  // the joiner gets no presence about itself
    return;
  }
  if (room->history_pending > 0 || room->backfilling) room->held.emplace_back(payload);
  if (!room->backfilling) deliver_chat(room, payload);
}

void Hub::deliver_chat(Room* room, std::string_view event) {
  std::string_view id = protocol::chat_event_id(event);
  // Ids grow within a room, so an id not above the last one is a copy (a backfill overlapping live).
  if (!room->last_id.empty() && protocol::compare_message_ids(id, room->last_id) <= 0) return;
  room->last_id = std::string(id);
  int64_t ts = protocol::chat_event_ts(event);
  if (ts > 0) {
    double ms = wall_ms_precise() - static_cast<double>(ts);
    server_->metrics().observe_latency(ms < 0 ? 0 : ms);
  }
  fan_out(room, event, {});
}

void Hub::fan_out(Room* room, std::string_view payload, std::string_view skip_user) {
  std::string frame;
  server_->frames().encode(protocol::kWsText, payload, &frame);
  SharedBuf* buf = SharedBuf::make(std::move(frame));
  uint64_t n = 0;
  // send() never closes synchronously (an overflow is acted on at flush time), so the list is stable.
  for (Room::Entry& e : room->members) {
    Connection* c = static_cast<Connection*>(e.member->owner);
    if (!e.active || !c->is_websocket()) continue;
    if (!skip_user.empty() && c->user().id == skip_user) continue;
    c->send(buf->ref());
    n++;
  }
  server_->metrics().messages_out += n;
  buf->unref();
}

void Hub::on_broker_subscribed(std::string_view room_id) {
  Room* room = rooms_.find(room_id);
  if (!room) return;
  if (room->sub == SubState::Subscribing) {
    room->sub = SubState::Subscribed;
    LOG_DEBUG("room %s: subscribed", room->id.c_str());
    // A confirmation can come before the command connection is ready (after a reconnect, or when
    // Redis appears late): the joins then wait for on_broker_state(true).
    if (server_->broker().up()) activate_waiting(room);
    return;
  }
  if (room->sub != SubState::Subscribed || room->last_id.empty() || room->backfilling) return;
  // Subscribed again after a broker reconnect: fill the gap from the history before going live.
  // Live chats are held from now on; the read starts once the broker reports up (subscriptions
  // may be confirmed before the command connection is ready).
  room->backfilling = true;
  if (server_->broker().up()) start_backfill(room);
}

void Hub::activate_waiting(Room* room) {
  for (Room::Entry& e : room->members)
    if (!e.active && e.wait && !e.wait->fetching) activate(room, e);
  member_removed(room);  // everyone left before the confirmation: linger, then unsubscribe
}

void Hub::start_backfill(Room* room) {
  LOG_DEBUG("room %s: resubscribed; back-filling after %s", room->id.c_str(), room->last_id.c_str());
  room->backfill_inflight = true;
  std::string id = room->id;
  auto done = [this, id](int status, std::vector<std::string> events, bool) { finish_backfill(id, status, std::move(events)); };
  if (server_->broker().history(room->id, room->last_id, 0, done) < 0) done(-1, {}, false);
}

void Hub::finish_backfill(const std::string& room_id, int status, std::vector<std::string> events) {
  Room* room = rooms_.find(room_id);
  if (!room) return;
  room->backfill_inflight = false;
  if (status < 0 && !server_->broker().up()) return;  // still held; read again when the broker is back
  room->backfilling = false;
  if (status < 0) LOG_WARN("room %s: back-fill failed; members may miss messages sent during the outage", room_id.c_str());
  for (const std::string& e : events) deliver_chat(room, e);
  std::vector<std::string> held;
  held.swap(room->held);
  for (const std::string& e : held) deliver_chat(room, e);
  if (room->history_pending > 0) room->held = std::move(held);  // joiners still need them
}

void Hub::on_broker_state(bool up) {
  if (up && server_->broker().cluster_members()) {
    // Redis may have restarted empty: write our members again.
    Broker& broker = server_->broker();
    rooms_.for_each([&](Room* room) {
      for (const Room::Entry& e : room->members) {
        if (!e.active) continue;
        const User& u = static_cast<Connection*>(e.member->owner)->user();
        broker.member_join(room->id, u.id, protocol::encode_user(u));
      }
    });
  }
  if (up) {
    std::vector<std::string> backfill, waiting;
    rooms_.for_each([&](Room* room) {
      if (room->backfilling && !room->backfill_inflight) backfill.push_back(room->id);
      if (room->sub == SubState::Subscribed) waiting.push_back(room->id);
    });
    for (const std::string& id : backfill)
      if (Room* room = rooms_.find(id)) start_backfill(room);
    for (const std::string& id : waiting)
      if (Room* room = rooms_.find(id)) activate_waiting(room);  // may erase the room
  }
  if (up) LOG_INFO("broker %s: up", server_->broker().mode());
  else LOG_WARN("broker %s: down; chats are answered `unavailable` until it is back", server_->broker().mode());
}

}  // namespace roomcast::server
