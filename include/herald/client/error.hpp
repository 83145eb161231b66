#pragma once

#include <herald/config.hpp>
#include <herald/error.hpp>

#include <boost/system/error_code.hpp>

#include <string>
#include <type_traits>

namespace herald::inline v0::client {

/** Errors only clients report. Where herald::error already names the problem (unauthorized,
    forbidden, not_found, slow_consumer, idle_timeout, message_too_big, shutting_down,
    hook_failed, ...), clients report that code instead, so `ec == herald::condition::rejected`
    works on both sides. */
enum class error {
  /// The URL needs TLS (https, wss) and the client has no TLS connector (herald/client/tls.hpp).
  tls_not_configured = 1,
  /// The server answered with an HTTP status the client cannot use (not 200 / 101).
  unexpected_status,
  /// An SSE answer whose Content-Type is not text/event-stream.
  bad_content_type,
  /// The server sent something that is not herald's protocol (malformed JSON, envelope, body).
  bad_response,
  /// Resolving, connecting, the TLS or WebSocket handshake took longer than connect_timeout.
  connect_timeout,
  /// The server ended the stream (SSE end of body); the client reconnects.
  stream_ended,
  /// The server is unavailable for now (HTTP 429 or 5xx); the client retries.
  unavailable,
  /** The connection opened (headers, upgrade) but no data followed within proof_timeout,
      although the server advertised a heartbeat: something in between holds data back. */
  no_data,
  /// Nothing arrived for twice the server's advertised heartbeat period: the stream stalled.
  stalled,
};

/// The category of herald::client::error, named "herald.client".
boost::system::error_category const& error_category() noexcept;

inline boost::system::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

namespace detail {

class ClientErrorCategory final : public boost::system::error_category {
 public:
  // A fixed id keeps categories equal across shared-object boundaries ("herldCL1").
  constexpr ClientErrorCategory() noexcept : error_category(0x6865726c64434c31ull) {}

  char const* name() const noexcept override { return "herald.client"; }

  std::string message(int ev) const override {
    switch (static_cast<error>(ev)) {
      case error::tls_not_configured: return "tls not configured for an https or wss url";
      case error::unexpected_status: return "unexpected http status";
      case error::bad_content_type: return "not an event stream";
      case error::bad_response: return "malformed answer from the server";
      case error::connect_timeout: return "connect timeout";
      case error::stream_ended: return "the server ended the stream";
      case error::unavailable: return "server unavailable";
      case error::no_data: return "no data after the connection opened";
      case error::stalled: return "the stream stalled";
    }
    return "herald client error";
  }

  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    switch (static_cast<error>(ev)) {
      case error::unavailable:
      case error::connect_timeout:
        return herald::condition::overloaded;
      case error::bad_content_type:
      case error::bad_response:
        return herald::condition::protocol_violation;
      default:
        break;
    }
    return {ev, *this};
  }
};

}  // namespace detail

inline boost::system::error_category const& error_category() noexcept {
  static detail::ClientErrorCategory const instance;
  return instance;
}

}  // namespace herald::client

template <>
struct boost::system::is_error_code_enum<herald::client::error> : std::true_type {};
