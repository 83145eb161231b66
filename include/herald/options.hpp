#pragma once

#include <herald/config.hpp>
#include <herald/hooks.hpp>
#include <herald/overflow.hpp>
#include <herald/tickets.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace herald::inline v0 {

/** How long a refused client is told to wait before it retries, unless configured: long enough
    that a full or restarting server is not hit again at once by every refused client (a browser
    EventSource would come back after its default ~3 s, all at once), short enough that clients
    are back within seconds of a slot freeing up or a restart completing. */
inline constexpr std::chrono::seconds default_retry_after{5};

/// Limits of a channel. Each default is safe for a public server.
struct Limits {
  /// Connections the channel holds at once; more are refused (retryable, see retry_after).
  std::size_t max_connections = 10'000;
  /// Topics one connection may subscribe to.
  std::size_t max_subscriptions = 64;
  /// Longest topic name accepted from clients.
  std::size_t max_topic_length = 256;
  /// Events one connection may have queued before the overflow policy applies.
  std::size_t queue_events = HERALD_DEFAULT_QUEUE_EVENTS;
  /// Bytes one connection may have queued before the overflow policy applies.
  std::size_t queue_bytes = HERALD_DEFAULT_QUEUE_BYTES;
  /// A write that does not complete in this time closes the connection (stalled peer).
  std::chrono::milliseconds write_timeout = std::chrono::seconds(30);
  /** What a refusal the client should retry (connection limit, shutdown, backplane
      unavailable) asks it to wait: `Retry-After` on a 503, and on SSE the `retry:` of a
      200 event stream that ends at once, which a browser's EventSource follows (it treats
      a 503 as final). Positive. */
  std::chrono::seconds retry_after = default_retry_after;
};

/** How a channel answers browsers' cross-origin requests from the origins allowed_origins lets
    in. Methods are what the path serves; the request headers a transport reads (If-None-Match,
    Last-Event-ID, Content-Type) are allowed by the transport itself. */
struct CorsOptions {
  /// Further request headers a preflight allows (the application's own auth headers, say).
  std::vector<std::string> headers = {"Authorization", "Cache-Control"};
  /// How long browsers may cache a preflight answer (Access-Control-Max-Age).
  std::chrono::seconds max_age = std::chrono::minutes(10);
  /** Send Access-Control-Allow-Credentials: true (cookies, HTTP auth) to origins named in
      allowed_origins or the same origin; never to one let in by "*" alone. */
  bool credentials = true;
};

/** What every channel, whatever its transport, is configured with.

    Example:
      herald::Channel<herald::Sse> feed{hub, "/api/feed", {.topics = {"orders"}}};
*/
struct ChannelOptions {
  /** Fixed topics. A request with no `topic` query parameter gets these; a request that names
      topics may only narrow them. With no fixed topics, requests name their own with
      `?topic=a&topic=b`, and a request that names none receives every topic of the hub. */
  std::vector<std::string> topics;
  /// Checks every request before any response byte. Empty: everyone is allowed.
  AuthorizeHook authorize;
  /** Single-use tickets (TicketBook) this channel redeems: a request with `?ticket=…` is
      admitted by its ticket alone (principal, topics and expiry from its Grant; the authorize
      hook does not run), or refused 401 when the ticket is unknown, used or expired. A
      request without one goes to the authorize hook, or, without a hook, is refused 401. */
  std::shared_ptr<TicketBook> tickets;
  /** Renews an open connection whose Verdict (or ticket Grant) expires. Empty: the connection
      is closed at its expiry with error::credentials_expired. */
  ReauthorizeHook reauthorize;
  /// Checks every topic a request asks for. Empty: every topic is allowed.
  AuthorizeTopicHook authorize_topic;
  /** Origins browsers may connect from, as "scheme://host[:port]"; "*" allows any. Empty:
      same origin only (the Origin must match the Host header). Requests without Origin pass.
      CORS answers carry Access-Control-Allow-Credentials only for an origin named here (or the
      same origin): one let in by "*" alone gets `Access-Control-Allow-Origin: *`, so browsers
      let any page read the stream but never with the user's cookies. A WebSocket upgrade or a
      POST has no such guard (the browser sends cookies and the page cannot read the answer, but
      the request happens): with "*", authenticate with something other than cookies. */
  std::vector<std::string> allowed_origins;
  /** The names this server answers for, matched against each request's Host header before
      anything else: "example.com" (any port), "example.com:8443" (that port only),
      "*.example.com" (any subdomain, not example.com itself), "[::1]:8080". Any other Host,
      or none, is refused with 421 Misdirected Request (error::host_not_allowed), before any
      upgrade, stream or poll answer. Empty: every Host is answered, which leaves the
      same-origin default of allowed_origins open to DNS rebinding (a page on a name the
      attacker points at this server is "same origin" with it): list the public names of a
      server that browsers reach, and "localhost"/"127.0.0.1" for one they reach locally. */
  std::vector<std::string> allowed_hosts;
  CorsOptions cors;
  Limits limits;
  /// What a connection over Limits::queue_events or queue_bytes gets (herald/overflow.hpp).
  OverflowPolicy overflow = OverflowPolicy::disconnect;
};

}  // namespace herald
