// redis/uv_adapter.cpp: a corrected hiredis<->libuv adapter (hiredis 0.14's own drops poll errors).
// Rule: a poll error is handed to hiredis as an event so it sees the failure; memory is freed only in uv_close's callback.
#include "redis/uv_adapter.h"

#include <sys/socket.h>

#include <new>

#include "redis/client.h"

namespace roomcast::redis {
namespace {

struct Adapter {
  redisAsyncContext* context = nullptr;  // null once hiredis called cleanup (the context is being freed)
  uv_poll_t poll;                        // watches context->c.fd
  int events = 0;                        // UV_READABLE | UV_WRITABLE that hiredis asked for
  bool closing = false;                  // uv_close was called on `poll`
  AdapterClosed on_closed = nullptr;     // owner's notification, from the close callback
  void* arg = nullptr;                   // owner's argument for on_closed
};

void on_close(uv_handle_t* handle) {
  Adapter* a = static_cast<Adapter*>(handle->data);
  AdapterClosed cb = a->on_closed;
  void* arg = a->arg;
  delete a;
  if (cb) cb(arg);
}

void on_poll(uv_poll_t* handle, int status, int events) {
  Adapter* a = static_cast<Adapter*>(handle->data);
  if (status < 0) {
    // libuv reports POLLERR as UV_EBADF and has already stopped watching the fd, so hiredis would
    // wait forever. Shut the socket down so the read below fails (EOF or the pending socket error)
    // and hiredis runs its own disconnect path: pending callbacks get a NULL reply, onDisconnect runs.
    if (a->context) {
      shutdown(a->context->c.fd, SHUT_RDWR);
      redisAsyncHandleRead(a->context);  // also completes (fails) a connect still in progress
    }
    return;
  }
  if (a->context && (events & UV_READABLE)) redisAsyncHandleRead(a->context);
  // The read may have freed the context (cleanup sets a->context to null); `a` lives until on_close.
  if (a->context && (events & UV_WRITABLE)) redisAsyncHandleWrite(a->context);
}

void update(Adapter* a, int events) {
  if (a->closing) return;
  a->events = events;
  if (events) {
    uv_poll_start(&a->poll, events, on_poll);
  } else {
    uv_poll_stop(&a->poll);
  }
}

void add_read(void* p) { Adapter* a = static_cast<Adapter*>(p); update(a, a->events | UV_READABLE); }
void del_read(void* p) { Adapter* a = static_cast<Adapter*>(p); update(a, a->events & ~UV_READABLE); }
void add_write(void* p) { Adapter* a = static_cast<Adapter*>(p); update(a, a->events | UV_WRITABLE); }
void del_write(void* p) { Adapter* a = static_cast<Adapter*>(p); update(a, a->events & ~UV_WRITABLE); }

// hiredis calls this while freeing the context (possibly more than once): close the handle, which
// must happen before hiredis closes the fd right after; the memory goes in on_close.
void cleanup(void* p) {
  Adapter* a = static_cast<Adapter*>(p);
  a->context = nullptr;
  if (a->closing) return;
  a->closing = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&a->poll), on_close);
}

}  // namespace

int uv_attach(redisAsyncContext* ac, uv_loop_t* loop, AdapterClosed on_closed, void* arg) {
  if (ac == nullptr || ac->ev.data != nullptr) return kErrInvalid;
  Adapter* a = new (std::nothrow) Adapter;
  if (a == nullptr) return kErrIo;
  if (uv_poll_init(loop, &a->poll, ac->c.fd) != 0) {
    delete a;  // never initialised as a handle: nothing for libuv to close
    return kErrIo;
  }
  a->poll.data = a;
  a->context = ac;
  a->on_closed = on_closed;
  a->arg = arg;
  ac->ev.data = a;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  return 0;
}

}  // namespace roomcast::redis
