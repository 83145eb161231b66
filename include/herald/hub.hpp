#pragma once

#include <herald/config.hpp>
#include <herald/event.hpp>
#include <herald/log.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herald::inline v0 {

class Backplane;

namespace detail {
class HubState;
}

/// How a hub numbers and retains events. Every field has a safe default.
struct HubOptions {
  /// Events kept per topic for resume; 0 keeps none.
  std::size_t history_events = HERALD_DEFAULT_HISTORY_EVENTS;
  /// Events older than this are dropped from history; zero keeps them regardless of age.
  std::chrono::steady_clock::duration history_age = std::chrono::minutes(10);
  /** Topics the hub retains history for, at most. A publish that would add one more fails
      with error::too_many_topics. A topic with nothing retained and no subscriber on this
      hub is forgotten (its events age out after history_age), so this bounds the topics a
      hub remembers at once, not the topics it ever sees. The default holds tens of thousands
      of live rooms; at about 2 KB of bookkeeping per topic it bounds that part to ~200 MB. */
  std::size_t max_topics = 100'000;
  /** Bytes of retained history over every topic (payload, topic name, event type and ~250
      bytes of bookkeeping per event; each wire format a client uses adds one encoded copy on
      top). Beyond it the history of the topics published least recently is evicted first:
      history is what resumes are served from, so a full history costs old cursors a reset
      notice, never publishing itself. An event larger than the whole budget fails with
      error::message_too_big. */
  std::size_t max_history_bytes = 256u * 1024u * 1024u;
  /// File that keeps ids increasing across restarts. Empty: ids start from the wall clock (µs).
  std::string id_file;
  /// Lowest first id; 0 lets id_file or the clock decide (with a backplane: the lowest id
  /// this node asks the backplane for).
  EventId first_id = 0;
  /** Ids reserved per write of id_file. The next block is written when half of this one is
      used, outside the hub's lock, by the publish that crossed the half: that publish returns
      after the write; the others draw reserved ids meanwhile. */
  std::uint64_t id_block = 4096;
  /** Writes id_file's mark durably; empty: write-temp, fsync, rename. A seam for tests (a slow
      disk); it must throw std::system_error on failure. */
  std::function<void(std::string const& path, EventId mark)> id_writer;
  /// Clock for history age; empty means std::chrono::steady_clock::now. Tests inject one.
  std::function<std::chrono::steady_clock::time_point()> clock;
  /// Log hook (none by default) and the lowest level it receives.
  LogHook log;
  LogLevel log_level = LogLevel::info;
  /** Share this hub with other processes through a backplane (herald::redis::Backplane):
      ids, history and fan-out then span every node. Null (the default): this process is the
      whole hub. One backplane object serves one Hub; id_file must be empty with it. */
  std::shared_ptr<Backplane> backplane;
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
  /// Reset notices sent (expired cursors, OverflowPolicy::reset, backplane discontinuities).
  std::uint64_t resets = 0;
  /// The same notices by reason (the "reason" of the notice's data).
  struct ResetReasons {
    std::uint64_t cursor_expired = 0;
    std::uint64_t slow_consumer = 0;
    std::uint64_t backplane_gap = 0;
  };
  ResetReasons reset_reasons;
  /// Times the backplane's stream broke and live connections were sent a reset notice.
  std::uint64_t discontinuities = 0;
  /// Topics the hub tracks now: those with retained history or a local subscriber.
  std::size_t topics = 0;
  /// What the retained history counts against HubOptions::max_history_bytes.
  std::size_t history_bytes = 0;
  /// The last id handed out (with a backplane: the last id this node has taken in).
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
      its overflow policy. Throws std::invalid_argument for an invalid topic name or event
      type, boost::system::system_error with error::too_many_topics or
      error::message_too_big when the event does not fit the hub's budgets (HubOptions::
      max_topics, max_history_bytes), and std::system_error if the id file cannot be written.

      With a backplane the id is assigned remotely: publish() checks the budgets, starts
      async_publish, returns 0 at once and never blocks; a publish that fails later is logged
      (LogLevel::warning) and counted by the backplane. Use async_publish to learn the id or
      the error.
  */
  EventId publish(std::string_view topic, std::string_view data, PublishOptions options = {});

  /** publish() that reports every herald error in `ec` (bad_topic, bad_request,
      too_many_topics, message_too_big) and returns 0 then, instead of throwing; for code that
      publishes what clients send. Still throws std::system_error if the id file cannot be
      written. */
  EventId publish(std::string_view topic, std::string_view data, PublishOptions options,
                  boost::system::error_code& ec);

  /** Publish, and complete with the event's id once it is stored: at once without a
      backplane; after the backplane's round trip with one.

      Completion signature: void(boost::system::error_code, EventId). Errors:
      error::bad_topic (invalid topic name), error::bad_request (invalid event type),
      error::too_many_topics and error::message_too_big (the hub's budgets, see HubOptions),
      error::backplane_unavailable (the backplane could not be reached in time: the event was
      not published), net::error::operation_aborted (the backplane was stopped). The handler
      never runs inside this call. Works with every completion token (callbacks,
      net::use_future, net::use_awaitable, net::deferred).
      Thread safety: may be called from any thread.
  */
  template <class Token>
  auto async_publish(std::string_view topic, std::string_view data, PublishOptions options, Token&& token);

  /// async_publish with default PublishOptions.
  template <class Token>
  auto async_publish(std::string_view topic, std::string_view data, Token&& token) {
    return async_publish(topic, data, PublishOptions{}, std::forward<Token>(token));
  }

  /// Events of `topic` still in this process's history with id above `since`, oldest first.
  std::vector<Event> history(std::string_view topic, EventId since = 0) const;

  HubStats stats() const;

  executor_type get_executor() const noexcept;

  /// Implementation access for channels and transports; not part of the stable API.
  std::shared_ptr<detail::HubState> const& state() const noexcept { return state_; }

 private:
  using publish_handler = net::any_completion_handler<void(boost::system::error_code, EventId)>;
  static void start_publish(std::shared_ptr<detail::HubState> const& state, Event&& event, publish_handler handler);

  std::shared_ptr<detail::HubState> state_;
};

template <class Token>
auto Hub::async_publish(std::string_view topic, std::string_view data, PublishOptions options, Token&& token) {
  Event event;
  event.topic = topic;
  event.type = options.type;
  event.data = data;
  event.kind = options.kind;
  return net::async_initiate<Token, void(boost::system::error_code, EventId)>(
      [](auto handler, std::shared_ptr<detail::HubState> const& state, Event ev) {
        start_publish(state, std::move(ev), publish_handler(std::move(handler)));
      },
      token, state_, std::move(event));
}

}  // namespace herald

#include <herald/impl/hub.hpp>
