// UTF-8 validation, shared by the WebSocket codec (text frames, close reasons) and the messages (names, chats, refs).
// Rule: rapidjson's decoder is the one judge, so what the codec lets through is what the JSON layer reads.
#include "protocol/utf8.h"

#include <rapidjson/encodings.h>
#include <rapidjson/memorystream.h>

namespace roomcast::protocol {

bool valid_utf8(std::string_view bytes) {
  // rapidjson's UTF-8 decoder rejects overlongs, surrogates and code points above U+10FFFF.
  struct Discard {
    void Put(char) {}
  } discard;
  rapidjson::MemoryStream in(bytes.data(), bytes.size());
  while (in.Tell() < bytes.size()) {
    if (!rapidjson::UTF8<>::Validate(in, discard)) return false;
  }
  return true;
}

}  // namespace roomcast::protocol
