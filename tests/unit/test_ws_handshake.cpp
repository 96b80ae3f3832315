// Unit tests of the WebSocket opening handshake: request tables in, statuses and accept keys out.
// Rule: a request is upgraded only when every check passes; each failing check has its own status.
#include <string>
#include <utility>
#include <vector>

#include "protocol/http_parser.h"
#include "protocol/ws_handshake.h"

// cmocka last: its fail() macro would clash with names in the headers above.
#include "unit_check.h"

using namespace roomcast::protocol;



namespace {

const char* kKey = "dGhlIHNhbXBsZSBub25jZQ==";      // RFC 6455 section 1.3
const char* kAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";  // its accept value

using Headers = std::vector<std::pair<std::string, std::string>>;

// A valid upgrade request, as the parser would produce it (names lower-cased).
HttpRequest good_request() {
  HttpRequest r;
  r.method = "GET";
  r.target = "/ws";
  r.http_major = 1;
  r.http_minor = 1;
  r.keep_alive = true;
  r.upgrade = true;
  r.headers = {{"host", "localhost:8080"},
               {"upgrade", "websocket"},
               {"connection", "Upgrade"},
               {"sec-websocket-version", "13"},
               {"sec-websocket-key", kKey}};
  return r;
}

void set_header(HttpRequest* r, const std::string& name, const char* value) {
  for (auto it = r->headers.begin(); it != r->headers.end(); ++it) {
    if (it->first == name) {
      if (value) it->second = value;
      else r->headers.erase(it);
      return;
    }
  }
  if (value) r->headers.emplace_back(name, value);
}

void test_websocket_accept(void**) {
  EXPECT(websocket_accept(kKey) == kAccept, "%s", websocket_accept(kKey).c_str());
  // A second known pair (computed independently with Python's hashlib and base64).
  EXPECT(websocket_accept("x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=", "%s",
         websocket_accept("x3JJHMbDL1EzLkh9GBhXDw==").c_str());
  EXPECT(websocket_accept(kKey).size() == 28, "accept is 28 characters");
}

void test_header_has_token(void**) {
  struct Row {
    const char* value;
    const char* token;
    bool has;
  } rows[] = {
      {"Upgrade", "upgrade", true},
      {"upgrade", "Upgrade", true},
      {"keep-alive, Upgrade", "upgrade", true},
      {"Upgrade, keep-alive", "upgrade", true},
      {"keep-alive,Upgrade", "upgrade", true},
      {"  Upgrade  ", "upgrade", true},
      {"keep-alive,\tUpgrade\t", "upgrade", true},
      {"a,,upgrade", "upgrade", true},
      {"keep-alive", "upgrade", false},
      {"Upgradex", "upgrade", false},
      {"xUpgrade", "upgrade", false},
      {"Up grade", "upgrade", false},
      {"", "upgrade", false},
      {",", "upgrade", false},
      {"h2c, websocket", "websocket", true},
  };
  for (const Row& r : rows)
    EXPECT(header_has_token(r.value, r.token) == r.has, "['%s' has '%s'] want %d", r.value, r.token, r.has);
}

void test_wants_websocket(void**) {
  struct Row {
    const char* upgrade;  // nullptr: no Upgrade header
    bool wants;
  } rows[] = {
      {"websocket", true}, {"WebSocket", true}, {"h2c, websocket", true}, {"h2c", false}, {"", false}, {nullptr, false},
  };
  for (const Row& r : rows) {
    HttpRequest req = good_request();
    set_header(&req, "upgrade", r.upgrade);
    EXPECT(wants_websocket(req) == r.wants, "[%s] want %d", r.upgrade ? r.upgrade : "(none)", r.wants);
  }
}

struct HsRow {
  const char* name;
  const char* method;
  int minor;
  Headers changes;                  // header -> value; value "\x01" removes the header
  std::vector<std::string> allowed;  // --allow-origin
  int status;                       // expected; 0 means "any refusal (4xx)"
};

void test_handshake_table(void**) {
  const char* kDel = "\x01";
  const HsRow rows[] = {
      {"valid", "GET", 1, {}, {}, 101},
      {"Connection list keep-alive, Upgrade", "GET", 1, {{"connection", "keep-alive, Upgrade"}}, {}, 101},
      {"Connection list Upgrade, keep-alive", "GET", 1, {{"connection", "Upgrade, keep-alive"}}, {}, 101},
      {"Connection lower case", "GET", 1, {{"connection", "upgrade"}}, {}, 101},
      {"Upgrade mixed case", "GET", 1, {{"upgrade", "WebSocket"}}, {}, 101},
      {"extension offer ignored", "GET", 1, {{"sec-websocket-extensions", "permessage-deflate"}}, {}, 101},
      {"blanks around the key", "GET", 1, {{"sec-websocket-key", "  dGhlIHNhbXBsZSBub25jZQ== "}}, {}, 101},
      {"blanks around the version", "GET", 1, {{"sec-websocket-version", " 13 "}}, {}, 101},
      {"POST", "POST", 1, {}, {}, 400},
      {"HEAD", "HEAD", 1, {}, {}, 400},
      {"HTTP/1.0", "GET", 0, {}, {}, 400},
      {"version 8", "GET", 1, {{"sec-websocket-version", "8"}}, {}, 426},
      {"version 12", "GET", 1, {{"sec-websocket-version", "12"}}, {}, 426},
      {"version 14", "GET", 1, {{"sec-websocket-version", "14"}}, {}, 426},
      {"version 130", "GET", 1, {{"sec-websocket-version", "130"}}, {}, 426},
      {"version empty", "GET", 1, {{"sec-websocket-version", ""}}, {}, 426},
      {"version missing", "GET", 1, {{"sec-websocket-version", kDel}}, {}, 426},
      {"key missing", "GET", 1, {{"sec-websocket-key", kDel}}, {}, 400},
      {"key empty", "GET", 1, {{"sec-websocket-key", ""}}, {}, 400},
      {"key not base64", "GET", 1, {{"sec-websocket-key", "not a key at all!!!!!!=="}}, {}, 400},
      {"key with a bad character", "GET", 1, {{"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ!="}}, {}, 400},
      {"key of 15 bytes", "GET", 1, {{"sec-websocket-key", "AAAAAAAAAAAAAAAAAAAA"}}, {}, 400},
      {"another 16-byte key", "GET", 1, {{"sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAA=="}}, {}, 101},
      {"key of 18 bytes", "GET", 1, {{"sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAAAA"}}, {}, 400},
      {"key of 17 bytes, one pad", "GET", 1, {{"sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAAA="}}, {}, 400},
      {"key without padding", "GET", 1, {{"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ"}}, {}, 400},
      {"key of 32 bytes", "GET", 1, {{"sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}, {}, 400},
      {"no Upgrade header", "GET", 1, {{"upgrade", kDel}}, {}, 0},
      {"Upgrade: h2c", "GET", 1, {{"upgrade", "h2c"}}, {}, 0},
      {"no Connection header", "GET", 1, {{"connection", kDel}}, {}, 0},
      {"Connection: keep-alive only", "GET", 1, {{"connection", "keep-alive"}}, {}, 0},
      // Origin policy.
      {"no Origin", "GET", 1, {}, {}, 101},
      {"same host:port", "GET", 1, {{"origin", "http://localhost:8080"}}, {}, 101},
      {"same host:port, https", "GET", 1, {{"origin", "https://localhost:8080"}}, {}, 101},
      {"same host:port, other case", "GET", 1, {{"origin", "http://LOCALHOST:8080"}}, {}, 101},
      {"other host", "GET", 1, {{"origin", "http://evil.example"}}, {}, 403},
      {"other port", "GET", 1, {{"origin", "http://localhost:8081"}}, {}, 403},
      {"no port vs port", "GET", 1, {{"origin", "http://localhost"}}, {}, 403},
      {"host as a prefix", "GET", 1, {{"origin", "http://localhost:8080.evil.example"}}, {}, 403},
      {"host in the path", "GET", 1, {{"origin", "http://evil.example/localhost:8080"}}, {}, 403},
      {"origin null", "GET", 1, {{"origin", "null"}}, {}, 403},
      {"origin empty", "GET", 1, {{"origin", ""}}, {}, 403},
      {"other host, allowed by origin", "GET", 1, {{"origin", "http://evil.example"}}, {"http://evil.example"}, 101},
      {"other host, allowed by host", "GET", 1, {{"origin", "http://evil.example"}}, {"evil.example"}, 101},
      {"other host, allowed by *", "GET", 1, {{"origin", "http://evil.example"}}, {"*"}, 101},
      {"other host, not in the list", "GET", 1, {{"origin", "http://evil.example"}},
       {"http://good.example", "good.example:8080"}, 403},
      {"scheme must match an allowed origin", "GET", 1, {{"origin", "http://evil.example"}}, {"https://evil.example"}, 403},
      {"port must match an allowed host", "GET", 1, {{"origin", "http://evil.example:8443"}}, {"evil.example"}, 403},
      {"second entry of the list", "GET", 1, {{"origin", "https://b.example"}}, {"https://a.example", "https://b.example"},
       101},
      // Order of checks: a bad request is refused before its Origin is judged.
      {"bad version and bad origin", "GET", 1, {{"origin", "http://evil.example"}, {"sec-websocket-version", "8"}}, {}, 426},
      {"bad key and bad origin", "GET", 1, {{"origin", "http://evil.example"}, {"sec-websocket-key", "x"}}, {}, 400},
  };
  for (const HsRow& row : rows) {
    HttpRequest req = good_request();
    req.method = row.method;
    req.http_minor = static_cast<uint8_t>(row.minor);
    for (const auto& [name, value] : row.changes) set_header(&req, name, value == kDel ? nullptr : value.c_str());
    HandshakeVerdict v = check_handshake(req, row.allowed);
    if (row.status == 0)
      EXPECT(v.status >= 400 && v.status < 500, "[%s] status %d, want a refusal", row.name, v.status);
    else
      EXPECT(v.status == row.status, "[%s] status %d (%s), want %d", row.name, v.status, v.reason, row.status);
    if (v.status == 101) {
      std::string key = *req.header("sec-websocket-key");
      key.erase(0, key.find_first_not_of(' '));
      key.erase(key.find_last_not_of(' ') + 1);
      // Independently computed accept values of the two keys that appear in passing rows.
      std::string want = key == kKey ? kAccept : key == "AAAAAAAAAAAAAAAAAAAAAA==" ? "ICX+Yqv66kxgM0FcWaLWlFLwTAI=" : "?";
      EXPECT(v.accept == want, "[%s] accept %s", row.name, v.accept.c_str());
    } else {
      EXPECT(v.reason != nullptr && v.reason[0] != '\0', "[%s] a refusal has a reason", row.name);
    }
  }
}

void test_accept_of_rfc_key(void**) {
  HandshakeVerdict v = check_handshake(good_request(), {});
  EXPECT(v.status == 101, "status %d (%s)", v.status, v.reason);
  EXPECT(v.accept == kAccept, "accept %s", v.accept.c_str());
}

// The same checks on requests that went through the real parser.
void test_handshake_from_raw_requests(void**) {
  struct Raw {
    const char* name;
    std::string head;
    int status;
  } rows[] = {
      {"browser-like", "GET /ws?room=r1 HTTP/1.1\r\nHost: localhost:8080\r\nConnection: keep-alive, Upgrade\r\n"
                       "Upgrade: websocket\r\nOrigin: http://localhost:8080\r\nSec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
       101},
      {"mixed-case names", "GET /ws HTTP/1.1\r\nHOST: a:1\r\nUPGRADE: websocket\r\nCONNECTION: Upgrade\r\n"
                           "SEC-WEBSOCKET-VERSION: 13\r\nSEC-WEBSOCKET-KEY: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
       101},
      {"cross-site", "GET /ws HTTP/1.1\r\nHost: localhost:8080\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                     "Origin: https://evil.example\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
       403},
      {"old version", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                      "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
       426},
  };
  for (const Raw& r : rows) {
    HttpParser p;
    size_t used = 0;
    HttpResult res = p.feed(r.head.data(), r.head.size(), &used);
    REQUIRE(res == HttpResult::Upgrade || res == HttpResult::Request, "[%s] parse result %d", r.name, (int)res);
    HandshakeVerdict v = check_handshake(p.request(), {});
    EXPECT(v.status == r.status, "[%s] status %d (%s), want %d", r.name, v.status, v.reason, r.status);
    if (r.status == 101) EXPECT(v.accept == kAccept, "[%s] accept %s", r.name, v.accept.c_str());
  }
}

// origin_allowed alone, as POST /create-room uses it.
void test_origin_allowed(void**) {
  struct Row {
    const char* host;    // nullptr: no Host header
    const char* origin;  // nullptr: no Origin header
    std::vector<std::string> allowed;
    bool ok;
  } rows[] = {
      {"localhost:8080", nullptr, {}, true},
      {nullptr, nullptr, {}, true},
      {"localhost:8080", "http://localhost:8080", {}, true},
      {"LocalHost:8080", "http://localhost:8080", {}, true},
      {"localhost:8080", "http://localhost:9090", {}, false},
      {nullptr, "http://localhost:8080", {}, false},
      {nullptr, "http://localhost:8080", {"*"}, true},
      {"a.example", "https://a.example", {}, true},
      {"a.example", "https://b.example", {}, false},
      {"a.example", "https://b.example", {"b.example"}, true},
      {"a.example", "https://b.example", {"https://b.example"}, true},
      {"a.example", "https://b.example", {"HTTPS://B.EXAMPLE"}, true},
      {"a.example", "https://b.example", {"c.example", "*"}, true},
      {"a.example", "https://b.example", {"c.example"}, false},
      {"a.example", "https://b.example", {"b.example.c"}, false},
      {"a.example", "https://b.example", {""}, false},
      // Behind a TLS proxy (nginx, HAProxy) that passes Host as the browser sent it: a page at
      // https://chat.example.com[:port] sends that Origin and that Host; the scheme is not compared.
      {"chat.example.com", "https://chat.example.com", {}, true},
      {"chat.example.com:8443", "https://chat.example.com:8443", {}, true},
      {"Chat.Example.com", "https://chat.example.COM", {}, true},
      {"chat.example.com", "https://chat.example.com.evil.example", {}, false},
      {"chat.example.com", "https://evil.example", {}, false},
      // A proxy that drops the port from Host (nginx's $host) breaks a page on a non-default port:
      // the proxy must pass Host unchanged ($http_host), as deploy/nginx/roomcast.conf does.
      {"chat.example.com", "https://chat.example.com:8443", {}, false},
      // A proxy that rewrites Host to the upstream's name makes every browser origin foreign.
      {"roomcast_instances", "https://chat.example.com", {}, false},
  };
  for (const Row& r : rows) {
    HttpRequest req;
    req.method = "POST";
    req.http_major = req.http_minor = 1;
    if (r.host) req.headers.emplace_back("host", r.host);
    if (r.origin) req.headers.emplace_back("origin", r.origin);
    EXPECT(origin_allowed(req, r.allowed) == r.ok, "[host %s, origin %s, %zu allowed] want %d", r.host ? r.host : "-",
           r.origin ? r.origin : "-", r.allowed.size(), r.ok);
  }
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      TEST(test_websocket_accept),
      TEST(test_header_has_token),
      TEST(test_wants_websocket),
      TEST(test_handshake_table),
      TEST(test_accept_of_rfc_key),
      TEST(test_handshake_from_raw_requests),
      TEST(test_origin_allowed),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
