// redis/resp.h: RESP request formatting, reply copying and script hashing used by the client.
// Rule: pure functions over bytes; a hiredis reply is copied out, never kept past its callback.
#pragma once

#include <hiredis/hiredis.h>

#include <string>
#include <string_view>
#include <vector>

#include "redis/client.h"

namespace roomcast::redis {

// Appends one RESP array of bulk strings (binary safe) to *out.
void format_command(const std::vector<std::string_view>& argv, std::string* out);
// Appends the header "*<n>\r\n" and one bulk string; used to build commands piece by piece.
void format_array_header(size_t n, std::string* out);
void format_bulk(std::string_view arg, std::string* out);

// A deep copy of a hiredis reply; a null reply gives Nil.
Value to_value(const redisReply* reply);

// Lower-case hex SHA-1 of `text` (the name Redis gives a script). Empty on failure.
std::string sha1_hex(std::string_view text);

}  // namespace roomcast::redis
