// Unit tests of the request-target helpers: split, percent-decode, query parameters, static paths.
// Rule: every path that could leave the static folder, plain or percent-encoded, must be refused.
#include <optional>
#include <string>

#include "protocol/http_path.h"

// cmocka last: its fail() macro would clash with names in the headers above.
#include "unit_check.h"

using namespace roomcast::protocol;



namespace {

template <size_t N>
std::string bytes(const char (&s)[N]) {
  return std::string(s, N - 1);
}

std::string show(const std::optional<std::string>& v) { return v ? "\"" + *v + "\"" : std::string("nullopt"); }

void test_split_target(void**) {
  struct Row {
    const char* target;
    const char* path;
    const char* query;
  } rows[] = {
      {"/a/b?x=1", "/a/b", "x=1"},
      {"/", "/", ""},
      {"/?", "/", ""},
      {"/ws?room=a&name=b", "/ws", "room=a&name=b"},
      {"/a?b?c", "/a", "b?c"},
      {"", "", ""},
      {"?x", "", "x"},
      {"/a%3Fb", "/a%3Fb", ""},
  };
  for (const Row& r : rows) {
    std::string_view path = "junk", query = "junk";
    split_target(r.target, &path, &query);
    EXPECT(path == r.path && query == r.query, "[%s] -> '%.*s' '%.*s'", r.target, (int)path.size(), path.data(),
           (int)query.size(), query.data());
  }
}

void test_percent_decode(void**) {
  struct Row {
    std::string in;
    bool plus_is_space;
    bool ok;
    std::string out;
  } rows[] = {
      {"abc", false, true, "abc"},
      {"", false, true, ""},
      {"a%20b", false, true, "a b"},
      {"%41%42%43", false, true, "ABC"},
      {"%4a%4A", false, true, "JJ"},
      {"%e2%82%ac", false, true, "\xe2\x82\xac"},
      {"%2e%2e%2f", false, true, "../"},
      {"%25", false, true, "%"},
      {"%2541", false, true, "%41"},  // decoded once, never again
      {"a+b", false, true, "a+b"},
      {"a+b", true, true, "a b"},
      {"%2B", true, true, "+"},
      {"%", false, false, ""},
      {"%4", false, false, ""},
      {"a%", false, false, ""},
      {"a%4", false, false, ""},
      {"%zz", false, false, ""},
      {"%g0", false, false, ""},
      {"%0g", false, false, ""},
      {"%%41", false, false, ""},
      {"%00", false, false, ""},
      {"a%00b", true, false, ""},
      {bytes("a\0b"), false, false, ""},
      {"%ff", false, true, "\xff"},  // bytes, not text: judged by whoever uses them
  };
  for (const Row& r : rows) {
    std::string out = "stale";
    bool ok = percent_decode(r.in, &out, r.plus_is_space);
    EXPECT(ok == r.ok, "[%s] ok=%d", r.in.c_str(), ok);
    if (ok && r.ok) EXPECT(out == r.out, "[%s] -> '%s', want '%s'", r.in.c_str(), out.c_str(), r.out.c_str());
  }
}

void test_query_param(void**) {
  struct Row {
    const char* query;
    const char* name;
    std::optional<std::string> value;
  } rows[] = {
      {"room=abc&name=Bob", "room", "abc"},
      {"room=abc&name=Bob", "name", "Bob"},
      {"room=abc&name=Bob", "nam", std::nullopt},
      {"room=abc&name=Bob", "ame", std::nullopt},
      {"room=abc&name=Bob", "x", std::nullopt},
      {"", "room", std::nullopt},
      {"name=Bob+Smith", "name", "Bob Smith"},
      {"name=Bob%20Smith", "name", "Bob Smith"},
      {"name=%E2%82%AC", "name", "\xe2\x82\xac"},
      {"name=a%2Bb", "name", "a+b"},
      {"name=a%26b&room=c", "name", "a&b"},
      {"name=a%3Db", "name", "a=b"},
      {"name=a=b", "name", "a=b"},
      {"room", "room", ""},
      {"room=", "room", ""},
      {"a=1&a=2", "a", "1"},
      {"&&room=r&", "room", "r"},
      {"ro%6Fm=r", "room", "r"},
      {"room=%zz", "room", std::nullopt},
      {"room=%00", "room", std::nullopt},
      {"x=%zz&room=r", "room", "r"},
  };
  for (const Row& r : rows) {
    std::optional<std::string> v = query_param(r.query, r.name);
    EXPECT(v == r.value, "[%s / %s] -> %s, want %s", r.query, r.name, show(v).c_str(), show(r.value).c_str());
  }
}

void test_static_file_path_accepts(void**) {
  struct Row {
    const char* path;
    const char* file;
  } rows[] = {
      {"/", "index.html"},
      {"/index.html", "index.html"},
      {"/app.js", "app.js"},
      {"/css/site.css", "css/site.css"},
      {"/a/b/c.txt", "a/b/c.txt"},
      {"/my%20file.txt", "my file.txt"},
      {"/a+b.txt", "a+b.txt"},          // '+' is a space only in queries
      {"/%252e%252e/x", "%2e%2e/x"},    // decoded once: a file literally named "%2e%2e"
      {"/...", "..."},
      {"/a..b", "a..b"},
      {"/a.", "a."},
  };
  for (const Row& r : rows) {
    std::optional<std::string> f = static_file_path(r.path);
    EXPECT(f && *f == r.file, "[%s] -> %s, want \"%s\"", r.path, show(f).c_str(), r.file);
  }
}

void test_static_file_path_refuses(void**) {
  const std::string rows[] = {
      "",
      "index.html",
      "../etc/passwd",
      "/..",
      "/../",
      "/../etc/passwd",
      "/a/../b",
      "/a/..",
      "/.",
      "/./index.html",
      "/a/./b",
      "//etc/passwd",
      "/a//b",
      "/a/",
      "/%2e%2e",
      "/%2e%2e/etc/passwd",
      "/%2E%2E/etc/passwd",
      "/%2e%2E%2fetc%2fpasswd",
      "/..%2fetc%2fpasswd",
      "/%2e./etc/passwd",
      "/.%2e/etc/passwd",
      "/a%2f..%2f..%2fetc%2fpasswd",
      "/a/%2e%2e/%2e%2e/etc/passwd",
      "/%2e",
      "/%2f",
      "/%2fetc%2fpasswd",
      "/a%2f",
      "/a\\b",
      "/..\\..\\win.ini",
      "/%5c..%5cwin.ini",
      "/a%5cb",
      "/a%00b",
      "/%00",
      bytes("/a\0b"),
      "/a%0ab",
      "/a%0db",
      "/a%09b",
      "/a%7fb",
      "/a\x01" "b",
      "/a%1fb",
      "/a%",
      "/a%2",
      "/a%zz",
  };
  for (const std::string& p : rows) {
    std::optional<std::string> f = static_file_path(p);
    EXPECT(!f, "[%s] must be refused, got %s", p.c_str(), show(f).c_str());
  }
}

void test_content_type(void**) {
  struct Row {
    const char* name;
    const char* type;
  } rows[] = {
      {"index.html", "text/html; charset=utf-8"},
      {"app.js", "text/javascript; charset=utf-8"},
      {"css/site.css", "text/css; charset=utf-8"},
      {"data.json", "application/json"},
      {"logo.svg", "image/svg+xml"},
      {"a.png", "image/png"},
      {"favicon.ico", "image/x-icon"},
      {"notes.txt", "text/plain; charset=utf-8"},
      {"site.webmanifest", "application/manifest+json"},
      {".js", "text/javascript; charset=utf-8"},
      {"noext", "application/octet-stream"},
      {"", "application/octet-stream"},
      {"index.html.bak", "application/octet-stream"},
      {"archive.tar.gz", "application/octet-stream"},
      {"html", "application/octet-stream"},
      {"a.jsx", "application/octet-stream"},
  };
  for (const Row& r : rows) {
    const char* t = content_type_for(r.name);
    EXPECT(t && std::string(t) == r.type, "[%s] -> %s, want %s", r.name, t ? t : "(null)", r.type);
  }
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      TEST(test_split_target),
      TEST(test_percent_decode),
      TEST(test_query_param),
      TEST(test_static_file_path_accepts),
      TEST(test_static_file_path_refuses),
      TEST(test_content_type),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
