// Chat messages of the wire contract (sections 3 and 4): JSON in, validated commands out; events out.
// Rule: the seed dialects are folded into the contract's own types here, so nothing past this file sees an alias.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/ids.h"

namespace roomcast::protocol {

constexpr size_t kMaxChatBytes = 16384;
constexpr size_t kMaxRefBytes = 64;
// Containers (objects and arrays) nested deeper than this are bad_json: no client message needs more,
// and the parser must not follow a client's nesting without bound.
constexpr int kMaxJsonDepth = 64;

enum class MsgType { Hello, Create, Join, Leave, Chat, Ping, Refresh };

enum class ErrorCode { BadJson, BadRequest, UnknownType, BadRoom, NotMember, TooLarge, RateLimited, Unavailable, Unauthorized };

// Returns the wire name of an error code ("bad_json", ...).
const char* error_code_name(ErrorCode code);

struct ClientMessage {
  MsgType type = MsgType::Ping;
  std::string room_id;              // Join, Leave, Chat; empty for a chat_message without a room
  std::string message;              // Chat: 1..16384 bytes of UTF-8
  std::optional<User> user;         // a valid user, when the message carried one (id empty: name only)
  std::optional<std::string> since; // Join: resume after this message id
  std::string ref;                  // the "ref" value as JSON text, or empty
  std::string token;                // Refresh: the new token (not checked here)
};

struct MessageError {
  ErrorCode code = ErrorCode::BadRequest;
  std::string message;    // human readable
  std::string ref;        // the "ref" value as JSON text, when it could be read
  bool too_deep = false;  // BadJson because of nesting over kMaxJsonDepth (a bound the server counts)
};

// Parses one text frame. Returns true and fills msg, or false and fills err.
bool parse_client_message(std::string_view text, ClientMessage* msg, MessageError* err);

// Server events. `ref` is JSON text from ClientMessage::ref (omitted when empty).
// hello: the connection's identity and `instance`, the process that answered (--instance-id; a roomcast
// addition, for support: which instance a client is connected to); omitted when empty.
std::string encode_hello(const User& user, std::string_view instance, std::string_view ref);
std::string encode_created(std::string_view room_id, std::string_view ref);
// What a `joined` reply carries (section 4). history: complete chat events (JSON texts), oldest
// first; those from history_from on are sent.
struct JoinedReply {
  std::string_view room_id;
  const User* you = nullptr;
  const std::vector<User>* members = nullptr;  // at most the listing cap
  size_t count = 0;                            // members in the room, all of them
  bool members_truncated = false;              // more members than listed
  const std::vector<std::string>* history = nullptr;
  size_t history_from = 0;
  bool truncated = false;                      // history after `since` dropped, or left out to fit
  std::string_view ref;
};
std::string encode_joined(const JoinedReply& j);
// Bytes encode_joined adds for one history event (the event and its comma).
inline size_t joined_event_cost(std::string_view event) { return event.size() + 1; }
std::string encode_left(std::string_view room_id, std::string_view ref);
std::string encode_presence(bool join, std::string_view room_id, const User& user);
std::string encode_ack(std::string_view ref, std::string_view id);
std::string encode_pong(std::string_view ref);
// {"type":"refreshed","exp":exp} (exp omitted when 0: the token does not expire).
std::string encode_refreshed(int64_t exp, std::string_view ref);
std::string encode_error(ErrorCode code, std::string_view message, std::string_view ref);

// A chat event without its id: append the id and kChatEventSuffix to complete it. The id is the last
// field so that whoever assigns ids (the broker) needs no JSON library.
std::string chat_event_prefix(std::string_view room_id, const User& user, std::string_view message, int64_t ts_ms);
constexpr std::string_view kChatEventSuffix = "\"}";

// Reads "id" of a chat event produced above (the text between the last "\"id\":\"" and the end).
std::string_view chat_event_id(std::string_view event);

// True when the event (as produced here) is a chat event.
bool is_chat_event(std::string_view event);
// For a presence event, the id of the user it is about; empty for any other event.
std::string presence_user_id(std::string_view event);
// The "ts" of a chat event produced by chat_event_prefix, or -1.
int64_t chat_event_ts(std::string_view event);

// Returns text as a JSON string literal, quotes included.
std::string json_quote(std::string_view text);

// JSON-encodes a User ({"id":..,"name":..}).
std::string encode_user(const User& user);
// Parses a User object encoded by encode_user. Returns false when it is not a valid user.
bool parse_user(std::string_view json, User* out);

}  // namespace roomcast::protocol
