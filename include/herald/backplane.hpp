#pragma once

#include <herald/config.hpp>
#include <herald/event.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace herald::inline v0 {

/** What a backplane's history holds above a cursor: the answer to Backplane::async_history. */
struct BackplaneHistory {
  /** Events of the requested topics above the cursor, in id order, each with its topic. When
      the cursor is above `last` (it came from another timeline), every retained event. */
  std::vector<Event> events;
  /// The highest id the backplane had handed out when it read: its "now".
  EventId last = 0;
  /// Events of the requested topics at or below this id may be missing (trimmed or lost).
  EventId floor = 0;
  /** Every event of the requested topics up to this id is in `events`; below `last` only when
      the read was cut by its limit. */
  EventId complete_to = 0;
};

/** The hub's side of a backplane: where events from every node (this one included) come in.

    Called on the backplane's executor, one call at a time. The hub never calls back into the
    backplane from these functions.
*/
class BackplaneSink {
 public:
  virtual ~BackplaneSink() = default;

  /** Events in id order, each carrying the id the backplane gave it: the one ingress of a hub
      with a backplane. Events at or below what the hub has already taken are ignored. */
  virtual void ingress(std::vector<Event>&& events) = 0;

  /** The backplane's stream continues after `position`, and what came before it may be
      incomplete on this node: the hub serves cursors below it from the backplane's history
      from now on. `initial` marks the first call (where the stream starts, nothing was lost);
      any later call means events may have been lost, and every live connection gets a reset
      notice. */
  virtual void discontinuity(EventId position, bool initial) = 0;
};

/** The seam through which several processes share one hub: ids, history and fan-out across
    nodes (herald::redis::Backplane is the implementation herald ships).

    A hub with a backplane numbers nothing itself. Publishing goes to the backplane, which
    gives the event its id and stores it; every node, the publishing one included, then
    receives it through its sink, in id order, and fans it out to its connections. Cursors the
    hub's memory cannot serve are read from the backplane's history.

    Contract:
      - start() is called once, by the Hub constructor; from then on the backplane connects
        (and reconnects) by itself and calls the sink. stop() ends that; afterwards every
        pending and later operation completes with net::error::operation_aborted.
      - Handlers complete on the backplane's executor (or the handler's associated executor),
        never inside the initiating call, each exactly once, within a bounded time.
      - async_publish completes with the event's id, or with error::backplane_unavailable when
        the event was not published (which the implementation must be able to tell: a publish
        that completes with an error must never reach a subscriber later).
      - Every function may be called from any thread.
*/
class Backplane {
 public:
  using publish_handler = net::any_completion_handler<void(boost::system::error_code, EventId)>;
  using history_handler = net::any_completion_handler<void(boost::system::error_code, BackplaneHistory)>;

  virtual ~Backplane() = default;

  /** Begin: connect and deliver events to `sink` for as long as it lives. The hub's history
      bounds (HubOptions::history_events, history_age) say what to retain per topic. */
  virtual void start(std::weak_ptr<BackplaneSink> sink, std::size_t history_events,
                     std::chrono::steady_clock::duration history_age) = 0;

  /// Disconnect for good.
  virtual void stop() = 0;

  /** Give `event` (whose id is ignored) an id above every id handed out so far and above
      `known` (the highest id the calling node has seen), store it and send it to every node. */
  virtual void async_publish(Event event, EventId known, publish_handler handler) = 0;

  /** Events of `topics` (every topic when empty) above `since`, at most `limit` per topic
      (0: all retained). */
  virtual void async_history(std::vector<std::string> topics, EventId since, std::size_t limit,
                             history_handler handler) = 0;
};

}  // namespace herald
