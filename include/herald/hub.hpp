#pragma once

#include <herald/config.hpp>
#include <herald/event.hpp>
#include <herald/log.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herald {

namespace detail {
class HubState;
}

/// How a hub numbers and retains events. Every field has a safe default.
struct HubOptions {
  /// Events kept per topic for resume; 0 keeps none.
  std::size_t history_events = HERALD_DEFAULT_HISTORY_EVENTS;
  /// Events older than this are dropped from history; zero keeps them regardless of age.
  std::chrono::steady_clock::duration history_age = std::chrono::minutes(10);
  /// File that keeps ids increasing across restarts. Empty: ids start from the wall clock (µs).
  std::string id_file;
  /// Lowest first id; 0 lets id_file or the clock decide.
  EventId first_id = 0;
  /// Ids reserved per write of id_file.
  std::uint64_t id_block = 4096;
  /// Clock for history age; empty means std::chrono::steady_clock::now. Tests inject one.
  std::function<std::chrono::steady_clock::time_point()> clock;
  /// Log hook (none by default) and the lowest level it receives.
  LogHook log;
  LogLevel log_level = LogLevel::info;
};

/// Per-publish choices.
struct PublishOptions {
  /// Event type (SSE `event:`); empty for plain messages.
  std::string_view type;
  PayloadKind kind = PayloadKind::automatic;
};

/// Counters of a hub, read with Hub::stats().
struct HubStats {
  /// Connections subscribed now, over every channel of the hub.
  std::uint64_t connections = 0;
  /// Connections ever opened.
  std::uint64_t connections_total = 0;
  std::uint64_t events_published = 0;
  /// Events written to connections (one per event per connection).
  std::uint64_t deliveries = 0;
  /// Connections closed because they fell behind their queue bound.
  std::uint64_t slow_consumer_disconnects = 0;
  /// Reset notices sent (expired cursors and OverflowPolicy::reset).
  std::uint64_t resets = 0;
  /// Topics the hub tracks now.
  std::size_t topics = 0;
  /// The last id handed out.
  EventId last_id = 0;
};

/** Topics, ids and history: the heart that every channel of an application shares.

    A Hub is a cheap handle: copies refer to the same state, which lives as long as any copy
    or any connection of a channel built on it.

    Thread safety: every member function may be called from any thread.

    Example:
      herald::Hub hub{ioc.get_executor()};
      hub.publish("orders", R"({"id":42})");
*/
class Hub {
 public:
  using executor_type = net::any_io_executor;

  /// Throws std::invalid_argument for bad options, std::system_error if id_file is unusable.
  explicit Hub(executor_type ex, HubOptions options = {});

  /** Publish `data` on `topic`; returns the event's id.

      Never blocks on a subscriber: each connection's bounded queue takes the event or applies
      its overflow policy. Throws std::invalid_argument for an invalid topic name, and
      std::system_error if the id file cannot be written.
  */
  EventId publish(std::string_view topic, std::string_view data, PublishOptions options = {});

  /// Events of `topic` still in history with id above `since`, oldest first.
  std::vector<Event> history(std::string_view topic, EventId since = 0) const;

  HubStats stats() const;

  executor_type get_executor() const noexcept;

  /// Implementation access for channels and transports; not part of the stable API.
  std::shared_ptr<detail::HubState> const& state() const noexcept { return state_; }

 private:
  std::shared_ptr<detail::HubState> state_;
};

}  // namespace herald

#include <herald/impl/hub.hpp>
