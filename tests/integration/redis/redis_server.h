// tests/integration/redis/redis_server.h: a real redis-server on a free port in a scratch folder.
// Rule: every server started here dies with the test: kill_all() from teardown and atexit, PDEATHSIG for crashes.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

namespace roomcast::test {

inline uint64_t mono_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

// A port nobody listens on right now, below Linux's ephemeral range (32768+) so that a client
// retrying a connect to it can never be handed the same port as its own source (TCP self-connect).
inline int free_port() {
  static unsigned seed = static_cast<unsigned>(getpid()) * 2654435761u ^ static_cast<unsigned>(mono_ms());
  for (int tries = 0; tries < 1000; ++tries) {
    seed = seed * 1103515245u + 12345u;
    int port = 20000 + static_cast<int>((seed >> 8) % 12000);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    if (ok) return port;
  }
  return 0;
}

// One blocking PING with a short timeout: true if the server answered +PONG (or -NOAUTH).
inline bool ping(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      send(fd, "PING\r\n", 6, MSG_NOSIGNAL) == 6) {
    struct pollfd p = {fd, POLLIN, 0};
    char buf[64];
    if (poll(&p, 1, 500) == 1) {
      ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
      ok = n > 0 && (buf[0] == '+' || (n > 7 && memcmp(buf, "-NOAUTH", 7) == 0));
    }
  }
  close(fd);
  return ok;
}

class RedisServer;
inline std::vector<RedisServer*>& all_servers() {
  static std::vector<RedisServer*> v;
  return v;
}

class RedisServer {
 public:
  explicit RedisServer(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    port_ = free_port();
    char tmpl[] = "/tmp/roomcast-redis-test-XXXXXX";
    char* d = mkdtemp(tmpl);
    dir_ = d ? d : "/tmp";
    all_servers().push_back(this);
  }
  ~RedisServer() {
    stop();
    auto& v = all_servers();
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == this) v.erase(v.begin() + static_cast<long>(i));
    }
    cleanup_dir();
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  // Starts redis-server and waits (blocking, up to 10 s) until it answers PING.
  bool start() {
    if (pid_ > 0) return true;
    std::string log = dir_ + "/redis.log";
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      std::string port = std::to_string(port_);
      std::vector<std::string> args = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--dir", dir_, "--daemonize", "no"};
      for (auto& e : extra_) args.push_back(e);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execvp("redis-server", argv.data());
      _exit(127);
    }
    pid_ = pid;
    uint64_t deadline = mono_ms() + 10000;
    while (mono_ms() < deadline) {
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      if (ping(port_)) return true;
      usleep(20000);
    }
    return false;
  }

  // Kills the server (SIGKILL by default, like a crash) and reaps it.
  void stop(int sig = SIGKILL) {
    if (pid_ <= 0) return;
    kill(pid_, sig);  // SIGKILL works on a stopped process, and must not let it read first
    if (sig != SIGKILL) kill(pid_, SIGCONT);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  void freeze() {
    if (pid_ > 0) kill(pid_, SIGSTOP);
  }
  void thaw() {
    if (pid_ > 0) kill(pid_, SIGCONT);
  }

  static void kill_all() {
    for (RedisServer* s : all_servers()) s->stop();
  }

 private:
  void cleanup_dir() {
    std::error_code ec;
    if (dir_.rfind("/tmp/roomcast-redis-test-", 0) == 0) std::filesystem::remove_all(dir_, ec);
  }

  std::vector<std::string> extra_;
  int port_ = 0;
  pid_t pid_ = -1;
  std::string dir_;
};

}  // namespace roomcast::test
