// Rooms of one instance: who is in which room, each room's broker subscription, and what each member
// has been given. The one place that decides when a member gets `joined`, history, back-fill and live chats.
// Rule: a member is given a chat only if its id is above the member's position (the last id it was
// given), and its position only moves up; what live delivery could not give, a read of the room's
// stream gives. So no member gets an id twice, in any order, or misses one the stream still holds.
//
// A room:
//
//   first join ──> SUBSCRIBING ──confirmed, no active member──────────────> LIVE ──last member goes──> LINGERING
//                   │    ▲  └──confirmed, active members──> SYNCING ──read──┘ ▲ │                        │  │
//                   │    │                                   │  ▲  done      │ │ held events overflow,  │  │ a join
//                   │    └──── broker down, subscription lost (from SYNCING, LIVE)  └───────────┼─┘ or confirmed again     │  └──> LIVE
//                   │                                                        │                          │
//                   └── last member goes (also from SYNCING) ──> released <──┼──── deadline, broker down ┘
//
//   SUBSCRIBING: SUBSCRIBE asked; live events are dropped (the read after the confirmation covers them).
//   SYNCING: confirmed; a read of everything after the lowest active position is under way; live
//     events are held, not delivered, until it is done; then the read and the held events go out.
//   LIVE: live events go straight to active members (and are held while any member is reading).
//   LINGERING: no members, still subscribed for a moment (a leave and a join cost no resubscription).
//
// A member of a room (a seat):
//
//   join ──> WAITING ──room confirmed and broker up──> READING ──history and members read──> ACTIVE
//              ▲                                          │                                    │
//              └── read failed, broker down ──────────────┘  <── a repeated join ──────────────┘
//
//   READING: its history read is under way; live events meanwhile are held by the room and given to it
//     after `joined`, above its position. ACTIVE: `joined` sent; position = the last id it was given.
//   A repeated join is a new session, answered as a first join is (without a second presence): what
//   the member missed before it is what `since` is for. Every join is answered, in turn, with its ref.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/ids.h"
#include "protocol/message.h"
#include "protocol/ws_codec.h"
#include "server/broker.h"
#include "server/deadlines.h"
#include "server/metrics.h"
#include "server/shared_buf.h"

namespace roomcast::server {

struct Room;

// One room a member is in: the member's side of the two-way index.
struct RoomSlot {
  Room* room;     // the room
  uint32_t seat;  // index of the member's seat in room->seats
};

// What the rooms need of a member (a connection; a fake in tests).
class Member {
 public:
  virtual ~Member() = default;
  // Unique in the process and never reused.
  virtual uint64_t member_id() const = 0;
  virtual const protocol::User& member_user() const = 0;
  // A framed event shared with other members; takes its own reference.
  virtual void send_frame(SharedBuf* frame) = 0;
  // One event (JSON) for this member alone.
  virtual void send_event(std::string_view json) = 0;

  const std::vector<RoomSlot>& room_slots() const { return slots_; }

