// The process: listener, connections, per-loop resources, and the order of a clean shutdown.
// Rule: shutdown closes clients first, then the broker, then the server's own handles, so the
// loop ends by running out of handles and uv_loop_close() returns 0.
#include "server/server.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/time.h>

#include <cstring>

#include "server/connection.h"
#include "server/hub.h"
#include "server/local_broker.h"
#include "server/log.h"
#include "server/redis_broker.h"
#include "server/static_files.h"

namespace roomcast::server {

Server::Server(uv_loop_t* loop, Config config)
    : http_deadlines(10000),
      active_deadlines(0),
      pinged_deadlines(0),
      closing_deadlines(2000),
      loop_(loop),
      config_(std::move(config)),
      read_buf_(new char[kReadBufferSize]),
      static_files_(std::make_unique<StaticFiles>()),
      hub_(std::make_unique<Hub>(this)) {
  uint64_t ping_ms = static_cast<uint64_t>(config_.ping_interval * 1000);
  active_deadlines.set_duration(ping_ms);
  pinged_deadlines.set_duration(ping_ms);
  ws_limits_.max_message = config_.max_message;
  if (config_.redis_url.empty() && config_.redis_cluster.empty())
    broker_ = std::make_unique<LocalBroker>(loop_, hub_.get(), static_cast<size_t>(config_.history), config_.history_memory, &metrics_);
  else
    broker_ = make_redis_broker(loop_, config_, hub_.get());
  if (broker_) hub_->attach(broker_.get());
}

Server::~Server() = default;

int Server::listen_reuseport() {
  bool v6 = config_.host.find(':') != std::string::npos;
  struct sockaddr_storage addr;
  int r = v6 ? uv_ip6_addr(config_.host.c_str(), config_.port, reinterpret_cast<sockaddr_in6*>(&addr))
             : uv_ip4_addr(config_.host.c_str(), config_.port, reinterpret_cast<sockaddr_in*>(&addr));
  if (r != 0) return r;
  // libuv 1.44 has no UV_TCP_REUSEPORT: make the socket here and hand it to libuv.
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&addr), v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in)) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  uv_tcp_init(loop_, &listener_);
  listener_.data = this;
  listener_open_ = true;
  open_handles_++;
  if ((r = uv_tcp_open(&listener_, fd)) != 0) {
    close(fd);
    return r;
  }
  r = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 1024, [](uv_stream_t* s, int status) {
    Server* self = static_cast<Server*>(s->data);
    if (status < 0) {
      LOG_WARN("accept: %s", uv_strerror(status));
      return;
    }
    if (!self->shutting_down_) Connection::accept(self, s, false);
  });
  return r;
}

int Server::listen_admin() {
  bool v6 = config_.admin_host.find(':') != std::string::npos;
  struct sockaddr_storage addr;
  int r = v6 ? uv_ip6_addr(config_.admin_host.c_str(), config_.admin_port, reinterpret_cast<sockaddr_in6*>(&addr))
             : uv_ip4_addr(config_.admin_host.c_str(), config_.admin_port, reinterpret_cast<sockaddr_in*>(&addr));
  if (r != 0) return r;
  uv_tcp_init(loop_, &admin_listener_);
  admin_listener_.data = this;
  admin_open_ = true;
  open_handles_++;
  // uv_tcp_bind sets SO_REUSEADDR only: a port another process listens on is EADDRINUSE (here or at uv_listen).
  if ((r = uv_tcp_bind(&admin_listener_, reinterpret_cast<sockaddr*>(&addr), 0)) != 0) return r;
  return uv_listen(reinterpret_cast<uv_stream_t*>(&admin_listener_), 128, [](uv_stream_t* s, int status) {
    Server* self = static_cast<Server*>(s->data);
    if (status < 0) {
      LOG_WARN("accept (admin port): %s", uv_strerror(status));
      return;
    }
    if (!self->shutting_down_) Connection::accept(self, s, true);
  });
}

