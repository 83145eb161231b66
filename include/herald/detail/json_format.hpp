#pragma once

#include <herald/detail/base64.hpp>
#include <herald/detail/http.hpp>
#include <herald/event.hpp>

#include <string>

namespace herald::detail {

/** One event as a JSON envelope: {"id":…,"topic":"…","event":"…","data":…}, the shape of
    WebSocket text frames and of polling batches. A JSON payload is spliced in as-is (it was
    validated at publish), text becomes a JSON string, binary a base64 string with
    "encoding":"base64". "event" is omitted for plain messages. */
inline std::string encode_json_envelope(Event const& ev) {
  std::string out;
  out.reserve(ev.data.size() + ev.topic.size() + ev.type.size() + 48);
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
      append_json_escaped(out, ev.data);
      out += '"';
  }
  out += '}';
  return out;
}

}  // namespace herald::detail
