// One client TCP connection: HTTP requests, the upgrade, WebSocket messages, the close handshake.
// Rule: bytes queued during one loop turn go out in one uv_write (coalesced at the check phase), and
// whether the socket is read is decided in one place (update_reading).
#include "server/connection.h"

#include <cassert>
#include <cstring>

#include "protocol/http_path.h"
#include "server/hub.h"
#include "server/http_routes.h"
#include "server/log.h"
#include "server/server.h"

namespace roomcast::server {

using protocol::HttpResult;
using protocol::WsEvent;
using protocol::WsEventType;

struct WriteOp {
  uv_write_t req;                // req.data == this
  Connection* conn;              // the writer; alive until this callback (libuv cancels before close)
  std::vector<SharedBuf*> bufs;  // references held until the write ends
  size_t bytes = 0;              // total of bufs
};

// libuv callbacks, with access to the private parts.
struct ConnectionIo {
  static void on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    *buf = static_cast<Connection*>(h->data)->server_->read_buffer();
  }
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
    Connection* c = static_cast<Connection*>(s->data);
    if (nread > 0) {
      c->server_->metrics().bytes_in += static_cast<uint64_t>(nread);
      c->on_data(buf->base, static_cast<size_t>(nread));
    } else if (nread < 0) {
      if (nread != UV_EOF && nread != UV_ECONNRESET) LOG_DEBUG("conn %llu (%s): read error %s", (unsigned long long)c->id_, c->who().c_str(), uv_strerror(static_cast<int>(nread)));
      c->close_now();
    }
  }
  static void on_write(uv_write_t* req, int status) {
    WriteOp* op = static_cast<WriteOp*>(req->data);
    op->conn->on_write_done(op, status);
  }
  static bool ws_sink(void* user, const WsEvent& ev) { return static_cast<Connection*>(user)->on_ws_event(ev); }
  static void on_close(uv_handle_t* h) {
    Connection* c = static_cast<Connection*>(h->data);
    if (c->upgraded_) c->server_->upgrade_freed();
    c->server_->remove(c);
    delete c;
  }
};

Connection::Connection(Server* server, uint64_t id) : server_(server), id_(id) {}

Connection::~Connection() {
  ws_.reset(server_->frames());
  drop_pending();
}

Connection* Connection::accept(Server* server, uv_stream_t* listener, bool admin) {
  Connection* c = new Connection(server, 0);
  c->admin_ = admin;
  uv_tcp_init(server->loop(), &c->tcp_);
  c->tcp_.data = c;
  int r = uv_accept(listener, reinterpret_cast<uv_stream_t*>(&c->tcp_));
  if (r == 0) r = uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp_), ConnectionIo::on_alloc, ConnectionIo::on_read);
  c->reading_ = r == 0;
  c->id_ = server->add(c);
  if (r != 0) {
    LOG_WARN("accept failed: %s", uv_strerror(r));
    c->close_now();
    return nullptr;
  }
  uv_tcp_nodelay(&c->tcp_, 1);
  sockaddr_storage peer;
  int peer_len = sizeof(peer);
  if (uv_tcp_getpeername(&c->tcp_, reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0)
    protocol::ip_from_sockaddr(reinterpret_cast<sockaddr*>(&peer), &c->peer_);
  c->client_ = c->peer_;
  c->http_ = std::make_unique<HttpState>();
  c->user_ = protocol::anonymous_user();
  c->tokens_ = server->config().rate * 2;
  c->refill_ms_ = server->now_ms();
  server->http_deadlines.push(&c->deadline, server->now_ms());
  if (!admin) server->metrics().connections_accepted++;
  return c;
}

void Connection::on_data(const char* data, size_t len) {
  switch (state_) {
    case State::Http: on_http(data, len); break;
    case State::WebSocket:
    case State::Closing: on_ws(data, len); break;
    case State::Closed: break;
  }
}

void Connection::on_http(const char* data, size_t len) {
  if (close_after_flush_) return;  // after the last answer input is dropped (see update_reading)
  if (!http_->backlog.empty() || http_input_waits()) {
    // Input that waits keeps its order behind what already waits; reading stops until it is parsed.
    http_->backlog.append(data, len);
  } else {
    parse_http(data, len);
  }
  update_reading();
}

