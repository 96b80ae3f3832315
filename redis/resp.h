// redis/resp.h: RESP request formatting and reply copying used by the client.
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

// A CLIENT SETNAME name, roomcast:<instance-id>:<role>, with bytes Redis refuses (outside '!'..'~') as '_'.
std::string client_name(const std::string& instance_id, const char* role);

// A deep copy of a hiredis reply; a null reply gives Nil.
Value to_value(const redisReply* reply);

}  // namespace roomcast::redis
