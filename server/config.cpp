// Every setting of the server: one table with name, environment variable, default, bounds and help.
// Rule: a bad value is an error at start-up with the setting's name, never a silent clamp.
#include "server/config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <functional>
#include <set>

#include "server/log.h"
#include "server/static_files.h"

#ifndef ROOMCAST_VERSION
#define ROOMCAST_VERSION "0.0.0"
#endif

namespace roomcast::server {

namespace {

// List: comma-separated, the last occurrence wins. Repeat: each occurrence adds one item (values may hold
// commas); the command line's occurrences replace the environment's. Cidrs: a comma-separated list of
// CIDR ranges, parsed strictly.
enum class Kind { Text, Int, Size, Seconds, List, Repeat, Level, Cidrs };

struct Setting {
  const char* flag;     // --name
  const char* env;      // environment variable
  Kind kind;
  double min, max;      // bounds for numbers
  const char* help;
  std::function<void*(Config&)> field;
};

const std::vector<Setting>& table() {
  static const std::vector<Setting> t = {
      {"host", "HOST", Kind::Text, 0, 0, "address to listen on (default 0.0.0.0)", [](Config& c) -> void* { return &c.host; }},
      {"port", "PORT", Kind::Int, 1, 65535, "TCP port; instances share it with SO_REUSEPORT (default 8080)", [](Config& c) -> void* { return &c.port; }},
      {"redis", "REDIS_URL", Kind::Text, 0, 0, "redis://[:password@]host[:port][/db]; without it: standalone, in memory", [](Config& c) -> void* { return &c.redis_url; }},
      {"redis-cluster", "ROOMCAST_REDIS_CLUSTER", Kind::Text, 0, 0, "Redis Cluster seed nodes host:port[,host:port...] (redis:// URLs too); the rest is discovered. Not with --redis", [](Config& c) -> void* { return &c.redis_cluster; }},
      {"redis-probe-interval", "ROOMCAST_REDIS_PROBE_INTERVAL", Kind::Seconds, 0.05, 3600, "seconds between liveness probes of Redis (of each master in a cluster); one not back in 3 s (or 3 intervals, if longer) drops the link (default 1)", [](Config& c) -> void* { return &c.redis_probe_interval; }},
      {"redis-prefix", "ROOMCAST_REDIS_PREFIX", Kind::Text, 0, 0, "prefix of every Redis key and channel (default empty)", [](Config& c) -> void* { return &c.redis_prefix; }},
      {"static", "ROOMCAST_STATIC", Kind::Text, 0, 0, "folder of the web client (default: the bundled client-web)", [](Config& c) -> void* { return &c.static_dir; }},
      {"max-message", "ROOMCAST_MAX_MESSAGE", Kind::Size, 128, 64.0 * 1024 * 1024, "largest WebSocket message in bytes; larger: close 1009 (default 65536)", [](Config& c) -> void* { return &c.max_message; }},
      {"max-outbound", "ROOMCAST_MAX_OUTBOUND", Kind::Size, 4096, 1024.0 * 1024 * 1024, "unsent bytes per connection before it is closed 1008; an HTTP connection reads no further requests instead (default 1048576)", [](Config& c) -> void* { return &c.max_outbound; }},
      {"ping-interval", "ROOMCAST_PING_INTERVAL", Kind::Seconds, 0.05, 3600, "seconds between server pings; silent for two: close 1001 (default 25)", [](Config& c) -> void* { return &c.ping_interval; }},
      {"rate", "ROOMCAST_RATE", Kind::Seconds, 0.1, 1e6, "client messages per second per connection, burst twice that (default 50)", [](Config& c) -> void* { return &c.rate; }},
      {"history", "ROOMCAST_HISTORY", Kind::Int, 0, 100000, "chat events kept per room (default 50)", [](Config& c) -> void* { return &c.history; }},
      {"max-rooms", "ROOMCAST_MAX_ROOMS", Kind::Int, 1, 100000, "rooms one connection may be in at once (default 100)", [](Config& c) -> void* { return &c.max_rooms; }},
      {"max-connections", "ROOMCAST_MAX_CONNECTIONS", Kind::Int, 1, 10000000, "WebSocket connections per instance; beyond: 503 before the upgrade (default 10000)", [](Config& c) -> void* { return &c.max_connections; }},
      {"history-memory", "ROOMCAST_HISTORY_MEMORY", Kind::Size, 0, 64.0 * 1024 * 1024 * 1024, "standalone: bytes of chat history kept in memory, least recently used rooms dropped first (default 67108864)", [](Config& c) -> void* { return &c.history_memory; }},
      {"history-ttl", "ROOMCAST_HISTORY_TTL", Kind::Seconds, 1, 365.0 * 24 * 3600, "Redis: seconds a room's history is kept after its last chat (default 604800, a week)", [](Config& c) -> void* { return &c.history_ttl; }},
      {"instance-ttl", "ROOMCAST_INSTANCE_TTL", Kind::Seconds, 1, 30, "Redis: an instance whose heartbeat is this old is dead; the others send its members' presence leave (default 30)", [](Config& c) -> void* { return &c.instance_ttl; }},
      {"shutdown-grace", "ROOMCAST_SHUTDOWN_GRACE", Kind::Seconds, 0, 60, "seconds to finish closing handshakes on SIGTERM before dropping connections (default 3)", [](Config& c) -> void* { return &c.shutdown_grace; }},
      {"trusted-proxy", "ROOMCAST_TRUSTED_PROXY", Kind::Cidrs, 0, 0, "comma-separated CIDR ranges (10.0.0.0/8, fd00::/8, 127.0.0.1/32) of reverse proxies whose X-Forwarded-For names the client (default none: the TCP peer is the client)", [](Config& c) -> void* { return &c.trusted_proxy; }},
      {"allow-origin", "ROOMCAST_ALLOW_ORIGIN", Kind::List, 0, 0, "comma-separated browser origins allowed besides the Host's own (\"*\": any)", [](Config& c) -> void* { return &c.allow_origin; }},
      {"jwt-secret", "ROOMCAST_JWT_SECRET", Kind::Repeat, 0, 0, "HS256 secret (at least 16 bytes), or KID=SECRET; repeat for rotation. Any key turns authentication on", [](Config& c) -> void* { return &c.jwt_secrets; }},
      {"jwt-public-key", "ROOMCAST_JWT_PUBLIC_KEY", Kind::Repeat, 0, 0, "PEM public key file (RSA: RS256, EC P-256: ES256), or KID=PATH; repeatable; SIGHUP reloads", [](Config& c) -> void* { return &c.jwt_public_keys; }},
      {"jwt-audience", "ROOMCAST_JWT_AUDIENCE", Kind::Text, 0, 0, "tokens must name this in aud (default: aud not checked)", [](Config& c) -> void* { return &c.jwt_audience; }},
      {"jwt-issuer", "ROOMCAST_JWT_ISSUER", Kind::Text, 0, 0, "tokens must have this iss (default: iss not checked)", [](Config& c) -> void* { return &c.jwt_issuer; }},
      {"jwt-leeway", "ROOMCAST_JWT_LEEWAY", Kind::Int, 0, 3600, "seconds of clock leeway for exp, nbf and iat (default 60)", [](Config& c) -> void* { return &c.jwt_leeway; }},
      {"log-level", "ROOMCAST_LOG_LEVEL", Kind::Level, 0, 0, "error, warn, info or debug (default info)", [](Config& c) -> void* { return &c.log_level; }},
      {"instance-id", "ROOMCAST_INSTANCE_ID", Kind::Text, 0, 0, "name of this process in logs, metrics, /healthz and the hello reply (default host:pid)", [](Config& c) -> void* { return &c.instance_id; }},
      {"api-key", "ROOMCAST_API_KEY", Kind::Text, 0, 0, "key of the server API (/api/...: Authorization: Bearer KEY or X-API-Key: KEY); without it /api/... is 404", [](Config& c) -> void* { return &c.api_key; }},
  };
  return t;
}

// Sets the setting from value. Returns false when the value is bad; *why then says why when the generic
// help is not enough.
bool set_value(const Setting& s, const char* value, Config* c, std::string* why) {
  void* f = s.field(*c);
  char* end = nullptr;
  switch (s.kind) {
    case Kind::Text:
      *static_cast<std::string*>(f) = value;
      return true;
    case Kind::List: {
      auto* list = static_cast<std::vector<std::string>*>(f);
      list->clear();
      std::string v(value);
      size_t start = 0;
      while (start <= v.size()) {
        size_t comma = v.find(',', start);
        std::string item = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!item.empty()) list->push_back(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      return true;
    }
    case Kind::Repeat:
      static_cast<std::vector<std::string>*>(f)->push_back(value);
      return true;
    case Kind::Cidrs:
      *why = protocol::parse_cidr_list(value, static_cast<std::vector<protocol::Cidr>*>(f));
      return why->empty();
    case Kind::Level: {
      int level = log_level_from_name(value);
      if (level < 0) return false;
      *static_cast<int*>(f) = level;
      return true;
    }
    case Kind::Int:
    case Kind::Size:
    case Kind::Seconds: {
      double d = strtod(value, &end);
      if (!*value || *end || d < s.min || d > s.max) return false;
      if (s.kind == Kind::Int) {
        if (d != static_cast<int>(d)) return false;
        *static_cast<int*>(f) = static_cast<int>(d);
      } else if (s.kind == Kind::Size) {
        if (d != static_cast<double>(static_cast<size_t>(d))) return false;
        *static_cast<size_t*>(f) = static_cast<size_t>(d);
      } else {
        *static_cast<double*>(f) = d;
      }
      return true;
    }
  }
  return false;
}

std::string bounds(const Setting& s) {
  char buf[96];
  if (s.kind == Kind::Int || s.kind == Kind::Size || s.kind == Kind::Seconds) {
    snprintf(buf, sizeof(buf), " (from %g to %g)", s.min, s.max);
    return buf;
  }
  return "";
}

}  // namespace

std::string config_help() {
  std::string h =
      "roomcast " ROOMCAST_VERSION " - room-based real-time chat over WebSocket\n\n"
      "Usage: roomcast [options]\n"
      "       roomcast token --secret SECRET --sub USER_ID [--name NAME] [--rooms 'a-*,b'] [--ttl 1h] [--kid KID]\n"
      "                      (prints a signed HS256 token for trying authentication out; see roomcast token --help)\n\n"
      "Every option can also be set by the environment variable shown; the command line wins.\n\n";
  for (const Setting& s : table()) {
    char line[512];
    snprintf(line, sizeof(line), "  --%-16s %-24s %s\n", s.flag, s.env, s.help);
    h += line;
  }
  h += "  --help                                    this text\n"
       "  --version                                 print the version\n\n"
       "Without --redis one process serves everything in memory. With it, any number of instances\n"
       "(on one port with SO_REUSEPORT, or on many machines) share rooms through Redis Pub/Sub; with\n"
       "--redis-cluster, through a Redis Cluster's sharded Pub/Sub (each room on its slot's master).\n"
       "With --jwt-secret or --jwt-public-key, WebSockets (?token= or Authorization: Bearer) and the room\n"
       "API (Authorization: Bearer) need a valid JWT; identity and allowed rooms come from it (docs/auth.md).\n";
  return h;
}

int parse_config(int argc, char** argv, Config* out) {
  Config c;
  c.static_dir = default_static_dir();
  for (const Setting& s : table()) {
    const char* v = getenv(s.env);
    std::string why;
    if (v && *v && !set_value(s, v, &c, &why)) {
      if (!why.empty()) fprintf(stderr, "roomcast: bad value '%s' in %s: %s\n", v, s.env, why.c_str());
      else fprintf(stderr, "roomcast: bad value '%s' in %s: %s%s\n", v, s.env, s.help, bounds(s).c_str());
      return -1;
    }
  }
  std::set<std::string> repeated;  // Repeat settings given on the command line
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      fputs(config_help().c_str(), stdout);
      return 1;
    }
    if (arg == "--version") {
      puts("roomcast " ROOMCAST_VERSION);
      return 1;
    }
    if (arg.rfind("--", 0) != 0) {
      fprintf(stderr, "roomcast: unexpected argument '%s' (see --help)\n", arg.c_str());
      return -1;
    }
    std::string name = arg.substr(2), value;
    bool have_value = false;
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      have_value = true;
    }
    const Setting* found = nullptr;
    for (const Setting& s : table())
      if (name == s.flag) found = &s;
    if (!found) {
      fprintf(stderr, "roomcast: unknown option '--%s' (see --help)\n", name.c_str());
      return -1;
    }
    if (!have_value) {
      if (i + 1 >= argc) {
        fprintf(stderr, "roomcast: --%s needs a value\n", name.c_str());
        return -1;
      }
      value = argv[++i];
    }
    if (found->kind == Kind::Repeat && !repeated.count(found->flag)) {
      static_cast<std::vector<std::string>*>(found->field(c))->clear();  // the environment's value yields
      repeated.insert(found->flag);
    }
    std::string why;
    if (!set_value(*found, value.c_str(), &c, &why)) {
      if (!why.empty()) {
        fprintf(stderr, "roomcast: bad value '%s' for --%s: %s\n", value.c_str(), name.c_str(), why.c_str());
        return -1;
      }
      fprintf(stderr, "roomcast: bad value '%s' for --%s: %s%s\n", value.c_str(), name.c_str(), found->help,
              bounds(*found).c_str());
      return -1;
    }
  }
  if (!c.redis_url.empty() && !c.redis_cluster.empty()) {
    fprintf(stderr, "roomcast: --redis and --redis-cluster exclude each other: one Redis, or a Redis Cluster\n");
    return -1;
  }
  if (c.instance_id.empty()) {
    char host[HOST_NAME_MAX + 1] = "localhost";
    gethostname(host, sizeof(host));
    host[HOST_NAME_MAX] = '\0';
    c.instance_id = std::string(host) + ":" + std::to_string(getpid());
  }
  *out = std::move(c);
  return 0;
}

}  // namespace roomcast::server
