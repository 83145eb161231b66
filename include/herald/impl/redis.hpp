#pragma once

#include <herald/detail/redis_connection.hpp>
#include <herald/detail/redis_scripts.hpp>
#include <herald/detail/redis_url.hpp>
#include <herald/error.hpp>
#include <herald/log.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <stdexcept>

namespace herald::inline v0::redis::detail {

using herald::detail::parse_redis_id;
using herald::detail::RedisConnection;
using herald::detail::RedisValue;
namespace lua = herald::detail::redis_lua;

inline std::string micros(std::chrono::steady_clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

inline long long system_micros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/** The state of a Backplane, on one strand. Two connections: `cmd_` for publishes and
    history reads (pipelined), `tail_` for the blocking read of the log. */
class BackplaneImpl : public std::enable_shared_from_this<BackplaneImpl> {
 public:
  BackplaneImpl(net::any_io_executor ex, Options options, herald::detail::RedisEndpoint endpoint)
      : strand_(net::make_strand(ex)), options_(std::move(options)), endpoint_(std::move(endpoint)),
        keys_(options_.prefix) {}

  void start(std::weak_ptr<BackplaneSink> sink, std::size_t history_events,
             std::chrono::steady_clock::duration history_age) {
    net::dispatch(strand_, [self = shared_from_this(), sink = std::move(sink), history_events, history_age] {
      if (self->cmd_ || self->stopped_) return;
      self->sink_ = sink;
      self->history_events_ = history_events;
      self->history_age_ = history_age;
      herald::detail::RedisConnectionOptions co{self->options_.connect_timeout, self->options_.command_timeout,
                                                self->options_.backoff_initial, self->options_.backoff_max};
      std::weak_ptr<BackplaneImpl> w = self;
      self->cmd_ = std::make_shared<RedisConnection>(self->strand_, self->endpoint_, co,
                                                     [w](bool up, std::string const& why) {
                                                       if (auto s = w.lock()) s->cmd_state(up, why);
                                                     });
      self->tail_ = std::make_shared<RedisConnection>(self->strand_, self->endpoint_, co,
                                                      [w](bool up, std::string const& why) {
                                                        if (auto s = w.lock()) s->tail_state(up, why);
                                                      });
      self->cmd_->start();
      self->tail_->start();
    });
  }

  void stop() {
    net::dispatch(strand_, [self = shared_from_this()] {
      if (self->stopped_) return;
      self->stopped_ = true;
      self->ready_ = false;
      self->fail_queued();
      self->connected_.store(false);
      if (self->cmd_) self->cmd_->close();
      if (self->tail_) self->tail_->close();
    });
  }

  void publish(Event&& ev, EventId known, Backplane::publish_handler&& handler) {
    net::post(strand_, [self = shared_from_this(), ev = std::move(ev), known, h = std::move(handler)]() mutable {
      self->publish_now(std::move(ev), known, std::move(h));
    });
  }

  void history(std::vector<std::string>&& topics, EventId since, std::size_t limit,
               Backplane::history_handler&& handler) {
    net::post(strand_, [self = shared_from_this(), topics = std::move(topics), since, limit,
                        h = std::move(handler)]() mutable {
      self->history_now(std::move(topics), since, limit, std::move(h));
    });
  }

  Stats stats() const {
    Stats s;
    s.connected = connected_.load();
    s.reconnects = reconnects_.load();
    s.published = published_.load();
    s.publish_failures = publish_failures_.load();
    s.ingested = ingested_.load();
    s.discontinuities = discontinuities_.load();
    s.history_reads = history_reads_.load();
    s.position = position_.load();
    std::lock_guard lock{error_mutex_};
    s.last_error = last_error_;
    return s;
  }

 private:
  template <class Handler, class... Args>
  void complete(Handler& h, Args&&... args) {
    auto ex = net::get_associated_executor(h, strand_);
    net::dispatch(ex, net::append(std::move(h), std::forward<Args>(args)...));
  }

  boost::system::error_code failure() const {
    return stopped_ ? boost::system::error_code(net::error::operation_aborted)
                    : make_error_code(error::backplane_unavailable);
  }

  void log(LogLevel level, boost::system::error_code ec, std::string_view message) const noexcept {
    if (!options_.log || level < options_.log_level) return;
    try {
      options_.log(LogRecord{level, "redis", 0, ec, message});
    } catch (...) {
    }
  }

  void note_error(std::string const& what) {
    std::lock_guard lock{error_mutex_};
    last_error_ = what;
  }

  void update_connected() {
    connected_.store(ready_ && tail_ && tail_->up());
    reconnects_.store((cmd_ ? cmd_->reconnects() : 0) + (tail_ ? tail_->reconnects() : 0));
  }

  // The command connection -------------------------------------------------------------------

  void cmd_state(bool up, std::string const& why) {
    if (!up) {
      bool const was = std::exchange(ready_, false);
      fail_queued();
      update_connected();
      note_error(why);
      // Once per outage and per reason, not once per reconnection attempt.
      if (was || why != logged_) log(LogLevel::warning, error::backplane_unavailable, "command connection: " + why);
      logged_ = why;
      return;
    }
    // Scripts first, then the clock: publishes wait for both (until then they fail at once).
    auto pending = std::make_shared<int>(3);
    auto loaded = [w = weak_from_this(), pending](std::string* sha) {
      return [w, pending, sha](RedisValue v) {
        auto self = w.lock();
        if (!self) return;
        if (v.type != RedisValue::Type::string) return self->note_error("SCRIPT LOAD failed: " + v.str);
        *sha = v.str;
        if (--*pending == 0) self->sync_clock();
      };
    };
    cmd_->command({"SCRIPT", "LOAD", publish_script_}, loaded(&publish_sha_));
    cmd_->command({"SCRIPT", "LOAD", history_script_}, loaded(&history_sha_));
    cmd_->command({"SCRIPT", "LOAD", floor_script_}, loaded(&floor_sha_));
  }

  /** Learn the offset of Redis' clock from ours, so a publish can carry a deadline in Redis
      time (the midpoint of the round trip is the estimate). */
  void sync_clock() {
    long long const sent = system_micros();
    cmd_->command({"TIME"}, [w = weak_from_this(), sent](RedisValue v) {
      auto self = w.lock();
      auto const redis_now = herald::detail::parse_redis_time(v);
      if (!self || !redis_now) return;
      long long const back = system_micros();
      self->clock_offset_ = *redis_now - (sent + back) / 2;
      self->ready_ = !self->stopped_;
      self->logged_.clear();
      self->note_error({});
      self->update_connected();
      self->log(LogLevel::info, {}, "command connection up");
    });
  }

  /** A publish waits here until fewer than Options::pipeline are in flight. Its time budget
      (command_timeout from the call) counts from the call: what waited too long fails without
      being sent, and what is sent carries the rest of its budget as a deadline in Redis time,
      so Redis refuses it if it gets there late. Half the budget: the other half is for the
      reply's way back and the error of the clock offset (a reply that misses it reports a
      failure for an event Redis stored, so the margin is generous). The reply is awaited until the
      budget ends, so a publish completes within command_timeout of its call. */
  struct Queued {
    Event event;
    EventId known = 0;
    Backplane::publish_handler handler;
    std::chrono::steady_clock::time_point expires;
  };

  void publish_now(Event&& ev, EventId known, Backplane::publish_handler h) {
    if (!ready_) {
      ++publish_failures_;
      return complete(h, failure(), EventId{0});
    }
    queue_.push_back(Queued{std::move(ev), known, std::move(h),
                            std::chrono::steady_clock::now() + options_.command_timeout / 2});
    pump();
  }

  void pump() {
    while (ready_ && inflight_ < options_.pipeline && !queue_.empty()) {
      auto q = std::move(queue_.front());
      queue_.pop_front();
      auto const left = q.expires - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) {
        ++publish_failures_;
        complete(q.handler, failure(), EventId{0});
        continue;
      }
      long long const deadline =
          system_micros() + clock_offset_ + std::chrono::duration_cast<std::chrono::microseconds>(left).count();
      auto& ev = q.event;
      auto args = std::make_shared<std::vector<std::string>>(std::vector<std::string>{
          "EVALSHA", publish_sha_, "4", keys_.meta, keys_.log, keys_.history(ev.topic), keys_.floors, ev.topic,
          std::move(ev.type), std::string(1, static_cast<char>('0' + static_cast<int>(ev.kind))), std::move(ev.data),
          std::to_string(history_events_), micros(history_age_), std::to_string(options_.log_events),
          micros(options_.log_age), std::to_string(q.known), std::to_string(deadline)});
      ++inflight_;
      send_publish(std::move(args), std::move(q.handler), q.expires + options_.command_timeout / 2);
    }
  }

  /// Everything still waiting fails (the connection went down, or stop()).
  void fail_queued() {
    while (!queue_.empty()) {
      auto q = std::move(queue_.front());
      queue_.pop_front();
      ++publish_failures_;
      complete(q.handler, failure(), EventId{0});
    }
  }

  void send_publish(std::shared_ptr<std::vector<std::string>> args, Backplane::publish_handler h,
                    std::chrono::steady_clock::time_point due) {
    auto shared = std::make_shared<Backplane::publish_handler>(std::move(h));
    auto const wait = std::max(std::chrono::milliseconds(1), std::chrono::ceil<std::chrono::milliseconds>(
                                                                 due - std::chrono::steady_clock::now()));
    cmd_->command(*args, [w = weak_from_this(), args, shared, due](RedisValue v) mutable {
      auto self = w.lock();
      if (!self) return;
      auto& h = *shared;
      if (v.type == RedisValue::Type::error && v.str.starts_with("NOSCRIPT") && (*args)[0] == "EVALSHA") {
        (*args)[0] = "EVAL";
        (*args)[1] = self->publish_script_;
        return self->send_publish(std::move(args), std::move(h), due);
      }
      --self->inflight_;
      if (v.type == RedisValue::Type::string)
        if (auto id = parse_redis_id(v.str)) {
          ++self->published_;
          self->complete(h, boost::system::error_code{}, *id);
          return self->pump();
        }
      ++self->publish_failures_;
      if (v.type == RedisValue::Type::error) self->note_error("publish: " + v.str);
      self->log(LogLevel::warning, error::backplane_unavailable,
                v.type == RedisValue::Type::none ? std::string_view("publish got no reply in time") : std::string_view(v.str));
      self->complete(h, self->failure(), EventId{0});
      self->pump();
    }, wait);
  }

  void history_now(std::vector<std::string>&& topics, EventId since, std::size_t limit,
                   Backplane::history_handler h) {
    if (!ready_) return complete(h, failure(), BackplaneHistory{});
    ++history_reads_;
    bool const all = topics.empty();
    std::vector<std::string> args{"EVALSHA", history_sha_, std::to_string(2 + (all ? 1 : topics.size())),
                                  keys_.meta, keys_.floors};
    if (all) args.push_back(keys_.log);
    for (auto const& t : topics) args.push_back(keys_.history(t));
    args.push_back(std::to_string(since));
    args.push_back(std::to_string(limit));
    args.push_back(all ? micros(options_.log_age) : micros(history_age_));
    args.push_back(all ? "a" : "t");
    for (auto const& t : topics) args.push_back(t);
    send_history(std::make_shared<std::vector<std::string>>(std::move(args)), std::move(topics), limit, std::move(h));
  }

  void send_history(std::shared_ptr<std::vector<std::string>> args, std::vector<std::string> topics,
                    std::size_t limit, Backplane::history_handler h) {
    auto shared = std::make_shared<Backplane::history_handler>(std::move(h));
    cmd_->command(*args, [w = weak_from_this(), args, topics = std::move(topics), limit, shared](RedisValue v) mutable {
      auto self = w.lock();
      if (!self) return;
      auto& h = *shared;
      if (v.type == RedisValue::Type::error && v.str.starts_with("NOSCRIPT") && (*args)[0] == "EVALSHA") {
        (*args)[0] = "EVAL";
        (*args)[1] = self->history_script_;
        return self->send_history(std::move(args), std::move(topics), limit, std::move(h));
      }
      BackplaneHistory out;
      if (!herald::detail::parse_redis_history(v, topics, limit, out)) {
        if (v.type == RedisValue::Type::error) self->note_error("history: " + v.str);
        return self->complete(h, self->failure(), BackplaneHistory{});
      }
      self->complete(h, boost::system::error_code{}, std::move(out));
    });
  }

  // The log tail -----------------------------------------------------------------------------

  void tail_state(bool up, std::string const& why) {
    update_connected();
    if (!up) {
      note_error(why);
      return;
    }
    if (started_) return read();
    // Where this node's stream starts: the last id handed out. Its log entry is the first
    // one's predecessor.
    tail_->command({"HGET", keys_.meta, "last"}, [w = weak_from_this()](RedisValue v) {
      auto self = w.lock();
      if (!self || self->started_ || self->stopped_) return;
      EventId position = 0;
      if (v.type == RedisValue::Type::string) {
        auto id = parse_redis_id(v.str);
        if (!id) return self->note_error("meta last is not an id: " + v.str);
        position = *id;
      } else if (v.type != RedisValue::Type::nil) {
        return;  // lost again: tail_state(true) retries
      }
      self->started_ = true;
      self->applied_ = position;
      self->position_.store(position);
      if (auto sink = self->sink_.lock()) sink->discontinuity(position, true);
      self->read();
    });
  }

  void read() {
    if (reading_ || stopped_ || !tail_->up()) return;
    reading_ = true;
    tail_->command({"XREAD", "COUNT", std::to_string(options_.read_batch), "BLOCK",
                    std::to_string(options_.block.count()), "STREAMS", keys_.log, std::to_string(applied_) + "-0"},
                   [w = weak_from_this()](RedisValue v) {
                     auto self = w.lock();
                     if (!self) return;
                     self->reading_ = false;
                     if (v.type == RedisValue::Type::none) return;  // reconnecting: tail_state reads again
                     if (v.type == RedisValue::Type::array) self->take(v);
                     self->read();
                   },
                   options_.block + options_.command_timeout);
  }

  /// Entries of the log, checked link by link: each names its predecessor.
  void take(RedisValue const& v) {
    auto sink = sink_.lock();
    for (auto& run : herald::detail::read_redis_log(v, applied_)) {
      if (run.broken) {
        // The log lost entries this node had taken in (a restart or failover without them).
        if (run.lost) raise_floor(run.position);
        ++discontinuities_;
        log(LogLevel::warning, error::cursor_expired, "the log broke: entries were lost or trimmed unread");
        if (sink) sink->discontinuity(run.position, false);
      }
      if (run.events.empty()) continue;
      ingested_ += run.events.size();
      if (sink) sink->ingress(std::move(run.events));
    }
    position_.store(applied_);
  }

  void raise_floor(EventId id) {
    if (!ready_) return;
    cmd_->command({"EVALSHA", floor_sha_, "1", keys_.meta, std::to_string(id)},
                  [w = weak_from_this(), id](RedisValue v) {
                    auto self = w.lock();
                    if (!self || v.ok()) return;
                    if (v.str.starts_with("NOSCRIPT"))
                      self->cmd_->command({"EVAL", self->floor_script_, "1", self->keys_.meta, std::to_string(id)},
                                          [](RedisValue) {});
                  });
  }

  net::strand<net::any_io_executor> strand_;
  Options const options_;
  herald::detail::RedisEndpoint const endpoint_;
  lua::Keys const keys_;
  std::string const publish_script_ = lua::script(lua::publish_body);
  std::string const history_script_ = lua::script(lua::history_body);
  std::string const floor_script_ = lua::script(lua::raise_floor_body);
  std::string publish_sha_, history_sha_, floor_sha_;
  std::weak_ptr<BackplaneSink> sink_;
  std::size_t history_events_ = 0;
  std::chrono::steady_clock::duration history_age_{};
  std::shared_ptr<RedisConnection> cmd_;
  std::shared_ptr<RedisConnection> tail_;
  std::deque<Queued> queue_;
  std::size_t inflight_ = 0;
  long long clock_offset_ = 0;
  EventId applied_ = 0;
  bool ready_ = false;
  bool started_ = false;
  bool reading_ = false;
  bool stopped_ = false;
  std::atomic<bool> connected_{false};
  std::atomic<std::uint64_t> reconnects_{0};
  std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> publish_failures_{0};
  std::atomic<std::uint64_t> ingested_{0};
  std::atomic<std::uint64_t> discontinuities_{0};
  std::atomic<std::uint64_t> history_reads_{0};
  std::atomic<EventId> position_{0};
  std::string logged_;
  mutable std::mutex error_mutex_;
  std::string last_error_;
};

inline herald::detail::RedisEndpoint checked(Options const& o) {
  std::string problem;
  auto ep = herald::detail::parse_redis_url(o.url, problem);
  if (!ep) throw std::invalid_argument("herald: redis::Options::url: " + problem);
  if (o.prefix.empty() || o.prefix.find_first_of("{}") != std::string::npos)
    throw std::invalid_argument("herald: redis::Options::prefix must be non-empty, without braces");
  if (o.connect_timeout.count() <= 0 || o.command_timeout.count() <= 0)
    throw std::invalid_argument("herald: redis::Options::connect_timeout and command_timeout must be positive");
  if (o.backoff_initial.count() <= 0 || o.backoff_max < o.backoff_initial)
    throw std::invalid_argument("herald: redis::Options::backoff_initial must be positive and at most backoff_max");
  if (o.log_events == 0) throw std::invalid_argument("herald: redis::Options::log_events must be positive");
  if (o.log_age.count() < 0) throw std::invalid_argument("herald: redis::Options::log_age must not be negative");
  if (o.pipeline == 0) throw std::invalid_argument("herald: redis::Options::pipeline must be positive");
  if (o.block.count() <= 0 || o.read_batch == 0)
    throw std::invalid_argument("herald: redis::Options::block and read_batch must be positive");
  return std::move(*ep);
}

}  // namespace herald::redis::detail

