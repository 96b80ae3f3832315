// What the load generator reads besides its own sockets: /proc of the server processes, the
// server's /metrics, and percentiles of its samples.
// Rule: every probe is bounded in time (HTTP: 2 s) and a failed probe is reported, never fatal.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bench/ws_client.h"

namespace roomcast::bench {

// One reading of /proc/<pid>/status and /proc/<pid>/stat.
struct ProcSample {
  bool ok = false;
  std::string comm;        // process name
  long vm_rss_kb = 0;      // VmRSS
  long rss_anon_kb = 0;    // RssAnon (heap and other private memory; no file mappings)
  double cpu_s = 0;        // utime + stime, seconds
};
ProcSample read_proc(pid_t pid);
// CPU seconds (user + system) used by this process so far.
double self_cpu_seconds();
// Kernel slab memory of the whole machine (Slab in /proc/meminfo), kB: socket structures live there.
long machine_slab_kb();
// Busy CPU seconds of the whole machine so far (every core; /proc/stat minus idle and iowait).
double machine_busy_seconds();

// GET http://<ep.host_port><path> on loopback, blocking, at most 2 s. Returns true with the body.
bool http_get(const Endpoint& ep, const std::string& path, std::string* body, std::string* err);

// Prometheus text: sample name (with labels, as written) -> value.
using MetricsMap = std::map<std::string, double>;
MetricsMap parse_metrics(const std::string& text);
// value of name in m, 0 when absent.
double metric(const MetricsMap& m, const std::string& name);

// The q-quantile (0..1) of samples, which it partially reorders. Returns 0 for none.
double quantile(std::vector<uint32_t>& samples, double q);

// Upper bound (ms) of the histogram bucket holding the q-quantile of the roomcast_publish_delivery_ms
// increase between two readings; -1 when there were no observations, +inf past the last bound.
double histogram_quantile(const MetricsMap& before, const MetricsMap& after, double q);

}  // namespace roomcast::bench
