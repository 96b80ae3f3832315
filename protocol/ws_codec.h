// WebSocket framing (RFC 6455 section 5) on wslay's frame layer: a decoder per connection that
// borrows a wslay frame context from a per-loop pool only while a frame is partly read, and an encoder.
// Rule: every limit is checked at the frame header, before a payload byte is buffered.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

struct wslay_frame_context;

namespace roomcast::protocol {

enum WsOpcode : uint8_t { kWsContinuation = 0, kWsText = 1, kWsBinary = 2, kWsClose = 8, kWsPing = 9, kWsPong = 10 };

enum WsCloseCode : uint16_t {
  kCloseNormal = 1000,
  kCloseGoingAway = 1001,
  kCloseProtocolError = 1002,
  kCloseUnsupportedData = 1003,
  kCloseNoStatus = 1005,
  kCloseInvalidPayload = 1007,
  kClosePolicy = 1008,
  kCloseTooBig = 1009,
  kCloseInternalError = 1011,
  kCloseTokenExpired = 4001,  // PROTOCOL.md section 8: the token's exp passed without a refresh
};

struct WsLimits {
  size_t max_message = 64 * 1024;  // payload bytes of one message, all fragments together
  size_t max_fragments = 1024;     // frames of one message
};

enum class WsEventType { Text, Ping, Pong, Close };

struct WsEvent {
  WsEventType type;
  std::string_view payload;  // Text: the message; Ping/Pong: payload; Close: the reason text
  uint16_t close_code = 0;   // Close only: the peer's code (1005 when it sent none)
};

// Per-loop owner of idle wslay frame contexts, and the source the contexts read from.
class WsFramePool {
 public:
  WsFramePool();
  ~WsFramePool();
  WsFramePool(const WsFramePool&) = delete;
  WsFramePool& operator=(const WsFramePool&) = delete;

  // Frames a server message (unmasked, FIN set) into out (appended). Returns 0 or a negative error.
  int encode(uint8_t opcode, std::string_view payload, std::string* out);
  size_t idle_contexts() const { return free_.size(); }
  size_t lent_contexts() const { return lent_; }

 private:
  friend class WsDecoder;
  friend struct WsPoolIo;
  wslay_frame_context* acquire();
  void release(wslay_frame_context* ctx, bool reusable);

  std::vector<wslay_frame_context*> free_;  // contexts at a frame boundary, ready to lend
  size_t lent_ = 0;                         // contexts held by decoders now
  wslay_frame_context* encoder_ = nullptr;  // writes into out_
  std::string* out_ = nullptr;              // target of the encoder's send callback
  const uint8_t* in_ = nullptr;             // bytes the lent context may read now
  size_t in_len_ = 0, in_pos_ = 0;
  bool feeding_ = false;                    // a decoder is inside feed()
};

class WsDecoder {
 public:
  // Called for each complete message or control frame; return false to stop reading (after Close).
  using Sink = bool (*)(void* user, const WsEvent& event);

  WsDecoder() = default;
  ~WsDecoder();
  WsDecoder(const WsDecoder&) = delete;
  WsDecoder& operator=(const WsDecoder&) = delete;

  // Feeds bytes from the peer. Returns 0, or the close code to send for a violation (1002, 1003,
  // 1007, 1009). After a violation or a stopping sink the decoder must not be fed again.
  int feed(WsFramePool& pool, const WsLimits& limits, const uint8_t* data, size_t len, Sink sink, void* user);
  // Gives back a borrowed context; call before destruction.
  void reset(WsFramePool& pool);
  // True when no wslay context is borrowed (the connection is between frames).
  bool holds_context() const { return ctx_ != nullptr; }
  // True when part of a message is buffered.
  bool mid_message() const { return in_message_ || ctx_ != nullptr; }

 private:
  int on_chunk(const WsLimits& limits, uint8_t fin, uint8_t rsv, uint8_t opcode, uint8_t mask, uint64_t payload_length,
               const uint8_t* data, size_t len, Sink sink, void* user, bool* stop);
  int finish_control(Sink sink, void* user, std::string_view payload, bool* stop);
  int prescan(const WsLimits& limits, const uint8_t* data, size_t len, size_t* stop_at);

  wslay_frame_context* ctx_ = nullptr;  // borrowed from the pool while a frame is partly read
  std::string* msg_ = nullptr;          // text message being assembled (only when split)
  std::string* ctrl_ = nullptr;         // control frame payload being assembled (only when split)
  uint64_t fed_ = 0, consumed_ = 0;     // bytes handed to / parsed by the context since it was lent
  uint64_t frame_len_ = 0, frame_off_ = 0;  // payload length and bytes seen of the current frame
  uint32_t fragments_ = 0;              // frames of the current message
  uint8_t frame_opcode_ = 0;            // opcode of the current frame
  bool in_frame_ = false;               // a frame header was read and its payload is not complete
  bool in_message_ = false;             // a text message started and its FIN frame has not come
  // Pre-scan of the raw stream, ahead of wslay (which reports a frame only with its first payload
  // byte): a header announcing more than max_message is refused as soon as it is complete.
  uint64_t scan_skip_ = 0;              // payload bytes of the scanned frame still to pass
  uint8_t scan_hdr_[14];                // header bytes of the next frame seen so far
  uint8_t scan_len_ = 0;                // how many
};

}  // namespace roomcast::protocol
