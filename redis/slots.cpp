// redis/slots.cpp: hash slots, hash tags, CLUSTER SLOTS and redirect parsing.
// Rule: every input is untrusted bytes: anything malformed is refused, never half-applied.
#include "redis/slots.h"

#include <array>
#include <charconv>

namespace roomcast::redis {

namespace {

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), the checksum the cluster specification names.
std::array<uint16_t, 256> make_crc_table() {
  std::array<uint16_t, 256> t{};
  for (int i = 0; i < 256; i++) {
    uint16_t crc = static_cast<uint16_t>(i << 8);
    for (int b = 0; b < 8; b++) crc = static_cast<uint16_t>(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    t[static_cast<size_t>(i)] = crc;
  }
  return t;
}

uint16_t crc16(std::string_view s) {
  static const std::array<uint16_t, 256> table = make_crc_table();
  uint16_t crc = 0;
  for (unsigned char c : s) crc = static_cast<uint16_t>((crc << 8) ^ table[((crc >> 8) ^ c) & 0xff]);
  return crc;
}

bool to_int(std::string_view s, long long* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

uint16_t key_slot(std::string_view key) {
  size_t open = key.find('{');
  if (open != std::string_view::npos) {
    size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  return static_cast<uint16_t>(crc16(key) & (kSlots - 1));
}

std::string_view routing_key(const std::vector<std::string_view>& argv) {
  if (argv.size() < 2) return {};
  std::string_view cmd = argv[0];
  auto is = [cmd](std::string_view name) {
    if (cmd.size() != name.size()) return false;
    for (size_t i = 0; i < cmd.size(); i++)
      if ((cmd[i] | 0x20) != name[i]) return false;
    return true;
  };
  if (is("eval") || is("evalsha") || is("fcall") || is("eval_ro") || is("evalsha_ro") || is("fcall_ro")) {
    long long n = 0;
    if (argv.size() < 4 || !to_int(argv[2], &n) || n < 1) return {};
    return argv[3];
  }
  if (is("time") || is("ping") || is("cluster") || is("info") || is("asking") || is("client") || is("auth")) return {};
  return argv[1];
}

const std::string& tag_for_slot(uint16_t slot) {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(kSlots);
    size_t left = kSlots;
    for (uint32_t i = 0; left > 0; i++) {
      std::string s = "s" + std::to_string(i);
      std::string& cell = t[key_slot(s)];
      if (cell.empty()) {
        cell = std::move(s);
        left--;
      }
    }
    return t;
  }();
  return table[slot & (kSlots - 1)];
}

bool parse_cluster_slots(const Value& reply, std::vector<SlotRange>* out) {
  out->clear();
  if (reply.type != Value::Type::Array) return false;
  std::vector<SlotRange> ranges;
  for (const Value& r : reply.elements) {
    if (r.type != Value::Type::Array || r.elements.size() < 3) return false;
    const Value& a = r.elements[0];
    const Value& b = r.elements[1];
    const Value& master = r.elements[2];
    if (a.type != Value::Type::Integer || b.type != Value::Type::Integer) return false;
    if (a.integer < 0 || b.integer < a.integer || b.integer >= kSlots) return false;
    if (master.type != Value::Type::Array || master.elements.size() < 2) return false;
    if (master.elements[1].type != Value::Type::Integer) return false;
    long long port = master.elements[1].integer;
    if (port < 1 || port > 65535) return false;
    SlotRange s;
    s.first = static_cast<uint16_t>(a.integer);
    s.last = static_cast<uint16_t>(b.integer);
    if (master.elements[0].type == Value::Type::String) s.host = master.elements[0].str;
    s.port = static_cast<int>(port);
    ranges.push_back(std::move(s));
  }
  *out = std::move(ranges);
  return true;
}

bool parse_redirect(std::string_view e, Redirect* out) {
  Redirect r;
  if (e.rfind("MOVED ", 0) == 0) {
    e.remove_prefix(6);
  } else if (e.rfind("ASK ", 0) == 0) {
    r.ask = true;
    e.remove_prefix(4);
  } else {
    return false;
  }
  size_t sp = e.find(' ');
  long long slot = 0, port = 0;
  if (sp == std::string_view::npos || !to_int(e.substr(0, sp), &slot) || slot < 0 || slot >= kSlots) return false;
  std::string_view addr = e.substr(sp + 1);
  size_t colon = addr.rfind(':');
  if (colon == std::string_view::npos || !to_int(addr.substr(colon + 1), &port) || port < 1 || port > 65535) return false;
  r.slot = static_cast<uint16_t>(slot);
  std::string_view host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  r.host = std::string(host);
  r.port = static_cast<int>(port);
  *out = std::move(r);
  return true;
}

}  // namespace roomcast::redis
