// WebSocket framing (RFC 6455 section 5) on wslay's frame layer.
// Rule: a context goes back to the pool only at a frame boundary with nothing buffered in it;
// any other context is freed, never lent again.
#include "protocol/ws_codec.h"

#include <wslay/wslay.h>

#include <cassert>
#include <cstring>

#include "protocol/utf8.h"

namespace roomcast::protocol {

namespace {

ssize_t pool_recv(uint8_t* buf, size_t len, int flags, void* user_data);
ssize_t pool_send(const uint8_t* data, size_t len, int flags, void* user_data);
int no_mask(uint8_t* buf, size_t len, void* user_data) { return -1; }

const wslay_frame_callbacks kCallbacks = {pool_send, pool_recv, no_mask};

bool valid_close_code(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);
}

size_t header_length(uint64_t payload_length, bool masked) {
  size_t n = 2 + (masked ? 4 : 0);
  if (payload_length >= 65536) n += 8;
  else if (payload_length >= 126) n += 2;
  return n;
}

}  // namespace

// Friend access point for the C callbacks.
struct WsPoolIo {
  static ssize_t recv(WsFramePool* pool, uint8_t* buf, size_t len) {
    size_t n = pool->in_len_ - pool->in_pos_;
    if (n == 0) return 0;
    if (n > len) n = len;
    memcpy(buf, pool->in_ + pool->in_pos_, n);
    pool->in_pos_ += n;
    return static_cast<ssize_t>(n);
  }
  static ssize_t send(WsFramePool* pool, const uint8_t* data, size_t len) {
    pool->out_->append(reinterpret_cast<const char*>(data), len);
    return static_cast<ssize_t>(len);
  }
};

namespace {
ssize_t pool_recv(uint8_t* buf, size_t len, int, void* user_data) {
  return WsPoolIo::recv(static_cast<WsFramePool*>(user_data), buf, len);
}
ssize_t pool_send(const uint8_t* data, size_t len, int, void* user_data) {
  return WsPoolIo::send(static_cast<WsFramePool*>(user_data), data, len);
}
}  // namespace

WsFramePool::WsFramePool() { wslay_frame_context_init(&encoder_, &kCallbacks, this); }

WsFramePool::~WsFramePool() {
  for (wslay_frame_context* ctx : free_) wslay_frame_context_free(ctx);
  if (encoder_) wslay_frame_context_free(encoder_);
}

wslay_frame_context* WsFramePool::acquire() {
  wslay_frame_context* ctx = nullptr;
  if (!free_.empty()) {
    ctx = free_.back();
    free_.pop_back();
  } else if (wslay_frame_context_init(&ctx, &kCallbacks, this) != 0) {
    return nullptr;
  }
  lent_++;
  return ctx;
}

void WsFramePool::release(wslay_frame_context* ctx, bool reusable) {
  lent_--;
  // Keep a bounded reserve: a burst of busy connections should not pin memory for ever.
  if (reusable && free_.size() < 64) free_.push_back(ctx);
  else wslay_frame_context_free(ctx);
}

int WsFramePool::encode(uint8_t opcode, std::string_view payload, std::string* out) {
  if (!encoder_) return -1;
  wslay_frame_iocb iocb{};
  iocb.fin = 1;
  iocb.opcode = opcode;
  iocb.payload_length = payload.size();
  iocb.data = reinterpret_cast<const uint8_t*>(payload.data());
  iocb.data_length = payload.size();
  out_ = out;
  out->reserve(out->size() + payload.size() + 10);
  ssize_t r = wslay_frame_send(encoder_, &iocb);
  out_ = nullptr;
  // An empty payload returns 0 after the header went out; anything else returns the payload size.
  return r < 0 || static_cast<size_t>(r) != payload.size() ? -1 : 0;
}

WsDecoder::~WsDecoder() {
  assert(ctx_ == nullptr && "WsDecoder::reset() must run before destruction");
  delete msg_;
  delete ctrl_;
}

void WsDecoder::reset(WsFramePool& pool) {
  if (ctx_) pool.release(ctx_, false);
  ctx_ = nullptr;
  delete msg_;
  msg_ = nullptr;
  delete ctrl_;
  ctrl_ = nullptr;
  in_message_ = in_frame_ = false;
}

int WsDecoder::prescan(const WsLimits& limits, const uint8_t* data, size_t len, size_t* stop_at) {
  size_t i = 0;
  while (i < len) {
    if (scan_skip_ > 0) {
      size_t n = len - i < scan_skip_ ? len - i : static_cast<size_t>(scan_skip_);
      scan_skip_ -= n;
      i += n;
      continue;
    }
    scan_hdr_[scan_len_++] = data[i++];
    if (scan_len_ < 2) continue;
    uint8_t len7 = scan_hdr_[1] & 0x7f;
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    size_t need = 2 + ext + ((scan_hdr_[1] & 0x80) ? 4 : 0);
    if (scan_len_ < need) continue;
    uint64_t payload = len7;
    if (ext) {
      payload = 0;
      for (size_t k = 0; k < ext; k++) payload = (payload << 8) | scan_hdr_[2 + k];
    }
    scan_len_ = 0;
    scan_skip_ = payload;
    *stop_at = i;  // the frames before this header are still delivered
    if ((ext == 8 && (payload >> 63)) || (ext == 8 && payload < 65536) || (ext == 2 && payload < 126)) return kCloseProtocolError;
    if (!(scan_hdr_[0] & 0x8) && payload > limits.max_message) return kCloseTooBig;
  }
  *stop_at = len;
  return 0;
}