int Server::start() {
  int files = static_files_->load(config_.static_dir);
  if (files < 0) LOG_WARN("static folder %s cannot be read: the web client is not served", config_.static_dir.c_str());
  else LOG_INFO("serving %d static files (%zu bytes) from %s", files, static_files_->bytes(), config_.static_dir.c_str());

  uv_timer_init(loop_, &tick_timer_);
  uv_check_init(loop_, &flush_check_);
  uv_idle_init(loop_, &flush_idle_);
  uv_timer_init(loop_, &shutdown_timer_);
  tick_timer_.data = flush_check_.data = flush_idle_.data = shutdown_timer_.data = this;
  open_handles_ += 4;
  uint64_t tick_ms = static_cast<uint64_t>(config_.ping_interval * 1000 / 4);
  tick_ms = tick_ms < 20 ? 20 : tick_ms > 250 ? 250 : tick_ms;
  uv_timer_start(&tick_timer_, [](uv_timer_t* t) { static_cast<Server*>(t->data)->tick(); }, tick_ms, tick_ms);
  uv_check_start(&flush_check_, [](uv_check_t* h) { static_cast<Server*>(h->data)->flush_dirty(); });

  if (!broker_) return UV_EINVAL;  // make_redis_broker logged why
  std::string auth_error = auth_.configure(auth_settings(config_));
  if (!auth_error.empty()) {
    LOG_ERROR("authentication: %s", auth_error.c_str());
    return UV_EINVAL;
  }
  if (auth_.enabled()) LOG_INFO("authentication on: %zu key(s); WebSockets and the room API need a token", auth_.key_count());
  int r = listen_reuseport();
  if (r != 0) {
    LOG_ERROR("cannot listen on %s:%d: %s", config_.host.c_str(), config_.port, uv_strerror(r));
    return r;
  }
  if (config_.admin_port != 0 && (r = listen_admin()) != 0) {
    LOG_ERROR("cannot listen on the admin port %s:%d: %s", config_.admin_host.c_str(), config_.admin_port, uv_strerror(r));
    return r;
  }
  if ((r = broker_->start()) != 0) {
    LOG_ERROR("broker failed to start: %s", uv_strerror(r));
    return r;
  }
  return 0;
}

void Server::tick() {
  uint64_t now = now_ms();
  DeadlineList* lists[] = {&http_deadlines, &active_deadlines, &pinged_deadlines, &closing_deadlines};
  for (DeadlineList* list : lists) {
    while (DeadlineHook* h = list->pop_expired(now)) static_cast<Connection*>(h->owner)->on_deadline(list, now);
  }
  if (!token_expiries.empty()) {
    int64_t wall = wall_ms();
    while (ExpiryHook* h = token_expiries.pop_expired(wall)) static_cast<Connection*>(h->owner)->on_token_expired();
  }
  hub_->tick(now);
}

int64_t Server::wall_ms() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
}

AuthRefusal Server::check_token(std::string_view token, AuthGrant* grant, const char* where) {
  AuthRefusal r = auth_.verify(token, wall_ms() / 1000, grant);
  if (r != AuthRefusal::None) {
    metrics_.auth_refused[static_cast<int>(r)]++;
    LOG_DEBUG("%s: token refused: %s", where, auth_refusal_name(r));
  }
  return r;
}

void Server::reload_keys() {
  if (config_.jwt_public_keys.empty()) {
    LOG_INFO("SIGHUP: no --jwt-public-key file to reload");
    return;
  }
  std::string err = auth_.reload();
  if (err.empty()) LOG_INFO("SIGHUP: reloaded %zu public key file(s)", config_.jwt_public_keys.size());
  else LOG_WARN("SIGHUP: key files not reloaded, the keys in use stay: %s", err.c_str());
}

