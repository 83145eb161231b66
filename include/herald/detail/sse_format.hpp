#pragma once

#include <herald/detail/base64.hpp>
#include <herald/detail/decimal.hpp>
#include <herald/event.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace herald::detail {

/** Append `data` as one `data:` line per payload line. CR, LF and CRLF all end a line, as they
    do for the WHATWG parser, so no payload can smuggle in a field or end the event early. */
inline void append_sse_data(std::string& out, std::string_view data) {
  std::size_t start = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    char const c = data[i];
    if (c != '\r' && c != '\n') continue;
    out += "data: ";
    out.append(data.substr(start, i - start));
    out += '\n';
    if (c == '\r' && i + 1 < data.size() && data[i + 1] == '\n') ++i;
    start = i + 1;
  }
  // Always at least one data line: an event without one is never dispatched by EventSource.
  out += "data: ";
  out.append(data.substr(start));
  out += '\n';
}

/// Keep only what may stand in a single-line field (id, event): no CR, LF or NUL.
inline void append_sse_field(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  for (char c : value)
    if (c != '\r' && c != '\n' && c != '\0') out += c;
  out += '\n';
}

/// One event in WHATWG event-stream framing. Binary payloads are sent as base64.
inline std::string encode_sse(Event const& ev) {
  std::string out;
  out.reserve(ev.data.size() + ev.type.size() + 48);
  out += "id: ";
  append_decimal(out, ev.id);
  out += '\n';
  if (!ev.type.empty()) append_sse_field(out, "event", ev.type);
  if (ev.kind == PayloadKind::binary) append_sse_data(out, base64_encode(ev.data));
  else append_sse_data(out, ev.data);
  out += '\n';
  return out;
}

/// The reconnection delay for EventSource, as a `retry:` field in its own block.
inline std::string sse_retry(std::chrono::milliseconds delay) {
  return "retry: " + std::to_string(delay.count()) + "\n\n";
}

/// A comment line: ignored by clients, keeps proxies and NAT tables from timing out.
inline constexpr std::string_view sse_heartbeat = ": ping\n\n";

}  // namespace herald::detail
