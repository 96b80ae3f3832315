// The load generator's scenarios: fan-out in one room, and idle connections held open.
// Rule: every scenario is bounded (count and hard time limit), stops by itself, and prints a final
// `RESULT key=value ...` line for scripts after the human-readable report.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "bench/ws_client.h"

namespace roomcast::bench {

struct CommonOptions {
  std::vector<Endpoint> endpoints;  // connections are spread round-robin over these
  std::vector<pid_t> pids;          // server (and broker) processes to read /proc of
  double timeout_s = 120;           // hard limit of the whole run
  int concurrency = 256;            // connections being set up at once
  std::string label;                // copied into the RESULT line
};

struct FanoutOptions {
  int members = 100;      // connections that join the room and count deliveries
  int stalled = 0;        // of the members, how many stop reading once joined (slow-consumer check)
  int publishers = 2;     // publish-only connections (not members)
  int messages = 5000;    // per publisher
  int size = 100;         // bytes of each chat `message` (at least the timestamp header)
  int window = 16;        // chats per publisher sent and not yet acked
  double rate = 0;        // chats per second, all publishers together; 0: as fast as the window allows
  double drain_s = 5;     // after the last ack, wait this long without a delivery before calling the rest lost
  std::string room;       // default: a fresh id per run; with rooms > 1 the prefix of ROOM-0 .. ROOM-(rooms-1);
                          // or ids separated by commas, one per room
  int rooms = 1;          // member i joins room i % rooms; publisher j's chat number s goes to room (j + s) % rooms
  bool talk = false;      // no publish-only connections: every member sends MESSAGES chats to its own room
  std::string dialect = "roomcast";  // roomcast (also the Node ws peer), socketio (Engine.IO v4), nchan (HTTP POST publish)
};

struct IdleOptions {
  int connections = 20000;  // capped to the open-file limit
  int rooms = 0;            // 0: connections join nothing; else connection i joins room i % rooms
  double hold_s = 3;        // time the connections are held before the second reading
  std::string dialect = "roomcast";  // as FanoutOptions::dialect: how a connection joins its room
};

// Each returns the process exit code: 0 done, 3 deliveries lost, out of order or misrouted, or connections failed,
// 2 time limit or setup failure.
int run_fanout(const CommonOptions& common, const FanoutOptions& opt);
int run_idle(const CommonOptions& common, const IdleOptions& opt);

}  // namespace roomcast::bench
