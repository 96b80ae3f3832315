// The room registry: which members are in which rooms, as a two-way index.
// Rule: member lists are small vectors; removal keeps join order (presence and history read it).
#include "server/rooms.h"

#include <algorithm>

namespace roomcast::server {

Room::Entry* Room::find(const Membership* m) {
  for (Entry& e : members)
    if (e.member == m) return &e;
  return nullptr;
}

size_t Room::active_count() const {
  size_t n = 0;
  for (const Entry& e : members) n += e.active;
  return n;
}

RoomRegistry::~RoomRegistry() {
  for (auto& [id, room] : rooms_) {
    for (Room::Entry& e : room->members) {
      auto& rs = e.member->rooms;
      rs.erase(std::remove(rs.begin(), rs.end(), room), rs.end());
    }
    delete room;
  }
}

Room* RoomRegistry::find(std::string_view id) const {
  auto it = rooms_.find(id);
  return it == rooms_.end() ? nullptr : it->second;
}

Room* RoomRegistry::get(std::string_view id) {
  if (Room* r = find(id)) return r;
  Room* r = new Room();
  r->id = std::string(id);
  rooms_.emplace(std::string_view(r->id), r);
  return r;
}

bool RoomRegistry::add(Room* room, Membership* m) {
  if (room->find(m)) return false;
  room->members.push_back(Room::Entry{m, false, nullptr});
  m->rooms.push_back(room);
  return true;
}

bool RoomRegistry::remove(Room* room, Membership* m, bool* was_active) {
  auto it = std::find_if(room->members.begin(), room->members.end(), [m](const Room::Entry& e) { return e.member == m; });
  if (it == room->members.end()) return false;
  if (was_active) *was_active = it->active;
  room->members.erase(it);
  auto& rs = m->rooms;
  rs.erase(std::remove(rs.begin(), rs.end(), room), rs.end());
  return true;
}

bool RoomRegistry::erase_if_unused(Room* room) {
  if (!room->members.empty() || room->sub != SubState::None) return false;
  rooms_.erase(std::string_view(room->id));
  delete room;
  return true;
}

}  // namespace roomcast::server