int WsDecoder::feed(WsFramePool& pool, const WsLimits& limits, const uint8_t* data, size_t len, Sink sink,
                    void* user) {
  assert(!pool.feeding_);
  size_t usable = len;
  int scan_code = prescan(limits, data, len, &usable);
  len = usable;
  if (!ctx_) {
    ctx_ = pool.acquire();
    if (!ctx_) return kCloseInternalError;
    fed_ = consumed_ = 0;
  }
  pool.feeding_ = true;
  pool.in_ = data;
  pool.in_len_ = len;
  pool.in_pos_ = 0;
  int close_code = 0;
  bool stop = false;
  while (!close_code && !stop) {
    size_t before = pool.in_pos_;
    wslay_frame_iocb iocb{};
    ssize_t r = wslay_frame_recv(ctx_, &iocb);
    fed_ += pool.in_pos_ - before;
    if (r == WSLAY_ERR_WANT_READ) break;
    if (r < 0) {
      close_code = kCloseProtocolError;
      break;
    }
    close_code = on_chunk(limits, iocb.fin, iocb.rsv, iocb.opcode, iocb.mask, iocb.payload_length, iocb.data,
                          iocb.data_length, sink, user, &stop);
  }
  pool.feeding_ = false;
  pool.in_ = nullptr;
  pool.in_len_ = pool.in_pos_ = 0;
  if (!close_code && !stop) close_code = scan_code;
  if (close_code || stop) {
    pool.release(ctx_, false);
    ctx_ = nullptr;
  } else if (!in_frame_ && fed_ == consumed_) {
    pool.release(ctx_, true);  // at a frame boundary with nothing inside: lend it to someone else
    ctx_ = nullptr;
  }
  return close_code;
}

int WsDecoder::on_chunk(const WsLimits& limits, uint8_t fin, uint8_t rsv, uint8_t opcode, uint8_t mask,
                        uint64_t payload_length, const uint8_t* data, size_t len, Sink sink, void* user,
                        bool* stop) {
  bool control = (opcode & 0x8) != 0;
  if (!in_frame_) {
    // A new frame: judge its header before buffering anything.
    in_frame_ = true;
    frame_len_ = payload_length;
    frame_off_ = 0;
    frame_opcode_ = opcode;
    consumed_ += header_length(payload_length, mask);
    if (rsv != 0 || !mask) return kCloseProtocolError;
    if (control) {
      if (opcode != kWsClose && opcode != kWsPing && opcode != kWsPong) return kCloseProtocolError;
    } else if (opcode == kWsContinuation) {
      if (!in_message_) return kCloseProtocolError;
    } else if (opcode == kWsText || opcode == kWsBinary) {
      if (in_message_) return kCloseProtocolError;
      if (opcode == kWsBinary) return kCloseUnsupportedData;
      fragments_ = 0;
    } else {
      return kCloseProtocolError;
    }
    if (!control) {
      size_t so_far = msg_ ? msg_->size() : 0;
      if (payload_length > limits.max_message || so_far + payload_length > limits.max_message) return kCloseTooBig;
      if (++fragments_ > limits.max_fragments) return kCloseTooBig;
      in_message_ = !fin;
    }
  }
  frame_off_ += len;
  consumed_ += len;
  bool frame_done = frame_off_ == frame_len_;
  if (frame_done) in_frame_ = false;
  std::string_view chunk(reinterpret_cast<const char*>(data), len);

  if (control) {
    if (frame_done && !ctrl_) return finish_control(sink, user, chunk, stop);
    if (!ctrl_) ctrl_ = new std::string();
    ctrl_->append(chunk);
    if (!frame_done) return 0;
    std::string payload = std::move(*ctrl_);
    delete ctrl_;
    ctrl_ = nullptr;
    return finish_control(sink, user, payload, stop);
  }

  bool message_done = frame_done && fin;
  if (message_done && !msg_) {
    // The whole message arrived in one piece: hand out wslay's buffer, no copy.
    if (!valid_utf8(chunk)) return kCloseInvalidPayload;
    *stop = !sink(user, WsEvent{WsEventType::Text, chunk, 0});
    return 0;
  }
  if (!msg_) msg_ = new std::string();
  msg_->append(chunk);
  if (!message_done) return 0;
  std::string text = std::move(*msg_);
  delete msg_;
  msg_ = nullptr;
  if (!valid_utf8(text)) return kCloseInvalidPayload;
  *stop = !sink(user, WsEvent{WsEventType::Text, text, 0});
  return 0;
}

int WsDecoder::finish_control(Sink sink, void* user, std::string_view payload, bool* stop) {
  WsEvent ev{WsEventType::Ping, payload, 0};
  if (frame_opcode_ == kWsPong) ev.type = WsEventType::Pong;
  if (frame_opcode_ == kWsClose) {
    ev.type = WsEventType::Close;
    if (payload.size() == 1) return kCloseProtocolError;
    ev.close_code = kCloseNoStatus;
    if (payload.size() >= 2) {
      ev.close_code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]));
      if (!valid_close_code(ev.close_code)) return kCloseProtocolError;
      ev.payload = payload.substr(2);
      if (!valid_utf8(ev.payload)) return kCloseInvalidPayload;
    }
  }
  *stop = !sink(user, ev);
  return 0;
}

}  // namespace roomcast::protocol
