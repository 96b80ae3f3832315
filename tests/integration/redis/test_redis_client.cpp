// tests/integration/redis/test_redis_client.cpp: roomcast::redis::Client against a real redis-server.
// Rule: every test ends with stop() and uv_loop_close() == 0; every redis-server started is killed, even on failure.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "redis/client.h"
#include "redis_server.h"

// cmocka last: its macros (fail, ...) clash with C++ standard headers; its header has no extern "C".
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

using roomcast::redis::Client;
using roomcast::redis::Options;
using roomcast::redis::Url;
using roomcast::redis::Value;
using roomcast::test::mono_ms;
using roomcast::test::RedisServer;

namespace {

// A loop with a 5 ms ticker so that run_until() re-checks its predicate often.
struct Loop {
  uv_loop_t loop;
  uv_timer_t ticker;
  Loop() {
    uv_loop_init(&loop);
    uv_timer_init(&loop, &ticker);
    uv_timer_start(&ticker, [](uv_timer_t*) {}, 5, 5);
  }
  bool run_until(const std::function<bool()>& pred, uint64_t timeout_ms) {
    uint64_t deadline = mono_ms() + timeout_ms;
    while (!pred()) {
      if (mono_ms() > deadline) return false;
      uv_run(&loop, UV_RUN_ONCE);
    }
    return true;
  }
  void run_for(uint64_t ms) { run_until([] { return false; }, ms); }
  // Stops what is left and closes the loop; returns uv_loop_close().
  int close() {
    uv_close(reinterpret_cast<uv_handle_t*>(&ticker), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop);
  }
};

// What one client saw.
struct Seen {
  std::vector<bool> states;
  std::vector<std::pair<std::string, std::string>> messages;
  std::map<std::string, int> subscribed;  // on_subscribed count per channel
};

struct TestClient {
  Seen seen;
  std::unique_ptr<Client> client;
  bool stopped = false;

