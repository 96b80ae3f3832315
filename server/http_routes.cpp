// HTTP routes of section 1 of the contract: static files, the room API, health and metrics.
// Rule: requests from a foreign browser Origin cannot create rooms or open WebSockets; the admin port answers
// only its three GET paths and never upgrades.
#include "server/http_routes.h"

#include <stdlib.h>

#include <algorithm>
#include <string>
#include <vector>

#include "protocol/http_path.h"
#include "protocol/ids.h"
#include "protocol/json_body.h"
#include "server/api.h"
#include "server/broker.h"
#include "server/hub.h"
#include "server/room.h"
#include "server/server.h"
#include "server/static_files.h"

namespace roomcast::server {

namespace {

const char* status_text(int status) {
  switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 413: return "Payload Too Large";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
  }
  return "Error";
}

const char* kSecurityHeaders =
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n";

const char* kPageHeaders =
    "Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'\r\n";

const char* kBearerChallenge = "WWW-Authenticate: Bearer realm=\"roomcast\"\r\n";

// The head is built as a string of any length: a long header (the page's CSP) is never cut short.
SharedBuf* response(int status, const char* type, std::string_view body, bool keep_alive, bool head = false,
                    const char* extra = "") {
  std::string out;
  out.reserve(256 + std::char_traits<char>::length(extra) + (head ? 0 : body.size()));
  out.append("HTTP/1.1 ").append(std::to_string(status)).append(" ").append(status_text(status)).append("\r\n");
  out.append("Content-Type: ").append(type).append("\r\n");
  out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  out.append("Connection: ").append(keep_alive ? "keep-alive" : "close").append("\r\n");
  out.append("Cache-Control: no-cache\r\n").append(kSecurityHeaders).append(extra).append("\r\n");
  if (!head) out.append(body);
  return SharedBuf::make(std::move(out));
}

SharedBuf* json(int status, const std::string& body, bool keep_alive, bool head) {
  return response(status, "application/json", body, keep_alive, head);
}

// The body of an error answer: {"error":code} or with a human-readable message.
SharedBuf* json_error(int status, const char* code, bool keep_alive, bool head, const char* message = "") {
  return json(status, protocol::error_body(code, message), keep_alive, head);
}

void room_info(Server& server, std::string_view id, bool keep_alive, bool head, std::function<void(SharedBuf*)> reply) {
  if (!protocol::valid_room_id(id)) {
    reply(json_error(400, "bad_room", keep_alive, head));
    return;
  }
  std::string room(id);
  server.hub().room_members(room, [room, keep_alive, head, reply = std::move(reply)](MemberList list) {
    reply(json(200, protocol::room_body(room, list.users, list.count, list.truncated), keep_alive, head));
  });
}

SharedBuf* healthz(Server& server, bool keep, bool head) {
  Broker& b = server.broker();
  protocol::Health h;
  // Redis Cluster: degraded also while a room here has no reachable owner for its slot.
  bool cluster = b.cluster();
  h.up = b.up() && b.reachable();
  h.redis = b.standalone() ? "standalone" : cluster ? "cluster" : h.up ? "up" : "down";
  if (cluster) h.masters = static_cast<int>(b.masters());
  h.connections = server.connection_count();
  h.websockets = server.websocket_count();
  h.instance = server.config().instance_id;
  return json(h.up ? 200 : 503, protocol::health_body(h), keep, head);
}

SharedBuf* metrics(Server& server, bool keep, bool head) {
  std::string body = render_metrics(server.metrics(), server.gauges());
  server.broker().write_metrics(&body);
  return response(200, "text/plain; version=0.0.4; charset=utf-8", body, keep, head);
}

// GET /debug/rooms[?limit=N] on the admin port: this instance's rooms, the N biggest (by local members, then
// held bytes) listed. The output is bounded by the limit (at most kMaxListed rooms), whatever the room count.
constexpr size_t kDefaultListed = 20;
constexpr size_t kMaxListed = 1000;

SharedBuf* debug_rooms(Server& server, std::string_view query, bool keep, bool head) {
  size_t limit = kDefaultListed;
  if (auto v = protocol::query_param(query, "limit")) {
    char* end = nullptr;
    unsigned long n = strtoul(v->c_str(), &end, 10);
    if (v->empty() || *end || n < 1 || n > kMaxListed)
      return json_error(400, "bad_request", keep, head, "limit must be from 1 to 1000");
    limit = n;
  }
  protocol::RoomsSummary sum;
  sum.instance = server.config().instance_id;
  sum.limit = limit;
  const Rooms& rooms = server.hub().rooms();
  sum.rooms = rooms.size();
  sum.held_bytes = rooms.held_bytes();
  // A min-heap of the biggest rooms seen so far: O(rooms log limit) time, O(limit) memory.
  auto bigger = [](const Room* a, const Room* b) {
    if (a->seats.size() != b->seats.size()) return a->seats.size() > b->seats.size();
    if (a->held_bytes != b->held_bytes) return a->held_bytes > b->held_bytes;
    return a->id < b->id;
  };
  std::vector<const Room*> heap;
  heap.reserve(limit + 1);
  rooms.for_each([&](const Room& r) {
    sum.members += r.seats.size();
    heap.push_back(&r);
    std::push_heap(heap.begin(), heap.end(), bigger);
    if (heap.size() > limit) {
      std::pop_heap(heap.begin(), heap.end(), bigger);
      heap.pop_back();
    }
  });
  std::sort(heap.begin(), heap.end(), bigger);
  for (const Room* r : heap) {
    protocol::RoomSummary one;
    one.id = r->id;
    one.state = room_state_name(r->state);
    one.members = r->seats.size();
    one.users = r->users.size();
    one.held_bytes = r->held_bytes;
    sum.top.push_back(one);
  }
  return json(200, protocol::rooms_summary_body(sum), keep, head);
}

SharedBuf* route_sync(Server& server, const protocol::HttpRequest& req, std::string_view path) {
  const bool keep = req.keep_alive;
  const bool head = req.method == "HEAD";
  if (req.method == "POST") {
    if (path != "/create-room") return json_error(404, "not_found", keep, false);
    if (!protocol::origin_allowed(req, server.config().allow_origin)) return json_error(403, "forbidden", keep, false, "origin not allowed");
    std::string id = protocol::new_room_id();
    if (id.empty()) return json_error(503, "unavailable", keep, false);
    return json(201, protocol::created_body(id), keep, false);
  }
  if (req.method != "GET" && !head) return json_error(404, "not_found", keep, false);

  if (path == "/healthz") return healthz(server, keep, head);
  if (path == "/metrics") return metrics(server, keep, head);
  if (path == "/ws") {
    return response(426, "application/json", protocol::error_body("upgrade_required", "this path speaks WebSocket only"),
                    keep, head, "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n");
  }
  if (auto name = protocol::static_file_path(path)) {
    if (const StaticFiles::File* f = server.static_files().find(*name)) {
      bool page = std::string_view(f->type).rfind("text/html", 0) == 0;
      return response(200, f->type, f->body, keep, head, page ? kPageHeaders : "");
    }
  }
  return json_error(404, "not_found", keep, head);
}

}  // namespace

