// Every setting of the server: one table with name, environment variable, default, bounds and help;
// --help, --check-config and the manual page (--man) are all written from it.
// Rule: a bad value is an error at start-up naming the setting and where it came from, never a silent clamp.
#include "server/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <map>

#include "server/auth.h"
#include "server/log.h"
#include "server/static_files.h"

#ifndef ROOMCAST_VERSION
#define ROOMCAST_VERSION "0.0.0"
#endif

namespace roomcast::server {

namespace {

// Addr: an IPv4 or IPv6 address. List: comma-separated, the last occurrence wins. Repeat: each
// occurrence adds one item (values may hold commas); a higher layer's occurrences replace a lower one's.
// Choice: one of `choices` ("a|b|c"), stored as its index. Cidrs: a comma-separated list of CIDR ranges, parsed
// strictly.
enum class Kind { Text, Addr, Int, Size, Seconds, List, Repeat, Choice, Cidrs };
// How --check-config shows a value: as is, hidden (a KID= prefix stays), or a URL's password hidden.
enum class Mask { None, Secret, Url };

struct Setting {
  const char* name;     // --name on the command line, `name = value` in the config file
  const char* env;      // environment variable
  Kind kind;
  const char* arg;      // what the value is, in --help and the manual (PORT, URL, ...)
  const char* def;      // the default, applied by parse_config; in parentheses: what holds without a value
  double min, max;      // bounds of Int, Size, Seconds
  const char* choices;  // Choice: the names, '|'-separated
  Mask mask;
  const char* help;
  void* (*field)(Config&);
};

#define FIELD(member) [](Config& c) -> void* { return &c.member; }

const std::vector<Setting>& table() {
  // The web client's folder is found at run time (installed: next to the binary; else the sources'), and
  // --help and --check-config show the folder this binary would really use.
  static const std::string static_default = default_static_dir();
  static const std::vector<Setting> t = {
      {"config", "ROOMCAST_CONFIG", Kind::Text, "FILE", "(none)", 0, 0, nullptr, Mask::None,
       "read settings from FILE: lines `name = value' with the names of these options (without --), # comments; "
       "the environment and the command line override it", FIELD(config_file)},
      {"host", "ROOMCAST_HOST", Kind::Addr, "ADDR", "0.0.0.0", 0, 0, nullptr, Mask::None,
       "address to listen on (IPv4 or IPv6)", FIELD(host)},
      {"port", "PORT", Kind::Int, "PORT", "8080", 1, 65535, nullptr, Mask::None,
       "TCP port; instances share it with SO_REUSEPORT", FIELD(port)},
      {"admin-port", "ROOMCAST_ADMIN_PORT", Kind::Int, "PORT", "0", 0, 65535, nullptr, Mask::None,
       "this instance's own port (not shared) for GET /metrics, /healthz and /debug/rooms; 0: none", FIELD(admin_port)},
      {"admin-host", "ROOMCAST_ADMIN_HOST", Kind::Addr, "ADDR", "127.0.0.1", 0, 0, nullptr, Mask::None,
       "address of the admin port; keep it private", FIELD(admin_host)},
      {"redis", "ROOMCAST_REDIS_URL", Kind::Text, "URL", "(none: standalone, in memory)", 0, 0, nullptr, Mask::Url,
       "redis://[:password@]host[:port][/db] of the Redis the instances share rooms through", FIELD(redis_url)},
      {"redis-cluster", "ROOMCAST_REDIS_CLUSTER", Kind::Text, "SEEDS", "(none)", 0, 0, nullptr, Mask::Url,
       "Redis Cluster seed nodes host:port[,host:port...] (redis:// URLs too); the rest is discovered. Not with --redis",
       FIELD(redis_cluster)},
      {"redis-probe-interval", "ROOMCAST_REDIS_PROBE_INTERVAL", Kind::Seconds, "SECONDS", "1", 0.05, 3600, nullptr, Mask::None,
       "seconds between liveness probes of Redis (of each master in a cluster); one not back in 3 s (or 3 intervals, "
       "if longer) drops the link", FIELD(redis_probe_interval)},
      {"redis-prefix", "ROOMCAST_REDIS_PREFIX", Kind::Text, "PREFIX", "(empty)", 0, 0, nullptr, Mask::None,
       "prefix of every Redis key and channel", FIELD(redis_prefix)},
      {"static", "ROOMCAST_STATIC", Kind::Text, "DIR", static_default.c_str(), 0, 0, nullptr, Mask::None,
       "folder of the web client", FIELD(static_dir)},
      {"max-message", "ROOMCAST_MAX_MESSAGE", Kind::Size, "BYTES", "65536", 128, 64.0 * 1024 * 1024, nullptr, Mask::None,
       "largest WebSocket message in bytes; larger: close 1009", FIELD(max_message)},
      {"max-outbound", "ROOMCAST_MAX_OUTBOUND", Kind::Size, "BYTES", "1048576", 4096, 1024.0 * 1024 * 1024, nullptr, Mask::None,
       "unsent bytes per connection before it is closed 1008; an HTTP connection reads no further requests instead",
       FIELD(max_outbound)},
      {"ping-interval", "ROOMCAST_PING_INTERVAL", Kind::Seconds, "SECONDS", "25", 0.05, 3600, nullptr, Mask::None,
       "seconds between server pings; silent for two: close 1001", FIELD(ping_interval)},
      {"rate", "ROOMCAST_RATE", Kind::Seconds, "N", "50", 0.1, 1e6, nullptr, Mask::None,
       "client messages per second per connection, burst twice that", FIELD(rate)},
      {"history", "ROOMCAST_HISTORY", Kind::Int, "N", "50", 0, 100000, nullptr, Mask::None,
       "chat events kept per room", FIELD(history)},
      {"max-rooms", "ROOMCAST_MAX_ROOMS", Kind::Int, "N", "100", 1, 100000, nullptr, Mask::None,
       "rooms one connection may be in at once", FIELD(max_rooms)},
      {"max-connections", "ROOMCAST_MAX_CONNECTIONS", Kind::Int, "N", "10000", 1, 10000000, nullptr, Mask::None,
       "WebSocket connections per instance; beyond: 503 before the upgrade", FIELD(max_connections)},
      {"history-memory", "ROOMCAST_HISTORY_MEMORY", Kind::Size, "BYTES", "67108864", 0, 64.0 * 1024 * 1024 * 1024, nullptr,
       Mask::None, "standalone: bytes of chat history kept in memory, least recently used rooms dropped first",
       FIELD(history_memory)},
      {"history-ttl", "ROOMCAST_HISTORY_TTL", Kind::Seconds, "SECONDS", "604800", 1, 365.0 * 24 * 3600, nullptr, Mask::None,
       "Redis: seconds a room's history is kept after its last chat (a week)", FIELD(history_ttl)},
      {"instance-ttl", "ROOMCAST_INSTANCE_TTL", Kind::Seconds, "SECONDS", "30", 1, 30, nullptr, Mask::None,
       "Redis: an instance whose heartbeat is this old is dead; the others send its members' presence leave",
       FIELD(instance_ttl)},
      {"shutdown-grace", "ROOMCAST_SHUTDOWN_GRACE", Kind::Seconds, "SECONDS", "3", 0, 60, nullptr, Mask::None,
       "seconds to finish closing handshakes on SIGTERM before dropping connections", FIELD(shutdown_grace)},
      {"trusted-proxy", "ROOMCAST_TRUSTED_PROXY", Kind::Cidrs, "CIDRS", "(none: the TCP peer is the client)", 0, 0, nullptr,
       Mask::None, "comma-separated CIDR ranges (10.0.0.0/8, fd00::/8, 127.0.0.1/32) of reverse proxies whose "
       "X-Forwarded-For names the client", FIELD(trusted_proxy)},
      {"allow-origin", "ROOMCAST_ALLOW_ORIGIN", Kind::List, "ORIGINS", "(none)", 0, 0, nullptr, Mask::None,
       "comma-separated browser origins allowed besides the Host's own (host:port or https://host; \"*\": any)",
       FIELD(allow_origin)},
      {"jwt-secret", "ROOMCAST_JWT_SECRET", Kind::Repeat, "SECRET", "(none: authentication off)", 0, 0, nullptr, Mask::Secret,
       "HS256 secret (at least 16 bytes), or KID=SECRET; repeat for rotation. Any key turns authentication on",
       FIELD(jwt_secrets)},
      {"jwt-public-key", "ROOMCAST_JWT_PUBLIC_KEY", Kind::Repeat, "PATH", "(none)", 0, 0, nullptr, Mask::None,
       "PEM public key file (RSA: RS256, EC P-256: ES256), or KID=PATH; repeatable; SIGHUP reloads",
       FIELD(jwt_public_keys)},
      {"jwt-audience", "ROOMCAST_JWT_AUDIENCE", Kind::Text, "AUD", "(none: aud not checked)", 0, 0, nullptr, Mask::None,
       "tokens must name this in aud", FIELD(jwt_audience)},
      {"jwt-issuer", "ROOMCAST_JWT_ISSUER", Kind::Text, "ISS", "(none: iss not checked)", 0, 0, nullptr, Mask::None,
       "tokens must have this iss", FIELD(jwt_issuer)},
      {"jwt-leeway", "ROOMCAST_JWT_LEEWAY", Kind::Int, "SECONDS", "60", 0, 3600, nullptr, Mask::None,
       "seconds of clock leeway for exp, nbf and iat", FIELD(jwt_leeway)},
      {"api-key", "ROOMCAST_API_KEY", Kind::Text, "KEY", "(none: /api/... is 404)", 0, 0, nullptr, Mask::Secret,
       "key of the server API (/api/...: Authorization: Bearer KEY or X-API-Key: KEY)", FIELD(api_key)},
      {"log-level", "ROOMCAST_LOG_LEVEL", Kind::Choice, "LEVEL", "info", 0, 0, "error|warn|info|debug", Mask::None,
       "error, warn, info or debug", FIELD(log_level)},
      {"log-format", "ROOMCAST_LOG_FORMAT", Kind::Choice, "FORMAT", "text", 0, 0, "text|json", Mask::None,
       "text (one line per event) or json (one object per line: ts, level, instance, msg; for log shippers)",
       FIELD(log_format)},
      {"instance-id", "ROOMCAST_INSTANCE_ID", Kind::Text, "ID", "(host:pid)", 0, 0, nullptr, Mask::None,
       "name of this process in logs, metrics, /healthz and the hello reply", FIELD(instance_id)},
  };
  return t;
}

#undef FIELD

// Options that act instead of setting something; in --help and the manual after the settings.
struct Action {
  const char* name;
  const char* help;
};
const Action kActions[] = {
    {"check-config", "check the command line, the environment and the config file; print the effective settings "
                     "(secrets masked) and exit 0, or print every error and exit 2"},
    {"man", "print the manual page (roff) and exit"},
    {"help", "print the options and exit"},
    {"version", "print the version and exit"},
};

// The layers, lowest first: each replaces what a lower one set.
enum Layer { kDefault = 0, kFile = 1, kEnv = 2, kArgs = 3 };

// Environment variables the server read before they were renamed: set alone, they are a mistake worth a warning.
const struct {
  const char* old_name;
  const char* new_name;
} kRenamed[] = {{"REDIS_URL", "ROOMCAST_REDIS_URL"}};

bool is_default_value(const Setting& s) { return s.def && s.def[0] != '('; }

int choice_index(const char* choices, const char* value) {
  std::string all(choices);
  size_t start = 0;
  for (int i = 0;; i++) {
    size_t bar = all.find('|', start);
    if (all.compare(start, bar == std::string::npos ? std::string::npos : bar - start, value) == 0) return i;
    if (bar == std::string::npos) return -1;
    start = bar + 1;
  }
}

std::string choice_name(const char* choices, int index) {
  std::string all(choices);
  size_t start = 0;
  for (int i = 0; i < index; i++) {
    start = all.find('|', start);
    if (start == std::string::npos) return "?";
    start++;
  }
  size_t bar = all.find('|', start);
  return all.substr(start, bar == std::string::npos ? std::string::npos : bar - start);
}

// Sets the setting from value. Returns false when the value is bad; *why then says why when the kind's expectation
// is not enough (may be null).
bool set_value(const Setting& s, const char* value, Config* c, std::string* why = nullptr) {
  void* f = s.field(*c);
  char* end = nullptr;
  switch (s.kind) {
    case Kind::Text:
      *static_cast<std::string*>(f) = value;
      return true;
    case Kind::Addr: {
      unsigned char addr[sizeof(struct in6_addr)];
      if (inet_pton(AF_INET, value, addr) != 1 && inet_pton(AF_INET6, value, addr) != 1) return false;
      *static_cast<std::string*>(f) = value;
      return true;
    }
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
      if (!*value) return false;
      static_cast<std::vector<std::string>*>(f)->push_back(value);
      return true;
    case Kind::Cidrs: {
      std::string err = protocol::parse_cidr_list(value, static_cast<std::vector<protocol::Cidr>*>(f));
      if (why) *why = err;
      return err.empty();
    }
    case Kind::Choice: {
      int i = choice_index(s.choices, value);
      if (i < 0) return false;
      *static_cast<int*>(f) = i;
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

// What a valid value looks like, for error messages.
std::string expected(const Setting& s) {
  char buf[128];
  switch (s.kind) {
    case Kind::Int:
      snprintf(buf, sizeof(buf), "an integer from %g to %g", s.min, s.max);
      return buf;
    case Kind::Size:
      snprintf(buf, sizeof(buf), "a byte count from %.0f to %.0f", s.min, s.max);
      return buf;
    case Kind::Seconds:
      snprintf(buf, sizeof(buf), "a number from %g to %g", s.min, s.max);
      return buf;
    case Kind::Addr: return "an IPv4 or IPv6 address";
    case Kind::Choice: {
      std::string c = s.choices;
      for (char& ch : c)
        if (ch == '|') ch = ',';
      return "one of " + c;
    }
    case Kind::Repeat: return "a value that is not empty";
    case Kind::Cidrs: return "comma-separated CIDR ranges";
    case Kind::Text:
    case Kind::List: break;
  }
  return s.help;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

const Setting* find_setting(const std::string& name) {
  for (const Setting& s : table())
    if (name == s.name) return &s;
  return nullptr;
}

// One parse: the config being built, where each setting's value came from, every error found.
struct Parse {
  Config c;
  std::map<const Setting*, Layer> layer;      // the layer that last set each setting
  std::map<const Setting*, std::vector<std::string>> from;  // where each value came from: "FILE:LINE", "ENV", "--name"
  std::vector<std::string> errors;
  std::vector<std::string> notes;

  // Sets s from value at layer; where names the place for errors and --check-config.
  void apply(const Setting& s, const std::string& value, Layer at, const std::string& where) {
    auto it = layer.find(&s);
    bool repeat = s.kind == Kind::Repeat;
    if (repeat && (it == layer.end() || it->second != at)) {
      static_cast<std::vector<std::string>*>(s.field(c))->clear();  // a lower layer's items yield
      from[&s].clear();
    }
    std::string why;
    if (!set_value(s, value.c_str(), &c, &why)) {
      std::string shown = s.mask == Mask::None ? "'" + value + "'" : "(hidden)";
      errors.push_back(where + ": bad value " + shown + " for " + s.name + ": " + (why.empty() ? "expected " + expected(s) : why));
      return;
    }
    layer[&s] = at;
    if (!repeat) from[&s].clear();
    from[&s].push_back(where);  // Repeat: one place per item
  }

  void read_file(const std::string& path) {
    FILE* f = fopen(path.c_str(), "r");
    if (!f) {
      errors.push_back("cannot read config file " + path + ": " + strerror(errno));
      return;
    }
    std::map<const Setting*, int> seen;  // line of each setting's first occurrence
    char* raw = nullptr;
    size_t cap = 0;
    ssize_t n;
    int line = 0;
    while ((n = getline(&raw, &cap, f)) >= 0) {
      line++;
      std::string text = trim(std::string(raw, static_cast<size_t>(n)));
      if (text.empty() || text[0] == '#') continue;
      std::string where = path + ":" + std::to_string(line);
      size_t eq = text.find('=');
      if (eq == std::string::npos) {
        errors.push_back(where + ": expected `name = value'");
        continue;
      }
      std::string name = trim(text.substr(0, eq)), value = trim(text.substr(eq + 1));
      const Setting* s = find_setting(name);
      if (!s) {
        errors.push_back(where + ": unknown setting '" + name + "'" +
                         (name.rfind("--", 0) == 0 ? " (names are written without --)" : ""));
        continue;
      }
      if (name == "config") {
        errors.push_back(where + ": config cannot be set in a config file");
        continue;
      }
      if (s->kind != Kind::Repeat) {
        auto [it, first] = seen.emplace(s, line);
        if (!first) {
          errors.push_back(where + ": " + name + " is set twice (first on line " + std::to_string(it->second) + ")");
          continue;
        }
      }
      apply(*s, value, kFile, where);
    }
    free(raw);
    if (ferror(f)) errors.push_back("cannot read config file " + path + ": " + strerror(errno));
    fclose(f);
  }
};

// The values of s in c as --check-config shows them (one per item of a Repeat setting), masked.
std::vector<std::string> shown_values(const Setting& s, Config& c) {
  void* f = s.field(c);
  std::vector<std::string> raw;
  char buf[64];
  switch (s.kind) {
    case Kind::Text:
    case Kind::Addr:
      if (!static_cast<std::string*>(f)->empty()) raw.push_back(*static_cast<std::string*>(f));
      break;
    case Kind::Int: raw.push_back(std::to_string(*static_cast<int*>(f))); break;
    case Kind::Size: raw.push_back(std::to_string(*static_cast<size_t*>(f))); break;
    case Kind::Seconds:
      snprintf(buf, sizeof(buf), "%g", *static_cast<double*>(f));
      raw.push_back(buf);
      break;
    case Kind::Choice: raw.push_back(choice_name(s.choices, *static_cast<int*>(f))); break;
    case Kind::Repeat: raw = *static_cast<std::vector<std::string>*>(f); break;
    case Kind::List: {
      std::string joined;
      for (const std::string& item : *static_cast<std::vector<std::string>*>(f)) joined += (joined.empty() ? "" : ",") + item;
      if (!joined.empty()) raw.push_back(joined);
      break;
    }
    case Kind::Cidrs: {
      std::string joined;
      for (const protocol::Cidr& range : *static_cast<std::vector<protocol::Cidr>*>(f))
        joined += (joined.empty() ? "" : ",") + protocol::format_cidr(range);
      if (!joined.empty()) raw.push_back(joined);
      break;
    }
  }
  for (std::string& v : raw) {
    if (v.empty() || s.mask == Mask::None) continue;
    if (s.mask == Mask::Secret) {
      size_t eq = s.kind == Kind::Repeat ? v.find('=') : std::string::npos;
      v = (eq == std::string::npos ? "" : v.substr(0, eq + 1)) + "****";
      continue;
    }
    // Mask::Url: the password of every redis:// URL in a comma-separated list.
    std::string out;
    size_t start = 0;
    while (start <= v.size()) {
      size_t comma = v.find(',', start);
      std::string part = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      size_t scheme = part.find("://");
      size_t at = part.rfind('@');
      if (scheme != std::string::npos && at != std::string::npos && at > scheme) {
        std::string userinfo = part.substr(scheme + 3, at - scheme - 3);
        size_t colon = userinfo.find(':');
        std::string masked = colon == std::string::npos ? "****" : userinfo.substr(0, colon + 1) + "****";
        part = part.substr(0, scheme + 3) + masked + part.substr(at);
      }
      out += (out.empty() && start == 0 ? "" : ",") + part;
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    v = out;
  }
  return raw;
}

// Checks what only the parts that use a setting can check (the JWT keys: secrets' length, key files).
void deep_check(const Config& c, std::vector<std::string>* errors) {
  AuthSettings auth = auth_settings(c);
  Verifier verifier;
  std::string err = verifier.configure(auth);
  if (!err.empty()) errors->push_back("authentication: " + err);
}

void print_effective(Parse& p) {
  std::string out = "# roomcast " ROOMCAST_VERSION ": the effective settings (precedence: default < config file < "
                    "environment < command line)\n";
  for (const std::string& n : p.notes) out += "# warning: " + n + "\n";
  for (const Setting& s : table()) {
    auto it = p.from.find(&s);
    std::vector<std::string> values = shown_values(s, p.c);
    if (values.empty()) {
      out += "# " + std::string(s.name) + ": " + (s.def ? s.def : "(none)") + "\n";
      continue;
    }
    for (size_t i = 0; i < values.size(); i++) {
      std::string where = it == p.from.end() || it->second.empty() ? "default"
                          : it->second[i < it->second.size() ? i : 0];
      // The file itself is shown as a comment: `config` is no setting of a config file.
      std::string line = std::string(strcmp(s.name, "config") == 0 ? "# " : "") + s.name + " = " + values[i];
      if (line.size() < 48) line.resize(48, ' ');
      out += line + "  # " + where + "\n";
    }
  }
  out += "# configuration OK\n";
  fputs(out.c_str(), stdout);
}

// Roff: a line of text with man(7)'s special characters escaped.
std::string roff(const std::string& text) {
  std::string out;
  for (char ch : text) {
    if (ch == '\\') out += "\\e";
    else out.push_back(ch);
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out.insert(0, "\\&");
  return out;
}

std::string roff_flag(const char* name) {
  std::string out = "\\-\\-";
  for (const char* p = name; *p; p++) out += *p == '-' ? std::string("\\-") : std::string(1, *p);
  return out;
}

std::string shown_default(const Setting& s) {
  if (!s.def) return "";
  if (s.def[0] == '(') return std::string(s.def).substr(1, strlen(s.def) - 2);
  return s.def;
}

const char* kDescription =
    "Without --redis one process serves everything in memory. With it, any number of instances\n"
    "(on one port with SO_REUSEPORT, or on many machines) share rooms through Redis Pub/Sub; with\n"
    "--redis-cluster, through a Redis Cluster's sharded Pub/Sub (each room on its slot's master).\n"
    "With --jwt-secret or --jwt-public-key, WebSockets (?token= or Authorization: Bearer) and the room\n"
    "API (Authorization: Bearer) need a valid JWT; identity and allowed rooms come from it.\n";

}  // namespace

AuthSettings auth_settings(const Config& c) {
  AuthSettings auth;
  auth.secrets = c.jwt_secrets;
  auth.public_keys = c.jwt_public_keys;
  auth.audience = c.jwt_audience;
  auth.issuer = c.jwt_issuer;
  auth.leeway_s = c.jwt_leeway;
  return auth;
}

std::string config_help() {
  std::string h =
      "roomcast " ROOMCAST_VERSION " - room-based real-time chat over WebSocket\n\n"
      "Usage: roomcast [options]\n"
      "       roomcast token --secret SECRET --sub USER_ID [--name NAME] [--rooms 'a-*,b'] [--ttl 1h] [--kid KID]\n"
      "                      (prints a signed HS256 token for trying authentication out; see roomcast token --help)\n\n"
      "Every option can also be set by the environment variable shown, or in the config file (--config) as\n"
      "`name = value'. Precedence: default < config file < environment < command line.\n\n";
  for (const Setting& s : table()) {
    std::string flag = std::string(s.name) + " " + s.arg;
    char line[1024];
    snprintf(line, sizeof(line), "  --%-31s %-30s %s (default: %s)\n", flag.c_str(), s.env, s.help, shown_default(s).c_str());
    h += line;
  }
  for (const Action& a : kActions) {
    char line[512];
    snprintf(line, sizeof(line), "  --%-31s %-30s %s\n", a.name, "", a.help);
    h += line;
  }
  h += "\n";
  h += kDescription;
  h += "Exit status: 0 stopped cleanly, 1 failed to start (a port in use, ...), 2 bad settings.\n";
  return h;
}

std::string config_man() {
  std::string m;
  m += ".\\\" roomcast(1): generated by `roomcast --man' from the settings table (server/config.cpp); do not edit.\n";
  m += ".TH ROOMCAST 1 \"\" \"roomcast " ROOMCAST_VERSION "\" \"User Commands\"\n";
  m += ".SH NAME\nroomcast \\- room\\-based real\\-time chat server over WebSocket\n";
  m += ".SH SYNOPSIS\n.B roomcast\n.RI [ OPTION ...]\n.br\n.B roomcast token\n"
       "\\-\\-secret \\fISECRET\\fR \\-\\-sub \\fIUSER_ID\\fR [\\-\\-name \\fINAME\\fR] [\\-\\-rooms \\fIPATTERNS\\fR] "
       "[\\-\\-ttl \\fIDURATION\\fR] [\\-\\-kid \\fIKID\\fR]\n";
  m += ".SH DESCRIPTION\n"
       ".B roomcast\nserves rooms of real\\-time chat: HTTP and WebSocket on one port, the bundled web client, "
       "a room API, health and Prometheus metrics.\n"
       "Create a room (the server hands out an unguessable code), share the code, join, talk: every member gets every "
       "message at once, whichever process or machine it landed on.\n.PP\n";
  std::string desc = kDescription;
  for (size_t start = 0; start < desc.size();) {
    size_t nl = desc.find('\n', start);
    m += roff(desc.substr(start, nl - start)) + "\n";
    start = nl + 1;
  }
  m += ".PP\n"
       "Every option is also an environment variable and a line of the config file. Precedence, lowest first: the "
       "defaults, the config file, the environment, the command line. A repeatable option (\\-\\-jwt\\-secret, "
       "\\-\\-jwt\\-public\\-key) given at one level replaces the values of the levels below.\n"
       ".PP\n"
       "The\n.B roomcast token\ncommand prints a signed HS256 token for trying authentication out "
       "(see\n.BR "
       "\"roomcast token \\-\\-help\" ).\n";
  m += ".SH OPTIONS\n";
  for (const Setting& s : table()) {
    m += ".TP\n.BI " + roff_flag(s.name) + " \" " + s.arg + "\"\n";
    m += roff(s.help) + ".\n";
    if (s.kind == Kind::Repeat) m += "Repeatable.\n";
    // The page is written at build time: the web client's folder is described, not the build tree's path.
    std::string def = strcmp(s.name, "static") == 0
                          ? "the bundled web client, BIN/../share/roomcast/client-web next to the installed binary"
                          : shown_default(s);
    m += ".br\nEnvironment: \\fB" + std::string(s.env) + "\\fR; default: " + roff(def) + ".\n";
  }
  for (const Action& a : kActions) m += ".TP\n.B " + roff_flag(a.name) + "\n" + roff(a.help) + ".\n";
  m += ".SH ENVIRONMENT\n";
  for (const Setting& s : table()) m += ".TP\n.B " + std::string(s.env) + "\nas \\fB" + roff_flag(s.name) + "\\fR.\n";
  m += ".PP\nAn empty variable counts as unset.\n";
  m += ".SH FILES\n"
       ".TP\n.I /etc/roomcast/roomcast.conf\n"
       "the usual place of the config file, read only when named by \\fB\\-\\-config\\fR or \\fBROOMCAST_CONFIG\\fR. "
       "Each line is \\fIname\\fR = \\fIvalue\\fR with an option's name without the dashes; blank lines and lines "
       "starting with # are skipped; the value is the rest of the line, without surrounding blanks. "
       "Only repeatable options may appear more than once. An unknown name or a bad value is an error naming the "
       "file and line.\n";
  m += ".SH EXIT STATUS\n"
       ".TP\n.B 0\nstopped cleanly (SIGTERM or SIGINT), or \\-\\-help, \\-\\-version, \\-\\-man, a passing \\-\\-check\\-config.\n"
       ".TP\n.B 1\nfailed to start (a port in use, a key file that cannot be read) or a second signal.\n"
       ".TP\n.B 2\nbad settings: every error is printed.\n";
  m += ".SH SIGNALS\n"
       ".TP\n.BR SIGTERM \", \" SIGINT\nstop accepting, close every WebSocket with 1001, exit.\n"
       ".TP\n.B SIGHUP\nreload the \\-\\-jwt\\-public\\-key files.\n";
  m += ".SH EXAMPLES\n"
       "One process, everything in memory:\n.PP\n.RS\n.nf\nroomcast \\-\\-port 8080\n.fi\n.RE\n.PP\n"
       "One instance per core on one port, sharing rooms through Redis, each with its own admin port:\n.PP\n.RS\n.nf\n"
       "roomcast \\-\\-port 8080 \\-\\-redis redis://10.0.0.5:6379 \\-\\-admin\\-port 9101 \\-\\-instance\\-id web1:0\n"
       "roomcast \\-\\-port 8080 \\-\\-redis redis://10.0.0.5:6379 \\-\\-admin\\-port 9102 \\-\\-instance\\-id web1:1\n"
       ".fi\n.RE\n.PP\n"
       "A config file, checked before a restart:\n.PP\n.RS\n.nf\n"
       "# /etc/roomcast/roomcast.conf\nport = 8080\nredis = redis://:s3cret@10.0.0.5:6379/0\nlog\\-format = json\n"
       "jwt\\-secret = k1=an\\-old\\-secret\\-of\\-16\\-bytes\njwt\\-secret = k2=the\\-new\\-secret\\-of\\-16\\-bytes\n\n"
       "roomcast \\-\\-config /etc/roomcast/roomcast.conf \\-\\-check\\-config\n"
       ".fi\n.RE\n";
  m += ".SH SEE ALSO\n.BR redis\\-server (1),\n.BR prometheus (1)\n.PP\n"
       "docs/operations.md, docs/protocol.md and docs/auth.md in the roomcast sources.\n";
  return m;
}

int parse_config(int argc, char** argv, Config* out, std::vector<std::string>* notes) {
  Parse p;
  for (const Setting& s : table()) {
    if (is_default_value(s)) {
      if (!set_value(s, s.def, &p.c)) p.errors.push_back(std::string("internal: the default of ") + s.name + " is not valid");
    }
  }
  // The command line first, only read: --config names the file, and actions answer at once.
  std::vector<std::pair<const Setting*, std::string>> given;
  bool check = false;
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
    if (arg == "--man") {
      fputs(config_man().c_str(), stdout);
      return 1;
    }
    if (arg == "--check-config") {
      check = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      p.errors.push_back("unexpected argument '" + arg + "' (see --help)");
      continue;
    }
    std::string name = arg.substr(2), value;
    bool have_value = false;
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      have_value = true;
    }
    const Setting* s = find_setting(name);
    if (!s) {
      p.errors.push_back("unknown option '--" + name + "' (see --help)");
      continue;
    }
    if (!have_value) {
      if (i + 1 >= argc) {
        p.errors.push_back("--" + name + " needs a value");
        continue;
      }
      value = argv[++i];
    }
    given.emplace_back(s, value);
  }
  std::string file;
  if (const char* v = getenv("ROOMCAST_CONFIG")) file = v;
  for (const auto& [s, value] : given)
    if (strcmp(s->name, "config") == 0) file = value;
  if (!file.empty()) p.read_file(file);
  for (const Setting& s : table()) {
    const char* v = getenv(s.env);
    if (v && *v) p.apply(s, v, kEnv, s.env);
  }
  for (const auto& [s, value] : given) p.apply(*s, value, kArgs, std::string("--") + s->name);

  Config& c = p.c;
  if (!c.redis_url.empty() && !c.redis_cluster.empty())
    p.errors.push_back("--redis and --redis-cluster exclude each other: one Redis, or a Redis Cluster");
  if (c.admin_port != 0 && c.admin_port == c.port)
    p.errors.push_back("--admin-port must differ from --port: the port is shared by every instance, the admin port is "
                       "this instance's own");
  for (const auto& r : kRenamed) {
    const char* old_value = getenv(r.old_name);
    if (old_value && *old_value && !getenv(r.new_name))
      p.notes.push_back(std::string(r.old_name) + " is set but no longer read: the server reads " + r.new_name);
  }
  if (c.instance_id.empty()) {
    char host[HOST_NAME_MAX + 1] = "localhost";
    gethostname(host, sizeof(host));
    host[HOST_NAME_MAX] = '\0';
    c.instance_id = std::string(host) + ":" + std::to_string(getpid());
    p.from[find_setting("instance-id")] = {"default (host:pid)"};
  }
  if (check && p.errors.empty()) deep_check(c, &p.errors);
  if (!p.errors.empty()) {
    for (const std::string& e : p.errors) fprintf(stderr, "roomcast: %s\n", e.c_str());
    if (check) fprintf(stderr, "roomcast: %zu error(s) in the configuration\n", p.errors.size());
    return -1;
  }
  if (check) {
    print_effective(p);
    return 1;
  }
  if (notes) *notes = p.notes;
  *out = std::move(c);
  return 0;
}

}  // namespace roomcast::server
