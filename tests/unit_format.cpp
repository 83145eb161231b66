// Unit tests of herald's pure formatting and parsing helpers: SSE framing, base64, query and
// cursor parsing, Origin checks, topic names, the error category and JSON escaping. No sockets.
//
// The SSE framing is checked against the independent event-stream parser of the tests
// (support/sse_reader.hpp, from the WHATWG HTML spec "9.2.6 Interpreting an event stream"), not against herald's own code.

#include <herald/client/detail/http.hpp>
#include <herald/detail/admission.hpp>
#include <herald/detail/base64.hpp>
#include <herald/detail/cors.hpp>
#include <herald/detail/error_map.hpp>
#include <herald/detail/error_table.hpp>
#include <herald/detail/http.hpp>
#include <herald/detail/json_format.hpp>
#include <herald/metrics_text.hpp>
#include <herald/detail/poll_format.hpp>
#include <herald/detail/redis_url.hpp>
#include <herald/detail/response.hpp>
#include <herald/detail/sse_format.hpp>
#include <herald/detail/topic.hpp>
#include <herald/detail/ws_protocol.hpp>
#include <herald/error.hpp>
#include <herald/event.hpp>
#include <herald/server.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "sse_reader.hpp"

using namespace std::string_literals;
using namespace std::string_view_literals;

namespace {

// ---------------------------------------------------------------------------------------------
// The independent WHATWG event-stream parser of the tests (support/sse_reader.hpp), over a
// whole stream.
// ---------------------------------------------------------------------------------------------

struct ParsedEvent {
  std::string type;  // "message" when no event field was given
  std::string data;
  std::string last_event_id;
};

struct ParsedStream {
  std::vector<ParsedEvent> events;
  std::optional<long long> retry;
  std::size_t comments = 0;
  std::size_t id_fields = 0;
  std::size_t event_fields = 0;
  /// Bytes after the last blank line that never formed a complete event.
  bool trailing_partial = false;
};

ParsedStream parse_event_stream(std::string_view stream) {
  test::SseReader reader;
  reader.feed(stream);
  ParsedStream out;
  for (auto const& e : reader.events()) out.events.push_back({e.type, e.data, e.id});
  if (auto const r = reader.retry()) out.retry = *r;
  out.comments = static_cast<std::size_t>(reader.comments());
  out.id_fields = static_cast<std::size_t>(reader.id_fields());
  out.event_fields = static_cast<std::size_t>(reader.event_fields());
  out.trailing_partial = reader.trailing_partial();
  return out;
}

/// Printable form of arbitrary bytes for failure messages (never throws on invalid UTF-8).
std::string show(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char ch : s) {
    auto const c = static_cast<unsigned char>(ch);
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c == '\\' || c == '"') (out += '\\') += ch;
    else if (c < 0x20 || c >= 0x7f) ((out += "\\x") += hex[c >> 4]) += hex[c & 15];
    else out += ch;
  }
  return out + "\"";
}

/// The payload as an EventSource delivers it: every CR, LF or CRLF becomes LF.
std::string normalize_newlines(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') {
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
      out += '\n';
    } else {
      out += s[i];
    }
  }
  return out;
}

herald::Event make_event(herald::EventId id, std::string data, std::string type = {},
                         herald::PayloadKind kind = herald::PayloadKind::text) {
  herald::Event ev;
  ev.id = id;
  ev.topic = "t";
  ev.type = std::move(type);
  ev.data = std::move(data);
  ev.kind = kind;
  return ev;
}

/// Encodes one event, parses the bytes and requires exactly one event with the normalized payload.
void require_round_trip(herald::Event const& ev) {
  std::string const wire = herald::detail::encode_sse(ev);
  INFO("wire: " << show(wire));
  auto const parsed = parse_event_stream(wire);
  REQUIRE(parsed.events.size() == 1);
  CHECK_FALSE(parsed.trailing_partial);
  CHECK(parsed.id_fields == 1);
  CHECK(parsed.event_fields == (ev.type.empty() ? 0u : 1u));
  CHECK(parsed.events[0].last_event_id == std::to_string(ev.id));
  CHECK(parsed.events[0].type == (ev.type.empty() ? "message"s : ev.type));
  CHECK(parsed.events[0].data == normalize_newlines(ev.data));
  CHECK_FALSE(parsed.retry.has_value());
}

// ---------------------------------------------------------------------------------------------
// An independent base64 decoder (RFC 4648 §4, padding required).
// ---------------------------------------------------------------------------------------------

std::optional<std::string> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += 4) {
    bool const last = i + 4 == in.size();
    int pad = 0;
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      char const c = in[i + k];
      if (c == '=') {
        if (!last || k < 2) return std::nullopt;
        ++pad;
        v <<= 6;
        continue;
      }
      if (pad != 0) return std::nullopt;  // data after padding
      int const d = value(c);
      if (d < 0) return std::nullopt;
      v = v << 6 | static_cast<std::uint32_t>(d);
    }
    out += static_cast<char>(v >> 16 & 0xff);
    if (pad < 2) out += static_cast<char>(v >> 8 & 0xff);
    if (pad < 1) out += static_cast<char>(v & 0xff);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

/// Whether `e` is an enumerator. No default: -Wswitch (an error in CI) names one this misses.
bool is_enumerator(herald::error e) {
  using herald::error;
  switch (e) {
    case error::unauthorized:
    case error::forbidden:
    case error::origin_not_allowed:
    case error::not_found:
    case error::method_not_allowed:
    case error::bad_request:
    case error::bad_topic:
    case error::bad_cursor:
    case error::too_many_connections:
    case error::too_many_subscriptions:
    case error::message_too_big:
    case error::bad_control_message:
    case error::slow_consumer:
    case error::cursor_expired:
    case error::idle_timeout:
    case error::write_timeout:
    case error::shutting_down:
    case error::hook_failed:
    case error::backplane_unavailable:
    case error::too_many_topics:
    case error::host_not_allowed:
    case error::rate_limited:
    case error::credentials_expired:
    case error::draining:
    case error::protocol_error:
    case error::invalid_payload:
      return true;
  }
  return false;
}

/// Every herald::error, found by value rather than copied from the table under test.
std::vector<herald::error> all_errors() {
  std::vector<herald::error> out;
  for (int v = 0; v < 256; ++v)
    if (is_enumerator(static_cast<herald::error>(v))) out.push_back(static_cast<herald::error>(v));
  return out;
}

}  // namespace

// =============================================================================================
// Self-check of the test's own parser, so a broken parser cannot make herald look right.
// =============================================================================================

TEST_CASE("test event-stream parser follows the WHATWG rules", "[unit][format]") {
  SECTION("CR, LF and CRLF all end lines; one leading space is stripped; data joined with LF") {
    auto const p = parse_event_stream("data:a\rdata:  b\r\ndata\nid: 3\nevent:x\n\n");
    REQUIRE(p.events.size() == 1);
    CHECK(p.events[0].data == "a\n b\n");
    CHECK(p.events[0].type == "x");
    CHECK(p.events[0].last_event_id == "3");
  }
  SECTION("blank line without data dispatches nothing; comments are ignored") {
    auto const p = parse_event_stream(": hi\n\nevent: x\n\ndata: y\n\n");
    REQUIRE(p.events.size() == 1);
    CHECK(p.events[0].type == "message");  // the event field was reset by the empty dispatch
    CHECK(p.comments == 1);
  }
  SECTION("an event without its blank line is not dispatched") {
    auto const p = parse_event_stream("data: y\n");
    CHECK(p.events.empty());
    CHECK(p.trailing_partial);
  }
  SECTION("retry needs digits only") {
    CHECK(parse_event_stream("retry: 15\n\n").retry == 15);
    CHECK_FALSE(parse_event_stream("retry: 1x\n\n").retry.has_value());
  }
}

// =============================================================================================
// SSE framing
// =============================================================================================

TEST_CASE("encode_sse_envelope: one plain message whose data is the JSON envelope", "[unit][format]") {
  herald::Event ev;
  ev.id = 7;
  ev.topic = "orders";
  ev.type = "note";
  ev.data = "{\n  \"pretty\": true\n}";  // JSON with line breaks: several data: lines, the same JSON
  ev.kind = herald::PayloadKind::json;
  auto const parsed = parse_event_stream(herald::detail::encode_sse_envelope(ev));
  REQUIRE(parsed.events.size() == 1);
  CHECK(parsed.events[0].type == "message");
  CHECK(parsed.events[0].last_event_id == "7");
  CHECK(parsed.event_fields == 0);
  auto const j = nlohmann::json::parse(parsed.events[0].data);
  CHECK(j == nlohmann::json{{"id", 7}, {"topic", "orders"}, {"event", "note"}, {"data", {{"pretty", true}}}});
  CHECK_FALSE(parsed.trailing_partial);
}

