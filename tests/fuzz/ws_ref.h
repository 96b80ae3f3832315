// Reference model of the WsDecoder contract, written from RFC 6455 and ws_codec.h/.cpp's stated
// rules, for differential checks: it reads the whole stream at once and says which events a
// decoder must deliver and which close code it must end with.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_common.h"

namespace fuzz {

struct RefEvent {
  char type;          // 'T' text, 'P' ping, 'O' pong, 'C' close
  std::string payload;
  uint16_t code = 0;  // close only
  bool operator==(const RefEvent& o) const { return type == o.type && payload == o.payload && code == o.code; }
};

struct RefResult {
  std::vector<RefEvent> events;
  int code = 0;          // first violation, or 0
  bool stopped = false;  // the sink stopped at a Close
};

inline bool ref_close_code_ok(uint16_t c) {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
}

// stop_on_close: the sink returns false for Close events (and true for everything else).
inline RefResult ws_reference(const uint8_t* s, size_t n, size_t max_message, size_t max_fragments, bool stop_on_close) {
  RefResult res;
  size_t pos = 0;
  bool in_msg = false;
  std::string msg;
  size_t frags = 0;
  while (pos + 2 <= n) {
    uint8_t b0 = s[pos], b1 = s[pos + 1];
    bool fin = b0 & 0x80, control = b0 & 0x08, masked = b1 & 0x80;
    uint8_t rsv = (b0 >> 4) & 7, opcode = b0 & 0x0f, len7 = b1 & 0x7f;
    if (control && (len7 > 125 || !fin)) { res.code = 1002; return res; }  // wslay, first two bytes
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    if (pos + 2 + ext > n) return res;
    uint64_t len = len7;
    if (ext) {
      len = 0;
      for (size_t k = 0; k < ext; k++) len = (len << 8) | s[pos + 2 + k];
      if ((ext == 2 && len < 126) || (ext == 8 && (len < 65536 || (len >> 63)))) { res.code = 1002; return res; }
    }
    size_t hdr = 2 + ext + (masked ? 4 : 0);
    if (pos + hdr > n) return res;
    if (!control && len > max_message) { res.code = 1009; return res; }  // refused at the header
    // The rest is judged with the first payload byte (or at once for an empty frame).
    if (len > 0 && pos + hdr >= n) return res;
    if (rsv || !masked) { res.code = 1002; return res; }
    if (control) {
      if (opcode != 8 && opcode != 9 && opcode != 10) { res.code = 1002; return res; }
    } else if (opcode == 0) {
      if (!in_msg) { res.code = 1002; return res; }
    } else if (opcode == 1 || opcode == 2) {
      if (in_msg) { res.code = 1002; return res; }
      if (opcode == 2) { res.code = 1003; return res; }
      frags = 0;
    } else {
      res.code = 1002;
      return res;
    }
    if (!control) {
      if (msg.size() + len > max_message) { res.code = 1009; return res; }
      if (++frags > max_fragments) { res.code = 1009; return res; }
      in_msg = !fin;
    }
    if (pos + hdr + len > n) return res;
    const uint8_t* key = s + pos + hdr - 4;
    std::string payload(len, '\0');
    for (size_t i = 0; i < len; i++) payload[i] = static_cast<char>(s[pos + hdr + i] ^ key[i % 4]);
    pos += hdr + len;
    if (control) {
      RefEvent ev{opcode == 8 ? 'C' : opcode == 9 ? 'P' : 'O', payload, 0};
      if (opcode == 8) {
        if (payload.size() == 1) { res.code = 1002; return res; }
        ev.code = 1005;
        if (payload.size() >= 2) {
          ev.code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]));
          if (!ref_close_code_ok(ev.code)) { res.code = 1002; return res; }
          ev.payload = payload.substr(2);
          if (!strict_utf8(reinterpret_cast<const uint8_t*>(ev.payload.data()), ev.payload.size())) {
            res.code = 1007;
            return res;
          }
        }
      }
      res.events.push_back(ev);
      if (opcode == 8 && stop_on_close) { res.stopped = true; return res; }
      continue;
    }
    msg += payload;
    if (fin) {
      if (!strict_utf8(reinterpret_cast<const uint8_t*>(msg.data()), msg.size())) { res.code = 1007; return res; }
      res.events.push_back(RefEvent{'T', msg, 0});
      msg.clear();
    }
  }
  return res;
}

}  // namespace fuzz
