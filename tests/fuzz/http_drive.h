// Drives HttpParser over fuzz bytes the way server/connection.cpp does: feed a chunk, and after each
// Request call next() and go on with the rest; stop at Error, at Upgrade, or when the bytes run out.
// Input layout: [chunk size a][chunk size b][flags][stream...]; flags bit 0 selects small limits.
#pragma once
#include <cctype>
#include <cstring>
#include <string>

#include "fuzz_common.h"
#include "protocol/http_parser.h"

namespace fuzz {

using roomcast::protocol::HttpLimits;
using roomcast::protocol::HttpParser;
using roomcast::protocol::HttpRequest;
using roomcast::protocol::HttpResult;

inline bool is_token_char(unsigned char c) { return std::isalnum(c) || (c && std::strchr("!#$%&'*+-.^_`|~", c)); }

// The invariants every delivered request (Request or Upgrade) must hold.
inline void check_request(const HttpRequest& r, const HttpLimits& limits) {
  FUZZ_CHECK(!r.method.empty(), "request with an empty method (target '%s')", r.target.c_str());
  FUZZ_CHECK(!r.target.empty(), "request with an empty target (method '%s')", r.method.c_str());
  // Extra: no line break or NUL survives into the request line or a header value.
  FUZZ_CHECK(r.target.find_first_of(std::string(" \r\n\0", 4)) == std::string::npos, "target with a blank/CR/LF/NUL");
  FUZZ_CHECK(r.method.find_first_of(std::string(" \r\n\0", 4)) == std::string::npos, "method with a blank/CR/LF/NUL");
  for (const auto& [name, value] : r.headers) {
    FUZZ_CHECK(value.find_first_of(std::string("\r\n\0", 3)) == std::string::npos, "header '%s' value with CR/LF/NUL",
               name.c_str());
    FUZZ_CHECK(name != "transfer-encoding", "request delivered with a transfer-encoding header ('%s')", value.c_str());
    // Extra invariants from http_parser.h's comments: names are lower-cased tokens.
    FUZZ_CHECK(!name.empty(), "request with an empty header name");
    for (unsigned char c : name) {
      FUZZ_CHECK(is_token_char(c), "header name with a non-token byte 0x%02x", c);
      FUZZ_CHECK(!(c >= 'A' && c <= 'Z'), "header name not lower-cased: '%s'", name.c_str());
    }
  }
  FUZZ_CHECK(r.headers.size() <= limits.max_headers, "%zu headers > max_headers %zu", r.headers.size(), limits.max_headers);
  // "only POST may carry a body at all", and at most max_body of it.
  FUZZ_CHECK(r.body.size() <= limits.max_body, "body of %zu bytes > max_body %zu", r.body.size(), limits.max_body);
  FUZZ_CHECK(r.body.empty() || r.method == "POST", "%s request with a %zu-byte body", r.method.c_str(), r.body.size());
}

// Calls on_request(request, is_upgrade, rest, rest_len) for each delivered request.
template <typename F>
void drive_http(const uint8_t* data, size_t size, F&& on_request) {
  if (size < 3) return;
  Splitter split;
  split.a = data[0];
  split.b = data[1];
  HttpLimits limits;
  if (data[2] & 1) {
    limits.max_head = 256;
    limits.max_headers = 4;
    limits.max_body = 16;
  }
  const char* stream = reinterpret_cast<const char*>(data + 3);
  size_t left = size - 3;

  HttpParser parser(limits);
  size_t spins = 0;
  while (left > 0) {
    size_t chunk = split.next(left);
    const char* p = stream;
    size_t n = chunk;
    stream += chunk;
    left -= chunk;
    while (n > 0) {
      FUZZ_CHECK(++spins < 100000, "no progress: HttpParser keeps returning without consuming");
      size_t used = 12345;
      HttpResult r = parser.feed(p, n, &used);
      FUZZ_CHECK(used <= n, "*consumed %zu > len %zu (result %d)", used, n, static_cast<int>(r));
      p += used;
      n -= used;
      switch (r) {
        case HttpResult::NeedMore:
          FUZZ_CHECK(n == 0, "NeedMore with %zu bytes left unconsumed", n);
          break;
        case HttpResult::Error: {
          int st = parser.error_status();
          FUZZ_CHECK(st == 400 || st == 431, "error status %d (reason '%s')", st, parser.error_reason());
          size_t again = 999;
          HttpResult r2 = parser.feed(p, n, &again);
          FUZZ_CHECK(r2 == HttpResult::Error && again == 0, "feed after Error returned %d, consumed %zu",
                     static_cast<int>(r2), again);
          return;
        }
        case HttpResult::Upgrade:
          check_request(parser.request(), limits);
          // The bytes after *consumed belong to the new protocol, wherever the chunk ended.
          on_request(parser.request(), true, p, n + left);
          return;
        case HttpResult::Request:
          check_request(parser.request(), limits);
          on_request(parser.request(), false, p, n + left);
          parser.next();
          break;
      }
      if (r == HttpResult::NeedMore) break;
    }
  }
}

}  // namespace fuzz