TEST_CASE("MetricsText: each family once, samples grouped, label values escaped", "[unit][format]") {
  herald::MetricsText m;
  m.family("x_total", "counter", "Xs.");
  m.sample({{"channel", "/a"}}, 1);
  m.family("y", "gauge", "Ys.");
  m.sample({}, 5);
  m.family("x_total", "counter", "Xs.");  // a second source of the same family
  m.sample({{"channel", "/b\"\\\n"}}, 18446744073709551615ull);
  CHECK(m.str() ==
        "# HELP x_total Xs.\n# TYPE x_total counter\n"
        "x_total{channel=\"/a\"} 1\n"
        "x_total{channel=\"/b\\\"\\\\\\n\"} 18446744073709551615\n"
        "# HELP y Ys.\n# TYPE y gauge\ny 5\n");
}

TEST_CASE("encode_sse writes id, optional event and one data line", "[unit][format]") {
  using herald::detail::encode_sse;
  CHECK(encode_sse(make_event(42, "hello")) == "id: 42\ndata: hello\n\n");
  CHECK(encode_sse(make_event(7, R"({"a":1})", "update", herald::PayloadKind::json)) ==
        "id: 7\nevent: update\ndata: {\"a\":1}\n\n");
  CHECK(encode_sse(make_event(18446744073709551615ull, "x")) ==
        "id: 18446744073709551615\ndata: x\n\n");
  require_round_trip(make_event(42, "hello"));
  require_round_trip(make_event(7, R"({"a":1})", "update", herald::PayloadKind::json));
}

TEST_CASE("encode_sse splits the payload on CR, LF and CRLF", "[unit][format]") {
  using herald::detail::encode_sse;
  struct Case {
    std::string data;
    std::string data_lines;  // the expected data: lines of the encoding
  };
  std::vector<Case> const cases = {
      {"a\nb", "data: a\ndata: b\n"},
      {"a\rb", "data: a\ndata: b\n"},
      {"a\r\nb", "data: a\ndata: b\n"},
      {"a\n\rb", "data: a\ndata: \ndata: b\n"},              // LF then CR: two breaks
      {"a\r\n\r\nb", "data: a\ndata: \ndata: b\n"},          // two CRLFs
      {"a\r\r\nb", "data: a\ndata: \ndata: b\n"},            // CR, then CRLF
      {"a\n", "data: a\ndata: \n"},                          // trailing
      {"a\r", "data: a\ndata: \n"},                          // trailing CR
      {"a\r\n", "data: a\ndata: \n"},                        // trailing CRLF
      {"\na", "data: \ndata: a\n"},                          // leading
      {"\r\na", "data: \ndata: a\n"},                        // leading CRLF
      {"a\n\n\nb", "data: a\ndata: \ndata: \ndata: b\n"},    // consecutive
      {"\n", "data: \ndata: \n"},
      {"\r", "data: \ndata: \n"},
      {"\r\n", "data: \ndata: \n"},
      {"\n\n", "data: \ndata: \ndata: \n"},
      {"one\rtwo\nthree\r\nfour", "data: one\ndata: two\ndata: three\ndata: four\n"},
  };
  for (auto const& c : cases) {
    INFO("payload: " << show(c.data));
    auto const ev = make_event(5, c.data);
    CHECK(encode_sse(ev) == "id: 5\n" + c.data_lines + "\n");
    require_round_trip(ev);
  }
}

TEST_CASE("encode_sse sends an empty payload as one empty data line", "[unit][format]") {
  auto const ev = make_event(9, "");
  CHECK(herald::detail::encode_sse(ev) == "id: 9\ndata: \n\n");
  // The event must be dispatched (EventSource drops events without a data line).
  auto const parsed = parse_event_stream(herald::detail::encode_sse(ev));
  REQUIRE(parsed.events.size() == 1);
  CHECK(parsed.events[0].data.empty());
}

TEST_CASE("encode_sse keeps leading spaces, colons and unicode in the payload", "[unit][format]") {
  using herald::detail::encode_sse;
  CHECK(encode_sse(make_event(1, " x")) == "id: 1\ndata:  x\n\n");
  CHECK(encode_sse(make_event(1, "  two")) == "id: 1\ndata:   two\n\n");
  require_round_trip(make_event(1, " x"));
  require_round_trip(make_event(1, " "));
  require_round_trip(make_event(1, ":not a comment"));
  require_round_trip(make_event(1, "a\n:not a comment\n data: spaced"));
  require_round_trip(make_event(1, "data: inner"));
  require_round_trip(make_event(1, "\t tab"));

  std::string const unicode = "h\xC3\xA9llo \xE6\xBC\xA2\xE5\xAD\x97 \xF0\x9F\x98\x80";  // héllo 漢字 😀
  CHECK(encode_sse(make_event(2, unicode)) == "id: 2\ndata: " + unicode + "\n\n");
  require_round_trip(make_event(2, unicode));
  // U+2028, U+2029 and NEL are not line breaks in an event stream: the payload stays one line.
  std::string const separators = "a\xE2\x80\xA8" "b\xE2\x80\xA9" "c\xC2\x85" "d";
  CHECK(encode_sse(make_event(3, separators)) == "id: 3\ndata: " + separators + "\n\n");
  require_round_trip(make_event(3, separators));
}

TEST_CASE("encode_sse sends binary payloads as base64", "[unit][format]") {
  std::string const bytes("\x00\x01\xff\n\r", 5);
  auto const ev = make_event(11, bytes, {}, herald::PayloadKind::binary);
  CHECK(herald::detail::encode_sse(ev) == "id: 11\ndata: AAH/Cg0=\n\n");
  auto const parsed = parse_event_stream(herald::detail::encode_sse(ev));
  REQUIRE(parsed.events.size() == 1);
  CHECK(base64_decode(parsed.events[0].data) == bytes);

  // Every byte value: still one data line, and it decodes to the original.
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  auto const parsed_all =
      parse_event_stream(herald::detail::encode_sse(make_event(12, all, {}, herald::PayloadKind::binary)));
  REQUIRE(parsed_all.events.size() == 1);
  CHECK(parsed_all.events[0].data.find('\n') == std::string::npos);
  CHECK(base64_decode(parsed_all.events[0].data) == all);
}

TEST_CASE("encode_sse: a payload cannot inject fields or events", "[unit][format]") {
  std::vector<std::string> const attacks = {
      "\n\nid: 999\nevent: x\ndata: evil",
      "\r\rid: 999\revent: x\rdata: evil",
      "\r\n\r\nid: 999\r\nevent: x\r\ndata: evil",
      "ok\n\nid: 999\n\ndata: second\n\n",
      "\nretry: 1\n\n",
      "\n: comment\n\nevent: x\n",
      "\r\n\nid\n\nevent\n\ndata\n",
      "data: evil\n\n\n\n\n",
  };
  for (auto const& attack : attacks) {
    INFO("payload: " << show(attack));
    require_round_trip(make_event(5, attack));
    require_round_trip(make_event(6, attack, "tick"));
  }
}

TEST_CASE("encode_sse strips line breaks from the event type", "[unit][format]") {
  // Hub::publish rejects such types (see unit_hub.cpp); the encoder must still never emit
  // a second field or event for one that reaches it.
  auto ev = make_event(3, "payload", "a\r\nevent: b\ndata: evil\r\rid: 9");
  auto const parsed = parse_event_stream(herald::detail::encode_sse(ev));
  REQUIRE(parsed.events.size() == 1);
  CHECK(parsed.event_fields == 1);
  CHECK(parsed.id_fields == 1);
  CHECK(parsed.events[0].last_event_id == "3");
  CHECK(parsed.events[0].data == "payload");
  CHECK(parsed.events[0].type.find('\n') == std::string::npos);
  CHECK(parsed.events[0].type.find('\r') == std::string::npos);
}

