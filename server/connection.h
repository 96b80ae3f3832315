// One client TCP connection: HTTP requests, the upgrade, WebSocket messages, the close handshake.
// Rule: the object is freed only in its uv_close callback; everything else marks and returns.
// "Unsent" (for --max-outbound) is what is queued here plus what libuv could not yet hand to the kernel.
//
//   accept ──> Http ──(101)──> WebSocket ──(close sent or received)──> Closing ──> [uv_close] ──> freed
//               │  ▲ keep-alive     │ ping every interval; no traffic     │ peer's close, EOF,
//               │  └───────┘        │ for two intervals: close 1001       │ flush after a violation,
//               └──(error, EOF, Connection: close, head timeout)──────────┴─ or the closing deadline
//
// Reading (update_reading decides, nothing else starts or stops it): WebSocket and Closing always read
// (a reader too slow is closed, not waited for; closing waits for the peer's close frame). HTTP reads
// unless input waits: an answer is being prepared (asynchronously), or the answers queued are over
// --max-outbound (pipelining without reading), or bytes already read wait to be parsed. Whatever ends
// the wait (the answer, a write done) calls resume_http, which parses what waits and decides again.
// Closing answers nothing (no pong, no error): only its close frame goes out.
#pragma once
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/client_addr.h"
#include "protocol/http_parser.h"
#include "protocol/ids.h"
#include "protocol/ws_codec.h"
#include "server/auth.h"
#include "server/deadlines.h"
#include "server/expiry.h"
#include "server/room.h"
#include "server/shared_buf.h"

namespace roomcast::server {

class Server;

class Connection : public Member {
 public:
  enum class State : uint8_t { Http, WebSocket, Closing, Closed };

  // Accepts one pending connection from listener (admin: the --admin-port one, which answers only
  // /metrics, /healthz and /debug/rooms and never upgrades). Returns nullptr (and logs) on failure.
  static Connection* accept(Server* server, uv_stream_t* listener, bool admin);

  uint64_t id() const { return id_; }
  bool admin() const { return admin_; }
  State state() const { return state_; }
  // The client's address: the TCP peer, or behind a --trusted-proxy the address its X-Forwarded-For names
  // (of the request being handled; of the upgrade request once a WebSocket).
  const protocol::IpAddr& client_addr() const { return client_; }
  // For log lines: "203.0.113.9", or "203.0.113.9 via 127.0.0.1" when a trusted proxy named the client.
  std::string who() const;
  bool is_websocket() const { return state_ == State::WebSocket; }

  // Queues a complete frame (or HTTP response) shared with other recipients; takes its own reference.
  // Over --max-outbound a WebSocket is closed 1008 instead; a closing connection queues nothing.
  void send(SharedBuf* buf);
  // Frames one text message for this connection only.
  void send_text(std::string_view json);
  // Starts the closing handshake with code (WebSocket), or closes at once (HTTP).
  void close_ws(uint16_t code, std::string_view reason);
  // Closes the socket now; the object is freed in the close callback.
  void close_now();
  // Acts on an overflow or a failed write, then hands queued bytes to uv_write (called once per
  // loop turn for dirty connections, outside any fan-out).
  void flush();
  // The deadline of list (the list it was popped from) passed.
  void on_deadline(DeadlineList* list, uint64_t now_ms);
  // Takes one token of the rate limit. Returns false when none is left.
  bool take_token(uint64_t now_ms, bool* flooding);

  // Authentication: the grant of the connection's token (identity, rooms, exp), when auth is on.
  bool authenticated() const { return auth_ != nullptr; }
  const AuthGrant& grant() const { return auth_->grant; }  // authenticated() only
  // Takes a verified grant: the identity at the upgrade (fixed from then on), its rooms and expiry.
  void set_grant(AuthGrant grant);
  // The token's exp (+ leeway) passed without a refresh: close 4001.
  void on_token_expired();

