// redis/uv_adapter.h: attaches a hiredis async context to a libuv loop through one uv_poll_t.
// Rule: a poll error is handed to hiredis as an event so it sees the failure; memory is freed only in uv_close's callback.
#pragma once

#include <hiredis/async.h>
#include <uv.h>

namespace roomcast::redis {

// Called once the adapter's poll handle is closed and its memory released (after hiredis freed the
// context). Lets the owner count open handles before it may finish its own shutdown.
using AdapterClosed = void (*)(void* arg);

// Attaches `ac` (fresh: no event library attached yet) to `loop`. From then on hiredis owns the
// adapter: redisAsyncFree/disconnect closes the poll handle, and `on_closed(arg)` runs from its close
// callback. Returns 0, or kErrInvalid (already attached) / kErrIo (uv_poll_init failed): then nothing
// was attached, on_closed is never called, and the caller still owns (and must free) `ac`.
int uv_attach(redisAsyncContext* ac, uv_loop_t* loop, AdapterClosed on_closed, void* arg);

}  // namespace roomcast::redis
