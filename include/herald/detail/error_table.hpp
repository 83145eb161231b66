#pragma once

#include <herald/error.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace herald::inline v0::detail {

/** Everything herald says about one error, on every side: the server's HTTP answers, close
    frames and error frames, error_code::message(), conditions, and what the clients map back.
    Every mapping is derived from error_table; a new enumerator is one new row. */
struct ErrorInfo {
  error code;
  /** The name on the wire: "error" in JSON error bodies and WebSocket error frames, and the
      reason of a close frame. Stable: clients match on it, so it is never reworded. */
  std::string_view wire;
  /// What error_code::message() says; free to change.
  std::string_view message;
  std::optional<condition> cond;
  /// The HTTP status of a request refused for this reason.
  unsigned status;
  /// The WebSocket close code (RFC 6455 §7.4.1) of a connection ended for this reason.
  std::uint16_t close_code;
  /** Whether a client that learns only the status or only the close code (no wire name in
      the answer) reports this error; at most one row per status / code says so. Statuses a
      client retries (408, 429, 5xx) have none: the client reports them as unavailable. */
  bool primary_status = false;
  bool primary_close = false;
  /** Whether the refusal is about the server's state, not the request: the same request may
      succeed later. HTTP answers for it carry Retry-After, and an SSE request gets an event
      stream that ends at once with `retry:` (a plain EventSource treats any non-200 answer as
      final and never comes back). */
  bool retryable = false;
};

namespace rows {
inline constexpr auto rejected = condition::rejected;
inline constexpr auto overloaded = condition::overloaded;
inline constexpr auto protocol = condition::protocol_violation;
inline constexpr std::optional<condition> none{};
}  // namespace rows

// Timeouts close with 1001 (what a peer is told when the server gives up on it); 1008 is the
// policy refusal, 1013 "try again later", 1011 the server's own failure.
inline constexpr std::array<ErrorInfo, 26> error_table{{
    {error::unauthorized, "unauthorized", "unauthorized", rows::rejected, 401, 1008, true, false},
    {error::forbidden, "forbidden", "forbidden", rows::rejected, 403, 1008, true, true},
    {error::origin_not_allowed, "origin not allowed", "origin not allowed", rows::rejected, 403, 1008},
    {error::not_found, "not found", "not found", rows::rejected, 404, 1008, true, false},
    {error::method_not_allowed, "method not allowed", "method not allowed", rows::rejected, 405, 1008, true},
    {error::bad_request, "bad request", "bad request", rows::protocol, 400, 1008, true, false},
    {error::bad_topic, "bad topic name", "bad topic name", rows::protocol, 400, 1008},
    {error::bad_cursor, "bad cursor", "bad cursor", rows::protocol, 400, 1008},
    {error::too_many_connections, "too many connections", "too many connections", rows::overloaded, 503, 1013,
     false, false, true},
    {error::too_many_subscriptions, "too many subscriptions", "too many subscriptions", rows::protocol, 400,
     1008},
    {error::message_too_big, "message too big", "message too big", rows::protocol, 413, 1009, true, true},
    {error::bad_control_message, "bad control message", "bad control message", rows::protocol, 400, 1008},
    {error::slow_consumer, "slow consumer", "slow consumer", rows::overloaded, 503, 1013, false, true},
    {error::cursor_expired, "cursor expired", "cursor expired", rows::none, 410, 1011},
    {error::idle_timeout, "idle timeout", "idle timeout", rows::overloaded, 408, 1001},
    {error::write_timeout, "write timeout", "write timeout", rows::overloaded, 503, 1001},
    {error::shutting_down, "shutting down", "shutting down", rows::overloaded, 503, 1001, true, true, true},
    {error::hook_failed, "hook failed", "hook failed", rows::none, 500, 1011, false, true},
    {error::backplane_unavailable, "backplane unavailable", "backplane unavailable", rows::overloaded, 503,
     1013, false, false, true},
    {error::too_many_topics, "too many topics", "too many topics", rows::overloaded, 503, 1013, false, false,
     true},
    {error::host_not_allowed, "host not allowed", "host not allowed", rows::rejected, 421, 1008, true},
    {error::rate_limited, "rate limited", "rate limited", rows::rejected, 429, 1008},
    {error::credentials_expired, "credentials expired", "credentials expired", rows::rejected, 401, 1008},
    // 1012 (Service Restart): the close of a drain, whose reason is JSON (detail/drain.hpp).
    {error::draining, "draining", "draining", rows::overloaded, 503, 1012, false, true, true},
    {error::protocol_error, "protocol error", "websocket protocol error", rows::protocol, 400, 1002},
    {error::invalid_payload, "invalid payload", "invalid websocket payload", rows::protocol, 400, 1007},
}};

/// The row of `e`; nullptr for a value that is not an enumerator.
constexpr ErrorInfo const* error_info(error e) noexcept {
  for (auto const& row : error_table)
    if (row.code == e) return &row;
  return nullptr;
}

/// The row of `ec` if it is herald's; nullptr for other categories and success.
inline ErrorInfo const* error_info(boost::system::error_code ec) noexcept {
  if (!ec || ec.category() != error_category()) return nullptr;
  return error_info(static_cast<error>(ec.value()));
}

/// Whether `ec` is a refusal the client should retry later (ErrorInfo::retryable).
inline bool retryable(boost::system::error_code ec) noexcept {
  auto const* row = error_info(ec);
  return row && row->retryable;
}

/// The error named `wire` on the wire; nullopt for a name herald does not use.
constexpr std::optional<error> error_from_wire(std::string_view wire) noexcept {
  for (auto const& row : error_table)
    if (row.wire == wire) return row.code;
  return std::nullopt;
}

/// The error a client reports for an HTTP status alone; nullopt when no row claims it.
constexpr std::optional<error> error_from_status(unsigned status) noexcept {
  for (auto const& row : error_table)
    if (row.primary_status && row.status == status) return row.code;
  return std::nullopt;
}

/// The error a client reports for a close code alone; nullopt when no row claims it.
constexpr std::optional<error> error_from_close_code(std::uint16_t code) noexcept {
  for (auto const& row : error_table)
    if (row.primary_close && row.close_code == code) return row.code;
  return std::nullopt;
}

// The table is complete and ordered by value; a client's reverse maps are unambiguous.
static_assert([] {
  for (std::size_t i = 0; i < error_table.size(); ++i) {
    if (static_cast<std::size_t>(error_table[i].code) != i + 1) return false;
    for (std::size_t j = 0; j < i; ++j) {
      auto const& a = error_table[i];
      auto const& b = error_table[j];
      if (a.wire == b.wire) return false;
      if (a.primary_status && b.primary_status && a.status == b.status) return false;
      if (a.primary_close && b.primary_close && a.close_code == b.close_code) return false;
    }
  }
  return true;
}(), "herald: error_table must list every herald::error once, in order, with unique wire names");

inline std::string ErrorCategory::message(int ev) const {
  auto const* row = error_info(static_cast<error>(ev));
  return row ? std::string(row->message) : "herald error";
}

inline boost::system::error_condition ErrorCategory::default_error_condition(int ev) const noexcept {
  auto const* row = error_info(static_cast<error>(ev));
  if (row && row->cond) return *row->cond;
  return {ev, *this};
}

}  // namespace herald::detail