TEST_CASE("encode_sse round-trips random payloads through the WHATWG parser", "[unit][format]") {
  std::mt19937 rng{20240611u};
  std::string const alphabet = "ab :\r\n\r\n\t\xC3\xA9id";
  std::uniform_int_distribution<std::size_t> len{0, 24};
  std::uniform_int_distribution<std::size_t> pick{0, alphabet.size() - 1};
  for (int i = 0; i < 3000; ++i) {
    std::string data;
    for (std::size_t n = len(rng); n > 0; --n) data += alphabet[pick(rng)];
    auto const ev = make_event(static_cast<herald::EventId>(i + 1), data, i % 3 == 0 ? "t" : "");
    auto const parsed = parse_event_stream(herald::detail::encode_sse(ev));
    if (parsed.events.size() != 1 || parsed.events[0].data != normalize_newlines(data)) {
      INFO("payload: " << show(data));
      REQUIRE(parsed.events.size() == 1);
      REQUIRE(parsed.events[0].data == normalize_newlines(data));
    }
  }
}

TEST_CASE("sse_retry and sse_heartbeat", "[unit][format]") {
  using namespace std::chrono_literals;
  CHECK(herald::detail::sse_retry(3000ms) == "retry: 3000\n\n");
  CHECK(herald::detail::sse_retry(0ms) == "retry: 0\n\n");
  auto const retry = parse_event_stream(herald::detail::sse_retry(1500ms));
  CHECK(retry.retry == 1500);
  CHECK(retry.events.empty());

  // A retryable refusal: a comment and a retry, no event an application could see.
  auto const refusal = herald::detail::sse_refusal("too many connections", 2000ms);
  CHECK(refusal == ": refused: too many connections\nretry: 2000\n\n");
  auto const parsed = parse_event_stream(refusal);
  CHECK(parsed.retry == 2000);
  CHECK(parsed.events.empty());
  CHECK(parsed.comments == 1);

  std::string_view const hb = herald::detail::sse_heartbeat;
  REQUIRE_FALSE(hb.empty());
  CHECK(hb.front() == ':');
  auto const alone = parse_event_stream(hb);
  CHECK(alone.events.empty());
  CHECK(alone.comments == 1);
  CHECK_FALSE(alone.trailing_partial);

  // A whole stream: retry, event, heartbeat, event. The heartbeat changes nothing.
  std::string stream = herald::detail::sse_retry(2000ms);
  stream += herald::detail::encode_sse(make_event(1, "one", "kind"));
  stream += hb;
  stream += herald::detail::encode_sse(make_event(2, "two"));
  stream += hb;
  auto const p = parse_event_stream(stream);
  REQUIRE(p.events.size() == 2);
  CHECK(p.retry == 2000);
  CHECK(p.events[0].data == "one");
  CHECK(p.events[0].type == "kind");
  CHECK(p.events[1].data == "two");
  CHECK(p.events[1].type == "message");  // the event type does not leak into the next event
  CHECK(p.events[1].last_event_id == "2");
  CHECK(p.comments == 2);
}

// =============================================================================================
// base64
// =============================================================================================

TEST_CASE("base64_encode matches the RFC 4648 test vectors", "[unit][format]") {
  using herald::detail::base64_encode;
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("foob") == "Zm9vYg==");
  CHECK(base64_encode("fooba") == "Zm9vYmE=");
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  // High bytes must not sign-extend.
  CHECK(base64_encode("\xff\xff\xff") == "////");
  CHECK(base64_encode("\xfb\xff") == "+/8=");
}

TEST_CASE("base64_encode round-trips every byte value", "[unit][format]") {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  // Every length mod 3 and every byte in every position of a 3-byte group.
  for (std::size_t shift = 0; shift < 3; ++shift) {
    std::string const in = all.substr(shift);
    auto const enc = herald::detail::base64_encode(in);
    CHECK(enc.size() == (in.size() + 2) / 3 * 4);
    CHECK(base64_decode(enc) == in);
  }
  for (int b = 0; b < 256; ++b) {
    std::string const one(1, static_cast<char>(b));
    REQUIRE(base64_decode(herald::detail::base64_encode(one)) == one);
  }
}

// =============================================================================================
// Query strings and cursors
// =============================================================================================

TEST_CASE("parse_query decodes pairs in order", "[unit][format]") {
  using herald::detail::parse_query;
  using Params = herald::detail::QueryParams;

  CHECK(parse_query("") == Params{});
  CHECK(parse_query("topic=a&topic=b&x=1") ==
        Params{{"topic", "a"}, {"topic", "b"}, {"x", "1"}});
  CHECK(parse_query("b=2&a=1&b=3") == Params{{"b", "2"}, {"a", "1"}, {"b", "3"}});
  CHECK(parse_query("q=a+b+c&k+1=v") == Params{{"q", "a b c"}, {"k 1", "v"}});
  CHECK(parse_query("t=a%2Fb&u=a%2fb") == Params{{"t", "a/b"}, {"u", "a/b"}});
  CHECK(parse_query("t=%2B") == Params{{"t", "+"}});
  CHECK(parse_query("t=%26%3D") == Params{{"t", "&="}});
  CHECK(parse_query("t=%C3%A9") == Params{{"t", "\xC3\xA9"}});
  CHECK(parse_query("&&a=1&&&b=2&") == Params{{"a", "1"}, {"b", "2"}});
  CHECK(parse_query("flag") == Params{{"flag", ""}});
  CHECK(parse_query("flag&x=") == Params{{"flag", ""}, {"x", ""}});
  CHECK(parse_query("a=1=2") == Params{{"a", "1=2"}});
}

TEST_CASE("parse_query rejects malformed escapes", "[unit][format]") {
  using herald::detail::parse_query;
  for (auto q : {"t=%"sv, "t=%4"sv, "t=%zz"sv, "t=%4g"sv, "t=%g4"sv, "%=1"sv, "%4=1"sv, "a=1&t=%"sv,
                 "t=abc%"sv, "t=%%41"sv, "t=%-1"sv}) {
    INFO(q);
    CHECK_FALSE(parse_query(q).has_value());
  }
}

TEST_CASE("percent_decode", "[unit][format]") {
  using herald::detail::percent_decode;
  std::string out = "stale";
  CHECK(percent_decode("%41%42c", out));
  CHECK(out == "ABc");
  CHECK(percent_decode("", out));
  CHECK(out.empty());
  CHECK(percent_decode("%00", out));
  CHECK(out == std::string(1, '\0'));
  CHECK(percent_decode("%fF%Ff", out));
  CHECK(out == "\xff\xff");
  CHECK(percent_decode("a+b", out));
  CHECK(out == "a b");
  CHECK_FALSE(percent_decode("%", out));
  CHECK_FALSE(percent_decode("%4", out));
  CHECK_FALSE(percent_decode("x%zz", out));
  // An escape cut off by the end of the view, even when valid hex digits follow in memory.
  std::string const backing = "%41%4142";
  CHECK_FALSE(percent_decode(std::string_view(backing).substr(0, 2), out));
  CHECK_FALSE(percent_decode(std::string_view(backing).substr(0, 1), out));
  CHECK_FALSE(percent_decode(std::string_view(backing).substr(0, 5), out));
  CHECK(percent_decode(std::string_view(backing).substr(0, 6), out));
  CHECK(out == "AA");
  CHECK_FALSE(herald::detail::parse_query(std::string_view("t=%41", 4)).has_value());
}

TEST_CASE("target_path and target_query", "[unit][format]") {
  using herald::detail::target_path;
  using herald::detail::target_query;
  CHECK(target_path("/a/b?x=1") == "/a/b");
  CHECK(target_query("/a/b?x=1") == "x=1");
  CHECK(target_path("/a") == "/a");
  CHECK(target_query("/a").empty());
  CHECK(target_query("/a?").empty());
  CHECK(target_query("/a?x=1?y") == "x=1?y");
}

