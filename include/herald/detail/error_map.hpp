#pragma once

#include <herald/error.hpp>

#include <boost/beast/http/status.hpp>

#include <cstdint>

namespace herald::detail {

/// The one place that says which HTTP status answers which herald error.
inline http::status to_http_status(boost::system::error_code ec) noexcept {
  if (ec.category() != error_category()) return http::status::internal_server_error;
  switch (static_cast<error>(ec.value())) {
    case error::unauthorized: return http::status::unauthorized;
    case error::forbidden:
    case error::origin_not_allowed: return http::status::forbidden;
    case error::not_found: return http::status::not_found;
    case error::method_not_allowed: return http::status::method_not_allowed;
    case error::bad_request:
    case error::bad_topic:
    case error::bad_cursor:
    case error::too_many_subscriptions:
    case error::bad_control_message: return http::status::bad_request;
    case error::message_too_big: return http::status::payload_too_large;
    case error::too_many_connections:
    case error::shutting_down:
    case error::backplane_unavailable:
    case error::too_many_topics: return http::status::service_unavailable;
    default: return http::status::internal_server_error;
  }
}

/** The one place that says which WebSocket close code (RFC 6455 §7.4.1) ends a connection for
    which reason. Success is a normal close (1000). Timeouts have no code of their own: the
    connection is cut without a close frame, and 1001 is what a peer would be told. */
inline std::uint16_t to_close_code(boost::system::error_code ec) noexcept {
  if (!ec) return 1000;
  if (ec.category() != error_category()) return 1011;
  switch (static_cast<error>(ec.value())) {
    case error::shutting_down:
    case error::idle_timeout:
    case error::write_timeout: return 1001;
    case error::unauthorized:
    case error::forbidden:
    case error::origin_not_allowed:
    case error::not_found:
    case error::method_not_allowed:
    case error::bad_request:
    case error::bad_topic:
    case error::bad_cursor:
    case error::too_many_subscriptions:
    case error::bad_control_message: return 1008;
    case error::message_too_big: return 1009;
    case error::too_many_connections:
    case error::slow_consumer:
    case error::backplane_unavailable:
    case error::too_many_topics: return 1013;
    default: return 1011;
  }
}

}  // namespace herald::detail
