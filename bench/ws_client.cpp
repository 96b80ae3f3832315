// A WebSocket client connection of the load generator (RFC 6455 client side, text frames only).
// Rule: bytes go out in order (uv_try_write only while nothing is queued); input is parsed in place
// and only an incomplete head or frame is copied.
#include "bench/ws_client.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cstring>
#include <strings.h>

namespace roomcast::bench {

namespace {

constexpr const char* kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr size_t kMaxHead = 16 * 1024;
constexpr size_t kMaxMessage = 64 * 1024 * 1024;

// Masks and keys only need to differ between frames (this is a load generator, not a browser).
uint64_t next_random() {
  static uint64_t s = uv_hrtime() ^ (static_cast<uint64_t>(getpid()) << 32) ^ 0x9e3779b97f4a7c15ULL;
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

std::string base64(const unsigned char* data, size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(&out[0]), data, static_cast<int>(len));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

std::string accept_for(const std::string& key) {
  std::string s = key + kGuid;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_Digest(s.data(), s.size(), md, &md_len, EVP_sha1(), nullptr);
  return base64(md, md_len);
}

// The value of header name in an HTTP head, or empty.
std::string header_value(std::string_view head, std::string_view name) {
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    size_t start = pos + 2, end = head.find("\r\n", start);
    if (end == std::string_view::npos) end = head.size();
    std::string_view line = head.substr(start, end - start);
    size_t colon = line.find(':');
    if (colon == name.size() && strncasecmp(line.data(), name.data(), name.size()) == 0) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      return std::string(v);
    }
    pos = end;
  }
  return {};
}

struct WriteReq {
  uv_write_t req;    // req.data == this
  std::string data;  // the bytes, alive until the callback
};

}  // namespace

bool parse_ws_url(const std::string& url, Endpoint* out, std::string* err) {
  Endpoint ep;
  ep.url = url;
  std::string rest;
  if (url.rfind("ws://", 0) == 0) rest = url.substr(5);
  else {
    *err = "only ws:// URLs are supported: " + url;
    return false;
  }
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  ep.path = slash == std::string::npos ? "/ws" : rest.substr(slash);
  if (ep.path == "/") ep.path = "/ws";
  std::string host = authority;
  ep.port = 80;
  size_t colon = authority.rfind(':');
  if (colon != std::string::npos) {
    host = authority.substr(0, colon);
    char* end = nullptr;
    long p = strtol(authority.c_str() + colon + 1, &end, 10);
    if (*end || p < 1 || p > 65535) {
      *err = "bad port in " + url;
      return false;
    }
    ep.port = static_cast<int>(p);
  }
  if (host == "localhost") host = "127.0.0.1";
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
    *err = "the bench only targets loopback (127.0.0.0/8 or localhost): " + url;
    return false;
  }
  uv_ip4_addr(host.c_str(), ep.port, &ep.addr);
  ep.host_port = host + ":" + std::to_string(ep.port);
  *out = ep;
  return true;
}

struct ClientIo {
  static void on_alloc(uv_handle_t*, size_t, uv_buf_t* buf) {
    static char shared[64 * 1024];  // one loop, one thread: every socket reads into the same buffer
    *buf = uv_buf_init(shared, sizeof(shared));
  }
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
    Client* c = static_cast<Client*>(s->data);
    if (nread > 0) c->on_data(buf->base, static_cast<size_t>(nread));
    else if (nread < 0) c->finish(c->close_code_, nread == UV_EOF ? "eof" : uv_err_name(static_cast<int>(nread)));
  }
  static void on_connect(uv_connect_t* req, int status) { static_cast<Client*>(req->data)->on_connected(status); }
  static void on_write(uv_write_t* req, int status) {
    WriteReq* w = static_cast<WriteReq*>(req->data);
    Client* c = static_cast<Client*>(req->handle->data);
    delete w;
    if (status < 0 && status != UV_ECANCELED) c->finish(c->close_code_, uv_err_name(status));
  }
  static void on_close(uv_handle_t* h) { delete static_cast<Client*>(h->data); }
};

Client::Client(uv_loop_t* loop, ClientEvents* events, const Endpoint* ep, uint32_t index)
    : loop_(loop), events_(events), ep_(ep), index_(index) {}

