// redis/subscriptions.cpp: the channels a client wants, and what it told Redis about each on the current connection.
// Rule: "subscribed" is reported only for the reply to the latest SUBSCRIBE of a wanted channel, with nothing outstanding.
#include "redis/subscriptions.h"

namespace roomcast::redis {

bool Subscriptions::want(std::string_view channel, bool connected) {
  auto it = chans_.find(channel);
  if (it == chans_.end()) it = chans_.emplace(std::string(channel), Chan{}).first;
  Chan& c = it->second;
  if (c.wanted) return false;
  c.wanted = true;
  ++wanted_count_;
  if (!connected || c.sent) return false;  // c.sent: an UNSUBSCRIBE was never sent after it
  c.sent = true;
  c.confirmed = false;
  ++c.outstanding;
  return true;
}

bool Subscriptions::unwant(std::string_view channel, bool connected) {
  auto it = chans_.find(channel);
  if (it == chans_.end() || !it->second.wanted) return false;
  Chan& c = it->second;
  c.wanted = false;
  c.confirmed = false;
  --wanted_count_;
  bool send = connected && c.sent;
  if (send) {
    c.sent = false;
    ++c.outstanding;
  }
  maybe_erase(it);
  return send;
}

bool Subscriptions::on_subscribe_reply(std::string_view channel) {
  auto it = chans_.find(channel);
  if (it == chans_.end()) return false;
  Chan& c = it->second;
  if (c.outstanding > 0) --c.outstanding;
  if (c.outstanding == 0 && c.sent) {
    c.confirmed = true;
    return c.wanted;
  }
  maybe_erase(it);
  return false;
}

void Subscriptions::on_unsubscribe_reply(std::string_view channel) {
  auto it = chans_.find(channel);
  if (it == chans_.end()) return;
  if (it->second.outstanding > 0) --it->second.outstanding;
  maybe_erase(it);
}

void Subscriptions::on_dropped(std::string_view channel, bool answered) {
  auto it = chans_.find(channel);
  if (it == chans_.end()) return;
  Chan& c = it->second;
  if (answered && c.outstanding > 0) --c.outstanding;
  c.sent = false;
  c.confirmed = false;
  maybe_erase(it);
}

bool Subscriptions::resend(std::string_view channel, bool connected) {
  auto it = chans_.find(channel);
  if (it == chans_.end() || !it->second.wanted || it->second.sent || !connected) return false;
  it->second.sent = true;
  it->second.confirmed = false;
  ++it->second.outstanding;
  return true;
}

void Subscriptions::reset() {
  for (auto it = chans_.begin(); it != chans_.end();) {
    Chan& c = it->second;
    c.sent = false;
    c.outstanding = 0;
    c.confirmed = false;
    it = c.wanted ? std::next(it) : chans_.erase(it);
  }
}

std::vector<std::string_view> Subscriptions::resubscribe_all() {
  std::vector<std::string_view> out;
  out.reserve(wanted_count_);
  for (auto& [name, c] : chans_) {
    if (!c.wanted) continue;
    c.sent = true;
    c.outstanding = 1;
    c.confirmed = false;
    out.push_back(name);
  }
  return out;
}

bool Subscriptions::wanted(std::string_view channel) const {
  auto it = chans_.find(channel);
  return it != chans_.end() && it->second.wanted;
}

bool Subscriptions::confirmed(std::string_view channel) const {
  auto it = chans_.find(channel);
  return it != chans_.end() && it->second.wanted && it->second.confirmed;
}

void Subscriptions::maybe_erase(Map::iterator it) {
  const Chan& c = it->second;
  if (!c.wanted && !c.sent && c.outstanding == 0) chans_.erase(it);
}

}  // namespace roomcast::redis
