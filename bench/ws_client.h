// A WebSocket client connection of the load generator: TCP connect, opening handshake, masked text
// frames out, server frames in. Rule: a Client is freed only in its uv_close callback, after the owner
// was told once (on_closed); loopback addresses only, checked when the URL is parsed.
#pragma once
#include <netinet/in.h>
#include <uv.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace roomcast::bench {

// ws://HOST:PORT/PATH with HOST in 127.0.0.0/8 or "localhost".
struct Endpoint {
  std::string url;         // as given
  std::string host_port;   // Host header value
  std::string path;        // request target, "/ws" when the URL has none
  sockaddr_in addr{};      // where to connect
  int port = 0;
  bool has_source = false; // bind to a source address (port chosen at connect) before connecting
  sockaddr_in source{};    // the first source address (127.x.y.z)
  int sources = 1;         // connection i uses source + (i % sources): past ~14k connections from one
                           // address to one port, every connect() scans the ephemeral range
};

// Parses a ws:// URL. Returns true, or false with *err set (a non-loopback host is an error).
bool parse_ws_url(const std::string& url, Endpoint* out, std::string* err);

class Client;

// What a Client reports to its owner. Callbacks may call send_text() and close() on the client.
class ClientEvents {
 public:
  virtual ~ClientEvents() = default;
  // The handshake completed (101 with the right Sec-WebSocket-Accept).
  virtual void on_open(Client& c) = 0;
  // One complete text message from the server.
  virtual void on_text(Client& c, std::string_view text) = 0;
  // The connection ended: code is the server's close code (0 when there was none), why a short reason.
  // Called once; the object is freed right after the socket's close callback.
  virtual void on_closed(Client& c, int code, const char* why) = 0;
  // Raw mode only (set_dialect(Dialect::Raw)): bytes as they come, no WebSocket at all.
  virtual void on_raw(Client& c, const char* data, size_t len) {}
};

// What runs over the TCP connection: WebSocket text frames (roomcast, nchan, Node ws), Engine.IO v4
// over WebSocket (Socket.IO: `0{..}` open, `40` connect, `2` ping answered `3`; on_open once the
// namespace is connected, on_text gets every other packet as sent), or raw bytes (HTTP publishers).
enum class Dialect : uint8_t { WebSocket, EngineIo, Raw };

class Client {
 public:
  enum class State : uint8_t { Idle, Connecting, Handshake, Open, Closed };

  Client(uv_loop_t* loop, ClientEvents* events, const Endpoint* ep, uint32_t index);
  // Starts the TCP connect. Every failure, even one found before this returns, is reported through
  // on_closed (and the object then frees itself).
  void start();
  // Before start(): the request target instead of the endpoint's path, and what runs over the socket.
  void set_path(std::string path) { path_ = std::move(path); }
  void set_dialect(Dialect d) { dialect_ = d; }
  // Sends one masked text frame (queued if the kernel does not take it at once).
  void send_text(std::string_view text);
  // Stops reading (a stalled reader: the server's outbound queue for it grows).
  void pause_reading();
  // Raw mode: writes bytes as they are.
  void send_raw(std::string bytes) { if (state_ == State::Open) write_raw(std::move(bytes)); }
  // Closes the socket now (no close handshake: the bench ends or gave up on this connection).
  void close(const char* why);

  State state() const { return state_; }
  uint32_t index() const { return index_; }
  const Endpoint* endpoint() const { return ep_; }
  // Bytes handed to uv_write and not yet written.
  size_t queued_bytes() const;

  void* user = nullptr;  // the owner's per-connection record

 private:
  friend struct ClientIo;
  ~Client() = default;
  void on_connected(int status);
  void on_data(const char* data, size_t len);
  bool on_handshake(const char* data, size_t len, size_t* used);
  // Parses frames from data; returns bytes consumed, or -1 after a fatal protocol problem.
  ssize_t parse_frames(const char* data, size_t len);
  // One complete text message: to the owner, or first through the Engine.IO layer.
  void on_message(std::string_view text);
  void send_frame(uint8_t opcode, std::string_view payload);
  void write_raw(std::string&& bytes);
  void finish(int code, const char* why);

  uv_tcp_t tcp_;                // the socket; tcp_.data == this
  uv_connect_t connect_req_;    // the pending connect
  uv_loop_t* loop_;
  ClientEvents* events_;
  const Endpoint* ep_;          // where this connection goes
  uint32_t index_;              // the owner's number for this connection
  std::string key_;             // Sec-WebSocket-Key sent
  std::string inbuf_;           // bytes of an incomplete head or frame
  std::string fragments_;       // a fragmented text message being assembled
  State state_ = State::Idle;
  int close_code_ = 0;          // the server's close code, if it sent one
  bool told_ = false;           // on_closed was called
  std::string path_;            // request target when not the endpoint's
  Dialect dialect_ = Dialect::WebSocket;
  bool eio_connected_ = false;  // Engine.IO: the `40` of the namespace was seen
};

}  // namespace roomcast::bench
