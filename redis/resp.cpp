// redis/resp.cpp: RESP request formatting and reply copying used by the client.
// Rule: pure functions over bytes; a hiredis reply is copied out, never kept past its callback.
#include "redis/resp.h"

namespace roomcast::redis {

namespace {

void format_array_header(size_t n, std::string* out) {
  out->push_back('*');
  out->append(std::to_string(n));
  out->append("\r\n");
}

void format_bulk(std::string_view arg, std::string* out) {
  out->push_back('$');
  out->append(std::to_string(arg.size()));
  out->append("\r\n");
  out->append(arg.data(), arg.size());
  out->append("\r\n");
}

}  // namespace

void format_command(const std::vector<std::string_view>& argv, std::string* out) {
  size_t bytes = 16;
  for (auto a : argv) bytes += a.size() + 24;
  out->reserve(out->size() + bytes);
  format_array_header(argv.size(), out);
  for (auto a : argv) format_bulk(a, out);
}

std::string client_name(const std::string& instance_id, const char* role) {
  std::string name = "roomcast:" + instance_id + ":" + role;
  for (char& ch : name)
    if (ch < '!' || ch > '~') ch = '_';
  return name;
}

Value to_value(const redisReply* r) {
  Value v;
  if (r == nullptr) return v;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      v.type = Value::Type::String;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      v.type = Value::Type::Status;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      v.type = Value::Type::Error;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      v.type = Value::Type::Integer;
      v.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      v.type = Value::Type::Array;
      v.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) v.elements.push_back(to_value(r->element[i]));
      break;
    default:  // REDIS_REPLY_NIL
      break;
  }
  return v;
}

}  // namespace roomcast::redis
