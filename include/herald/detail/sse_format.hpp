#pragma once

#include <herald/detail/base64.hpp>
#include <herald/detail/decimal.hpp>
#include <herald/detail/heartbeat.hpp>
#include <herald/detail/json_format.hpp>
#include <herald/detail/stored_event.hpp>
#include <herald/event.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace herald::inline v0::detail {

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

/** The whole body of a refusal an EventSource should retry: a comment naming `reason` (wire
    names are plain ASCII without line breaks; comments reach no application handler, so the
    refusal cannot pass for an event) and the `retry:` it follows once the stream ends. */
inline std::string sse_refusal(std::string_view reason, std::chrono::milliseconds delay) {
  std::string out = ": refused: ";
  out += reason;
  out += '\n';
  out += sse_retry(delay);
  return out;
}

/// A comment line: ignored by clients, keeps proxies and NAT tables from timing out.
inline constexpr std::string_view sse_heartbeat = ": ping\n\n";

/** The heartbeat a stream that asked for it (`?heartbeat`) gets instead of the comment: an
    event of type `heartbeat` whose data is {"heartbeat":<period ms>}, so that a page's script
    sees it (`addEventListener("heartbeat", …)`). It has no `id:`, so EventSource's
    Last-Event-ID stays the last real event's, and `onmessage` never sees it (typed events go to
    their listeners only). */
inline std::string sse_heartbeat_event(std::chrono::milliseconds period) {
  return "event: heartbeat\ndata: " + heartbeat_message(period) + "\n\n";
}

/** One event whose data is its JSON envelope ({"id","topic","event","data"}, as WebSocket and
    polling carry it), as a plain message: a stream of several topics (`?envelope`) tells each
    event's topic this way, and `onmessage` still sees every event. */
inline std::string encode_sse_envelope(Event const& ev) {
  std::string out;
  out.reserve(json_envelope_size_hint(ev) + 32);
  out += "id: ";
  append_decimal(out, ev.id);
  out += '\n';
  // A JSON payload may hold line breaks (pretty-printed): each becomes a data: line, and the
  // joined lines are the same JSON.
  append_sse_data(out, encode_json_envelope(ev));
  out += '\n';
  return out;
}

/// The event-stream framing as a wire format, bare and enveloped.
inline constexpr WireFormat sse_wire{"sse"};
inline constexpr WireFormat sse_envelope_wire{"sse_envelope", 1};

/// The event-stream bytes of `ev`: encoded once per event and form, then shared by every stream.
inline std::string const& sse_bytes(StoredEvent const& ev, bool envelope = false) {
  return envelope ? ev.encoded(sse_envelope_wire, encode_sse_envelope) : ev.encoded(sse_wire, encode_sse);
}

}  // namespace herald::detail
