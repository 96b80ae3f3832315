// redis/owner_calls.h: how both Redis clients speak to their owner: log lines and user callbacks.
// Rule: a line above the owner's level is never formatted; no exception from the owner reaches hiredis or libuv.
#pragma once

#include <cstdarg>
#include <exception>
#include <utility>

#include "redis/client.h"

namespace roomcast::redis {

// Formats "<head> <instance-id>: <message>" and hands it to opt.log, if the level is wanted.
void vlog_line(const Options& opt, const char* head, int level, const char* fmt, va_list ap);

// Runs a user callback; an exception is logged (level 0) and goes no further.
template <class F, class... A>
void call_owner(const Options& opt, const char* head, const char* what, F& f, A&&... a) {
  if (!f) return;
  try {
    f(std::forward<A>(a)...);
  } catch (const std::exception& e) {
    if (opt.log) {
      try {
        opt.log(0, std::string(head) + " " + opt.instance_id + ": " + what + " callback threw: " + e.what());
      } catch (...) {
      }
    }
  } catch (...) {
    if (opt.log) {
      try {
        opt.log(0, std::string(head) + " " + opt.instance_id + ": " + what + " callback threw");
      } catch (...) {
      }
    }
  }
}

}  // namespace roomcast::redis
