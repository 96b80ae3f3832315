// redis/url.cpp: parses redis:// URLs into a Url.
// Rule: all-or-nothing: a malformed URL is an error value and leaves the output untouched.
#include <cctype>
#include <string>
#include <string_view>

#include "redis/client.h"

namespace roomcast::redis {
namespace {

bool parse_uint(std::string_view s, long max, long* out) {
  if (s.empty() || s.size() > 10) return false;
  long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX-decodes userinfo parts (passwords often carry reserved characters).
bool percent_decode(std::string_view s, std::string* out) {
  out->clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out->push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return false;
    int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

}  // namespace

int parse_url(std::string_view text, Url* out) {
  if (out == nullptr) return kErrInvalid;
  constexpr std::string_view kScheme = "redis://";
  if (text.size() < kScheme.size()) return kErrInvalid;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != kScheme[i]) return kErrInvalid;
  }
  std::string_view rest = text.substr(kScheme.size());
  Url url;
  url.password.clear();

  // userinfo: everything before the last '@' ("user:password", ":password" or "password").
  size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view info = rest.substr(0, at);
    rest = rest.substr(at + 1);
    size_t colon = info.find(':');
    std::string_view pass = info;
    if (colon != std::string_view::npos) {
      if (!percent_decode(info.substr(0, colon), &url.user)) return kErrInvalid;
      pass = info.substr(colon + 1);
    }
    if (!percent_decode(pass, &url.password)) return kErrInvalid;
  }

  std::string_view hostport = rest, path;
  size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    path = rest.substr(slash + 1);
  }

  std::string_view host = hostport, port;
  if (!hostport.empty() && hostport[0] == '[') {  // [IPv6]
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) return kErrInvalid;
    host = hostport.substr(1, close - 1);
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return kErrInvalid;
      port = after.substr(1);
      if (port.empty()) return kErrInvalid;
    }
  } else {
    size_t colon = hostport.find(':');
    if (colon != std::string_view::npos) {
      host = hostport.substr(0, colon);
      port = hostport.substr(colon + 1);
      if (port.empty()) return kErrInvalid;
    }
  }
  if (host.empty()) return kErrInvalid;
  for (char c : host) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == '@' || c == '/' || c == '?' || c == '#') {
      return kErrInvalid;
    }
  }
  url.host.assign(host.data(), host.size());

  long v = 0;
  if (!port.empty()) {
    if (!parse_uint(port, 65535, &v) || v == 0) return kErrInvalid;
    url.port = static_cast<int>(v);
  }
  if (!path.empty()) {
    if (!parse_uint(path, 1000000, &v)) return kErrInvalid;
    url.db = static_cast<int>(v);
  }
  *out = std::move(url);
  return kOk;
}

}  // namespace roomcast::redis