 private:
  friend class Rooms;
  std::vector<RoomSlot> slots_;  // rooms this member is in, in any state
};

enum class RoomState : uint8_t { Subscribing, Syncing, Live, Lingering };
enum class SeatState : uint8_t { Waiting, Reading, Active };
const char* room_state_name(RoomState s);

// One join message waiting for its answer.
struct JoinRequest {
  std::string ref;    // its ref (JSON text)
  std::string since;  // its `since` ("" for none)
};

// A member in one room.
struct Seat {
  Member* member;
  SeatState state = SeatState::Waiting;
  bool announced = false;     // presence join published (a leave is owed)
  bool registered = false;    // entered in the broker's cluster-wide members
  bool has_pos = false;       // pos is set (once ACTIVE, for good)
  protocol::MsgId pos;        // the last chat id given to this member
  uint64_t read = 0;          // token of its read in flight, 0 for none (a reply with another token is stale)
  uint64_t read_epoch = 0;    // READING: the room's held_epoch when the read began
  // Joins waiting for their `joined`, oldest first (the front is read); at most kMaxJoinsWaiting. A
  // vector, emptied with its memory once answered: a std::deque allocates ~600 bytes even when empty,
  // which was most of an idle member's memory.
  std::vector<JoinRequest> joins;
};

// A live event held for members who are reading (or for the room while it syncs).
struct HeldEvent {
  protocol::MsgId id;
  std::string payload;
};

// The held events of a room, oldest first: a vector whose front is popped by moving an index, and whose
// memory is given back whenever it empties, so that a room holding nothing (nearly always) owns no heap.
class HeldQueue {
 public:
  bool empty() const { return head_ == v_.size(); }
  size_t size() const { return v_.size() - head_; }
  HeldEvent& operator[](size_t i) { return v_[head_ + i]; }
  HeldEvent& front() { return v_[head_]; }
  std::vector<HeldEvent>::iterator begin() { return v_.begin() + static_cast<std::ptrdiff_t>(head_); }
  std::vector<HeldEvent>::iterator end() { return v_.end(); }
  std::vector<HeldEvent>::const_iterator begin() const { return v_.begin() + static_cast<std::ptrdiff_t>(head_); }
  std::vector<HeldEvent>::const_iterator end() const { return v_.end(); }
  void push_back(HeldEvent e) { v_.push_back(std::move(e)); }
  void pop_front();
  void clear() {
    std::vector<HeldEvent>().swap(v_);
    head_ = 0;
  }

 private:
  std::vector<HeldEvent> v_;
  size_t head_ = 0;  // v_[0, head_) are popped
};

struct Room {
  std::string id;                  // room id
  uint64_t serial = 0;             // unique per Room object: replies for an erased room are ignored
  RoomState state = RoomState::Subscribing;
  std::vector<Seat> seats;         // local members, any order
  uint32_t readers = 0;            // seats READING
  struct LocalUser {
    protocol::User user;
    uint32_t seats = 0;            // announced seats of this user here
  };
  // Announced local users (listing, count); the key views the node's own user.id (nodes do not move).
  std::unordered_map<std::string_view, LocalUser> users;
  HeldQueue held;                  // live chats held (see the state diagram)
  size_t held_bytes = 0;           // payload bytes in held
  protocol::MsgId last_live;       // id of the last chat received live on the current subscription
  bool last_live_known = false;    // last_live is set (not after an outage until a chat came)
  bool held_full = false;          // held reached its bound: later chats are not held (the stream has them)
  uint64_t held_epoch = 0;         // bumped whenever held chats are dropped (bound, outage)
  bool sync_inflight = false;      // SYNCING: the read is under way
  bool sync_again = false;         // SYNCING: read again once the current read is done
  uint64_t sync_token = 0;         // token of the sync read in flight
  uint64_t sync_epoch = 0;         // held_epoch when that read began
  protocol::MsgId sync_after;      // where that read starts (the lowest active position then)
  DeadlineHook linger;             // LINGERING: in Rooms::linger_
  bool retry = false;              // in Rooms::retry_ (a read to start again on the next tick)
};

struct RoomLimits {
  size_t history = 50;                     // chats in a first `joined` (0: none)
  size_t max_rooms = 100;                  // rooms one member may be in
  uint64_t linger_ms = 1000;               // LINGERING lasts this long
  size_t joined_max_bytes = 512 * 1024;    // a `joined` never exceeds this (history cut, oldest first)
  size_t members_listed = 1000;            // members listed in `joined` and GET /rooms/<id>
  size_t held_room_bytes = 4 << 20;        // held events of one room
  size_t held_total_bytes = 64 << 20;      // held events of every room together
};

// Members of a room as listed to clients.
struct MemberList {
  std::vector<protocol::User> users;  // at most RoomLimits::members_listed, one per user id
  size_t count = 0;                   // distinct user ids in the room
  bool truncated = false;             // users has fewer than count
};

class Rooms {
 public:
  // broker: outlives the rooms. frames: encodes a frame once for all recipients. find_member: the
  // member of an id, or nullptr once it is gone (replies outlive members).
  Rooms(Broker* broker, protocol::WsFramePool* frames, Metrics* metrics, RoomLimits limits,
        std::function<Member*(uint64_t)> find_member);
  ~Rooms();
  Rooms(const Rooms&) = delete;
  Rooms& operator=(const Rooms&) = delete;