void Connection::parse_http(const char* data, size_t len) {
  in_parse_ = true;
  while (len > 0 && state_ == State::Http && !close_after_flush_) {
    if (http_input_waits()) {
      // data may be the backlog itself: resume_http() hands it over by swapping, so this is a copy.
      http_->backlog.assign(data, len);
      break;
    }
    size_t used = 0;
    HttpResult r = http_->parser.feed(data, len, &used);
    data += used;
    len -= used;
    if (r == HttpResult::NeedMore) break;
    if (r == HttpResult::Error) {
      client_ = peer_;  // a request that did not parse names no client
      LOG_DEBUG("conn %llu (%s): bad request: %s", (unsigned long long)id_, who().c_str(), http_->parser.error_reason());
      if (http_->parser.error_status() == 413) server_->metrics().bound_hit(Bound::ApiBody, "a server API request body over 64 KiB answered 413");
      send(make_error_response(http_->parser.error_status(), http_->parser.error_reason()));
      close_after_flush_ = true;
      break;
    }
    if (!admin_) server_->metrics().http_requests++;
    const protocol::HttpRequest& req = http_->parser.request();
    // Behind a proxy one connection carries requests of many clients: each request names its own.
    client_ = protocol::client_address(peer_, req, server_->config().trusted_proxy);
    if (r == HttpResult::Upgrade || protocol::wants_websocket(req)) {
      upgrade(req, data, len);
      break;
    }
    awaiting_response_ = true;
    Server* server = server_;
    uint64_t id = id_;
    bool keep = req.keep_alive;
    auto reply = [server, id, keep](SharedBuf* resp) {
      Connection* c = server->find(id);
      if (c && c->state_ == State::Http) c->on_response(resp, keep);
      else resp->unref();
    };
    if (admin_) route_admin(*server_, req, std::move(reply));
    else route_http(*server_, req, std::move(reply));
  }
  in_parse_ = false;
}

bool Connection::http_input_waits() {
  if (awaiting_response_) return true;
  size_t limit = server_->config().max_outbound;
  if (outbound_bytes() > limit) write_out();  // let the kernel take what it can: bytes it accepted are not unsent
  if (outbound_bytes() <= limit) {
    output_held_ = false;
    return false;
  }
  if (!output_held_) {
    output_held_ = true;
    server_->metrics().bound_hit(Bound::HttpOutbound, "a client pipelines HTTP requests faster than it reads the answers; its input waits");
  }
  return true;
}

void Connection::resume_http() {
  if (state_ == State::Http && !http_->backlog.empty() && !http_input_waits()) {
    std::string backlog;
    backlog.swap(http_->backlog);
    parse_http(backlog.data(), backlog.size());
  }
  update_reading();
}

void Connection::update_reading() {
  bool want = false;
  switch (state_) {
    // After its last answer an HTTP connection reads on and drops the input: closing a socket with
    // unread input sends a reset, which can destroy the answer before the client reads it.
    case State::Http: want = close_after_flush_ || (http_->backlog.empty() && !http_input_waits()); break;
    case State::WebSocket:
    case State::Closing: want = true; break;  // a reader too slow is closed instead; closing still reads the peer's close
    case State::Closed: want = false; break;
  }
  if (want == reading_) return;
  uv_stream_t* s = reinterpret_cast<uv_stream_t*>(&tcp_);
  if (!want) {
    uv_read_stop(s);
    reading_ = false;
  } else if (uv_read_start(s, ConnectionIo::on_alloc, ConnectionIo::on_read) == 0) {
    reading_ = true;
  } else {
    write_failed_ = true;  // the socket is unusable: closed at the next flush
    server_->mark_dirty(this);
  }
}

void Connection::on_response(SharedBuf* resp, bool keep_alive) {
  awaiting_response_ = false;
  send(resp);
  if (!keep_alive) {
    close_after_flush_ = true;
    http_->backlog.clear();
  } else {
    http_->parser.next();
    server_->http_deadlines.push(&deadline, server_->now_ms());
  }
  // An answer given at once (inside parse_http) lets its loop go on; a later one resumes here.
  if (!in_parse_) resume_http();
}

