#pragma once

// Reading herald's JSON envelopes ({"id":…,"topic":…,"event":…,"data":…}) as WebSocket frames
// and polling answers carry them. A JSON payload keeps its exact bytes: the raw text of "data"
// is cut out of the message (herald splices payloads in verbatim), rather than re-serialised.
// Untrusted input: parsed with exceptions off; nothing here throws on bad input.

#include <herald/client/options.hpp>
#include <herald/detail/http.hpp>
#include <herald/event.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herald::inline v0::client::detail {

/// Parse untrusted JSON; a discarded value on error.
inline nlohmann::json parse_json(std::string_view text) {
  return nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
}

/// The index just past the JSON value that starts at s[i] (after whitespace); s is valid JSON.
inline std::size_t skip_json_value(std::string_view s, std::size_t i) {
  auto ws = [&] {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  };
  ws();
  if (i >= s.size()) return i;
  if (s[i] == '"') {
    for (++i; i < s.size(); ++i) {
      if (s[i] == '\\') ++i;
      else if (s[i] == '"') return i + 1;
    }
    return s.size();
  }
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    for (; i < s.size(); ++i) {
      char const c = s[i];
      if (c == '"') {
        i = skip_json_value(s, i) - 1;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
    }
    return s.size();
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\t' &&
         s[i] != '\n' && s[i] != '\r')
    ++i;
  return i;
}

/** Call f(key, raw value) for each member of the JSON object `s` (valid JSON). Keys are
    given as written between their quotes (herald's keys carry no escapes). */
template <class F>
void for_each_member(std::string_view s, F&& f) {
  std::size_t i = s.find('{');
  if (i == std::string_view::npos) return;
  ++i;
  while (i < s.size()) {
    auto const q = s.find('"', i);
    if (q == std::string_view::npos) return;
    auto const key_end = skip_json_value(s, q);
    std::string_view const key = s.substr(q + 1, key_end - q - 2);
    auto const colon = s.find(':', key_end);
    if (colon == std::string_view::npos) return;
    std::size_t v = colon + 1;
    while (v < s.size() && (s[v] == ' ' || s[v] == '\t' || s[v] == '\n' || s[v] == '\r')) ++v;
    auto const v_end = skip_json_value(s, v);
    f(key, s.substr(v, v_end - v));
    i = v_end;
    while (i < s.size() && s[i] != ',' && s[i] != '}') ++i;
    if (i >= s.size() || s[i] == '}') return;
    ++i;
  }
}

/// Call f(raw element) for each element of the JSON array `s` (valid JSON).
template <class F>
void for_each_element(std::string_view s, F&& f) {
  std::size_t i = s.find('[');
  if (i == std::string_view::npos) return;
  ++i;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
    if (i >= s.size() || s[i] == ']') return;
    auto const end = skip_json_value(s, i);
    f(s.substr(i, end - i));
    i = end;
    while (i < s.size() && s[i] != ',' && s[i] != ']') ++i;
    if (i >= s.size() || s[i] == ']') return;
    ++i;
  }
}

/** The raw text of member `key` of the JSON object `s`, if present. A key given twice yields
    its last value, as nlohmann's parser keeps it: the raw text must be the value the parsed
    document holds (found by tests/fuzz/fuzz_envelope.cpp). */
inline std::optional<std::string_view> member_text(std::string_view s, std::string_view key) {
  std::optional<std::string_view> out;
  for_each_member(s, [&](std::string_view k, std::string_view v) {
    if (k == key) out = v;
  });
  return out;
}

/// Standard base64 (RFC 4648 §4) with optional padding; nullopt on any other character.
inline std::optional<std::string> base64_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int const v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xffu);
    }
  }
  return out;
}

/// An id as herald writes it: a JSON unsigned integer, or a string of decimal digits.
inline std::optional<EventId> json_id(nlohmann::json const& v) {
  if (v.is_number_unsigned()) return v.get<EventId>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0) return static_cast<EventId>(v.get<std::int64_t>());
  if (v.is_string()) return ::herald::detail::parse_event_id(v.get_ref<std::string const&>());
  return std::nullopt;
}

/// What a reset notice's data says: {"reason":"…","cursor":N}.
inline std::optional<Reset> parse_reset_data(nlohmann::json const& data) {
  if (!data.is_object()) return std::nullopt;
  auto const reason = data.find("reason");
  auto const cursor = data.find("cursor");
  if (reason == data.end() || !reason->is_string() || cursor == data.end()) return std::nullopt;
  auto const c = json_id(*cursor);
  if (!c) return std::nullopt;
  Reset r;
  r.reason = reason->get<std::string>();
  r.cursor = *c;
  return r;
}

/// A drain's hand-off (detail/drain.hpp): the delay to wait, and where to resume if known.
struct DrainNotice {
  std::chrono::milliseconds retry{0};
  std::optional<EventId> cursor;
};

/** Read {"error":"draining","retry_ms":N[,"cursor":C]} (a herald.drain event's data, a 1012
    close reason, a drained poll's body); nullopt for anything else. */
inline std::optional<DrainNotice> parse_drain(std::string_view text) {
  auto const doc = parse_json(text);
  if (!doc.is_object()) return std::nullopt;
  auto const err = doc.find("error");
  auto const retry = doc.find("retry_ms");
  if (err == doc.end() || *err != "draining" || retry == doc.end()) return std::nullopt;
  auto const ms = json_id(*retry);
  if (!ms || *ms > 86'400'000) return std::nullopt;
  DrainNotice d;
  d.retry = std::chrono::milliseconds(static_cast<std::int64_t>(*ms));
  if (auto c = doc.find("cursor"); c != doc.end()) d.cursor = json_id(*c);
  return d;
}

