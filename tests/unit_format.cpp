// Unit tests of herald's pure formatting and parsing helpers: SSE framing, base64, query and
// cursor parsing, Origin checks, topic names, the error category and JSON escaping. No sockets.
//
// The SSE framing is checked against an independent event-stream parser written below from the
// WHATWG HTML spec ("9.2.6 Interpreting an event stream"), not against herald's own code.

#include <herald/detail/base64.hpp>
#include <herald/detail/error_map.hpp>
#include <herald/detail/http.hpp>
#include <herald/detail/redis_url.hpp>
#include <herald/detail/response.hpp>
#include <herald/detail/sse_format.hpp>
#include <herald/detail/topic.hpp>
#include <herald/error.hpp>
#include <herald/event.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace std::string_literals;
using namespace std::string_view_literals;

namespace {

// ---------------------------------------------------------------------------------------------
// An independent, minimal WHATWG event-stream parser.
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

/// Splits on CRLF, LF or CR (in that order of precedence), as the spec's line rule does.
std::vector<std::string> split_lines(std::string_view s, bool& unterminated) {
  std::vector<std::string> lines;
  std::string cur;
  unterminated = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char const c = s[i];
    if (c == '\r') {
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
      lines.push_back(std::move(cur));
      cur.clear();
    } else if (c == '\n') {
      lines.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) {
    unterminated = true;  // an incomplete line at end of stream is never processed
  }
  return lines;
}

ParsedStream parse_event_stream(std::string_view stream) {
  ParsedStream out;
  bool unterminated = false;
  auto const lines = split_lines(stream, unterminated);
  std::string data;
  std::string type;
  std::string last_id;
  bool pending = false;  // fields seen since the last dispatch
  for (auto const& line : lines) {
    if (line.empty()) {
      pending = false;
      if (data.empty()) {
        type.clear();
        continue;
      }
      if (data.back() == '\n') data.pop_back();
      out.events.push_back({type.empty() ? "message" : type, data, last_id});
      data.clear();
      type.clear();
      continue;
    }
    if (line.front() == ':') {
      ++out.comments;
      continue;
    }
    pending = true;
    std::string field;
    std::string value;
    auto const colon = line.find(':');
    if (colon == std::string::npos) {
      field = line;
    } else {
      field = line.substr(0, colon);
      value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.erase(0, 1);
    }
    if (field == "event") {
      ++out.event_fields;
      type = value;
    } else if (field == "data") {
      data += value;
      data += '\n';
    } else if (field == "id") {
      ++out.id_fields;
      if (value.find('\0') == std::string::npos) last_id = value;
    } else if (field == "retry") {
      bool digits = !value.empty();
      for (char c : value) digits = digits && c >= '0' && c <= '9';
      if (digits) out.retry = std::stoll(value);
    }
    // any other field is ignored
  }
  out.trailing_partial = pending || unterminated;
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

std::vector<herald::error> all_errors() {
  using herald::error;
  return {error::unauthorized,       error::forbidden,
          error::origin_not_allowed, error::not_found,
          error::method_not_allowed, error::bad_request,
          error::bad_topic,          error::bad_cursor,
          error::too_many_connections, error::too_many_subscriptions,
          error::message_too_big,    error::bad_control_message,
          error::slow_consumer,      error::cursor_expired,
          error::idle_timeout,       error::write_timeout,
          error::shutting_down,      error::hook_failed,
          error::backplane_unavailable, error::too_many_topics};
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
      {error::slow_consumer, http::status::internal_server_error},
      {error::cursor_expired, http::status::internal_server_error},
      {error::idle_timeout, http::status::internal_server_error},
      {error::write_timeout, http::status::internal_server_error},
      {error::shutting_down, http::status::service_unavailable},
      {error::hook_failed, http::status::internal_server_error},
      {error::backplane_unavailable, http::status::service_unavailable},
      {error::too_many_topics, http::status::service_unavailable},
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

TEST_CASE("error_body and error_response carry JSON", "[unit][format]") {
  using herald::error;
  for (auto e : all_errors()) {
    auto const body = herald::detail::error_body(e, {});
    INFO(body);
    auto const j = nlohmann::json::parse(body);
    REQUIRE(j.is_object());
    REQUIRE(j.contains("error"));
    CHECK(j["error"] == herald::make_error_code(e).message());
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
  auto const rj = nlohmann::json::parse(res.body());
  CHECK(rj["error"] == "method not allowed");
  CHECK(rj["message"] == "use GET");

  auto const forbidden = herald::detail::error_response(error::origin_not_allowed, {}, 11, true);
  CHECK(forbidden.result() == http::status::forbidden);
  CHECK(forbidden[http::field::allow].empty());
  CHECK(forbidden.keep_alive());
  CHECK(nlohmann::json::parse(forbidden.body()).contains("error"));
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