  enum class JoinResult { Ok, TooManyRooms };
  // m joins room (valid id): `joined` follows (maybe much later); a repeated join is answered again.
  JoinResult join(Member& m, std::string_view room, std::string_view ref, std::string_view since);
  // m leaves room. Returns false when it was not in it (nothing happens).
  bool leave(Member& m, std::string_view room);
  // m is going away: it leaves every room (before it is destroyed).
  void drop(Member& m);
  // Releases rooms whose linger time passed, starts reads that failed while the broker was up.
  void tick(uint64_t now_ms);

  // Broker events.
  void on_message(std::string_view room, std::string_view payload);
  void on_subscribed(std::string_view room);
  void on_state(bool up);
  // Redis Cluster: the room's subscription ended (its master failed, its slot moved) while the broker stayed up.
  void on_lost(std::string_view room);
  // Live delivery may have missed chats the room's stream holds: back-fill (as on a confirmation again).
  void on_gap(std::string_view room);

  // The room's members on every instance (cluster brokers) or here; done may run at once.
  void list_members(std::string_view room, std::function<void(MemberList)> done);

  size_t size() const { return rooms_.size(); }
  Room* find(std::string_view id) const;
  size_t held_bytes() const { return held_total_; }
  template <typename F>
  void for_each(F f) const {
    for (const auto& [id, room] : rooms_) f(*room);
  }

 private:
  struct Fetch;
  static constexpr size_t kSyncPage = 256;  // chats per back-fill read
  static constexpr size_t kMaxJoinsWaiting = 8;  // joins of one room one member may have unanswered
  size_t fit_history(protocol::JoinedReply& j, const std::vector<std::string>& events);
  Seat* seat_of(Room* r, const Member& m);
  Seat* seat_of(Room* r, uint64_t member_id);
  bool confirmed(const Room* r) const { return r->state == RoomState::Live || r->state == RoomState::Syncing; }
  void start_read(Room* r, Seat& s);
  void finish_read(const std::string& room_id, uint64_t serial, uint64_t member_id, uint64_t token, Fetch& f);
  void start_reads(Room* r);
  void request_sync(Room* r);
  void start_sync(Room* r);
  void finish_sync(const std::string& room_id, uint64_t serial, uint64_t token, int status, HistoryRead read);
  // Gives the chat to every active seat below it (and, with floor, at or above floor).
  void deliver(Room* r, std::string_view payload, const protocol::MsgId& id, const protocol::MsgId* floor = nullptr);
  void hold(Room* r, std::string_view payload, const protocol::MsgId& id);
  void drop_held(Room* r);
  void trim_held(Room* r);
  void close_held_if_unused(Room* r);
  void fan_out_presence(Room* r, std::string_view payload);
  void remove_seat(Room* r, Member& m);
  void emptied(Room* r);
  void release(Room* r);
  void unsubscribed(Room* r);
  void fill_gap(Room* r);  // LIVE/SYNCING: back-fill from positions; reads in flight start again  // back to SUBSCRIBING: nothing live is known, reads start again
  void schedule_retry(Room* r);
  MemberList merge_members(Room* r, const std::vector<std::string>* remote) const;
  std::string member_key(const Member& m) const { return std::to_string(m.member_id()); }

  Broker* broker_;
  protocol::WsFramePool* frames_;
  Metrics* metrics_;
  RoomLimits limits_;
  std::function<Member*(uint64_t)> find_member_;
  std::unordered_map<std::string_view, std::unique_ptr<Room>> rooms_;  // key views Room::id
  DeadlineList linger_;                  // LINGERING rooms, oldest first (one fixed duration)
  std::vector<std::pair<std::string, uint64_t>> retry_;  // (id, serial) of rooms with a read to retry
  size_t held_total_ = 0;                // held bytes of every room
  uint64_t next_serial_ = 1;
  uint64_t next_token_ = 1;
  uint64_t now_ms_ = 0;                  // of the last tick
};

}  // namespace roomcast::server