void Connection::upgrade(const protocol::HttpRequest& req, const char* rest, size_t rest_len) {
  protocol::HandshakeVerdict v = check_upgrade(*server_, req, admin_);
  if (v.status != 101) {
    LOG_DEBUG("conn %llu (%s): upgrade refused %d: %s", (unsigned long long)id_, who().c_str(), v.status, v.reason);
    send(make_error_response(v.status, v.reason));
    close_after_flush_ = true;
    return;
  }
  AuthGrant grant;
  if (server_->auth_on()) {
    // The token is checked before any WebSocket state exists: a refusal is a plain HTTP answer.
    std::string_view token;
    if (const std::string* h = req.header("authorization")) token = bearer_token(*h);
    std::optional<std::string> query_token;
    if (token.empty()) {
      std::string_view path, query;
      protocol::split_target(req.target, &path, &query);
      query_token = protocol::query_param(query, "token");
      if (query_token) token = *query_token;
    }
    if (server_->check_token(token, &grant, "upgrade") != AuthRefusal::None) {
      LOG_DEBUG("conn %llu (%s): upgrade refused 401: no valid token", (unsigned long long)id_, who().c_str());
      send(make_error_response(401, "a valid token is needed (?token= or Authorization: Bearer)"));
      close_after_flush_ = true;
      return;
    }
  }
  if (server_->upgraded_count() >= static_cast<size_t>(server_->config().max_connections)) {
    server_->metrics().bound_hit(Bound::MaxConnections, "WebSocket upgrades refused with 503 (--max-connections)");
    LOG_DEBUG("conn %llu (%s): upgrade refused 503: --max-connections", (unsigned long long)id_, who().c_str());
    send(make_error_response(503, "too many WebSocket connections on this instance; try again later"));
    close_after_flush_ = true;
    return;
  }
  send(make_upgrade_response(v.accept));
  std::string target = req.target;
  http_.reset();  // nothing of the HTTP state survives the upgrade but the target
  state_ = State::WebSocket;
  upgraded_ = true;
  server_->upgrade_opened();
  LOG_DEBUG("conn %llu (%s): WebSocket open", (unsigned long long)id_, who().c_str());
  server_->active_deadlines.push(&deadline, server_->now_ms());
  if (server_->auth_on()) set_grant(std::move(grant));
  server_->hub().on_open(*this, target);
  if (rest_len > 0 && state_ == State::WebSocket) on_ws(rest, rest_len);
}

void Connection::on_ws(const char* data, size_t len) {
  if (decoder_dead_) return;
  if (state_ == State::WebSocket) server_->active_deadlines.push(&deadline, server_->now_ms());
  int code = ws_.feed(server_->frames(), server_->ws_limits(), reinterpret_cast<const uint8_t*>(data), len, ConnectionIo::ws_sink, this);
  if (code != 0) {
    decoder_dead_ = true;
    if (code == protocol::kCloseTooBig) server_->metrics().bound_hit(Bound::MaxMessage, "a WebSocket message over --max-message closed 1009");
    const char* why = code == protocol::kCloseTooBig ? "message too big"
                      : code == protocol::kCloseInvalidPayload ? "invalid UTF-8"
                      : code == protocol::kCloseUnsupportedData ? "binary frames are not accepted"
                                                                 : "protocol error";
    LOG_DEBUG("conn %llu (%s): closing %d: %s", (unsigned long long)id_, who().c_str(), code, why);
    close_ws(static_cast<uint16_t>(code), why);
    close_after_flush_ = true;
  }
}

bool Connection::on_ws_event(const WsEvent& ev) {
  switch (ev.type) {
    case WsEventType::Text:
      if (state_ != State::WebSocket) return true;  // closing: input no longer counts
      server_->metrics().messages_in++;
      server_->hub().on_message(*this, ev.payload);
      return state_ == State::WebSocket || state_ == State::Closing;
    case WsEventType::Ping: {
      if (state_ != State::WebSocket) return true;  // closing: answers nothing, however many pings come
      std::string frame;
      server_->frames().encode(protocol::kWsPong, ev.payload, &frame);
      send(SharedBuf::make(std::move(frame)));
      return state_ != State::Closed;
    }
    case WsEventType::Pong: return true;
    case WsEventType::Close:
      close_received_ = true;
      decoder_dead_ = true;
      if (state_ == State::WebSocket) {
        uint16_t code = ev.close_code == protocol::kCloseNoStatus ? static_cast<uint16_t>(protocol::kCloseNormal) : ev.close_code;
        close_ws(code, "");
      }
      close_after_flush_ = true;
      if (writes_in_flight_ == 0 && pending_.empty()) close_now();
      return false;
  }
  return true;
}