  protocol::User& user() { return user_; }
  bool identified() const { return identified_; }
  void set_identified() { identified_ = true; }
  // Member (the rooms' view of a connection).
  uint64_t member_id() const override { return id_; }
  const protocol::User& member_user() const override { return user_; }
  void send_frame(SharedBuf* frame) override { send(frame->ref()); }
  void send_event(std::string_view json) override { send_text(json); }
  // Bytes queued and not yet taken by the kernel.
  size_t outbound_bytes() const { return pending_bytes_ + write_queue_size(); }

  Connection* next_dirty = nullptr;  // the server's list of connections with queued bytes
  bool dirty = false;                // in that list
  DeadlineHook deadline;             // in one of the server's deadline lists

 private:
  friend struct ConnectionIo;
  Connection(Server* server, uint64_t id);
  ~Connection();

  void on_data(const char* data, size_t len);
  void on_http(const char* data, size_t len);
  // Parses requests from data until it runs out or input must wait; what is left goes to http_backlog_.
  void parse_http(const char* data, size_t len);
  // True while HTTP input must wait: an answer pending, or queued answers over --max-outbound.
  bool http_input_waits();
  // Parses what waited, if it need not wait any more, then decides about reading.
  void resume_http();
  // The one place that starts or stops reading the socket (see the comment at the top).
  void update_reading();
  void upgrade(const protocol::HttpRequest& req, const char* rest, size_t rest_len);
  void on_response(SharedBuf* resp, bool keep_alive);
  void on_ws(const char* data, size_t len);
  bool on_ws_event(const protocol::WsEvent& ev);
  void on_write_done(struct WriteOp* op, int status);
  void enter_closing();
  void drop_pending();
  void write_out();
  size_t write_queue_size() const;

  uv_tcp_t tcp_;                                  // the socket; tcp_.data == this
  Server* server_;                                // owns every connection
  uint64_t id_;                                   // unique in the process, never reused
  protocol::IpAddr peer_;                         // the TCP peer (a proxy, behind one)
  protocol::IpAddr client_;                       // the client (see client_addr()); the peer until a request names another
  struct HttpState {
    protocol::HttpParser parser;
    std::string backlog;  // bytes read, not parsed while HTTP input waits (at most one read)
  };
  std::unique_ptr<HttpState> http_;               // while Http only (dropped at the upgrade)
  protocol::WsDecoder ws_;                        // WebSocket input; holds no wslay context while idle
  std::vector<SharedBuf*> pending_;               // queued, not yet handed to uv_write
  size_t pending_bytes_ = 0;                      // total size of pending_
  uint32_t writes_in_flight_ = 0;                 // uv_write requests not yet called back
  protocol::User user_;                           // identity (anonymous until named; the token's user with auth)
  // With a token (auth on) only, so that a connection without one carries neither: the current
  // token's grant, and the connection's place in the server's token_expiries while it can expire.
  struct Auth {
    AuthGrant grant;
    ExpiryHook expiry;  // owner: the connection
  };
  std::unique_ptr<Auth> auth_;
  double tokens_ = 0;                             // rate-limit bucket
  uint64_t refill_ms_ = 0;                        // last refill, loop ms
  uint64_t refused_since_ms_ = 0;                 // start of the current 10 s refusal window
  uint32_t refused_ = 0;                          // refusals in that window
  State state_ = State::Http;
  bool admin_ = false;                            // accepted on the admin port (fixed at accept)
  bool identified_ = false;                       // the user was named by the client (first identity sticks)
  bool close_after_flush_ = false;                // close the socket once everything queued is written
  bool awaiting_response_ = false;                // an HTTP answer is being prepared; input waits
  bool output_held_ = false;                      // HTTP answers queued over --max-outbound; input waits
  bool in_parse_ = false;                         // inside parse_http (an answer given at once must not re-enter)
  bool reading_ = false;                          // uv_read_start is in effect
  bool upgraded_ = false;                         // counted in Server::upgraded_count() until freed
  bool close_received_ = false;                   // the peer's close frame arrived
  bool decoder_dead_ = false;                     // input is ignored (violation, or close seen)
  bool overflowed_ = false;                       // over --max-outbound: closed 1008 at the next flush
  bool write_failed_ = false;                     // uv_write refused: closed at the next flush
};

}  // namespace roomcast::server
