// Rooms of one instance: membership, subscriptions, history reads, back-fill and linger (see room.h).
// Rule: every broker reply names the room by (id, serial) and the member by (id, read token), and is
// dropped when either changed meanwhile: nothing is keyed two ways.
#include "server/room.h"

#include <algorithm>
#include <unordered_set>

#include "protocol/message.h"
#include "server/log.h"

namespace roomcast::server {

using protocol::MsgId;
using protocol::User;

const char* room_state_name(RoomState s) {
  switch (s) {
    case RoomState::Subscribing: return "subscribing";
    case RoomState::Syncing: return "syncing";
    case RoomState::Live: return "live";
    case RoomState::Lingering: return "lingering";
  }
  return "?";
}

// What one member's read brings: its history and, in a cluster, the room's members.
struct Rooms::Fetch {
  std::string ref;                       // the join it answers: its ref
  int waiting = 0;
  int status = 0;                        // history status
  HistoryRead history;
  bool have_members = false;
  std::vector<std::string> members;      // user JSON, one per connection on live instances
};

Rooms::Rooms(Broker* broker, protocol::WsFramePool* frames, Metrics* metrics, RoomLimits limits,
             std::function<Member*(uint64_t)> find_member)
    : broker_(broker), frames_(frames), metrics_(metrics), limits_(limits), find_member_(std::move(find_member)),
      linger_(limits.linger_ms) {}

Rooms::~Rooms() {
  for (auto& [id, r] : rooms_) {
    DeadlineList::remove(&r->linger);
    for (Seat& s : r->seats) s.member->slots_.clear();
  }
}

Room* Rooms::find(std::string_view id) const {
  auto it = rooms_.find(id);
  return it == rooms_.end() ? nullptr : it->second.get();
}

Seat* Rooms::seat_of(Room* r, const Member& m) {
  for (const RoomSlot& slot : m.slots_)
    if (slot.room == r) return &r->seats[slot.seat];
  return nullptr;
}

Seat* Rooms::seat_of(Room* r, uint64_t member_id) {
  Member* m = find_member_(member_id);
  return m ? seat_of(r, *m) : nullptr;
}

Rooms::JoinResult Rooms::join(Member& m, std::string_view room_id, std::string_view ref, std::string_view since) {
  Room* r = find(room_id);
  if (r) {
    if (Seat* s = seat_of(r, m)) {
      // A repeated join is answered with a new `joined`, as a first join is (a new session: what the
      // member missed before it is what `since` asks for). Every join is answered, in turn, with its ref.
      if (s->joins.size() >= kMaxJoinsWaiting) {
        m.send_event(protocol::encode_error(protocol::ErrorCode::BadRequest,
                                            "too many joins of this room waiting for their answer; wait for `joined`", ref));
        return JoinResult::Ok;
      }
      s->joins.push_back(JoinRequest{std::string(ref), std::string(since)});
      if (s->state == SeatState::Active) {
        s->state = SeatState::Waiting;
        if (confirmed(r) && broker_->up()) start_read(r, *s);
      }
      return JoinResult::Ok;
    }
  }
  if (m.slots_.size() >= limits_.max_rooms) {
    metrics_->bound_hit(Bound::MaxRooms, "a connection asked to be in more rooms than --max-rooms");
    return JoinResult::TooManyRooms;
  }
  if (!r) {
    auto owned = std::make_unique<Room>();
    r = owned.get();
    r->id = std::string(room_id);
    r->serial = next_serial_++;
    r->linger.owner = r;
    rooms_.emplace(std::string_view(r->id), std::move(owned));
    LOG_DEBUG("room %s: subscribing", r->id.c_str());
    broker_->subscribe(r->id);
  } else if (r->state == RoomState::Lingering) {
    DeadlineList::remove(&r->linger);
    r->state = RoomState::Live;
  }
  Seat s;
  s.member = &m;
  s.joins.push_back(JoinRequest{std::string(ref), std::string(since)});
  r->seats.push_back(std::move(s));
  m.slots_.push_back(RoomSlot{r, static_cast<uint32_t>(r->seats.size() - 1)});
  if (confirmed(r) && broker_->up()) start_read(r, r->seats.back());
  return JoinResult::Ok;
}

void Rooms::start_read(Room* r, Seat& s) {
  // Reads the history (and the cluster's members) for `joined`. Live chats meanwhile are held by the
  // room and given after `joined`, above the position the read reports: none twice, none skipped.
  if (s.state != SeatState::Waiting) return;
  s.state = SeatState::Reading;
  s.read = next_token_++;
  s.read_epoch = r->held_epoch;
  r->readers++;
  const User& u = s.member->member_user();
  if (broker_->cluster_members() && !s.registered) {
    broker_->member_join(r->id, u.id, member_key(*s.member), protocol::encode_user(u));
    s.registered = true;
  }
  auto fetch = std::make_shared<Fetch>();
  fetch->ref = s.joins.front().ref;
  std::string room_id = r->id;
  uint64_t serial = r->serial, member_id = s.member->member_id(), token = s.read;
  auto finish = [this, fetch, room_id, serial, member_id, token] {
    if (--fetch->waiting == 0) finish_read(room_id, serial, member_id, token, *fetch);
  };
  fetch->waiting = 1;  // released below, once every request is out
  fetch->waiting++;
  std::string_view since = s.joins.front().since;
  int rc = broker_->history(room_id, since, limits_.history, limits_.joined_max_bytes, [fetch, finish](int status, HistoryRead read) {
    fetch->status = status;
    fetch->history = std::move(read);
    finish();
  });
  if (rc < 0) {
    fetch->status = rc;
    fetch->waiting--;
  }
  if (broker_->cluster_members() && rc == 0) {
    fetch->waiting++;
    int mr = broker_->members(room_id, [fetch, finish](int status, std::vector<std::string> users) {
      if (status == 0) {
        fetch->have_members = true;
        fetch->members = std::move(users);
      }
      finish();
    });
    if (mr < 0) fetch->waiting--;
  }
  finish();
}

void Rooms::finish_read(const std::string& room_id, uint64_t serial, uint64_t member_id, uint64_t token, Fetch& f) {
  Room* r = find(room_id);
  if (!r || r->serial != serial) return;
  Seat* s = seat_of(r, member_id);
  if (!s || s->state != SeatState::Reading || s->read != token) return;  // stale: left, reset, read again
  s->read = 0;
  r->readers--;
  MsgId position;
  if (f.status == 0 && !protocol::parse_message_id(f.history.position, &position)) f.status = kBrokerFailed;
  if (f.status < 0) {
    // No `joined` without its history: wait, and read again once the broker is back.
    LOG_DEBUG("room %s: history read failed (%s); the join waits", r->id.c_str(), broker_error_name(f.status));
    s->state = SeatState::Waiting;
    if (broker_->up() && confirmed(r)) schedule_retry(r);
    close_held_if_unused(r);
    return;
  }
  Member& m = *s->member;
  const User& me = m.member_user();
  bool first = !s->announced;
  if (first) {
    s->announced = true;  // listed from now on, its own `joined` included
    auto it = r->users.find(me.id);
    if (it == r->users.end()) {
      // Entered under a view of the member's id, then re-keyed to the entry's own copy (same node).
      auto node = r->users.extract(r->users.emplace(std::string_view(me.id), Room::LocalUser{me, 0}).first);
      node.key() = node.mapped().user.id;
      it = r->users.insert(std::move(node)).position;
    }
    it->second.seats++;
  }
  // Fit the history into the frame limit, dropping the oldest first; the newest id of the read is
  // this member's position either way (what is cut was left out knowingly, and says `truncated`).
  const std::vector<std::string>& events = f.history.events;
  MemberList members = merge_members(r, f.have_members ? &f.members : nullptr);
  if (members.truncated) metrics_->bound_hit(Bound::MembersListed, "a room has more members than `joined` lists (1000)");
  protocol::JoinedReply j;
  j.room_id = r->id;
  j.you = &me;
  j.members = &members.users;
  j.count = members.count;
  j.members_truncated = members.truncated;
  j.history = &events;
  j.truncated = f.history.truncated;
  j.ref = f.ref;
  j.history_from = fit_history(j, events);
  MsgId newest = position;
  for (const std::string& e : events) {
    MsgId id;
    if (protocol::parse_message_id(protocol::chat_event_id(e), &id) && newest < id) newest = id;
  }
  if (!s->has_pos || s->pos < newest) s->pos = newest;
  s->has_pos = true;
  s->state = SeatState::Active;
  m.send_event(protocol::encode_joined(j));
  // Held chats are a gap-free run from before this read began (only what came after them can have
  // been dropped); if some were dropped, or the outage dropped them all, the stream fills the rest.
  for (const HeldEvent& h : r->held) {
    if (s->pos < h.id) {
      m.send_event(h.payload);
      s->pos = h.id;
    }
  }
  if (s->read_epoch != r->held_epoch) request_sync(r);
  // Every other member, on every instance, hears of the join once, after the joiner's `joined`.
  if (first) broker_->publish_event(r->id, protocol::encode_presence(true, r->id, me));
  close_held_if_unused(r);
  s->joins.erase(s->joins.begin());
  if (s->joins.empty()) std::vector<JoinRequest>().swap(s->joins);  // its memory too
  if (!s->joins.empty()) {  // joins that came while this one was read: answer them too, in turn
    s->state = SeatState::Waiting;
    if (confirmed(r) && broker_->up()) start_read(r, *s);
  }
}

size_t Rooms::fit_history(protocol::JoinedReply& j, const std::vector<std::string>& events) {
  // Fits the history into the frame limit, dropping the oldest first. The budget is what the frame
  // takes without history but with `"truncated":true` (it may have to say so).
  bool truncated = j.truncated;
  j.history = &events;
  j.history_from = events.size();
  j.truncated = true;
  size_t base = protocol::encode_joined(j).size();
  j.truncated = truncated;
  size_t budget = limits_.joined_max_bytes > base ? limits_.joined_max_bytes - base : 0;
  size_t from = events.size();
  while (from > 0 && protocol::joined_event_cost(events[from - 1]) <= budget) {
    budget -= protocol::joined_event_cost(events[from - 1]);
    from--;
  }
  if (from > 0) {
    metrics_->bound_hit(Bound::JoinedSize, "a `joined` would exceed 512 KiB: its history was cut from the oldest end");
    j.truncated = true;
  }
  return from;
}

MemberList Rooms::merge_members(Room* r, const std::vector<std::string>* remote) const {
  MemberList out;
  std::unordered_set<std::string_view> seen;
  auto add = [&](const User& u) {
    if (!seen.insert(u.id).second) return false;
    out.count++;
    if (out.users.size() < limits_.members_listed) out.users.push_back(u);
    else out.truncated = true;
    return true;
  };
  for (const auto& [id, lu] : r->users) add(lu.user);
  std::vector<User> parsed;
  if (remote) {
    parsed.reserve(remote->size());
    for (const std::string& json : *remote) {
      User u;
      if (protocol::parse_user(json, &u)) parsed.push_back(std::move(u));
    }
    for (const User& u : parsed) add(u);
  }
  // `seen` views strings in r->users and parsed; both outlive it here, and out holds copies.
  return out;
}

void Rooms::list_members(std::string_view room_id, std::function<void(MemberList)> done) {
  Room* r = find(room_id);
  if (!broker_->cluster_members() || !broker_->up()) {
    if (r) {
      done(merge_members(r, nullptr));
    } else {
      done(MemberList{});
    }
    return;
  }
  std::string id(room_id);
  auto shared_done = std::make_shared<std::function<void(MemberList)>>(std::move(done));
  int rc = broker_->members(id, [this, id, shared_done](int status, std::vector<std::string> users) {
    Room* room = find(id);
    if (room) {
      (*shared_done)(merge_members(room, status == 0 ? &users : nullptr));
      return;
    }
    Room empty;
    (*shared_done)(merge_members(&empty, status == 0 ? &users : nullptr));
  });
  if (rc < 0) {
    if (r) (*shared_done)(merge_members(r, nullptr));
    else (*shared_done)(MemberList{});
  }
}

void Rooms::start_reads(Room* r) {
  if (!confirmed(r) || !broker_->up()) return;
  // start_read never changes r->seats (replies come later), so indexes stay valid.
  for (size_t i = 0; i < r->seats.size(); i++)
    if (r->seats[i].state == SeatState::Waiting) start_read(r, r->seats[i]);
}

void Rooms::request_sync(Room* r) {
  if (!confirmed(r)) return;  // SUBSCRIBING: the confirmation will sync
  r->state = RoomState::Syncing;
  if (r->sync_inflight) r->sync_again = true;
  else if (broker_->up()) start_sync(r);
  else schedule_retry(r);
}

void Rooms::start_sync(Room* r) {
  // Fills every active member from the lowest position up; live chats are held meanwhile.
  bool any = false;
  MsgId low;
  for (const Seat& s : r->seats) {
    if (s.state != SeatState::Active || !s.has_pos) continue;
    if (!any || s.pos < low) low = s.pos;
    any = true;
  }
  if (!any) {
    r->state = RoomState::Live;
    close_held_if_unused(r);
    return;
  }
  r->sync_inflight = true;
  r->sync_again = false;
  r->sync_token = next_token_++;
  r->sync_epoch = r->held_epoch;
  r->sync_after = low;
  std::string room_id = r->id;
  uint64_t serial = r->serial, token = r->sync_token;
  LOG_DEBUG("room %s: back-filling after %s", r->id.c_str(), protocol::format_message_id(low).c_str());
  int rc = broker_->read_after(room_id, protocol::format_message_id(low), kSyncPage, [this, room_id, serial, token](int status, HistoryRead read) {
    finish_sync(room_id, serial, token, status, std::move(read));
  });
  if (rc < 0) {
    r->sync_inflight = false;
    schedule_retry(r);
  }
}

void Rooms::finish_sync(const std::string& room_id, uint64_t serial, uint64_t token, int status, HistoryRead read) {
  Room* r = find(room_id);
  if (!r || r->serial != serial || !r->sync_inflight || r->sync_token != token) return;
  r->sync_inflight = false;
  if (status < 0) {
    LOG_DEBUG("room %s: back-fill read failed (%s); trying again", r->id.c_str(), broker_error_name(status));
    schedule_retry(r);
    return;
  }
  bool more = read.events.size() >= kSyncPage;  // a full page: read on from the new positions
  if (read.truncated)
    LOG_WARN("room %s: back-fill: chats after a member's position are no longer retained (--history); those not held here are missed",
             r->id.c_str());
  // The page and the held chats together, in id order: held chats older than the page's start (the
  // stream may have dropped them) go first. With more to read, held chats past the page wait: giving
  // them now would move positions over the unread rest. The page covers the members whose position
  // was at or above its start; one that became active meanwhile below it gets nothing of it (the next
  // read starts from it).
  std::vector<MsgId> ids(read.events.size());
  for (size_t i = 0; i < read.events.size(); i++)
    if (!protocol::parse_message_id(protocol::chat_event_id(read.events[i]), &ids[i])) ids[i] = MsgId{};
  MsgId page_end = ids.empty() ? r->sync_after : ids.back();
  size_t h = 0;
  for (size_t i = 0; i < read.events.size(); i++) {
    for (; h < r->held.size() && r->held[h].id < ids[i]; h++) deliver(r, r->held[h].payload, r->held[h].id, &r->sync_after);
    deliver(r, read.events[i], ids[i], &r->sync_after);
  }
  for (; h < r->held.size() && (!more || r->held[h].id <= page_end); h++)
    deliver(r, r->held[h].payload, r->held[h].id, &r->sync_after);
  bool behind = std::any_of(r->seats.begin(), r->seats.end(), [r](const Seat& x) {
    return x.state == SeatState::Active && x.pos < r->sync_after;
  });
  if (more || behind || r->sync_again || r->sync_epoch != r->held_epoch) {
    trim_held(r);  // what every member has is not held any longer: the next pass holds the new
    start_sync(r);
    return;
  }
  r->state = RoomState::Live;
  close_held_if_unused(r);
}

void Rooms::deliver(Room* r, std::string_view payload, const MsgId& id, const MsgId* floor) {
  SharedBuf* buf = nullptr;
  uint64_t n = 0;
  for (Seat& s : r->seats) {
    if (s.state != SeatState::Active || !(s.pos < id) || (floor && s.pos < *floor)) continue;
    if (!buf) {
      std::string frame;
      frames_->encode(protocol::kWsText, payload, &frame);
      buf = SharedBuf::make(std::move(frame));
    }
    // send_frame never closes or removes a member synchronously, so the seats stay put.
    s.member->send_frame(buf);
    s.pos = id;
    n++;
  }
  if (buf) buf->unref();
  metrics_->messages_out += n;
}

void Rooms::hold(Room* r, std::string_view payload, const MsgId& id) {
  if (r->held_full) {
    // Dropped: whoever needed it must be filled from the stream after what they have.
    r->held_epoch++;
    if (r->state == RoomState::Syncing) r->sync_again = true;
    return;
  }
  size_t size = payload.size();
  if (r->held_bytes + size > limits_.held_room_bytes || held_total_ + size > limits_.held_total_bytes) {
    // Too much to hold: keep what is held (the oldest: the stream is least likely to still have it) and
    // drop the rest, this one included. Readers then get the held prefix and a read of the stream
    // fills them from there; active members of a live room are not touched (they got it live).
    metrics_->bound_hit(Bound::HeldEvents, "live chats held for members being filled exceeded their bound; the stream fills the rest");
    r->held_full = true;
    r->held_epoch++;
    if (r->state == RoomState::Syncing) r->sync_again = true;
    return;
  }
  r->held.push_back(HeldEvent{id, std::string(payload)});
  r->held_bytes += size;
  held_total_ += size;
}

void HeldQueue::pop_front() {
  if (++head_ == v_.size()) return clear();
  v_[head_ - 1].payload = std::string();
  // Compact once the popped part is the larger half (each event is moved at most once per halving).
  if (head_ >= 16 && head_ * 2 >= v_.size()) {
    v_.erase(v_.begin(), v_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
}

void Rooms::trim_held(Room* r) {
  // Without readers, held chats serve only active members: those at or below every active position
  // are given to all of them already.
  if (r->readers > 0 || r->held.empty()) return;
  bool any = false;
  MsgId low;
  for (const Seat& x : r->seats) {
    if (x.state != SeatState::Active) continue;
    if (!any || x.pos < low) low = x.pos;
    any = true;
  }
  while (!r->held.empty() && (!any || r->held.front().id <= low)) {
    r->held_bytes -= r->held.front().payload.size();
    held_total_ -= r->held.front().payload.size();
    r->held.pop_front();
  }
  if (r->held.empty()) r->held_full = false;
}

void Rooms::drop_held(Room* r) {
  held_total_ -= r->held_bytes;
  r->held.clear();
  r->held_bytes = 0;
  r->held_full = false;
  r->held_epoch++;
}

void Rooms::close_held_if_unused(Room* r) {
  if (r->readers > 0 || r->state == RoomState::Syncing) return;
  held_total_ -= r->held_bytes;
  r->held.clear();
  r->held_bytes = 0;
  r->held_full = false;
}

void Rooms::on_message(std::string_view room_id, std::string_view payload) {
  Room* r = find(room_id);
  if (!r) return;
  if (!protocol::is_chat_event(payload)) {
    fan_out_presence(r, payload);
    return;
  }
  MsgId id;
  if (!protocol::parse_message_id(protocol::chat_event_id(payload), &id)) {
    LOG_WARN("room %s: a chat event without a valid id was ignored", r->id.c_str());
    return;
  }
  switch (r->state) {
    case RoomState::Live:
      deliver(r, payload, id);
      if (r->readers > 0) hold(r, payload, id);
      break;
    case RoomState::Syncing:
      // Members that have every live chat so far (position at the last one) are not part of the gap
      // being filled: they go on live. The others wait for the read, with this one held.
      if (r->last_live_known) deliver(r, payload, id, &r->last_live);
      hold(r, payload, id);
      break;
    case RoomState::Subscribing:  // the read after the confirmation covers it
    case RoomState::Lingering: break;
  }
  if (r->state == RoomState::Live || r->state == RoomState::Syncing) {
    r->last_live = id;
    r->last_live_known = true;
  }
}

void Rooms::fan_out_presence(Room* r, std::string_view payload) {
  std::string about = protocol::presence_user_id(payload);  // the member it is about gets none
  SharedBuf* buf = nullptr;
  uint64_t n = 0;
  for (Seat& s : r->seats) {
    if (s.state != SeatState::Active || s.member->member_user().id == about) continue;
    if (!buf) {
      std::string frame;
      frames_->encode(protocol::kWsText, payload, &frame);
      buf = SharedBuf::make(std::move(frame));
    }
    s.member->send_frame(buf);
    n++;
  }
  if (buf) buf->unref();
  metrics_->messages_out += n;
}

void Rooms::on_subscribed(std::string_view room_id) {
  Room* r = find(room_id);
  if (!r) return;
  switch (r->state) {
    case RoomState::Subscribing: {
      bool active = std::any_of(r->seats.begin(), r->seats.end(), [](const Seat& s) { return s.state == SeatState::Active; });
      LOG_DEBUG("room %s: subscribed%s", r->id.c_str(), active ? "; back-filling" : "");
      r->state = active ? RoomState::Syncing : RoomState::Live;
      if (active) {
        if (broker_->up()) start_sync(r);
      }
      start_reads(r);
      break;
    }
    case RoomState::Live:
    case RoomState::Syncing:
      // Confirmed again without a reported outage: the subscription may have had a gap.
      fill_gap(r);
      break;
    case RoomState::Lingering: break;
  }
}

void Rooms::on_gap(std::string_view room_id) {
  Room* r = find(room_id);
  if (!r || (r->state != RoomState::Live && r->state != RoomState::Syncing)) return;
  LOG_DEBUG("room %s: live delivery may have missed chats; back-filling", r->id.c_str());
  fill_gap(r);
}

void Rooms::fill_gap(Room* r) {
  // Fill the gap from the stream, and read again for first joins whose read may have run in it.
  r->last_live_known = false;
  for (Seat& s : r->seats) {
    if (s.state != SeatState::Reading) continue;
    s.read = 0;
    s.state = SeatState::Waiting;
    r->readers--;
  }
  request_sync(r);
  start_reads(r);
}

void Rooms::unsubscribed(Room* r) {
  // The broker subscribes the room again by itself and confirms it (on_subscribed): then it back-fills.
  r->state = RoomState::Subscribing;
  r->last_live_known = false;
  r->sync_inflight = false;
  r->sync_again = false;
  for (Seat& s : r->seats) {
    if (s.state != SeatState::Reading) continue;
    s.read = 0;  // its reply, when it fails, is stale
    s.state = SeatState::Waiting;
  }
  r->readers = 0;
  drop_held(r);
}

void Rooms::on_lost(std::string_view room_id) {
  Room* r = find(room_id);
  if (!r) return;
  if (r->state == RoomState::Lingering) return release(r);
  LOG_DEBUG("room %s: subscription lost; re-subscribing", r->id.c_str());
  unsubscribed(r);
}

void Rooms::on_state(bool up) {
  std::vector<Room*> all;
  all.reserve(rooms_.size());
  for (auto& [id, r] : rooms_) all.push_back(r.get());
  if (!up) {
    for (Room* r : all) {
      if (r->state == RoomState::Lingering) release(r);
      else unsubscribed(r);
    }
    return;
  }
  for (Room* r : all) {
    if (broker_->cluster_members()) {
      // Redis may have restarted empty: enter this instance's members again.
      for (const Seat& s : r->seats)
        if (s.registered) {
          const User& u = s.member->member_user();
          broker_->member_join(r->id, u.id, member_key(*s.member), protocol::encode_user(u));
        }
    }
    if (r->state == RoomState::Syncing && !r->sync_inflight) start_sync(r);
    start_reads(r);
  }
}

void Rooms::schedule_retry(Room* r) {
  if (r->retry) return;
  r->retry = true;
  retry_.emplace_back(r->id, r->serial);
}

void Rooms::tick(uint64_t now_ms) {
  now_ms_ = now_ms;
  while (DeadlineHook* h = linger_.pop_expired(now_ms)) {
    Room* r = static_cast<Room*>(h->owner);
    if (r->state == RoomState::Lingering && r->seats.empty()) release(r);
  }
  if (retry_.empty()) return;
  std::vector<std::pair<std::string, uint64_t>> retry;
  retry.swap(retry_);
  for (const auto& [id, serial] : retry) {
    Room* r = find(id);
    if (!r || r->serial != serial) continue;
    r->retry = false;
    if (!broker_->up()) continue;  // on_state(true) starts everything again
    if (r->state == RoomState::Syncing && !r->sync_inflight) start_sync(r);
    start_reads(r);
  }
}

bool Rooms::leave(Member& m, std::string_view room_id) {
  Room* r = find(room_id);
  if (!r || !seat_of(r, m)) return false;
  remove_seat(r, m);
  return true;
}

void Rooms::drop(Member& m) {
  while (!m.slots_.empty()) remove_seat(m.slots_.back().room, m);
}

void Rooms::remove_seat(Room* r, Member& m) {
  uint32_t index = 0;
  for (size_t i = 0; i < m.slots_.size(); i++) {
    if (m.slots_[i].room != r) continue;
    index = m.slots_[i].seat;
    m.slots_[i] = m.slots_.back();
    m.slots_.pop_back();
    break;
  }
  Seat& s = r->seats[index];
  if (s.state == SeatState::Reading) r->readers--;
  const User& u = m.member_user();
  bool last_local = r->seats.size() == 1;
  if (s.announced) {
    auto it = r->users.find(u.id);
    if (it != r->users.end() && --it->second.seats == 0) r->users.erase(it);
    broker_->publish_event(r->id, protocol::encode_presence(false, r->id, u));
  }
  if (s.registered) broker_->member_leave(r->id, u.id, member_key(m), last_local);
  // Swap-remove: O(1), and the moved member's slot learns its new index.
  if (index + 1 != r->seats.size()) {
    r->seats[index] = std::move(r->seats.back());
    for (RoomSlot& slot : r->seats[index].member->slots_)
      if (slot.room == r) slot.seat = index;
  }
  r->seats.pop_back();
  if (r->seats.empty()) emptied(r);
  else close_held_if_unused(r);
}

void Rooms::emptied(Room* r) {
  if (r->state == RoomState::Live) {
    // Linger: a leave followed by a join costs no UNSUBSCRIBE/SUBSCRIBE pair.
    r->state = RoomState::Lingering;
    drop_held(r);
    linger_.push(&r->linger, now_ms_);
    return;
  }
  release(r);  // SUBSCRIBING or SYNCING: nobody is waiting for it
}

void Rooms::release(Room* r) {
  LOG_DEBUG("room %s: released (%s)", r->id.c_str(), room_state_name(r->state));
  broker_->unsubscribe(r->id);
  DeadlineList::remove(&r->linger);
  held_total_ -= r->held_bytes;
  for (Seat& s : r->seats) {
    auto& slots = s.member->slots_;
    slots.erase(std::remove_if(slots.begin(), slots.end(), [r](const RoomSlot& x) { return x.room == r; }), slots.end());
  }
  rooms_.erase(std::string_view(r->id));
}

}  // namespace roomcast::server
