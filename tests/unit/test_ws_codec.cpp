// Unit tests of WebSocket framing: tables of raw client frames in, events or close codes out.
// Rule: every row gives the same result fed whole, split at every byte boundary, and byte by byte;
// and a decoder between frames holds no wslay context.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "protocol/ws_codec.h"

// cmocka last: its fail() macro would clash with names in the headers above.
#include "unit_check.h"

using namespace roomcast::protocol;



namespace {

template <size_t N>
std::string bytes(const char (&s)[N]) {
  return std::string(s, N - 1);
}

// ---- frame builders ---------------------------------------------------------------------------

const uint8_t kMaskKey[4] = {0x37, 0xfa, 0x21, 0x3d};  // RFC 6455 section 5.7's example key

// Length field of a frame header: 7-bit, or 126 + 16 bits, or 127 + 64 bits (minimal unless forced).
enum LenForm { kLenAuto, kLen16, kLen64 };

std::string header(uint8_t b0, uint64_t len, bool masked = true, LenForm form = kLenAuto) {
  std::string h(1, static_cast<char>(b0));
  uint8_t m = masked ? 0x80 : 0;
  if (form == kLen64 || (form == kLenAuto && len >= 65536)) {
    h += static_cast<char>(m | 127);
    for (int i = 7; i >= 0; i--) h += static_cast<char>((len >> (8 * i)) & 0xff);
  } else if (form == kLen16 || (form == kLenAuto && len >= 126)) {
    h += static_cast<char>(m | 126);
    h += static_cast<char>((len >> 8) & 0xff);
    h += static_cast<char>(len & 0xff);
  } else {
    h += static_cast<char>(m | len);
  }
  if (masked) h.append(reinterpret_cast<const char*>(kMaskKey), 4);
  return h;
}

// A complete client frame: b0 is FIN|RSV|opcode, the payload is masked unless masked is false.
std::string frame(uint8_t b0, const std::string& payload, bool masked = true, LenForm form = kLenAuto) {
  std::string f = header(b0, payload.size(), masked, form);
  for (size_t i = 0; i < payload.size(); i++)
    f += masked ? static_cast<char>(payload[i] ^ kMaskKey[i % 4]) : payload[i];
  return f;
}

std::string close_payload(uint16_t code, const std::string& reason = "") {
  std::string p;
  p += static_cast<char>(code >> 8);
  p += static_cast<char>(code & 0xff);
  return p + reason;
}

// A deterministic printable payload of n bytes.
std::string filler(size_t n) {
  std::string s(n, 'a');
  for (size_t i = 0; i < n; i++) s[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
  return s;
}

// ---- event recorder ---------------------------------------------------------------------------

struct Recorder {
  std::string log;       // events as "T:text|P:..|O:..|C:code:reason|"
  bool stopped = false;  // the sink returned false (after a Close)
};

std::string describe_payload(std::string_view p) {
  if (p.size() <= 40) return std::string(p);
  uint32_t h = 2166136261u;  // FNV-1a, to tell long payloads apart in one short string
  for (unsigned char c : p) h = (h ^ c) * 16777619u;
  char buf[48];
  snprintf(buf, sizeof buf, "[%zu bytes %08x]", p.size(), h);
  return buf;
}

bool record(void* user, const WsEvent& e) {
  auto* r = static_cast<Recorder*>(user);
  REQUIRE(!r->stopped, "the decoder called the sink after it asked to stop");
  switch (e.type) {
    case WsEventType::Text: r->log += "T:" + describe_payload(e.payload) + "|"; break;
    case WsEventType::Ping: r->log += "P:" + describe_payload(e.payload) + "|"; break;
    case WsEventType::Pong: r->log += "O:" + describe_payload(e.payload) + "|"; break;
    case WsEventType::Close:
      r->log += "C:" + std::to_string(e.close_code) + ":" + describe_payload(e.payload) + "|";
      r->stopped = true;
      return false;
  }
  return true;
}

struct Result {
  int code = 0;
  std::string log;
};

// Feeds the pieces to one decoder, stopping at a close code or a stopping sink, and checks that
// the pool gets its context back at the end.
Result run(const std::vector<std::string>& pieces, const WsLimits& limits) {
  WsFramePool pool;
  WsDecoder dec;
  Recorder rec;
  Result res;
  for (const std::string& p : pieces) {
    res.code = dec.feed(pool, limits, reinterpret_cast<const uint8_t*>(p.data()), p.size(), record, &rec);
    if (res.code || rec.stopped) break;
  }
  if (res.code || rec.stopped) {
    EXPECT(!dec.holds_context() && pool.lent_contexts() == 0, "a failed or stopped decoder gives its context back");
  }
  dec.reset(pool);
  EXPECT(pool.lent_contexts() == 0, "lent %zu after reset", pool.lent_contexts());
  res.log = rec.log;
  return res;
}

std::vector<std::string> split_at(const std::string& s, size_t k) { return {s.substr(0, k), s.substr(k)}; }

std::vector<std::string> one_by_one(const std::string& s) {
  std::vector<std::string> v;
  for (char c : s) v.emplace_back(1, c);
  return v;
}

struct FrameRow {
  const char* name;
  std::string input;
  int code;           // expected close code (0: none)
  std::string log;    // expected events
  WsLimits limits = {};
};

WsLimits limits(size_t max_message, size_t max_fragments = 1024) {
  WsLimits l;
  l.max_message = max_message;
  l.max_fragments = max_fragments;
  return l;
}

void check_rows(const std::vector<FrameRow>& rows) {
  for (const FrameRow& row : rows) {
    Result whole = run({row.input}, row.limits);
    EXPECT(whole.code == row.code && whole.log == row.log, "[%s] whole: code %d events '%s', want %d '%s'", row.name,
           whole.code, whole.log.c_str(), row.code, row.log.c_str());
    Result bytewise = run(one_by_one(row.input), row.limits);
    EXPECT(bytewise.code == row.code && bytewise.log == row.log, "[%s] byte by byte: code %d events '%s'", row.name,
           bytewise.code, bytewise.log.c_str());
    // Every split point for small rows; for big ones the first and last 64 and a spread in between.
    size_t n = row.input.size();
    int bad_splits = 0;
    for (size_t k = 1; k < n; k++) {
      if (n > 400 && k > 64 && k + 64 < n && k % 997 != 0) continue;
      Result r = run(split_at(row.input, k), row.limits);
      if (r.code != row.code || r.log != row.log) {
        if (bad_splits++ < 3)
          EXPECT(false, "[%s] split at %zu: code %d events '%s'", row.name, k, r.code, r.log.c_str());
      }
    }
    EXPECT(bad_splits == 0, "[%s] %d split points gave another result", row.name, bad_splits);
  }
}

// ---- tables -----------------------------------------------------------------------------------

void test_valid_frames(void**) {
  const std::string rfc_hello = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";  // RFC 6455 section 5.7
  std::vector<FrameRow> rows = {
      {"RFC masked text Hello", rfc_hello, 0, "T:Hello|"},
      {"built masked text Hello", frame(0x81, "Hello"), 0, "T:Hello|"},
      {"two texts in one read", frame(0x81, "a") + frame(0x81, "bc"), 0, "T:a|T:bc|"},
      {"empty text", frame(0x81, ""), 0, "T:|"},
      {"UTF-8 text", frame(0x81, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"), 0,
       "T:h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80|"},
      {"text with a NUL byte", frame(0x81, bytes("a\0b")), 0, bytes("T:a\0b|")},
      {"fragmented with an interleaved ping", frame(0x01, "Hel") + frame(0x89, "p") + frame(0x80, "lo"), 0,
       "P:p|T:Hello|"},
      {"three fragments and a pong", frame(0x01, "a") + frame(0x00, "b") + frame(0x8A, "q") + frame(0x80, "c"), 0,
       "O:q|T:abc|"},
      {"empty fragments", frame(0x01, "") + frame(0x00, "") + frame(0x80, "x"), 0, "T:x|"},
      {"all fragments empty", frame(0x01, "") + frame(0x80, ""), 0, "T:|"},
      {"UTF-8 sequence split across fragments", frame(0x01, "\xe2\x82") + frame(0x80, "\xac"), 0, "T:\xe2\x82\xac|"},
      {"ping", frame(0x89, "abc"), 0, "P:abc|"},
      {"empty ping", frame(0x89, ""), 0, "P:|"},
      {"ping of 125 bytes", frame(0x89, filler(125)), 0, "P:" + describe_payload(filler(125)) + "|"},
      {"ping with binary payload", frame(0x89, bytes("\xff\x00\xfe")), 0, bytes("P:\xff\x00\xfe|")},
      {"pong", frame(0x8A, "abc"), 0, "O:abc|"},
      {"125-byte text (7-bit length)", frame(0x81, filler(125)), 0, "T:" + describe_payload(filler(125)) + "|"},
      {"126-byte text (16-bit length)", frame(0x81, filler(126)), 0, "T:" + describe_payload(filler(126)) + "|"},
      {"65535-byte text", frame(0x81, filler(65535)), 0, "T:" + describe_payload(filler(65535)) + "|"},
      {"65536-byte text (64-bit length) at max_message", frame(0x81, filler(65536)), 0,
       "T:" + describe_payload(filler(65536)) + "|"},
      {"fragmented message of exactly max_message", frame(0x01, "12345") + frame(0x80, "67890"), 0, "T:1234567890|",
       limits(10)},
      {"max_fragments frames", frame(0x01, "a") + frame(0x00, "b") + frame(0x80, "c"), 0, "T:abc|", limits(100, 3)},
      {"control frames do not count as fragments",
       frame(0x01, "a") + frame(0x89, "1") + frame(0x00, "b") + frame(0x89, "2") + frame(0x80, "c"), 0,
       "P:1|P:2|T:abc|", limits(100, 3)},
      {"fragment count starts again per message",
       frame(0x01, "a") + frame(0x00, "b") + frame(0x80, "c") + frame(0x01, "d") + frame(0x00, "e") + frame(0x80, "f"),
       0, "T:abc|T:def|", limits(100, 3)},
      {"size starts again per message", frame(0x81, "1234567890") + frame(0x81, "1234567890"), 0,
       "T:1234567890|T:1234567890|", limits(10)},
      {"close 1000 with a reason", frame(0x88, close_payload(1000, "bye")), 0, "C:1000:bye|"},
      {"close without payload", frame(0x88, ""), 0, "C:1005:|"},
      {"close 1001", frame(0x88, close_payload(1001)), 0, "C:1001:|"},
      {"close 1011", frame(0x88, close_payload(1011)), 0, "C:1011:|"},
      {"close 3000", frame(0x88, close_payload(3000)), 0, "C:3000:|"},
      {"close 4999 with a UTF-8 reason", frame(0x88, close_payload(4999, "\xc3\xa9t\xc3\xa9")), 0, "C:4999:\xc3\xa9t\xc3\xa9|"},
      {"nothing is read after a close", frame(0x89, "x") + frame(0x88, close_payload(1000)) + frame(0x81, "late"), 0,
       "P:x|C:1000:|"},
      {"close in the middle of a fragmented message", frame(0x01, "ab") + frame(0x88, close_payload(1000)), 0,
       "C:1000:|"},
  };
  check_rows(rows);
}

void test_protocol_errors(void**) {
  std::vector<FrameRow> rows = {
      {"unmasked text", frame(0x81, "Hello", false), 1002, ""},
      {"unmasked empty text", frame(0x81, "", false), 1002, ""},
      {"unmasked ping", frame(0x89, "x", false), 1002, ""},
      {"unmasked close", frame(0x88, close_payload(1000), false), 1002, ""},
      {"unmasked continuation", frame(0x01, "a") + frame(0x80, "b", false), 1002, ""},
      {"RSV1", frame(0xC1, "Hello"), 1002, ""},
      {"RSV2", frame(0xA1, "Hello"), 1002, ""},
      {"RSV3", frame(0x91, "Hello"), 1002, ""},
      {"RSV1 on a ping", frame(0xC9, "x"), 1002, ""},
      {"RSV1 on a continuation", frame(0x01, "a") + frame(0xC0, "b"), 1002, ""},
      {"opcode 3", frame(0x83, "x"), 1002, ""},
      {"opcode 4", frame(0x84, "x"), 1002, ""},
      {"opcode 5", frame(0x85, "x"), 1002, ""},
      {"opcode 6", frame(0x86, "x"), 1002, ""},
      {"opcode 7", frame(0x87, "x"), 1002, ""},
      {"opcode 0xB", frame(0x8B, "x"), 1002, ""},
      {"opcode 0xC", frame(0x8C, "x"), 1002, ""},
      {"opcode 0xD", frame(0x8D, "x"), 1002, ""},
      {"opcode 0xE", frame(0x8E, "x"), 1002, ""},
      {"opcode 0xF", frame(0x8F, "x"), 1002, ""},
      {"empty frame with opcode 3", frame(0x83, ""), 1002, ""},
      {"continuation without a start", frame(0x80, "x"), 1002, ""},
      {"non-final continuation without a start", frame(0x00, "x"), 1002, ""},
      {"continuation after a complete message", frame(0x81, "a") + frame(0x80, "b"), 1002, "T:a|"},
      {"text while a message is open", frame(0x01, "a") + frame(0x81, "b"), 1002, ""},
      {"fragmented ping", frame(0x09, "x"), 1002, ""},
      {"fragmented close", frame(0x08, close_payload(1000)), 1002, ""},
      {"ping of 126 bytes", frame(0x89, filler(126)), 1002, ""},
      {"close of 126 bytes", frame(0x88, close_payload(1000, filler(124))), 1002, ""},
      {"close with a 1-byte payload", frame(0x88, "\x03"), 1002, ""},
      {"close code 0", frame(0x88, close_payload(0)), 1002, ""},
      {"close code 999", frame(0x88, close_payload(999)), 1002, ""},
      {"close code 1004", frame(0x88, close_payload(1004)), 1002, ""},
      {"close code 1005", frame(0x88, close_payload(1005)), 1002, ""},
      {"close code 1006", frame(0x88, close_payload(1006)), 1002, ""},
      {"close code 1015", frame(0x88, close_payload(1015)), 1002, ""},
      {"close code 2999", frame(0x88, close_payload(2999)), 1002, ""},
      {"close code 5000", frame(0x88, close_payload(5000)), 1002, ""},
      {"close code 65535", frame(0x88, close_payload(65535)), 1002, ""},
      {"16-bit length form for 5 bytes", frame(0x81, "hello", true, kLen16), 1002, ""},
      {"64-bit length form for 200 bytes", frame(0x81, filler(200), true, kLen64), 1002, ""},
      {"64-bit length with the top bit set", header(0x81, 0x8000000000000000ull) + "abcd", 1002, ""},
      {"events before the error are delivered", frame(0x81, "ok") + frame(0x89, "p") + frame(0xC1, "x"), 1002,
       "T:ok|P:p|"},
  };
  check_rows(rows);
}

void test_unsupported_and_invalid_data(void**) {
  std::vector<FrameRow> rows = {
      {"binary", frame(0x82, "\x01\x02"), 1003, ""},
      {"empty binary", frame(0x82, ""), 1003, ""},
      {"fragmented binary", frame(0x02, "ab") + frame(0x80, "cd"), 1003, ""},
      {"binary after a text", frame(0x81, "a") + frame(0x82, "b"), 1003, "T:a|"},
      {"text 0xFF", frame(0x81, "\xff"), 1007, ""},
      {"text with an overlong slash", frame(0x81, "a\xc0\xaf"), 1007, ""},
      {"text with a surrogate", frame(0x81, "\xed\xa0\x80"), 1007, ""},
      {"text above U+10FFFF", frame(0x81, "\xf4\x90\x80\x80"), 1007, ""},
      {"text ending inside a sequence", frame(0x81, "ab\xe2\x82"), 1007, ""},
      {"lone continuation byte", frame(0x81, "\x80"), 1007, ""},
      {"fragmented, invalid across fragments", frame(0x01, "\xe2\x82") + frame(0x80, "("), 1007, ""},
      {"fragmented, last fragment truncated", frame(0x01, "ok") + frame(0x80, "\xc3"), 1007, ""},
      {"fragmented, ping in between, invalid", frame(0x01, "\xff") + frame(0x89, "p") + frame(0x80, "a"), 1007, "P:p|"},
      {"close reason not UTF-8", frame(0x88, close_payload(1000, "\xff")), 1007, ""},
      {"close reason truncated", frame(0x88, close_payload(1000, "\xe2\x82")), 1007, ""},
  };
  check_rows(rows);
}

void test_too_big(void**) {
  std::vector<FrameRow> rows = {
      {"65537-byte text with default limits", frame(0x81, filler(65537)), 1009, ""},
      {"11 bytes over a limit of 10", frame(0x81, "12345678901"), 1009, "", limits(10)},
      {"fragments adding up past the limit", frame(0x01, "12345") + frame(0x80, "678901"), 1009, "", limits(10)},
      {"a later message past the limit", frame(0x81, "ok") + frame(0x81, "12345678901"), 1009, "T:ok|", limits(10)},
      {"one fragment too many", frame(0x01, "a") + frame(0x00, "b") + frame(0x00, "c") + frame(0x80, "d"), 1009, "",
       limits(100, 3)},
      {"too many empty fragments", frame(0x01, "") + frame(0x00, "") + frame(0x00, "") + frame(0x00, ""), 1009, "",
       limits(100, 3)},
      {"2^40-byte frame with its first payload bytes", header(0x81, 1ull << 40) + "abcdefgh", 1009, ""},
      {"2^40-byte frame: the header alone", header(0x81, 1ull << 40), 1009, ""},
      {"2^40-byte continuation: the header alone", frame(0x01, "a") + header(0x80, 1ull << 40), 1009, ""},
  };
  check_rows(rows);
}

// The brief case of section 6: a frame announcing 2^40 bytes is refused when its header arrives.
void test_huge_frame_refused_at_header(void**) {
  WsFramePool pool;
  std::string h = header(0x81, 1ull << 40);
  REQUIRE(h.size() == 14, "header of %zu bytes", h.size());
  {
    WsDecoder dec;
    Recorder rec;
    int code = dec.feed(pool, WsLimits{}, reinterpret_cast<const uint8_t*>(h.data()), h.size(), record, &rec);
    EXPECT(code == kCloseTooBig, "header alone: code %d, want 1009 (holds_context %d)", code, dec.holds_context());
    dec.reset(pool);
  }
  {
    WsDecoder dec;
    Recorder rec;
    std::string in = h + filler(8000);
    int code = dec.feed(pool, WsLimits{}, reinterpret_cast<const uint8_t*>(in.data()), in.size(), record, &rec);
    EXPECT(code == kCloseTooBig, "header + 8000 bytes: code %d", code);
    EXPECT(rec.log.empty() && !dec.mid_message() && !dec.holds_context(), "nothing kept (%s)", rec.log.c_str());
    dec.reset(pool);
  }
  EXPECT(pool.lent_contexts() == 0, "lent %zu", pool.lent_contexts());
}

// ---- context lending --------------------------------------------------------------------------

void feed(WsDecoder& dec, WsFramePool& pool, const std::string& s, Recorder* rec, int want = 0,
          const WsLimits& l = WsLimits{}) {
  int code = dec.feed(pool, l, reinterpret_cast<const uint8_t*>(s.data()), s.size(), record, rec);
  EXPECT(code == want, "feed of %zu bytes: code %d, want %d", s.size(), code, want);
}

void test_context_only_mid_frame(void**) {
  WsFramePool pool;
  WsDecoder dec;
  Recorder rec;
  EXPECT(!dec.holds_context() && !dec.mid_message(), "fresh decoder");
  std::string f = frame(0x81, "Hello");
  feed(dec, pool, f, &rec);
  EXPECT(!dec.holds_context() && pool.lent_contexts() == 0 && pool.idle_contexts() == 1,
         "after a complete frame: holds %d lent %zu idle %zu", dec.holds_context(), pool.lent_contexts(),
         pool.idle_contexts());
  EXPECT(!dec.mid_message(), "no message open");

  feed(dec, pool, f.substr(0, 1), &rec);  // one header byte
  EXPECT(dec.holds_context() && pool.lent_contexts() == 1 && pool.idle_contexts() == 0, "mid-header: holds %d lent %zu",
         dec.holds_context(), pool.lent_contexts());
  feed(dec, pool, f.substr(1, 7), &rec);  // rest of the header and two payload bytes
  EXPECT(dec.holds_context() && pool.lent_contexts() == 1 && dec.mid_message(), "mid-payload: holds %d lent %zu",
         dec.holds_context(), pool.lent_contexts());
  feed(dec, pool, f.substr(8), &rec);
  EXPECT(!dec.holds_context() && pool.lent_contexts() == 0 && pool.idle_contexts() == 1,
         "frame done: holds %d lent %zu idle %zu", dec.holds_context(), pool.lent_contexts(), pool.idle_contexts());

  // Between the fragments of a message: no context, but a message is open.
  feed(dec, pool, frame(0x01, "Hel"), &rec);
  EXPECT(!dec.holds_context() && pool.lent_contexts() == 0 && dec.mid_message(), "between fragments: holds %d mid %d",
         dec.holds_context(), dec.mid_message());
  feed(dec, pool, frame(0x89, "p"), &rec);
  EXPECT(!dec.holds_context() && dec.mid_message(), "after an interleaved ping");
  feed(dec, pool, frame(0x80, "lo"), &rec);
  EXPECT(!dec.holds_context() && !dec.mid_message() && pool.lent_contexts() == 0, "message done");
  EXPECT(rec.log == "T:Hello|T:Hello|P:p|T:Hello|", "events %s", rec.log.c_str());
  dec.reset(pool);
}

// For every split point of a three-frame stream, the decoder holds a context after the first piece
// exactly when the split is not at a frame boundary, and the events are complete in the end.
void test_context_at_every_split(void**) {
  std::string a = frame(0x81, "first"), b = frame(0x89, "ping!"), c = frame(0x81, filler(300));
  std::string all = a + b + c;
  for (size_t k = 0; k <= all.size(); k++) {
    WsFramePool pool;
    WsDecoder dec;
    Recorder rec;
    feed(dec, pool, all.substr(0, k), &rec);
    bool boundary = k == 0 || k == a.size() || k == a.size() + b.size() || k == all.size();
    EXPECT(dec.holds_context() == !boundary && pool.lent_contexts() == (boundary ? 0u : 1u),
           "split at %zu: holds %d lent %zu", k, dec.holds_context(), pool.lent_contexts());
    feed(dec, pool, all.substr(k), &rec);
    EXPECT(!dec.holds_context() && pool.lent_contexts() == 0, "end after split at %zu", k);
    EXPECT(rec.log == "T:first|P:ping!|T:" + describe_payload(filler(300)) + "|", "split at %zu: %s", k,
           rec.log.c_str());
    dec.reset(pool);
  }
}

void test_many_decoders_share_a_bounded_pool(void**) {
  WsFramePool pool;
  const size_t n = 100;
  std::vector<std::unique_ptr<WsDecoder>> decs;
  std::vector<Recorder> recs(n);
  std::string f = frame(0x81, "message");
  for (size_t i = 0; i < n; i++) {
    decs.push_back(std::make_unique<WsDecoder>());
    feed(*decs[i], pool, f.substr(0, 9), &recs[i]);
  }
  EXPECT(pool.lent_contexts() == n && pool.idle_contexts() == 0, "lent %zu idle %zu", pool.lent_contexts(),
         pool.idle_contexts());
  for (size_t i = 0; i < n; i++) feed(*decs[i], pool, f.substr(9), &recs[i]);
  EXPECT(pool.lent_contexts() == 0, "lent %zu", pool.lent_contexts());
  EXPECT(pool.idle_contexts() <= 64 && pool.idle_contexts() > 0, "idle %zu (the reserve is bounded)",
         pool.idle_contexts());
  for (size_t i = 0; i < n; i++) {
    EXPECT(recs[i].log == "T:message|", "decoder %zu: %s", i, recs[i].log.c_str());
    decs[i]->reset(pool);
  }
}

void test_error_and_reset_release_context(void**) {
  WsFramePool pool;
  Recorder rec;
  {
    WsDecoder warm;
    feed(warm, pool, frame(0x81, "x"), &rec);
    warm.reset(pool);
  }
  EXPECT(pool.idle_contexts() == 1, "one idle context");
  {
    WsDecoder dec;
    feed(dec, pool, frame(0x81, "x", false), &rec, 1002);
    EXPECT(!dec.holds_context() && pool.lent_contexts() == 0, "after an error");
    EXPECT(pool.idle_contexts() == 0, "a context that saw an error is not lent again (idle %zu)", pool.idle_contexts());
    dec.reset(pool);
  }
  {
    WsDecoder dec;
    std::string f = frame(0x01, "abc") + frame(0x80, "def");
    feed(dec, pool, f.substr(0, f.size() - 2), &rec);
    EXPECT(dec.holds_context() && dec.mid_message() && pool.lent_contexts() == 1, "mid-frame");
    dec.reset(pool);
    EXPECT(!dec.holds_context() && !dec.mid_message() && pool.lent_contexts() == 0, "after reset");
    // The decoder starts over cleanly after a reset.
    Recorder again;
    feed(dec, pool, frame(0x81, "fresh"), &again);
    EXPECT(again.log == "T:fresh|", "after reset: %s", again.log.c_str());
    dec.reset(pool);
  }
  EXPECT(pool.lent_contexts() == 0, "lent %zu", pool.lent_contexts());
}

// Two connections fed alternately, one byte each, through one pool: no bytes cross between them,
// also when a context one of them gave back is lent to the other.
void test_interleaved_decoders(void**) {
  WsFramePool pool;
  WsDecoder a, b;
  Recorder ra, rb;
  std::string sa = frame(0x81, "alpha") + frame(0x89, "pa") + frame(0x81, filler(200));
  std::string sb = frame(0x01, "be") + frame(0x8A, "pb") + frame(0x00, "t") + frame(0x80, "a") + frame(0x81, "z");
  size_t ia = 0, ib = 0;
  while (ia < sa.size() || ib < sb.size()) {
    if (ia < sa.size()) feed(a, pool, sa.substr(ia++, 1), &ra);
    if (ib < sb.size()) feed(b, pool, sb.substr(ib++, 1), &rb);
    REQUIRE(pool.lent_contexts() <= 2, "lent %zu", pool.lent_contexts());
  }
  EXPECT(ra.log == "T:alpha|P:pa|T:" + describe_payload(filler(200)) + "|", "a: %s", ra.log.c_str());
  EXPECT(rb.log == "O:pb|T:beta|T:z|", "b: %s", rb.log.c_str());
  EXPECT(pool.lent_contexts() == 0, "lent %zu", pool.lent_contexts());
  a.reset(pool);
  b.reset(pool);
}

// ---- encoder ----------------------------------------------------------------------------------

void test_encode_lengths(void**) {
  WsFramePool pool;
  for (size_t n : {size_t{0}, size_t{1}, size_t{125}, size_t{126}, size_t{127}, size_t{65535}, size_t{65536},
                   size_t{70000}}) {
    std::string payload = filler(n);
    std::string out = "prefix";
    int rc = pool.encode(kWsText, payload, &out);
    EXPECT(rc == 0, "len %zu: rc %d", n, rc);
    REQUIRE(out.size() >= 8 && out.compare(0, 6, "prefix") == 0, "len %zu: the output is appended to", n);
    const auto* f = reinterpret_cast<const uint8_t*>(out.data()) + 6;
    size_t hl;
    uint64_t len;
    EXPECT(f[0] == 0x81, "len %zu: first byte %02x", n, f[0]);
    EXPECT((f[1] & 0x80) == 0, "len %zu: a server frame is not masked", n);
    if (n < 126) {
      hl = 2;
      len = f[1];
    } else if (n < 65536) {
      hl = 4;
      EXPECT(f[1] == 126, "len %zu: 16-bit form, got %u", n, f[1]);
      len = (uint64_t{f[2]} << 8) | f[3];
    } else {
      hl = 10;
      EXPECT(f[1] == 127, "len %zu: 64-bit form, got %u", n, f[1]);
      len = 0;
      for (int i = 0; i < 8; i++) len = (len << 8) | f[2 + i];
    }
    EXPECT(len == n, "len %zu: encoded length %llu", n, (unsigned long long)len);
    EXPECT(out.size() == 6 + hl + n, "len %zu: frame of %zu bytes, want %zu", n, out.size() - 6, hl + n);
    EXPECT(out.compare(6 + hl, std::string::npos, payload) == 0, "len %zu: payload bytes", n);
  }
}

void test_encode_opcodes_and_control_limit(void**) {
  WsFramePool pool;
  struct Row {
    uint8_t opcode;
    std::string payload;
    std::string want;
  } rows[] = {
      {kWsText, "hi", "\x81\x02hi"},
      {kWsBinary, "hi", "\x82\x02hi"},
      {kWsPing, "", bytes("\x89\x00")},
      {kWsPong, "abc", "\x8a\x03" "abc"},
      {kWsClose, close_payload(1000, "bye"), "\x88\x05\x03\xe8" "bye"},
      {kWsClose, close_payload(1009), "\x88\x02\x03\xf1"},
  };
  for (const Row& r : rows) {
    std::string out;
    EXPECT(pool.encode(r.opcode, r.payload, &out) == 0 && out == r.want, "opcode %u: %zu bytes", r.opcode, out.size());
  }
  std::string out;
  EXPECT(pool.encode(kWsPing, filler(125), &out) == 0 && out.size() == 127, "ping of 125 bytes");
  out.clear();
  EXPECT(pool.encode(kWsPing, filler(126), &out) < 0, "a control frame over 125 bytes cannot be encoded");
  out.clear();
  EXPECT(pool.encode(kWsText, "ok", &out) == 0 && out == "\x81\x02ok", "the encoder works after a refusal");
}

// Server frames, once masked as a client would send them, decode to the same message.
void test_encode_decode_round_trip(void**) {
  WsFramePool pool;
  for (size_t n : {size_t{0}, size_t{125}, size_t{126}, size_t{65535}, size_t{65536}}) {
    std::string payload = filler(n), out;
    REQUIRE(pool.encode(kWsText, payload, &out) == 0, "encode %zu", n);
    size_t hl = n < 126 ? 2 : n < 65536 ? 4 : 10;
    std::string masked = out.substr(0, hl);
    masked[1] = static_cast<char>(masked[1] | 0x80);
    masked.append(reinterpret_cast<const char*>(kMaskKey), 4);
    for (size_t i = 0; i < n; i++) masked += static_cast<char>(payload[i] ^ kMaskKey[i % 4]);
    EXPECT(masked == frame(0x81, payload), "len %zu: same bytes as the builder", n);
    WsDecoder dec;
    Recorder rec;
    feed(dec, pool, masked, &rec);
    EXPECT(rec.log == "T:" + describe_payload(payload) + "|", "len %zu: %s", n, rec.log.c_str());
    dec.reset(pool);
  }
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      TEST(test_valid_frames),
      TEST(test_protocol_errors),
      TEST(test_unsupported_and_invalid_data),
      TEST(test_too_big),
      TEST(test_huge_frame_refused_at_header),
      TEST(test_context_only_mid_frame),
      TEST(test_context_at_every_split),
      TEST(test_many_decoders_share_a_bounded_pool),
      TEST(test_error_and_reset_release_context),
      TEST(test_interleaved_decoders),
      TEST(test_encode_lengths),
      TEST(test_encode_opcodes_and_control_limit),
      TEST(test_encode_decode_round_trip),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
