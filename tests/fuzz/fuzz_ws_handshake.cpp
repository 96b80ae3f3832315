// Fuzzer 5: check_handshake (and its helpers) on every request HttpParser makes of the fuzz bytes.
// The allowed-origin list is picked by flags bits 1-2 (see http_drive.h for the input layout).
#include <string>
#include <vector>

#include "http_drive.h"
#include "protocol/ws_handshake.h"

using namespace roomcast::protocol;

namespace {

bool is_b64(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  static const std::vector<std::string> kLists[4] = {
      {}, {"*"}, {"https://example.com", "example.org:8080"}, {"http://localhost:8080", "", "a"}};
  const std::vector<std::string>& allowed = kLists[(data[2] >> 1) & 3];

  // The RFC 6455 section 1.3 example must always hold.
  static const bool rfc_ok = websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
  FUZZ_CHECK(rfc_ok, "websocket_accept fails the RFC 6455 example");

  fuzz::drive_http(data, size, [&](const HttpRequest& req, bool upgrade, const char*, size_t) {
    HandshakeVerdict v = check_handshake(req, allowed);
    bool origin_ok = origin_allowed(req, allowed);
    bool wants = wants_websocket(req);
    FUZZ_CHECK(v.status == 101 || v.status == 400 || v.status == 403 || v.status == 426, "status %d", v.status);
    FUZZ_CHECK(v.reason != nullptr, "null reason");
    if (v.status == 101) {
      FUZZ_CHECK(req.method == "GET", "101 for method '%s'", req.method.c_str());
      FUZZ_CHECK(req.http_major == 1 && req.http_minor >= 1, "101 for HTTP/%d.%d", req.http_major, req.http_minor);
      FUZZ_CHECK(wants, "101 without an Upgrade: websocket");
      const std::string* conn = req.header("connection");
      FUZZ_CHECK(conn && header_has_token(*conn, "upgrade"), "101 without Connection: upgrade");
      const std::string* ver = req.header("sec-websocket-version");
      FUZZ_CHECK(ver && trim(*ver) == "13", "101 without version 13");
      const std::string* key = req.header("sec-websocket-key");
      FUZZ_CHECK(key, "101 without a key");
      std::string_view k = trim(*key);
      FUZZ_CHECK(k.size() == 24 && k.substr(22) == "==", "101 for key '%s'", key->c_str());
      for (size_t i = 0; i < 22; i++) FUZZ_CHECK(is_b64(k[i]), "101 for key '%s'", key->c_str());
      FUZZ_CHECK(origin_ok, "101 although origin_allowed() is false");
      FUZZ_CHECK(v.accept.size() == 28 && v.accept[27] == '=', "accept '%s'", v.accept.c_str());
      for (size_t i = 0; i < 27; i++) FUZZ_CHECK(is_b64(v.accept[i]), "accept '%s'", v.accept.c_str());
      FUZZ_CHECK(v.accept == websocket_accept(k), "accept not deterministic");
    } else {
      FUZZ_CHECK(v.accept.empty(), "accept set with status %d", v.status);
    }
    if (v.status == 403) FUZZ_CHECK(!origin_ok, "403 although origin_allowed() is true");
    // The helpers on each header value never crash.
    for (const auto& [name, value] : req.headers) {
      (void)header_has_token(value, "websocket");
      (void)header_has_token(value, "");
      (void)header_has_token(value, value);
    }
    (void)upgrade;
  });
  return 0;
}