SharedBuf* make_error_response(int status, std::string_view reason) {
  const char* code = status == 401   ? "unauthorized"
                     : status == 431 ? "too_large"
                     : status == 403 ? "forbidden"
                     : status == 404 ? "not_found"
                     : status == 413 ? "too_large"
                     : status == 426 ? "upgrade_required"
                     : status == 503 ? "unavailable"
                                     : "bad_request";
  return response(status, "application/json", protocol::error_body(code, reason), false, false,
                  status == 426   ? "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n"
                  : status == 401 ? kBearerChallenge
                                  : "");
}

SharedBuf* make_json_response(int status, std::string_view body, bool keep_alive) {
  return response(status, "application/json", body, keep_alive);
}

SharedBuf* make_upgrade_response(std::string_view accept) {
  std::string out = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ";
  out.append(accept);
  out.append("\r\n\r\n");
  return SharedBuf::make(std::move(out));
}

protocol::HandshakeVerdict check_upgrade(const Server& server, const protocol::HttpRequest& req, bool admin) {
  std::string_view path, query;
  protocol::split_target(req.target, &path, &query);
  if (admin) {
    protocol::HandshakeVerdict v;
    v.status = 404;
    v.reason = "the admin port serves no WebSocket";
    return v;
  }
  if (path != "/" && path != "/ws") {
    protocol::HandshakeVerdict v;
    v.status = 404;
    v.reason = "WebSocket is served on /ws";
    return v;
  }
  return protocol::check_handshake(req, server.config().allow_origin);
}

