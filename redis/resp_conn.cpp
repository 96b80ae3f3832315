// redis/resp_conn.cpp: a RESP connection on a libuv TCP handle, parsed by hiredis's redisReader.
// Rule: memory is freed only when both handles' close callbacks have run; the handler is never called after close().
#include "redis/resp_conn.h"

#include <cstring>

#include "redis/resp.h"

namespace roomcast::redis {

RespConn::RespConn(uv_loop_t* loop, RespHandler* handler, RespTracker* tracker)
    : loop_(loop), handler_(handler), tracker_(tracker), reader_(redisReaderCreate()) {}

RespConn::~RespConn() {
  if (reader_) redisReaderFree(reader_);
}

RespConn* RespConn::open(uv_loop_t* loop, const std::string& ip, int port, RespHandler* handler, RespTracker* tracker) {
  struct sockaddr_storage addr;
  std::memset(&addr, 0, sizeof addr);
  if (uv_ip4_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
      uv_ip6_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
    return nullptr;
  }
  RespConn* c = new RespConn(loop, handler, tracker);
  if (c->reader_ == nullptr || uv_tcp_init(loop, &c->tcp_) != 0) {
    delete c;
    return nullptr;
  }
  uv_check_init(loop, &c->check_);
  c->tcp_.data = c->check_.data = c->connect_.data = c->write_.data = c;
  int rc = uv_tcp_connect(&c->connect_, &c->tcp_, reinterpret_cast<const sockaddr*>(&addr), on_connect);
  if (rc != 0) {
    c->handler_ = nullptr;  // nothing was reported open: the caller sees nullptr and owns nothing
    c->tracker_ = nullptr;  // nor counted it
    c->start_close();
    return nullptr;
  }
  return c;
}

void RespConn::send(const std::vector<std::string_view>& argv) {
  if (closing_) return;
  format_command(argv, &out_);
  if (open_ && !uv_is_active(reinterpret_cast<uv_handle_t*>(&check_))) uv_check_start(&check_, on_check);
}

void RespConn::send_formatted(std::string_view resp) {
  if (closing_) return;
  out_.append(resp.data(), resp.size());
  if (open_ && !uv_is_active(reinterpret_cast<uv_handle_t*>(&check_))) uv_check_start(&check_, on_check);
}

void RespConn::close() {
  handler_ = nullptr;
  start_close();
}

void RespConn::start_close() {
  if (closing_) return;
  closing_ = true;
  out_.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&check_), on_closed);
}

void RespConn::lose(const char* why) {
  if (closing_) return;
  RespHandler* h = handler_;
  start_close();
  handler_ = nullptr;
  if (h) h->on_conn_lost(this, why);
}

void RespConn::on_closed(uv_handle_t* h) {
  RespConn* c = static_cast<RespConn*>(h->data);
  if (--c->handles_ > 0) return;
  RespTracker* t = c->tracker_;
  delete c;
  if (t) t->on_conn_freed();
}

void RespConn::on_connect(uv_connect_t* req, int status) {
  RespConn* c = static_cast<RespConn*>(req->data);
  if (c->closing_) return;
  if (status != 0) return c->lose(uv_strerror(status));
  c->open_ = true;
  uv_tcp_nodelay(&c->tcp_, 1);
  uv_tcp_keepalive(&c->tcp_, 1, 60);
  int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp_), on_alloc, on_read);
  if (rc != 0) return c->lose(uv_strerror(rc));
  if (c->handler_) c->handler_->on_conn_open(c);
  if (!c->closing_ && !c->out_.empty()) uv_check_start(&c->check_, on_check);
}

void RespConn::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  RespConn* c = static_cast<RespConn*>(h->data);
  *buf = uv_buf_init(c->in_, sizeof c->in_);
}

void RespConn::on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  RespConn* c = static_cast<RespConn*>(s->data);
  if (c->closing_) return;
  if (n < 0) return c->lose(n == UV_EOF ? "closed by Redis" : uv_strerror(static_cast<int>(n)));
  if (n == 0) return;
  if (redisReaderFeed(c->reader_, buf->base, static_cast<size_t>(n)) != REDIS_OK) return c->lose("reader failed");
  for (;;) {
    void* r = nullptr;
    if (redisReaderGetReply(c->reader_, &r) != REDIS_OK) return c->lose("protocol error in a Redis reply");
    if (r == nullptr) break;
    redisReply* reply = static_cast<redisReply*>(r);
    if (c->handler_) c->handler_->on_conn_reply(c, reply);
    freeReplyObject(reply);
    if (c->closing_) return;  // the handler closed it
  }
}

void RespConn::on_check(uv_check_t* h) {
  RespConn* c = static_cast<RespConn*>(h->data);
  uv_check_stop(h);
  c->flush();
}

void RespConn::flush() {
  if (closing_ || !open_ || write_busy_ || out_.empty()) return;
  // Most writes finish at once; the rest is handed to uv_write and the next batch waits for it.
  uv_buf_t b = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
  int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_), &b, 1);
  if (n == static_cast<int>(out_.size())) {
    out_.clear();
    return;
  }
  if (n < 0 && n != UV_EAGAIN) return lose(uv_strerror(n));
  if (n > 0) out_.erase(0, static_cast<size_t>(n));
  writing_.swap(out_);
  out_.clear();
  write_busy_ = true;
  b = uv_buf_init(writing_.data(), static_cast<unsigned>(writing_.size()));
  int rc = uv_write(&write_, reinterpret_cast<uv_stream_t*>(&tcp_), &b, 1, on_write);
  if (rc != 0) {
    write_busy_ = false;
    lose(uv_strerror(rc));
  }
}

void RespConn::on_write(uv_write_t* req, int status) {
  RespConn* c = static_cast<RespConn*>(req->data);
  c->write_busy_ = false;
  c->writing_.clear();
  if (c->closing_) return;
  if (status != 0) return c->lose(uv_strerror(status));
  c->flush();
}

}  // namespace roomcast::redis
