#pragma once

#include <herald/error.hpp>

#include <boost/beast/http/status.hpp>

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
    case error::shutting_down: return http::status::service_unavailable;
    default: return http::status::internal_server_error;
  }
}

}  // namespace herald::detail
