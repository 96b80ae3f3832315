// Identifiers of the wire contract: room ids, users, generated codes, message-id order.
// Rule: every id that enters the server passes one of these checks first.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace roomcast::protocol {

struct User {
  std::string id;    // 1-64 characters of the room-id alphabet
  std::string name;  // 1-64 characters of UTF-8, no control characters
};

// True for 1-64 characters of A-Z a-z 0-9 _ - . :
bool valid_room_id(std::string_view id);
// True for a user id (same alphabet and length as a room id).
bool valid_user_id(std::string_view id);
// True for 1-64 code points of valid UTF-8 without control characters.
bool valid_user_name(std::string_view name);

// Returns `chars` characters of lower-case RFC 4648 base32 from the OS CSPRNG (5 bits each).
// Returns an empty string if the CSPRNG fails.
std::string random_base32(size_t chars);
// A new room id: 10 base32 characters, 50 bits.
std::string new_room_id();
// The identity given to a connection that has not named itself.
User anonymous_user();

// True for a message id: digits, optionally "-" and digits ("1700000000000-3"), each part at most 19 digits.
bool valid_message_id(std::string_view id);

// A chat id as numbers: "<ms>-<seq>" (Redis stream ids; the standalone broker makes the same).
// Positions compare as numbers, so a per-member check costs two integer compares.
struct MsgId {
  uint64_t ms = 0;   // first part
  uint64_t seq = 0;  // second part (0 when absent)
  bool operator<(const MsgId& o) const { return ms < o.ms || (ms == o.ms && seq < o.seq); }
  bool operator==(const MsgId& o) const { return ms == o.ms && seq == o.seq; }
  bool operator!=(const MsgId& o) const { return !(*this == o); }
  bool operator<=(const MsgId& o) const { return !(o < *this); }
};
// Parses "<ms>" or "<ms>-<seq>" (each part 1-19 digits, below 2^64). Returns false otherwise.
bool parse_message_id(std::string_view text, MsgId* out);
// "<ms>-<seq>".
std::string format_message_id(const MsgId& id);

// Compares two message ids ("<ms>-<seq>", or any dash-separated numbers) part by part.
// Returns <0, 0 or >0. Parts that are not numbers compare as 0.
int compare_message_ids(std::string_view a, std::string_view b);

}  // namespace roomcast::protocol
