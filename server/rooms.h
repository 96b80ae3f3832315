// The room registry: which members are in which rooms, as a two-way index, plus each room's
// broker subscription state.
// Rule: both sides of the index change together, and a room with no members and no subscription is erased.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace roomcast::server {

struct Room;

// Lives inside each member (a connection): the member's side of the index.
struct Membership {
  std::vector<Room*> rooms;  // rooms this member is in (joined or waiting)
  void* owner = nullptr;     // the member object (a Connection)
};

enum class SubState : uint8_t {
  None,         // no subscription, none asked for
  Subscribing,  // asked, not confirmed
  Subscribed,   // confirmed
  Lingering,    // subscribed with no members; unsubscribed when linger_until passes
};

// A join that waits for the room's subscription: what its `joined` reply must carry.
struct JoinWait {
  std::string ref;        // the join's ref, as JSON text
  std::string since;      // resume after this id (empty: none)
  bool fetching = false;  // subscribed; the history read for `joined` is under way
};

struct Room {
  struct Entry {
    Membership* member;              // the member
    bool active;                     // `joined` was sent (the subscription was confirmed for it)
    std::unique_ptr<JoinWait> wait;  // while not active
  };
  std::string id;                 // room id
  std::vector<Entry> members;     // local members, in join order
  SubState sub = SubState::None;  // broker subscription
  uint64_t linger_until = 0;      // loop ms, while Lingering
  std::string last_id;            // id of the last chat event delivered here
  bool backfilling = false;       // live chats are held until a history read after a reconnect fills the gap
  bool backfill_inflight = false; // that read is under way
  uint32_t history_pending = 0;   // history reads for joining members under way
  std::vector<std::string> held;  // live chat events seen while either kind of read is under way

  Entry* find(const Membership* m);
  size_t active_count() const;
};

class RoomRegistry {
 public:
  RoomRegistry() = default;
  ~RoomRegistry();
  RoomRegistry(const RoomRegistry&) = delete;
  RoomRegistry& operator=(const RoomRegistry&) = delete;

  Room* find(std::string_view id) const;
  // Returns the room, creating it (SubState::None) if needed.
  Room* get(std::string_view id);
  // Adds m to room (inactive). Returns false when it was already a member.
  bool add(Room* room, Membership* m);
  // Removes m from room. Returns true when it was a member; *was_active tells whether it was active.
  bool remove(Room* room, Membership* m, bool* was_active = nullptr);
  // Erases the room if it has no members and no subscription (None). Returns true if erased.
  bool erase_if_unused(Room* room);
  size_t size() const { return rooms_.size(); }
  template <typename F>
  void for_each(F f) const {
    for (const auto& [id, room] : rooms_) f(room);
  }

 private:
  std::unordered_map<std::string_view, Room*> rooms_;  // key views Room::id
};

}  // namespace roomcast::server
