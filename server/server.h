// The process: listener, connections, per-loop resources (read buffer, wslay pool, deadline lists),
// and the order of a clean shutdown.
// Rule: the server outlives every connection and the broker; it is destroyed after the loop has closed all handles.
#pragma once
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "protocol/http_parser.h"
#include "protocol/ws_codec.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/deadlines.h"
#include "server/expiry.h"
#include "server/metrics.h"

namespace roomcast::server {

class Broker;
class Connection;
class Hub;
class StaticFiles;

class Server {
 public:
  Server(uv_loop_t* loop, Config config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens (SO_REUSEPORT; the admin port, if any, alone), starts the broker. Returns 0 or a negative uv error.
  int start();
  // Stops accepting, closes every client with 1001, stops the broker; the loop then runs dry.
  void shutdown();
  bool shutting_down() const { return shutting_down_; }

  // For connections and the hub.
  uv_loop_t* loop() const { return loop_; }
  const Config& config() const { return config_; }
  Metrics& metrics() { return metrics_; }
  protocol::WsFramePool& frames() { return frames_; }
  const protocol::WsLimits& ws_limits() const { return ws_limits_; }
  Hub& hub() { return *hub_; }
  Broker& broker() { return *broker_; }
  const StaticFiles& static_files() const { return *static_files_; }
  uint64_t now_ms() const { return uv_now(loop_); }
  uv_buf_t read_buffer() { return uv_buf_init(read_buf_.get(), kReadBufferSize); }
  void mark_dirty(Connection* c);
  Connection* find(uint64_t id) const;
  // Calls f(Connection&) for every connection; f must not close any (collect, then close).
  template <typename F>
  void for_each_connection(F f) const {
    for (const auto& entry : connections_) f(*entry.second);
  }
  // Connections of the public port (the admin port's own are not counted in its metrics).
  size_t connection_count() const { return connections_.size() - admin_connections_; }
  size_t websocket_count() const;
  // Connections upgraded to WebSocket and not yet freed (closing ones too): what --max-connections bounds.
  size_t upgraded_count() const { return upgraded_; }
  void upgrade_opened() { upgraded_++; }
  void upgrade_freed() { upgraded_--; }
  uint64_t outbound_bytes() const;
  Gauges gauges() const;

  // Authentication (section 8). True when a key is configured.
  bool auth_on() const { return auth_.enabled(); }
  // Verifies token now; a refusal is counted (roomcast_auth_refused_total) and logged at debug, without the token.
  AuthRefusal check_token(std::string_view token, AuthGrant* grant, const char* where);
  // SIGHUP: re-reads the key files; a file that fails keeps the keys in use (and the log says why).
  void reload_keys();
  // Milliseconds since the epoch (token times are wall-clock times).
  static int64_t wall_ms();

  // Deadline lists (each with one fixed duration).
  DeadlineList http_deadlines;     // a request head must complete (and keep-alive idle) within 10 s
  DeadlineList active_deadlines;   // WebSocket: no traffic for one ping interval -> ping
  DeadlineList pinged_deadlines;   // WebSocket: pinged, no traffic for another interval -> close 1001
  DeadlineList closing_deadlines;  // closing handshake: peer must answer (or drain) within 2 s
  ExpiryHeap token_expiries;       // WebSocket with a token: exp + leeway (wall ms) -> close 4001

  // Connection lifecycle.
  uint64_t add(Connection* c);
  void remove(Connection* c);

 private:
  static constexpr size_t kReadBufferSize = 64 * 1024;
  int listen_reuseport();
  // This instance's own listener for /metrics, /healthz and /debug/rooms (--admin-port): no SO_REUSEPORT.
  int listen_admin();
  void tick();
  void flush_dirty();
  void maybe_finish_shutdown();

  uv_loop_t* loop_;
  Config config_;
  Metrics metrics_;
  Verifier auth_;                                 // JWT keys; no key: authentication off
  protocol::WsFramePool frames_;                  // per-loop wslay contexts and encoder
  protocol::WsLimits ws_limits_;
  std::unique_ptr<char[]> read_buf_;              // one read buffer for every socket of the loop
  std::unique_ptr<StaticFiles> static_files_;
  std::unique_ptr<Hub> hub_;                      // rooms and messages
  std::unique_ptr<Broker> broker_;                // in-process or Redis
  uv_tcp_t listener_;                             // SO_REUSEPORT socket
  uv_tcp_t admin_listener_;                       // --admin-port socket (this instance's alone)
  uv_timer_t tick_timer_;                         // drives the deadline lists and room lingering
  uv_check_t flush_check_;                        // flushes dirty connections after each poll
  uv_idle_t flush_idle_;                          // keeps poll from blocking while something is dirty
  uv_timer_t shutdown_timer_;                     // forces the last closes after the grace period
  std::unordered_map<uint64_t, Connection*> connections_;
  Connection* dirty_head_ = nullptr;              // connections with bytes to flush
  uint64_t next_id_ = 1;
  size_t upgraded_ = 0;                           // see upgraded_count()
  int open_handles_ = 0;                          // own handles not yet closed
  bool listener_open_ = false;                    // listener_ initialised and not closed
  bool admin_open_ = false;                       // admin_listener_ initialised and not closed
  size_t admin_connections_ = 0;                  // connections accepted on the admin port, not yet removed
  bool shutting_down_ = false;
  bool broker_stopped_ = false;
};

}  // namespace roomcast::server
