// Per-loop timeouts without a timer per connection: FIFO lists of hooks.
// Rule: every operation is O(1); expiry walks only entries that are due.
#include "server/deadlines.h"

namespace roomcast::server {

void DeadlineList::push(DeadlineHook* hook, uint64_t now_ms) {
  remove(hook);
  hook->due_ms = now_ms + duration_ms_;
  hook->list = this;
  hook->prev = tail_;
  hook->next = nullptr;
  if (tail_) tail_->next = hook;
  else head_ = hook;
  tail_ = hook;
  size_++;
}

void DeadlineList::remove(DeadlineHook* hook) {
  DeadlineList* l = hook->list;
  if (!l) return;
  if (hook->prev) hook->prev->next = hook->next;
  else l->head_ = hook->next;
  if (hook->next) hook->next->prev = hook->prev;
  else l->tail_ = hook->prev;
  hook->prev = hook->next = nullptr;
  hook->list = nullptr;
  l->size_--;
}

DeadlineHook* DeadlineList::pop_expired(uint64_t now_ms) {
  if (!head_ || head_->due_ms > now_ms) return nullptr;
  DeadlineHook* h = head_;
  remove(h);
  return h;
}

}  // namespace roomcast::server