// With authentication on, the room API needs Authorization: Bearer (section 8). Returns nullptr when the
// request may go on, else the 401 answer. creating: POST /create-room; else room is the room asked about.
static SharedBuf* refuse_unauthorized(Server& server, const protocol::HttpRequest& req, bool creating, std::string_view room) {
  if (!server.auth_on()) return nullptr;
  std::string_view token;
  if (const std::string* h = req.header("authorization")) token = bearer_token(*h);
  AuthGrant grant;
  const char* why = nullptr;
  if (server.check_token(token, &grant, "http") != AuthRefusal::None) why = "a valid token is needed (Authorization: Bearer)";
  else if (creating && grant.rooms_limited) why = "a token with a rooms claim may not create rooms";
  else if (!creating && protocol::valid_room_id(room) && !grant.may_enter(room)) why = "the token does not allow this room";
  if (!why) return nullptr;
  bool head = req.method == "HEAD";
  return response(401, "application/json", protocol::error_body("unauthorized", why), req.keep_alive, head, kBearerChallenge);
}

void route_admin(Server& server, const protocol::HttpRequest& req, std::function<void(SharedBuf*)> reply) {
  std::string_view path, query;
  protocol::split_target(req.target, &path, &query);
  const bool keep = req.keep_alive;
  const bool head = req.method == "HEAD";
  if (req.method != "GET" && !head) return reply(json_error(404, "not_found", keep, false));
  if (path == "/metrics") return reply(metrics(server, keep, head));
  if (path == "/healthz") return reply(healthz(server, keep, head));
  if (path == "/debug/rooms") return reply(debug_rooms(server, query, keep, head));
  reply(json_error(404, "not_found", keep, head));
}

void route_http(Server& server, const protocol::HttpRequest& req, std::function<void(SharedBuf*)> reply) {
  std::string_view path, query;
  protocol::split_target(req.target, &path, &query);
  if (is_api_path(path)) return route_api(server, req, path, std::move(reply));
  bool get = req.method == "GET" || req.method == "HEAD";
  std::string_view room;
  bool room_api = false;
  if (get && path.rfind("/rooms/", 0) == 0) room = path.substr(7), room_api = true;
  else if (get && path.rfind("/join-room/", 0) == 0) room = path.substr(11), room_api = true;
  else if (req.method == "POST" && path == "/create-room") room_api = true;
  if (room_api) {
    if (SharedBuf* refused = refuse_unauthorized(server, req, !get, room)) return reply(refused);
  }
  if (get && path.rfind("/rooms/", 0) == 0) return room_info(server, path.substr(7), req.keep_alive, req.method == "HEAD", std::move(reply));
  if (get && path.rfind("/join-room/", 0) == 0) return room_info(server, path.substr(11), req.keep_alive, req.method == "HEAD", std::move(reply));
  reply(route_sync(server, req, path));
}

}  // namespace roomcast::server
