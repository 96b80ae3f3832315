// Fuzzer 2b: WsFramePool::encode of fuzz payloads, the frame checked byte for byte, then masked by
// the harness and decoded back (split at fuzzer-chosen points) to the same event.
// Input: [opcode selector][flags][chunk a][chunk b][mask key x4][payload...]
//   opcode selector % 6: text, binary, close, ping, pong, continuation
//   flags bit 0: payload repeated to >= 65536 bytes (64-bit length); bit 1: to 126..65535 (16-bit)
#include <string>

#include "fuzz_common.h"
#include "protocol/ws_codec.h"

using namespace roomcast::protocol;

namespace {

struct Got {
  int events = 0;
  WsEventType type{};
  std::string payload;
  uint16_t code = 0;
};

bool sink(void* user, const WsEvent& ev) {
  Got* g = static_cast<Got*>(user);
  g->events++;
  g->type = ev.type;
  g->payload.assign(ev.payload.data(), ev.payload.size());
  g->code = ev.close_code;
  return ev.type != WsEventType::Close;
}

bool close_code_ok(uint16_t c) { return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  static const uint8_t kOps[6] = {kWsText, kWsBinary, kWsClose, kWsPing, kWsPong, kWsContinuation};
  uint8_t op = kOps[data[0] % 6];
  uint8_t flags = data[1];
  fuzz::Splitter split;
  split.a = data[2];
  split.b = data[3];
  uint8_t key[4] = {data[4], data[5], data[6], data[7]};
  std::string payload(reinterpret_cast<const char*>(data + 8), size - 8);
  if ((flags & 3) && payload.empty()) payload = "x";
  if (flags & 1) {
    while (payload.size() < 65536) payload += payload;
  } else if (flags & 2) {
    while (payload.size() < 126) payload += payload;
    if (payload.size() > 65535) payload.resize(65535);
  }
  bool control = op & 8;

  WsFramePool pool;
  std::string out = "pre";  // encode appends
  int rc = pool.encode(op, payload, &out);
  if (control && payload.size() > 125) {
    FUZZ_CHECK(rc < 0, "encode accepted a %zu-byte control frame", payload.size());
    return 0;
  }
  FUZZ_CHECK(rc == 0, "encode failed (%d) for opcode %u, %zu bytes", rc, op, payload.size());

  // The frame, byte for byte: FIN + opcode, unmasked, the shortest length form, the payload.
  std::string want = "pre";
  want += static_cast<char>(0x80 | op);
  size_t n = payload.size();
  if (n < 126) {
    want += static_cast<char>(n);
  } else if (n < 65536) {
    want += static_cast<char>(126);
    want += static_cast<char>(n >> 8);
    want += static_cast<char>(n & 0xff);
  } else {
    want += static_cast<char>(127);
    for (int i = 7; i >= 0; i--) want += static_cast<char>((static_cast<uint64_t>(n) >> (8 * i)) & 0xff);
  }
  want += payload;
  if (out != want) {
    fuzz::print_hex("encoded", out.data(), out.size());
    fuzz::print_hex("expected", want.data(), want.size());
    FUZZ_CHECK(false, "encode produced an unexpected frame");
  }

  // Mask it as a client would, then decode.
  std::string frame = out.substr(3);
  size_t hdr = frame.size() - n;
  frame[1] = static_cast<char>(frame[1] | 0x80);
  frame.insert(hdr, reinterpret_cast<const char*>(key), 4);
  for (size_t i = 0; i < n; i++) frame[hdr + 4 + i] = static_cast<char>(frame[hdr + 4 + i] ^ key[i % 4]);

  WsLimits limits;
  limits.max_message = 1 << 20;
  WsDecoder dec;
  Got got;
  int code = 0;
  size_t off = 0;
  while (off < frame.size() && code == 0 && got.events == 0) {
    size_t c = split.next(frame.size() - off);
    code = dec.feed(pool, limits, reinterpret_cast<const uint8_t*>(frame.data()) + off, c, sink, &got);
    off += c;
  }
  const uint8_t* p = reinterpret_cast<const uint8_t*>(payload.data());
  switch (op) {
    case kWsText:
      if (fuzz::strict_utf8(p, n)) {
        FUZZ_CHECK(code == 0 && got.events == 1 && got.type == WsEventType::Text && got.payload == payload,
                   "text round trip: code %d, %d events, %zu vs %zu bytes", code, got.events, got.payload.size(), n);
      } else {
        FUZZ_CHECK(code == kCloseInvalidPayload && got.events == 0, "invalid UTF-8 text: code %d, %d events", code,
                   got.events);
      }
      break;
    case kWsBinary:
      FUZZ_CHECK(code == kCloseUnsupportedData && got.events == 0, "binary: code %d", code);
      break;
    case kWsContinuation:
      FUZZ_CHECK(code == kCloseProtocolError && got.events == 0, "lone continuation: code %d", code);
      break;
    case kWsPing:
    case kWsPong:
      FUZZ_CHECK(code == 0 && got.events == 1 && got.payload == payload &&
                     got.type == (op == kWsPing ? WsEventType::Ping : WsEventType::Pong),
                 "ping/pong round trip: code %d, %d events", code, got.events);
      break;
    case kWsClose: {
      if (n == 0) {
        FUZZ_CHECK(code == 0 && got.events == 1 && got.code == 1005 && got.payload.empty(), "empty close: code %d", code);
      } else if (n == 1) {
        FUZZ_CHECK(code == kCloseProtocolError, "1-byte close: code %d", code);
      } else {
        uint16_t cc = static_cast<uint16_t>((p[0] << 8) | p[1]);
        if (!close_code_ok(cc)) FUZZ_CHECK(code == kCloseProtocolError, "close code %u: decoder code %d", cc, code);
        else if (!fuzz::strict_utf8(p + 2, n - 2)) FUZZ_CHECK(code == kCloseInvalidPayload, "bad reason: code %d", code);
        else
          FUZZ_CHECK(code == 0 && got.events == 1 && got.code == cc && got.payload == payload.substr(2),
                     "close round trip: code %d, %d events", code, got.events);
      }
      break;
    }
  }
  dec.reset(pool);
  FUZZ_CHECK(pool.lent_contexts() == 0, "%zu contexts lent after reset()", pool.lent_contexts());
  return 0;
}
