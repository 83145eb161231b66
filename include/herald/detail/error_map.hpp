#pragma once

#include <herald/detail/error_table.hpp>
#include <herald/error.hpp>

#include <boost/beast/http/status.hpp>

#include <cstdint>
#include <string_view>

namespace herald::inline v0::detail {

/// The HTTP status that refuses a request for `ec` (error_table); 500 for other errors.
inline http::status to_http_status(boost::system::error_code ec) noexcept {
  auto const* row = error_info(ec);
  return row ? static_cast<http::status>(row->status) : http::status::internal_server_error;
}

/** The WebSocket close code (RFC 6455 §7.4.1) that ends a connection for `ec` (error_table).
    Success is a normal close (1000); an error of another category is the server's (1011). */
inline std::uint16_t to_close_code(boost::system::error_code ec) noexcept {
  if (!ec) return 1000;
  auto const* row = error_info(ec);
  return row ? row->close_code : 1011;
}

/** What the wire calls `ec`: the table's stable name for herald's errors (JSON "error"
    fields, close reasons), the message for others (they carry no promise of stability). */
inline std::string wire_name(boost::system::error_code ec) {
  if (auto const* row = error_info(ec)) return std::string(row->wire);
  return ec.message();
}

}  // namespace herald::detail
