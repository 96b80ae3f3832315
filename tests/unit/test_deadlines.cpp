// Unit tests of the per-loop deadline lists: push/remove/pop_expired order, moves between lists,
// removal from the middle, and random operations checked against a naive model.
// Rule: a hook is in at most one list, and each list pops in push order once entries are due.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "server/deadlines.h"

// cmocka last: its fail() macro would clash with names in the headers above.
#include "unit_check.h"

using namespace roomcast::server;

namespace {

// Walks a list from its head (found as the hook of this list without a prev) and returns its hooks
// in order, checking the links both ways.
std::vector<DeadlineHook*> walk(DeadlineList& list, std::vector<DeadlineHook>& hooks) {
  DeadlineHook* head = nullptr;
  size_t in_list = 0;
  for (DeadlineHook& h : hooks) {
    if (h.list != &list) continue;
    in_list++;
    if (!h.prev) {
      REQUIRE(!head, "two heads in one list");
      head = &h;
    }
  }
  std::vector<DeadlineHook*> order;
  DeadlineHook* prev = nullptr;
  for (DeadlineHook* h = head; h; h = h->next) {
    REQUIRE(h->list == &list, "hook %td in the chain belongs to another list", h - hooks.data());
    REQUIRE(h->prev == prev, "broken prev link at hook %td", h - hooks.data());
    REQUIRE(order.size() <= hooks.size(), "cycle in the list");
    order.push_back(h);
    prev = h;
  }
  REQUIRE(order.size() == in_list, "%zu hooks in the chain, %zu claim the list", order.size(), in_list);
  REQUIRE(list.size() == in_list && list.empty() == (in_list == 0), "size %zu empty %d, want %zu", list.size(),
          list.empty(), in_list);
  return order;
}

void test_push_pop_in_order(void**) {
  std::vector<DeadlineHook> h(3);
  DeadlineList list(100);
  REQUIRE(list.empty() && list.size() == 0 && list.duration() == 100, "fresh list");
  REQUIRE(list.pop_expired(1000000) == nullptr, "nothing to pop");
  list.push(&h[0], 1000);
  list.push(&h[1], 1010);
  list.push(&h[2], 1020);
  REQUIRE(h[0].due_ms == 1100 && h[1].due_ms == 1110 && h[2].due_ms == 1120, "due = now + duration");
  REQUIRE(h[0].list == &list && h[1].list == &list && h[2].list == &list, "list set");
  REQUIRE(walk(list, h) == (std::vector<DeadlineHook*>{&h[0], &h[1], &h[2]}), "push order");
  REQUIRE(list.pop_expired(1099) == nullptr, "nothing due at 1099");
  REQUIRE(list.pop_expired(1100) == &h[0], "h0 due at 1100 (inclusive)");
  REQUIRE(h[0].list == nullptr && h[0].prev == nullptr && h[0].next == nullptr, "a popped hook is unlinked");
  REQUIRE(list.pop_expired(1100) == nullptr, "h1 is not due at 1100");
  REQUIRE(list.pop_expired(5000) == &h[1] && list.pop_expired(5000) == &h[2], "the rest, in order");
  REQUIRE(list.pop_expired(5000) == nullptr && list.empty() && list.size() == 0, "empty");
}

void test_push_again_moves_to_tail(void**) {
  std::vector<DeadlineHook> h(3);
  DeadlineList list(50);
  for (int i = 0; i < 3; i++) list.push(&h[i], 0);
  list.push(&h[0], 10);  // activity on h0: it waits again, behind the others
  REQUIRE(list.size() == 3, "still three (no duplicate), size %zu", list.size());
  REQUIRE(walk(list, h) == (std::vector<DeadlineHook*>{&h[1], &h[2], &h[0]}), "h0 moved to the tail");
  REQUIRE(h[0].due_ms == 60, "new due %llu", (unsigned long long)h[0].due_ms);
  list.push(&h[0], 20);  // the tail pushed again stays the tail
  REQUIRE(walk(list, h) == (std::vector<DeadlineHook*>{&h[1], &h[2], &h[0]}) && h[0].due_ms == 70, "tail again");
  REQUIRE(list.pop_expired(50) == &h[1] && list.pop_expired(50) == &h[2] && list.pop_expired(69) == nullptr, "order");
  REQUIRE(list.pop_expired(70) == &h[0], "h0 at its new due time");
}

void test_remove_head_middle_tail(void**) {
  std::vector<DeadlineHook> h(5);
  DeadlineList list(10);
  for (int i = 0; i < 5; i++) list.push(&h[i], static_cast<uint64_t>(i));
  DeadlineList::remove(&h[2]);  // middle
  REQUIRE(h[2].list == nullptr && h[2].prev == nullptr && h[2].next == nullptr, "removed hook unlinked");
  REQUIRE(walk(list, h) == (std::vector<DeadlineHook*>{&h[0], &h[1], &h[3], &h[4]}), "after removing the middle");
  DeadlineList::remove(&h[0]);  // head
  REQUIRE(walk(list, h) == (std::vector<DeadlineHook*>{&h[1], &h[3], &h[4]}), "after removing the head");
  DeadlineList::remove(&h[4]);  // tail
  REQUIRE(walk(list, h) == (std::vector<DeadlineHook*>{&h[1], &h[3]}), "after removing the tail");
  DeadlineList::remove(&h[4]);  // again: a hook in no list is left alone
  DeadlineList::remove(&h[2]);
  REQUIRE(list.size() == 2, "size %zu", list.size());
  list.push(&h[4], 100);  // the tail is right after removing the old tail
  REQUIRE(walk(list, h) == (std::vector<DeadlineHook*>{&h[1], &h[3], &h[4]}), "push after removals");
  DeadlineList::remove(&h[1]);
  DeadlineList::remove(&h[3]);
  DeadlineList::remove(&h[4]);
  REQUIRE(list.empty() && list.size() == 0 && list.pop_expired(UINT64_MAX) == nullptr, "emptied by removals");
  list.push(&h[0], 0);  // and usable again
  REQUIRE(walk(list, h) == (std::vector<DeadlineHook*>{&h[0]}), "reused");
  REQUIRE(list.pop_expired(10) == &h[0] && list.empty(), "pop the only one");
}

void test_move_between_lists(void**) {
  std::vector<DeadlineHook> h(4);
  DeadlineList handshake(10000), idle(50000);
  for (int i = 0; i < 4; i++) handshake.push(&h[i], 0);
  idle.push(&h[1], 5);  // h1 finished its handshake
  REQUIRE(h[1].list == &idle && h[1].due_ms == 50005, "h1 in idle");
  REQUIRE(walk(handshake, h) == (std::vector<DeadlineHook*>{&h[0], &h[2], &h[3]}), "handshake list");
  REQUIRE(walk(idle, h) == (std::vector<DeadlineHook*>{&h[1]}), "idle list");
  idle.push(&h[3], 6);
  idle.push(&h[0], 7);
  REQUIRE(walk(handshake, h) == (std::vector<DeadlineHook*>{&h[2]}), "handshake list");
  REQUIRE(walk(idle, h) == (std::vector<DeadlineHook*>{&h[1], &h[3], &h[0]}), "idle list in move order");
  handshake.push(&h[3], 8);  // and back
  REQUIRE(walk(handshake, h) == (std::vector<DeadlineHook*>{&h[2], &h[3]}), "back to handshake");
  REQUIRE(walk(idle, h) == (std::vector<DeadlineHook*>{&h[1], &h[0]}), "idle without h3");
  REQUIRE(handshake.pop_expired(10000) == &h[2] && handshake.pop_expired(10000) == nullptr, "h3 is due later");
  REQUIRE(handshake.pop_expired(10008) == &h[3], "h3 at 10008");
  REQUIRE(idle.pop_expired(50005) == &h[1] && idle.pop_expired(50006) == nullptr && idle.pop_expired(50007) == &h[0],
          "idle pops");
}

void test_set_duration(void**) {
  std::vector<DeadlineHook> h(2);
  DeadlineList list;
  REQUIRE(list.duration() == 0, "default duration 0");
  list.push(&h[0], 5);
  REQUIRE(h[0].due_ms == 5 && list.pop_expired(5) == &h[0], "duration 0: due at once");
  list.set_duration(30);
  REQUIRE(list.duration() == 30, "duration changed");
  list.push(&h[1], 5);
  REQUIRE(h[1].due_ms == 35, "due %llu", (unsigned long long)h[1].due_ms);
}

// ---- random operations against a model --------------------------------------------------------


void fuzz(uint64_t seed, size_t steps) {
  const size_t kHooks = 24, kLists = 3;
  std::vector<DeadlineHook> hooks(kHooks);
  for (size_t i = 0; i < kHooks; i++) hooks[i].owner = &hooks[i];
  DeadlineList lists[kLists] = {DeadlineList(0), DeadlineList(30), DeadlineList(200)};
  std::deque<size_t> model[kLists];  // hook indexes, head first
  std::vector<uint64_t> due(kHooks, 0);
  std::vector<int> where(kHooks, -1);  // list index or -1
  Rng rng(seed);
  uint64_t now = 1000;
  size_t pushes = 0, removes = 0, pops = 0, moves = 0;
  auto model_remove = [&](size_t i) {
    if (where[i] < 0) return;
    auto& q = model[where[i]];
    q.erase(std::find(q.begin(), q.end(), i));
    where[i] = -1;
  };
  for (size_t step = 0; step < steps; step++) {
    now += rng.below(4) == 0 ? rng.below(60) : 0;  // time stands still often: equal due times
    size_t i = rng.below(kHooks), l = rng.below(kLists);
    switch (rng.below(3)) {
      case 0:
        if (where[i] >= 0 && where[i] != static_cast<int>(l)) moves++;
        model_remove(i);
        lists[l].push(&hooks[i], now);
        model[l].push_back(i);
        where[i] = static_cast<int>(l);
        due[i] = now + lists[l].duration();
        pushes++;
        break;
      case 1:
        DeadlineList::remove(&hooks[i]);
        if (where[i] >= 0) removes++;
        model_remove(i);
        break;
      case 2:
        // What the loop's timer does: pop everything due on one list.
        for (;;) {
          DeadlineHook* got = lists[l].pop_expired(now);
          size_t want = model[l].empty() || due[model[l].front()] > now ? kHooks : model[l].front();
          REQUIRE(got == (want == kHooks ? nullptr : &hooks[want]), "seed %llu step %zu: list %zu popped hook %td, want %zu",
                  (unsigned long long)seed, step, l, got ? got - hooks.data() : -1, want);
          if (!got) break;
          REQUIRE(got->owner == got && got->list == nullptr, "popped hook unlinked, owner kept");
          model[l].pop_front();
          where[want] = -1;
          pops++;
        }
        break;
    }
    for (size_t k = 0; k < kLists; k++) {
      std::vector<DeadlineHook*> order = walk(lists[k], hooks);
      REQUIRE(order.size() == model[k].size(), "seed %llu step %zu: list %zu has %zu, model %zu",
              (unsigned long long)seed, step, k, order.size(), model[k].size());
      for (size_t j = 0; j < order.size(); j++) {
        REQUIRE(order[j] == &hooks[model[k][j]], "seed %llu step %zu: list %zu position %zu", (unsigned long long)seed,
                step, k, j);
        REQUIRE(order[j]->due_ms == due[model[k][j]], "due time of hook %zu", model[k][j]);
        REQUIRE(j == 0 || order[j - 1]->due_ms <= order[j]->due_ms, "list %zu sorted by due time", k);
      }
    }
    for (size_t k = 0; k < kHooks; k++)
      REQUIRE((hooks[k].list == nullptr) == (where[k] < 0), "hook %zu list pointer", k);
  }
  print_message("seed %llu: %zu pushes (%zu moves), %zu removes, %zu pops\n", (unsigned long long)seed, pushes, moves,
                removes, pops);
  REQUIRE(pushes > 100 && moves > 50 && removes > 50 && pops > 50, "every operation exercised");
}

void test_fuzz_against_model(void**) {
  for (uint64_t seed : {7ull, 8ull, 0x1234567ull}) fuzz(seed, 5000);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_push_pop_in_order),
      cmocka_unit_test(test_push_again_moves_to_tail),
      cmocka_unit_test(test_remove_head_middle_tail),
      cmocka_unit_test(test_move_between_lists),
      cmocka_unit_test(test_set_duration),
      cmocka_unit_test(test_fuzz_against_model),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