  TestClient(Loop& l, const std::string& url_text, const std::string& name, Options opt = {}) {
    Url url;
    assert_int_equal(roomcast::redis::parse_url(url_text, &url), 0);
    opt.instance_id = name;
    opt.prefix = "test:";
    if (opt.probe_interval_ms == 1000) opt.probe_interval_ms = 200;
    if (opt.probe_deadline_ms == 3000) opt.probe_deadline_ms = 1500;
    if (opt.connect_timeout_ms == 3000) opt.connect_timeout_ms = 1500;
    opt.backoff_min_ms = 50;
    opt.backoff_max_ms = 400;
    opt.log_level = std::getenv("ROOMCAST_TEST_VERBOSE") ? 3 : 2;
    opt.log = [](int level, const std::string& line) {
      static const char* names[] = {"error", "warn", "info", "debug"};
      std::fprintf(stderr, "  [%s] %s\n", names[level & 3], line.c_str());
    };
    Client::Callbacks cb;
    cb.on_message = [this](std::string_view ch, std::string_view payload) {
      seen.messages.emplace_back(std::string(ch), std::string(payload));
    };
    cb.on_subscribed = [this](std::string_view ch) { seen.subscribed[std::string(ch)]++; };
    cb.on_state = [this](bool up) { seen.states.push_back(up); };
    client = std::make_unique<Client>(&l.loop, url, std::move(opt), std::move(cb));
  }
  Client* operator->() { return client.get(); }
  void stop() {
    client->stop([this] { stopped = true; });
  }
};

// Issues one command and runs the loop until its reply; fails the test on a negative status.
Value sync(Loop& l, TestClient& c, const std::vector<std::string_view>& argv) {
  bool got = false;
  int status = 1;
  Value out;
  int rc = c->command(argv, [&](int st, const Value& v) {
    got = true;
    status = st;
    out = v;
  });
  assert_int_equal(rc, 0);
  assert_true(l.run_until([&] { return got; }, 10000));
  assert_int_equal(status, 0);
  return out;
}

long long numsub(Loop& l, TestClient& c, const std::string& channel) {
  Value v = sync(l, c, {"PUBSUB", "NUMSUB", channel});
  assert_int_equal(static_cast<int>(v.type), static_cast<int>(Value::Type::Array));
  assert_int_equal(v.elements.size(), 2);
  return v.elements[1].integer;
}

void finish(Loop& l, std::vector<TestClient*> clients) {
  for (TestClient* c : clients) c->stop();
  assert_true(l.run_until(
      [&] {
        for (TestClient* c : clients) {
          if (!c->stopped) return false;
        }
        return true;
      },
      10000));
  assert_int_equal(l.close(), 0);
}

int teardown(void** state) {
  RedisServer::kill_all();
  return 0;
}

// Probes every 200 ms with a 1 s deadline (the freeze and stall tests).
Options probe_1s() {
  Options opt;
  opt.probe_interval_ms = 200;
  opt.probe_deadline_ms = 1000;
  opt.connect_timeout_ms = 1000;
  return opt;
}

// Starts c and runs the loop until it is up and subscribed to channel.
void up_and_subscribed(Loop& l, TestClient& c, const char* channel) {
  c->start();
  assert_true(l.run_until([&] { return c->up(); }, 10000));
  c->subscribe(channel);
  assert_true(l.run_until([&] { return c->is_subscribed(channel); }, 10000));
}

// ---- tests -----------------------------------------------------------------------------------

void test_url(void** state) {
  Url u;
  assert_int_equal(roomcast::redis::parse_url("redis://localhost", &u), 0);
  assert_string_equal(u.host.c_str(), "localhost");
  assert_int_equal(u.port, 6379);
  assert_int_equal(u.db, 0);
  assert_true(u.password.empty());
  assert_int_equal(roomcast::redis::parse_url("redis://:s%40cret@10.0.0.5:6380/3", &u), 0);
  assert_string_equal(u.host.c_str(), "10.0.0.5");
  assert_int_equal(u.port, 6380);
  assert_int_equal(u.db, 3);
  assert_string_equal(u.password.c_str(), "s@cret");
  assert_true(u.user.empty());
  assert_int_equal(roomcast::redis::parse_url("redis://alice:pw@[::1]:7000/", &u), 0);
  assert_string_equal(u.host.c_str(), "::1");
  assert_string_equal(u.user.c_str(), "alice");
  assert_string_equal(u.password.c_str(), "pw");
  assert_int_equal(u.port, 7000);
  assert_int_equal(u.db, 0);
  assert_int_equal(roomcast::redis::parse_url("redis://pw@h", &u), 0);
  assert_string_equal(u.password.c_str(), "pw");
  assert_string_equal(u.host.c_str(), "h");
  Url keep;
  keep.host = "keep";
  const char* bad[] = {"",           "http://h",       "redis://",      "redis://h:",      "redis://h:0",
                       "redis://h:65536", "redis://h:12x", "redis://h/x", "redis://[::1", "redis://h/1/2",
                       "redis://:%zz@h", "rediss://h"};
  for (const char* b : bad) {
    assert_int_equal(roomcast::redis::parse_url(b, &keep), roomcast::redis::kErrInvalid);
    assert_string_equal(keep.host.c_str(), "keep");
  }
  assert_string_equal(roomcast::redis::error_name(roomcast::redis::kErrDown), "down");
}

void test_pubsub(void** state) {
  RedisServer server;
  assert_true(server.start());
  Loop l;
  TestClient a(l, server.url(), "sub-side"), b(l, server.url(), "pub-side");
  assert_int_equal(a->start(), 0);
  assert_int_equal(b->start(), 0);
  assert_int_equal(a->start(), roomcast::redis::kErrState);
  assert_true(l.run_until([&] { return a->up() && b->up(); }, 10000));
  assert_true(a.seen.states == std::vector<bool>{true});

  // on_subscribed only after Redis confirmed: the first publish after it is delivered.
  a->subscribe("room:a");
  a->subscribe("room:a");  // idempotent
  assert_false(a->is_subscribed("room:a"));
  assert_true(l.run_until([&] { return a.seen.subscribed["room:a"] == 1; }, 10000));
  assert_true(a->is_subscribed("room:a"));
  assert_int_equal(numsub(l, b, "room:a"), 1);

  const std::string payload("x\0y\xff\xfe\x80 z", 8);
  Value v = sync(l, b, {"PUBLISH", "room:a", payload});
  assert_int_equal(static_cast<int>(v.type), static_cast<int>(Value::Type::Integer));
  assert_int_equal(v.integer, 1);
  assert_true(l.run_until([&] { return a.seen.messages.size() == 1; }, 10000));
  assert_string_equal(a.seen.messages[0].first.c_str(), "room:a");
  assert_int_equal(a.seen.messages[0].second.size(), payload.size());
  assert_memory_equal(a.seen.messages[0].second.data(), payload.data(), payload.size());

  // Unsubscribe stops delivery at once, even for a message already on its way.
  bool published = false;
  assert_int_equal(b->command({"PUBLISH", "room:a", "late"}, [&](int st, const Value&) { published = st == 0; }), 0);
  a->unsubscribe("room:a");
  a->unsubscribe("room:a");  // idempotent
  assert_false(a->is_subscribed("room:a"));
  assert_true(l.run_until([&] { return published; }, 10000));
  a->subscribe("room:sync1");  // commands on the sub connection are answered in order
  assert_true(l.run_until([&] { return a.seen.subscribed["room:sync1"] == 1; }, 10000));
  assert_int_equal(numsub(l, b, "room:a"), 0);
  v = sync(l, b, {"PUBLISH", "room:a", "after"});
  assert_int_equal(v.integer, 0);
  l.run_for(100);
  assert_int_equal(a.seen.messages.size(), 1);

  // subscribe/unsubscribe/subscribe before any reply: one subscription, one on_subscribed.
  a->subscribe("room:b");
  a->unsubscribe("room:b");
  a->subscribe("room:b");
  // subscribe/unsubscribe before the reply: none.
  a->subscribe("room:c");
  a->unsubscribe("room:c");
  a->subscribe("room:sync2");
  assert_true(l.run_until([&] { return a.seen.subscribed["room:sync2"] == 1; }, 10000));
  assert_int_equal(a.seen.subscribed["room:b"], 1);
  assert_int_equal(a.seen.subscribed.count("room:c"), 0);
  assert_true(a->is_subscribed("room:b"));
  assert_false(a->is_subscribed("room:c"));
  assert_int_equal(numsub(l, b, "room:b"), 1);
  assert_int_equal(numsub(l, b, "room:c"), 0);
  v = sync(l, b, {"PUBLISH", "room:b", "to-b"});
  assert_int_equal(v.integer, 1);
  assert_true(l.run_until([&] { return a.seen.messages.size() == 2; }, 10000));
  assert_string_equal(a.seen.messages[1].second.c_str(), "to-b");

  // A Redis error reply is status 0 with an Error value.
  v = sync(l, b, {"NOSUCHCOMMAND"});
  assert_true(v.is_error());
  assert_int_equal(b->command({}, nullptr), roomcast::redis::kErrInvalid);

  auto st = a->stats();
  assert_int_equal(st.messages_in, 2);
  assert_int_equal(st.subscriptions, 3);  // room:sync1, room:sync2, room:b
  assert_int_equal(st.reconnects, 0);
  assert_true(b->stats().commands >= 8);
  finish(l, {&a, &b});
  assert_true(a.seen.states == std::vector<bool>{true});  // no on_state(false) on stop()
}

// Both connections carry CLIENT SETNAME roomcast:<instance-id>:pub and :sub (bytes Redis refuses in a
// name become '_'), so that operators and tests find them in CLIENT LIST; an ACL without the CLIENT
// command costs only the names.
void test_client_names(void** state) {
  RedisServer server;
  assert_true(server.start());
  Loop l;
  TestClient a(l, server.url(), "host one:42"), admin(l, server.url(), "admin");
  a->start();
  admin->start();
  assert_true(l.run_until([&] { return a->up() && admin->up(); }, 10000));
  std::string list = sync(l, admin, {"CLIENT", "LIST"}).str;
  assert_true(list.find(" name=roomcast:host_one:42:pub ") != std::string::npos);
  assert_true(list.find(" name=roomcast:host_one:42:sub ") != std::string::npos);
  assert_true(list.find(" name=roomcast:admin:pub ") != std::string::npos);

  sync(l, admin, {"ACL", "SETUSER", "nocli", "on", ">pw", "~*", "&*", "+@all", "-client"});
  TestClient b(l, "redis://nocli:pw@127.0.0.1:" + std::to_string(server.port()), "no-names");
  b->start();
  assert_true(l.run_until([&] { return b->up(); }, 10000));
  b->subscribe("room:n");
  assert_true(l.run_until([&] { return b->is_subscribed("room:n"); }, 10000));
  sync(l, admin, {"PUBLISH", "room:n", "hi"});
  assert_true(l.run_until([&] { return b.seen.messages.size() == 1; }, 10000));
  list = sync(l, admin, {"CLIENT", "LIST"}).str;
  assert_true(list.find("roomcast:no-names:") == std::string::npos);
  l.run_for(500);  // several probe rounds: the refused SETNAME did not take it down
  assert_true(b->up());
  assert_true(b.seen.states == std::vector<bool>{true});
  finish(l, {&a, &admin, &b});
}

void test_restart(void** state) {
  RedisServer server;
  assert_true(server.start());
  Loop l;
  TestClient a(l, server.url(), "restart-sub"), b(l, server.url(), "restart-pub");
  a->start();
  b->start();
  assert_true(l.run_until([&] { return a->up() && b->up(); }, 10000));
  a->subscribe("room:r");
  a->subscribe("room:x");
  assert_true(l.run_until([&] { return a->is_subscribed("room:r") && a->is_subscribed("room:x"); }, 10000));

  // A command accepted but not answered when Redis dies gets a negative status.
  int pending_status = 1;
  assert_int_equal(b->command({"PUBLISH", "room:r", "lost?"}, [&](int st, const Value&) { pending_status = st; }), 0);
  server.stop();
  assert_true(l.run_until([&] { return !a->up() && !b->up(); }, 10000));
  assert_true(l.run_until([&] { return pending_status != 1; }, 10000));
  assert_true(pending_status < 0);
  assert_true(a.seen.states == (std::vector<bool>{true, false}));
  assert_true(b.seen.states == (std::vector<bool>{true, false}));
  assert_false(a->is_subscribed("room:r"));

  // While down: commands fail at once and never call back; the wanted set still changes.
  bool called = false;
  assert_int_equal(b->command({"PING"}, [&](int, const Value&) { called = true; }), roomcast::redis::kErrDown);
  a->subscribe("room:r2");
  a->unsubscribe("room:x");
  l.run_for(300);  // a few failed reconnect attempts
  assert_false(called);

  assert_true(server.start());
  assert_true(l.run_until([&] { return a->up() && b->up(); }, 15000));
  assert_true(a.seen.states == (std::vector<bool>{true, false, true}));
  assert_true(l.run_until([&] { return a.seen.subscribed["room:r"] == 2 && a.seen.subscribed["room:r2"] == 1; },
                          10000));
  assert_int_equal(a.seen.subscribed["room:x"], 1);
  assert_int_equal(numsub(l, b, "room:r"), 1);
  assert_int_equal(numsub(l, b, "room:r2"), 1);
  assert_int_equal(numsub(l, b, "room:x"), 0);
  sync(l, b, {"PUBLISH", "room:r", "again"});
  assert_true(l.run_until([&] { return !a.seen.messages.empty(); }, 10000));
  assert_string_equal(a.seen.messages.back().second.c_str(), "again");
  assert_int_equal(a->stats().reconnects, 1);
  assert_int_equal(b->stats().reconnects, 1);
  assert_false(called);
  finish(l, {&a, &b});
}

void test_sigstop(void** state) {
  RedisServer server;
  assert_true(server.start());
  Loop l;
  TestClient a(l, server.url(), "frozen", probe_1s());
  up_and_subscribed(l, a, "room:s");

  server.freeze();
  uint64_t t0 = mono_ms();
  int status = 1;
  assert_int_equal(a->command({"PING"}, [&](int st, const Value&) { status = st; }), 0);
  assert_true(l.run_until([&] { return !a->up(); }, 10000));
  uint64_t took = mono_ms() - t0;
  std::fprintf(stderr, "  down %llu ms after SIGSTOP (deadline 1000 ms)\n", static_cast<unsigned long long>(took));
  assert_true(took >= 900);
  assert_true(took < 1000 + 3000);
  assert_true(l.run_until([&] { return status != 1; }, 1000));
  assert_int_equal(status, roomcast::redis::kErrDisconnected);
  l.run_for(1500);  // reconnect attempts time out against the frozen server
  assert_false(a->up());

  server.thaw();
  assert_true(l.run_until([&] { return a->up(); }, 15000));
  assert_true(l.run_until([&] { return a.seen.subscribed["room:s"] == 2; }, 10000));
  sync(l, a, {"PUBLISH", "room:s", "thawed"});
  assert_true(l.run_until([&] { return a.seen.messages.size() == 1; }, 10000));
  assert_true(a.seen.states == (std::vector<bool>{true, false, true}));
  assert_int_equal(a->stats().reconnects, 1);
  finish(l, {&a});
}

// The loop stalls, not Redis (a machine far busier than its cores): probes are in flight (Redis frozen
// for 400 ms), then a callback in the poll phase thaws Redis and holds the loop for 1.5 s, past the 1 s
// deadline, while Redis answers into the socket. The next loop turn runs the timers before it reads:
// the probe is overdue and nothing was read. The client must read before it judges: no drop.
void test_own_stall(void** state) {
  RedisServer server;
  assert_true(server.start());
  Loop l;
  TestClient a(l, server.url(), "stalled", probe_1s());
  up_and_subscribed(l, a, "room:s");

  server.freeze();
  l.run_for(400);
  uv_async_t blocker;
  blocker.data = &server;
  uv_async_init(&l.loop, &blocker, [](uv_async_t* h) {
    static_cast<RedisServer*>(h->data)->thaw();
    usleep(1500 * 1000);
  });
  uv_async_send(&blocker);
  l.run_for(1500);
  uv_close(reinterpret_cast<uv_handle_t*>(&blocker), nullptr);
  assert_true(a->up());
  assert_true(a.seen.states == (std::vector<bool>{true}));
  assert_int_equal(a->stats().reconnects, 0);
  sync(l, a, {"PUBLISH", "room:s", "after"});
  assert_true(l.run_until([&] { return a.seen.messages.size() == 1; }, 10000));
  finish(l, {&a});
}

// A peer reset (Redis killed with our bytes unread in its socket) shows up as POLLERR, which libuv
// reports as a poll error: the adapter must still let hiredis see it, long before any probe deadline.
void test_reset(void** state) {
  RedisServer server;
  assert_true(server.start());
  Loop l;
  Options opt;
  opt.probe_interval_ms = 5000;
  opt.probe_deadline_ms = 30000;
  opt.connect_timeout_ms = 30000;
  TestClient a(l, server.url(), "reset", opt);
  a->start();
  assert_true(l.run_until([&] { return a->up(); }, 10000));
  server.freeze();
  int status = 1;
  const std::string filler(64 << 10, 'f');
  assert_int_equal(a->command({"SET", "k", filler}, [&](int st, const Value&) { status = st; }), 0);
  a->subscribe(filler);  // unread bytes on the sub connection too
  l.run_for(200);  // written to the socket, unread by the frozen server
  uint64_t t0 = mono_ms();
  server.stop();
  assert_true(l.run_until([&] { return !a->up(); }, 10000));
  uint64_t took = mono_ms() - t0;
  std::fprintf(stderr, "  down %llu ms after the reset\n", static_cast<unsigned long long>(took));
  assert_true(took < 3000);
  assert_true(l.run_until([&] { return status != 1; }, 1000));
  assert_int_equal(status, roomcast::redis::kErrDisconnected);
  assert_true(server.start());
  assert_true(l.run_until([&] { return a->up(); }, 15000));
  finish(l, {&a});
}

void test_slow_subscriber(void** state) {
  RedisServer server({"--client-output-buffer-limit", "pubsub 1024 0 0"});
  assert_true(server.start());
  Loop l;
  TestClient a(l, server.url(), "slow-sub"), b(l, server.url(), "slow-pub");
  a->start();
  b->start();
  assert_true(l.run_until([&] { return a->up() && b->up(); }, 10000));
  a->subscribe("room:big");
  assert_true(l.run_until([&] { return a->is_subscribed("room:big"); }, 10000));
  // Over the pubsub output limit: Redis closes the subscriber, which must come back by itself.
  const std::string big(4 << 20, 'b');
  sync(l, b, {"PUBLISH", "room:big", big});
  assert_true(l.run_until([&] { return a.seen.states.size() >= 3; }, 15000));
  assert_true(a.seen.states == (std::vector<bool>{true, false, true}));
  assert_true(l.run_until([&] { return a.seen.subscribed["room:big"] == 2; }, 10000));
  sync(l, b, {"PUBLISH", "room:big", "small"});
  assert_true(l.run_until([&] { return !a.seen.messages.empty(); }, 10000));
  assert_string_equal(a.seen.messages.back().second.c_str(), "small");
  assert_true(b.seen.states == std::vector<bool>{true});
  finish(l, {&a, &b});
}

void test_down_at_start(void** state) {
  RedisServer server;  // port chosen, not started
  Loop l;
  // By name: resolved without blocking, again on every attempt, IPv4 first (the server is on 127.0.0.1).
  TestClient a(l, "redis://localhost:" + std::to_string(server.port()), "early");
  assert_int_equal(a->start(), 0);
  a->subscribe("room:d");
  l.run_for(500);
  assert_false(a->up());
  assert_true(a.seen.states.empty());
  assert_int_equal(a->command({"PING"}, [](int, const Value&) {}), roomcast::redis::kErrDown);
  assert_true(server.start());
  assert_true(l.run_until([&] { return a->up(); }, 15000));
  assert_true(l.run_until([&] { return a.seen.subscribed["room:d"] == 1; }, 10000));
  assert_true(a.seen.states == std::vector<bool>{true});
  assert_int_equal(a->stats().reconnects, 0);
  finish(l, {&a});
}

void test_auth_db(void** state) {
  RedisServer server({"--requirepass", "s3cret"});
  assert_true(server.start());
  Loop l;
  std::string base = "127.0.0.1:" + std::to_string(server.port());
  TestClient good(l, "redis://:s3cret@" + base + "/2", "auth-good");
  TestClient zero(l, "redis://default:s3cret@" + base, "auth-db0");
  TestClient bad(l, "redis://:wrong@" + base, "auth-bad");
  good->start();
  zero->start();
  bad->start();
  assert_true(l.run_until([&] { return good->up() && zero->up(); }, 10000));
  sync(l, good, {"SET", "k", "in-db-2"});
  Value v = sync(l, zero, {"GET", "k"});
  assert_true(v.is_nil());
  v = sync(l, good, {"GET", "k"});
  assert_string_equal(v.str.c_str(), "in-db-2");
  l.run_for(500);
  assert_false(bad->up());
  finish(l, {&good, &zero, &bad});
}

void test_stop_paths(void** state) {
  RedisServer server;
  assert_true(server.start());
  Loop l;
  // Never started.
  TestClient idle(l, server.url(), "idle");
  idle.stop();
  // Stopped while still connecting to a port nobody listens on.
  TestClient early(l, "redis://127.0.0.1:" + std::to_string(roomcast::test::free_port()), "nowhere");
  early->start();
  early.stop();
  assert_int_equal(early->command({"PING"}, nullptr), roomcast::redis::kErrStopped);
  // Stopped from inside a reply callback with more commands in flight.
  TestClient a(l, server.url(), "stopper");
  a->start();
  assert_true(l.run_until([&] { return a->up() && idle.stopped && early.stopped; }, 10000));
  std::vector<int> statuses;
  for (int i = 0; i < 5; ++i) {
    assert_int_equal(a->command({"PING"},
                                [&](int st, const Value&) {
                                  statuses.push_back(st);
                                  if (statuses.size() == 1) a.stop();
                                }),
                     0);
  }
  a->subscribe("room:z");
  assert_true(l.run_until([&] { return a.stopped; }, 10000));
  assert_int_equal(statuses.size(), 5);
  assert_int_equal(statuses[0], 0);
  for (size_t i = 1; i < statuses.size(); ++i) assert_int_equal(statuses[i], roomcast::redis::kErrStopped);
  assert_true(a.seen.states == std::vector<bool>{true});
  assert_int_equal(l.close(), 0);
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  std::atexit(RedisServer::kill_all);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_url),
      cmocka_unit_test_teardown(test_pubsub, teardown),
      cmocka_unit_test_teardown(test_client_names, teardown),
      cmocka_unit_test_teardown(test_restart, teardown),
      cmocka_unit_test_teardown(test_sigstop, teardown),
      cmocka_unit_test_teardown(test_own_stall, teardown),
      cmocka_unit_test_teardown(test_reset, teardown),
      cmocka_unit_test_teardown(test_slow_subscriber, teardown),
      cmocka_unit_test_teardown(test_down_at_start, teardown),
      cmocka_unit_test_teardown(test_auth_db, teardown),
      cmocka_unit_test_teardown(test_stop_paths, teardown),
  };
  if (argc > 1) cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests_name("redis_client", tests, nullptr, nullptr);
}
