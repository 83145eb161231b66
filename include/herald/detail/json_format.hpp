#pragma once

#include <herald/detail/base64.hpp>
#include <herald/detail/decimal.hpp>
#include <herald/detail/http.hpp>
#include <herald/detail/stored_event.hpp>
#include <herald/detail/topic.hpp>
#include <herald/event.hpp>

#include <string>

namespace herald::inline v0::detail {

/** `s` with every byte that is not part of well-formed UTF-8 replaced by U+FFFD, as a decoder
    would show it. Text payloads are not checked at publish; JSON (and WebSocket text frames,
    which clients reject with 1007 otherwise) must be UTF-8. */
inline std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  std::size_t i = 0;
  while (i < s.size()) {
    // The longest prefix that is valid, then one bad byte at a time.
    std::size_t n = 1;
    auto const c = static_cast<unsigned char>(s[i]);
    if (c >= 0xc2 && c <= 0xdf) n = 2;
    else if (c >= 0xe0 && c <= 0xef) n = 3;
    else if (c >= 0xf0 && c <= 0xf4) n = 4;
    if (i + n <= s.size() && valid_utf8(s.substr(i, n))) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

/** Append one event as a JSON envelope: {"id":…,"topic":"…","event":"…","data":…}, the shape of
    WebSocket text frames and of polling batches. A JSON payload is spliced in as-is (it was
    validated at publish), text becomes a JSON string, binary a base64 string with
    "encoding":"base64". "event" is omitted for plain messages. */
inline void append_json_envelope(std::string& out, Event const& ev) {
  out += R"({"id":)";
  append_decimal(out, ev.id);
  out += R"(,"topic":")";
  append_json_escaped(out, ev.topic);
  out += '"';
  if (!ev.type.empty()) {
    out += R"(,"event":")";
    append_json_escaped(out, ev.type);
    out += '"';
  }
  out += R"(,"data":)";
  switch (ev.kind) {
    case PayloadKind::json:
      out += ev.data;
      break;
    case PayloadKind::binary:
      out += '"';
      out += base64_encode(ev.data);
      out += R"(","encoding":"base64)";
      out += '"';
      break;
    default:
      out += '"';
      if (valid_utf8(ev.data)) append_json_escaped(out, ev.data);
      else append_json_escaped(out, utf8_lossy(ev.data));
      out += '"';
  }
  out += '}';
}

/// What the envelope of `ev` takes, when nothing in it needs escaping.
inline std::size_t json_envelope_size_hint(Event const& ev) noexcept {
  return ev.data.size() + ev.topic.size() + ev.type.size() + 64;
}

inline std::string encode_json_envelope(Event const& ev) {
  std::string out;
  out.reserve(json_envelope_size_hint(ev));
  append_json_envelope(out, ev);
  return out;
}

/// The JSON envelope as a wire format (polling answers, WebSocket with permessage-deflate).
inline constexpr WireFormat json_wire{"json", 1};

/// The JSON envelope of `ev`: encoded once per event, then shared by every answer and frame.
inline std::string const& json_envelope(StoredEvent const& ev) { return ev.encoded(json_wire, encode_json_envelope); }

}  // namespace herald::detail