void Client::start() {
  int r = uv_tcp_init_ex(loop_, &tcp_, AF_INET);
  if (r != 0) {
    finish(0, uv_err_name(r));  // no handle yet: on_closed, then delete
    return;
  }
  tcp_.data = this;
  if (ep_->has_source) {
    // Many source addresses multiply the 4-tuples to one server port; the port is picked at connect,
    // not at bind, so one address serves every destination.
    uv_os_fd_t fd;
    int one = 1;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd) == 0) setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in src = ep_->source;
    src.sin_addr.s_addr = htonl(ntohl(src.sin_addr.s_addr) + index_ % static_cast<uint32_t>(ep_->sources));
    r = uv_tcp_bind(&tcp_, reinterpret_cast<const sockaddr*>(&src), 0);
    if (r != 0) {
      state_ = State::Connecting;
      finish(0, uv_err_name(r));
      return;
    }
  }
  connect_req_.data = this;
  state_ = State::Connecting;  // from here on the handle exists and is closed by finish()
  r = uv_tcp_connect(&connect_req_, &tcp_, reinterpret_cast<const sockaddr*>(&ep_->addr), ClientIo::on_connect);
  if (r != 0) finish(0, uv_err_name(r));
}

void Client::on_connected(int status) {
  if (state_ != State::Connecting) return;
  if (status < 0) {
    finish(0, uv_err_name(status));
    return;
  }
  uv_tcp_nodelay(&tcp_, 1);
  if (dialect_ == Dialect::Raw) {
    state_ = State::Open;
    int r = uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), ClientIo::on_alloc, ClientIo::on_read);
    if (r != 0) {
      finish(0, uv_err_name(r));
      return;
    }
    events_->on_open(*this);
    return;
  }
  unsigned char raw[16];
  for (int i = 0; i < 16; i += 8) {
    uint64_t v = next_random();
    memcpy(raw + i, &v, 8);
  }
  key_ = base64(raw, sizeof(raw));
  std::string req = "GET " + (path_.empty() ? ep_->path : path_) + " HTTP/1.1\r\nHost: " + ep_->host_port +
                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key_ +
                    "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  state_ = State::Handshake;
  int r = uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), ClientIo::on_alloc, ClientIo::on_read);
  if (r != 0) {
    finish(0, uv_err_name(r));
    return;
  }
  write_raw(std::move(req));
}

void Client::on_data(const char* data, size_t len) {
  if (dialect_ == Dialect::Raw) {
    if (state_ == State::Open) events_->on_raw(*this, data, len);
    return;
  }
  if (state_ == State::Handshake) {
    size_t used = 0;
    if (!on_handshake(data, len, &used)) return;
    data += used;
    len -= used;
    if (len == 0) return;
  }
  if (state_ != State::Open) return;
  if (inbuf_.empty()) {
    ssize_t used = parse_frames(data, len);
    if (used >= 0 && state_ == State::Open && static_cast<size_t>(used) < len) inbuf_.assign(data + used, len - static_cast<size_t>(used));
    return;
  }
  inbuf_.append(data, len);
  ssize_t used = parse_frames(inbuf_.data(), inbuf_.size());
  if (used >= 0 && state_ == State::Open) inbuf_.erase(0, static_cast<size_t>(used));
}

// Reads the response head; returns true once open (with *used bytes of data taken), false otherwise.
bool Client::on_handshake(const char* data, size_t len, size_t* used) {
  size_t before = inbuf_.size();
  inbuf_.append(data, len);
  size_t end = inbuf_.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (inbuf_.size() > kMaxHead) finish(0, "handshake_head_too_large");
    return false;
  }
  std::string_view head(inbuf_.data(), end + 2);
  if (head.rfind("HTTP/1.1 101", 0) != 0) {
    std::string status(head.substr(0, head.find("\r\n")));
    finish(0, status.rfind("HTTP/1.1 ", 0) == 0 && status.size() >= 12 ? "handshake_refused" : "handshake_bad_response");
    return false;
  }
  if (header_value(head, "Sec-WebSocket-Accept") != accept_for(key_)) {
    finish(0, "handshake_bad_accept");
    return false;
  }
  *used = end + 4 - before;
  inbuf_.clear();
  inbuf_.shrink_to_fit();
  key_.clear();
  key_.shrink_to_fit();
  state_ = State::Open;
  if (dialect_ == Dialect::WebSocket) events_->on_open(*this);  // Engine.IO: once `40` arrives
  return state_ == State::Open;
}

