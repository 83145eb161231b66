#pragma once

#include <herald/config.hpp>
#include <herald/detail/subscriber.hpp>
#include <herald/hooks.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace herald {

/// Limits of a channel. Each default is safe for a public server.
struct Limits {
  /// Connections the channel holds at once; more are answered 503.
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
  Limits limits;
  OverflowPolicy overflow = OverflowPolicy::disconnect;
};

}  // namespace herald
