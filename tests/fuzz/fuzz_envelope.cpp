// Fuzz target: the client's envelope and poll-answer parsers (client/detail/envelope.hpp),
// fed three ways by the first byte:
//   0  the input is a WebSocket text frame: parse_envelope must agree with a full JSON parse
//      (the raw "data" text it cuts out parses to the same value);
//   1  the input is a poll answer's body: parse_poll_answer must agree with a full JSON parse;
//   2  the input names an event (topic, type, payload) that the server encodes as it publishes
//      it: the client must read back exactly what was published.

#include <herald/client/detail/envelope.hpp>
#include <herald/detail/json_format.hpp>
#include <herald/detail/topic.hpp>
#include <herald/hub.hpp>

#include <fuzzer/FuzzedDataProvider.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"

namespace {

namespace hcd = herald::client::detail;
using nlohmann::json;

/// A read envelope agrees with the parsed document it came from.
void check_envelope(hcd::Envelope const& env, json const& doc) {
  FUZZ_CHECK(hcd::json_id(doc["id"]) == env.event.id);
  FUZZ_CHECK(doc["topic"] == env.event.topic);
  if (env.binary_head) {
    FUZZ_CHECK(doc["size"].get<std::size_t>() == env.size);
    return;
  }
  auto const& data = doc["data"];
  switch (env.event.kind) {
    case herald::PayloadKind::json: {
      // The exact bytes cut from the raw text are the same JSON value.
      auto const cut = hcd::parse_json(env.event.data);
      FUZZ_CHECK(!cut.is_discarded());
      FUZZ_CHECK(cut == data);
      break;
    }
    case herald::PayloadKind::text:
      FUZZ_CHECK(data.is_string() && data.get<std::string>() == env.event.data);
      break;
    case herald::PayloadKind::binary:
      FUZZ_CHECK(data.is_string() && doc["encoding"] == "base64");
      break;
    default:
      FUZZ_CHECK(false);
  }
  if (env.reset) FUZZ_CHECK(env.event.type == "reset" && env.reset->topic == env.event.topic);
}

void frame(std::string_view text) {
  auto const doc = hcd::parse_json(text);
  if (auto const env = hcd::parse_envelope(doc, text)) check_envelope(*env, doc);
}

void poll_answer(std::string_view body) {
  auto const answer = hcd::parse_poll_answer(body);
  if (!answer) return;
  auto const doc = hcd::parse_json(body);
  FUZZ_CHECK(doc.is_object());
  FUZZ_CHECK(hcd::json_id(doc["cursor"]) == answer->cursor);
  auto const& events = doc["events"];
  FUZZ_CHECK(events.is_array() && events.size() == answer->events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    FUZZ_CHECK(!answer->events[i].binary_head);
    check_envelope(answer->events[i], events[i]);
  }
}

void round_trip(FuzzedDataProvider& in) {
  herald::Event ev;
  ev.id = in.ConsumeIntegral<herald::EventId>();
  ev.topic = in.ConsumeRandomLengthString(64);
  ev.type = in.ConsumeRandomLengthString(32);
  int const kind = in.ConsumeIntegralInRange(0, 2);
  ev.data = in.ConsumeRemainingBytesAsString();
  // Only what Hub::publish accepts, classified as Hub::publish classifies it.
  if (!herald::detail::HubState::invalid_publish(ev.topic, ev.type).empty()) return;
  ev.kind = kind == 0 ? herald::detail::payload_kind(ev.data)
            : kind == 1 ? herald::PayloadKind::text
                        : herald::PayloadKind::binary;

  std::string const wire = herald::detail::encode_json_envelope(ev);
  auto const doc = hcd::parse_json(wire);
  FUZZ_CHECK(!doc.is_discarded());
  auto const env = hcd::parse_envelope(doc, wire);
  FUZZ_CHECK(env.has_value());
  check_envelope(*env, doc);
  FUZZ_CHECK(env->event.id == ev.id && env->event.topic == ev.topic && env->event.type == ev.type);
  if (ev.kind == herald::PayloadKind::json && hcd::parse_json(ev.data).is_string()) {
    // A JSON payload that is a string looks like text on the wire, and is read as that text.
    FUZZ_CHECK(env->event.kind == herald::PayloadKind::text);
    FUZZ_CHECK(env->event.data == hcd::parse_json(ev.data).get<std::string>());
    return;
  }
  FUZZ_CHECK(env->event.kind == ev.kind);
  if (ev.kind == herald::PayloadKind::json) {
    // Spliced in verbatim and cut out verbatim: the same bytes, less surrounding whitespace.
    std::string_view expected = ev.data;
    auto const ws = std::string_view(" \t\n\r");
    expected.remove_prefix(std::min(expected.size(), expected.find_first_not_of(ws)));
    expected = expected.substr(0, expected.find_last_not_of(ws) + 1);
    FUZZ_CHECK(env->event.data == expected);
  } else if (ev.kind == herald::PayloadKind::binary || herald::detail::valid_utf8(ev.data)) {
    FUZZ_CHECK(env->event.data == ev.data);
  } else {
    // Text that is not UTF-8 arrives as a decoder shows it.
    FUZZ_CHECK(env->event.data == herald::detail::utf8_lossy(ev.data));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view const rest{reinterpret_cast<char const*>(data + 1), size - 1};
  switch (data[0] % 3) {
    case 0:
      frame(rest);
      break;
    case 1:
      poll_answer(rest);
      break;
    default: {
      FuzzedDataProvider in{data + 1, size - 1};
      round_trip(in);
    }
  }
  return 0;
}
