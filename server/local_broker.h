// The in-process broker of standalone mode: publish delivers at once to this process's rooms.
// Rule: ids follow Redis stream ids ("<ms>-<seq>"), strictly increasing in the process even if the clock steps back.
#pragma once
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "server/broker.h"

namespace roomcast::server {

class LocalBroker : public Broker {
 public:
  explicit LocalBroker(BrokerEvents* events) : events_(events) {}
  int start() override;
  void stop(std::function<void()> done) override;
  bool up() const override { return true; }
  const char* mode() const override { return "standalone"; }
  void subscribe(std::string_view room) override;
  void unsubscribe(std::string_view room) override;
  int publish_chat(std::string_view room, std::string_view prefix, std::string_view suffix, PublishDone done) override;
  int publish_event(std::string_view room, std::string_view payload) override;
  size_t subscriptions() const override { return subscribed_.size(); }

 private:
  struct LastId {
    uint64_t ms = 0, seq = 0;
  };
  BrokerEvents* events_;                               // the server, outlives the broker
  std::unordered_set<std::string> subscribed_;         // rooms subscribed
  LastId last_;                                        // last id given, for every room at once
};

}  // namespace roomcast::server
