// Per-loop deadlines of different lengths (token expiry) without a timer per connection: one indexed min-heap.
// Rule: a hook is in the heap at most once; set() moves it, remove() takes it out, both O(log n).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace roomcast::server {

struct ExpiryHook {
  int64_t due = 0;                    // when it expires (the heap's key, in the caller's unit)
  size_t index = SIZE_MAX;            // position in the heap, SIZE_MAX when not in it
  void* owner = nullptr;              // the object the hook belongs to
  bool queued() const { return index != SIZE_MAX; }
};

class ExpiryHeap {
 public:
  // Puts hook in the heap due at due (moving it if it is already there).
  void set(ExpiryHook* hook, int64_t due);
  void remove(ExpiryHook* hook);
  // Removes and returns the earliest hook if it is due at now, else nullptr.
  ExpiryHook* pop_expired(int64_t now);
  size_t size() const { return heap_.size(); }
  bool empty() const { return heap_.empty(); }

 private:
  void place(size_t i, ExpiryHook* h);
  void sift_up(size_t i);
  void sift_down(size_t i);

  std::vector<ExpiryHook*> heap_;  // heap_[0] earliest; heap_[i]->index == i
};

}  // namespace roomcast::server