TEST_CASE("parse_event_id accepts decimal ids only", "[unit][format]") {
  using herald::detail::parse_event_id;
  CHECK(parse_event_id("0") == 0u);
  CHECK(parse_event_id("1") == 1u);
  CHECK(parse_event_id("007") == 7u);
  CHECK(parse_event_id("1700000000000000") == 1700000000000000u);
  CHECK(parse_event_id("18446744073709551615") == 18446744073709551615ull);  // max uint64
  CHECK(parse_event_id("18446744073709551614") == 18446744073709551614ull);
  CHECK(parse_event_id("00000000000000000009") == 9u);  // 20 digits

  for (auto s : {""sv, "18446744073709551616"sv, "18446744073709551620"sv, "99999999999999999999"sv,
                 "100000000000000000000"sv, "000000000000000000001"sv, "+1"sv, "-1"sv, " 1"sv, "1 "sv,
                 "1 2"sv, "1a"sv, "0x10"sv, "1.0"sv, "\t1"sv, "1\n"sv}) {
    INFO(show(std::string(s)));
    CHECK_FALSE(parse_event_id(s).has_value());
  }
  CHECK_FALSE(parse_event_id(std::string_view("1\0", 2)).has_value());
}

// =============================================================================================
// Origin checks
// =============================================================================================

TEST_CASE("origin_allowed", "[unit][format]") {
  using herald::detail::origin_allowed;
  std::vector<std::string> const none;

  SECTION("requests without Origin pass") {
    CHECK(origin_allowed("", "example.com", none));
    CHECK(origin_allowed("", "", none));
    CHECK(origin_allowed("", "example.com", {"https://other.example"}));
  }
  SECTION("empty allowlist: same origin by Host, case-insensitive") {
    CHECK(origin_allowed("http://example.com", "example.com", none));
    CHECK(origin_allowed("https://example.com", "example.com", none));
    CHECK(origin_allowed("http://EXAMPLE.com", "example.COM", none));
    CHECK(origin_allowed("http://example.com:8080", "example.com:8080", none));
    CHECK(origin_allowed("http://127.0.0.1:4000", "127.0.0.1:4000", none));
    CHECK_FALSE(origin_allowed("http://example.com:8080", "example.com:8081", none));
    CHECK_FALSE(origin_allowed("http://example.com:8080", "example.com", none));
    CHECK_FALSE(origin_allowed("http://example.com", "example.com:8080", none));
    CHECK_FALSE(origin_allowed("http://evil.com", "example.com", none));
    CHECK_FALSE(origin_allowed("http://example.com.evil.com", "example.com", none));
    CHECK_FALSE(origin_allowed("http://evilexample.com", "example.com", none));
    CHECK_FALSE(origin_allowed("http://example.com", "", none));
    CHECK_FALSE(origin_allowed("example.com", "example.com", none));  // not an origin
  }
  SECTION("the opaque origin \"null\" never passes the same-origin rule") {
    CHECK_FALSE(origin_allowed("null", "example.com", none));
    CHECK_FALSE(origin_allowed("null", "null", none));
    CHECK_FALSE(origin_allowed("null", "example.com", {"https://app.example"}));
  }
  SECTION("allowlist: exact match only (scheme, host and port)") {
    std::vector<std::string> const list = {"https://app.example", "http://localhost:3000"};
    CHECK(origin_allowed("https://app.example", "api.example", list));
    CHECK(origin_allowed("http://localhost:3000", "api.example", list));
    CHECK(origin_allowed("HTTPS://APP.EXAMPLE", "api.example", list));
    CHECK_FALSE(origin_allowed("http://app.example", "api.example", list));
    CHECK_FALSE(origin_allowed("https://app.example:8443", "api.example", list));
    CHECK_FALSE(origin_allowed("https://app.example.evil", "api.example", list));
    CHECK_FALSE(origin_allowed("https://app.exampl", "api.example", list));
    CHECK_FALSE(origin_allowed("http://localhost:30000", "api.example", list));
    CHECK_FALSE(origin_allowed("http://localhost", "api.example", list));
    // A non-empty allowlist replaces the same-origin rule.
    CHECK_FALSE(origin_allowed("http://api.example", "api.example", list));
  }
  SECTION("\"*\" allows any origin") {
    std::vector<std::string> const any = {"*"};
    CHECK(origin_allowed("https://anything.example", "api.example", any));
    CHECK(origin_allowed("null", "api.example", any));
    CHECK(origin_allowed("http://x:1", "", any));
  }
}

TEST_CASE("read_cursor: one cursor rule for every transport", "[unit][format]") {
  using herald::detail::read_cursor;
  auto cursor = [](std::string_view target, std::string_view header = {}) {
    herald::Request req{boost::beast::http::verb::get, target, 11};
    if (!header.empty()) req.set("Last-Event-ID", header);
    auto const q = herald::detail::parse_query(herald::detail::target_query(target));
    std::optional<herald::EventId> since;
    std::string detail;
    auto const ec = read_cursor(req, *q, since, detail);
    return std::tuple{ec, since, detail};
  };
  CHECK(std::get<1>(cursor("/p")) == std::nullopt);
  CHECK(std::get<1>(cursor("/p?since=7")) == 7u);
  CHECK(std::get<1>(cursor("/p?lastEventId=8")) == 8u);
  CHECK(std::get<1>(cursor("/p?lastEventId=8", "12")) == 12u);  // EventSource's reconnect header wins
  CHECK(std::get<1>(cursor("/p", "18446744073709551615")) == UINT64_MAX);
  for (auto const& [target, header] : std::vector<std::pair<std::string_view, std::string_view>>{
           {"/p?since=abc", ""}, {"/p?since=", ""}, {"/p?since=1&since=2", ""}, {"/p?since=1&lastEventId=1", ""},
           {"/p?since=-1", ""}, {"/p?since=18446744073709551616", ""}, {"/p", "12abc"}, {"/p?since=x", "5"}}) {
    INFO(target << " / " << header);
    auto const [ec, since, detail] = cursor(target, header);
    CHECK(ec == herald::error::bad_cursor);
    CHECK_FALSE(detail.empty());
  }
}

TEST_CASE("admit_topic: one rule for query topics and run-time subscribes", "[unit][format]") {
  using herald::detail::admit_topic;
  herald::ChannelOptions open, fixed;
  open.limits.max_topic_length = 8;
  fixed.topics = {"a", "b"};
  std::string detail;
  CHECK_FALSE(admit_topic(open, "orders", detail));
  CHECK(admit_topic(open, "ordersXYZ", detail) == herald::error::bad_topic);
  CHECK(detail == "invalid topic name");
  CHECK(admit_topic(open, "", detail) == herald::error::bad_topic);
  CHECK(admit_topic(open, "*", detail) == herald::error::bad_topic);
  CHECK_FALSE(admit_topic(fixed, "b", detail));
  CHECK(admit_topic(fixed, "c", detail) == herald::error::forbidden);
  CHECK(detail == "topic not offered on this channel: c");
}

TEST_CASE("host_allowed: names, ports and wildcard subdomains pass, anything else and no Host are refused",
          "[unit][format]") {
  using herald::detail::host_allowed;
  std::vector<std::string> const none;
  CHECK(host_allowed("anything", none));
  CHECK(host_allowed("", none));
  std::vector<std::string> const list{"app.example", "api.example:8443", "*.example.org", "[::1]"};
  for (auto h : {"app.example", "APP.Example", "app.example:80", "app.example.", "api.example:8443",
                 "a.example.org", "x.y.example.org:1", "[::1]", "[::1]:9"})
    CHECK(host_allowed(h, list));
  for (auto h : {"", "evil.example", "api.example", "api.example:443", "example.org", "xexample.org",
                 "app.example.evil", "app.example:", "app.example:8x", "[::2]", "[::1", ":80"})
    CHECK_FALSE(host_allowed(h, list));
}

TEST_CASE("cors_grant: credentials only for an origin named by the application", "[unit][format]") {
  using herald::detail::cors_grant;
  auto grant = [](std::string_view origin, std::vector<std::string> const& allowed) {
    auto const g = cors_grant(origin, "api.example", allowed);
    return std::pair{g.allow, g.credentials};
  };
  using G = std::pair<std::string, bool>;
  std::vector<std::string> const none, any = {"*"}, both = {"*", "https://app.example"};
  CHECK(grant("http://api.example", none) == G{"http://api.example", true});   // same origin
  CHECK(grant("https://app.example", {"https://app.example"}) == G{"https://app.example", true});
  CHECK(grant("https://evil.example", any) == G{"*", false});  // CWE-942: never cookies for all
  CHECK(grant("null", any) == G{"*", false});
  CHECK(grant("https://APP.example", both) == G{"https://APP.example", true});  // named wins
  CHECK(grant("https://evil.example", both) == G{"*", false});
  CHECK(grant("https://evil.example", none) == G{"", false});     // refused: no CORS headers
  CHECK(grant("https://evil.example", {"https://app.example"}) == G{"", false});
  CHECK(grant("", any) == G{"", false});                           // no Origin: not a CORS request
}

