// redis/slots.h: Redis Cluster's key space: hash slots, hash tags, and the slot map from CLUSTER SLOTS.
// Rule: pure functions over bytes and values; no I/O, no hiredis.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "redis/client.h"

namespace roomcast::redis {

constexpr uint16_t kSlots = 16384;

// The slot of a key (or sharded channel): CRC16 (XMODEM) of the key, or of the first non-empty
// {hash tag} in it, modulo 16384, as the cluster specification defines it.
uint16_t key_slot(std::string_view key);

// The key a command is routed by: the first key of EVAL/EVALSHA/FCALL (none when numkeys is 0), else
// argv[1] (SET, SPUBLISH, SSUBSCRIBE, ...). Empty for commands with no key (TIME, PING, CLUSTER ...).
std::string_view routing_key(const std::vector<std::string_view>& argv);

// A short text whose slot is `slot` (for a {tag} that lands a channel on a chosen slot); the same
// text for the same slot every time. Computed once for all slots on first use (about 1 ms).
const std::string& tag_for_slot(uint16_t slot);

// One range of CLUSTER SLOTS: slots [first, last] served by the master at host:port.
struct SlotRange {
  uint16_t first = 0, last = 0;
  std::string host;  // as the node announces itself (an empty or "?" host means: the address we asked)
  int port = 0;
};

// Parses a CLUSTER SLOTS reply. Returns false (and leaves *out empty) when it is not one: not an
// array, a range out of order or bounds, or a master entry without host and port.
bool parse_cluster_slots(const Value& reply, std::vector<SlotRange>* out);

// A -MOVED or -ASK error: "MOVED <slot> <host>:<port>". Returns false for any other error text.
struct Redirect {
  bool ask = false;  // ASK (one command, after ASKING) rather than MOVED (the slot's new owner)
  uint16_t slot = 0;
  std::string host;
  int port = 0;
};
bool parse_redirect(std::string_view error, Redirect* out);

}  // namespace roomcast::redis
