#pragma once

// The WebSocket transport's wire protocol, as pure functions: what a client's text frame means
// (a control message or an application message) and the JSON texts the server answers with.
// No I/O and no Beast here, so every rule is unit-tested on its own.

#include <herald/detail/error_map.hpp>
#include <herald/detail/http.hpp>
#include <herald/event.hpp>

#include <boost/system/error_code.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herald::inline v0::detail::ws {

/// What a client's text frame asks for.
struct Control {
  enum class Kind : std::uint8_t {
    /// Not a control message: the application's own message (for on_message).
    none,
    /// {"subscribe":"topic"} with an optional "since": <cursor>.
    subscribe,
    /// {"unsubscribe":"topic"}.
    unsubscribe,
    /// A JSON object with a "subscribe" or "unsubscribe" key that is malformed; `problem` says how.
    invalid,
  };
  Kind kind = Kind::none;
  /// The topic as sent (not yet checked against topic rules or limits).
  std::string topic;
  std::optional<EventId> since;
  std::string problem;
};

/** Classify a text frame. Control messages are JSON objects with a "subscribe" or an
    "unsubscribe" key; everything else (non-JSON, arrays, objects without those keys) is the
    application's. Never throws: untrusted input is parsed with exceptions off.

    "since" is a non-negative integer or a string of decimal digits (ids may exceed what a
    JavaScript number holds exactly); null means absent. Other keys are ignored. */
inline Control parse_control(std::string_view text) {
  Control c;
  std::size_t i = 0;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) ++i;
  if (i == text.size() || text[i] != '{') return c;
  // Cheap filter before a full parse: application messages are often JSON objects too. A key
  // spelled with \u escapes is still found, because the filter lets any escape through.
  if (text.find("subscribe") == std::string_view::npos && text.find("\\u") == std::string_view::npos)
    return c;
  auto const doc = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return c;
  auto const sub = doc.find("subscribe");
  auto const unsub = doc.find("unsubscribe");
  bool const has_sub = sub != doc.end();
  bool const has_unsub = unsub != doc.end();
  if (!has_sub && !has_unsub) return c;
  c.kind = Control::Kind::invalid;
  if (has_sub && has_unsub) {
    c.problem = "a control message has either \"subscribe\" or \"unsubscribe\", not both";
    return c;
  }
  auto const& name = has_sub ? *sub : *unsub;
  if (!name.is_string()) {
    c.problem = has_sub ? "\"subscribe\" takes a topic name (a string)"
                        : "\"unsubscribe\" takes a topic name (a string)";
    return c;
  }
  c.topic = name.get<std::string>();
  if (has_sub) {
    if (auto const since = doc.find("since"); since != doc.end() && !since->is_null()) {
      if (since->is_number_unsigned()) {
        c.since = since->get<std::uint64_t>();
      } else if (since->is_string()) {
        c.since = parse_event_id(since->get_ref<std::string const&>());
      }
      if (!c.since) {
        c.topic.clear();
        c.problem = "\"since\" must be an event id (a non-negative integer)";
        return c;
      }
    }
  }
  c.kind = has_sub ? Control::Kind::subscribe : Control::Kind::unsubscribe;
  return c;
}

/// Topics longer than this are not echoed back in error messages.
inline constexpr std::size_t max_echoed_topic = 1024;

/// {"subscribed":"<topic>","cursor":<id>}: the subscription is live; events above `cursor` follow.
inline std::string subscribed(std::string_view topic, EventId cursor) {
  std::string out = R"({"subscribed":")";
  append_json_escaped(out, topic);
  out += R"(","cursor":)";
  out += std::to_string(cursor);
  out += '}';
  return out;
}

/// {"unsubscribed":"<topic>"}: no event of `topic` follows this message.
inline std::string unsubscribed(std::string_view topic) {
  std::string out = R"({"unsubscribed":")";
  append_json_escaped(out, topic);
  out += R"("})";
  return out;
}

/** {"error":"<wire name>","topic":"<topic>","message":"<detail>"}: a request the client made
    was refused; the connection stays open. "topic" and "message" are left out when empty (and
    "topic" when too long to echo). `topic` and `detail` must be UTF-8. */
inline std::string error_message(boost::system::error_code ec, std::string_view topic, std::string_view detail) {
  std::string out = R"({"error":")";
  append_json_escaped(out, wire_name(ec));
  out += '"';
  if (!topic.empty() && topic.size() <= max_echoed_topic) {
    out += R"(,"topic":")";
    append_json_escaped(out, topic);
    out += '"';
  }
  if (!detail.empty()) {
    out += R"(,"message":")";
    append_json_escaped(out, detail);
    out += '"';
  }
  out += '}';
  return out;
}

/** The text frame that announces a binary event: the envelope without "data", plus
    "binary":true and the payload's "size". The payload follows as the very next frame, a
    binary one, with nothing in between. */
inline std::string encode_binary_head(Event const& ev) {
  std::string out;
  out.reserve(ev.topic.size() + ev.type.size() + 64);
  out += R"({"id":)";
  out += std::to_string(ev.id);
  out += R"(,"topic":")";
  append_json_escaped(out, ev.topic);
  out += '"';
  if (!ev.type.empty()) {
    out += R"(,"event":")";
    append_json_escaped(out, ev.type);
    out += '"';
  }
  out += R"(,"binary":true,"size":)";
  out += std::to_string(ev.data.size());
  out += '}';
  return out;
}

/** The subprotocol to answer with: the first one the client offers (a comma-separated
    Sec-WebSocket-Protocol header) that the server supports, or empty for none. */
inline std::string_view select_subprotocol(std::string_view offered, std::vector<std::string> const& supported) {
  while (!offered.empty()) {
    auto const comma = offered.find(',');
    std::string_view token = offered.substr(0, comma);
    offered = comma == std::string_view::npos ? std::string_view{} : offered.substr(comma + 1);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
    if (token.empty()) continue;
    for (auto const& s : supported)
      if (s == token) return s;
  }
  return {};
}

/** What is wrong with a Sec-WebSocket-Key (RFC 6455 §4.2.1: the base64 of a 16-byte nonce, so
    24 characters ending in "=="); empty when nothing is. A key that is not a nonce means the
    client is no WebSocket implementation (or a confused cache): refused before any 101. */
constexpr std::string_view key_problem(std::string_view key) noexcept {
  if (key.empty()) return "Sec-WebSocket-Key is missing";
  if (key.size() != 24 || key.substr(22) != "==")
    return "Sec-WebSocket-Key must be the base64 of 16 bytes: 24 characters ending in ==";
  for (char c : key.substr(0, 22)) {
    bool const b64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                     c == '/';
    if (!b64) return "Sec-WebSocket-Key holds a character outside the base64 alphabet";
  }
  return {};
}

/** Whether an endpoint may send `code` in a close frame: RFC 6455 §7.4 and the IANA WebSocket
    close code registry (1000-1003, 1007-1014 and 3000-4999; 1004-1006 and 1015 are never sent,
    1016-2999 are unassigned). Checks the server's options, and the codes clients send
    (ws::receivable_close_code). */
constexpr bool sendable_close_code(std::uint16_t code) noexcept {
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006;
}

}  // namespace herald::detail::ws
