// redis/cluster.h: the broker's client for a Redis Cluster: a slot map, and per master one command and one
// subscribe connection, SPUBLISH/SSUBSCRIBE on each slot's owner, MOVED/ASK followed, liveness probes.
// Rule: a channel is subscribed on the owner of its slot only; whenever that stops being true (a node fails,
// a slot moves) the channel is reported lost, then confirmed again on the new owner.
#pragma once

#include <uv.h>

#include <memory>
#include <vector>

#include "redis/client.h"

namespace roomcast::redis {

// Nodes (one per master known, and the seeds while nothing else is known):
//
//   created ──> CONNECTING ──both connections answered their setup──> UP ──drop / probe timeout──> BACKOFF
//                  ^   └── refused / connect timeout ──> BACKOFF                                    │
//                  └──────────────────────── retry time reached ────────────────────────────────────┘
//   A node that owns no slot is forgotten at the next slot map (replicas need no connection).
//
// The slot map comes from CLUSTER SLOTS (asked of any node that is up) at start, after a MOVED, after
// Redis drops a shard channel (its slot left the node), after a node is lost, and periodically (every
// 5 s; every 0.5 s while a wanted channel has no reachable owner). Commands go to the owner of their
// first key's slot; MOVED and ASK are followed (5 times at most), TRYAGAIN retried for up to 2 s. A
// command for a slot with no reachable owner is refused with kErrDown.
class ClusterClient final : public Connection {
 public:
  // seeds: nodes to discover the cluster from (user and password of the first are used for every node).
  ClusterClient(uv_loop_t* loop, std::vector<Url> seeds, Options options, Callbacks callbacks);
  ~ClusterClient() override;  // only before start() or after stop() has called back
  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  int start() override;
  void stop(std::function<void()> done) override;
  // The slot map is known and at least one master is reachable.
  bool up() const override;
  int command(const std::vector<std::string_view>& argv, ReplyCallback cb) override;
  int publish(const std::vector<std::string_view>& argv, ReplyCallback cb) override;
  void subscribe(std::string_view channel) override;
  void unsubscribe(std::string_view channel) override;
  bool is_subscribed(std::string_view channel) const override;
  Stats stats() const override;
  bool reachable() const override;
  size_t masters() const override;
  void write_metrics(std::string* out) const override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace roomcast::redis
