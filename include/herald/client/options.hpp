#pragma once

#include <herald/config.hpp>
#include <herald/event.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::inline v0::client {

class Connector;

/** An absolute http, https, ws or wss URL, split for connecting.

    Example:
      auto url = herald::client::parse_url("https://example.com/api/feed?x=1");
      // url->scheme == "https", url->host == "example.com", url->port == 443,
      // url->target == "/api/feed?x=1"
*/
struct Url {
  /// Lower case: "http", "https", "ws" or "wss".
  std::string scheme;
  /// Lower case; an IPv6 literal without its brackets.
  std::string host;
  /// The explicit port, or the scheme's default (80 or 443).
  std::uint16_t port = 0;
  /// Path and query ("/" when the URL has no path); never the fragment.
  std::string target = "/";

  /// https and wss.
  bool secure() const noexcept { return scheme == "https" || scheme == "wss"; }

  /// The Host header: host, in brackets if IPv6, with ":port" unless it is the default.
  std::string host_header() const {
    std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    if (port != (secure() ? 443 : 80)) out += ":" + std::to_string(port);
    return out;
  }
};

/** Parse an absolute URL with scheme http, https, ws or wss (any case). nullopt for anything
    else: another scheme, no host, a port outside 1..65535, user information ("user:pass@";
    send credentials as headers instead), spaces or control characters. A fragment is dropped. */
std::optional<Url> parse_url(std::string_view text);

/** How a client waits between reconnection attempts: exponential backoff with full jitter.

    Attempt n (0 for the first retry after a drop) waits a uniformly random time in
    [0, min(cap, base * 2^n)]. A connection that stayed open for `reset_after` starts the
    count from 0 again. With `honor_server_retry`, an SSE server's `retry:` replaces `base`
    (and raises `cap` if it is larger), as EventSource does.
*/
struct BackoffOptions {
  /// The ceiling of the first retry's delay; doubles with each failed attempt.
  std::chrono::milliseconds base = std::chrono::milliseconds(500);
  /// No delay is ever longer than this.
  std::chrono::milliseconds cap = std::chrono::seconds(30);
  /// A connection open at least this long counts as healthy: the next drop retries from base.
  std::chrono::milliseconds reset_after = std::chrono::seconds(10);
  /// Use the SSE server's `retry:` as the base.
  bool honor_server_retry = true;
  /// Uniform random 64-bit numbers for the jitter; empty: a std::mt19937_64 seeded per client.
  std::function<std::uint64_t()> random;
};

/// Options of the polling client.
struct PollOptions {
  /// Long-poll wait sent as `wait=`; zero makes short polls.
  std::chrono::milliseconds wait = std::chrono::seconds(25);
  /// Time between short polls (when `wait` is zero and the last answer was complete).
  std::chrono::milliseconds interval = std::chrono::seconds(1);
  /// Events per answer sent as `limit=`; 0 leaves it to the server.
  std::size_t limit = 0;
};

/** What the NegotiatingClient tries and when it looks for a better transport again. */
struct NegotiateOptions {
  /** Transports to try, best first: "websocket", "sse", "polling". The server's negotiation
      answer (`GET url?negotiate`) may narrow the list, never widen it. */
  std::vector<std::string> transports = {"websocket", "sse", "polling"};
  /** After falling back, the first probe of the better transports; each probe that finds none
      working doubles the wait, up to probe_cap. */
  std::chrono::milliseconds probe_after = std::chrono::minutes(2);
  std::chrono::milliseconds probe_cap = std::chrono::minutes(30);
};

/** What every client, whatever its transport, is configured with. Every default is usable.

    Example:
      herald::client::SseClient c{ioc.get_executor(), "http://127.0.0.1:8080/api/feed",
                                  {.topics = {"orders"}, .since = 41}};
*/
struct Options {
  /// Topics to follow. Empty: whatever the endpoint serves a request that names none (the
  /// channel's fixed topics, or every topic); the WebSocket client then follows nothing until
  /// subscribe() is called.
  std::vector<std::string> topics;
  /** Start after this event id (events above it are delivered). Empty: start from now; the
      exactly-once guarantee then holds from the first event (SSE), the subscription
      acknowledgement (WebSocket) or the first answer (polling). */
  std::optional<EventId> since;
  /// Extra request headers, e.g. {"Authorization", "Bearer …"}; sent on every (re)connection.
  std::vector<std::pair<std::string, std::string>> headers;
  BackoffOptions backoff;
  /// How to open connections. Empty: plain TCP (http, ws). For https and wss pass
  /// herald::client::tls(...) from <herald/client/tls.hpp>.
  std::shared_ptr<Connector> connector;
  /// Resolve + connect + TLS and HTTP/WebSocket handshake must finish within this.
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(10);
  /// With nothing received for this long the connection is considered dead and replaced
  /// (SSE servers send heartbeats; WebSocket clients ping after half of it). Zero: never.
  /// Connections whose server advertises its heartbeat use the stall deadline below instead.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  /** Proof of delivery, on connections whose server advertises its heartbeat
      (`Herald-Heartbeat`, which herald's SSE and WebSocket servers send): such a server sends
      data at once, so the client counts as open only once data (an event or a heartbeat)
      arrived, and gives the connection this long for it after the headers or the upgrade
      (client::error::no_data). Later, nothing received for twice the heartbeat period means a
      stalled connection (client::error::stalled). Either way the connection is replaced (the
      NegotiatingClient moves to its next transport). Zero: neither check; idle_timeout only. */
  std::chrono::milliseconds proof_timeout = std::chrono::seconds(5);
  /// Largest event, message or poll answer accepted; larger ones drop the connection.
  std::size_t max_message = 16 * 1024 * 1024;
  /// Polling client only (and the NegotiatingClient's polling).
  PollOptions poll;
  /// NegotiatingClient only.
  NegotiateOptions negotiate;
};

/// The life of a client, as reported to on_state.
enum class State : std::uint8_t {
  /// The first connection attempt is under way.
  connecting,
  /// Connected: the stream is open (SSE, WebSocket) or the last poll was answered.
  open,
  /// The connection dropped or an attempt failed; the next attempt follows after a backoff.
  reconnecting,
  /// Stopped (async_stop, or a permanent error such as 401/403/404); no attempt follows.
  closed,
};

/// "connecting", "open", "reconnecting", "closed".
constexpr std::string_view to_string(State s) noexcept {
  switch (s) {
    case State::connecting: return "connecting";
    case State::open: return "open";
    case State::reconnecting: return "reconnecting";
    case State::closed: return "closed";
  }
  return "?";
}

/** A reset notice: the server could not serve the client's cursor without a gap, so events
    up to `cursor` may be missing. What the server still has follows. */
struct Reset {
  /// The topic it concerns; empty: every topic of the client.
  std::string topic;
  /// Events up to this id may be missing; 0 when the server did not say (polling).
  EventId cursor = 0;
  /// Why: "cursor_expired" (history ran out or another timeline), "slow_consumer", ...
  std::string reason;
};

/// Counters of one client, for monitoring and tests.
struct ClientStats {
  /// Connections established (SSE streams, WebSocket handshakes, first answer per connection).
  std::uint64_t connections = 0;
  /// Drops and failed attempts that led to a reconnect.
  std::uint64_t reconnects = 0;
  /// Events handed to on_event.
  std::uint64_t events = 0;
  /// Events dropped as duplicates (id not above the last one seen for their topic).
  std::uint64_t duplicates = 0;
  /// Reset notices handed to on_reset.
  std::uint64_t resets = 0;
};

}  // namespace herald::client

#include <herald/client/impl/options.hpp>
