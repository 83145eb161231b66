#pragma once

// A real redis-server for a test: its own temporary directory, a free port on 127.0.0.1, and
// control by PID (kill, restart on the same port and directory, SIGSTOP / SIGCONT). Readiness
// is read from the server's own log ("Ready to accept connections"), so nothing sleeps. Plus
// a blocking hiredis client for the test's own commands (FLUSHALL, HGET, ...).

#include <hiredis/hiredis.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef HERALD_REDIS_SERVER
#define HERALD_REDIS_SERVER "/usr/bin/redis-server"
#endif

namespace test {

/// A port nobody listens on right now (bound to 127.0.0.1:0, then released).
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("free_port: cannot bind");
  ::close(fd);
  return ntohs(a.sin_port);
}

struct RedisServerOptions {
  /// Append-only file, so a restart keeps the data (a restart without it loses everything).
  bool persist = false;
  /// requirepass: clients must AUTH (command() does).
  std::string password;
};

class RedisServer {
 public:
  using Options = RedisServerOptions;

  explicit RedisServer(Options o = {}) : options_(o) {
    char tmpl[] = "/tmp/herald-redis-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("RedisServer: mkdtemp failed");
    dir_ = tmpl;
    // A port freed by free_port() may be taken again before redis binds it: try a few.
    for (int attempt = 0; attempt < 5 && pid_ <= 0; ++attempt) {
      port_ = free_port();
      if (!spawn()) pid_ = -1;
    }
    if (pid_ <= 0) throw std::runtime_error("RedisServer: redis-server did not start");
  }

  RedisServer(RedisServer const&) = delete;
  RedisServer& operator=(RedisServer const&) = delete;

  ~RedisServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGCONT);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  int port() const noexcept { return port_; }
  pid_t pid() const noexcept { return pid_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  /// SIGKILL: gone at once, nothing flushed beyond what the append-only file already holds.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  /// Start again on the same port and directory (after kill()).
  void restart() {
    if (pid_ > 0) kill();
    if (!spawn()) throw std::runtime_error("RedisServer: restart failed");
  }

  void pause() { ::kill(pid_, SIGSTOP); }
  void resume() { ::kill(pid_, SIGCONT); }

  /// Run one command on a fresh blocking connection; returns the reply as text (integers in
  /// decimal, nil as "(nil)", errors prefixed "ERR:").
  std::string command(std::vector<std::string> const& args) const {
    timeval tv{5, 0};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    if (!c || c->err) {
      if (c) redisFree(c);
      throw std::runtime_error("RedisServer::command: cannot connect");
    }
    redisSetTimeout(c, tv);
    if (!options_.password.empty())
      if (auto* r = static_cast<redisReply*>(redisCommand(c, "AUTH %s", options_.password.c_str()))) freeReplyObject(r);
    std::vector<char const*> argv;
    std::vector<size_t> lens;
    for (auto const& a : args) {
      argv.push_back(a.c_str());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data()));
    std::string out;
    if (!r) out = "ERR:no reply";
    else if (r->type == REDIS_REPLY_INTEGER) out = std::to_string(r->integer);
    else if (r->type == REDIS_REPLY_NIL) out = "(nil)";
    else if (r->type == REDIS_REPLY_ERROR) out = "ERR:" + std::string(r->str, r->len);
    else if (r->type == REDIS_REPLY_ARRAY) out = std::to_string(r->elements);
    else out.assign(r->str, r->len);
    if (r) freeReplyObject(r);
    redisFree(c);
    return out;
  }

 private:
  /// Fork redis-server with its log on a pipe; true once it says it is ready.
  bool spawn() {
    int fds[2];
    if (::pipe(fds) != 0) return false;
    std::vector<std::string> args{HERALD_REDIS_SERVER,
                                  "--port", std::to_string(port_),
                                  "--bind", "127.0.0.1",
                                  "--dir", dir_,
                                  "--save", "",
                                  "--appendonly", options_.persist ? "yes" : "no",
                                  "--appendfsync", "always",
                                  "--logfile", "",
                                  "--daemonize", "no",
                                  "--protected-mode", "no"};
    if (!options_.password.empty()) {
      args.push_back("--requirepass");
      args.push_back(options_.password);
    }
    pid_t const pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
      ::signal(SIGPIPE, SIG_IGN);  // its log pipe is closed once it is ready
      ::dup2(fds[1], 1);
      // Nothing of the test process may live on in redis-server: a socket it inherited would
      // stay open there after the test closed it, and its peer would never see the end.
      ::close_range(3, ~0U, 0);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    pid_ = pid;
    bool ready = false;
    std::string log;
    auto const end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!ready && std::chrono::steady_clock::now() < end) {
      pollfd p{fds[0], POLLIN, 0};
      if (::poll(&p, 1, 500) <= 0) continue;
      char buf[4096];
      auto const n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0) break;  // exited (e.g. the port was taken)
      log.append(buf, static_cast<std::size_t>(n));
      ready = log.find("Ready to accept connections") != std::string::npos;
    }
    // The pipe stays readable by nobody: redis writes its log into it until the buffer fills,
    // so point its later output elsewhere by closing our end (writes then fail with EPIPE,
    // which redis ignores).
    ::close(fds[0]);
    if (!ready) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    return ready;
  }

  Options options_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace test
