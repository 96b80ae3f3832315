// The in-process broker of standalone mode: publish delivers at once to this process's rooms, and
// each room's last --history chat events are kept in memory.
// Rule: ids follow Redis stream ids ("<ms>-<seq>"), strictly increasing in the process even if the clock steps back.
#pragma once
#include <deque>
#include <list>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "server/broker.h"

namespace roomcast::server {

class LocalBroker : public Broker {
 public:
  LocalBroker(BrokerEvents* events, size_t history) : events_(events), history_(history) {}
  int start() override;
  void stop(std::function<void()> done) override;
  bool up() const override { return true; }
  const char* mode() const override { return "standalone"; }
  bool standalone() const override { return true; }
  void subscribe(std::string_view room) override;
  void unsubscribe(std::string_view room) override;
  int publish_chat(std::string_view room, std::string_view prefix, std::string_view suffix, PublishDone done) override;
  int publish_event(std::string_view room, std::string_view payload) override;
  int history(std::string_view room, std::string_view since, size_t limit, HistoryDone done) override;
  size_t subscriptions() const override { return subscribed_.size(); }

 private:
  static constexpr size_t kMaxRoomLogs = 10000;  // rooms with history kept; the least recently used go
  struct LastId {
    uint64_t ms = 0, seq = 0;
  };
  struct RoomLog {
    std::deque<std::pair<std::string, std::string>> events;  // (id, event), oldest first
    std::string max_deleted;                                 // newest id dropped from events
    std::list<std::string>::iterator lru;                    // position in lru_
  };
  RoomLog& log_of(const std::string& room);

  BrokerEvents* events_;                               // the server, outlives the broker
  size_t history_;                                     // events kept per room
  std::unordered_set<std::string> subscribed_;         // rooms subscribed
  LastId last_;                                        // last id given, for every room at once
  std::unordered_map<std::string, RoomLog> logs_;      // history per room
  std::list<std::string> lru_;                         // room ids, most recently written first
};

}  // namespace roomcast::server
