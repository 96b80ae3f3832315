// Unit tests of UTF-8 validation: a table of byte strings in, valid or not out.
// Rule: every class of invalid sequence (overlong, surrogate, beyond U+10FFFF, truncated, stray) has a row.
#include <string>

#include "protocol/utf8.h"

// cmocka last: its fail() macro would clash with names in the headers above.
#include "unit_check.h"

using namespace roomcast::protocol;

namespace {

template <size_t N>
std::string bytes(const char (&s)[N]) {
  return std::string(s, N - 1);
}

void test_valid_utf8(void**) {
  struct Row {
    std::string in;
    bool ok;
    const char* what;
  } rows[] = {
      {"", true, "empty"},
      {"hello", true, "ASCII"},
      {bytes("a\0b"), true, "NUL is a character"},
      {"\x7f", true, "DEL"},
      {"\xc2\x80", true, "U+0080"},
      {"\xc3\xa9", true, "U+00E9"},
      {"\xdf\xbf", true, "U+07FF"},
      {"\xe0\xa0\x80", true, "U+0800"},
      {"\xe2\x82\xac", true, "euro"},
      {"\xed\x9f\xbf", true, "U+D7FF"},
      {"\xee\x80\x80", true, "U+E000"},
      {"\xef\xbf\xbd", true, "U+FFFD"},
      {"\xef\xbf\xbf", true, "U+FFFF"},
      {"\xf0\x90\x80\x80", true, "U+10000"},
      {"\xf0\x9f\x98\x80", true, "emoji"},
      {"\xf4\x8f\xbf\xbf", true, "U+10FFFF"},
      {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true, "Greek (Autobahn 6.2.1)"},
      {"\xc0\x80", false, "overlong NUL"},
      {"\xc0\xaf", false, "overlong /"},
      {"\xc1\xbf", false, "overlong U+007F"},
      {"\xe0\x80\x80", false, "overlong 3-byte NUL"},
      {"\xe0\x9f\xbf", false, "overlong U+07FF"},
      {"\xf0\x80\x80\x80", false, "overlong 4-byte NUL"},
      {"\xf0\x8f\xbf\xbf", false, "overlong U+FFFF"},
      {"\xed\xa0\x80", false, "surrogate U+D800"},
      {"\xed\xaf\xbf", false, "surrogate U+DBFF"},
      {"\xed\xb0\x80", false, "surrogate U+DC00"},
      {"\xed\xbf\xbf", false, "surrogate U+DFFF"},
      {"\xed\xa0\x80\xed\xb0\x80", false, "surrogate pair in CESU-8"},
      {"\xf4\x90\x80\x80", false, "U+110000"},
      {"\xf5\x80\x80\x80", false, "F5 lead"},
      {"\xf7\xbf\xbf\xbf", false, "U+1FFFFF"},
      {"\xf8\x88\x80\x80\x80", false, "5-byte form"},
      {"\xfc\x84\x80\x80\x80\x80", false, "6-byte form"},
      {"\xfe", false, "FE"},
      {"\xff", false, "FF"},
      {"\x80", false, "lone continuation"},
      {"\xbf", false, "lone continuation BF"},
      {"a\x80", false, "continuation after ASCII"},
      {"\xc3", false, "truncated 2-byte"},
      {"\xe2\x82", false, "truncated 3-byte"},
      {"\xe2", false, "truncated 3-byte, lead only"},
      {"\xf0\x9f\x98", false, "truncated 4-byte"},
      {"hello\xf0\x9f", false, "truncated at the end"},
      {"\xc3" "a", false, "2-byte lead then ASCII"},
      {"\xe2\x82" "a", false, "3-byte sequence cut by ASCII"},
      {bytes("\xc3\0"), false, "2-byte lead then NUL"},
      {"\xc3\xa9\xc3", false, "valid then truncated"},
      {"\xc3\xa9\xc3\xa9", true, "two 2-byte"},
  };
  for (const Row& r : rows) EXPECT(valid_utf8(r.in) == r.ok, "[%s] want %d", r.what, r.ok);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      TEST(test_valid_utf8),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
