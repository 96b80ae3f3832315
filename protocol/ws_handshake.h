// WebSocket opening handshake (RFC 6455 section 4): request checks, Origin policy, accept key.
// Rule: a request is upgraded only when every check passes; each failure has its own status.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "protocol/http_parser.h"

namespace roomcast::protocol {

// True when the request asks for a WebSocket (an Upgrade header naming "websocket").
bool wants_websocket(const HttpRequest& req);

// True when the request has no Origin, or its Origin's host[:port] equals the Host header, or the
// Origin (as "scheme://host[:port]" or "host[:port]") is listed in allowed ("*" allows every origin).
bool origin_allowed(const HttpRequest& req, const std::vector<std::string>& allowed);

struct HandshakeVerdict {
  int status = 0;            // 101 to upgrade; else 400, 403 or 426
  std::string accept;        // Sec-WebSocket-Accept value when status is 101
  const char* reason = "";   // why not, for the error body and the log
};

// Checks method GET over HTTP/1.1, Upgrade/Connection tokens, version 13, the key, the Origin.
HandshakeVerdict check_handshake(const HttpRequest& req, const std::vector<std::string>& allowed_origins);

// Returns base64(SHA-1(key + RFC 6455 GUID)).
std::string websocket_accept(std::string_view key);

// True when value, split on commas, has token (case-insensitive, blanks trimmed).
bool header_has_token(std::string_view value, std::string_view token);

}  // namespace roomcast::protocol
