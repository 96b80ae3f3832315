// Unit tests of the room registry: random operations checked against a naive model after every
// step (after antirez's rax-test fuzz test), plus a few hand-written cases.
// Rule: both sides of the index agree, join order is kept, and an empty room without a subscription
// is erased when asked.
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "server/rooms.h"

// cmocka last: its fail() macro would clash with names in the headers above.
#include "unit_check.h"

using namespace roomcast::server;

namespace {

const char* sub_name(SubState s) {
  switch (s) {
    case SubState::None: return "None";
    case SubState::Subscribing: return "Subscribing";
    case SubState::Subscribed: return "Subscribed";
    case SubState::Lingering: return "Lingering";
  }
  return "?";
}


// ---- the naive model --------------------------------------------------------------------------

struct ModelEntry {
  size_t member;
  bool active;
  bool waiting;  // carries a JoinWait
};

struct ModelRoom {
  std::vector<ModelEntry> members;  // join order
  SubState sub = SubState::None;
  Room* ptr = nullptr;              // the registry's room (stable while it exists)
};

struct Fuzz {
  std::vector<std::unique_ptr<Membership>> ms;  // before reg: the registry's destructor touches the members
  RoomRegistry reg;
  std::vector<std::string> ids;
  std::map<std::string, ModelRoom> model;
  Rng rng;
  size_t step = 0;
  const char* op = "";
  size_t adds = 0, removes = 0, erases = 0, refused_erases = 0;

  Fuzz(size_t rooms, size_t members, uint64_t seed) : rng(seed) {
    for (size_t i = 0; i < members; i++) {
      ms.push_back(std::make_unique<Membership>());
      ms.back()->owner = ms.back().get();
    }
    for (size_t i = 0; i < rooms; i++) ids.push_back("room-" + std::to_string(i));
  }

  ModelEntry* model_entry(ModelRoom& mr, size_t m) {
    for (ModelEntry& e : mr.members)
      if (e.member == m) return &e;
    return nullptr;
  }

  void check() {
    REQUIRE(reg.size() == model.size(), "step %zu (%s): %zu rooms, model %zu", step, op, reg.size(), model.size());
    for (auto& [id, mr] : model) {
      Room* r = reg.find(id);
      REQUIRE(r == mr.ptr, "step %zu (%s): find(%s) gives %p, model %p", step, op, id.c_str(), (void*)r, (void*)mr.ptr);
      REQUIRE(r->id == id, "step %zu: room id '%s', want '%s'", step, r->id.c_str(), id.c_str());
      REQUIRE(r->sub == mr.sub, "step %zu: %s sub %s, model %s", step, id.c_str(), sub_name(r->sub), sub_name(mr.sub));
      REQUIRE(r->members.size() == mr.members.size(), "step %zu (%s): %s has %zu members, model %zu", step, op,
              id.c_str(), r->members.size(), mr.members.size());
      size_t active = 0;
      for (size_t i = 0; i < mr.members.size(); i++) {
        const Room::Entry& e = r->members[i];
        const ModelEntry& me = mr.members[i];
        REQUIRE(e.member == ms[me.member].get(), "step %zu (%s): %s member %zu out of join order", step, op,
                id.c_str(), i);
        REQUIRE(e.active == me.active, "step %zu: %s member %zu active %d, model %d", step, id.c_str(), i, e.active,
                me.active);
        REQUIRE((e.wait != nullptr) == me.waiting, "step %zu: %s member %zu wait", step, id.c_str(), i);
        active += me.active;
      }
      REQUIRE(r->active_count() == active, "step %zu: %s active_count %zu, model %zu", step, id.c_str(),
              r->active_count(), active);
      for (size_t m = 0; m < ms.size(); m++) {
        bool in = model_entry(mr, m) != nullptr;
        REQUIRE((r->find(ms[m].get()) != nullptr) == in, "step %zu: %s find(member %zu)", step, id.c_str(), m);
      }
    }
    // Rooms the model does not have are not found.
    for (const std::string& id : ids)
      if (!model.count(id)) REQUIRE(reg.find(id) == nullptr, "step %zu (%s): erased %s still found", step, op, id.c_str());
    // for_each visits exactly the model's rooms.
    size_t visited = 0;
    bool all_known = true;
    reg.for_each([&](Room* r) {
      visited++;
      auto it = model.find(r->id);
      if (it == model.end() || it->second.ptr != r) all_known = false;
    });
    REQUIRE(visited == model.size() && all_known, "step %zu: for_each visited %zu (model %zu), all known %d", step,
            visited, model.size(), all_known);
    // The member side agrees with the room side, without duplicates.
    for (size_t m = 0; m < ms.size(); m++) {
      std::set<Room*> want;
      for (auto& [id, mr] : model)
        if (model_entry(mr, m)) want.insert(mr.ptr);
      const std::vector<Room*>& rs = ms[m]->rooms;
      std::set<Room*> got(rs.begin(), rs.end());
      REQUIRE(got.size() == rs.size(), "step %zu (%s): member %zu lists a room twice", step, op, m);
      REQUIRE(got == want, "step %zu (%s): member %zu is in %zu rooms, model %zu", step, op, m, got.size(), want.size());
      REQUIRE(ms[m]->owner == ms[m].get(), "owner untouched");
    }
  }

