// Client addresses behind a reverse proxy: IP addresses, CIDR ranges, and the X-Forwarded-For choice.
// Rule: X-Forwarded-For is believed only as far as the hops that wrote it are trusted; anything else is the peer.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/http_parser.h"

struct sockaddr;

namespace roomcast::protocol {

// An IPv4 or IPv6 address. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack socket
// reports for an IPv4 peer) is held as the IPv4 address, so IPv4 ranges match it.
struct IpAddr {
  uint8_t family = 0;      // 0: none (unknown), 4 or 6
  uint8_t bytes[16] = {};  // network order; IPv4 in the first 4 bytes, the rest zero
};

bool operator==(const IpAddr& a, const IpAddr& b);
inline bool operator!=(const IpAddr& a, const IpAddr& b) { return !(a == b); }

// A range of addresses: base with every bit past prefix zero.
struct Cidr {
  IpAddr base;         // the network address
  uint8_t prefix = 0;  // bits that must match: 0-32 (IPv4) or 0-128 (IPv6)
};

// Parses a plain address, "192.0.2.7" or "2001:db8::1" (no brackets, port, zone or leading zeros).
// Returns false for anything else.
bool parse_ip(std::string_view text, IpAddr* out);

// Parses one X-Forwarded-For entry: a plain address, "[v6]", "[v6]:port" or "v4:port" (proxies that
// append the client's port). Blanks around it are ignored. Returns false for anything else ("unknown").
bool parse_forwarded_ip(std::string_view text, IpAddr* out);

// Parses "10.0.0.0/8", "fd00::/8", or an address alone (a /32 or /128 range). Strict: the prefix is
// decimal without sign or leading zero and within the family's length, and the address has no bit set
// past the prefix ("10.0.0.1/8" is refused: it names a host, not a network). Returns "" or why not.
std::string parse_cidr(std::string_view text, Cidr* out);

// Parses a comma-separated list of parse_cidr items (blanks around items ignored; an empty item is an
// error). Returns "" or why not, naming the item. An empty text is an empty list.
std::string parse_cidr_list(std::string_view text, std::vector<Cidr>* out);

// True when addr is within range (a family never matches the other family's ranges).
bool cidr_contains(const Cidr& range, const IpAddr& addr);
// True when addr is within any of ranges.
bool in_ranges(const std::vector<Cidr>& ranges, const IpAddr& addr);

// "192.0.2.7", "2001:db8::1" (RFC 5952 form), "-" for an unknown address.
std::string format_ip(const IpAddr& addr);
// "10.0.0.0/8".
std::string format_cidr(const Cidr& range);

// Reads an AF_INET or AF_INET6 socket address. Returns false (and an unknown address) otherwise.
bool ip_from_sockaddr(const struct sockaddr* sa, IpAddr* out);

// The client's address, given the TCP peer and the X-Forwarded-For header values in the order they
// came (several headers read as one list). A peer outside trusted is the client, whatever the header
// says. Otherwise the entries are read from the right: each trusted entry hands over to the one on its
// left; the first entry that is not trusted is the client. Every entry trusted: the left-most one.
// An entry that is not an address ends the walk: the client is the last trusted hop before it.
IpAddr forwarded_client(const IpAddr& peer, const std::vector<std::string_view>& forwarded_for,
                        const std::vector<Cidr>& trusted);

// forwarded_client with the X-Forwarded-For headers of req.
IpAddr client_address(const IpAddr& peer, const HttpRequest& req, const std::vector<Cidr>& trusted);

}  // namespace roomcast::protocol
