// HTTP routes of section 1 of the contract: static files, the room API, health and metrics; and the admin port's.
// Rule: every response is complete bytes in one SharedBuf, with an explicit Connection header.
#pragma once
#include <functional>
#include <string_view>

#include "protocol/http_parser.h"
#include "protocol/ws_handshake.h"
#include "server/shared_buf.h"

namespace roomcast::server {

class Server;

// Answers a plain (non-upgrade) request: reply gets the response, at once or later (room members
// in a cluster are read from Redis). reply must not hold a pointer to anything that may close.
void route_http(Server& server, const protocol::HttpRequest& req, std::function<void(SharedBuf*)> reply);
// Answers a request on the admin port (--admin-port): GET or HEAD of /metrics, /healthz and /debug/rooms;
// anything else is 404.
void route_admin(Server& server, const protocol::HttpRequest& req, std::function<void(SharedBuf*)> reply);
// Checks an upgrade request: path (/ or /ws), the RFC 6455 rules, the Origin policy (admin port: always 404).
protocol::HandshakeVerdict check_upgrade(const Server& server, const protocol::HttpRequest& req, bool admin = false);
// 101 Switching Protocols with the accept key.
SharedBuf* make_upgrade_response(std::string_view accept);
// A JSON answer (Content-Type application/json) with the connection kept or closed.
SharedBuf* make_json_response(int status, std::string_view body, bool keep_alive);
// An error with a JSON body and Connection: close (426 adds Sec-WebSocket-Version: 13).
SharedBuf* make_error_response(int status, std::string_view reason);

}  // namespace roomcast::server
