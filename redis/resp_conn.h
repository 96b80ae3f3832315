// redis/resp_conn.h: one TCP connection to one Redis node, spoken in RESP: our writes, hiredis's reply reader.
// Rule: the owner's handler hears open, every reply in order, and at most one loss; after close() it hears nothing.
#pragma once

#include <hiredis/hiredis.h>
#include <uv.h>

#include <string>
#include <string_view>
#include <vector>

namespace roomcast::redis {

class RespConn;

// What a connection tells its owner. Replies are borrowed: valid only during the call.
class RespHandler {
 public:
  virtual ~RespHandler() = default;
  virtual void on_conn_open(RespConn* c) = 0;                    // the TCP connection is established
  virtual void on_conn_reply(RespConn* c, redisReply* reply) = 0;  // the next reply (or push), in order
  virtual void on_conn_lost(RespConn* c, const char* why) = 0;   // refused, reset, closed, protocol error:
                                                                 // the connection is closing itself
};

// Counts open connections so that their owner knows when every handle is closed.
class RespTracker {
 public:
  virtual ~RespTracker() = default;
  virtual void on_conn_freed() = 0;
};

// Lifetime: open() -> [CONNECTING] -> OPEN -> closing (close(), or a loss) -> freed in uv_close's
// callback, which tells the tracker. A connection is always heap-allocated and frees itself; its owner
// drops its pointer when it calls close() or hears on_conn_lost.
class RespConn {
 public:
  // Starts connecting to ip:port (an IPv4 or IPv6 literal). Returns nullptr (nothing to free) when the
  // address is not a literal or a socket cannot be made.
  static RespConn* open(uv_loop_t* loop, const std::string& ip, int port, RespHandler* handler, RespTracker* tracker);

  // Queues one command; written with everything else queued in this loop turn. Ignored once closing.
  void send(const std::vector<std::string_view>& argv);
  // Queues one command already in RESP form.
  void send_formatted(std::string_view resp);
  // Closes at once: queued writes are dropped, no handler call from now on.
  void close();
  bool is_open() const { return open_ && !closing_; }
  size_t queued_bytes() const { return out_.size() + writing_.size(); }

 private:
  RespConn(uv_loop_t* loop, RespHandler* handler, RespTracker* tracker);
  ~RespConn();
  void lose(const char* why);
  void flush();
  void start_close();
  static void on_connect(uv_connect_t* req, int status);
  static void on_alloc(uv_handle_t* h, size_t hint, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_check(uv_check_t* c);
  static void on_closed(uv_handle_t* h);

  uv_loop_t* loop_;
  RespHandler* handler_;   // null once closing: nobody to tell
  RespTracker* tracker_;
  uv_tcp_t tcp_;
  uv_check_t check_;       // flushes out_ after the loop turn's callbacks have queued their commands
  uv_connect_t connect_;
  uv_write_t write_;
  redisReader* reader_;    // hiredis's RESP parser
  std::string out_;        // queued, not yet handed to the kernel
  std::string writing_;    // handed to uv_write, not yet done
  bool open_ = false;      // connected
  bool closing_ = false;   // close() or a loss: no more handler calls
  bool write_busy_ = false;
  int handles_ = 2;        // tcp_ and check_, until their close callbacks
  char in_[16384];         // read buffer
};

}  // namespace roomcast::redis
