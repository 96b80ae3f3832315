// The in-process broker of standalone mode: publish reaches this process's rooms, and each room's
// last --history chat events are kept in memory, --history-memory bytes at most for all rooms.
// Rule: ids follow Redis stream ids ("<ms>-<seq>"), strictly increasing in the process even if the clock
// steps back; every callback runs on a later loop turn, in call order, as the Redis broker's do.
#pragma once
#include <uv.h>

#include <deque>
#include <functional>
#include <list>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "protocol/ids.h"
#include "server/broker.h"
#include "server/metrics.h"

namespace roomcast::server {

class LocalBroker : public Broker {
 public:
  // history: events kept per room; history_memory: bytes kept for all rooms (least recently written
  // rooms dropped first); metrics: counts the bound when it bites.
  LocalBroker(uv_loop_t* loop, BrokerEvents* events, size_t history, size_t history_memory, Metrics* metrics);
  int start() override;
  void stop(std::function<void()> done) override;
  bool up() const override { return !stopped_; }
  const char* mode() const override { return "standalone"; }
  bool standalone() const override { return true; }
  void subscribe(std::string_view room) override;
  void unsubscribe(std::string_view room) override;
  int publish_chat(std::string_view room, std::string_view prefix, std::string_view suffix, PublishDone done) override;
  int publish_event(std::string_view room, std::string_view payload) override;
  int history(std::string_view room, std::string_view since, size_t limit, size_t max_bytes, HistoryDone done) override;
  int read_after(std::string_view room, std::string_view after, size_t count, HistoryDone done) override;
  int publish_control(std::string_view payload, std::function<void(int status)> done) override;
  size_t subscriptions() const override { return subscribed_.size(); }
  size_t history_bytes() const { return bytes_; }

 private:
  static constexpr size_t kRoomOverhead = 160;   // bytes counted per room log besides its events
  static constexpr size_t kEventOverhead = 64;   // and per event
  struct RoomLog {
    std::deque<std::pair<protocol::MsgId, std::string>> events;  // (id, event), oldest first
    protocol::MsgId max_deleted;                                 // newest id dropped from events
    bool deleted = false;                                        // max_deleted is set
    protocol::MsgId created_after;                               // ids at or below it came before this log
                                                                 // (another process, or an evicted log)
    size_t bytes = 0;                                            // counted bytes of this log
    std::list<std::string>::iterator lru;                        // position in lru_
  };
  RoomLog& log_of(const std::string& room);
  static bool lost_after(const RoomLog* log, const protocol::MsgId& since);
  void drop_oldest(RoomLog& log);
  void enforce_memory(const std::string& keep);
  // Runs f on a later loop turn, after everything queued before it.
  void later(std::function<void()> f);
  void run_queue();

  uv_loop_t* loop_;
  BrokerEvents* events_;                               // the hub, outlives the broker
  size_t history_;                                     // events kept per room
  size_t history_memory_;                              // bytes kept for all rooms
  Metrics* metrics_;
  std::unordered_set<std::string> subscribed_;         // rooms subscribed
  protocol::MsgId last_;                               // last id given, for every room at once
  std::unordered_map<std::string, RoomLog> logs_;      // history per room
  std::list<std::string> lru_;                         // room ids, most recently written first
  size_t bytes_ = 0;                                   // counted bytes of every log
  std::deque<std::function<void()>> queue_;            // callbacks for the next loop turn
  uv_idle_t idle_;                                     // runs queue_ while it is not empty
  bool idle_open_ = false;                             // idle_ initialised and not closed
  bool stopped_ = false;
  std::function<void()> stop_done_;
};

}  // namespace roomcast::server