namespace herald::inline v0::redis {

inline Backplane::Backplane(net::any_io_executor ex, Options options) {
  auto endpoint = detail::checked(options);
  impl_ = std::make_shared<detail::BackplaneImpl>(std::move(ex), std::move(options), std::move(endpoint));
}

inline Backplane::~Backplane() { impl_->stop(); }

inline void Backplane::start(std::weak_ptr<BackplaneSink> sink, std::size_t history_events,
                             std::chrono::steady_clock::duration history_age) {
  impl_->start(std::move(sink), history_events, history_age);
}

inline void Backplane::stop() { impl_->stop(); }

inline void Backplane::async_publish(Event event, EventId known, publish_handler handler) {
  impl_->publish(std::move(event), known, std::move(handler));
}

inline void Backplane::async_history(std::vector<std::string> topics, EventId since, std::size_t limit,
                                     history_handler handler) {
  impl_->history(std::move(topics), since, limit, std::move(handler));
}

inline Stats Backplane::stats() const { return impl_->stats(); }

inline std::function<void(herald::MetricsText&)> metrics(std::shared_ptr<Backplane> backplane) {
  return [backplane = std::move(backplane)](herald::MetricsText& m) {
    auto const s = backplane->stats();
    auto one = [&](char const* name, char const* type, char const* help, std::uint64_t v) {
      m.family(name, type, help);
      m.sample({{"backplane", "redis"}}, v);
    };
    one("herald_backplane_up", "gauge", "Whether the backplane's connections are up (1) or not (0).",
        s.connected ? 1 : 0);
    one("herald_backplane_reconnects_total", "counter", "Backplane connections re-established.", s.reconnects);
    one("herald_backplane_published_total", "counter", "Events published through the backplane.", s.published);
    one("herald_backplane_publish_failures_total", "counter", "Publishes that failed (backplane unavailable).",
        s.publish_failures);
    one("herald_backplane_ingested_total", "counter", "Events taken in from the shared log.", s.ingested);
    one("herald_backplane_discontinuities_total", "counter", "Breaks in the shared log seen by this node.",
        s.discontinuities);
    one("herald_backplane_history_reads_total", "counter", "History reads for cursors memory could not serve.",
        s.history_reads);
    one("herald_backplane_position", "gauge", "The id up to which this node has read the log.", s.position);
  };
}

}  // namespace herald::redis