// =============================================================================================
// Topic names and UTF-8
// =============================================================================================

TEST_CASE("valid_utf8", "[unit][format]") {
  using herald::detail::valid_utf8;
  STATIC_REQUIRE(valid_utf8("plain ascii"));
  STATIC_REQUIRE_FALSE(valid_utf8("\xC0\x80"));

  // Valid multibyte sequences, including the boundaries around the surrogate range.
  for (auto s : {""sv, "\xC3\xA9"sv, "\xC2\x80"sv, "\xDF\xBF"sv, "\xE0\xA0\x80"sv, "\xE6\xBC\xA2"sv,
                 "\xED\x9F\xBF"sv, "\xEE\x80\x80"sv, "\xEF\xBF\xBF"sv, "\xF0\x90\x80\x80"sv,
                 "\xF0\x9F\x98\x80"sv, "\xF4\x8F\xBF\xBF"sv, "a\xC3\xA9z"sv}) {
    INFO(show(s));
    CHECK(valid_utf8(s));
  }
  // Invalid: overlongs, surrogates, beyond U+10FFFF, truncated, stray continuation bytes.
  for (auto s : {"\xC0\x80"sv, "\xC1\xBF"sv, "\xE0\x80\x80"sv, "\xE0\x9F\xBF"sv, "\xF0\x80\x80\x80"sv,
                 "\xF0\x8F\xBF\xBF"sv, "\xED\xA0\x80"sv, "\xED\xBF\xBF"sv, "\xED\xB0\x80"sv,
                 "\xF4\x90\x80\x80"sv, "\xF5\x80\x80\x80"sv, "\xF8\x88\x80\x80\x80"sv, "\xFF"sv,
                 "\xFE"sv, "\x80"sv, "\xBF"sv, "a\x80"sv, "\xC3"sv, "\xE6\xBC"sv, "\xF0\x9F\x98"sv,
                 "\xC3\x28"sv, "\xE6\x28\xA2"sv, "\xF0\x9F\x28\x80"sv, "\xC3\xA9\xC3"sv}) {
    INFO(show(s));
    CHECK_FALSE(valid_utf8(s));
  }
}

TEST_CASE("valid_topic", "[unit][format]") {
  using herald::detail::max_topic_length;
  using herald::detail::valid_topic;
  STATIC_REQUIRE(valid_topic("orders"));
  CHECK(valid_topic("orders"));
  CHECK(valid_topic("a/b.c-d_e:f"));
  CHECK(valid_topic("a b"));
  CHECK(valid_topic("a*"));
  CHECK(valid_topic("**"));
  CHECK(valid_topic("\xE6\xBC\xA2\xE5\xAD\x97"));
  CHECK(valid_topic("\xF0\x9F\x98\x80"));
  CHECK(valid_topic(std::string(max_topic_length, 'x')));

  CHECK_FALSE(valid_topic(""));
  CHECK_FALSE(valid_topic("*"));
  CHECK_FALSE(valid_topic(std::string(max_topic_length + 1, 'x')));
  CHECK_FALSE(valid_topic(std::string_view("a\0b", 3)));
  for (int c = 0; c < 0x20; ++c) {
    INFO("control char " << c);
    CHECK_FALSE(valid_topic("a" + std::string(1, static_cast<char>(c)) + "b"));
  }
  CHECK_FALSE(valid_topic("a\x7f"));
  CHECK_FALSE(valid_topic("\xC0\x80"));          // overlong
  CHECK_FALSE(valid_topic("\xED\xA0\x80"));      // surrogate
  CHECK_FALSE(valid_topic("t\xE6\xBC"));         // truncated
  CHECK_FALSE(valid_topic("\xFF"));

  // A caller-supplied limit.
  CHECK(valid_topic("abcd", 4));
  CHECK_FALSE(valid_topic("abcde", 4));
}

// =============================================================================================
// Errors
// =============================================================================================

TEST_CASE("to_http_status maps every herald error", "[unit][format]") {
  using herald::error;
  using herald::detail::to_http_status;
  namespace http = boost::beast::http;
  std::vector<std::pair<error, http::status>> const table = {
      {error::unauthorized, http::status::unauthorized},
      {error::forbidden, http::status::forbidden},
      {error::origin_not_allowed, http::status::forbidden},
      {error::not_found, http::status::not_found},
      {error::method_not_allowed, http::status::method_not_allowed},
      {error::bad_request, http::status::bad_request},
      {error::bad_topic, http::status::bad_request},
      {error::bad_cursor, http::status::bad_request},
      {error::too_many_connections, http::status::service_unavailable},
      {error::too_many_subscriptions, http::status::bad_request},
      {error::message_too_big, http::status::payload_too_large},
      {error::bad_control_message, http::status::bad_request},
      {error::slow_consumer, http::status::service_unavailable},
      {error::cursor_expired, http::status::gone},
      {error::idle_timeout, http::status::request_timeout},
      {error::write_timeout, http::status::service_unavailable},
      {error::shutting_down, http::status::service_unavailable},
      {error::hook_failed, http::status::internal_server_error},
      {error::backplane_unavailable, http::status::service_unavailable},
      {error::too_many_topics, http::status::service_unavailable},
      {error::host_not_allowed, http::status::misdirected_request},
      {error::rate_limited, http::status::too_many_requests},
      {error::credentials_expired, http::status::unauthorized},
      {error::draining, http::status::service_unavailable},
      {error::protocol_error, http::status::bad_request},
      {error::invalid_payload, http::status::bad_request},
  };
  REQUIRE(table.size() == all_errors().size());
  for (auto const& [e, status] : table) {
    INFO(herald::make_error_code(e).message());
    CHECK(to_http_status(e) == status);
  }
  // Foreign categories are internal errors, never a 2xx.
  CHECK(to_http_status(boost::system::error_code{}) == http::status::internal_server_error);
  CHECK(to_http_status(make_error_code(boost::system::errc::permission_denied)) ==
        http::status::internal_server_error);
  // The same value in another category is not mistaken for a herald error.
  CHECK(to_http_status(boost::system::error_code(static_cast<int>(error::not_found),
                                                 boost::system::generic_category())) ==
        http::status::internal_server_error);
}

TEST_CASE("herald error category", "[unit][format]") {
  using herald::condition;
  using herald::error;
  CHECK(std::string_view(herald::error_category().name()) == "herald");
  CHECK(std::string_view(herald::condition_category().name()) == "herald.condition");

  std::vector<std::string> seen;
  for (auto e : all_errors()) {
    boost::system::error_code const ec = e;  // is_error_code_enum
    CHECK(ec.category() == herald::error_category());
    CHECK(ec.value() == static_cast<int>(e));
    std::string const msg = ec.message();
    INFO(msg);
    REQUIRE_FALSE(msg.empty());
    CHECK(msg.back() != '.');
    for (char c : msg) CHECK_FALSE(std::isupper(static_cast<unsigned char>(c)));
    CHECK(std::find(seen.begin(), seen.end(), msg) == seen.end());  // messages are distinct
    seen.push_back(msg);
  }
  for (auto c : {condition::rejected, condition::overloaded, condition::protocol_violation}) {
    auto const msg = herald::make_error_condition(c).message();
    REQUIRE_FALSE(msg.empty());
    CHECK(msg.back() != '.');
  }

  CHECK(herald::make_error_code(error::forbidden) == condition::rejected);
  CHECK(herald::make_error_code(error::unauthorized) == condition::rejected);
  CHECK(herald::make_error_code(error::origin_not_allowed) == condition::rejected);
  CHECK(herald::make_error_code(error::slow_consumer) == condition::overloaded);
  CHECK(herald::make_error_code(error::too_many_connections) == condition::overloaded);
  CHECK(herald::make_error_code(error::too_many_topics) == condition::overloaded);
  CHECK(herald::detail::to_close_code(error::too_many_topics) == 1013);
  CHECK(herald::make_error_code(error::bad_topic) == condition::protocol_violation);
  CHECK(herald::make_error_code(error::message_too_big) == condition::protocol_violation);
  CHECK(herald::make_error_code(error::forbidden) != condition::overloaded);
  CHECK(herald::make_error_code(error::bad_topic) != condition::rejected);
  CHECK(herald::make_error_code(error::slow_consumer) != condition::protocol_violation);
  // Errors outside every group match none.
  for (auto c : {condition::rejected, condition::overloaded, condition::protocol_violation}) {
    CHECK(herald::make_error_code(error::cursor_expired) != c);
    CHECK(herald::make_error_code(error::hook_failed) != c);
  }
  // Plain comparisons against the enum work too.
  boost::system::error_code const ec = error::bad_cursor;
  CHECK(ec == error::bad_cursor);
  CHECK(ec != error::bad_topic);
}

