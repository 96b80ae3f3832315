// The in-process broker of standalone mode: publish reaches this process's rooms on the next loop turn.
// Rule: ids and history are decided inside the call (so order is call order); delivery, confirmation,
// answers and the ack come later, in call order, so a sender's own event precedes its ack.
#include "server/local_broker.h"

#include <sys/time.h>

#include <algorithm>

namespace roomcast::server {

using protocol::MsgId;

LocalBroker::LocalBroker(uv_loop_t* loop, BrokerEvents* events, size_t history, size_t history_memory, Metrics* metrics)
    : loop_(loop), events_(events), history_(history), history_memory_(history_memory), metrics_(metrics) {}

int LocalBroker::start() {
  uv_idle_init(loop_, &idle_);
  idle_.data = this;
  idle_open_ = true;
  later([this] { events_->on_broker_state(true); });
  return 0;
}

void LocalBroker::stop(std::function<void()> done) {
  stopped_ = true;
  run_queue();  // answers still owed go out (their connections are closing)
  subscribed_.clear();
  if (!idle_open_) {
    done();
    return;
  }
  idle_open_ = false;
  stop_done_ = std::move(done);
  uv_close(reinterpret_cast<uv_handle_t*>(&idle_), [](uv_handle_t* h) {
    LocalBroker* self = static_cast<LocalBroker*>(h->data);
    std::function<void()> d = std::move(self->stop_done_);
    d();
  });
}

void LocalBroker::later(std::function<void()> f) {
  queue_.push_back(std::move(f));
  if (idle_open_ && !uv_is_active(reinterpret_cast<uv_handle_t*>(&idle_)))
    uv_idle_start(&idle_, [](uv_idle_t* h) { static_cast<LocalBroker*>(h->data)->run_queue(); });
}

void LocalBroker::run_queue() {
  // What the callbacks queue meanwhile runs on the next turn.
  std::deque<std::function<void()>> now;
  now.swap(queue_);
  for (auto& f : now) f();
  if (queue_.empty() && idle_open_) uv_idle_stop(&idle_);
}

void LocalBroker::subscribe(std::string_view room) {
  std::string r(room);
  subscribed_.insert(r);
  later([this, r] {
    if (subscribed_.count(r)) events_->on_broker_subscribed(r);
  });
}

void LocalBroker::unsubscribe(std::string_view room) { subscribed_.erase(std::string(room)); }

LocalBroker::RoomLog& LocalBroker::log_of(const std::string& room) {
  auto it = logs_.find(room);
  if (it != logs_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second;
  }
  lru_.push_front(room);
  RoomLog& log = logs_[room];
  log.lru = lru_.begin();
  // A client's `since` below this id saw an earlier log of the room (before a restart, or evicted).
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  uint64_t now = static_cast<uint64_t>(tv.tv_sec) * 1000 + static_cast<uint64_t>(tv.tv_usec) / 1000;
  log.created_after = last_.ms >= now ? last_ : MsgId{now, 0};
  log.bytes = kRoomOverhead + room.size();
  bytes_ += log.bytes;
  return log;
}

void LocalBroker::drop_oldest(RoomLog& log) {
  size_t n = log.events.front().second.size() + kEventOverhead;
  log.max_deleted = log.events.front().first;
  log.deleted = true;
  log.events.pop_front();
  log.bytes -= n;
  bytes_ -= n;
}

void LocalBroker::enforce_memory(const std::string& keep) {
  if (bytes_ <= history_memory_) return;
  metrics_->bound_hit(Bound::HistoryMemory, "standalone history over --history-memory: the least recently used rooms' history is dropped");
  // Least recently written rooms go first; the room just written loses its oldest events last.
  while (bytes_ > history_memory_ && !lru_.empty() && lru_.back() != keep) {
    auto it = logs_.find(lru_.back());
    bytes_ -= it->second.bytes;
    logs_.erase(it);
    lru_.pop_back();
  }
  auto it = logs_.find(keep);
  if (it == logs_.end()) return;
  while (bytes_ > history_memory_ && !it->second.events.empty()) drop_oldest(it->second);
}

int LocalBroker::publish_chat(std::string_view room, std::string_view prefix, std::string_view suffix, PublishDone done) {
  if (stopped_) return kBrokerStopped;
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  uint64_t now = static_cast<uint64_t>(tv.tv_sec) * 1000 + static_cast<uint64_t>(tv.tv_usec) / 1000;
  if (now > last_.ms) {
    last_.ms = now;
    last_.seq = 0;
  } else {
    last_.seq++;
  }
  MsgId id = last_;
  std::string id_text = protocol::format_message_id(id);
  std::string payload;
  payload.reserve(prefix.size() + id_text.size() + suffix.size());
  payload.append(prefix).append(id_text).append(suffix);
  std::string r(room);
  if (history_ > 0) {
    RoomLog& log = log_of(r);
    log.events.emplace_back(id, payload);
    size_t n = payload.size() + kEventOverhead;
    log.bytes += n;
    bytes_ += n;
    while (log.events.size() > history_) drop_oldest(log);
    enforce_memory(r);
  }
  later([this, r, payload = std::move(payload), id_text, done = std::move(done)] {
    if (subscribed_.count(r)) events_->on_broker_message(r, payload);
    done(kBrokerOk, id_text);
  });
  return 0;
}

int LocalBroker::publish_event(std::string_view room, std::string_view payload) {
  if (stopped_) return kBrokerStopped;
  later([this, r = std::string(room), p = std::string(payload)] {
    if (subscribed_.count(r)) events_->on_broker_message(r, p);
  });
  return 0;
}

bool LocalBroker::lost_after(const RoomLog* log, const MsgId& since) {
  // Chats after `since` may be gone: one was dropped, the room's log is gone (evicted), or the log is
  // newer than `since` (made after a restart or an eviction). "0" claims to have seen nothing.
  if (since == MsgId{}) return false;
  if (!log) return true;
  return (log->deleted && since < log->max_deleted) || since < log->created_after;
}

int LocalBroker::publish_control(std::string_view payload, std::function<void(int status)> done) {
  if (stopped_) return kBrokerStopped;
  later([this, p = std::string(payload), done = std::move(done)] {
    events_->on_broker_control(p);
    done(kBrokerOk);
  });
  return 0;
}

int LocalBroker::history(std::string_view room, std::string_view since, size_t limit, size_t max_bytes, HistoryDone done) {
  if (stopped_) return kBrokerStopped;
  HistoryRead read;
  read.position = protocol::format_message_id(last_);  // ids are global: every later chat is above it
  auto it = logs_.find(std::string(room));
  MsgId after;
  bool have_since = !since.empty() && protocol::parse_message_id(since, &after);
  if (have_since) read.truncated = lost_after(it == logs_.end() ? nullptr : &it->second, after);
  if (it != logs_.end() && (since.empty() || have_since)) {
    const RoomLog& log = it->second;
    // Newest first, within the count and the byte budget; then oldest first for the reply.
    size_t bytes = 0;
    for (auto e = log.events.rbegin(); e != log.events.rend(); ++e) {
      if (have_since ? !(after < e->first) : read.events.size() >= limit) break;
      if (bytes + e->second.size() > max_bytes) {
        read.truncated = true;
        break;
      }
      bytes += e->second.size();
      read.events.push_back(e->second);
    }
    std::reverse(read.events.begin(), read.events.end());
  }
  later([read = std::move(read), done = std::move(done)]() mutable { done(kBrokerOk, std::move(read)); });
  return 0;
}

int LocalBroker::read_after(std::string_view room, std::string_view after_text, size_t count, HistoryDone done) {
  if (stopped_) return kBrokerStopped;
  HistoryRead read;
  read.position = protocol::format_message_id(last_);
  MsgId after;
  auto it = logs_.find(std::string(room));
  if (it != logs_.end() && protocol::parse_message_id(after_text, &after)) {
    const RoomLog& log = it->second;
    for (const auto& [id, event] : log.events) {
      if (!(after < id)) continue;
      if (read.events.size() >= count) break;
      read.events.push_back(event);
    }
  }
  if (protocol::parse_message_id(after_text, &after)) read.truncated = read.truncated || lost_after(it == logs_.end() ? nullptr : &it->second, after);
  later([read = std::move(read), done = std::move(done)]() mutable { done(kBrokerOk, std::move(read)); });
  return 0;
}

}  // namespace roomcast::server
