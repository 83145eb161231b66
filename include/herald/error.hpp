#pragma once

#include <herald/config.hpp>

#include <boost/system/error_code.hpp>

#include <cstdint>
#include <type_traits>

namespace herald::inline v0 {

/** Errors herald reports on async paths, in hooks and in logs.

    Retryable refusals (too_many_connections, shutting_down, backplane_unavailable,
    too_many_topics, draining: the same request may succeed later) are answered 503 with Retry-After
    (Limits::retry_after), and on SSE as a 200 event stream that ends at once after `retry:`,
    which a browser's EventSource follows where it would give up on a 503. */
enum class error {
  /// The authorize hook asked for credentials (HTTP 401).
  unauthorized = 1,
  /// The authorize hook or a topic check refused the request (HTTP 403).
  forbidden,
  /// The request's Origin is not on the channel's allowlist (HTTP 403).
  origin_not_allowed,
  /// No route serves the requested path (HTTP 404).
  not_found,
  /// The method is not served on this path (HTTP 405).
  method_not_allowed,
  /// A query parameter or header had a value herald cannot use (HTTP 400).
  bad_request,
  /// A topic name is empty, too long or contains control characters (HTTP 400).
  bad_topic,
  /// A cursor (Last-Event-ID, since) is not a decimal event id (HTTP 400).
  bad_cursor,
  /// The server or channel holds as many connections as it may (HTTP 503, retryable).
  too_many_connections,
  /// The connection asked for more topics than the channel allows (HTTP 400).
  too_many_subscriptions,
  /// A message or request exceeded the size limit (HTTP 413, WebSocket 1009).
  message_too_big,
  /// A client control message could not be understood.
  bad_control_message,
  /// The connection fell behind its bounded queue and was closed.
  slow_consumer,
  /// The cursor is older than the retained history; a reset notice was sent.
  cursor_expired,
  /// The peer sent nothing within the idle timeout.
  idle_timeout,
  /// A write did not complete within the write timeout.
  write_timeout,
  /// The server or channel is shutting down (HTTP 503, retryable; WebSocket 1001).
  shutting_down,
  /// A user hook threw; the connection was refused or closed (HTTP 500).
  hook_failed,
  /** The hub's backplane (e.g. Redis) could not be reached in time: a publish that completes
      with it was not published; a connection closed with it should resume later (HTTP 503,
      WebSocket 1013). */
  backplane_unavailable,
  /** The hub retains history for as many topics as HubOptions::max_topics allows: a publish
      to a new topic was refused (HTTP 503, WebSocket 1013: topics are forgotten as their
      history ages out, so a later try may succeed). */
  too_many_topics,
  /** The request's Host is not on the channel's allowed_hosts (HTTP 421 Misdirected Request):
      a DNS-rebinding page names its own host, which this server does not serve. */
  host_not_allowed,
  /** A WebSocket client sent more messages or bytes than WebSocketOptions::inbound_rate
      allows: an error frame, then close 1008 (HTTP 429). */
  rate_limited,
  /** The connection's authorization ended (Verdict::until, a ticket's Grant::expires) and was
      not renewed (ChannelOptions::reauthorize): an SSE stream gets a final `close` event
      naming it, a WebSocket close 1008 with it as reason; a request whose verdict has already
      expired is refused with 401. */
  credentials_expired,
  /** The server is draining (Server::async_drain): the connection was closed, or a new one
      refused, with a delay to wait and the cursor to resume from (HTTP 503 with Retry-After,
      WebSocket 1012 Service Restart, SSE a final `herald.drain` event; retryable). */
  draining,
  /** A WebSocket client broke RFC 6455's framing rules (unmasked or reserved bits, unknown
      opcode, a bad close frame, continuation out of place): close 1002. */
  protocol_error,
  /** A WebSocket client's text message (or close reason) is not UTF-8, or its compressed
      message does not inflate: close 1007. */
  invalid_payload,
};

/// Groups of errors, for `ec == herald::condition::rejected` style tests.
enum class condition {
  /// The request was refused by policy (auth, origin, routing, limits on input).
  rejected = 1,
  /// The server shed load (connection limits, slow consumers, timeouts).
  overloaded,
  /// The peer broke the protocol (bad input, oversized messages).
  protocol_violation,
};

/// The category of herald::error, named "herald".
boost::system::error_category const& error_category() noexcept;

/// The category of herald::condition, named "herald.condition".
boost::system::error_category const& condition_category() noexcept;

inline boost::system::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

inline boost::system::error_condition make_error_condition(condition c) noexcept {
  return {static_cast<int>(c), condition_category()};
}

}  // namespace herald

template <>
struct boost::system::is_error_code_enum<herald::error> : std::true_type {};

template <>
struct boost::system::is_error_condition_enum<herald::condition> : std::true_type {};

#include <herald/impl/error.hpp>
