// Small rapidjson helpers shared by the protocol's encoders and parsers (internal to protocol/).
// Rule: every JSON text the server writes goes through rapidjson's Writer; nothing is pasted by hand.
#pragma once
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>
#include <string_view>

namespace roomcast::protocol::json {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// Writes s as a JSON string (escaped by rapidjson).
inline void put(Writer& w, std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); }

// The text written into buf.
inline std::string done(const rapidjson::StringBuffer& buf) { return std::string(buf.GetString(), buf.GetSize()); }

// The member `name` of obj, or nullptr.
inline const rapidjson::Value* field(const rapidjson::Value& obj, const char* name) {
  auto it = obj.FindMember(name);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

}  // namespace roomcast::protocol::json
