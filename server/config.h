// Every setting of the server: one table with name, environment variable, default, bounds and help.
// Rule: settings are parsed in one place (config.cpp); the rest of the server reads Config only.
// Precedence, lowest first: the table's defaults < the config file (--config) < the environment < the command line.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "protocol/client_addr.h"
#include "server/auth.h"

namespace roomcast::server {

// The initial values below are the table's defaults (config.cpp); parse_config starts from the table.
struct Config {
  std::string config_file;                 // --config: the file read ("": none)
  std::string host = "0.0.0.0";            // address to listen on
  int port = 8080;                         // TCP port, shared with SO_REUSEPORT
  std::string admin_host = "127.0.0.1";    // address of this instance's own admin listener
  int admin_port = 0;                      // admin listener (/metrics, /healthz, /debug/rooms); 0: none
  std::string redis_url;                   // empty: standalone mode
  std::string redis_cluster;               // Redis Cluster seeds host:port[,...] (or redis:// URLs); empty: none
  std::string redis_prefix;                // prepended to every Redis key and channel
  double redis_probe_interval = 1.0;       // seconds between liveness probes (each master in a cluster)
  std::string static_dir;                  // folder of the web client
  size_t max_message = 64 * 1024;          // bytes of one WebSocket message
  size_t max_outbound = 1024 * 1024;       // unsent bytes per connection before it is closed (HTTP: input waits)
  double ping_interval = 25.0;             // seconds between server pings; two silent intervals close
  double rate = 50.0;                      // messages per second per connection (burst: 2x)
  int history = 50;                        // chat events kept per room
  int max_rooms = 100;                     // rooms one connection may be in at once
  int max_connections = 10000;             // WebSockets per instance; beyond: 503 before the upgrade
  size_t history_memory = 64 * 1024 * 1024;  // standalone: bytes of history kept in memory (LRU rooms go)
  double instance_ttl = 30.0;              // Redis: an instance silent this long is dead; its members leave
  double history_ttl = 7 * 24 * 3600.0;    // Redis: seconds a room's history outlives its last chat
  std::vector<std::string> allow_origin;   // extra browser origins allowed
  std::vector<protocol::Cidr> trusted_proxy;  // peers whose X-Forwarded-For names the client; empty: none
  std::string api_key;                     // the server API's key (section 9); empty: /api/... is 404
  int log_level = 2;                       // 0 error .. 3 debug
  int log_format = 0;                      // 0 text, 1 json (one object per line)
  std::string instance_id;                 // host:pid unless given
  double shutdown_grace = 3.0;             // seconds to flush closes on SIGTERM
  // Authentication (section 8): on as soon as one key is given.
  std::vector<std::string> jwt_secrets;      // "SECRET" or "KID=SECRET" (HS256), one per --jwt-secret
  std::vector<std::string> jwt_public_keys;  // "PATH" or "KID=PATH" (PEM), one per --jwt-public-key
  std::string jwt_audience;                  // checked against aud when set
  std::string jwt_issuer;                    // checked against iss when set
  int jwt_leeway = 60;                       // seconds of clock leeway for exp, nbf, iat
};

// Reads the config file, the environment and argv (in that order of precedence, the last wins).
// Returns 0 (run), 1 when --help, --version, --man or a passing --check-config printed its answer (exit 0),
// or -1 after printing every error found (exit 2). notes, when given, gets warnings to log once logging is set
// up (an environment variable that is no longer read, ...).
int parse_config(int argc, char** argv, Config* out, std::vector<std::string>* notes = nullptr);

// The token settings of c (--jwt-*), for a Verifier.
AuthSettings auth_settings(const Config& c);

// The --help text.
std::string config_help();
// The manual page (roff, man(7) macros): the same table as --help.
std::string config_man();

}  // namespace roomcast::server
