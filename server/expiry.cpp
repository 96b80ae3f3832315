// Per-loop deadlines of different lengths (token expiry): an indexed binary min-heap.
// Rule: every hook's index is updated wherever it moves, so removal never searches.
#include "server/expiry.h"

namespace roomcast::server {

void ExpiryHeap::place(size_t i, ExpiryHook* h) {
  heap_[i] = h;
  h->index = i;
}

void ExpiryHeap::sift_up(size_t i) {
  ExpiryHook* h = heap_[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (heap_[parent]->due <= h->due) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, h);
}

void ExpiryHeap::sift_down(size_t i) {
  ExpiryHook* h = heap_[i];
  const size_t n = heap_.size();
  while (true) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap_[child + 1]->due < heap_[child]->due) child++;
    if (heap_[child]->due >= h->due) break;
    place(i, heap_[child]);
    i = child;
  }
  place(i, h);
}

void ExpiryHeap::set(ExpiryHook* hook, int64_t due) {
  if (hook->queued()) {
    int64_t old = hook->due;
    hook->due = due;
    if (due < old) sift_up(hook->index);
    else sift_down(hook->index);
    return;
  }
  hook->due = due;
  heap_.push_back(hook);
  hook->index = heap_.size() - 1;
  sift_up(hook->index);
}

void ExpiryHeap::remove(ExpiryHook* hook) {
  if (!hook->queued()) return;
  size_t i = hook->index;
  ExpiryHook* last = heap_.back();
  heap_.pop_back();
  hook->index = SIZE_MAX;
  if (last == hook) return;
  place(i, last);
  sift_up(i);
  sift_down(last->index);
}

ExpiryHook* ExpiryHeap::pop_expired(int64_t now) {
  if (heap_.empty() || heap_[0]->due > now) return nullptr;
  ExpiryHook* h = heap_[0];
  remove(h);
  return h;
}

}  // namespace roomcast::server
