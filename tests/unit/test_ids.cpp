// Unit tests of the identifiers of the wire contract (PROTOCOL.md section 2): room ids, users,
// generated ids and the order of message ids.
// Rule: tables at the edges (64 vs 65, first and last allowed characters); random draws checked for
// format and repeats.
#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "protocol/ids.h"

// cmocka last: its fail() macro would clash with names in the headers above.
#include "unit_check.h"

using namespace roomcast::protocol;



namespace {

template <size_t N>
std::string bytes(const char (&s)[N]) {
  return std::string(s, N - 1);
}

std::string rep(const std::string& s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; i++) out += s;
  return out;
}

void test_valid_room_id(void**) {
  struct Row {
    std::string id;
    bool ok;
  } rows[] = {
      {"a", true},
      {"room1", true},
      {"AZaz09_-.:", true},
      {"lobby:general.v2-x_y", true},
      {rep("a", 63), true},
      {rep("a", 64), true},
      {rep("Z", 64), true},
      {rep("a", 65), false},
      {rep("a", 1000), false},
      {"", false},
      {"a b", false},
      {" a", false},
      {"a ", false},
      {"a/b", false},
      {"a\\b", false},
      {"r#1", false},
      {"a?b", false},
      {"a&b", false},
      {"a%20", false},
      {"a+b", false},
      {"a\"b", false},
      {"a'b", false},
      {"a,b", false},
      {"a;b", false},
      {"a@b", false},
      {"a~b", false},
      {"a*b", false},
      {"a\tb", false},
      {"a\nb", false},
      {bytes("a\0b"), false},
      {"\x7f", false},
      {"caf\xc3\xa9", false},
      {"\xe2\x82\xac", false},
      {"`", false},
      {"[", false},
      {"{", false},
      {"/", false},  // the characters right before and after the allowed ranges
      {";", false},
      {"@", false},
      {"^", false},
  };
  for (const Row& r : rows) {
    EXPECT(valid_room_id(r.id) == r.ok, "room '%s' (%zu bytes): want %d", r.id.c_str(), r.id.size(), r.ok);
    EXPECT(valid_user_id(r.id) == r.ok, "user id '%s' (%zu bytes): want %d", r.id.c_str(), r.id.size(), r.ok);
  }
  // Every single byte: exactly the 66 characters of the alphabet are allowed.
  int allowed = 0;
  for (int c = 0; c < 256; c++) {
    std::string s(1, static_cast<char>(c));
    bool want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                c == '.' || c == ':';
    EXPECT(valid_room_id(s) == want, "byte 0x%02x: want %d", c, want);
    allowed += valid_room_id(s);
  }
  EXPECT(allowed == 66, "%d characters allowed", allowed);
}

