// Fuzzer 2a: WsDecoder::feed over arbitrary bytes split at fuzzer-chosen points.
// Input: [chunk a][chunk b][flags][stream...]
//   flags bit 0: the sink returns false after a Close (as the server's does); else it goes on
//   flags bit 1: after each chunk, a second decoder on the same pool decodes a known frame
//                (a context lent back dirty would garble it)
//   flags bit 2: tiny limits (max_message 16, max_fragments 2) instead of 1024 / 8
// Checks: every Text is valid UTF-8 and <= max_message; control payloads <= 125; events and the
// close code equal a reference model's (ws_ref.h); no feeding after a code or a stop; after
// reset() no context is lent.
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "protocol/ws_codec.h"
#include "ws_ref.h"

using namespace roomcast::protocol;

namespace {

struct Sink {
  WsLimits limits;
  bool stop_on_close = false;
  bool stopped = false;
  std::vector<fuzz::RefEvent> events;
};

bool sink(void* user, const WsEvent& ev) {
  Sink* s = static_cast<Sink*>(user);
  FUZZ_CHECK(!s->stopped, "sink called again after it returned false");
  const uint8_t* p = reinterpret_cast<const uint8_t*>(ev.payload.data());
  switch (ev.type) {
    case WsEventType::Text:
      FUZZ_CHECK(fuzz::strict_utf8(p, ev.payload.size()), "Text payload is not valid UTF-8");
      FUZZ_CHECK(ev.payload.size() <= s->limits.max_message, "Text of %zu bytes > max_message %zu", ev.payload.size(),
                 s->limits.max_message);
      s->events.push_back({'T', std::string(ev.payload), 0});
      return true;
    case WsEventType::Ping:
    case WsEventType::Pong:
      FUZZ_CHECK(ev.payload.size() <= 125, "control payload of %zu bytes", ev.payload.size());
      s->events.push_back({ev.type == WsEventType::Ping ? 'P' : 'O', std::string(ev.payload), 0});
      return true;
    case WsEventType::Close:
      FUZZ_CHECK(ev.payload.size() <= 123, "close reason of %zu bytes", ev.payload.size());
      FUZZ_CHECK(fuzz::strict_utf8(p, ev.payload.size()), "close reason is not valid UTF-8");
      FUZZ_CHECK(ev.close_code == 1005 || fuzz::ref_close_code_ok(ev.close_code), "close code %u", ev.close_code);
      s->events.push_back({'C', std::string(ev.payload), ev.close_code});
      if (s->stop_on_close) s->stopped = true;
      return !s->stop_on_close;
  }
  return true;
}

// One complete masked text frame.
std::string probe_frame(const std::string& text) {
  static const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
  std::string f;
  f += static_cast<char>(0x81);
  f += static_cast<char>(0x80 | text.size());
  f.append(reinterpret_cast<const char*>(key), 4);
  for (size_t i = 0; i < text.size(); i++) f += static_cast<char>(text[i] ^ key[i % 4]);
  return f;
}

void dump_events(const char* who, const std::vector<fuzz::RefEvent>& evs) {
  std::fprintf(stderr, "  %s: %zu events\n", who, evs.size());
  for (const auto& e : evs) {
    std::fprintf(stderr, "    %c code %u ", e.type, e.code);
    fuzz::print_hex("payload", e.payload.data(), e.payload.size(), 32);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  fuzz::Splitter split;
  split.a = data[0];
  split.b = data[1];
  uint8_t flags = data[2];
  const uint8_t* stream = data + 3;
  size_t total = size - 3;

  Sink s;
  s.limits.max_message = (flags & 4) ? 16 : 1024;
  s.limits.max_fragments = (flags & 4) ? 2 : 8;
  s.stop_on_close = flags & 1;
  bool probe = flags & 2;

  WsFramePool pool;
  WsDecoder dec, other;
  int code = 0;
  size_t off = 0, chunks = 0;
  while (off < total) {
    size_t n = split.next(total - off);
    code = dec.feed(pool, s.limits, stream + off, n, sink, &s);
    off += n;
    chunks++;
    FUZZ_CHECK(code == 0 || code == 1002 || code == 1003 || code == 1007 || code == 1009, "close code %d", code);
    if (code == 0 && !s.stopped) FUZZ_CHECK(pool.lent_contexts() == (dec.holds_context() ? 1u : 0u), "lent %zu",
                                            pool.lent_contexts());
    if (probe) {
      Sink ps;
      std::string text = "probe-" + std::to_string(chunks);
      std::string f = probe_frame(text);
      int pc = other.feed(pool, ps.limits, reinterpret_cast<const uint8_t*>(f.data()), f.size(), sink, &ps);
      FUZZ_CHECK(pc == 0 && ps.events.size() == 1 && ps.events[0].type == 'T' && ps.events[0].payload == text,
                 "probe decoder on the shared pool: code %d, %zu events (a context came back dirty?)", pc,
                 ps.events.size());
      FUZZ_CHECK(!other.holds_context(), "probe decoder kept a context after a complete frame");
    }
    if (code != 0 || s.stopped) break;
  }

  // Differential check against the reference model over the whole stream.
  fuzz::RefResult ref = fuzz::ws_reference(stream, total, s.limits.max_message, s.limits.max_fragments, s.stop_on_close);
  if (!(ref.events == s.events) || ref.code != code || ref.stopped != s.stopped) {
    std::fprintf(stderr, "\nDIFFERENCE from the reference: decoder code %d stopped %d, reference code %d stopped %d\n",
                 code, s.stopped, ref.code, ref.stopped);
    dump_events("decoder", s.events);
    dump_events("reference", ref.events);
    FUZZ_CHECK(false, "WsDecoder disagrees with the RFC 6455 reference model");
  }

  dec.reset(pool);
  other.reset(pool);
  FUZZ_CHECK(pool.lent_contexts() == 0, "%zu contexts still lent after reset()", pool.lent_contexts());
  FUZZ_CHECK(!dec.holds_context() && !dec.mid_message(), "decoder state left after reset()");
  return 0;
}
