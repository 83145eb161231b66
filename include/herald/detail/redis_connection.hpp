#pragma once

#include <herald/config.hpp>
#include <herald/detail/redis_reply.hpp>
#include <herald/detail/redis_url.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <sys/ioctl.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::inline v0::detail {

/// Timeouts and reconnection of one RedisConnection.
struct RedisConnectionOptions {
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds command_timeout{1000};
  std::chrono::milliseconds backoff_initial{50};
  std::chrono::milliseconds backoff_max{2000};
};

/** One hiredis async connection driven by an Asio executor, with the timeouts and the
    reconnection hiredis 0.14 lacks.

    hiredis owns the socket and the RESP state machine; this class only tells it when the
    socket is readable or writable (a posix::stream_descriptor that watches the fd and never
    owns it: it is released before hiredis closes it). Every command has a deadline; replies
    come in order, so a command that misses its deadline takes the connection down (every
    pending command fails with it: none of them can be answered before it).
    The connection then reconnects by itself, after a delay drawn uniformly from zero up to an
    exponentially growing bound (full jitter), until close().

    Contract:
      - Everything runs on `ex`, which must serialize (a strand, or a one-thread io_context);
        every member is called on it.
      - on_state(true, {}) runs once the connection has logged in (AUTH, SELECT) and takes
        commands; on_state(false, why) once it is gone, and after every attempt that failed
        (`why`: Redis' answer, e.g. to AUTH, or what timed out). Both run on `ex`, never inside
        a call.
      - command() completes exactly once, posted to `ex`: with the reply, or with a value of
        type `none` when there was none (not connected, lost, timed out, closed).
*/
class RedisConnection : public std::enable_shared_from_this<RedisConnection> {
 public:
  using Done = std::function<void(RedisValue)>;

  RedisConnection(net::any_io_executor ex, RedisEndpoint endpoint, RedisConnectionOptions options,
                  std::function<void(bool, std::string const&)> on_state)
      : ex_(std::move(ex)),
        endpoint_(std::move(endpoint)),
        options_(options),
        on_state_(std::move(on_state)),
        timer_(ex_),
        retry_(ex_),
        rng_(std::random_device{}()) {}

  RedisConnection(RedisConnection const&) = delete;
  RedisConnection& operator=(RedisConnection const&) = delete;

  ~RedisConnection() {
    // Only reached once nothing refers to us: close() has run (or start() never did).
    if (ac_) {
      ac_->data = nullptr;
      redisAsyncFree(ac_);
    }
  }

  void start() { connect(); }

  /// Disconnect for good; pending commands complete with no reply.
  void close() {
    if (closed_) return;
    closed_ = true;
    retry_.cancel();
    timer_.cancel();
    if (ac_) redisAsyncFree(ac_);
  }

  /// Logged in and taking commands.
  bool up() const noexcept { return up_; }

  /// Connections made after the first.
  std::uint64_t reconnects() const noexcept { return reconnects_; }


  /** Send `args` as one command. `timeout` (zero: the command timeout) bounds the wait for its
      reply; a blocking read passes its blocking time plus the command timeout. */
  void command(std::vector<std::string> const& args, Done done,
               std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
    if (!ac_ || !up_) return fail_later(std::move(done));
    send(args, std::move(done), timeout);
  }

 private:
  struct Pending {
    std::weak_ptr<RedisConnection> owner;
    Done done;
  };

  void fail_later(Done done) {
    net::post(ex_, [done = std::move(done)]() mutable { done(RedisValue{}); });
  }

