// The server API of PROTOCOL.md section 9 (/api/...): publish, disconnect, room state, for application backends.
// Rule: off without --api-key (404); on, every call needs the key, compared in constant time, and is answered exactly once.
#pragma once
#include <functional>
#include <string_view>

#include "protocol/http_parser.h"
#include "server/shared_buf.h"

namespace roomcast::server {

class Server;

// True for a path of the server API ("/api" and below).
bool is_api_path(std::string_view path);
// Answers a request whose path is_api_path: reply gets the response once, at once or later (the
// broker's answer). reply must not hold a pointer to anything that may close.
void route_api(Server& server, const protocol::HttpRequest& req, std::string_view path, std::function<void(SharedBuf*)> reply);
// True when headers carry the key (Authorization: Bearer KEY or X-API-Key: KEY); the comparison
// takes the same time whatever the values (SHA-256 digests, CRYPTO_memcmp).
bool api_key_matches(const protocol::HttpRequest& req, std::string_view key);

}  // namespace roomcast::server
