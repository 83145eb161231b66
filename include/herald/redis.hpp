#pragma once

// herald::redis — many herald processes serve one hub, through Redis. Optional: link the CMake
// target herald::redis (hiredis from Debian's libhiredis-dev). The core never includes this.

#include <herald/backplane.hpp>
#include <herald/config.hpp>
#include <herald/metrics_text.hpp>
#include <herald/log.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace herald::inline v0::redis {

namespace detail {
class BackplaneImpl;
}

/// Where Redis is and how the hub's data is kept there. Every field has a safe default.
struct Options {
  /** `redis://[[user]:password@]host[:port][/db]` or `unix:///path/to/socket[?db=N]`
      (percent-escapes in user and password). */
  std::string url = "redis://127.0.0.1:6379";
  /** Names this hub in Redis: every key starts with the hash tag `{prefix}`, so hubs with
      different prefixes share one Redis, and a hub lives in one Redis Cluster slot. */
  std::string prefix = "herald";
  /// Bound of one connection attempt (TCP connect, AUTH, SELECT, PING).
  std::chrono::milliseconds connect_timeout{2000};
  /** Bound of every command. A publish that gets no reply in time fails with
      error::backplane_unavailable, and Redis refuses it if it arrives later. */
  std::chrono::milliseconds command_timeout{1000};
  /** Publishes in flight at once on the command connection (pipelined); more wait their turn.
      A publish that cannot be stored within command_timeout of its call — Redis unreachable,
      or too busy to get to it in time — fails and is not published. */
  std::size_t pipeline = 512;
  /// Reconnection delays: full jitter over an exponential bound from `initial` up to `max`.
  std::chrono::milliseconds backoff_initial{50};
  std::chrono::milliseconds backoff_max{2000};
  /** Events the shared log keeps (every topic, in id order), and for how long. The log is what
      a node that lost Redis for a while catches up from, and what "every topic" subscriptions
      resume from; a node that falls further behind sends its clients a reset notice. */
  std::size_t log_events = 100000;
  std::chrono::seconds log_age{600};
  /// How long the log tail blocks in one read, and how many events one read takes at most.
  std::chrono::milliseconds block{1000};
  std::size_t read_batch = 1024;
  /// Log hook (none by default; records carry transport "redis") and its lowest level.
  LogHook log;
  LogLevel log_level = LogLevel::info;
};

/// Counters and state of a Backplane, read with Backplane::stats().
struct Stats {
  /// Both connections (commands, and the log tail) are up.
  bool connected = false;
  /// Connections re-established after they were lost.
  std::uint64_t reconnects = 0;
  std::uint64_t published = 0;
  /// Publishes that completed with error::backplane_unavailable.
  std::uint64_t publish_failures = 0;
  /// Events taken in from the log (published on any node).
  std::uint64_t ingested = 0;
  /// Breaks in the log seen by this node (entries lost or trimmed before it read them).
  std::uint64_t discontinuities = 0;
  /// History reads for cursors this node's memory could not serve.
  std::uint64_t history_reads = 0;
  /// The id up to which this node has read the log.
  EventId position = 0;
  /// Why the connection is down (e.g. Redis' answer to AUTH); empty while connected.
  std::string last_error;
};

/** A herald::Backplane on Redis: give it to HubOptions::backplane on every node.

    Ids come from one Lua script per publish (one round trip, pipelined), strictly increasing
    across every topic and node and across Redis restarts; each topic's history is a Redis
    stream trimmed to the hub's history bounds; every node tails one shared log with a
    blocking read on a connection of its own, so a node that lost Redis for a while catches up
    instead of missing events. See docs/scaling.md for the key layout and the failure modes.

    Thread safety: every member may be called from any thread. Everything runs on a strand of
    the executor given; the library starts no thread.

    Example:
      auto redis = std::make_shared<herald::redis::Backplane>(ioc.get_executor(),
                                                              herald::redis::Options{.url = url});
      herald::Hub hub{ioc.get_executor(), {.backplane = redis}};
*/
class Backplane final : public herald::Backplane {
 public:
  /// Throws std::invalid_argument for a bad URL or option. Connects only when a Hub starts it.
  Backplane(net::any_io_executor ex, Options options = {});
  ~Backplane() override;

  Backplane(Backplane const&) = delete;
  Backplane& operator=(Backplane const&) = delete;

  void start(std::weak_ptr<BackplaneSink> sink, std::size_t history_events,
             std::chrono::steady_clock::duration history_age) override;
  /// Disconnect for good; pending operations complete with net::error::operation_aborted.
  void stop() override;
  void async_publish(Event event, EventId known, publish_handler handler) override;
  void async_history(std::vector<std::string> topics, EventId since, std::size_t limit,
                     history_handler handler) override;

  Stats stats() const;

 private:
  std::shared_ptr<detail::BackplaneImpl> impl_;
};

/** The backplane's state for herald::Metrics (`metrics.add(herald::redis::metrics(backplane))`):
    herald_backplane_up (1 while both connections are up), herald_backplane_reconnects_total,
    herald_backplane_published_total, herald_backplane_publish_failures_total,
    herald_backplane_ingested_total, herald_backplane_discontinuities_total,
    herald_backplane_history_reads_total and herald_backplane_position (the log position read). */
inline std::function<void(herald::MetricsText&)> metrics(std::shared_ptr<Backplane> backplane);

}  // namespace herald::redis

#include <herald/impl/redis.hpp>
