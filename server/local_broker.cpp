// The in-process broker of standalone mode: publish delivers at once to this process's rooms.
// Rule: delivery happens inside publish, so the sender's own event precedes its ack.
#include "server/local_broker.h"

#include <sys/time.h>

#include "protocol/ids.h"

namespace roomcast::server {

int LocalBroker::start() {
  events_->on_broker_state(true);
  return 0;
}

void LocalBroker::stop(std::function<void()> done) {
  subscribed_.clear();
  done();
}

void LocalBroker::subscribe(std::string_view room) {
  subscribed_.emplace(room);
  events_->on_broker_subscribed(room);
}

void LocalBroker::unsubscribe(std::string_view room) { subscribed_.erase(std::string(room)); }

LocalBroker::RoomLog& LocalBroker::log_of(const std::string& room) {
  auto it = logs_.find(room);
  if (it != logs_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second;
  }
  if (logs_.size() >= kMaxRoomLogs) {
    logs_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(room);
  RoomLog& log = logs_[room];
  log.lru = lru_.begin();
  return log;
}

int LocalBroker::publish_chat(std::string_view room, std::string_view prefix, std::string_view suffix, PublishDone done) {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  uint64_t now = static_cast<uint64_t>(tv.tv_sec) * 1000 + static_cast<uint64_t>(tv.tv_usec) / 1000;
  if (now > last_.ms) {
    last_.ms = now;
    last_.seq = 0;
  } else {
    last_.seq++;
  }
  std::string id = std::to_string(last_.ms) + "-" + std::to_string(last_.seq);
  std::string payload;
  payload.reserve(prefix.size() + id.size() + suffix.size());
  payload.append(prefix).append(id).append(suffix);
  if (history_ > 0) {
    RoomLog& log = log_of(std::string(room));
    log.events.emplace_back(id, payload);
    while (log.events.size() > history_) {
      log.max_deleted = log.events.front().first;
      log.events.pop_front();
    }
  }
  if (subscribed_.count(std::string(room))) events_->on_broker_message(room, payload);
  done(0, id);
  return 0;
}

int LocalBroker::publish_event(std::string_view room, std::string_view payload) {
  if (subscribed_.count(std::string(room))) events_->on_broker_message(room, payload);
  return 0;
}

int LocalBroker::history(std::string_view room, std::string_view since, size_t limit, HistoryDone done) {
  std::vector<std::string> out;
  bool truncated = false;
  auto it = logs_.find(std::string(room));
  if (it != logs_.end()) {
    const RoomLog& log = it->second;
    if (since.empty()) {
      size_t skip = log.events.size() > limit ? log.events.size() - limit : 0;
      for (size_t i = skip; i < log.events.size(); i++) out.push_back(log.events[i].second);
    } else {
      for (const auto& [id, event] : log.events)
        if (protocol::compare_message_ids(id, since) > 0) out.push_back(event);
      truncated = !log.max_deleted.empty() && protocol::compare_message_ids(since, log.max_deleted) < 0;
    }
  }
  done(0, std::move(out), truncated);
  return 0;
}

}  // namespace roomcast::server
