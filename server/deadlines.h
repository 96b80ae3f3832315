// Per-loop timeouts without a timer per connection: FIFO lists of hooks, each list with one fixed duration.
// Rule: a hook is in at most one list; since every entry of a list waits the same time, the list stays sorted by due time.
#pragma once
#include <cstddef>
#include <cstdint>

namespace roomcast::server {

struct DeadlineHook {
  DeadlineHook* prev = nullptr;  // neighbours in the list, nullptr at the ends
  DeadlineHook* next = nullptr;
  uint64_t due_ms = 0;           // loop time at which the entry expires
  class DeadlineList* list = nullptr;  // the list it is in, or nullptr
  void* owner = nullptr;               // the object the hook belongs to
};

class DeadlineList {
 public:
  explicit DeadlineList(uint64_t duration_ms = 0) : duration_ms_(duration_ms) {}
  void set_duration(uint64_t ms) { duration_ms_ = ms; }
  uint64_t duration() const { return duration_ms_; }
  // Moves hook to the tail of this list, due at now + duration (removing it from any other list).
  void push(DeadlineHook* hook, uint64_t now_ms);
  static void remove(DeadlineHook* hook);
  // Removes and returns the head if it is due at now_ms, else nullptr.
  DeadlineHook* pop_expired(uint64_t now_ms);
  bool empty() const { return head_ == nullptr; }
  size_t size() const { return size_; }

 private:
  uint64_t duration_ms_;
  DeadlineHook* head_ = nullptr;  // earliest due
  DeadlineHook* tail_ = nullptr;  // latest due
  size_t size_ = 0;
};

}  // namespace roomcast::server
