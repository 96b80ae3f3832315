// UTF-8 validation, shared by the WebSocket codec (text frames, close reasons) and the messages (names, chats, refs).
// Rule: one definition of valid UTF-8 for the whole server: what RFC 3629 allows, nothing more.
#pragma once
#include <string_view>

namespace roomcast::protocol {

// True when the bytes are valid UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view bytes);

}  // namespace roomcast::protocol
