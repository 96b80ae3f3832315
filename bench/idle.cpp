// Idle scenario: open K WebSocket connections (optionally each joining one of R rooms), hold them,
// and read the server processes' resident memory before, while held, and after closing them.
// Rule: memory per connection = RSS growth / connections actually open at the second reading.
#include <signal.h>
#include <unistd.h>

#include <cinttypes>
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>

#include "bench/bench.h"
#include "bench/probe.h"

namespace roomcast::bench {

namespace {

class Idle : public ClientEvents {
 public:
  Idle(const CommonOptions& common, const IdleOptions& opt) : common_(common), opt_(opt) {}
  int run();

  void on_open(Client& c) override;
  void on_text(Client& c, std::string_view text) override;
  void on_closed(Client& c, int code, const char* why) override;

 private:
  enum class Phase { Opening, Holding, Released, Done };
  void launch();
  void ready(Client& c);
  void check_opened();
  void take_held_reading();
  void take_final_reading();
  void finish(const char* why);
  int report();

  const CommonOptions& common_;
  IdleOptions opt_;
  std::string tag_;                      // room names of this run
  uv_loop_t loop_;
  uv_timer_t step_timer_, limit_timer_;
  uv_signal_t sigint_, sigterm_;
  std::vector<Client*> clients_;         // nullptr once closed
  std::vector<bool> ready_;              // open (and joined, with rooms)
  size_t next_launch_ = 0;
  bool launching_ = false;               // inside launch()
  int settingup_ = 0, opened_ = 0, failed_ = 0, lost_while_held_ = 0;
  Phase phase_ = Phase::Opening;
  const char* end_reason_ = "";
  std::map<std::string, int> failures_;  // why connections failed or ended early
  uint64_t t_start_ns_ = 0, t_opened_ns_ = 0;
  int held_ = 0;                         // connections open at the held reading
  double server_websockets_ = -1;        // roomcast_websockets summed over endpoints, while held
  std::vector<ProcSample> before_, hold_start_, held_sample_, after_;
  long slab_before_kb_ = 0, slab_held_kb_ = 0;  // the machine's kernel slab memory
};

int Idle::run() {
  uv_loop_init(&loop_);
  tag_ = "idle-" + std::to_string(getpid());
  clients_.assign(static_cast<size_t>(opt_.connections), nullptr);
  ready_.assign(static_cast<size_t>(opt_.connections), false);
  for (pid_t pid : common_.pids) before_.push_back(read_proc(pid));
  slab_before_kb_ = machine_slab_kb();

  uv_timer_init(&loop_, &step_timer_);
  uv_timer_init(&loop_, &limit_timer_);
  step_timer_.data = limit_timer_.data = this;
  uv_timer_start(&limit_timer_, [](uv_timer_t* t) { static_cast<Idle*>(t->data)->finish("time limit"); },
                 static_cast<uint64_t>(common_.timeout_s * 1000), 0);
  uv_signal_init(&loop_, &sigint_);
  uv_signal_init(&loop_, &sigterm_);
  sigint_.data = sigterm_.data = this;
  auto on_sig = [](uv_signal_t* s, int) { static_cast<Idle*>(s->data)->finish("signal"); };
  uv_signal_start(&sigint_, on_sig, SIGINT);
  uv_signal_start(&sigterm_, on_sig, SIGTERM);

  t_start_ns_ = uv_hrtime();
  launch();
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  return report();
}

void Idle::launch() {
  if (launching_) return;  // a failure reported inside start() below: the loop here goes on
  launching_ = true;
  while (phase_ == Phase::Opening && settingup_ < common_.concurrency && next_launch_ < clients_.size()) {
    size_t i = next_launch_++;
    const Endpoint* ep = &common_.endpoints[i % common_.endpoints.size()];
    clients_[i] = new Client(&loop_, this, ep, static_cast<uint32_t>(i));
    if (opt_.dialect == "socketio") clients_[i]->set_dialect(Dialect::EngineIo);
    if (opt_.dialect == "nchan") {
      std::string path = ep->path, room = opt_.rooms > 0 ? tag_ + "-" + std::to_string(i % static_cast<size_t>(opt_.rooms)) : tag_ + "-" + std::to_string(i);
      if (size_t p = path.find("{room}"); p != std::string::npos) path.replace(p, 6, room);
      clients_[i]->set_path(path);
    }
    settingup_++;
    clients_[i]->start();
  }
  launching_ = false;
  check_opened();
}

void Idle::on_open(Client& c) {
  if (opt_.rooms <= 0 || opt_.dialect == "nchan") {  // nchan: the upgrade itself subscribes
    ready(c);
    return;
  }
  std::string room = tag_ + "-" + std::to_string(c.index() % static_cast<uint32_t>(opt_.rooms));
  if (opt_.dialect == "socketio") {
    c.send_text("420[\"join\",\"" + room + "\"]");
    return;
  }
  c.send_text("{\"type\":\"join\",\"roomId\":\"" + room + "\",\"user\":{\"id\":\"i" + std::to_string(c.index()) +
              "\",\"name\":\"idle " + std::to_string(c.index()) + "\"}}");
}

void Idle::on_text(Client& c, std::string_view text) {
  if (opt_.rooms > 0 && !ready_[c.index()] &&
      (text.rfind("{\"type\":\"joined\"", 0) == 0 || (opt_.dialect == "socketio" && text.rfind("430", 0) == 0)))
    ready(c);
}

void Idle::ready(Client& c) {
  ready_[c.index()] = true;
  opened_++;
  settingup_--;
  launch();
}

void Idle::on_closed(Client& c, int code, const char* why) {
  size_t i = c.index();
  clients_[i] = nullptr;
  if (phase_ == Phase::Released || phase_ == Phase::Done) return;
  std::string key = std::string(why) + (code ? " " + std::to_string(code) : "");
  failures_[key]++;
  if (ready_[i]) {
    opened_--;
    if (phase_ == Phase::Holding) lost_while_held_++;
  } else {
    settingup_--;
    failed_++;
  }
  ready_[i] = false;
  launch();
}

void Idle::check_opened() {
  if (phase_ != Phase::Opening || next_launch_ < clients_.size() || settingup_ > 0) return;
  phase_ = Phase::Holding;
  t_opened_ns_ = uv_hrtime();
  for (pid_t pid : common_.pids) hold_start_.push_back(read_proc(pid));
  fprintf(stderr, "idle: %d connections open (%d failed) in %.2f s; holding %.1f s\n", opened_, failed_,
          static_cast<double>(t_opened_ns_ - t_start_ns_) / 1e9, opt_.hold_s);
  uv_timer_start(&step_timer_, [](uv_timer_t* t) { static_cast<Idle*>(t->data)->take_held_reading(); },
                 static_cast<uint64_t>(opt_.hold_s * 1000), 0);
}

void Idle::take_held_reading() {
  held_ = opened_;
  for (pid_t pid : common_.pids) held_sample_.push_back(read_proc(pid));
  slab_held_kb_ = machine_slab_kb();
  server_websockets_ = 0;
  std::vector<std::string> seen;
  for (const Endpoint& ep : common_.endpoints) {
    if (std::find(seen.begin(), seen.end(), ep.host_port) != seen.end()) continue;
    seen.push_back(ep.host_port);
    std::string body, err;
    if (http_get(ep, "/metrics", &body, &err)) server_websockets_ += metric(parse_metrics(body), "roomcast_websockets");
    else server_websockets_ = -1e9;
  }
  // Release everything, give the server a moment to free, and read once more.
  phase_ = Phase::Released;
  for (Client*& c : clients_)
    if (c) c->close("released");
  uv_timer_start(&step_timer_, [](uv_timer_t* t) { static_cast<Idle*>(t->data)->take_final_reading(); }, 2000, 0);
}

void Idle::take_final_reading() {
  for (pid_t pid : common_.pids) after_.push_back(read_proc(pid));
  finish("done");
}

void Idle::finish(const char* why) {
  if (phase_ == Phase::Done) return;
  phase_ = Phase::Done;
  end_reason_ = why;
  for (Client*& c : clients_)
    if (c) c->close("bench done");
  for (uv_handle_t* h : {reinterpret_cast<uv_handle_t*>(&step_timer_), reinterpret_cast<uv_handle_t*>(&limit_timer_),
                         reinterpret_cast<uv_handle_t*>(&sigint_), reinterpret_cast<uv_handle_t*>(&sigterm_)})
    uv_close(h, nullptr);
}

int Idle::report() {
  std::string endpoints;
  for (const Endpoint& ep : common_.endpoints) endpoints += (endpoints.empty() ? "" : ", ") + ep.url;
  printf("roomcast-bench idle%s%s\n", common_.label.empty() ? "" : ": ", common_.label.c_str());
  printf("  setup       %d connections to %s, %s\n", opt_.connections, endpoints.c_str(),
         opt_.rooms > 0 ? ("each joining one of " + std::to_string(opt_.rooms) + " rooms").c_str() : "joining no room");
  printf("  opened      %d open, %d failed, in %.2f s; held %.1f s%s\n", held_ ? held_ : opened_, failed_,
         t_opened_ns_ ? static_cast<double>(t_opened_ns_ - t_start_ns_) / 1e9 : 0.0, opt_.hold_s,
         lost_while_held_ ? (", " + std::to_string(lost_while_held_) + " closed while held").c_str() : "");
  if (!failures_.empty()) {
    std::string f;
    for (const auto& [k, n] : failures_) f += (f.empty() ? "" : ", ") + k + " x" + std::to_string(n);
    printf("  failures    %s\n", f.c_str());
  }
  if (server_websockets_ >= 0) printf("  /metrics    roomcast_websockets %.0f while held\n", server_websockets_);
  long rss_before = 0, rss_held = 0, rss_after = 0, anon_before = 0, anon_held = 0, anon_after = 0;
  bool ok = !common_.pids.empty() && held_sample_.size() == common_.pids.size();
  for (size_t i = 0; ok && i < common_.pids.size(); i++) {
    const ProcSample& b = before_[i];
    const ProcSample& h = held_sample_[i];
    if (!b.ok || !h.ok) {
      ok = false;
      break;
    }
    rss_before += b.vm_rss_kb;
    rss_held += h.vm_rss_kb;
    anon_before += b.rss_anon_kb;
    anon_held += h.rss_anon_kb;
    if (i < after_.size() && after_[i].ok) {
      rss_after += after_[i].vm_rss_kb;
      anon_after += after_[i].rss_anon_kb;
    }
    printf("  process     %s[%d]: VmRSS %ld -> %ld kB held -> %ld kB released; RssAnon %ld -> %ld -> %ld kB\n", h.comm.c_str(),
           common_.pids[i], b.vm_rss_kb, h.vm_rss_kb, i < after_.size() ? after_[i].vm_rss_kb : -1L, b.rss_anon_kb,
           h.rss_anon_kb, i < after_.size() ? after_[i].rss_anon_kb : -1L);
  }
  // CPU while held (server pings and their pongs, timers): utime+stime of every --pid.
  double hold_cpu = 0;
  for (size_t i = 0; i < hold_start_.size() && i < held_sample_.size(); i++)
    if (hold_start_[i].ok && held_sample_[i].ok) hold_cpu += held_sample_[i].cpu_s - hold_start_[i].cpu_s;
  double setup_cpu = 0;
  for (size_t i = 0; i < before_.size() && i < hold_start_.size(); i++)
    if (before_[i].ok && hold_start_[i].ok) setup_cpu += hold_start_[i].cpu_s - before_[i].cpu_s;
  double open_s = t_opened_ns_ ? static_cast<double>(t_opened_ns_ - t_start_ns_) / 1e9 : 0.0;
  if (held_ > 0 && !common_.pids.empty())
    printf("  cpu         setup %.1f us of server CPU per connection (%.0f connections/s); held: %.3f s of CPU over %.1f s = %.2f us per connection per second\n",
           setup_cpu * 1e6 / held_, open_s > 0 ? held_ / open_s : 0.0, hold_cpu, opt_.hold_s, hold_cpu * 1e6 / held_ / std::max(opt_.hold_s, 0.001));
  double per = 0, per_anon = 0;
  if (ok && held_ > 0) {
    per = static_cast<double>(rss_held - rss_before) * 1024.0 / held_;
    per_anon = static_cast<double>(anon_held - anon_before) * 1024.0 / held_;
    printf("  memory      %.0f bytes of VmRSS per idle connection (RssAnon: %.0f bytes); target <= 1024: %s\n", per, per_anon,
           per <= 1024 ? "met" : "NOT met");
    printf("  kernel      slab memory of the machine grew %.0f bytes per connection, both ends of the loopback pair\n"
           "              (client and server socket, file, epoll entry); not in any RSS, not part of the target\n",
           static_cast<double>(slab_held_kb_ - slab_before_kb_) * 1024.0 / held_);
  } else {
    printf("  memory      not measured (%s)\n", common_.pids.empty() ? "no --pid given" : "no reading while held");
  }
  printf("  ended       %s\n", end_reason_);
  const char* status = std::string(end_reason_) != "done" ? "incomplete" : failed_ || lost_while_held_ ? "failures" : "ok";
  printf("RESULT mode=idle label=%s status=%s connections=%d opened=%d failed=%d rooms=%d rss_before_kb=%ld rss_held_kb=%ld"
         " rss_after_kb=%ld anon_before_kb=%ld anon_held_kb=%ld anon_after_kb=%ld bytes_per_conn=%.0f anon_bytes_per_conn=%.0f kernel_slab_bytes_per_pair=%.0f"
         " open_s=%.3f setup_cpu_s=%.3f hold_cpu_s=%.3f hold_s=%.1f dialect=%s\n",
         common_.label.c_str(), status, opt_.connections, held_, failed_, opt_.rooms, rss_before, rss_held, rss_after, anon_before,
         anon_held, anon_after, per, per_anon,
         held_ > 0 ? static_cast<double>(slab_held_kb_ - slab_before_kb_) * 1024.0 / held_ : 0.0, open_s, setup_cpu, hold_cpu,
         opt_.hold_s, opt_.dialect.c_str());
  fflush(stdout);
  if (std::string(end_reason_) == "time limit") return 2;
  return failed_ || lost_while_held_ ? 3 : 0;
}

}  // namespace

int run_idle(const CommonOptions& common, const IdleOptions& opt) {
  auto idle = std::make_unique<Idle>(common, opt);
  return idle->run();
}

}  // namespace roomcast::bench