void test_valid_user_name(void**) {
  struct Row {
    std::string name;
    bool ok;
    const char* what;
  } rows[] = {
      {"Bob", true, "ASCII"},
      {"Bob Smith", true, "with a blank"},
      {"a", true, "one character"},
      {" ", true, "a blank"},
      {"~!@#$%^&*()[]{}<>\"'\\/", true, "punctuation"},
      {rep("a", 64), true, "64 ASCII"},
      {rep("a", 65), false, "65 ASCII"},
      {rep("\xc3\xa9", 64), true, "64 two-byte characters (128 bytes)"},
      {rep("\xc3\xa9", 65), false, "65 two-byte characters"},
      {rep("\xe2\x82\xac", 64), true, "64 three-byte characters"},
      {rep("\xf0\x9f\x98\x80", 64), true, "64 emoji (256 bytes)"},
      {rep("\xf0\x9f\x98\x80", 65), false, "65 emoji"},
      {rep("a", 63) + "\xf0\x9f\x98\x80", true, "63 ASCII + 1 emoji"},
      {rep("a", 64) + "\xf0\x9f\x98\x80", false, "64 ASCII + 1 emoji"},
      {"Zo\xc3\xab", true, "Latin-1 letter"},
      {"\xe5\xbc\xa0\xe4\xb8\x89", true, "CJK"},
      {"\xc2\xa0", true, "no-break space U+00A0"},
      {"", false, "empty"},
      {"a\tb", false, "tab"},
      {"a\nb", false, "newline"},
      {"a\rb", false, "CR"},
      {"\x1b[31m", false, "escape"},
      {"\x1f", false, "U+001F"},
      {bytes("a\0b"), false, "NUL"},
      {"a\x7f", false, "DEL"},
      {"\xc2\x80", false, "C1 control U+0080"},
      {"a\xc2\x85" "b", false, "C1 NEL U+0085"},
      {"\xc2\x9f", false, "C1 control U+009F"},
      {"\xff", false, "invalid UTF-8"},
      {"a\xc3", false, "truncated UTF-8"},
      {"\xc0\xaf", false, "overlong"},
      {"\xed\xa0\x80", false, "surrogate"},
      {"\xf4\x90\x80\x80", false, "above U+10FFFF"},
  };
  for (const Row& r : rows) EXPECT(valid_user_name(r.name) == r.ok, "[%s] want %d", r.what, r.ok);
}

bool is_base32_lower(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'); });
}

void test_new_room_id(void**) {
  std::unordered_set<std::string> seen;
  std::set<char> chars;
  int bad_format = 0, repeats = 0;
  for (int i = 0; i < 10000; i++) {
    std::string id = new_room_id();
    if (id.size() != 10 || !is_base32_lower(id) || !valid_room_id(id)) {
      if (bad_format++ < 3) EXPECT(false, "draw %d: '%s' is not [a-z2-7]{10}", i, id.c_str());
    }
    if (!seen.insert(id).second) {
      if (repeats++ < 3) EXPECT(false, "draw %d: '%s' repeats", i, id.c_str());
    }
    chars.insert(id.begin(), id.end());
  }
  EXPECT(bad_format == 0 && repeats == 0, "%d badly formed, %d repeated", bad_format, repeats);
  // 100000 characters drawn: every one of the 32 appears (a missing one has odds below 1e-130).
  EXPECT(chars.size() == 32, "%zu distinct characters", chars.size());
}

void test_random_base32(void**) {
  EXPECT(random_base32(0).empty(), "zero characters");
  for (size_t n : {size_t{1}, size_t{4}, size_t{12}, size_t{32}, size_t{64}}) {
    std::string s = random_base32(n);
    EXPECT(s.size() == n && is_base32_lower(s), "%zu characters: '%s'", n, s.c_str());
  }
  // Rough uniformity over 64000 characters: each of the 32 about 2000 times (sigma 44; the bounds are 9 sigma).
  int counts[256] = {0};
  for (int i = 0; i < 1000; i++)
    for (char c : random_base32(64)) counts[static_cast<unsigned char>(c)]++;
  for (const char* p = "abcdefghijklmnopqrstuvwxyz234567"; *p; p++)
    EXPECT(counts[static_cast<unsigned char>(*p)] > 1600 && counts[static_cast<unsigned char>(*p)] < 2400, "'%c' %d times",
           *p, counts[static_cast<unsigned char>(*p)]);
}

void test_anonymous_user(void**) {
  std::unordered_set<std::string> ids;
  for (int i = 0; i < 1000; i++) {
    User u = anonymous_user();
    EXPECT(u.id.rfind("anon-", 0) == 0 && valid_user_id(u.id) && u.id.size() > 5, "id '%s'", u.id.c_str());
    EXPECT(u.name.rfind("guest-", 0) == 0 && u.name.size() == 10 && valid_user_name(u.name) &&
               is_base32_lower(u.name.substr(6)),
           "name '%s'", u.name.c_str());
    EXPECT(ids.insert(u.id).second, "id '%s' repeats", u.id.c_str());
  }
}

