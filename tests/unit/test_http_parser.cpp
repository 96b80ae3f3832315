// Unit tests of the HTTP request-head parser: tables of raw requests in, requests or error statuses out.
// Rule: every row is fed whole, one byte at a time and in odd-sized pieces, and all three must agree.
#include <cstdio>
#include <string>
#include <vector>

#include "protocol/http_parser.h"

// cmocka last: its fail() macro would clash with names in the headers above.
#include "unit_check.h"

using roomcast::protocol::HttpLimits;
using roomcast::protocol::HttpParser;
using roomcast::protocol::HttpRequest;
using roomcast::protocol::HttpResult;



namespace {

const char* result_name(HttpResult r) {
  switch (r) {
    case HttpResult::NeedMore: return "NeedMore";
    case HttpResult::Request: return "Request";
    case HttpResult::Upgrade: return "Upgrade";
    case HttpResult::Error: return "Error";
  }
  return "?";
}

// What a connection would see after feeding `in` in pieces of `chunk` bytes: every request (the
// parser is advanced with next() after each), where each ended, and how feeding stopped.
struct Outcome {
  std::vector<HttpRequest> requests;
  std::vector<size_t> ends;     // offset in the input right after each request (or the upgrade head)
  HttpResult last = HttpResult::NeedMore;
  int status = 0;               // error status when last is Error
  bool in_progress = false;     // parser's view at the end (NeedMore only)
};

Outcome drive(const std::string& in, size_t chunk, HttpLimits limits = {}) {
  HttpParser p(limits);
  Outcome o;
  size_t off = 0;
  size_t fed_end = 0;  // bytes handed to the parser so far (a piece may be fed again after a Request)
  int stalls = 0;
  while (off < in.size()) {
    size_t n = std::min(chunk, in.size() - off);
    // After a Request in the middle of a piece, the rest of that piece is fed again, as a connection does.
    if (off < fed_end) n = fed_end - off;
    size_t used = 12345678;
    HttpResult r = p.feed(in.data() + off, n, &used);
    EXPECT(used <= n, "consumed %zu of %zu", used, n);
    o.last = r;
    if (r == HttpResult::NeedMore) {
      EXPECT(used == n, "NeedMore must consume everything (%zu of %zu)", used, n);
      off += n;
      fed_end = off;
      continue;
    }
    if (r == HttpResult::Error) {
      o.status = p.error_status();
      EXPECT(p.error_reason() != nullptr && p.error_reason()[0] != '\0', "an error has a reason");
      // Errors are sticky.
      size_t again = 0;
      EXPECT(p.feed("GET / HTTP/1.1\r\n\r\n", 18, &again) == HttpResult::Error, "error must stick");
      return o;
    }
    o.requests.push_back(p.request());
    o.ends.push_back(off + used);
    if (fed_end < off + n) fed_end = off + n;
    off += used;
    if (r == HttpResult::Upgrade) return o;
    stalls = used == 0 ? stalls + 1 : 0;
    EXPECT(stalls < 2, "no progress at offset %zu", off);
    p.next();
    EXPECT(!p.in_progress(), "next() starts afresh");
  }
  o.in_progress = p.in_progress();
  return o;
}

void expect_same(const Outcome& a, const Outcome& b, const char* name, size_t chunk) {
  EXPECT(a.last == b.last, "[%s] chunk %zu: %s vs %s", name, chunk, result_name(a.last), result_name(b.last));
  EXPECT(a.status == b.status, "[%s] chunk %zu: status %d vs %d", name, chunk, a.status, b.status);
  EXPECT(a.requests.size() == b.requests.size(), "[%s] chunk %zu: %zu vs %zu requests", name, chunk,
         a.requests.size(), b.requests.size());
  EXPECT(a.ends == b.ends, "[%s] chunk %zu: request ends differ", name, chunk);
  for (size_t i = 0; i < a.requests.size(); i++) {
    const HttpRequest &x = a.requests[i], &y = b.requests[i];
    EXPECT(x.method == y.method && x.target == y.target && x.headers == y.headers && x.body == y.body &&
               x.keep_alive == y.keep_alive && x.upgrade == y.upgrade && x.http_major == y.http_major &&
               x.http_minor == y.http_minor,
           "[%s] chunk %zu: request %zu differs", name, chunk, i);
  }
}

// Feeds whole, byte by byte and in pieces of 3 and 7; all must agree. Returns the whole-feed outcome.
Outcome drive_all(const std::string& in, const char* name, HttpLimits limits = {}) {
  Outcome whole = drive(in, in.size() ? in.size() : 1, limits);
  for (size_t chunk : {size_t{1}, size_t{3}, size_t{7}}) expect_same(whole, drive(in, chunk, limits), name, chunk);
  return whole;
}

std::string header_dump(const HttpRequest& r) {
  std::string s;
  for (const auto& [k, v] : r.headers) s += k + ": " + (v.size() > 40 ? v.substr(0, 40) + "..." : v) + " | ";
  return s;
}

// ---- table: requests that parse -------------------------------------------------------------

struct OkRow {
  const char* name;
  std::string input;
  HttpResult last;                 // Request (all complete), NeedMore (last one incomplete) or Upgrade
  std::vector<const char*> methods_targets;  // "GET /" per complete request
  std::vector<size_t> ends;        // where each request ends
};

const std::string kGet = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";  // 27 bytes
constexpr size_t kAll = SIZE_MAX;  // in a row's ends: the end of the input

// A string literal with its NUL bytes.
template <size_t N>
std::string bytes(const char (&s)[N]) {
  return std::string(s, N - 1);
}

void test_ok_table(void**) {
  const std::string post5 = "POST /create-room HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
  const std::string post_cr = "POST /create-room HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\na\rb";
  const OkRow rows[] = {
      {"simple GET", kGet, HttpResult::Request, {"GET /"}, {kGet.size()}},
      {"GET with query", "GET /rooms/x?y=1 HTTP/1.1\r\nHost: a\r\n\r\n", HttpResult::Request, {"GET /rooms/x?y=1"}, {kAll}},
      {"two pipelined GETs", "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n", HttpResult::Request,
       {"GET /a", "GET /b"}, {28, 56}},
      {"three pipelined, last incomplete", kGet + kGet + "GET /c HTTP/1.1\r\nHo", HttpResult::NeedMore,
       {"GET /", "GET /"}, {27, 54}},
      {"POST with body then GET", post5 + kGet, HttpResult::Request, {"POST /create-room", "GET /"},
       {post5.size(), post5.size() + kGet.size()}},
      {"a CR in a body is not a bare CR of the head", post_cr, HttpResult::Request, {"POST /create-room"}, {post_cr.size()}},
      {"GET with Content-Length 0", "GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", HttpResult::Request, {"GET /"}, {kAll}},
      {"empty header value", "GET / HTTP/1.1\r\nX-Empty:\r\nHost: a\r\n\r\n", HttpResult::Request, {"GET /"}, {kAll}},
      {"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", HttpResult::Request, {"GET /"}, {kAll}},
      {"only a partial request line", "GET /x HTT", HttpResult::NeedMore, {}, {}},
      {"head without the final CRLF", "GET / HTTP/1.1\r\nHost: a\r\n", HttpResult::NeedMore, {}, {}},
      {"POST waiting for its body", "POST /create-room HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", HttpResult::NeedMore, {}, {}},
      {"token characters in names", "GET / HTTP/1.1\r\nX!#$%&'*+-.^_`|~09az: 1\r\n\r\n", HttpResult::Request, {"GET /"}, {kAll}},
  };
  for (const OkRow& row : rows) {
    Outcome o = drive_all(row.input, row.name);
    EXPECT(o.last == row.last, "[%s] got %s (status %d), want %s", row.name, result_name(o.last), o.status,
           result_name(row.last));
    EXPECT(o.requests.size() == row.methods_targets.size(), "[%s] %zu requests", row.name, o.requests.size());
    for (size_t i = 0; i < o.requests.size(); i++) {
      std::string mt = o.requests[i].method + " " + o.requests[i].target;
      EXPECT(mt == row.methods_targets[i], "[%s] request %zu is '%s'", row.name, i, mt.c_str());
    }
    std::vector<size_t> ends = row.ends;
    for (size_t& e : ends)
      if (e == kAll) e = row.input.size();
    EXPECT(o.ends == ends, "[%s] request ends differ (first %zu)", row.name, o.ends.empty() ? 0 : o.ends[0]);
    if (row.last == HttpResult::NeedMore) EXPECT(o.in_progress, "[%s] a partial request is in progress", row.name);
  }
}

void test_fresh_parser_not_in_progress(void**) {
  HttpParser p;
  EXPECT(!p.in_progress(), "fresh parser");
  size_t used = 1;
  EXPECT(p.feed("", 0, &used) == HttpResult::NeedMore && used == 0, "empty feed");
  EXPECT(!p.in_progress(), "nothing fed yet");
  EXPECT(p.feed("G", 1, &used) == HttpResult::NeedMore && used == 1, "one byte");
  EXPECT(p.in_progress(), "a started request is in progress");
}

void test_request_fields(void**) {
  std::string in =
      "GET /ws?room=r1&name=Bob HTTP/1.1\r\n"
      "Host: example.com:8080\r\n"
      "X-Mixed-CASE: Value With  Spaces\r\n"
      "Accept: */*\r\n"
      "X-Dup: 1\r\n"
      "X-Dup: 2\r\n"
      "\r\n";
  Outcome o = drive_all(in, "fields");
  REQUIRE(o.last == HttpResult::Request && o.requests.size() == 1, "got %s", result_name(o.last));
  const HttpRequest& r = o.requests[0];
  EXPECT(r.method == "GET", "%s", r.method.c_str());
  EXPECT(r.target == "/ws?room=r1&name=Bob", "%s", r.target.c_str());
  EXPECT(r.http_major == 1 && r.http_minor == 1, "%d.%d", r.http_major, r.http_minor);
  REQUIRE(r.headers.size() == 5, "%zu headers: %s", r.headers.size(), header_dump(r).c_str());
  EXPECT(r.headers[0].first == "host" && r.headers[0].second == "example.com:8080", "%s", header_dump(r).c_str());
  EXPECT(r.headers[1].first == "x-mixed-case" && r.headers[1].second == "Value With  Spaces", "%s",
         header_dump(r).c_str());
  EXPECT(r.header("x-mixed-case") != nullptr && *r.header("x-mixed-case") == "Value With  Spaces", "lookup");
  EXPECT(r.header("X-Mixed-CASE") == nullptr, "lookup takes lower-case names");
  EXPECT(r.header("x-dup") && *r.header("x-dup") == "1", "first of duplicates");
  EXPECT(r.header("missing") == nullptr, "missing header");
  EXPECT(r.keep_alive, "HTTP/1.1 defaults to keep-alive");
  EXPECT(!r.upgrade, "no upgrade");
  EXPECT(r.body.empty(), "no body");
}

void test_post_body(void**) {
  std::string body(1024, 'b');
  body[0] = '{';
  std::string in = "POST /create-room HTTP/1.1\r\nHost: a\r\nContent-Length: 1024\r\n\r\n" + body;
  Outcome o = drive_all(in, "1 KiB body");
  REQUIRE(o.last == HttpResult::Request && o.requests.size() == 1, "got %s status %d", result_name(o.last), o.status);
  EXPECT(o.requests[0].body == body, "body of %zu bytes", o.requests[0].body.size());
  EXPECT(o.ends[0] == in.size(), "ends at %zu", o.ends[0]);
}

void test_api_post_body(void**) {
  std::string body(64 * 1024, 'b');
  std::string in = "POST /api/publish HTTP/1.1\r\nHost: a\r\nContent-Length: 65536\r\n\r\n" + body + kGet;
  Outcome o = drive_all(in, "64 KiB API body then GET");
  REQUIRE(o.requests.size() == 2, "got %s status %d after %zu requests", result_name(o.last), o.status, o.requests.size());
  EXPECT(o.requests[0].body == body, "body of %zu bytes", o.requests[0].body.size());
  EXPECT(o.requests[1].target == "/" && o.requests[1].body.empty(), "the pipelined GET is its own request");
}

void test_keep_alive_table(void**) {
  struct Row {
    const char* head;
    bool keep_alive;
  } rows[] = {
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n", false},
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
  };
  for (const Row& row : rows) {
    Outcome o = drive_all(row.head, row.head);
    REQUIRE(o.last == HttpResult::Request && o.requests.size() == 1, "[%s] %s", row.head, result_name(o.last));
    EXPECT(o.requests[0].keep_alive == row.keep_alive, "[%s] keep_alive %d", row.head, o.requests[0].keep_alive);
  }
}

// ---- table: requests that are refused -------------------------------------------------------

struct ErrRow {
  const char* name;
  std::string input;
  int status;
  size_t requests_before = 0;  // complete requests answered before the bad one
};

void test_error_table(void**) {
  const ErrRow rows[] = {
      {"not HTTP", "HELLO\r\n\r\n", 400},
      {"lower-case method", "get / HTTP/1.1\r\n\r\n", 400},
      {"CVE-2023-30589: bare CR ends a header value",
       "GET / HTTP/1.1\r\nHost: a\r\nx:\rTransfer-Encoding: chunked\r\n\r\n", 400},
      {"CVE-2023-30589 on a POST", "POST /create-room HTTP/1.1\r\nHost: a\r\nx:\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"bare CR in the request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"bare CR after the version", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400},
      {"bare CR inside a value", "GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 400},
      {"bare CR inside a name", "GET / HTTP/1.1\r\nX\r-A: a\r\n\r\n", 400},
      {"CR CR LF", "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", 400},
      {"bare CR in the second pipelined request", kGet + "GET / HTTP/1.1\r\nx:\rTransfer-Encoding: chunked\r\n\r\n", 400, 1},
      {"Transfer-Encoding chunked", "POST /create-room HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"Transfer-Encoding identity on GET", "GET / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 400},
      {"transfer-encoding in lower case", "GET / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n", 400},
      {"Transfer-Encoding with Content-Length",
       "POST /create-room HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", 400},
      {"body on GET", "GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 400},
      {"body on PUT", "PUT /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", 400},
      {"POST body over 1 KiB", "POST /create-room HTTP/1.1\r\nContent-Length: 1025\r\n\r\n" + std::string(1025, 'x'), 400},
      {"POST announcing a huge body", "POST /create-room HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 400},
      {"two Content-Lengths", "POST /create-room HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
      {"API POST body over 64 KiB", "POST /api/publish HTTP/1.1\r\nContent-Length: 65537\r\n\r\n" + std::string(65537, 'x'), 413},
      {"API POST announcing a huge body", "POST /api/publish HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413},
      {"API POST with Transfer-Encoding", "POST /api/publish HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"API POST with TE and a huge length", "POST /api/publish HTTP/1.1\r\nContent-Length: 99999999\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"body on an API GET", "GET /api/rooms/r HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", 400},
      {"/apix is not the API", "POST /apix HTTP/1.1\r\nContent-Length: 1025\r\n\r\n" + std::string(1025, 'x'), 400},
      {"space in a header name", "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400},
      {"space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
      {"empty header name", "GET / HTTP/1.1\r\n: x\r\n\r\n", 400},
      {"'@' in a header name", "GET / HTTP/1.1\r\nx@y: 1\r\n\r\n", 400},
      {"'(' in a header name", "GET / HTTP/1.1\r\na(b: 1\r\n\r\n", 400},
      {"'\"' in a header name", "GET / HTTP/1.1\r\na\"b: 1\r\n\r\n", 400},
      {"'/' in a header name", "GET / HTTP/1.1\r\na/b: 1\r\n\r\n", 400},
      {"'{' in a header name", "GET / HTTP/1.1\r\na{b: 1\r\n\r\n", 400},
      {"'=' in a header name", "GET / HTTP/1.1\r\na=b: 1\r\n\r\n", 400},
      {"byte 0x80 in a header name", "GET / HTTP/1.1\r\na\x80z: 1\r\n\r\n", 400},
      {"NUL in a header name", bytes("GET / HTTP/1.1\r\na\0b: 1\r\n\r\n"), 400},
      {"bad name in the second pipelined request", kGet + "GET / HTTP/1.1\r\nx@y: 1\r\n\r\n", 400, 1},
      {"bad version", "GET / HTTP/x.y\r\n\r\n", 400},
  };
  for (const ErrRow& row : rows) {
    Outcome o = drive_all(row.input, row.name);
    EXPECT(o.last == HttpResult::Error, "[%s] got %s after %zu requests", row.name, result_name(o.last),
           o.requests.size());
    EXPECT(o.status == row.status, "[%s] status %d, want %d", row.name, o.status, row.status);
    EXPECT(o.requests.size() == row.requests_before, "[%s] %zu requests before the error", row.name, o.requests.size());
  }
}

// Empty lines before a request line are allowed (RFC 9112 section 2.2); they must not switch the checks off.
void test_leading_empty_lines_keep_the_checks(void**) {
  const ErrRow rows[] = {
      {"CRLF CRLF then CVE-2023-30589", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nx:\rTransfer-Encoding: chunked\r\n\r\n", 400},
      {"CRLF CRLF then a bare CR in a value", "\r\n\r\nGET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 400},
      {"CRLF CRLF then a 17 KiB head",
       "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(17 * 1024, 'p') + "\r\n\r\n", 431},
      {"after a keep-alive request: CRLF CRLF then CVE-2023-30589",
       kGet + "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nx:\rTransfer-Encoding: chunked\r\n\r\n", 400, 1},
  };
  for (const ErrRow& row : rows) {
    Outcome o = drive_all(row.input, row.name);
    EXPECT(o.last == HttpResult::Error, "[%s] got %s after %zu requests (last target '%s', headers: %s)", row.name,
           result_name(o.last), o.requests.size(), o.requests.empty() ? "" : o.requests.back().target.c_str(),
           o.requests.empty() ? "" : header_dump(o.requests.back()).c_str());
    EXPECT(o.status == row.status, "[%s] status %d, want %d", row.name, o.status, row.status);
    EXPECT(o.requests.size() == row.requests_before, "[%s] %zu requests", row.name, o.requests.size());
  }
  // A single empty line before a request is harmless and accepted.
  Outcome o = drive_all("\r\n" + kGet, "one CRLF first");
  EXPECT(o.last == HttpResult::Request && o.requests.size() == 1, "got %s status %d", result_name(o.last), o.status);
}

// A head of exactly `total` bytes (request line + headers + final CRLF CRLF).
std::string head_of_size(size_t total) {
  std::string start = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
  std::string end = "\r\n\r\n";
  return start + std::string(total - start.size() - end.size(), 'p') + end;
}

void test_head_size_limit(void**) {
  std::string at = head_of_size(16 * 1024);
  EXPECT(at.size() == 16384, "%zu", at.size());
  Outcome o = drive_all(at, "16384-byte head");
  EXPECT(o.last == HttpResult::Request, "16384-byte head: %s status %d", result_name(o.last), o.status);

  for (size_t size : {size_t{16385}, size_t{16386}, size_t{16387}, size_t{20000}}) {
    std::string over = head_of_size(size);
    o = drive_all(over, "oversized head");
    EXPECT(o.last == HttpResult::Error && o.status == 431, "%zu-byte head: %s status %d, want 431", size,
           result_name(o.last), o.status);
  }

  // A head that never ends is refused once it passes the limit, without waiting for its end.
  std::string endless = "GET / HTTP/1.1\r\nX-Pad: " + std::string(20000, 'p');
  o = drive_all(endless, "endless head");
  EXPECT(o.last == HttpResult::Error && o.status == 431, "endless head: %s status %d", result_name(o.last), o.status);

  // Many short headers count towards the same limit (and the limit is per request).
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 90; i++) many += "X-H" + std::to_string(i) + ": " + std::string(200, 'v') + "\r\n";
  many += "\r\n";
  o = drive_all(many, "90 headers of 200 bytes");
  EXPECT(o.last == HttpResult::Error && o.status == 431, "%zu-byte head: %s status %d", many.size(),
         result_name(o.last), o.status);
  o = drive_all(kGet + at + at, "three requests near the limit each");
  EXPECT(o.last == HttpResult::Request && o.requests.size() == 3, "%s status %d, %zu requests", result_name(o.last),
         o.status, o.requests.size());
}

void test_custom_head_limit(void**) {
  HttpLimits small;
  small.max_head = 64;
  std::string at = head_of_size(64), over = head_of_size(65);
  Outcome o = drive_all(at, "64 of 64", small);
  EXPECT(o.last == HttpResult::Request, "64-byte head with limit 64: %s status %d", result_name(o.last), o.status);
  o = drive_all(over, "65 of 64", small);
  EXPECT(o.last == HttpResult::Error && o.status == 431, "65-byte head with limit 64: %s status %d",
         result_name(o.last), o.status);
}

std::string head_with_headers(size_t n) {
  std::string s = "GET / HTTP/1.1\r\n";
  for (size_t i = 0; i < n; i++) s += "X-H" + std::to_string(i) + ": v\r\n";
  return s + "\r\n";
}

void test_header_count_limit(void**) {
  Outcome o = drive_all(head_with_headers(100), "100 headers");
  REQUIRE(o.last == HttpResult::Request && o.requests.size() == 1, "100 headers: %s status %d", result_name(o.last),
         o.status);
  EXPECT(o.requests[0].headers.size() == 100, "%zu headers kept", o.requests[0].headers.size());
  o = drive_all(head_with_headers(101), "101 headers");
  EXPECT(o.last == HttpResult::Error && o.status == 431, "101 headers: %s status %d", result_name(o.last), o.status);
  // The count starts again for each keep-alive request.
  o = drive_all(head_with_headers(100) + head_with_headers(100), "100 + 100 headers");
  EXPECT(o.last == HttpResult::Request && o.requests.size() == 2, "%s status %d", result_name(o.last), o.status);

  HttpLimits few;
  few.max_headers = 2;
  o = drive_all(head_with_headers(2), "2 of 2", few);
  EXPECT(o.last == HttpResult::Request, "2 headers with limit 2: %s", result_name(o.last));
  o = drive_all(head_with_headers(3), "3 of 2", few);
  EXPECT(o.last == HttpResult::Error && o.status == 431, "3 headers with limit 2: %s %d", result_name(o.last), o.status);
}

// ---- upgrade ---------------------------------------------------------------------------------

const std::string kUpgradeHead =
    "GET /ws?room=r1 HTTP/1.1\r\n"
    "Host: localhost:8080\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "\r\n";

void test_upgrade_keeps_following_bytes(void**) {
  // A masked text frame "Hello" (RFC 6455 section 5.7) sent right behind the head.
  const std::string frame = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
  for (const std::string& tail : {std::string(), frame, frame + frame + "GET / HTTP/1.1\r\n\r\n"}) {
    std::string in = kUpgradeHead + tail;
    Outcome o = drive_all(in, "upgrade");
    EXPECT(o.last == HttpResult::Upgrade, "got %s status %d", result_name(o.last), o.status);
    REQUIRE(o.requests.size() == 1 && o.requests[0].upgrade, "upgrade flag");
    EXPECT(o.ends.size() == 1 && o.ends[0] == kUpgradeHead.size(), "consumed up to %zu, head is %zu",
           o.ends.empty() ? 0 : o.ends[0], kUpgradeHead.size());
    EXPECT(o.requests[0].target == "/ws?room=r1", "%s", o.requests[0].target.c_str());
    EXPECT(o.requests[0].header("sec-websocket-key") && *o.requests[0].header("sec-websocket-key") ==
                                                            "dGhlIHNhbXBsZSBub25jZQ==",
           "key header");
  }
  // A direct check of *consumed in a single feed.
  HttpParser p;
  std::string in = kUpgradeHead + frame;
  size_t used = 0;
  REQUIRE(p.feed(in.data(), in.size(), &used) == HttpResult::Upgrade, "single feed");
  EXPECT(used == kUpgradeHead.size(), "consumed %zu, want %zu", used, kUpgradeHead.size());
  EXPECT(in.substr(used) == frame, "the frame bytes follow");
}

void test_upgrade_after_keep_alive_request(void**) {
  std::string in = kGet + kUpgradeHead + "\x81\x80";
  Outcome o = drive_all(in, "GET then upgrade");
  REQUIRE(o.last == HttpResult::Upgrade && o.requests.size() == 2, "%s with %zu requests", result_name(o.last),
         o.requests.size());
  EXPECT(o.ends.size() == 2 && o.ends[0] == kGet.size() && o.ends[1] == kGet.size() + kUpgradeHead.size(),
         "ends %zu %zu", o.ends.size() > 0 ? o.ends[0] : 0, o.ends.size() > 1 ? o.ends[1] : 0);
  EXPECT(!o.requests[0].upgrade && o.requests[1].upgrade, "flags");
}

void test_next_clears_request(void**) {
  HttpParser p;
  std::string in = "POST /create-room HTTP/1.1\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nhiGET /b HTTP/1.1\r\n\r\n";
  size_t used = 0;
  REQUIRE(p.feed(in.data(), in.size(), &used) == HttpResult::Request, "first");
  EXPECT(p.request().body == "hi" && p.request().header("x-a"), "first request's fields");
  p.next();
  EXPECT(p.request().method.empty() && p.request().target.empty() && p.request().headers.empty() &&
             p.request().body.empty(),
         "next() clears the request");
  size_t used2 = 0;
  EXPECT(p.feed(in.data() + used, in.size() - used, &used2) == HttpResult::Request, "second");
  EXPECT(p.request().target == "/b" && p.request().body.empty() && !p.request().header("x-a"), "second request's fields");
  EXPECT(used + used2 == in.size(), "all consumed");
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      TEST(test_ok_table),
      TEST(test_fresh_parser_not_in_progress),
      TEST(test_request_fields),
      TEST(test_post_body),
      TEST(test_api_post_body),
      TEST(test_keep_alive_table),
      TEST(test_error_table),
      TEST(test_leading_empty_lines_keep_the_checks),
      TEST(test_head_size_limit),
      TEST(test_custom_head_limit),
      TEST(test_header_count_limit),
      TEST(test_upgrade_keeps_following_bytes),
      TEST(test_upgrade_after_keep_alive_request),
      TEST(test_next_clears_request),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
