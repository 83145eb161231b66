#pragma once

// The heartbeat wire format, as pure functions both sides use: how a server advertises its
// heartbeat period and what a data-level heartbeat looks like. A client that knows the period
// can tell a quiet stream (heartbeats still arrive) from a stuck one (nothing arrives), which a
// proxy that lets a WebSocket upgrade or SSE headers through and then holds everything back
// would otherwise hide behind an "open" transport.

#include <herald/detail/decimal.hpp>
#include <herald/detail/http.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace herald::inline v0::detail {

/** Response header of an SSE stream (always) and of a WebSocket upgrade that asked for
    heartbeats: the period in milliseconds (as SSE's `retry:`). The server sends something at
    least this often while the connection is open, and its first bytes at once. */
inline constexpr std::string_view heartbeat_header = "Herald-Heartbeat";

/** Query parameter with which a client asks for data-level heartbeats, the ones a browser's
    scripts can see: an SSE `heartbeat` event instead of a comment, a WebSocket text frame
    instead of relying on pings (which browser scripts never see). */
inline constexpr std::string_view heartbeat_parameter = "heartbeat";

/// The longest period a client believes (a larger header value is treated as none).
inline constexpr std::chrono::milliseconds max_heartbeat = std::chrono::hours(1);

/** {"heartbeat":<period in ms>}: the WebSocket heartbeat frame and the SSE heartbeat event's
    data. Carries the period so that a client that cannot read response headers (a browser)
    learns it from the first heartbeat, which the server sends as soon as the stream opens. */
inline std::string heartbeat_message(std::chrono::milliseconds period) {
  std::string out = R"({"heartbeat":)";
  append_decimal(out, static_cast<std::uint64_t>(period.count()));
  out += '}';
  return out;
}

/** An advertised period: decimal milliseconds, 1..max_heartbeat. nullopt for anything else,
    which a client treats as a server that promises no heartbeat. */
inline std::optional<std::chrono::milliseconds> parse_heartbeat(std::string_view value) noexcept {
  auto const ms = parse_event_id(value);
  if (!ms || *ms == 0 || *ms > static_cast<std::uint64_t>(max_heartbeat.count())) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(*ms));
}

/** Whether a parsed message is a heartbeat: an object whose only member is "heartbeat", a
    period as parse_heartbeat takes it. Returns the period. */
inline std::optional<std::chrono::milliseconds> heartbeat_period(nlohmann::json const& doc) {
  if (!doc.is_object() || doc.size() != 1) return std::nullopt;
  auto const it = doc.find("heartbeat");
  if (it == doc.end() || !it->is_number_unsigned()) return std::nullopt;
  auto const ms = it->get<std::uint64_t>();
  if (ms == 0 || ms > static_cast<std::uint64_t>(max_heartbeat.count())) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(ms));
}

/// Whether a request's query asks for data-level heartbeats (`?heartbeat`, not `heartbeat=0`).
inline bool wants_heartbeat(std::string_view target) {
  auto const q = parse_query(target_query(target));
  if (!q) return false;
  for (auto const& [key, value] : *q)
    if (key == heartbeat_parameter) return query_flag(value);
  return false;
}

}  // namespace herald::detail
