// Unit tests of redis/slots (hash slots, hash tags, CLUSTER SLOTS and MOVED/ASK parsing) and of the
// subscription bookkeeping Redis Cluster adds (a channel Redis drops by itself, then subscribed again).
// Rule: slot values are the ones `redis-server 7.0` gives for CLUSTER KEYSLOT; malformed input is refused whole.
#include <string>
#include <vector>

#include "redis/slots.h"
#include "redis/subscriptions.h"

// cmocka last: its fail() macro would clash with names in the headers above.
#include "unit_check.h"

using namespace roomcast::redis;

namespace {

void test_key_slot_table(void**) {
  struct Row {
    const char* key;
    int slot;  // CLUSTER KEYSLOT on redis-server 7.0.15
  } rows[] = {
      {"foo", 12182}, {"bar", 5061}, {"hello", 866}, {"{user1000}.following", 3443},
      {"foo{}{bar}", 8363},      // an empty first tag: the whole key
      {"foo{{bar}}zap", 4015},   // the tag is "{bar"
      {"foo{bar}{zap}", 5061},   // the first tag only: "bar"
      {"room:{abc}:log", 7638}, {"", 0},
  };
  for (const Row& r : rows) EXPECT(key_slot(r.key) == r.slot, "%s: %d, not %d", r.key, key_slot(r.key), r.slot);
  EXPECT(key_slot("room:{R1}") == key_slot("room:{R1}:log") && key_slot("room:{R1}") == key_slot("room:{R1}:members"),
         "every name of a room shares its slot");
}

void test_tag_for_slot_covers_every_slot(void**) {
  for (uint32_t s = 0; s < kSlots; s++) {
    const std::string& tag = tag_for_slot(static_cast<uint16_t>(s));
    if (key_slot("probe:{" + tag + "}:x") != s) {
      EXPECT(false, "slot %u: tag %s", s, tag.c_str());
      break;
    }
  }
}

void test_routing_key(void**) {
  using V = std::vector<std::string_view>;
  EXPECT(routing_key(V{"EVAL", "return 1", "2", "k1", "k2", "a"}) == "k1", "EVAL: first key");
  EXPECT(routing_key(V{"eval", "return 1", "0", "a"}).empty(), "EVAL without keys: any node");
  EXPECT(routing_key(V{"EVAL", "return 1", "x", "k"}).empty(), "EVAL with a bad numkeys: no key");
  EXPECT(routing_key(V{"EVAL", "return 1", "1"}).empty(), "EVAL missing its key");
  EXPECT(routing_key(V{"SPUBLISH", "room:{a}", "p"}) == "room:{a}", "SPUBLISH: its channel");
  EXPECT(routing_key(V{"HGETALL", "room:{a}:members"}) == "room:{a}:members", "HGETALL");
  EXPECT(routing_key(V{"TIME"}).empty() && routing_key(V{"CLUSTER", "SLOTS"}).empty(), "keyless commands");
  EXPECT(routing_key(V{}).empty(), "empty argv");
}

Value integer(long long v) {
  Value x;
  x.type = Value::Type::Integer;
  x.integer = v;
  return x;
}
Value string(const char* s) {
  Value x;
  x.type = Value::Type::String;
  x.str = s;
  return x;
}
Value array(std::vector<Value> items) {
  Value x;
  x.type = Value::Type::Array;
  x.elements = std::move(items);
  return x;
}

void test_parse_cluster_slots(void**) {
  Value ok = array({
      array({integer(0), integer(5460), array({string("127.0.0.1"), integer(7001), string("id1")}),
             array({string("127.0.0.1"), integer(7004), string("id4")})}),
      array({integer(5461), integer(16383), array({string(""), integer(7002)})}),
  });
  std::vector<SlotRange> out;
  REQUIRE(parse_cluster_slots(ok, &out), "a valid map");
  REQUIRE(out.size() == 2, "two ranges");
  EXPECT(out[0].first == 0 && out[0].last == 5460 && out[0].host == "127.0.0.1" && out[0].port == 7001, "range 0");
  EXPECT(out[1].first == 5461 && out[1].last == 16383 && out[1].host.empty() && out[1].port == 7002, "range 1");

  std::vector<Value> bad = {
      string("nope"),
      array({array({integer(10), integer(5), array({string("h"), integer(1)})})}),       // reversed
      array({array({integer(0), integer(16384), array({string("h"), integer(1)})})}),     // out of bounds
      array({array({integer(0), integer(5), array({string("h"), integer(0)})})}),         // port 0
      array({array({integer(0), integer(5), array({string("h")})})}),                     // no port
      array({array({integer(0), integer(5)})}),                                            // no master
      array({array({string("0"), integer(5), array({string("h"), integer(1)})})}),        // slot as text
  };
  for (size_t i = 0; i < bad.size(); i++) {
    out.assign(1, SlotRange{});
    EXPECT(!parse_cluster_slots(bad[i], &out) && out.empty(), "bad map %zu refused whole", i);
  }
}

void test_parse_redirect(void**) {
  Redirect r;
  REQUIRE(parse_redirect("MOVED 3999 127.0.0.1:6381", &r), "MOVED");
  EXPECT(!r.ask && r.slot == 3999 && r.host == "127.0.0.1" && r.port == 6381, "MOVED fields");
  REQUIRE(parse_redirect("ASK 12 [::1]:7000", &r), "ASK with IPv6 in brackets");
  EXPECT(r.host == "::1", "brackets dropped: %s", r.host.c_str());
  REQUIRE(parse_redirect("ASK 12 ::1:7000", &r), "ASK, IPv6 without brackets (as Redis writes it)");
  EXPECT(r.ask && r.slot == 12 && r.host == "::1" && r.port == 7000, "ASK fields");
  REQUIRE(parse_redirect("MOVED 5 :7000", &r), "an empty host: the node asked");
  EXPECT(r.host.empty() && r.port == 7000, "empty host");
  for (const char* e : {"MOVED", "MOVED 16384 h:1", "MOVED x h:1", "MOVED 1 h", "MOVED 1 h:0", "MOVED 1 h:99999",
                        "ERR MOVED 1 h:1", "TRYAGAIN", "ASK 1"})
    EXPECT(!parse_redirect(e, &r), "%s refused", e);
}

void test_subscription_dropped_then_resent(void**) {
  Subscriptions s;
  EXPECT(s.want("c", true), "first want sends");
  EXPECT(s.on_subscribe_reply("c") && s.confirmed("c"), "confirmed");
  s.on_dropped("c", false);  // Redis pushed sunsubscribe: its slot left the node
  EXPECT(s.wanted("c") && !s.confirmed("c"), "still wanted, no longer confirmed");
  EXPECT(!s.want("c", true), "wanting again is idempotent");
  EXPECT(s.resend("c", true), "resend sends");
  EXPECT(!s.resend("c", true), "only once");
  EXPECT(s.on_subscribe_reply("c") && s.confirmed("c"), "confirmed again");
  // A refused SSUBSCRIBE is an answer: nothing stays outstanding.
  EXPECT(s.want("d", true), "d sent");
  s.on_dropped("d", true);
  EXPECT(!s.confirmed("d") && s.resend("d", true), "d can be sent again");
  EXPECT(s.on_subscribe_reply("d"), "d confirmed by the reply to the resend");
  // Dropped and no longer wanted: forgotten.
  EXPECT(!s.unwant("e", true), "unknown channel");
  EXPECT(s.unwant("d", true), "d unsubscribed");
  s.on_unsubscribe_reply("d");
  s.on_dropped("d", false);
  EXPECT(s.tracked() == 1, "only c left, got %zu", s.tracked());
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      TEST(test_key_slot_table),
      TEST(test_tag_for_slot_covers_every_slot),
      TEST(test_routing_key),
      TEST(test_parse_cluster_slots),
      TEST(test_parse_redirect),
      TEST(test_subscription_dropped_then_resent),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
