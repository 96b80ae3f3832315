// Client addresses behind a reverse proxy: IP addresses, CIDR ranges, and the X-Forwarded-For choice.
// Rule: addresses are read by the C library's inet_pton (strict dotted quads, RFC 4291 text); nothing is guessed.
#include "protocol/client_addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace roomcast::protocol {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// A port as proxies append it: 1-5 digits, at most 65535.
bool valid_port(std::string_view s) {
  if (!all_digits(s) || s.size() > 5) return false;
  unsigned long v = 0;
  for (char c : s) v = v * 10 + static_cast<unsigned long>(c - '0');
  return v <= 65535;
}

// IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes the IPv4 address.
void unmap(IpAddr* a) {
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (a->family != 6 || memcmp(a->bytes, kMapped, 12) != 0) return;
  uint8_t v4[4];
  memcpy(v4, a->bytes + 12, 4);
  memset(a->bytes, 0, sizeof(a->bytes));
  memcpy(a->bytes, v4, 4);
  a->family = 4;
}

int family_bits(const IpAddr& a) { return a.family == 4 ? 32 : 128; }

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

}  // namespace

bool operator==(const IpAddr& a, const IpAddr& b) {
  return a.family == b.family && memcmp(a.bytes, b.bytes, sizeof(a.bytes)) == 0;
}

bool parse_ip(std::string_view text, IpAddr* out) {
  *out = IpAddr{};
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof(buf) || text.find('\0') != std::string_view::npos) return false;
  memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddr a;
  if (text.find(':') != std::string_view::npos) {
    if (inet_pton(AF_INET6, buf, a.bytes) != 1) return false;
    a.family = 6;
    unmap(&a);
  } else {
    if (inet_pton(AF_INET, buf, a.bytes) != 1) return false;
    a.family = 4;
  }
  *out = a;
  return true;
}

bool parse_forwarded_ip(std::string_view text, IpAddr* out) {
  *out = IpAddr{};
  text = trim(text);
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return false;
    std::string_view inner = text.substr(1, close - 1), after = text.substr(close + 1);
    if (inner.find(':') == std::string_view::npos) return false;  // brackets hold IPv6 only
    if (!after.empty() && (after.front() != ':' || !valid_port(after.substr(1)))) return false;
    return parse_ip(inner, out);
  }
  if (parse_ip(text, out)) return true;
  size_t colon = text.find(':');
  if (colon == std::string_view::npos || text.find(':', colon + 1) != std::string_view::npos) return false;
  if (!valid_port(text.substr(colon + 1))) return false;
  return parse_ip(text.substr(0, colon), out);  // no colon left in it: IPv4 only
}

std::string parse_cidr(std::string_view text, Cidr* out) {
  *out = Cidr{};
  size_t slash = text.find('/');
  std::string_view addr = text.substr(0, slash);
  IpAddr base;
  if (!parse_ip(addr, &base)) return quoted(text) + " is not an IPv4 or IPv6 address or CIDR range";
  const bool v6_text = addr.find(':') != std::string_view::npos;
  int prefix = v6_text ? 128 : 32;
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    if (!all_digits(p) || p.size() > 3 || (p.size() > 1 && p.front() == '0'))
      return quoted(text) + ": the prefix length after '/' must be a decimal number";
    prefix = 0;
    for (char c : p) prefix = prefix * 10 + (c - '0');
    if (prefix > (v6_text ? 128 : 32))
      return quoted(text) + ": prefix length over " + (v6_text ? "128 for IPv6" : "32 for IPv4");
  }
  if (v6_text && base.family == 4) {
    // An IPv4-mapped range (::ffff:a.b.c.d/N) is the IPv4 range of its last 32 bits.
    if (prefix < 96) return quoted(text) + ": a range of IPv4-mapped addresses needs a prefix of at least 96";
    prefix -= 96;
  }
  Cidr c;
  c.base = base;
  c.prefix = static_cast<uint8_t>(prefix);
  // Bits past the prefix must be zero: "10.0.0.1/8" names a host and is most likely a typo.
  Cidr masked = c;
  for (int bit = prefix; bit < family_bits(base); bit++) masked.base.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  if (masked.base != c.base)
    return quoted(text) + " has address bits set past the prefix (the range would be " + format_cidr(masked) + ")";
  *out = c;
  return "";
}

std::string parse_cidr_list(std::string_view text, std::vector<Cidr>* out) {
  out->clear();
  if (trim(text).empty()) return "";
  std::vector<Cidr> list;
  while (true) {
    size_t comma = text.find(',');
    std::string_view item = trim(text.substr(0, comma));
    if (item.empty()) return "an empty entry in the list";
    Cidr c;
    std::string why = parse_cidr(item, &c);
    if (!why.empty()) return why;
    list.push_back(c);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  *out = std::move(list);
  return "";
}

bool cidr_contains(const Cidr& range, const IpAddr& addr) {
  if (range.base.family == 0 || range.base.family != addr.family) return false;
  int full = range.prefix / 8, rest = range.prefix % 8;
  if (memcmp(range.base.bytes, addr.bytes, static_cast<size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff00u >> rest);
  return (range.base.bytes[full] & mask) == (addr.bytes[full] & mask);
}

bool in_ranges(const std::vector<Cidr>& ranges, const IpAddr& addr) {
  for (const Cidr& r : ranges)
    if (cidr_contains(r, addr)) return true;
  return false;
}

std::string format_ip(const IpAddr& addr) {
  char buf[INET6_ADDRSTRLEN];
  if (addr.family == 4 && inet_ntop(AF_INET, addr.bytes, buf, sizeof(buf))) return buf;
  if (addr.family == 6 && inet_ntop(AF_INET6, addr.bytes, buf, sizeof(buf))) return buf;
  return "-";
}

std::string format_cidr(const Cidr& range) { return format_ip(range.base) + "/" + std::to_string(range.prefix); }

bool ip_from_sockaddr(const struct sockaddr* sa, IpAddr* out) {
  *out = IpAddr{};
  if (!sa) return false;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    memcpy(out->bytes, &in->sin_addr, 4);
    out->family = 4;
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    memcpy(out->bytes, &in6->sin6_addr, 16);
    out->family = 6;
    unmap(out);
    return true;
  }
  return false;
}

IpAddr forwarded_client(const IpAddr& peer, const std::vector<std::string_view>& forwarded_for,
                        const std::vector<Cidr>& trusted) {
  if (!in_ranges(trusted, peer)) return peer;
  IpAddr client = peer;  // the last trusted hop so far
  for (size_t h = forwarded_for.size(); h-- > 0;) {
    std::string_view value = forwarded_for[h];
    while (true) {
      size_t comma = value.rfind(',');
      std::string_view entry = comma == std::string_view::npos ? value : value.substr(comma + 1);
      IpAddr a;
      // Not an address ("unknown", garbage): nothing to its left can be believed.
      if (!parse_forwarded_ip(entry, &a)) return client;
      client = a;
      if (!in_ranges(trusted, a)) return client;
      if (comma == std::string_view::npos) break;
      value = value.substr(0, comma);
    }
  }
  return client;
}

IpAddr client_address(const IpAddr& peer, const HttpRequest& req, const std::vector<Cidr>& trusted) {
  if (!in_ranges(trusted, peer)) return peer;
  std::vector<std::string_view> values;
  for (const auto& h : req.headers)
    if (h.first == "x-forwarded-for") values.push_back(h.second);
  return forwarded_client(peer, values, trusted);
}

}  // namespace roomcast::protocol