ssize_t Client::parse_frames(const char* data, size_t len) {
  size_t pos = 0;
  while (state_ == State::Open && len - pos >= 2) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(data + pos);
    uint8_t b0 = p[0], b1 = p[1];
    bool fin = b0 & 0x80;
    uint8_t op = b0 & 0x0f;
    if (b1 & 0x80) {
      finish(0, "server_frame_masked");
      return -1;
    }
    uint64_t plen = b1 & 0x7f;
    size_t hdr = 2;
    if (plen == 126) {
      if (len - pos < 4) break;
      plen = (static_cast<uint64_t>(p[2]) << 8) | p[3];
      hdr = 4;
    } else if (plen == 127) {
      if (len - pos < 10) break;
      plen = 0;
      for (int i = 0; i < 8; i++) plen = (plen << 8) | p[2 + i];
      hdr = 10;
    }
    if (plen > kMaxMessage) {
      finish(0, "server_frame_too_large");
      return -1;
    }
    if (len - pos < hdr + plen) break;
    std::string_view payload(data + pos + hdr, static_cast<size_t>(plen));
    pos += hdr + static_cast<size_t>(plen);
    switch (op) {
      case 0x1:  // text
        if (fin) on_message(payload);
        else fragments_.assign(payload);
        break;
      case 0x0:  // continuation
        fragments_.append(payload);
        if (fin) {
          std::string msg;
          msg.swap(fragments_);
          on_message(msg);
        }
        break;
      case 0x9:  // ping: answer with the same payload
        send_frame(0xA, payload);
        break;
      case 0xA: break;
      case 0x8:
        close_code_ = payload.size() >= 2 ? (static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]) : 1005;
        finish(close_code_, "server_close");
        return -1;
      default:
        finish(0, "server_frame_bad_opcode");
        return -1;
    }
  }
  return static_cast<ssize_t>(pos);
}

void Client::on_message(std::string_view text) {
  if (dialect_ != Dialect::EngineIo) {
    events_->on_text(*this, text);
    return;
  }
  if (text == "2") {  // Engine.IO ping
    send_frame(0x1, "3");
  } else if (!text.empty() && text[0] == '0') {  // Engine.IO open: connect to the main namespace
    send_frame(0x1, "40");
  } else if (!eio_connected_ && text.rfind("40", 0) == 0) {
    eio_connected_ = true;
    events_->on_open(*this);
  } else {
    events_->on_text(*this, text);
  }
}

void Client::send_text(std::string_view text) {
  if (state_ == State::Open) send_frame(0x1, text);
}

void Client::send_frame(uint8_t opcode, std::string_view payload) {
  std::string f;
  f.reserve(payload.size() + 14);
  f.push_back(static_cast<char>(0x80 | opcode));
  size_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xffff) {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xff));
  } else {
    f.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; i--) f.push_back(static_cast<char>((static_cast<uint64_t>(n) >> (8 * i)) & 0xff));
  }
  uint32_t m32 = static_cast<uint32_t>(next_random());
  uint8_t mask[4];
  memcpy(mask, &m32, 4);
  f.append(reinterpret_cast<const char*>(mask), 4);
  size_t start = f.size();
  f.append(payload);
  for (size_t i = 0; i < n; i++) f[start + i] = static_cast<char>(f[start + i] ^ mask[i & 3]);
  write_raw(std::move(f));
}

void Client::write_raw(std::string&& bytes) {
  uv_stream_t* s = reinterpret_cast<uv_stream_t*>(&tcp_);
  size_t off = 0;
  if (uv_stream_get_write_queue_size(s) == 0) {
    uv_buf_t b = uv_buf_init(bytes.data(), static_cast<unsigned>(bytes.size()));
    int r = uv_try_write(s, &b, 1);
    if (r >= 0) off = static_cast<size_t>(r);
    else if (r != UV_EAGAIN) {
      finish(close_code_, uv_err_name(r));
      return;
    }
    if (off == bytes.size()) return;
  }
  WriteReq* w = new WriteReq();
  w->req.data = w;
  w->data = off == 0 ? std::move(bytes) : bytes.substr(off);
  uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int r = uv_write(&w->req, s, &b, 1, ClientIo::on_write);
  if (r != 0) {
    delete w;
    finish(close_code_, uv_err_name(r));
  }
}

size_t Client::queued_bytes() const {
  return state_ == State::Closed ? 0 : uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&tcp_));
}

void Client::pause_reading() {
  if (state_ == State::Open) uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
}

void Client::close(const char* why) { finish(close_code_, why); }

void Client::finish(int code, const char* why) {
  if (state_ == State::Closed) return;
  bool had_handle = state_ != State::Idle;
  state_ = State::Closed;
  if (!told_) {
    told_ = true;
    events_->on_closed(*this, code, why);
  }
  if (had_handle) uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), ClientIo::on_close);
  else delete this;
}

}  // namespace roomcast::bench
