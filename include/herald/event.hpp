#pragma once

#include <herald/config.hpp>

#include <cstdint>
#include <string>

namespace herald::inline v0 {

/** The id of an event: strictly increasing per hub, and the cursor of every transport.

    0 never names an event; as a cursor it means "before everything".
*/
using EventId = std::uint64_t;

/// How an event's payload is to be carried on the wire.
enum class PayloadKind : std::uint8_t {
  /// JSON if the payload parses as JSON, otherwise text. The default of publish().
  automatic,
  /// Text (UTF-8); embedded as a JSON string in JSON envelopes.
  text,
  /// A JSON document; embedded as-is (not re-quoted) in JSON envelopes.
  json,
  /// Bytes; binary frames on WebSocket, base64 on text-only transports.
  binary,
};

/// What an event is: a message the application published, or a notice from herald.
enum class EventKind : std::uint8_t {
  /// Published through Hub::publish.
  message,
  /// The client's cursor could not be served without a gap: events were lost to it.
  reset,
  /** A slow consumer's queue dropped events (OverflowPolicy::drop_oldest): the notice names,
      per topic, the first and last id dropped and how many. */
  gap,
};

/** One published event.

    `data` is the payload as published; `kind` is never `automatic` on a stored event.
*/
struct Event {
  EventId id = 0;
  std::string topic;
  /// Optional event type (SSE `event:` field, `"event"` in JSON envelopes).
  std::string type;
  std::string data;
  PayloadKind kind = PayloadKind::text;
  EventKind event_kind = EventKind::message;
};

}  // namespace herald
