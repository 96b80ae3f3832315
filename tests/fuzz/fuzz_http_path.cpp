// Fuzzer 4: static_file_path, percent_decode, query_param, split_target, content_type_for.
// Input: [selector][bytes...]; the selector picks the query name looked up.
#include <cstdlib>
#include <string>

#include "fuzz_common.h"
#include "protocol/http_path.h"

using namespace roomcast::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool strict_dots = std::getenv("FUZZ_STRICT_DOTS") != nullptr;
  if (size < 1) return 0;
  static const char* kNames[4] = {"name", "room", "", "a b"};
  std::string_view name = kNames[data[0] & 3];
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);

  std::string_view path, query;
  split_target(in, &path, &query);
  FUZZ_CHECK(path.find('?') == std::string_view::npos, "path keeps a '?'");
  FUZZ_CHECK(path.size() + (query.data() && in.find('?') != std::string_view::npos ? query.size() + 1 : 0) == in.size(),
             "split_target lost bytes");

  for (std::string_view s : {in, path}) {
    if (auto f = static_file_path(s)) {
      const std::string& r = *f;
      FUZZ_CHECK(!r.empty(), "empty file name");
      FUZZ_CHECK(r[0] != '/', "file name starts with '/': %s", r.c_str());
      FUZZ_CHECK(r.find('\\') == std::string::npos, "backslash in %s", r.c_str());
      FUZZ_CHECK(r.find('\0') == std::string::npos, "NUL in file name");
      FUZZ_CHECK(r.find("//") == std::string::npos && r.back() != '/', "empty segment in %s", r.c_str());
      for (unsigned char c : r) FUZZ_CHECK(c >= 0x20 && c != 0x7f, "control byte 0x%02x in file name", c);
      size_t start = 0;
      while (true) {
        size_t slash = r.find('/', start);
        std::string seg = r.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
        FUZZ_CHECK(!seg.empty() && seg != "." && seg != "..", "bad segment '%s' in %s", seg.c_str(), r.c_str());
        if (slash == std::string::npos) break;
        start = slash + 1;
      }
      // The stricter form "no '..' anywhere" fails for harmless names such as "a..b" (http_path.h only
      // promises no ".." segment); FUZZ_STRICT_DOTS=1 turns it on.
      if (strict_dots) FUZZ_CHECK(r.find("..") == std::string::npos, "'..' in accepted file name %s", r.c_str());
      (void)content_type_for(r);
    }
  }

  std::string out;
  for (bool plus : {false, true}) {
    if (percent_decode(in, &out, plus)) {
      FUZZ_CHECK(out.size() <= in.size(), "decoded longer than input");
      FUZZ_CHECK(out.find('\0') == std::string::npos, "percent_decode accepted a NUL");
      if (!plus && in.find('%') == std::string_view::npos) FUZZ_CHECK(out == in, "decode changed a plain string");
    }
  }
  if (auto v = query_param(query, name)) FUZZ_CHECK(v->find('\0') == std::string::npos, "NUL in a query value");
  (void)query_param(in, name);
  (void)content_type_for(in);
  return 0;
}
