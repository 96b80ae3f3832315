// tests/integration/redis/test_subscriptions.cpp: redis::Subscriptions against a naive model of Redis and of the wanted set.
// Rule: random operations, fixed seed; every step checks the bookkeeping against the model, every drain checks convergence.
#include <deque>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "redis/subscriptions.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

using roomcast::redis::Subscriptions;

namespace {

struct Model {
  Subscriptions subs;
  bool connected = true;
  std::deque<std::pair<bool, std::string>> wire;  // (SUBSCRIBE?, channel) sent, not yet answered
  std::set<std::string> redis;                    // what Redis has subscribed for this connection
  std::set<std::string> wanted;                   // what the caller wants
  std::set<std::string> notify;                   // wanted channels still owed an on_subscribed
  uint64_t notified = 0;

  bool pending(const std::string& ch) const {
    for (auto& w : wire) {
      if (w.second == ch) return true;
    }
    return false;
  }

  void want(const std::string& ch) {
    bool was = wanted.count(ch) != 0;
    bool send = subs.want(ch, connected);
    if (was) assert_false(send);
    if (send) wire.emplace_back(true, ch);
    if (!was) {
      wanted.insert(ch);
      notify.insert(ch);
    }
  }

  void unwant(const std::string& ch) {
    if (subs.unwant(ch, connected)) wire.emplace_back(false, ch);
    wanted.erase(ch);
    notify.erase(ch);
  }

  // Redis executes the oldest command and its reply arrives.
  void step() {
    if (!connected || wire.empty()) return;
    auto [sub, ch] = wire.front();
    wire.pop_front();
    if (sub) {
      redis.insert(ch);
      if (subs.on_subscribe_reply(ch)) {
        // Reported once, for a wanted channel that Redis has and will keep (nothing pending).
        assert_true(notify.count(ch) == 1);
        assert_true(wanted.count(ch) == 1);
        assert_true(redis.count(ch) == 1);
        assert_false(pending(ch));
        notify.erase(ch);
        ++notified;
      }
    } else {
      redis.erase(ch);
      subs.on_unsubscribe_reply(ch);
    }
  }

  void disconnect() {
    connected = false;
    wire.clear();
    redis.clear();
    subs.reset();
  }

  void reconnect() {
    connected = true;
    for (auto name : subs.resubscribe_all()) wire.emplace_back(true, std::string(name));
    notify = wanted;
  }

  void check(const std::vector<std::string>& names) {
    assert_int_equal(subs.wanted_count(), wanted.size());
    for (auto& ch : names) {
      assert_int_equal(subs.wanted(ch), wanted.count(ch));
      if (subs.confirmed(ch)) {
        assert_true(wanted.count(ch) == 1);
        assert_true(redis.count(ch) == 1);
        assert_false(pending(ch));
      }
    }
  }

  void drain(const std::vector<std::string>& names) {
    if (!connected) reconnect();
    while (!wire.empty()) step();
    assert_true(redis == wanted);
    assert_true(notify.empty());
    assert_int_equal(subs.tracked(), wanted.size());
    for (auto& ch : names) assert_int_equal(subs.confirmed(ch), wanted.count(ch));
  }
};

void test_subscriptions_model(void** state) {
  const std::vector<std::string> names = {"room:a", "room:b", "room:c", "room:d", std::string("bin\0\xff", 5)};
  for (unsigned seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    Model m;
    for (int i = 0; i < 20000; ++i) {
      const std::string& ch = names[rng() % names.size()];
      unsigned op = rng() % 100;
      if (op < 30) {
        m.want(ch);
      } else if (op < 55) {
        m.unwant(ch);
      } else if (op < 95) {
        m.step();
      } else if (op < 97) {
        if (m.connected) m.disconnect();
        else m.reconnect();
      } else {
        m.drain(names);
      }
      m.check(names);
    }
    m.drain(names);
    assert_true(m.notified > 0);
  }
}

void test_subscriptions_basics(void** state) {
  Subscriptions s;
  assert_true(s.want("a", true));
  assert_false(s.want("a", true));  // idempotent
  assert_true(s.unwant("a", true));
  assert_true(s.want("a", true));
  assert_false(s.on_subscribe_reply("a"));  // first SUBSCRIBE: an UNSUBSCRIBE follows it
  s.on_unsubscribe_reply("a");
  assert_false(s.confirmed("a"));
  assert_true(s.on_subscribe_reply("a"));
  assert_true(s.confirmed("a"));
  // While down: remembered, nothing to send; sent on the next connection.
  s.reset();
  assert_false(s.confirmed("a"));
  assert_false(s.want("b", false));
  assert_false(s.unwant("a", false));
  assert_false(s.unwant("zzz", true));
  auto names = s.resubscribe_all();
  assert_int_equal(names.size(), 1);
  assert_true(names[0] == "b");
  assert_int_equal(s.tracked(), 1);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_subscriptions_basics),
      cmocka_unit_test(test_subscriptions_model),
  };
  return cmocka_run_group_tests_name("redis_subscriptions", tests, nullptr, nullptr);
}