void Server::mark_dirty(Connection* c) {
  if (c->dirty) return;
  c->dirty = true;
  c->next_dirty = dirty_head_;
  dirty_head_ = c;
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&flush_idle_)))
    uv_idle_start(&flush_idle_, [](uv_idle_t*) {});  // no-op: only keeps poll from blocking until the check phase
}

void Server::flush_dirty() {
  while (dirty_head_) {
    Connection* c = dirty_head_;
    dirty_head_ = c->next_dirty;
    c->next_dirty = nullptr;
    c->dirty = false;
    c->flush();
  }
  uv_idle_stop(&flush_idle_);
}

uint64_t Server::add(Connection* c) {
  uint64_t id = next_id_++;
  connections_[id] = c;
  if (c->admin()) admin_connections_++;
  c->deadline.owner = c;
  return id;
}

void Server::remove(Connection* c) {
  if (c->dirty) {
    for (Connection** p = &dirty_head_; *p; p = &(*p)->next_dirty) {
      if (*p == c) {
        *p = c->next_dirty;
        break;
      }
    }
    c->dirty = false;
  }
  if (connections_.erase(c->id()) && c->admin()) admin_connections_--;
  maybe_finish_shutdown();
}

Connection* Server::find(uint64_t id) const {
  auto it = connections_.find(id);
  return it == connections_.end() ? nullptr : it->second;
}

size_t Server::websocket_count() const {
  size_t n = 0;
  for (const auto& [id, c] : connections_) n += c->is_websocket();
  return n;
}

uint64_t Server::outbound_bytes() const {
  uint64_t n = 0;
  for (const auto& [id, c] : connections_) n += c->outbound_bytes();
  return n;
}

Gauges Server::gauges() const {
  Gauges g{};
  g.connections = connection_count();
  g.websockets = websocket_count();
  g.rooms = hub_->room_count();
  g.subscriptions = broker_->subscriptions();
  g.redis_reconnects = broker_->reconnects();
  g.outbound_bytes = outbound_bytes();
  g.broker_up = broker_->up() ? 1 : 0;
  g.mode = broker_->mode();
  g.instance = config_.instance_id.c_str();
  return g;
}

void Server::shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  LOG_INFO("shutting down: closing %zu connections", connections_.size());
  auto on_closed = [](uv_handle_t* h) { static_cast<Server*>(h->data)->open_handles_--; };
  if (listener_open_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), on_closed);
    listener_open_ = false;
  }
  if (admin_open_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&admin_listener_), on_closed);
    admin_open_ = false;
  }
  std::vector<Connection*> all;
  for (const auto& [id, c] : connections_) all.push_back(c);
  for (Connection* c : all) {
    if (c->is_websocket()) c->close_ws(protocol::kCloseGoingAway, "server shutting down");
    else if (c->state() == Connection::State::Http) c->close_now();
  }
  uint64_t grace = static_cast<uint64_t>(config_.shutdown_grace * 1000);
  uv_timer_start(&shutdown_timer_, [](uv_timer_t* t) {
    Server* self = static_cast<Server*>(t->data);
    std::vector<Connection*> left;
    for (const auto& [id, c] : self->connections_) left.push_back(c);
    if (!left.empty()) LOG_WARN("shutdown: %zu connections did not finish closing; dropping them", left.size());
    for (Connection* c : left) c->close_now();
  }, grace, 0);
  if (broker_) {
    broker_->stop([this] {
      broker_stopped_ = true;
      maybe_finish_shutdown();
    });
  } else {
    broker_stopped_ = true;
  }
  maybe_finish_shutdown();
}

void Server::maybe_finish_shutdown() {
  if (!shutting_down_ || !broker_stopped_ || !connections_.empty()) return;
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&tick_timer_))) return;
  auto on_closed = [](uv_handle_t* h) { static_cast<Server*>(h->data)->open_handles_--; };
  uv_close(reinterpret_cast<uv_handle_t*>(&tick_timer_), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&flush_check_), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&flush_idle_), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&shutdown_timer_), on_closed);
}

}  // namespace roomcast::server
