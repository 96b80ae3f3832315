// JSON of the server API (PROTOCOL.md section 9): request bodies in, answers and control messages out.
// Rule: a body is validated here completely (section 2 rules, the chat size), so the server acts on valid values only.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/ids.h"
#include "protocol/message.h"

namespace roomcast::protocol {

// Close code of a WebSocket closed by POST /api/disconnect (beyond RFC 6455; section 9).
constexpr uint16_t kCloseDisconnected = 4003;

// The user of a chat published through the API when the body names none.
User api_default_user();

// POST /api/publish {"roomId":R,"message":M,"user":U?}.
struct PublishRequest {
  std::string room_id;        // valid room id
  std::string message;        // 1..kMaxChatBytes bytes of UTF-8
  User user;                  // the body's user, or api_default_user()
};

// An invalid body: code is BadRequest, BadRoom or TooLarge; message is human readable.
struct ApiError {
  ErrorCode code = ErrorCode::BadRequest;
  std::string message;
};

// Parses a publish body. Returns true and fills out, or false and fills err.
bool parse_publish_request(std::string_view body, PublishRequest* out, ApiError* err);
// Parses POST /api/disconnect {"userId":U} (U: a valid user id). Returns true and fills *user_id.
bool parse_disconnect_request(std::string_view body, std::string* user_id, ApiError* err);

// {"id":id}
std::string publish_answer(std::string_view chat_id);
// {"roomId":..,"count":N,"members":[user..],"membersTruncated":true?,"history":[chat..],"truncated":true?}
// history: complete chat events (JSON texts), oldest first, written as they are.
std::string room_state_body(std::string_view room_id, const std::vector<User>& members, size_t count, bool members_truncated,
                            const std::vector<std::string>& history, bool truncated);

// The broker's control channel: {"type":"disconnect","userId":U}.
std::string encode_disconnect_control(std::string_view user_id);
// Reads a control message. Returns true with *user_id for a disconnect; false for anything else.
bool parse_disconnect_control(std::string_view payload, std::string* user_id);

}  // namespace roomcast::protocol