void test_valid_message_id(void**) {
  struct Row {
    const char* id;
    bool ok;
  } rows[] = {
      {"0", true},
      {"42", true},
      {"1-0", true},
      {"1700000000000-0", true},
      {"1700000000000-123", true},
      {"9999999999999999999", true},
      {"9999999999999999999-9999999999999999999", true},
      {"0000000000000000001-0", true},
      {"10000000000000000000", false},
      {"1-10000000000000000000", false},
      {"", false},
      {"-", false},
      {"1-", false},
      {"-1", false},
      {"1-2-3", false},
      {"1--2", false},
      {"a", false},
      {"1a", false},
      {"1-a", false},
      {"+1", false},
      {"1 -2", false},
      {" 1", false},
      {"1.5", false},
      {"0x10", false},
      {"$", false},
      {"*", false},
  };
  for (const Row& r : rows) EXPECT(valid_message_id(r.id) == r.ok, "'%s' want %d", r.id, r.ok);
}

int sign(int v) { return (v > 0) - (v < 0); }

void test_compare_message_ids_table(void**) {
  struct Row {
    const char* a;
    const char* b;
    int want;  // sign
  } rows[] = {
      {"1-0", "1-0", 0},
      {"1-0", "1-1", -1},
      {"1-1", "1-0", 1},
      {"2-0", "1-99", 1},
      {"9-0", "10-0", -1},
      {"10-0", "9-0", 1},
      {"1700000000000-9", "1700000000000-10", -1},
      {"1700000000001-0", "1700000000000-999", 1},
      {"1", "1-0", 0},
      {"1", "1-1", -1},
      {"2", "1-5", 1},
      {"0", "0-0", 0},
      {"007-1", "7-1", 0},
      {"9999999999999999999-0", "999999999999999999-0", 1},
      {"9999999999999999999-9999999999999999999", "9999999999999999999-9999999999999999998", 1},
      {"", "", 0},
      {"", "0", 0},
      {"", "1", -1},
  };
  for (const Row& r : rows) {
    int got = sign(compare_message_ids(r.a, r.b));
    EXPECT(got == r.want, "compare('%s','%s') = %d, want %d", r.a, r.b, got, r.want);
    int back = sign(compare_message_ids(r.b, r.a));
    EXPECT(back == -r.want, "compare('%s','%s') = %d, want %d", r.b, r.a, back, -r.want);
  }
}

// Random "<ms>-<seq>" pairs compare as the pairs of numbers do.
void test_compare_message_ids_random(void**) {
  uint64_t s = 0x9E3779B97F4A7C15ull;
  auto next = [&s] {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  };
  std::vector<std::pair<uint64_t, uint64_t>> pairs;
  for (int i = 0; i < 300; i++) {
    uint64_t ms = 1700000000000ull + next() % 5;  // many equal prefixes
    uint64_t seq = next() % 4 == 0 ? next() % 1000000000000000000ull : next() % 12;
    pairs.emplace_back(ms, seq);
  }
  int bad = 0;
  for (const auto& x : pairs) {
    for (const auto& y : pairs) {
      std::string a = std::to_string(x.first) + "-" + std::to_string(x.second);
      std::string b = std::to_string(y.first) + "-" + std::to_string(y.second);
      int want = x < y ? -1 : x > y ? 1 : 0;
      if (sign(compare_message_ids(a, b)) != want && bad++ < 3)
        EXPECT(false, "compare('%s','%s') want %d", a.c_str(), b.c_str(), want);
    }
  }
  EXPECT(bad == 0, "%d pairs in the wrong order", bad);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      TEST(test_valid_room_id),
      TEST(test_valid_user_name),
      TEST(test_new_room_id),
      TEST(test_random_base32),
      TEST(test_anonymous_user),
      TEST(test_valid_message_id),
      TEST(test_compare_message_ids_table),
      TEST(test_compare_message_ids_random),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