  // What the hub does after a member leaves: erase the room if nothing keeps it.
  void erase_if_unused(const std::string& id) {
    ModelRoom& mr = model.at(id);
    bool want = mr.members.empty() && mr.sub == SubState::None;
    bool got = reg.erase_if_unused(mr.ptr);
    REQUIRE(got == want, "step %zu: erase_if_unused(%s) %d, want %d (%zu members, %s)", step, id.c_str(), got, want,
            mr.members.size(), sub_name(mr.sub));
    if (got) {
      model.erase(id);
      erases++;
    } else {
      refused_erases++;
    }
  }

  void one_step() {
    const std::string& id = ids[rng.below(ids.size())];
    size_t m = rng.below(ms.size());
    auto it = model.find(id);
    switch (rng.below(12)) {
      case 0:
      case 1:
      case 2: {  // join
        op = "add";
        Room* r = reg.get(id);
        if (it == model.end()) {
          REQUIRE(r && r->id == id && r->members.empty() && r->sub == SubState::None && r->last_id.empty() &&
                      !r->backfilling && r->held.empty() && r->history_pending == 0,
                  "step %zu: get(%s) makes a fresh room", step, id.c_str());
          ModelRoom mr;
          mr.ptr = r;
          it = model.emplace(id, mr).first;
        } else {
          REQUIRE(r == it->second.ptr, "step %zu: get(%s) gives another room", step, id.c_str());
        }
        bool want = model_entry(it->second, m) == nullptr;
        bool got = reg.add(r, ms[m].get());
        REQUIRE(got == want, "step %zu: add(%s, %zu) %d, want %d", step, id.c_str(), m, got, want);
        if (want) {
          it->second.members.push_back({m, false, false});
          adds++;
        }
        break;
      }
      case 3:
      case 4:
      case 5: {  // leave, members or not, without asking whether the member was active
        op = "remove";
        if (it == model.end()) {
          REQUIRE(reg.find(id) == nullptr, "step %zu: %s should not exist", step, id.c_str());
          break;
        }
        ModelRoom& mr = it->second;
        ModelEntry* e = model_entry(mr, m);
        bool got = reg.remove(mr.ptr, ms[m].get());
        REQUIRE(got == (e != nullptr), "step %zu: remove(%s, %zu) %d", step, id.c_str(), m, got);
        if (e) {
          mr.members.erase(mr.members.begin() + (e - mr.members.data()));
          removes++;
          if (mr.members.empty()) erase_if_unused(id);
        }
        break;
      }
      case 6:
      case 7: {  // a member leaves, and whether it was active is asked
        op = "remove/was_active";
        if (it == model.end()) break;
        ModelRoom& mr = it->second;
        ModelEntry* e = model_entry(mr, m);
        if (!e) break;
        bool want_active = e->active;
        bool was_active = !want_active;  // the opposite, so that the write is seen
        REQUIRE(reg.remove(mr.ptr, ms[m].get(), &was_active), "step %zu: remove of a member", step);
        REQUIRE(was_active == want_active, "step %zu: was_active %d, want %d", step, was_active, want_active);
        mr.members.erase(mr.members.begin() + (e - mr.members.data()));
        removes++;
        if (mr.members.empty()) erase_if_unused(id);
        break;
      }
      case 8: {  // the subscription is confirmed for a waiting member, or a join starts waiting
        op = "activate/wait";
        if (it == model.end() || it->second.members.empty()) break;
        ModelRoom& mr = it->second;
        ModelEntry& me = mr.members[rng.below(mr.members.size())];
        Room::Entry* e = mr.ptr->find(ms[me.member].get());
        REQUIRE(e, "step %zu: entry", step);
        if (me.active) break;
        if (me.waiting || rng.below(2)) {
          e->active = true;
          e->wait.reset();
          me.active = true;
          me.waiting = false;
        } else {
          e->wait = std::make_unique<JoinWait>();
          e->wait->ref = "\"ref-" + std::to_string(step) + "\"";  // heap-allocated, so ASan sees a lost one
          me.waiting = true;
        }
        break;
      }
      case 9:
      case 10: {  // the broker subscription changes state (to None half of the time)
        op = "sub";
        if (it == model.end()) break;
        SubState s = rng.below(2) ? SubState::None : static_cast<SubState>(1 + rng.below(3));
        it->second.ptr->sub = s;
        it->second.sub = s;
        break;
      }
      case 11: {  // an explicit sweep (a linger timer or an unsubscribe reply)
        op = "erase_if_unused";
        if (it == model.end()) {
          REQUIRE(reg.find(id) == nullptr, "step %zu", step);
          break;
        }
        erase_if_unused(id);
        break;
      }
    }
    step++;
  }
};

void run_fuzz(size_t rooms, size_t members, uint64_t seed, size_t steps, size_t check_every) {
  Fuzz f(rooms, members, seed);
  for (size_t i = 0; i < steps; i++) {
    f.one_step();
    if (i % check_every == 0) f.check();
  }
  f.check();
  print_message("%zu rooms, %zu members, seed %llu: %zu adds, %zu removes, %zu erased, %zu kept\n", rooms, members,
                (unsigned long long)seed, f.adds, f.removes, f.erases, f.refused_erases);
  // Every operation was exercised.
  REQUIRE(f.adds > 100 && f.removes > 100 && f.erases > 10 && f.refused_erases > 10,
          "adds %zu removes %zu erases %zu refused %zu", f.adds, f.removes, f.erases, f.refused_erases);
}

void test_fuzz_few_rooms(void**) {
  for (uint64_t seed : {1ull, 2ull, 0xdeadbeefull}) run_fuzz(4, 6, seed, 8000, 1);
}

void test_fuzz_many_rooms(void**) {
  // Enough rooms to rehash the index (its keys are views of the rooms' ids).
  run_fuzz(300, 24, 42, 40000, 997);
}

// ---- hand-written cases -----------------------------------------------------------------------

void test_join_order_and_two_sides(void**) {
  Membership a, b, c;  // outlive the registry, whose destructor touches them
  RoomRegistry reg;
  Room* r = reg.get("r1");
  REQUIRE(reg.get("r1") == r && reg.find("r1") == r && reg.size() == 1, "get is idempotent");
  REQUIRE(reg.add(r, &a) && reg.add(r, &b) && reg.add(r, &c), "three joins");
  REQUIRE(!reg.add(r, &b), "a second add of the same member is refused");
  REQUIRE(r->members.size() == 3, "no duplicate entry");
  r->members[1].active = true;  // b
  bool was = false;
  REQUIRE(reg.remove(r, &b, &was) && was, "remove b, which was active");
  REQUIRE(r->members.size() == 2 && r->members[0].member == &a && r->members[1].member == &c, "order a, c kept");
  REQUIRE(b.rooms.empty() && a.rooms.size() == 1 && a.rooms[0] == r, "member sides");
  REQUIRE(!reg.remove(r, &b), "b is no longer a member");
  REQUIRE(reg.add(r, &b), "b joins again");
  REQUIRE(r->members[2].member == &b && !r->members[2].active, "and goes last, inactive");
  Room* r2 = reg.get("r2");
  REQUIRE(reg.add(r2, &a), "a in two rooms");
  REQUIRE(a.rooms.size() == 2, "a lists two rooms");
  REQUIRE(reg.remove(r, &a), "a leaves r1");
  REQUIRE(a.rooms.size() == 1 && a.rooms[0] == r2, "a lists r2 only");
}

void test_erase_if_unused(void**) {
  Membership a;
  RoomRegistry reg;
  Room* r = reg.get("r1");
  reg.add(r, &a);
  REQUIRE(!reg.erase_if_unused(r), "a room with a member stays");
  reg.remove(r, &a);
  for (SubState s : {SubState::Subscribing, SubState::Subscribed, SubState::Lingering}) {
    r->sub = s;
    REQUIRE(!reg.erase_if_unused(r), "an empty room in state %s stays", sub_name(s));
    REQUIRE(reg.find("r1") == r, "still found");
  }
  r->sub = SubState::None;
  r->last_id = "5-0";
  REQUIRE(reg.erase_if_unused(r), "an empty room without a subscription goes");
  REQUIRE(reg.find("r1") == nullptr && reg.size() == 0, "gone");
  Room* again = reg.get("r1");
  REQUIRE(again && again->members.empty() && again->sub == SubState::None && again->last_id.empty(),
          "a room of the same id starts fresh");
}

void test_destruction_clears_member_sides(void**) {
  Membership a, b;
  {
    RoomRegistry reg;
    for (int i = 0; i < 5; i++) {
      Room* r = reg.get("r" + std::to_string(i));
      reg.add(r, &a);
      if (i % 2) reg.add(r, &b);
      r->members[0].wait = std::make_unique<JoinWait>();
      r->sub = SubState::Subscribed;
    }
    REQUIRE(a.rooms.size() == 5 && b.rooms.size() == 2, "joined");
  }
  // No member is left pointing at a freed room (ASan also checks that nothing leaks).
  REQUIRE(a.rooms.empty() && b.rooms.empty(), "a %zu b %zu rooms left", a.rooms.size(), b.rooms.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fuzz_few_rooms),
      cmocka_unit_test(test_fuzz_many_rooms),
      cmocka_unit_test(test_join_order_and_two_sides),
      cmocka_unit_test(test_erase_if_unused),
      cmocka_unit_test(test_destruction_clears_member_sides),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
