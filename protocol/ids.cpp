// Identifiers of the wire contract: room ids, users, generated codes, message-id order.
// Rule: randomness comes from OpenSSL's RAND_bytes (the OS CSPRNG), never from rand().
#include "protocol/ids.h"

#include <openssl/rand.h>

#include <cstdint>

#include "protocol/utf8.h"

namespace roomcast::protocol {

bool valid_room_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.' || c == ':';
    if (!ok) return false;
  }
  return true;
}

bool valid_user_id(std::string_view id) { return valid_room_id(id); }

bool valid_user_name(std::string_view name) {
  if (name.empty() || !valid_utf8(name)) return false;
  size_t code_points = 0;
  for (size_t i = 0; i < name.size(); i++) {
    unsigned char c = static_cast<unsigned char>(name[i]);
    if ((c & 0xC0) != 0x80) code_points++;
    if (c < 0x20 || c == 0x7f) return false;
    // C1 controls U+0080-U+009F are encoded C2 80..C2 9F.
    if (c == 0xC2 && i + 1 < name.size() && static_cast<unsigned char>(name[i + 1]) < 0xA0) return false;
  }
  return code_points <= 64;
}

std::string random_base32(size_t chars) {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string out;
  unsigned char bytes[64];
  if (chars > sizeof(bytes) || RAND_bytes(bytes, static_cast<int>(chars)) != 1) return out;
  for (size_t i = 0; i < chars; i++) out.push_back(kAlphabet[bytes[i] & 31]);
  return out;
}

std::string new_room_id() { return random_base32(10); }

User anonymous_user() {
  // 10 characters keep the id inside std::string's inline buffer: no allocation per anonymous connection.
  return User{"anon-" + random_base32(10), "guest-" + random_base32(4)};
}

bool valid_message_id(std::string_view id) {
  size_t dash = id.find('-');
  auto digits = [](std::string_view s) {
    if (s.empty() || s.size() > 19) return false;
    for (char c : s)
      if (c < '0' || c > '9') return false;
    return true;
  };
  if (dash == std::string_view::npos) return digits(id);
  return digits(id.substr(0, dash)) && digits(id.substr(dash + 1));
}

bool parse_message_id(std::string_view text, MsgId* out) {
  uint64_t parts[2] = {0, 0};
  int n = 0;
  size_t i = 0;
  while (n < 2) {
    size_t start = i;
    uint64_t v = 0;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; i++) {
      uint64_t d = static_cast<uint64_t>(text[i] - '0');
      if (v > (UINT64_MAX - d) / 10) return false;
      v = v * 10 + d;
    }
    if (i == start || i - start > 19) return false;
    parts[n++] = v;
    if (i == text.size()) break;
    if (text[i] != '-' || n == 2) return false;
    i++;
    if (i == text.size()) return false;
  }
  if (i != text.size()) return false;
  out->ms = parts[0];
  out->seq = parts[1];
  return true;
}

std::string format_message_id(const MsgId& id) { return std::to_string(id.ms) + "-" + std::to_string(id.seq); }

int compare_message_ids(std::string_view a, std::string_view b) {
  while (!a.empty() || !b.empty()) {
    size_t da = a.find('-'), db = b.find('-');
    std::string_view pa = a.substr(0, da), pb = b.substr(0, db);
    auto number = [](std::string_view s) {
      uint64_t v = 0;
      for (char c : s) {
        if (c < '0' || c > '9') return uint64_t{0};
        v = v * 10 + static_cast<uint64_t>(c - '0');
      }
      return v;
    };
    uint64_t na = number(pa), nb = number(pb);
    if (na != nb) return na < nb ? -1 : 1;
    a = da == std::string_view::npos ? std::string_view() : a.substr(da + 1);
    b = db == std::string_view::npos ? std::string_view() : b.substr(db + 1);
  }
  return 0;
}

}  // namespace roomcast::protocol