TEST_CASE("error_table: one row per error, and the server's and the clients' maps derive from it", "[unit][format]") {
  using namespace herald::detail;
  std::vector<std::string_view> wires;
  for (auto e : all_errors()) {
    auto const* row = error_info(e);
    INFO(static_cast<int>(e));
    REQUIRE(row != nullptr);
    CHECK(row->code == e);
    CHECK_FALSE(row->wire.empty());
    CHECK(std::find(wires.begin(), wires.end(), row->wire) == wires.end());
    wires.push_back(row->wire);
    CHECK(herald::make_error_code(e).message() == row->message);
    CHECK(static_cast<unsigned>(to_http_status(e)) == row->status);
    CHECK(to_close_code(e) == row->close_code);
    CHECK(ws::sendable_close_code(row->close_code));
    CHECK(wire_name(e) == row->wire);
    // What a client reads back: the wire name exactly, the bare status or close code when primary.
    CHECK(error_from_wire(row->wire) == e);
    auto const body = error_body(e, "why");
    auto const verdict = herald::client::detail::classify_status(row->status, body);
    if (row->status >= 500 || row->status == 408 || row->status == 429) {
      CHECK(verdict.retry);
      CHECK(verdict.ec == herald::client::error::unavailable);
    } else {
      CHECK_FALSE(verdict.retry);
      CHECK(verdict.ec == e);
    }
    if (row->primary_status) CHECK(error_from_status(row->status) == e);
    if (row->primary_close) CHECK(error_from_close_code(row->close_code) == e);
    // A retryable refusal is a 503 that says when to come back; no other answer says so.
    if (row->retryable) CHECK(row->status == 503);
    auto const res = error_response(e, {}, 11, false, std::chrono::seconds(9));
    CHECK((res[boost::beast::http::field::retry_after] == "9") == row->retryable);
  }
  CHECK(retryable(herald::error::too_many_connections));
  CHECK(retryable(herald::error::shutting_down));
  CHECK(retryable(herald::error::backplane_unavailable));
  CHECK_FALSE(retryable(herald::error::forbidden));
  CHECK_FALSE(retryable(boost::system::error_code{}));
  CHECK(error_table.size() == all_errors().size());
  CHECK_FALSE(error_from_wire("no such error"));
  CHECK(herald::client::detail::classify_status(418).ec == herald::client::error::unexpected_status);
  CHECK(herald::client::detail::classify_status(403).ec == herald::error::forbidden);
  CHECK(herald::client::detail::classify_status(403, R"({"error":"origin not allowed"})").ec ==
        herald::error::origin_not_allowed);
}

TEST_CASE("error_body and error_response carry JSON", "[unit][format]") {
  using herald::error;
  for (auto e : all_errors()) {
    auto const body = herald::detail::error_body(e, {});
    INFO(body);
    auto const j = nlohmann::json::parse(body);
    REQUIRE(j.is_object());
    REQUIRE(j.contains("error"));
    CHECK(j["error"] == herald::detail::error_info(e)->wire);
    CHECK_FALSE(j.contains("message"));
  }

  std::string const detail = "bad \"topic\"\n\\ \x01 \xC3\xA9";
  auto const j = nlohmann::json::parse(herald::detail::error_body(error::bad_topic, detail));
  CHECK(j["error"] == "bad topic name");
  CHECK(j["message"] == detail);

  namespace http = boost::beast::http;
  auto const res = herald::detail::error_response(error::method_not_allowed, "use GET", 11, false);
  CHECK(res.result() == http::status::method_not_allowed);
  CHECK(res[http::field::content_type] == "application/json");
  CHECK(res[http::field::allow] == "GET");
  CHECK_FALSE(res.keep_alive());
  CHECK(res[http::field::content_length] == std::to_string(res.body().size()));
  auto const rj = nlohmann::json::parse(res.body().str());
  CHECK(rj["error"] == "method not allowed");
  CHECK(rj["message"] == "use GET");

  auto const forbidden = herald::detail::error_response(error::origin_not_allowed, {}, 11, true);
  CHECK(forbidden.result() == http::status::forbidden);
  CHECK(forbidden[http::field::allow].empty());
  CHECK(forbidden.keep_alive());
  CHECK(nlohmann::json::parse(forbidden.body().str()).contains("error"));
}

TEST_CASE("append_json_escaped produces a JSON string equal to the input", "[unit][format]") {
  auto round_trip = [](std::string const& s) {
    std::string out = "\"";
    herald::detail::append_json_escaped(out, s);
    out += '"';
    INFO(out);
    auto const j = nlohmann::json::parse(out);
    REQUIRE(j.is_string());
    CHECK(j.get<std::string>() == s);
    // Nothing raw below 0x20 may remain.
    for (char c : out) CHECK(static_cast<unsigned char>(c) >= 0x20);
  };
  std::string controls;
  for (int c = 0; c < 0x20; ++c) controls += static_cast<char>(c);
  round_trip("");
  round_trip(controls);
  round_trip("\x7f");
  round_trip(R"(say "hi")");
  round_trip(R"(C:\path\to\"file"\)");
  round_trip("\\u0041 is not unescaped");
  round_trip("</script>");
  round_trip("h\xC3\xA9llo \xE6\xBC\xA2\xE5\xAD\x97 \xF0\x9F\x98\x80 \xE2\x80\xA8");
  round_trip("line\nbreak\r\ttab\b\f");
}

// --- redis:// URLs (herald::redis) -------------------------------------------------------------

TEST_CASE("redis_url: host, port, password, user and database", "[unit][format]") {
  using herald::detail::parse_redis_url;
  std::string problem;
  auto ep = parse_redis_url("redis://127.0.0.1:6390", problem);
  REQUIRE(ep);
  CHECK(ep->host == "127.0.0.1");
  CHECK(ep->port == 6390);
  CHECK(ep->password.empty());
  CHECK(ep->db == 0);

  ep = parse_redis_url("redis://", problem);
  REQUIRE(ep);
  CHECK(ep->host == "127.0.0.1");
  CHECK(ep->port == 6379);

  ep = parse_redis_url("redis://:s%40cret@cache.local/3", problem);
  REQUIRE(ep);
  CHECK(ep->host == "cache.local");
  CHECK(ep->port == 6379);
  CHECK(ep->user.empty());
  CHECK(ep->password == "s@cret");
  CHECK(ep->db == 3);

  ep = parse_redis_url("redis://alice:pw@[::1]:7000/15", problem);
  REQUIRE(ep);
  CHECK(ep->host == "::1");
  CHECK(ep->port == 7000);
  CHECK(ep->user == "alice");
  CHECK(ep->password == "pw");
  CHECK(ep->db == 15);

  ep = parse_redis_url("redis://justpassword@h", problem);  // as redis-cli reads it
  REQUIRE(ep);
  CHECK(ep->user.empty());
  CHECK(ep->password == "justpassword");

  ep = parse_redis_url("unix:///run/redis/redis.sock?db=2", problem);
  REQUIRE(ep);
  CHECK(ep->socket == "/run/redis/redis.sock");
  CHECK(ep->db == 2);
}

TEST_CASE("redis_url: what cannot be used is refused with a reason", "[unit][format]") {
  using herald::detail::parse_redis_url;
  for (char const* bad : {"http://h:6379", "rediss://h", "redis://h:0", "redis://h:65536", "redis://h:x",
                          "redis://h/db", "redis://h/1?timeout=3", "redis://[::1", "redis://[::1]x",
                          "redis://:%zz@h", "unix://relative.sock", "unix:///s?x=1", "",
                          // found by fuzzing (tests/fuzz/corpus/redis_url/negative): a sign passed
                          "redis://h:-1", "redis://h/-2", "unix:///s?db=-1", "redis://h:+1",
                          // and a host with a colon or bracket outside brackets
                          "redis://]::3]:", "redis://a:b:6379", "redis://::1", "redis://h]"}) {
    INFO(bad);
    std::string problem;
    CHECK_FALSE(parse_redis_url(bad, problem));
    CHECK_FALSE(problem.empty());
  }
}

