// roomcast: the server binary. Parses the configuration, runs one libuv loop, stops cleanly on a signal.
// Rule: SIGPIPE is ignored (a reset during a large send must not kill the process); SIGINT/SIGTERM shut down gracefully;
// SIGHUP reloads the JWT key files. `roomcast token ...` mints a token and exits, before any server setting is read.
#include <signal.h>
#include <string.h>
#include <uv.h>

#include <cstdio>
#include <string>
#include <vector>

#include "server/auth.h"
#include "server/config.h"
#include "server/log.h"
#include "server/server.h"

using namespace roomcast::server;

namespace {

struct Signals {
  uv_signal_t sigint, sigterm, sighup;
  Server* server;
  int received = 0;
};

void close_signals(Signals* s) {
  uv_close(reinterpret_cast<uv_handle_t*>(&s->sigint), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&s->sigterm), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&s->sighup), nullptr);
}

void on_signal(uv_signal_t* h, int signum) {
  Signals* s = static_cast<Signals*>(h->data);
  if (s->received++ > 0) {
    LOG_WARN("second signal: exiting now");
    _exit(1);
  }
  LOG_INFO("%s: stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
  s->server->shutdown();
  close_signals(s);
}

void on_sighup(uv_signal_t* h, int) { static_cast<Signals*>(h->data)->server->reload_keys(); }

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "token") == 0) return token_command(argc - 1, argv + 1);
  Config config;
  std::vector<std::string> notes;
  int r = parse_config(argc, argv, &config, &notes);
  if (r != 0) return r > 0 ? 0 : 2;
  signal(SIGPIPE, SIG_IGN);
  g_log_level = config.log_level;
  log_set_format(config.log_format);
  log_set_instance(config.instance_id.c_str());
  for (const std::string& note : notes) LOG_WARN("%s", note.c_str());
  if (!config.config_file.empty()) LOG_INFO("settings read from %s", config.config_file.c_str());

  uv_loop_t* loop = uv_default_loop();
  Server server(loop, config);
  Signals signals;
  signals.server = &server;
  uv_signal_init(loop, &signals.sigint);
  uv_signal_init(loop, &signals.sigterm);
  uv_signal_init(loop, &signals.sighup);
  signals.sigint.data = signals.sigterm.data = signals.sighup.data = &signals;
  uv_signal_start(&signals.sigint, on_signal, SIGINT);
  uv_signal_start(&signals.sigterm, on_signal, SIGTERM);
  uv_signal_start(&signals.sighup, on_sighup, SIGHUP);

  int exit_code = 0;
  if (server.start() != 0) {
    exit_code = 1;
    server.shutdown();
    close_signals(&signals);
  } else {
    LOG_INFO("roomcast %s listening on http://%s:%d (pid %d, broker %s%s%s, ping %gs, max message %zu, max outbound %zu)",
             ROOMCAST_VERSION, config.host.c_str(), config.port, static_cast<int>(getpid()),
             !config.redis_cluster.empty() ? "redis cluster " : config.redis_url.empty() ? "standalone" : "redis ",
             !config.redis_cluster.empty() ? config.redis_cluster.c_str() : config.redis_url.c_str(),
             config.redis_prefix.empty() ? "" : (" prefix " + config.redis_prefix).c_str(), config.ping_interval,
             config.max_message, config.max_outbound);
    if (config.admin_port != 0)
      LOG_INFO("admin port (/metrics, /healthz, /debug/rooms) on http://%s:%d", config.admin_host.c_str(), config.admin_port);
    if (!config.trusted_proxy.empty()) {
      std::string ranges;
      for (const roomcast::protocol::Cidr& c : config.trusted_proxy)
        ranges += (ranges.empty() ? "" : ", ") + roomcast::protocol::format_cidr(c);
      LOG_INFO("trusted proxies: %s (their X-Forwarded-For names the client)", ranges.c_str());
    }
  }
  uv_run(loop, UV_RUN_DEFAULT);
  int closed = uv_loop_close(loop);
  if (closed != 0) {
    LOG_ERROR("loop closed with handles still open (%s)", uv_strerror(closed));
    return 1;
  }
  LOG_INFO("stopped");
  return exit_code;
}
