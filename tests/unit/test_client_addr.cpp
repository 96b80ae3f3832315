// Unit tests of client addresses behind a proxy: addresses, CIDR ranges and the X-Forwarded-For choice, as tables.
// Rule: X-Forwarded-For is believed only as far as the hops that wrote it are trusted; anything else is the peer.
#include <netinet/in.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <cstring>
#include <string>
#include <vector>

#include "protocol/client_addr.h"

// cmocka last: its fail() macro would clash with names in the headers above.
#include "unit_check.h"

using namespace roomcast::protocol;

namespace {

IpAddr ip(const char* text) {
  IpAddr a;
  REQUIRE(parse_ip(text, &a), "test address %s", text);
  return a;
}

std::vector<Cidr> ranges(const char* list) {
  std::vector<Cidr> out;
  std::string why = parse_cidr_list(list, &out);
  REQUIRE(why.empty(), "test ranges %s: %s", list, why.c_str());
  return out;
}

void test_parse_ip(void**) {
  struct Row {
    const char* text;
    bool ok;
    int family;
    const char* formatted;  // format_ip of the result
  } rows[] = {
      {"192.0.2.7", true, 4, "192.0.2.7"},
      {"0.0.0.0", true, 4, "0.0.0.0"},
      {"255.255.255.255", true, 4, "255.255.255.255"},
      {"2001:db8::1", true, 6, "2001:db8::1"},
      {"2001:DB8:0:0:0:0:0:1", true, 6, "2001:db8::1"},
      {"::1", true, 6, "::1"},
      {"::", true, 6, "::"},
      {"::ffff:192.0.2.7", true, 4, "192.0.2.7"},  // IPv4-mapped: held as IPv4
      {"::ffff:c000:207", true, 4, "192.0.2.7"},
      {"::192.0.2.7", true, 6, "::192.0.2.7"},    // IPv4-compatible (deprecated) stays IPv6
      {"", false, 0, "-"},
      {"192.0.2", false, 0, "-"},
      {"192.0.2.7.1", false, 0, "-"},
      {"192.0.2.256", false, 0, "-"},
      {"192.0.2.07", false, 0, "-"},  // leading zeros (octal in some parsers) are refused
      {" 192.0.2.7", false, 0, "-"},
      {"192.0.2.7 ", false, 0, "-"},
      {"192.0.2.7:80", false, 0, "-"},
      {"[::1]", false, 0, "-"},
      {"fe80::1%eth0", false, 0, "-"},
      {"2001:db8::1::2", false, 0, "-"},
      {"2001:db8:0:0:0:0:0:0:1", false, 0, "-"},
      {"localhost", false, 0, "-"},
      {"unknown", false, 0, "-"},
      {"0x7f.0.0.1", false, 0, "-"},
      {"1234567890123456789012345678901234567890123456789", false, 0, "-"},
  };
  for (const Row& r : rows) {
    IpAddr a;
    bool ok = parse_ip(r.text, &a);
    EXPECT(ok == r.ok, "[%s] parsed %d, want %d", r.text, ok, r.ok);
    EXPECT(a.family == r.family, "[%s] family %d, want %d", r.text, a.family, r.family);
    EXPECT(format_ip(a) == r.formatted, "[%s] formatted %s, want %s", r.text, format_ip(a).c_str(), r.formatted);
  }
  // A string_view that is not NUL-terminated is read to its length only.
  IpAddr a;
  EXPECT(parse_ip(std::string_view("10.1.2.3999", 8), &a) && format_ip(a) == "10.1.2.3", "%s", format_ip(a).c_str());
  EXPECT(!parse_ip(std::string_view("10.0.0.1\0", 9), &a), "an embedded NUL is refused");
}

void test_parse_forwarded_ip(void**) {
  struct Row {
    const char* text;
    const char* want;  // nullptr: refused
  } rows[] = {
      {"203.0.113.9", "203.0.113.9"},
      {" 203.0.113.9 ", "203.0.113.9"},
      {"\t203.0.113.9", "203.0.113.9"},
      {"203.0.113.9:51234", "203.0.113.9"},  // proxies that append the port
      {"2001:db8::7", "2001:db8::7"},
      {"[2001:db8::7]", "2001:db8::7"},
      {"[2001:db8::7]:443", "2001:db8::7"},
      {"::ffff:203.0.113.9", "203.0.113.9"},
      {"unknown", nullptr},
      {"", nullptr},
      {"203.0.113.9:", nullptr},
      {"203.0.113.9:65536", nullptr},
      {"203.0.113.9:123456", nullptr},
      {"203.0.113.9:-1", nullptr},
      {"[203.0.113.9]", nullptr},
      {"[2001:db8::7", nullptr},
      {"[2001:db8::7]x", nullptr},
      {"[2001:db8::7]:", nullptr},
      {"2001:db8::7:443x", nullptr},
      {"example.com:80", nullptr},
      {"_hidden", nullptr},
      {"203.0.113.9 , 10.0.0.1", nullptr},  // one entry at a time
  };
  for (const Row& r : rows) {
    IpAddr a;
    bool ok = parse_forwarded_ip(r.text, &a);
    EXPECT(ok == (r.want != nullptr), "[%s] parsed %d", r.text, ok);
    if (r.want) EXPECT(format_ip(a) == r.want, "[%s] got %s, want %s", r.text, format_ip(a).c_str(), r.want);
  }
}

void test_parse_cidr(void**) {
  struct Row {
    const char* text;
    const char* want;   // format_cidr of the result; nullptr: refused
    const char* error;  // a part of the reason when refused
  } rows[] = {
      {"10.0.0.0/8", "10.0.0.0/8", ""},
      {"127.0.0.1/32", "127.0.0.1/32", ""},
      {"127.0.0.1", "127.0.0.1/32", ""},
      {"0.0.0.0/0", "0.0.0.0/0", ""},
      {"192.168.0.0/16", "192.168.0.0/16", ""},
      {"172.16.0.0/12", "172.16.0.0/12", ""},
      {"100.64.0.0/10", "100.64.0.0/10", ""},
      {"fd00::/8", "fd00::/8", ""},
      {"2001:db8::/32", "2001:db8::/32", ""},
      {"2001:DB8::/32", "2001:db8::/32", ""},
      {"::1", "::1/128", ""},
      {"::1/128", "::1/128", ""},
      {"::/0", "::/0", ""},
      {"::ffff:10.0.0.0/104", "10.0.0.0/8", ""},  // an IPv4-mapped range is the IPv4 range
      {"::ffff:127.0.0.1", "127.0.0.1/32", ""},
      {"10.0.0.1/8", nullptr, "bits set past the prefix (the range would be 10.0.0.0/8)"},
      {"192.168.1.1/24", nullptr, "192.168.1.0/24"},
      {"2001:db8::1/32", nullptr, "2001:db8::/32"},
      {"10.0.0.0/33", nullptr, "over 32 for IPv4"},
      {"fd00::/129", nullptr, "over 128 for IPv6"},
      {"10.0.0.0/", nullptr, "decimal"},
      {"10.0.0.0/08", nullptr, "decimal"},
      {"10.0.0.0/+8", nullptr, "decimal"},
      {"10.0.0.0/-8", nullptr, "decimal"},
      {"10.0.0.0/8/8", nullptr, "decimal"},
      {"10.0.0.0/ 8", nullptr, "decimal"},
      {"10.0.0.0/0008", nullptr, "decimal"},
      {"10.0.0.0/255.0.0.0", nullptr, "decimal"},  // netmasks are not prefixes
      {"10/8", nullptr, "not an IPv4 or IPv6 address"},
      {"10.0.0/24", nullptr, "not an IPv4 or IPv6 address"},
      {"localhost", nullptr, "not an IPv4 or IPv6 address"},
      {"", nullptr, "not an IPv4 or IPv6 address"},
      {"/8", nullptr, "not an IPv4 or IPv6 address"},
      {"*", nullptr, "not an IPv4 or IPv6 address"},
      {"[::1]/128", nullptr, "not an IPv4 or IPv6 address"},
      {"fe80::/10%eth0", nullptr, "decimal"},
      {"fd00::/7", nullptr, "fc00::/7"},
      {"::ffff:10.0.0.0/80", nullptr, "at least 96"},
  };
  for (const Row& r : rows) {
    Cidr c;
    std::string why = parse_cidr(r.text, &c);
    if (r.want) {
      EXPECT(why.empty(), "[%s] refused: %s", r.text, why.c_str());
      EXPECT(format_cidr(c) == r.want, "[%s] got %s, want %s", r.text, format_cidr(c).c_str(), r.want);
    } else {
      EXPECT(!why.empty(), "[%s] accepted as %s", r.text, format_cidr(c).c_str());
      EXPECT(why.find(r.error) != std::string::npos, "[%s] reason %s, want it to say %s", r.text, why.c_str(), r.error);
      EXPECT(why.find(r.text) != std::string::npos, "[%s] reason %s does not name the value", r.text, why.c_str());
    }
  }
}

void test_parse_cidr_list(void**) {
  struct Row {
    const char* text;
    int count;          // -1: refused
    const char* error;  // a part of the reason
  } rows[] = {
      {"127.0.0.1/32", 1, ""},
      {"127.0.0.1/32,::1", 2, ""},
      {"10.0.0.0/8, 192.168.0.0/16 ,fd00::/8", 3, ""},
      {"", 0, ""},
      {"  ", 0, ""},
      {"10.0.0.0/8,", -1, "empty entry"},
      {",10.0.0.0/8", -1, "empty entry"},
      {"10.0.0.0/8,,::1", -1, "empty entry"},
      {"10.0.0.0/8,10.0.0.1/8", -1, "'10.0.0.1/8'"},
      {"10.0.0.0/8 192.168.0.0/16", -1, "decimal"},
      {"10.0.0.0/8;192.168.0.0/16", -1, "decimal"},
  };
  for (const Row& r : rows) {
    std::vector<Cidr> list = {Cidr{}};
    std::string why = parse_cidr_list(r.text, &list);
    if (r.count >= 0) {
      EXPECT(why.empty(), "[%s] refused: %s", r.text, why.c_str());
      EXPECT(list.size() == static_cast<size_t>(r.count), "[%s] %zu ranges, want %d", r.text, list.size(), r.count);
    } else {
      EXPECT(!why.empty() && why.find(r.error) != std::string::npos, "[%s] reason '%s', want '%s'", r.text, why.c_str(),
             r.error);
      EXPECT(list.empty(), "[%s] a refused list leaves no ranges (%zu)", r.text, list.size());
    }
  }
}

void test_cidr_contains(void**) {
  struct Row {
    const char* range;
    const char* addr;
    bool in;
  } rows[] = {
      {"10.0.0.0/8", "10.0.0.0", true},
      {"10.0.0.0/8", "10.255.255.255", true},
      {"10.0.0.0/8", "11.0.0.0", false},
      {"10.0.0.0/8", "9.255.255.255", false},
      {"172.16.0.0/12", "172.31.255.255", true},
      {"172.16.0.0/12", "172.32.0.0", false},
      {"172.16.0.0/12", "172.15.255.255", false},
      {"192.168.1.128/25", "192.168.1.128", true},
      {"192.168.1.128/25", "192.168.1.127", false},
      {"192.168.1.128/25", "192.168.1.255", true},
      {"127.0.0.1/32", "127.0.0.1", true},
      {"127.0.0.1/32", "127.0.0.2", false},
      {"127.0.0.1", "127.0.0.1", true},
      {"0.0.0.0/0", "203.0.113.9", true},
      {"0.0.0.0/0", "2001:db8::1", false},  // a family never matches the other's ranges
      {"::/0", "2001:db8::1", true},
      {"::/0", "203.0.113.9", false},
      {"::/0", "::ffff:203.0.113.9", false},  // a mapped peer is IPv4: IPv4 ranges apply
      {"127.0.0.1/32", "::ffff:127.0.0.1", true},
      {"::ffff:127.0.0.0/104", "127.9.9.9", true},
      {"fd00::/8", "fd12:3456::1", true},
      {"fd00::/8", "fe00::1", false},
      {"fc00::/7", "fd12::1", true},
      {"fc00::/7", "fe00::1", false},
      {"fd00::/8", "fc00::1", false},
      {"2001:db8::/33", "2001:db8:7fff::1", true},
      {"2001:db8::/33", "2001:db8:8000::1", false},
      {"::1/128", "::1", true},
      {"::1/128", "::2", false},
      {"2001:db8::1/128", "2001:db8::1", true},
      {"2001:db8::/127", "2001:db8::1", true},
      {"2001:db8::/127", "2001:db8::2", false},
  };
  for (const Row& r : rows) {
    Cidr c;
    std::string why = parse_cidr(r.range, &c);
    REQUIRE(why.empty(), "[%s] %s", r.range, why.c_str());
    IpAddr a = ip(r.addr);
    EXPECT(cidr_contains(c, a) == r.in, "[%s in %s] want %d", r.addr, r.range, r.in);
  }
  EXPECT(!cidr_contains(Cidr{}, ip("10.0.0.1")), "an empty range holds nothing");
  EXPECT(!cidr_contains(ranges("0.0.0.0/0")[0], IpAddr{}), "an unknown address is in no range");
  EXPECT(!in_ranges({}, ip("127.0.0.1")), "no ranges: nothing is trusted");
  EXPECT(in_ranges(ranges("10.0.0.0/8,127.0.0.1"), ip("127.0.0.1")), "the second range counts");
}

void test_forwarded_client(void**) {
  struct Row {
    const char* name;
    const char* trusted;                // --trusted-proxy
    const char* peer;                   // TCP peer
    std::vector<const char*> headers;   // X-Forwarded-For values, in order
    const char* want;
  } rows[] = {
      {"no trusted proxy: the peer, whatever the header", "", "203.0.113.9", {"198.51.100.1"}, "203.0.113.9"},
      {"untrusted peer: its header is ignored", "127.0.0.1/32", "203.0.113.9", {"198.51.100.1"}, "203.0.113.9"},
      {"untrusted peer, spoofed trusted entry", "10.0.0.0/8", "203.0.113.9", {"10.0.0.5"}, "203.0.113.9"},
      {"trusted peer without the header: the peer", "127.0.0.1/32", "127.0.0.1", {}, "127.0.0.1"},
      {"trusted peer, one entry", "127.0.0.1/32", "127.0.0.1", {"198.51.100.1"}, "198.51.100.1"},
      {"spoofed left part is not believed", "127.0.0.1/32", "127.0.0.1", {"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
      {"blanks and tabs", "127.0.0.1/32", "127.0.0.1", {"1.1.1.1 ,\t198.51.100.1  "}, "198.51.100.1"},
      {"chain of trusted proxies", "10.0.0.0/8,127.0.0.1", "127.0.0.1", {"1.1.1.1, 198.51.100.1, 10.0.0.7, 10.1.2.3"},
       "198.51.100.1"},
      {"every entry trusted: the left-most", "10.0.0.0/8", "10.0.0.1", {"10.0.0.2, 10.0.0.3"}, "10.0.0.2"},
      {"several headers read as one list", "10.0.0.0/8", "10.0.0.1", {"1.1.1.1, 198.51.100.1", "10.0.0.9"},
       "198.51.100.1"},
      {"several headers, last one decides", "10.0.0.0/8", "10.0.0.1", {"1.1.1.1", "198.51.100.1"}, "198.51.100.1"},
      {"empty header from a trusted peer: the peer", "127.0.0.1/32", "127.0.0.1", {""}, "127.0.0.1"},
      {"garbage right-most: the peer", "127.0.0.1/32", "127.0.0.1", {"198.51.100.1, unknown"}, "127.0.0.1"},
      {"garbage behind a trusted hop: that hop", "10.0.0.0/8", "10.0.0.1", {"198.51.100.1, unknown, 10.0.0.4"},
       "10.0.0.4"},
      {"trailing comma: the peer", "127.0.0.1/32", "127.0.0.1", {"198.51.100.1,"}, "127.0.0.1"},
      {"with a port", "127.0.0.1/32", "127.0.0.1", {"198.51.100.1:51234"}, "198.51.100.1"},
      {"IPv6 client", "127.0.0.1/32", "127.0.0.1", {"2001:db8::42"}, "2001:db8::42"},
      {"bracketed IPv6 client with a port", "127.0.0.1/32", "127.0.0.1", {"[2001:db8::42]:9999"}, "2001:db8::42"},
      {"IPv6 proxy", "fd00::/8", "fd00::1", {"198.51.100.1"}, "198.51.100.1"},
      {"IPv4-mapped peer matches an IPv4 range", "127.0.0.1/32", "::ffff:127.0.0.1", {"198.51.100.1"},
       "198.51.100.1"},
      {"IPv4-mapped client is shown as IPv4", "127.0.0.1/32", "127.0.0.1", {"::ffff:198.51.100.1"}, "198.51.100.1"},
      {"an IPv6 range does not trust an IPv4 peer", "::/0", "127.0.0.1", {"198.51.100.1"}, "127.0.0.1"},
      {"trusted peer, untrusted client in a trusted-looking range", "127.0.0.1/32", "127.0.0.1", {"127.0.0.2"},
       "127.0.0.2"},
  };
  for (const Row& r : rows) {
    std::vector<Cidr> trusted = ranges(r.trusted);
    std::vector<std::string_view> values(r.headers.begin(), r.headers.end());
    IpAddr got = forwarded_client(ip(r.peer), values, trusted);
    EXPECT(format_ip(got) == r.want, "[%s] got %s, want %s", r.name, format_ip(got).c_str(), r.want);

    // The same through a request's headers (names lower-cased as the parser gives them).
    HttpRequest req;
    req.headers.emplace_back("host", "chat.example.com");
    for (const char* v : r.headers) {
      req.headers.emplace_back("x-forwarded-for", v);
      req.headers.emplace_back("x-other", "203.0.113.250");  // other headers in between change nothing
    }
    got = client_address(ip(r.peer), req, trusted);
    EXPECT(format_ip(got) == r.want, "[%s, request] got %s, want %s", r.name, format_ip(got).c_str(), r.want);
  }
}

void test_ip_from_sockaddr(void**) {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(443);
  inet_pton(AF_INET, "198.51.100.4", &in.sin_addr);
  IpAddr a;
  EXPECT(ip_from_sockaddr(reinterpret_cast<sockaddr*>(&in), &a) && format_ip(a) == "198.51.100.4", "%s",
         format_ip(a).c_str());
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "2001:db8::5", &in6.sin6_addr);
  EXPECT(ip_from_sockaddr(reinterpret_cast<sockaddr*>(&in6), &a) && format_ip(a) == "2001:db8::5", "%s",
         format_ip(a).c_str());
  inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
  EXPECT(ip_from_sockaddr(reinterpret_cast<sockaddr*>(&in6), &a) && a.family == 4 && format_ip(a) == "127.0.0.1",
         "%s", format_ip(a).c_str());
  sockaddr un{};
  un.sa_family = AF_UNIX;
  EXPECT(!ip_from_sockaddr(&un, &a) && a.family == 0 && format_ip(a) == "-", "AF_UNIX is no address");
  EXPECT(!ip_from_sockaddr(nullptr, &a), "null");
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      TEST(test_parse_ip),
      TEST(test_parse_forwarded_ip),
      TEST(test_parse_cidr),
      TEST(test_parse_cidr_list),
      TEST(test_cidr_contains),
      TEST(test_forwarded_client),
      TEST(test_ip_from_sockaddr),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