  void send(std::vector<std::string> const& args, Done done, std::chrono::milliseconds timeout) {
    std::vector<char const*> argv;
    std::vector<std::size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (auto const& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* p = new Pending{weak_from_this(), std::move(done)};
    if (redisAsyncCommandArgv(ac_, &RedisConnection::on_reply, p, static_cast<int>(args.size()), argv.data(),
                              lens.data()) != REDIS_OK) {
      auto d = std::move(p->done);
      delete p;
      return fail_later(std::move(d));
    }
    auto const t = timeout.count() > 0 ? timeout : options_.command_timeout;
    // Each entry is the earliest deadline from its command on: the front is then when the
    // connection is due to be taken down, also when a later command has the shorter timeout.
    auto const at = std::chrono::steady_clock::now() + t;
    for (auto it = deadlines_.rbegin(); it != deadlines_.rend() && *it > at; ++it) *it = at;
    deadlines_.push_back(at);
    watch();
  }

  // hiredis calls this once per command: with its reply, or with null when the context is
  // freed or disconnected. Replies arrive in the order the commands were sent.
  static void on_reply(redisAsyncContext*, void* reply, void* privdata) {
    auto* p = static_cast<Pending*>(privdata);
    auto done = std::move(p->done);
    auto owner = p->owner.lock();
    delete p;
    if (owner && !owner->deadlines_.empty()) owner->deadlines_.pop_front();
    auto value = RedisValue::from(static_cast<redisReply const*>(reply));
    if (owner) {
      net::post(owner->ex_, [done = std::move(done), value = std::move(value)]() mutable { done(std::move(value)); });
    } else if (done) {
      done(std::move(value));
    }
  }

  // Connecting -------------------------------------------------------------------------------

  void connect() {
    if (closed_) return;
    ac_ = endpoint_.socket.empty() ? redisAsyncConnect(endpoint_.host.c_str(), endpoint_.port)
                                   : redisAsyncConnectUnix(endpoint_.socket.c_str());
    if (!ac_ || ac_->err) {
      if (ac_) redisAsyncFree(ac_);
      ac_ = nullptr;
      return retry_later();
    }
    ac_->data = this;
    ac_->ev.data = this;
    ac_->ev.addRead = [](void* d) { static_cast<RedisConnection*>(d)->want(read_, true); };
    ac_->ev.delRead = [](void* d) { static_cast<RedisConnection*>(d)->want(read_, false); };
    ac_->ev.addWrite = [](void* d) { static_cast<RedisConnection*>(d)->want(write_, true); };
    ac_->ev.delWrite = [](void* d) { static_cast<RedisConnection*>(d)->want(write_, false); };
    ac_->ev.cleanup = [](void* d) { static_cast<RedisConnection*>(d)->gone(); };
    boost::system::error_code ec;
    sd_.emplace(ex_);
    sd_->assign(ac_->c.fd, ec);
    if (ec) {
      redisAsyncFree(ac_);
      return;
    }
    connecting_ = true;
    connect_deadline_ = std::chrono::steady_clock::now() + options_.connect_timeout;
    redisAsyncSetConnectCallback(ac_, [](redisAsyncContext const* c, int status) {
      if (auto* self = static_cast<RedisConnection*>(c->data); self && status == REDIS_OK) self->login();
    });
    watch();
  }

  /// Connected: log in, then ask for a PONG; the connection is up when it arrives.
  void login() {
    if (!endpoint_.password.empty()) {
      std::vector<std::string> auth{"AUTH"};
      if (!endpoint_.user.empty()) auth.push_back(endpoint_.user);
      auth.push_back(endpoint_.password);
      send(auth,
           [w = weak_from_this()](RedisValue v) {
             if (auto self = w.lock(); self && v.type == RedisValue::Type::error) self->last_error_ = v.str;
           },
           options_.connect_timeout);
    }
    if (endpoint_.db != 0) send({"SELECT", std::to_string(endpoint_.db)}, [](RedisValue) {}, options_.connect_timeout);
    // Pipelined after AUTH and SELECT: a failed login makes PING fail too (NOAUTH), and a
    // failed SELECT is seen on the server's next reply; either way the PONG check is the gate.
    send({"PING"},
         [w = weak_from_this()](RedisValue v) {
           auto self = w.lock();
           if (!self || !self->ac_ || self->closed_) return;
           if (v.type == RedisValue::Type::status && v.str == "PONG") return self->ready();
           if (self->last_error_.empty())
             self->last_error_ = v.type == RedisValue::Type::error ? v.str : "no answer to PING";
           self->drop();
         },
         options_.connect_timeout);
  }

  void ready() {
    last_error_.clear();
    connecting_ = false;
    up_ = true;
    attempt_ = 0;
    if (connected_once_) ++reconnects_;
    connected_once_ = true;
    if (on_state_) on_state_(true, last_error_);
  }

  /// hiredis freed the context (error, EOF, redisAsyncFree): watch nothing more, reconnect.
  void gone() {
    if (sd_) {
      sd_->release();  // hiredis closes the fd itself
      sd_.reset();
    }
    ac_ = nullptr;
    watching_[read_] = watching_[write_] = false;
    wanted_[read_] = wanted_[write_] = false;
    deadlines_.clear();
    bool const was_up = std::exchange(up_, false);
    connecting_ = false;
    auto self = weak_from_this().lock();
    if (!self) return;  // being destroyed
    net::post(ex_, [self, was_up] {
      if (self->on_state_)
        self->on_state_(false, !self->last_error_.empty() ? self->last_error_
                               : was_up                   ? std::string("connection lost")
                                                          : std::string("cannot connect"));
      self->last_error_.clear();
      self->retry_later();
    });
  }

  void retry_later() {
    if (closed_) return;
    // Full jitter: uniform in [0, min(max, initial * 2^attempt)].
    auto bound = options_.backoff_initial.count() << std::min(attempt_, 16);
    bound = std::min<long long>(bound, options_.backoff_max.count());
    ++attempt_;
    std::uniform_int_distribution<long long> pick(0, std::max<long long>(bound, 1));
    retry_.expires_after(std::chrono::milliseconds(pick(rng_)));
    retry_.async_wait([w = weak_from_this()](boost::system::error_code ec) {
      if (auto self = w.lock(); self && !ec && !self->closed_ && !self->ac_) self->connect();
    });
  }

  /// Take the connection down (a timeout, a failed login): hiredis fails what is pending.
  void drop() {
    if (ac_) redisAsyncFree(ac_);
  }

  // Readiness --------------------------------------------------------------------------------

  static constexpr int read_ = 0;
  static constexpr int write_ = 1;

  void want(int which, bool on) {
    wanted_[which] = on;
    if (on) wait(which);
  }

  void wait(int which) {
    if (watching_[which] || !sd_) return;
    watching_[which] = true;
    sd_->async_wait(which == read_ ? net::posix::descriptor_base::wait_read : net::posix::descriptor_base::wait_write,
                    [w = weak_from_this(), which](boost::system::error_code ec) {
                      if (auto self = w.lock()) self->on_ready(which, ec);
                    });
  }

  void on_ready(int which, boost::system::error_code ec) {
    watching_[which] = false;
    if (ec || !ac_ || !wanted_[which]) return;
    if (which == read_) {
      redisAsyncHandleRead(ac_);
      // hiredis reads at most 16 KiB per call, and the reactor reports readiness on edges: read
      // on while bytes are waiting, or they would sit there until the next packet.
      int n = 0;
      while (ac_ && ::ioctl(ac_->c.fd, FIONREAD, &n) == 0 && n > 0) redisAsyncHandleRead(ac_);
    } else {
      redisAsyncHandleWrite(ac_);
    }
    if (ac_ && wanted_[which]) wait(which);
  }

  // Deadlines --------------------------------------------------------------------------------

  void watch() {
    std::optional<std::chrono::steady_clock::time_point> at;
    if (connecting_) at = connect_deadline_;
    if (!deadlines_.empty()) at = at ? std::min(*at, deadlines_.front()) : deadlines_.front();
    if (!at || (timer_armed_ && timer_.expiry() <= *at)) return;
    // Armed for later than needed: re-arm. expires_at cancels the old wait, whose handler then
    // sees a newer generation and leaves the state alone.
    timer_armed_ = true;
    timer_.expires_at(*at);
    timer_.async_wait([w = weak_from_this(), gen = ++timer_gen_](boost::system::error_code ec) {
      auto self = w.lock();
      if (!self || gen != self->timer_gen_) return;
      self->timer_armed_ = false;
      if (ec || self->closed_ || !self->ac_) return;
      auto const now = std::chrono::steady_clock::now();
      if (self->connecting_ && now >= self->connect_deadline_) {
        self->last_error_ = "connect timed out";
        return self->drop();
      }
      if (!self->deadlines_.empty() && now >= self->deadlines_.front()) {
        self->last_error_ = "command timed out";
        return self->drop();
      }
      self->watch();
    });
  }

  net::any_io_executor ex_;
  RedisEndpoint const endpoint_;
  RedisConnectionOptions const options_;
  std::function<void(bool, std::string const&)> on_state_;
  std::string last_error_;
  redisAsyncContext* ac_ = nullptr;
  std::optional<net::posix::stream_descriptor> sd_;
  net::steady_timer timer_;
  net::steady_timer retry_;
  std::deque<std::chrono::steady_clock::time_point> deadlines_;
  std::chrono::steady_clock::time_point connect_deadline_{};
  std::mt19937_64 rng_;
  std::uint64_t reconnects_ = 0;
  int attempt_ = 0;
  bool wanted_[2] = {false, false};
  bool watching_[2] = {false, false};
  bool timer_armed_ = false;
  std::uint64_t timer_gen_ = 0;  // of the wait that counts
  bool connecting_ = false;
  bool up_ = false;
  bool connected_once_ = false;
  bool closed_ = false;
};

}  // namespace herald::detail