void Connection::send(SharedBuf* buf) {
  // Closing answers nothing (its close frame is queued by close_ws itself); over the limit, nothing more.
  if (state_ == State::Closed || state_ == State::Closing || overflowed_) {
    buf->unref();
    return;
  }
  pending_.push_back(buf);
  pending_bytes_ += buf->size();
  // HTTP answers count too, but are never dropped: parse_http stops taking requests instead.
  if (state_ == State::WebSocket && outbound_bytes() > server_->config().max_outbound) {
    // Before judging, let the kernel take what it can: bytes it accepted are not unsent.
    write_out();
    if (state_ == State::WebSocket && outbound_bytes() > server_->config().max_outbound) {
      // A slow reader: drop what it has not taken and close it at the next flush, not here, since
      // send() runs inside fan-out loops that must not see members vanish.
      overflowed_ = true;
      drop_pending();
    }
  }
  server_->mark_dirty(this);
}

size_t Connection::write_queue_size() const { return uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&tcp_)); }

void Connection::drop_pending() {
  for (SharedBuf* b : pending_) b->unref();
  pending_.clear();
  pending_bytes_ = 0;
}

void Connection::send_text(std::string_view json) {
  std::string frame;
  server_->frames().encode(protocol::kWsText, json, &frame);
  server_->metrics().messages_out++;
  send(SharedBuf::make(std::move(frame)));
}

void Connection::close_ws(uint16_t code, std::string_view reason) {
  if (state_ == State::Http) {
    close_now();
    return;
  }
  if (state_ != State::WebSocket) return;
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xff));
  payload.append(reason.substr(0, 123));
  std::string frame;
  server_->frames().encode(protocol::kWsClose, payload, &frame);
  enter_closing();
  // The close frame is not counted against --max-outbound: it must be able to go out.
  pending_.push_back(SharedBuf::make(std::move(frame)));
  pending_bytes_ += pending_.back()->size();
  server_->mark_dirty(this);
  if (close_received_) close_after_flush_ = true;
}

void Connection::set_grant(AuthGrant grant) {
  if (!auth_) {
    user_ = grant.user;  // the token is the identity; a refresh (same sub) keeps the name shown to others
    identified_ = true;
    auth_ = std::make_unique<Auth>();
    auth_->expiry.owner = this;
  }
  auth_->grant = std::move(grant);
  if (auth_->grant.exp > 0 && state_ == State::WebSocket)
    server_->token_expiries.set(&auth_->expiry, (auth_->grant.exp + server_->config().jwt_leeway) * 1000);
  else
    server_->token_expiries.remove(&auth_->expiry);
}

void Connection::on_token_expired() {
  if (state_ != State::WebSocket) return;
  LOG_DEBUG("conn %llu (%s): token expired: closing 4001", (unsigned long long)id_, who().c_str());
  close_ws(protocol::kCloseTokenExpired, "token expired");
}

void Connection::enter_closing() {
  if (auth_) server_->token_expiries.remove(&auth_->expiry);
  state_ = State::Closing;
  server_->closing_deadlines.push(&deadline, server_->now_ms());
  server_->hub().on_close(*this);
}

void Connection::close_now() {
  if (state_ == State::Closed) return;
  if (state_ == State::WebSocket) server_->hub().on_close(*this);
  state_ = State::Closed;
  DeadlineList::remove(&deadline);
  if (auth_) server_->token_expiries.remove(&auth_->expiry);
  drop_pending();
  if (http_) http_->backlog.clear();
  update_reading();
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), ConnectionIo::on_close);
}

void Connection::flush() {
  if (write_failed_) {
    close_now();
    return;
  }
  if (overflowed_ && state_ == State::WebSocket) {
    server_->metrics().slow_consumer_drops++;
    server_->metrics().bound_hit(Bound::MaxOutbound, "a WebSocket reader too slow for --max-outbound closed 1008");
    LOG_INFO("conn %llu (%s): slow consumer, over %zu bytes unsent: closing 1008", (unsigned long long)id_, who().c_str(),
             server_->config().max_outbound);
    close_ws(protocol::kClosePolicy, "slow consumer");
  }
  write_out();
  // All of it went to the kernel at once: no write callback will come to close after the flush.
  if (close_after_flush_ && state_ != State::Closed && writes_in_flight_ == 0 && pending_.empty()) close_now();
}

