// Fuzz target: WebSocket control messages (detail/ws_protocol.hpp). Every text frame a client
// sends goes through parse_control; its verdict must agree with what a full JSON parse says,
// and every answer the server builds from it (subscribed, unsubscribed, error) must be valid
// JSON that carries the client's topic back unchanged.

#include <herald/detail/topic.hpp>
#include <herald/detail/ws_protocol.hpp>
#include <herald/error.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"

namespace {

using nlohmann::json;
namespace ws = herald::detail::ws;

json parse(std::string_view text) {
  return json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::string_view const text{reinterpret_cast<char const*>(data), size};
  auto const c = ws::parse_control(text);
  auto const doc = parse(text);
  bool const control_shape =
      !doc.is_discarded() && doc.is_object() && (doc.contains("subscribe") || doc.contains("unsubscribe"));
  // The cheap pre-filter must never hide a control message from the full parse.
  FUZZ_CHECK((c.kind != ws::Control::Kind::none) == control_shape);

  switch (c.kind) {
    case ws::Control::Kind::none:
      FUZZ_CHECK(c.topic.empty() && c.problem.empty() && !c.since);
      break;
    case ws::Control::Kind::invalid: {
      FUZZ_CHECK(!c.problem.empty());
      // What ws_session answers: an error message naming the topic, valid JSON.
      auto const answer = parse(ws::error_message(herald::error::bad_control_message, c.topic, c.problem));
      FUZZ_CHECK(answer.is_object() && answer["message"] == c.problem);
      break;
    }
    case ws::Control::Kind::subscribe:
    case ws::Control::Kind::unsubscribe: {
      bool const sub = c.kind == ws::Control::Kind::subscribe;
      FUZZ_CHECK(c.problem.empty());
      FUZZ_CHECK(doc[sub ? "subscribe" : "unsubscribe"] == c.topic);
      if (!sub) FUZZ_CHECK(!c.since);
      if (c.since) {
        auto const& since = doc["since"];
        if (since.is_string()) {
          // Decimal digits, leading zeros allowed: the same number as the id's own digits.
          auto const digits = since.get<std::string>();
          auto const first = digits.find_first_not_of('0');
          FUZZ_CHECK((first == std::string::npos ? "0" : digits.substr(first)) == std::to_string(*c.since));
        } else {
          FUZZ_CHECK(since.get<std::uint64_t>() == *c.since);
        }
      }
      // The answers echo the topic: they must stay valid JSON for any topic a client sent.
      auto const ok = parse(sub ? ws::subscribed(c.topic, c.since.value_or(0)) : ws::unsubscribed(c.topic));
      FUZZ_CHECK(ok.is_object() && ok[sub ? "subscribed" : "unsubscribed"] == c.topic);
      auto const refused = parse(ws::error_message(herald::error::bad_topic, c.topic, "invalid topic name"));
      FUZZ_CHECK(refused.is_object());
      if (c.topic.size() <= ws::max_echoed_topic && !c.topic.empty())
        FUZZ_CHECK(refused["topic"] == c.topic);
      else
        FUZZ_CHECK(!refused.contains("topic"));
      (void)herald::detail::valid_topic(c.topic);
      break;
    }
  }
  (void)ws::select_subprotocol(text, {"herald.v1", "chat"});
  return 0;
}