// ---------------------------------------------------------------------------------------------
// Moved here from the e2e files: cases that need no socket.
// ---------------------------------------------------------------------------------------------

namespace ws = herald::detail::ws;
using json = nlohmann::json;
using herald::EventId;
using namespace std::chrono_literals;

TEST_CASE("parse_wait accepts seconds with an optional fraction, up to an hour", "[unit][polling]") {
  using herald::detail::parse_wait;
  CHECK(parse_wait("0") == 0ms);
  CHECK(parse_wait("25") == 25s);
  CHECK(parse_wait("0.05") == 50ms);
  CHECK(parse_wait("1.5") == 1500ms);
  CHECK(parse_wait("0.0001") == 0ms);
  CHECK(parse_wait("000025") == 25s);
  CHECK(parse_wait("3600") == 3600s);
  for (auto bad : {"", "-1", "+1", "abc", "1e3", "1.", ".5", "3600.001", "3601", "99999999999999999999",
                   " 1", "1 ", "0x10", "1.2.3", "nan", "inf"}) {
    INFO(bad);
    CHECK_FALSE(parse_wait(bad));
  }
}

TEST_CASE("parse_limit accepts positive integers", "[unit][polling]") {
  using herald::detail::parse_limit;
  CHECK(parse_limit("1") == 1u);
  CHECK(parse_limit("100") == 100u);
  CHECK(parse_limit("1000000000") == 1000000000u);
  for (auto bad : {"", "0", "-1", "1.5", "x", "1000000001", "99999999999"}) {
    INFO(bad);
    CHECK_FALSE(parse_limit(bad));
  }
}

TEST_CASE("parse_poll_params reads wait and limit and ignores other parameters", "[unit][polling]") {
  using herald::detail::parse_poll_params;
  using herald::detail::PollParams;
  std::string detail;
  PollParams p;
  REQUIRE_FALSE(parse_poll_params({{"topic", "a"}, {"since", "42"}, {"wait", "2.5"}, {"limit", "7"}, {"_", "123"}}, p, detail));
  CHECK(p.wait == 2500ms);
  CHECK(p.limit == 7u);

  PollParams none;
  REQUIRE_FALSE(parse_poll_params({}, none, detail));
  CHECK_FALSE(none.wait);
  CHECK_FALSE(none.limit);

  struct Case {
    herald::detail::QueryParams query;
    herald::error expected;
  };
  std::vector<Case> cases{
      {{{"wait", "-1"}}, herald::error::bad_request},
      {{{"wait", "1"}, {"wait", "1"}}, herald::error::bad_request},
      {{{"limit", "0"}}, herald::error::bad_request},
      {{{"limit", "1"}, {"limit", "1"}}, herald::error::bad_request},
  };
  for (auto const& c : cases) {
    PollParams q;
    std::string why;
    CHECK(parse_poll_params(c.query, q, why) == c.expected);
    CHECK_FALSE(why.empty());
  }
}