void Connection::write_out() {
  if (pending_.empty() || state_ == State::Closed || write_failed_) return;
  uv_buf_t small[16];
  std::vector<uv_buf_t> large;
  uv_buf_t* bufs = small;
  size_t n = pending_.size();
  if (n > 16) {
    large.resize(n);
    bufs = large.data();
  }
  for (size_t i = 0; i < n; i++)
    bufs[i] = uv_buf_init(const_cast<char*>(pending_[i]->data()), static_cast<unsigned>(pending_[i]->size()));
  // Most writes go to the kernel whole, at once: then nothing is allocated (no WriteOp, and pending_ keeps
  // its capacity). uv_try_write refuses (UV_EAGAIN) while earlier writes are queued, so order holds.
  size_t skip = 0;  // buffers written whole
  size_t off = 0;   // bytes of bufs[skip] written
  int w = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_), bufs, static_cast<unsigned>(n));
  if (w > 0) {
    size_t left = static_cast<size_t>(w);
    server_->metrics().bytes_out += left;
    while (skip < n && left >= bufs[skip].len) left -= bufs[skip++].len;
    off = left;
    if (skip == n) {
      for (SharedBuf* b : pending_) b->unref();
      pending_.clear();
      if (pending_.capacity() > 64) pending_.shrink_to_fit();  // an idle connection keeps no burst's array
      pending_bytes_ = 0;
      return;
    }
  } else if (w != UV_EAGAIN && w != UV_ENOSYS) {
    write_failed_ = true;  // closed at the next flush, never here: write_out() runs inside fan-out loops
    server_->mark_dirty(this);
    return;
  }
  WriteOp* op = new WriteOp();
  op->req.data = op;
  op->conn = this;
  op->bufs.swap(pending_);
  op->bytes = pending_bytes_ - (w > 0 ? static_cast<size_t>(w) : 0);
  pending_bytes_ = 0;
  bufs[skip].base += off;
  bufs[skip].len -= off;
  for (size_t i = 0; i < skip; i++) op->bufs[i]->unref();  // written: their references go now
  op->bufs.erase(op->bufs.begin(), op->bufs.begin() + static_cast<ptrdiff_t>(skip));
  // libuv writes at once what the kernel takes and queues the rest (write_queue_size).
  int r = uv_write(&op->req, reinterpret_cast<uv_stream_t*>(&tcp_), bufs + skip, static_cast<unsigned>(n - skip), ConnectionIo::on_write);
  if (r != 0) {
    // Closed at the next flush, never here: write_out() runs inside fan-out loops.
    for (SharedBuf* b : op->bufs) b->unref();
    delete op;
    write_failed_ = true;
    server_->mark_dirty(this);
    return;
  }
  writes_in_flight_++;
}

void Connection::on_write_done(WriteOp* op, int status) {
  for (SharedBuf* b : op->bufs) b->unref();
  if (status == 0) server_->metrics().bytes_out += op->bytes;
  writes_in_flight_--;
  delete op;
  if (state_ == State::Closed) return;
  if (status != 0) {
    close_now();
    return;
  }
  if (close_after_flush_ && writes_in_flight_ == 0 && pending_.empty()) {
    close_now();
    return;
  }
  if (state_ == State::Http && output_held_) resume_http();  // answers drained: take the next requests
}

void Connection::on_deadline(DeadlineList* list, uint64_t now_ms) {
  if (state_ == State::WebSocket && list == &server_->active_deadlines) {
    std::string frame;
    server_->frames().encode(protocol::kWsPing, "", &frame);
    send(SharedBuf::make(std::move(frame)));
    if (state_ == State::WebSocket) server_->pinged_deadlines.push(&deadline, now_ms);
  } else if (state_ == State::WebSocket && list == &server_->pinged_deadlines) {
    LOG_DEBUG("conn %llu (%s): idle for two ping intervals: closing 1001", (unsigned long long)id_, who().c_str());
    close_ws(protocol::kCloseGoingAway, "idle");
  } else {
    close_now();  // head timeout, or the closing handshake ran out of time
  }
}

std::string Connection::who() const {
  if (client_ == peer_) return protocol::format_ip(client_);
  return protocol::format_ip(client_) + " via " + protocol::format_ip(peer_);
}

bool Connection::take_token(uint64_t now_ms, bool* flooding) {
  const double rate = server_->config().rate, burst = rate * 2;
  tokens_ += static_cast<double>(now_ms - refill_ms_) * rate / 1000.0;
  if (tokens_ > burst) tokens_ = burst;
  refill_ms_ = now_ms;
  *flooding = false;
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return true;
  }
  server_->metrics().bound_hit(Bound::RateLimit, "client messages refused by the rate limit (--rate)");
  if (now_ms - refused_since_ms_ > 10000) {
    refused_since_ms_ = now_ms;
    refused_ = 0;
  }
  *flooding = ++refused_ > 1000;
  return false;
}

}  // namespace roomcast::server
