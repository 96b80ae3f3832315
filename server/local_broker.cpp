// The in-process broker of standalone mode: publish delivers at once to this process's rooms.
// Rule: delivery happens inside publish, so the sender's own event precedes its ack.
#include "server/local_broker.h"

#include <sys/time.h>

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

void LocalBroker::unsubscribe(std::string_view room) {
  subscribed_.erase(std::string(room));
}

int LocalBroker::publish_chat(std::string_view room, std::string_view prefix, std::string_view suffix, PublishDone done) {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  uint64_t now = static_cast<uint64_t>(tv.tv_sec) * 1000 + static_cast<uint64_t>(tv.tv_usec) / 1000;
  LastId& last = last_;
  if (now > last.ms) {
    last.ms = now;
    last.seq = 0;
  } else {
    last.seq++;
  }
  std::string id = std::to_string(last.ms) + "-" + std::to_string(last.seq);
  if (subscribed_.count(std::string(room))) {
    std::string payload;
    payload.reserve(prefix.size() + id.size() + suffix.size());
    payload.append(prefix).append(id).append(suffix);
    events_->on_broker_message(room, payload);
  }
  done(0, id);
  return 0;
}

int LocalBroker::publish_event(std::string_view room, std::string_view payload) {
  if (subscribed_.count(std::string(room))) events_->on_broker_message(room, payload);
  return 0;
}

}  // namespace roomcast::server
