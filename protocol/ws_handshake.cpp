// WebSocket opening handshake (RFC 6455 section 4): request checks, Origin policy, accept key.
// Rule: SHA-1 and base64 come from OpenSSL's libcrypto; nothing here is hand-rolled crypto.
#include "protocol/ws_handshake.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>

namespace roomcast::protocol {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// "http://Host:80" -> "host:80"; a value without "://" is taken as host[:port] already.
std::string origin_hostport(std::string_view origin) {
  size_t sep = origin.find("://");
  if (sep != std::string_view::npos) origin = origin.substr(sep + 3);
  size_t slash = origin.find('/');
  return lower(origin.substr(0, slash));
}

bool valid_key(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  unsigned char out[24];
  for (size_t i = 0; i < 22; i++) {
    unsigned char c = static_cast<unsigned char>(key[i]);
    if (!std::isalnum(c) && c != '+' && c != '/') return false;
  }
  return EVP_DecodeBlock(out, reinterpret_cast<const unsigned char*>(key.data()), 24) == 18;
}

}  // namespace

bool header_has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    if (iequals(trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

bool wants_websocket(const HttpRequest& req) {
  const std::string* upgrade = req.header("upgrade");
  return upgrade && header_has_token(*upgrade, "websocket");
}

bool origin_allowed(const HttpRequest& req, const std::vector<std::string>& allowed) {
  const std::string* origin = req.header("origin");
  if (!origin) return true;
  std::string theirs = origin_hostport(trim(*origin));
  const std::string* host = req.header("host");
  if (host && !theirs.empty() && theirs == lower(trim(*host))) return true;
  for (const std::string& a : allowed) {
    if (a == "*") return true;
    if (a.find("://") != std::string::npos ? iequals(a, trim(*origin)) : origin_hostport(a) == theirs) return true;
  }
  return false;
}

HandshakeVerdict check_handshake(const HttpRequest& req, const std::vector<std::string>& allowed_origins) {
  HandshakeVerdict v;
  const std::string* connection = req.header("connection");
  const std::string* version = req.header("sec-websocket-version");
  const std::string* key = req.header("sec-websocket-key");
  if (req.method != "GET" || req.http_major != 1 || req.http_minor < 1) {
    v.status = 400, v.reason = "WebSocket needs GET over HTTP/1.1";
  } else if (!wants_websocket(req) || !connection || !header_has_token(*connection, "upgrade")) {
    v.status = 426, v.reason = "this path speaks WebSocket only";
  } else if (!version || trim(*version) != "13") {
    v.status = 426, v.reason = "unsupported Sec-WebSocket-Version";
  } else if (!key || !valid_key(trim(*key))) {
    v.status = 400, v.reason = "Sec-WebSocket-Key is not base64 of 16 bytes";
  } else if (!origin_allowed(req, allowed_origins)) {
    v.status = 403, v.reason = "origin not allowed";
  } else {
    v.status = 101;
    v.accept = websocket_accept(trim(*key));
  }
  return v;
}

std::string websocket_accept(std::string_view key) {
  static const char kGuid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input(key);
  input += kGuid;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  unsigned char out[32];
  int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

}  // namespace roomcast::protocol
