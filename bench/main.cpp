// roomcast-bench: the load generator's command line (one table of options), then one scenario.
// Rule: every option has a default and bounds; a bad value is an error with the option's name.
#include <arpa/inet.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench.h"

using namespace roomcast::bench;

namespace {

enum class Kind { Int, Real, Text, Url, Pid };

struct Option {
  const char* name;
  const char* modes;  // "fanout", "idle" or "both"
  Kind kind;
  double min, max;
  const char* help;
  void* field;
};

struct All {
  CommonOptions common;
  FanoutOptions fanout;
  IdleOptions idle;
  std::vector<std::string> urls;
  std::vector<std::string> pids;
  std::string source;  // --source
  int sources = 1;     // --sources
  int rooms = -1;  // --rooms: fanout (default 1) and idle (default 0) read it differently
  int talk = 0;
};

std::vector<Option> table(All& a) {
  return {
      {"url", "both", Kind::Url, 0, 0, "ws://127.0.0.1:PORT/ws to connect to; repeat to spread connections round-robin (default ws://127.0.0.1:8080/ws; loopback only)", &a.urls},
      {"pid", "both", Kind::Pid, 0, 0, "server (or redis-server) process to read /proc/PID of: CPU in fanout, RSS in idle; repeatable", &a.pids},
      {"timeout", "both", Kind::Real, 1, 3600, "hard limit of the whole run, seconds (default 120)", &a.common.timeout_s},
      {"concurrency", "both", Kind::Int, 1, 10000, "connections being set up at once (default 256)", &a.common.concurrency},
      {"source", "both", Kind::Text, 0, 0, "source address 127.0.0.x of every connection (default: the kernel's choice); several bench processes with different sources hold more than 64k connections to one port", &a.source},
      {"sources", "both", Kind::Int, 1, 250, "connection i binds --source + (i % N): several source addresses keep connect() fast past ~14k connections to one port (default 1)", &a.sources},
      {"label", "both", Kind::Text, 0, 0, "name copied into the RESULT line", &a.common.label},
      {"members", "fanout", Kind::Int, 1, 20000, "connections that join the room (default 100)", &a.fanout.members},
      {"stalled", "fanout", Kind::Int, 0, 20000, "members that stop reading once joined; the server should close them (slow consumer) without slowing the rest; they count in no expectation (default 0)", &a.fanout.stalled},
      {"publishers", "fanout", Kind::Int, 1, 1000, "publish-only connections, not members (default 2)", &a.fanout.publishers},
      {"messages", "fanout", Kind::Int, 1, 10000000, "chats per publisher (default 5000)", &a.fanout.messages},
      {"size", "fanout", Kind::Int, 40, 16384, "bytes of each chat message, send-time header included (default 100)", &a.fanout.size},
      {"window", "fanout", Kind::Int, 1, 100000, "chats per publisher sent and not yet acked (default 16)", &a.fanout.window},
      {"rate", "fanout", Kind::Real, 0, 1e7, "chats per second, all publishers together; 0 = as fast as the window allows (default 0)", &a.fanout.rate},
      {"drain", "fanout", Kind::Real, 0.1, 600, "seconds without a delivery, after the last ack, before the rest counts as lost (default 5)", &a.fanout.drain_s},
      {"room", "fanout", Kind::Text, 0, 0, "room id (default: a fresh bench-<pid>-<n> per run); with --rooms N > 1 the prefix of ROOM-0 .. ROOM-(N-1); or a comma-separated list of room ids (one room each)", &a.fanout.room},
      {"talk", "fanout", Kind::Int, 0, 1, "1: no publish-only connections, every member sends --messages chats to its own room (rooms where everyone talks)", &a.talk},
      {"dialect", "both", Kind::Text, 0, 0, "roomcast (default; also the Node ws peer), socketio (Engine.IO v4 over WebSocket: 40, 42[\"chat\",..], acks 43N), nchan (members: WebSocket subscribers of the --url path with {room} replaced; publishers: pipelined HTTP POST to that path)", &a.fanout.dialect},
      {"connections", "idle", Kind::Int, 1, 1000000, "connections to open and hold (default 20000, capped by the open-file limit)", &a.idle.connections},
      {"rooms", "both", Kind::Int, 0, 1000000, "idle: rooms the connections join, connection i in room i % R; 0 = none (default 0). fanout: rooms the members are spread over (member i in room i % R, each room's members spread over the --url list), a publisher's chats go round the rooms (default 1)", &a.rooms},
      {"hold", "idle", Kind::Real, 0, 600, "seconds the connections are held before the reading (default 3)", &a.idle.hold_s},
  };
}

void usage(All& a) {
  printf(
      "roomcast-bench - load generator for roomcast (WebSocket room chat), loopback only\n\n"
      "Usage: roomcast-bench fanout|idle [options]\n\n"
      "  fanout  MEMBERS join one room (or ROOMS rooms; spread round-robin over the --url list), PUBLISHERS\n"
      "          publish-only connections send MESSAGES chats each (window of unacked chats, optional total\n"
      "          rate; with ROOMS > 1 each publisher's chats go round the rooms; with --talk 1 every member\n"
      "          sends to its own room instead); each chat carries its send time. Prints chats published,\n"
      "          deliveries expected vs received (a chat delivered to another room's member: misrouted),\n"
      "          deliveries per second, publish->delivery latency p50/p90/p99/max, errors, and the\n"
      "          servers' /metrics slow-consumer drops. Run the server with a generous --rate (e.g. 100000):\n"
      "          its default of 50 chats/s per connection refuses most of the load (rate_limited).\n"
      "  idle    opens CONNECTIONS WebSockets (optionally joining ROOMS rooms), holds them, and reports the\n"
      "          VmRSS (and RssAnon) growth of each --pid per open connection, then closes them.\n\n"
      "Options:\n");
  for (const Option& o : table(a)) printf("  --%-12s [%s] %s\n", o.name, o.modes, o.help);
  printf(
      "  --help\n\n"
      "Output: a report, then one line `RESULT key=value ...` for scripts.\n"
      "Exit: 0 done; 3 deliveries lost, out of order, misrouted, or connections failed; 2 time limit or setup failure; 1 bad options.\n");
}

bool set(const Option& o, const char* v) {
  char* end = nullptr;
  switch (o.kind) {
    case Kind::Text: *static_cast<std::string*>(o.field) = v; return true;
    case Kind::Url:
    case Kind::Pid: static_cast<std::vector<std::string>*>(o.field)->push_back(v); return true;
    case Kind::Int: {
      long n = strtol(v, &end, 10);
      if (!*v || *end || n < o.min || n > o.max) return false;
      *static_cast<int*>(o.field) = static_cast<int>(n);
      return true;
    }
    case Kind::Real: {
      double d = strtod(v, &end);
      if (!*v || *end || d < o.min || d > o.max) return false;
      *static_cast<double*>(o.field) = d;
      return true;
    }
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  All a;
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(a);
    return argc < 2 ? 1 : 0;
  }
  std::string mode = argv[1];
  if (mode != "fanout" && mode != "idle") {
    fprintf(stderr, "roomcast-bench: unknown mode '%s' (fanout or idle; see --help)\n", mode.c_str());
    return 1;
  }
  std::vector<Option> opts = table(a);
  for (int i = 2; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(a);
      return 0;
    }
    std::string name = arg.rfind("--", 0) == 0 ? arg.substr(2) : "", value;
    bool have = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      have = true;
    }
    const Option* found = nullptr;
    for (const Option& o : opts)
      if (name == o.name) found = &o;
    if (!found) {
      fprintf(stderr, "roomcast-bench: unknown option '%s' (see --help)\n", arg.c_str());
      return 1;
    }
    if (strcmp(found->modes, "both") != 0 && mode != found->modes) {
      fprintf(stderr, "roomcast-bench: --%s is an option of %s, not %s\n", found->name, found->modes, mode.c_str());
      return 1;
    }
    if (!have) {
      if (i + 1 >= argc) {
        fprintf(stderr, "roomcast-bench: --%s needs a value\n", found->name);
        return 1;
      }
      value = argv[++i];
    }
    if (!set(*found, value.c_str())) {
      fprintf(stderr, "roomcast-bench: bad value '%s' for --%s (from %g to %g)\n", value.c_str(), found->name, found->min, found->max);
      return 1;
    }
  }
  if (mode == "idle" && a.rooms >= 0) a.idle.rooms = a.rooms;
  if (mode == "fanout" && a.fanout.room.find(',') != std::string::npos) {  // --room a,b,c: the rooms by name
    int n = static_cast<int>(std::count(a.fanout.room.begin(), a.fanout.room.end(), ',')) + 1;
    if (a.rooms >= 0 && a.rooms != n) {
      fprintf(stderr, "roomcast-bench: --room lists %d rooms and --rooms says %d\n", n, a.rooms);
      return 1;
    }
    a.rooms = n;
  }
  if (mode == "fanout" && a.rooms >= 0) {
    if (a.rooms < 1 || a.rooms > a.fanout.members) {
      fprintf(stderr, "roomcast-bench: fanout --rooms must be from 1 to --members\n");
      return 1;
    }
    a.fanout.rooms = a.rooms;
  }
  a.fanout.talk = a.talk != 0;
  a.idle.dialect = a.fanout.dialect;
  if (a.fanout.dialect != "roomcast" && a.fanout.dialect != "socketio" && a.fanout.dialect != "nchan") {
    fprintf(stderr, "roomcast-bench: --dialect is roomcast, socketio or nchan\n");
    return 1;
  }
  if (a.fanout.talk && a.fanout.dialect == "nchan") {
    fprintf(stderr, "roomcast-bench: --talk needs acks over the WebSocket: not with --dialect nchan\n");
    return 1;
  }
  if (a.fanout.stalled >= a.fanout.members) {
    fprintf(stderr, "roomcast-bench: --stalled must be below --members\n");
    return 1;
  }
  if (a.urls.empty()) a.urls.push_back("ws://127.0.0.1:8080/ws");
  for (const std::string& u : a.urls) {
    Endpoint ep;
    std::string err;
    if (!parse_ws_url(u, &ep, &err)) {
      fprintf(stderr, "roomcast-bench: %s\n", err.c_str());
      return 1;
    }
    if (!a.source.empty()) {
      in_addr src{};
      if (inet_pton(AF_INET, a.source.c_str(), &src) != 1 || (ntohl(src.s_addr) >> 24) != 127) {
        fprintf(stderr, "roomcast-bench: --source must be a loopback address 127.x.y.z\n");
        return 1;
      }
      if ((ntohl(src.s_addr) & 0xff) + static_cast<uint32_t>(a.sources) > 255) {
        fprintf(stderr, "roomcast-bench: --source + --sources must stay within 127.x.y.1-254\n");
        return 1;
      }
      ep.has_source = true;
      ep.sources = a.sources;
      uv_ip4_addr(a.source.c_str(), 0, &ep.source);
    }
    a.common.endpoints.push_back(ep);
  }
  for (const std::string& p : a.pids) {
    char* end = nullptr;
    long pid = strtol(p.c_str(), &end, 10);
    if (p.empty() || *end || pid <= 0) {
      fprintf(stderr, "roomcast-bench: bad --pid '%s'\n", p.c_str());
      return 1;
    }
    a.common.pids.push_back(static_cast<pid_t>(pid));
  }
  signal(SIGPIPE, SIG_IGN);

  // Every connection is a descriptor: take the hard limit, and keep a margin for the loop and probes.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  long room_for = static_cast<long>(rl.rlim_cur) - 64;
  long needed = mode == "idle" ? a.idle.connections : static_cast<long>(a.fanout.members) + a.fanout.publishers;
  if (needed > room_for) {
    if (mode == "fanout") {
      fprintf(stderr, "roomcast-bench: %ld connections need more descriptors than the limit allows (%ld)\n", needed, room_for);
      return 1;
    }
    fprintf(stderr, "roomcast-bench: open-file limit %ld: holding %ld connections instead of %d\n", static_cast<long>(rl.rlim_cur),
            room_for, a.idle.connections);
    a.idle.connections = static_cast<int>(room_for);
  }
  return mode == "fanout" ? run_fanout(a.common, a.fanout) : run_idle(a.common, a.idle);
}