TEST_CASE("a poll answer holds a large batch's shared JSON envelopes instead of copying them", "[unit][polling]") {
  using namespace herald::detail;
  auto make = [](EventId id, std::string topic, std::string data, herald::PayloadKind kind, std::string type = {}) {
    herald::Event ev;
    ev.id = id;
    ev.topic = std::move(topic);
    ev.data = std::move(data);
    ev.kind = kind;
    ev.type = std::move(type);
    return std::make_shared<StoredEvent const>(std::move(ev), std::chrono::steady_clock::now());
  };
  auto const expected = [](std::vector<EventPtr> const& events, EventId cursor) {
    std::string out = R"({"events":[)";
    for (std::size_t i = 0; i < events.size(); ++i) out += (i ? "," : "") + json_envelope(*events[i]);
    return out + R"(],"cursor":)" + std::to_string(cursor) + "}\n";
  };

  // A small batch: one string, byte for byte what the answer always was.
  std::vector<EventPtr> small{make(7, "orders", R"({"id":42})", herald::PayloadKind::json),
                              make(8, "bin", std::string("\0\xff", 2), herald::PayloadKind::binary),
                              make(9, "notes", "say \"hi\"\n", herald::PayloadKind::text, "note")};
  auto const copied = AnswerBody::value_type::spliced(poll_frame(9, false, false), poll_frame_events_at, small);
  CHECK(copied.pieces() == 1);
  CHECK(copied.str() == expected(small, 9));
  auto const j = json::parse(copied.str());
  REQUIRE(j["events"].size() == 3);
  CHECK(j["events"][0] == json{{"id", 7}, {"topic", "orders"}, {"data", {{"id", 42}}}});
  CHECK(j["events"][2] == json{{"id", 9}, {"topic", "notes"}, {"event", "note"}, {"data", "say \"hi\"\n"}});
  CHECK(j["cursor"] == 9);
  CHECK_FALSE(j.contains("reset"));
  CHECK_FALSE(j.contains("more"));

  // A large one (from AnswerBody::splice_from bytes): the pieces are the stored envelopes
  // themselves, encoded once, never copied; the answer holds the events, so the bytes outlive
  // the hub's history.
  std::vector<EventPtr> large;
  for (EventId id = 10; id < 13; ++id)
    large.push_back(make(id, "big", std::string(AnswerBody::splice_from / 2, 'x'), herald::PayloadKind::text));
  auto const text = expected(large, 12);
  auto const spliced = AnswerBody::value_type::spliced(poll_frame(12, false, false), poll_frame_events_at, large);
  REQUIRE(spliced.pieces() == 7);  // frame head, three envelopes with two commas between, frame tail
  for (std::size_t i = 0; i < large.size(); ++i)
    CHECK(spliced.piece(2 * i + 1).data() == json_envelope(*large[i]).data());
  large.clear();
  CHECK(spliced.str() == text);
  CHECK(spliced.size() == text.size());
  CHECK(AnswerBody::size(spliced) == text.size());
  // Beast's own serializer writes it too (one piece per write), with its length.
  boost::beast::http::response<AnswerBody> res{boost::beast::http::status::ok, 11};
  res.body() = spliced;
  res.prepare_payload();
  std::ostringstream wire;
  wire << res;
  CHECK(wire.str() == "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(text.size()) + "\r\n\r\n" + text);

  auto const flagged = json::parse(poll_frame(5, true, true));
  CHECK(flagged == json{{"events", json::array()}, {"cursor", 5}, {"reset", true}, {"more", true}});
  CHECK(poll_frame(5, false, false) == "{\"events\":[],\"cursor\":5}\n");
  auto const empty = AnswerBody::value_type::spliced(poll_frame(5, false, false), poll_frame_events_at, {});
  CHECK(empty.str() == poll_frame(5, false, false));
  CHECK(empty.pieces() == 1);
  AnswerBody::value_type plain{std::string("plain")};
  CHECK(plain.str() == "plain");
  plain = std::string("other");
  CHECK(plain.size() == 5);
}

TEST_CASE("poll_etag names the answer and etag_matches follows If-None-Match rules", "[unit][polling]") {
  using namespace herald::detail;
  auto ev = [](EventId id) {
    herald::Event e;
    e.id = id;
    e.topic = "t";
    return std::make_shared<StoredEvent const>(std::move(e), std::chrono::steady_clock::now());
  };
  std::vector<EventPtr> one{ev(3)};
  std::vector<EventPtr> two{ev(3), ev(4)};
  auto const a = poll_etag(one, 3, false, false);
  CHECK(a == poll_etag(one, 3, false, false));
  CHECK(a.front() == '"');
  CHECK(a.back() == '"');
  std::set<std::string> distinct{a, poll_etag(two, 4, false, false), poll_etag(one, 4, false, false),
                                 poll_etag(one, 3, true, false), poll_etag(one, 3, false, true),
                                 poll_etag({}, 3, false, false)};
  CHECK(distinct.size() == 6);

  CHECK(etag_matches(a, a));
  CHECK(etag_matches("W/" + a, a));
  CHECK(etag_matches("\"x\", " + a + " ,\"y\"", a));
  CHECK(etag_matches("*", a));
  CHECK_FALSE(etag_matches("\"x\"", a));
  CHECK_FALSE(etag_matches("", a));
  CHECK_FALSE(etag_matches(a.substr(1), a));
}

TEST_CASE("ws_protocol: control messages are recognised exactly, never by throwing", "[unit][websocket]") {
  using herald::detail::ws::Control;
  using herald::detail::ws::parse_control;
  using Kind = Control::Kind;

  auto sub = parse_control(R"({"subscribe":"orders"})");
  CHECK(sub.kind == Kind::subscribe);
  CHECK(sub.topic == "orders");
  CHECK_FALSE(sub.since);

  auto since = parse_control(R"(  {"since": 41, "subscribe":"orders", "ref": [1,2]} )");
  CHECK(since.kind == Kind::subscribe);
  CHECK(since.since == 41u);
  CHECK(parse_control(R"({"subscribe":"o","since":"18446744073709551615"})").since == 18446744073709551615ull);
  CHECK(parse_control(R"({"subscribe":"o","since":null})").kind == Kind::subscribe);
  CHECK_FALSE(parse_control(R"({"subscribe":"o","since":null})").since);
  // Keys spelled with escapes are still keys.
  CHECK(parse_control(R"({"\u0073ubscribe":"x"})").kind == Kind::subscribe);

  auto unsub = parse_control(R"({"unsubscribe":"orders","since":5})");
  CHECK(unsub.kind == Kind::unsubscribe);
  CHECK(unsub.topic == "orders");

  // The application's messages: not JSON, not objects, objects without the keys.
  for (std::string_view text : {"hello", "", "   ", "[\"subscribe\"]", R"("subscribe")", R"({"text":"subscribe me"})",
                                 R"({"subscribe":)", "{\"subscribe\":\"x\"", R"({"Subscribe":"x"})", "42"}) {
    INFO(text);
    CHECK(parse_control(text).kind == Kind::none);
  }

  // Malformed control messages.
  for (std::string_view text : {R"({"subscribe":5})", R"({"subscribe":null})", R"({"unsubscribe":["a"]})",
                                 R"({"subscribe":"a","unsubscribe":"b"})", R"({"subscribe":"a","since":-1})",
                                 R"({"subscribe":"a","since":1.5})", R"({"subscribe":"a","since":"12x"})",
                                 R"({"subscribe":"a","since":1e30})", R"({"subscribe":"a","since":{}})"}) {
    INFO(text);
    auto c = parse_control(text);
    CHECK(c.kind == Kind::invalid);
    CHECK_FALSE(c.problem.empty());
  }

  // Deep nesting and junk do not throw.
  std::string deep(10000, '[');
  CHECK(parse_control("{\"subscribe\":" + deep).kind == Kind::none);
  CHECK(parse_control(std::string("{\"subscribe\":\"\xff\"}")).kind == Kind::none);
}

TEST_CASE("ws_protocol: acks, errors, binary heads and subprotocols", "[unit][websocket]") {
  namespace ws = herald::detail::ws;
  CHECK(ws::subscribed("or\"ders", 57) == R"({"subscribed":"or\"ders","cursor":57})");
  CHECK(ws::unsubscribed("orders") == R"({"unsubscribed":"orders"})");
  CHECK(ws::error_message(herald::error::forbidden, "orders", "no") ==
        R"({"error":"forbidden","topic":"orders","message":"no"})");
  CHECK(ws::error_message(herald::error::bad_control_message, {}, {}) == R"({"error":"bad control message"})");
  CHECK(ws::error_message(herald::error::bad_topic, std::string(2000, 'x'), "long") ==
        R"({"error":"bad topic name","message":"long"})");

  herald::Event ev;
  ev.id = 7;
  ev.topic = "img";
  ev.type = "png";
  ev.data = std::string("\0\xff\x01", 3);
  ev.kind = herald::PayloadKind::binary;
  auto head = json::parse(ws::encode_binary_head(ev));
  CHECK(head == json{{"id", 7}, {"topic", "img"}, {"event", "png"}, {"binary", true}, {"size", 3}});

  std::vector<std::string> const supported{"herald.v2", "herald.v1"};
  CHECK(ws::select_subprotocol("foo, herald.v1 ,herald.v2", supported) == "herald.v1");
  CHECK(ws::select_subprotocol("foo,bar", supported).empty());
  CHECK(ws::select_subprotocol("", supported).empty());
  CHECK(ws::select_subprotocol(" , herald.v2", supported) == "herald.v2");
  CHECK(herald::detail::http_token("herald.v1"));
  CHECK_FALSE(herald::detail::http_token("a b"));
  CHECK_FALSE(herald::detail::http_token(""));
  // RFC 6455 §7.4 and the IANA registry, at every boundary.
  for (std::uint16_t code : {1000, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 4000, 4999}) {
    INFO(code);
    CHECK(ws::sendable_close_code(code));
  }
  for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535}) {
    INFO(code);
    CHECK_FALSE(ws::sendable_close_code(code));
  }

  // Sec-WebSocket-Key: the base64 of 16 bytes, nothing else.
  CHECK(ws::key_problem("dGhlIHNhbXBsZSBub25jZQ==").empty());
  CHECK(ws::key_problem("AAAAAAAAAAAAAAAAAAAA+/==").empty());
  CHECK(ws::key_problem("") == "Sec-WebSocket-Key is missing");
  for (std::string_view bad : {"abc", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===",
                               "dGhlIHNhbXBsZSBub25jZQAA", "dGhlIHNhbXBsZSBub25jZQ==x"})
    CHECK(ws::key_problem(bad).find("24 characters ending in ==") != std::string_view::npos);
  CHECK(ws::key_problem("dGhlIHNhbXBsZSBub25j-Q==").find("base64 alphabet") != std::string_view::npos);
  CHECK(ws::key_problem("dGhlIHNhbXBsZSBub25j Q==").find("base64 alphabet") != std::string_view::npos);
  CHECK(ws::key_problem("dGhlIHNhbXBsZSBub25jZ===").find("base64 alphabet") != std::string_view::npos);
}

TEST_CASE("error_map: one table from herald errors to WebSocket close codes", "[unit][websocket]") {
  using herald::detail::to_close_code;
  using herald::error;
  CHECK(to_close_code({}) == 1000);
  CHECK(to_close_code(error::shutting_down) == 1001);
  CHECK(to_close_code(error::forbidden) == 1008);
  CHECK(to_close_code(error::bad_control_message) == 1008);
  CHECK(to_close_code(error::message_too_big) == 1009);
  CHECK(to_close_code(error::hook_failed) == 1011);
  CHECK(to_close_code(error::slow_consumer) == 1013);
  CHECK(to_close_code(error::rate_limited) == 1008);
  CHECK(to_close_code(error::draining) == 1012);
  CHECK(to_close_code(error::protocol_error) == 1002);
  CHECK(to_close_code(error::invalid_payload) == 1007);
  CHECK(to_close_code(boost::asio::error::connection_reset) == 1011);
}

TEST_CASE("json envelope: a text payload that is not UTF-8 is repaired, never sent broken", "[unit][websocket]") {
  herald::Event ev;
  ev.id = 1;
  ev.topic = "t";
  ev.data = "ok \xff\xc3\xa9 \xe2\x82";  // bad byte, é, truncated sequence
  ev.kind = herald::PayloadKind::text;
  auto const out = herald::detail::encode_json_envelope(ev);
  CHECK(herald::detail::valid_utf8(out));
  auto const j = json::parse(out);
  CHECK(j["data"] == "ok \xEF\xBF\xBD\xc3\xa9 \xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("query_param: one decoded value, nullopt when absent, repeated or malformed", "[unit][server]") {
  using herald::query_param;
  CHECK(query_param("/p?a=1&b=x%20y", "b") == "x y");
  CHECK(query_param("/p?a=1&b=x%20y", "a") == "1");
  CHECK(query_param("/p?a=&b=2", "a") == "");
  CHECK(query_param("/p?ab=1", "a") == std::nullopt);   // a prefix is another key
  CHECK(query_param("/p", "a") == std::nullopt);
  CHECK(query_param("/p?a=1&a=2", "a") == std::nullopt);  // which one was meant is a guess
  CHECK(query_param("/p?a=1&a=2", "b") == std::nullopt);
  CHECK(query_param("/p?a=1&b=%zz", "a") == std::nullopt);  // a malformed query answers nothing
}