/// What a gap notice's data says: {"reason":"…","missed":[{"topic":…,"first":…,"last":…,"count":…},…]}.
inline std::optional<Gap> parse_gap_data(nlohmann::json const& data) {
  if (!data.is_object()) return std::nullopt;
  auto const reason = data.find("reason");
  auto const missed = data.find("missed");
  if (reason == data.end() || !reason->is_string() || missed == data.end() || !missed->is_array())
    return std::nullopt;
  Gap g;
  g.reason = reason->get<std::string>();
  for (auto const& r : *missed) {
    if (!r.is_object() || !r.contains("topic") || !r["topic"].is_string()) return std::nullopt;
    auto const first = r.contains("first") ? json_id(r["first"]) : std::nullopt;
    auto const last = r.contains("last") ? json_id(r["last"]) : std::nullopt;
    auto const count = r.contains("count") ? json_id(r["count"]) : std::nullopt;
    if (!first || !last || !count) return std::nullopt;
    g.missed.push_back(Gap::Range{r["topic"].get<std::string>(), *first, *last, *count});
  }
  return g;
}

/// One envelope, read.
struct Envelope {
  Event event;
  /// A WebSocket binary head: the payload (`size` bytes) is the next binary frame.
  bool binary_head = false;
  std::size_t size = 0;
  /// Set when the envelope is a reset notice.
  std::optional<Reset> reset;
  /// Set when the envelope is a gap notice.
  std::optional<Gap> gap;
};

/** Read an envelope from `doc` (the parsed JSON of `raw`). nullopt when it is not one: an
    object with an unsigned "id" and a string "topic", plus "data" or "binary":true. */
inline std::optional<Envelope> parse_envelope(nlohmann::json const& doc, std::string_view raw) {
  if (!doc.is_object()) return std::nullopt;
  auto const id = doc.find("id");
  auto const topic = doc.find("topic");
  if (id == doc.end() || topic == doc.end() || !topic->is_string()) return std::nullopt;
  auto const idv = json_id(*id);
  if (!idv) return std::nullopt;
  Envelope out;
  out.event.id = *idv;
  out.event.topic = topic->get<std::string>();
  if (auto const type = doc.find("event"); type != doc.end()) {
    if (!type->is_string()) return std::nullopt;
    out.event.type = type->get<std::string>();
  }
  if (auto const bin = doc.find("binary"); bin != doc.end() && bin->is_boolean() && bin->get<bool>()) {
    auto const size = doc.find("size");
    if (size == doc.end() || !size->is_number_unsigned()) return std::nullopt;
    out.binary_head = true;
    out.size = size->get<std::size_t>();
    out.event.kind = PayloadKind::binary;
    return out;
  }
  auto const data = doc.find("data");
  if (data == doc.end()) return std::nullopt;
  if (data->is_string()) {
    auto const enc = doc.find("encoding");
    if (enc != doc.end() && enc->is_string() && enc->get_ref<std::string const&>() == "base64") {
      auto bytes = base64_decode(data->get_ref<std::string const&>());
      if (!bytes) return std::nullopt;
      out.event.data = std::move(*bytes);
      out.event.kind = PayloadKind::binary;
    } else {
      out.event.data = data->get<std::string>();
      out.event.kind = PayloadKind::text;
    }
  } else {
    auto const text = member_text(raw, "data");
    out.event.data = text ? std::string(*text) : data->dump();
    out.event.kind = PayloadKind::json;
  }
  if (out.event.type == "reset") {
    out.reset = parse_reset_data(*data);
    if (out.reset) {
      out.reset->topic = out.event.topic;
      out.event.event_kind = EventKind::reset;
    }
  } else if (out.event.type == "gap") {
    out.gap = parse_gap_data(*data);
    if (out.gap) {
      out.gap->id = out.event.id;
      out.event.event_kind = EventKind::gap;
    }
  }
  return out;
}

/// A polling answer, read: {"events":[<envelope>,…],"cursor":N} with optional "reset"/"more".
struct PollAnswer {
  std::vector<Envelope> events;
  EventId cursor = 0;
  bool reset = false;
  bool more = false;
};

/** Read a polling answer's body. nullopt when any part of it is malformed (then nothing of it
    may be delivered): not an object, no "events" array or no "cursor" id, or an element that
    is not a text envelope (a binary head has no place in a poll answer). */
inline std::optional<PollAnswer> parse_poll_answer(std::string_view body) {
  auto const doc = parse_json(body);
  if (!doc.is_object()) return std::nullopt;
  auto const events = doc.find("events");
  auto const cursor = doc.find("cursor");
  if (events == doc.end() || !events->is_array() || cursor == doc.end()) return std::nullopt;
  auto const cursor_id = json_id(*cursor);
  if (!cursor_id) return std::nullopt;
  // Each element's raw text, so a JSON payload keeps its exact bytes.
  std::vector<std::string_view> raw;
  raw.reserve(events->size());
  if (auto const text = member_text(body, "events"))
    for_each_element(*text, [&](std::string_view e) { raw.push_back(e); });
  if (raw.size() != events->size()) return std::nullopt;
  auto flag = [&](char const* name) {
    auto const it = doc.find(name);
    return it != doc.end() && it->is_boolean() && it->get<bool>();
  };
  PollAnswer out;
  out.cursor = *cursor_id;
  out.reset = flag("reset");
  out.more = flag("more");
  out.events.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    auto env = parse_envelope((*events)[i], raw[i]);
    if (!env || env->binary_head) return std::nullopt;
    out.events.push_back(std::move(*env));
  }
  return out;
}

}  // namespace herald::client::detail
