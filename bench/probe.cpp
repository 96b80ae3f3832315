// Probes of the load generator: /proc readings, a blocking loopback HTTP GET, Prometheus text, quantiles.
// Rule: bounded in time and never fatal; callers print what failed.
#include "bench/probe.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace roomcast::bench {

ProcSample read_proc(pid_t pid) {
  ProcSample s;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  if (!status) return s;
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Name:", 0) == 0) {
      s.comm = line.substr(5);
      s.comm.erase(0, s.comm.find_first_not_of(" \t"));
    } else if (line.rfind("VmRSS:", 0) == 0) {
      s.vm_rss_kb = strtol(line.c_str() + 6, nullptr, 10);
    } else if (line.rfind("RssAnon:", 0) == 0) {
      s.rss_anon_kb = strtol(line.c_str() + 8, nullptr, 10);
    }
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t rparen = text.rfind(')');
  if (rparen == std::string::npos) return s;
  // Fields after the command: state is field 3; utime and stime are fields 14 and 15.
  std::istringstream rest(text.substr(rparen + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; i++) {
    if (i == 14) utime = strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = strtoull(field.c_str(), nullptr, 10);
  }
  s.cpu_s = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  s.ok = true;
  return s;
}

double self_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

long machine_slab_kb() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Slab:", 0) == 0) return strtol(line.c_str() + 5, nullptr, 10);
  return 0;
}

double machine_busy_seconds() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  unsigned long long v[10] = {};
  stat >> cpu;
  for (auto& x : v) stat >> x;
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
  unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  return static_cast<double>(busy) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

bool http_get(const Endpoint& ep, const std::string& path, std::string* body, std::string* err) {
  const uint64_t deadline = uv_hrtime() + 2000000000ULL;
  auto left_ms = [&]() -> int {
    uint64_t now = uv_hrtime();
    return now >= deadline ? 0 : static_cast<int>((deadline - now) / 1000000);
  };
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = strerror(errno);
    return false;
  }
  auto fail = [&](const char* why) {
    *err = why;
    close(fd);
    return false;
  };
  if (connect(fd, reinterpret_cast<const sockaddr*>(&ep.addr), sizeof(ep.addr)) != 0 && errno != EINPROGRESS) return fail(strerror(errno));
  pollfd p{fd, POLLOUT, 0};
  if (poll(&p, 1, left_ms()) != 1) return fail("connect timeout");
  int soerr = 0;
  socklen_t sl = sizeof(soerr);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
  if (soerr != 0) return fail(strerror(soerr));
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + ep.host_port + "\r\nConnection: close\r\n\r\n";
  size_t off = 0;
  while (off < req.size()) {
    ssize_t n = send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n > 0) off += static_cast<size_t>(n);
    else if (n < 0 && errno == EAGAIN) {
      p = {fd, POLLOUT, 0};
      if (poll(&p, 1, left_ms()) != 1) return fail("send timeout");
    } else return fail("send failed");
  }
  std::string resp;
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      resp.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;
    if (errno != EAGAIN) return fail("recv failed");
    p = {fd, POLLIN, 0};
    if (poll(&p, 1, left_ms()) != 1) return fail("response timeout");
  }
  close(fd);
  if (resp.rfind("HTTP/1.1 200", 0) != 0) {
    *err = "status: " + resp.substr(0, resp.find("\r\n"));
    return false;
  }
  size_t head_end = resp.find("\r\n\r\n");
  *body = head_end == std::string::npos ? std::string() : resp.substr(head_end + 4);
  return true;
}

MetricsMap parse_metrics(const std::string& text) {
  MetricsMap m;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    m[line.substr(0, sp)] = strtod(line.c_str() + sp + 1, nullptr);
  }
  return m;
}

double metric(const MetricsMap& m, const std::string& name) {
  auto it = m.find(name);
  return it == m.end() ? 0 : it->second;
}

double quantile(std::vector<uint32_t>& samples, double q) {
  if (samples.empty()) return 0;
  size_t k = static_cast<size_t>(std::floor(q * static_cast<double>(samples.size() - 1) + 0.5));
  if (k >= samples.size()) k = samples.size() - 1;
  std::nth_element(samples.begin(), samples.begin() + static_cast<ptrdiff_t>(k), samples.end());
  return samples[k];
}

double histogram_quantile(const MetricsMap& before, const MetricsMap& after, double q) {
  const std::string prefix = "roomcast_publish_delivery_ms_bucket{le=\"";
  std::vector<std::pair<double, double>> buckets;  // (upper bound, cumulative increase)
  for (const auto& [name, value] : after) {
    if (name.rfind(prefix, 0) != 0) continue;
    std::string le = name.substr(prefix.size(), name.size() - prefix.size() - 2);
    double bound = le == "+Inf" ? INFINITY : strtod(le.c_str(), nullptr);
    buckets.emplace_back(bound, value - metric(before, name));
  }
  std::sort(buckets.begin(), buckets.end());
  if (buckets.empty() || buckets.back().second <= 0) return -1;
  double target = q * buckets.back().second;
  for (const auto& [bound, cumulative] : buckets)
    if (cumulative >= target) return bound;
  return INFINITY;
}

}  // namespace roomcast::bench
