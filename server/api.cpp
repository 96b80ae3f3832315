// The server API of PROTOCOL.md section 9 (/api/...): publish, disconnect, room state, for application backends.
// Rule: a publish takes the members' chat path (Hub::publish_chat), a disconnect goes through the broker's
// control channel to every instance; the key is never logged.
#include "server/api.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cctype>
#include <memory>
#include <string>

#include "protocol/api_body.h"
#include "protocol/json_body.h"
#include "server/broker.h"
#include "server/http_routes.h"
#include "server/hub.h"
#include "server/log.h"
#include "server/server.h"

namespace roomcast::server {

namespace {

// The byte budget of GET /api/rooms/<R>'s history, as for a `joined` frame.
constexpr size_t kRoomHistoryBytes = 512 * 1024;

bool equal_secret(std::string_view given, std::string_view key) {
  // Digests first: the comparison then takes one time whatever the lengths and contents.
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(given.data()), given.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), b);
  return CRYPTO_memcmp(a, b, sizeof(a)) == 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// One answer of the API: counted by route and status, sent once.
class Answer {
 public:
  Answer(Server* server, const char* route, bool keep_alive, std::function<void(SharedBuf*)> reply)
      : server_(server), route_(route), keep_alive_(keep_alive), reply_(std::move(reply)) {}
  void operator()(int status, const std::string& body) const {
    server_->metrics().api_requests[{route_, status}]++;
    reply_(make_json_response(status, body, keep_alive_));
  }
  void error(int status, protocol::ErrorCode code, std::string_view message = {}) const {
    (*this)(status, protocol::error_body(protocol::error_code_name(code), message));
  }

 private:
  Server* server_;        // outlives every answer
  const char* route_;     // metrics label: a fixed name, never the request's path
  bool keep_alive_;
  std::function<void(SharedBuf*)> reply_;
};

void publish(Server& server, const protocol::HttpRequest& req, const Answer& answer) {
  protocol::PublishRequest p;
  protocol::ApiError err;
  if (!protocol::parse_publish_request(req.body, &p, &err)) return answer.error(400, err.code, err.message);
  auto refused = server.hub().publish_chat(p.room_id, p.user, p.message, [answer](int status, std::string_view id) {
    if (status < 0) answer.error(503, protocol::ErrorCode::Unavailable, "the message broker refused or dropped the message; it was not sent");
    else answer(200, protocol::publish_answer(id));
  });
  if (refused) answer.error(refused->code == protocol::ErrorCode::Unavailable ? 503 : 400, refused->code, refused->message);
}

void disconnect(Server& server, const protocol::HttpRequest& req, const Answer& answer) {
  std::string user_id;
  protocol::ApiError err;
  if (!protocol::parse_disconnect_request(req.body, &user_id, &err)) return answer.error(400, err.code, err.message);
  int r = server.broker().publish_control(protocol::encode_disconnect_control(user_id), [answer](int status) {
    if (status < 0) answer.error(503, protocol::ErrorCode::Unavailable, "the message broker did not take the disconnect");
    else answer(200, "{\"ok\":true}");
  });
  if (r < 0) answer.error(503, protocol::ErrorCode::Unavailable, "the message broker is unreachable");
}

void room_state(Server& server, std::string_view id, const Answer& answer) {
  if (!protocol::valid_room_id(id)) return answer.error(400, protocol::ErrorCode::BadRoom, "roomId must be 1-64 characters of [A-Za-z0-9_.:-]");
  std::string room(id);
  Server* srv = &server;
  server.hub().room_members(room, [srv, room, answer](MemberList list) {
    auto members = std::make_shared<MemberList>(std::move(list));
    size_t limit = static_cast<size_t>(srv->config().history);
    int r = srv->broker().history(room, "", limit, kRoomHistoryBytes, [room, members, answer](int status, HistoryRead read) {
      if (status < 0) return answer.error(503, protocol::ErrorCode::Unavailable, "the message broker could not read the history");
      answer(200, protocol::room_state_body(room, members->users, members->count, members->truncated, read.events, read.truncated));
    });
    if (r < 0) answer.error(503, protocol::ErrorCode::Unavailable, "the message broker is unreachable");
  });
}

}  // namespace

bool is_api_path(std::string_view path) { return path == "/api" || path.rfind("/api/", 0) == 0; }

bool api_key_matches(const protocol::HttpRequest& req, std::string_view key) {
  bool ok = false;
  if (const std::string* auth = req.header("authorization")) {
    std::string_view v = trim(*auth);
    static constexpr std::string_view kBearer = "bearer ";
    bool bearer = v.size() > kBearer.size();
    for (size_t i = 0; bearer && i < kBearer.size(); i++)
      bearer = std::tolower(static_cast<unsigned char>(v[i])) == kBearer[i];
    if (bearer && equal_secret(trim(v.substr(kBearer.size())), key)) ok = true;
  }
  if (const std::string* x = req.header("x-api-key")) {
    if (equal_secret(trim(*x), key)) ok = true;
  }
  return ok;
}

void route_api(Server& server, const protocol::HttpRequest& req, std::string_view path, std::function<void(SharedBuf*)> reply) {
  const std::string& key = server.config().api_key;
  if (key.empty()) {
    reply(make_json_response(404, protocol::error_body("not_found"), req.keep_alive));
    return;
  }
  const bool post = req.method == "POST", get = req.method == "GET";
  const char* route = post && path == "/api/publish"                 ? "publish"
                      : post && path == "/api/disconnect"            ? "disconnect"
                      : get && path.rfind("/api/rooms/", 0) == 0     ? "rooms"
                                                                     : "other";
  Answer answer(&server, route, req.keep_alive, std::move(reply));
  if (!api_key_matches(req, key)) return answer.error(401, protocol::ErrorCode::Unauthorized);
  if (route == std::string_view("publish")) return publish(server, req, answer);
  if (route == std::string_view("disconnect")) return disconnect(server, req, answer);
  if (route == std::string_view("rooms")) return room_state(server, path.substr(11), answer);
  answer(404, protocol::error_body("not_found"));
}

}  // namespace roomcast::server
