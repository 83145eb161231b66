// herald's own RFC 6455 frame reader and writer (detail/ws_frame*.hpp, detail/ws_inflate.hpp):
// every framing rule, any split of the input, permessage-deflate; then the reader against the
// frames real clients (Python `websockets`, Node `ws`) put on a loopback socket.
//
// The frames the unit cases feed are built here, byte by byte from RFC 6455 §5.2, not with the
// writer under test; compressed payloads come from Beast's deflater (the reader inflates with
// its inflater), and the cross-check below uses zlib through Python and Node.

#include <herald/detail/topic.hpp>
#include <herald/detail/ws_frame.hpp>
#include <herald/detail/ws_frame_reader.hpp>
#include <herald/error.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/websocket/detail/hybi13.hpp>
#include <boost/beast/zlib/deflate_stream.hpp>
#include <boost/beast/zlib/error.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loopback.hpp"

using namespace std::string_literals;
namespace ws = herald::detail::ws;
using ws::Opcode;

namespace {

constexpr std::array<std::uint8_t, 4> test_key{0x37, 0xfa, 0x21, 0x3d};

/** A client frame: first byte `b0` (FIN, RSV, opcode), masked with `key`, the length in the
    minimal encoding unless `len_bytes` forces one (0: 7-bit, 2, 8) or `claimed` overrides it. */
std::string client_frame(std::uint8_t b0, std::string_view payload, bool masked = true, int len_bytes = -1,
                         std::uint64_t claimed = ~std::uint64_t{0}) {
  std::uint64_t const len = claimed == ~std::uint64_t{0} ? payload.size() : claimed;
  if (len_bytes < 0) len_bytes = len < 126 ? 0 : len <= 0xffff ? 2 : 8;
  std::string f;
  f += static_cast<char>(b0);
  std::uint8_t const m = masked ? 0x80 : 0;
  if (len_bytes == 0) f += static_cast<char>(m | len);
  else f += static_cast<char>(m | (len_bytes == 2 ? 126 : 127));
  for (int i = len_bytes - 1; i >= 0; --i) f += static_cast<char>((len >> (8 * i)) & 0xff);
  if (masked)
    for (auto k : test_key) f += static_cast<char>(k);
  for (std::size_t i = 0; i < payload.size(); ++i)
    f += masked ? static_cast<char>(static_cast<std::uint8_t>(payload[i]) ^ test_key[i % 4]) : payload[i];
  return f;
}

std::string frame(Opcode op, std::string_view payload, bool fin = true, bool rsv1 = false) {
  return client_frame(static_cast<std::uint8_t>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | static_cast<int>(op)), payload);
}

std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
  std::string p{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
  return p + std::string(reason);
}

struct Got {
  Opcode op;
  std::string payload;
  std::uint16_t code;
  bool operator==(Got const&) const = default;
};

std::ostream& operator<<(std::ostream& os, Got const& g) {
  return os << "{op " << static_cast<int>(g.op) << ", " << g.payload.size() << " bytes, code " << g.code << "}";
}

struct Outcome {
  std::vector<Got> got;
  boost::system::error_code ec;
  int client_exit = 0;  // the cross-check's client process
};

/// Feed `stream` in pieces cut at `cuts` (ascending offsets) to a fresh reader.
Outcome feed_cut(std::string stream, std::vector<std::size_t> const& cuts, std::size_t max = 1 << 20,
                 ws::DeflateParams deflate = {}) {
  ws::FrameReader r{deflate};
  Outcome out;
  std::size_t at = 0;
  auto pieces = cuts;
  pieces.push_back(stream.size());
  for (auto end : pieces) {
    // Each piece in a buffer of its own, as reads into a shared per-thread buffer would be.
    std::string piece = stream.substr(at, end - at);
    at = end;
    out.ec = r.feed(std::span<char>(piece.data(), piece.size()), max, [&](ws::Received const& m) {
      out.got.push_back({m.opcode, std::string(m.payload), m.close_code});
    });
    if (out.ec) break;
  }
  return out;
}

Outcome feed(std::string stream, std::size_t max = 1 << 20, ws::DeflateParams deflate = {}) {
  return feed_cut(std::move(stream), {}, max, deflate);
}

/// The close code the reader's error makes the server send.
std::uint16_t close_code_of(boost::system::error_code ec) { return herald::detail::to_close_code(ec); }

/** Compress `messages` as a permessage-deflate client does (RFC 7692 §7.2.1): raw deflate,
    flushed per message, the trailing 00 00 ff ff removed. */
std::vector<std::string> deflate_messages(std::vector<std::string> const& messages, int bits, bool takeover) {
  namespace zlib = boost::beast::zlib;
  zlib::deflate_stream z;
  z.reset(6, bits, 8, zlib::Strategy::normal);
  std::vector<std::string> out;
  for (auto const& m : messages) {
    if (!takeover) z.reset();
    std::string c(m.size() + 64, '\0');
    zlib::z_params zs{};
    zs.next_in = m.data();
    zs.avail_in = m.size();
    zs.next_out = c.data();
    zs.avail_out = c.size();
    boost::system::error_code ec;
    z.write(zs, zlib::Flush::sync, ec);
    if (ec == zlib::error::need_buffers && m.empty()) {
      // Nothing to flush: the empty message of RFC 7692 §7.2.3.6, an empty stored block.
      out.push_back("\x00"s);
      continue;
    }
    REQUIRE(!ec);
    REQUIRE(zs.avail_in == 0);
    c.resize(c.size() - zs.avail_out);
    REQUIRE(c.size() >= 4);
    REQUIRE(c.substr(c.size() - 4) == "\x00\x00\xff\xff"s);
    c.resize(c.size() - 4);
    out.push_back(std::move(c));
  }
  return out;
}

/// A stream that uses every kind of frame: both length encodings, fragments, controls in between.
std::string mixed_stream() {
  std::string s;
  s += frame(Opcode::text, "hello");
  s += frame(Opcode::binary, std::string(300, '\x07'));             // 16-bit length
  s += frame(Opcode::text, "fr\xc3", false);                        // "é" split across fragments
  s += frame(Opcode::ping, "p1");                                   // control inside a message
  s += frame(Opcode::continuation, "\xa9g", false);
  s += frame(Opcode::pong, "");
  s += frame(Opcode::continuation, "ment", true);
  s += frame(Opcode::text, "");
  s += frame(Opcode::binary, std::string(70000, 'b'));              // 64-bit length
  s += frame(Opcode::close, close_payload(1000, "bye"));
  return s;
}

std::vector<Got> mixed_expected() {
  return {{Opcode::text, "hello", 0},
          {Opcode::binary, std::string(300, '\x07'), 0},
          {Opcode::ping, "p1", 0},
          {Opcode::pong, "", 0},
          {Opcode::text, "fr\xc3\xa9gment", 0},
          {Opcode::text, "", 0},
          {Opcode::binary, std::string(70000, 'b'), 0},
          {Opcode::close, "bye", 1000}};
}

}  // namespace

TEST_CASE("ws_frame reader: messages, controls and both extended lengths", "[unit][websocket]") {
  auto const r = feed(mixed_stream());
  CHECK_FALSE(r.ec);
  CHECK(r.got == mixed_expected());

  for (std::size_t n : {0u, 1u, 125u, 126u, 127u, 65535u, 65536u, 65537u}) {
    INFO(n);
    std::string payload(n, 'x');
    for (std::size_t i = 0; i < n; ++i) payload[i] = static_cast<char>('a' + i % 26);
    auto const one = feed(frame(Opcode::text, payload));
    CHECK_FALSE(one.ec);
    REQUIRE(one.got.size() == 1);
    CHECK(one.got[0].payload == payload);
  }
}

TEST_CASE("ws_frame reader: the same stream split at every offset reads the same", "[unit][websocket]") {
  auto const stream = mixed_stream();
  auto const expected = mixed_expected();
  // One cut anywhere (every header byte, every payload position), then a byte at a time.
  for (std::size_t cut = 0; cut <= stream.size(); cut += (cut < 400 || stream.size() - cut < 400) ? 1 : 97) {
    auto const r = feed_cut(stream, {cut});
    INFO("cut at " << cut);
    REQUIRE_FALSE(r.ec);
    REQUIRE(r.got == expected);
  }
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < 600; ++i) every.push_back(i);
  auto const bytewise = feed_cut(stream, every);
  CHECK_FALSE(bytewise.ec);
  CHECK(bytewise.got == expected);
  // Random cuts, fixed seed: many pieces of every size.
  std::mt19937 rng{20261205};
  for (int round = 0; round < 200; ++round) {
    std::vector<std::size_t> cuts;
    for (std::size_t at = 0;;) {
      at += 1 + rng() % 200;
      if (at >= stream.size()) break;
      cuts.push_back(at);
    }
    auto const r = feed_cut(stream, cuts);
    REQUIRE_FALSE(r.ec);
    REQUIRE(r.got == expected);
  }
}

TEST_CASE("ws_frame reader: a frame whole in the read is handed over in place, unmasked", "[unit][websocket]") {
  auto bytes = frame(Opcode::text, "in place") + frame(Opcode::binary, std::string(1000, 'z'));
  ws::FrameReader r;
  std::vector<char const*> where;
  auto ec = r.feed(std::span<char>(bytes.data(), bytes.size()), 4096,
                   [&](ws::Received const& m) { where.push_back(m.payload.data()); });
  CHECK_FALSE(ec);
  REQUIRE(where.size() == 2);
  CHECK(where[0] == bytes.data() + 6);
  CHECK(std::string_view(where[0], 8) == "in place");
  CHECK(where[1] == bytes.data() + 6 + 8 + 8);
  CHECK(r.buffered() == 0);
}

TEST_CASE("ws_frame reader: an idle connection holds nothing but the reader itself", "[unit][websocket]") {
  // The figure issue 16 counts per idle WebSocket: a few dozen bytes.
  STATIC_REQUIRE(sizeof(ws::FrameReader) <= 64);
  auto stream = frame(Opcode::text, std::string(5000, 'a'), false) + frame(Opcode::ping, "x") +
                frame(Opcode::continuation, "b");
  ws::FrameReader r;
  std::size_t const cut = 3000;
  std::size_t messages = 0;
  auto on = [&](ws::Received const&) { ++messages; };
  REQUIRE_FALSE(r.feed(std::span<char>(stream.data(), cut), 1 << 20, on));
  CHECK(r.buffered() >= cut - 10);  // the partial frame's payload, no more than it needs
  CHECK(r.buffered() <= 2 * 5000);
  REQUIRE_FALSE(r.feed(std::span<char>(stream.data() + cut, stream.size() - cut), 1 << 20, on));
  CHECK(messages == 2);
  CHECK(r.buffered() == 0);
  CHECK_FALSE(r.inflating());
}

TEST_CASE("ws_frame reader: idle only between frames and messages, and as new after recycle", "[unit][websocket]") {
  // A connection gives its reader back to the pool when idle() (WsSession::consume), so idle()
  // must be false wherever the reader holds something a new one would not.
  auto const two = frame(Opcode::text, "first", false) + frame(Opcode::continuation, "second");
  std::size_t const first = frame(Opcode::text, "first", false).size();
  auto feed = [](ws::FrameReader& r, std::string bytes) {
    std::vector<std::string> got;
    auto const ec = r.feed(std::span<char>(bytes.data(), bytes.size()), 4096,
                           [&](ws::Received const& m) { got.emplace_back(m.payload); });
    CHECK_FALSE(ec);
    return got;
  };
  ws::FrameReader r;
  CHECK(r.idle());
  CHECK(feed(r, two.substr(0, 1)).empty());  // part of a header
  CHECK_FALSE(r.idle());
  CHECK(feed(r, two.substr(1, 4)).empty());  // the length, part of the mask key
  CHECK_FALSE(r.idle());
  CHECK(feed(r, two.substr(5, first - 5)).empty());  // the first fragment, whole
  CHECK_FALSE(r.idle());  // the message is unfinished
  CHECK(feed(r, two.substr(first)) == std::vector<std::string>{"firstsecond"});
  CHECK(r.idle());

  ws::FrameReader failed;
  auto bad = client_frame(0x81, "unmasked", false);
  CHECK(failed.feed(std::span<char>(bad.data(), bad.size()), 4096, [](auto const&) {}) == herald::error::protocol_error);
  CHECK_FALSE(failed.idle());
  CHECK(failed.recycle());
  CHECK(failed.idle());
  CHECK(feed(failed, frame(Opcode::text, "again")) == std::vector<std::string>{"again"});

  ws::FrameReader closed;
  feed(closed, frame(Opcode::close, ""));
  CHECK(closed.closed());
  CHECK_FALSE(closed.idle());
}

TEST_CASE("ws_frame reader: frames RFC 6455 forbids fail with 1002", "[unit][websocket]") {
  struct Case {
    char const* what;
    std::string bytes;
  };
  std::vector<Case> cases{
      {"unmasked", client_frame(0x81, "hi", false)},
      {"RSV1 without an extension", client_frame(0xc1, "hi")},
      {"RSV2", client_frame(0xa1, "hi")},
      {"RSV3", client_frame(0x91, "hi")},
      {"control frame of 126 bytes", frame(Opcode::ping, std::string(126, 'p'))},
      {"fragmented ping", frame(Opcode::ping, "p", false)},
      {"fragmented close", frame(Opcode::close, close_payload(1000), false)},
      {"continuation with no message", frame(Opcode::continuation, "x")},
      {"a new message inside a fragmented one", frame(Opcode::text, "a", false) + frame(Opcode::text, "b")},
      {"binary inside a fragmented text", frame(Opcode::text, "a", false) + frame(Opcode::binary, "b")},
      {"16-bit length under 126", client_frame(0x82, std::string(125, 'x'), true, 2)},
      {"64-bit length under 65536", client_frame(0x82, std::string(300, 'x'), true, 8)},
      {"64-bit length with its top bit set (2^63)", client_frame(0x82, "", true, 8, std::uint64_t{1} << 63)},
      {"a length of 2^64 - 2", client_frame(0x82, "", true, 8, ~std::uint64_t{1})},
      {"close frame of 1 byte", frame(Opcode::close, "\x03")},
  };
  for (int op : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15})
    cases.push_back({"reserved opcode", client_frame(static_cast<std::uint8_t>(0x80 | op), "")});
  for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535})
    cases.push_back({"close code not allowed", frame(Opcode::close, close_payload(code))});
  for (auto const& c : cases) {
    INFO(c.what);
    auto const r = feed(c.bytes + frame(Opcode::text, "after"));
    CHECK(r.ec == herald::error::protocol_error);
    CHECK(close_code_of(r.ec) == 1002);
    CHECK(r.got.empty());
  }
  // Within a fragmented message, the fragments before the error were not delivered either.
  auto const r = feed(frame(Opcode::text, "a", false) + frame(Opcode::ping, "ok") + client_frame(0x80, "b", false));
  CHECK(r.ec == herald::error::protocol_error);
  CHECK(r.got == std::vector<Got>{{Opcode::ping, "ok", 0}});
}

TEST_CASE("ws_frame reader: the failure is found on the header, before the payload arrives", "[unit][websocket]") {
  ws::FrameReader r;
  std::size_t messages = 0;
  auto on = [&](ws::Received const&) { ++messages; };
  // Two bytes of an unmasked frame are enough.
  std::string head = "\x81\x05";
  CHECK(r.feed(std::span<char>(head.data(), head.size()), 100, on) == herald::error::protocol_error);
  // And the reader stays failed: nothing after is read.
  auto good = frame(Opcode::text, "x");
  CHECK(r.feed(std::span<char>(good.data(), good.size()), 100, on) == herald::error::protocol_error);
  CHECK(messages == 0);

  // A 2^63 - 1 length (a valid encoding) is over any limit: refused on the header alone.
  ws::FrameReader big;
  auto huge = client_frame(0x82, "", true, 8, (std::uint64_t{1} << 63) - 1);
  CHECK(big.feed(std::span<char>(huge.data(), huge.size()), 1 << 20, on) == herald::error::message_too_big);
  CHECK(big.buffered() == 0);
}

TEST_CASE("ws_frame reader: messages over the limit fail with 1009", "[unit][websocket]") {
  std::size_t const max = 1000;
  CHECK_FALSE(feed(frame(Opcode::binary, std::string(max, 'x')), max).ec);
  auto const one = feed(frame(Opcode::binary, std::string(max + 1, 'x')), max);
  CHECK(one.ec == herald::error::message_too_big);
  CHECK(close_code_of(one.ec) == 1009);
  // Fragments add up; control frames in between do not count.
  auto const fragments = frame(Opcode::text, std::string(600, 'a'), false) + frame(Opcode::ping, std::string(125, 'p')) +
                         frame(Opcode::continuation, std::string(400, 'b'));
  auto const exact = feed(fragments, max);
  CHECK_FALSE(exact.ec);
  CHECK(exact.got.size() == 2);
  auto const over = feed(fragments + frame(Opcode::text, std::string(600, 'a'), false) +
                             frame(Opcode::continuation, std::string(401, 'b')),
                         max);
  CHECK(over.ec == herald::error::message_too_big);
  CHECK(over.got.size() == 2);
}

TEST_CASE("ws_frame reader: text must be UTF-8, checked across fragments and reads", "[unit][websocket]") {
  // Valid: characters of 1 to 4 bytes, split anywhere between fragments.
  std::string const text = "a\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\xed\x9f\xbf\xf4\x8f\xbf\xbfz";
  REQUIRE(herald::detail::valid_utf8(text));
  for (std::size_t i = 0; i <= text.size(); ++i) {
    for (std::size_t j = i; j <= text.size(); ++j) {
      auto const r = feed(frame(Opcode::text, text.substr(0, i), false) +
                          frame(Opcode::continuation, text.substr(i, j - i), false) +
                          frame(Opcode::continuation, text.substr(j), true));
      INFO(i << " " << j);
      REQUIRE_FALSE(r.ec);
      REQUIRE(r.got == std::vector<Got>{{Opcode::text, text, 0}});
    }
  }
  // Invalid: overlong forms, surrogates, above U+10FFFF, stray continuation, truncated.
  for (std::string bad : {"\xc0\xaf"s, "\xc1\xbf"s, "\xe0\x9f\xbf"s, "\xed\xa0\x80"s, "\xed\xbf\xbf"s,
                          "\xf0\x8f\xbf\xbf"s, "\xf4\x90\x80\x80"s, "\xf5\x80\x80\x80"s, "\xff"s, "\x80"s,
                          "a\xc3"s, "\xe2\x82"s, "\xf0\x9d\x84"s}) {
    INFO(bad.size());
    auto const r = feed(frame(Opcode::text, bad));
    CHECK(r.ec == herald::error::invalid_payload);
    CHECK(close_code_of(r.ec) == 1007);
    // A binary message carries any bytes.
    CHECK_FALSE(feed(frame(Opcode::binary, bad)).ec);
  }
  // Fail fast: a bad byte in the first fragment fails before the message ends.
  ws::FrameReader r;
  auto first = frame(Opcode::text, "ok\xff", false);
  CHECK(r.feed(std::span<char>(first.data(), first.size()), 100, [](auto const&) {}) ==
        herald::error::invalid_payload);
  // A message may not end inside a character even when the fragments each looked fine.
  CHECK(feed(frame(Opcode::text, "\xe2\x82", false) + frame(Opcode::continuation, "")).ec ==
        herald::error::invalid_payload);
}

TEST_CASE("ws_frame utf8: the streaming check agrees with the whole-string check", "[unit][websocket]") {
  std::mt19937 rng{7};
  std::array<unsigned char, 16> const alphabet{0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                               0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5};
  for (int round = 0; round < 20000; ++round) {
    std::string s(rng() % 9, '\0');
    for (auto& c : s) c = static_cast<char>(alphabet[rng() % alphabet.size()]);
    std::size_t const cut = s.empty() ? 0 : rng() % (s.size() + 1);
    ws::Utf8Stream u;
    bool const ok = u.feed(std::string_view(s).substr(0, cut)) && u.feed(std::string_view(s).substr(cut)) && u.complete();
    INFO(round);
    REQUIRE(ok == herald::detail::valid_utf8(s));
  }
}

TEST_CASE("ws_frame reader: close frames", "[unit][websocket]") {
  auto const empty = feed(frame(Opcode::close, "") + frame(Opcode::text, "never read"));
  CHECK_FALSE(empty.ec);
  CHECK(empty.got == std::vector<Got>{{Opcode::close, "", 1005}});
  for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999}) {
    INFO(code);
    auto const r = feed(frame(Opcode::close, close_payload(code, "r\xc3\xa9")));
    CHECK_FALSE(r.ec);
    CHECK(r.got == std::vector<Got>{{Opcode::close, "r\xc3\xa9", code}});
  }
  auto const bad_reason = feed(frame(Opcode::close, close_payload(1000, "\xc3")));
  CHECK(bad_reason.ec == herald::error::invalid_payload);
  // The longest close frame: code and a 123-byte reason.
  auto const longest = feed(frame(Opcode::close, close_payload(1001, std::string(123, 'r'))));
  CHECK_FALSE(longest.ec);
  CHECK(longest.got.at(0).payload.size() == 123);
  // Inside a fragmented message the close ends the reading; the message is never delivered.
  ws::FrameReader r;
  auto bytes = frame(Opcode::text, "part", false) + frame(Opcode::close, close_payload(1000));
  std::vector<Opcode> ops;
  CHECK_FALSE(r.feed(std::span<char>(bytes.data(), bytes.size()), 100, [&](auto const& m) { ops.push_back(m.opcode); }));
  CHECK(ops == std::vector<Opcode>{Opcode::close});
  CHECK(r.closed());
  CHECK(r.buffered() == 0);
}

TEST_CASE("ws_frame writer: server frame headers and control frames", "[unit][websocket]") {
  CHECK(ws::FrameHeader(Opcode::text, 0).bytes() == "\x81\x00"s);
  CHECK(ws::FrameHeader(Opcode::binary, 125).bytes() == "\x82\x7d"s);
  CHECK(ws::FrameHeader(Opcode::text, 126).bytes() == "\x81\x7e\x00\x7e"s);
  CHECK(ws::FrameHeader(Opcode::text, 65535).bytes() == "\x81\x7e\xff\xff"s);
  CHECK(ws::FrameHeader(Opcode::text, 65536).bytes() == "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"s);
  CHECK(ws::FrameHeader(Opcode::text, 5, false).bytes() == "\x01\x05"s);
  CHECK(ws::FrameHeader(Opcode::continuation, 5, true).bytes() == "\x80\x05"s);
  CHECK(ws::FrameHeader(Opcode::text, 5, true, true).bytes() == "\xc1\x05"s);
  // A whole message, header then payload, at each length encoding.
  for (std::size_t n : {0u, 1u, 125u, 126u, 65535u, 65536u}) {
    std::string const payload(n, 'p');
    auto const framed = ws::frame_message(Opcode::binary, payload);
    CHECK(framed == std::string(ws::FrameHeader(Opcode::binary, n).bytes()) + payload);
  }
  CHECK(ws::frame_message(Opcode::text, "abc", true) == "\xc1\x03" "abc"s);
  static_assert(ws::FrameHeader(Opcode::text, 3).bytes().size() == 2, "usable at compile time");

  CHECK(ws::ControlFrame(Opcode::pong, "abc").bytes() == "\x8a\x03" "abc"s);
  CHECK(ws::ControlFrame(Opcode::ping, "").bytes() == "\x89\x00"s);
  CHECK(ws::ControlFrame(Opcode::pong, std::string(200, 'x')).bytes().size() == 127);
  CHECK(ws::ControlFrame::close(1000).bytes() == "\x88\x02\x03\xe8"s);
  CHECK(ws::ControlFrame::close(1005).bytes() == "\x88\x00"s);
  CHECK(ws::ControlFrame::close(1013, "slow consumer").bytes() == "\x88\x0f\x03\xf5slow consumer"s);
  // A reason too long for a control frame is cut at a character boundary, never inside one.
  std::string reason(122, 'r');
  reason += "\xe2\x82\xac";  // bytes 122..124: the euro sign does not fit
  auto const cut_frame = ws::ControlFrame::close(1001, reason);
  auto const cut = cut_frame.bytes();
  CHECK(cut.size() == 2 + 2 + 122);
  CHECK(herald::detail::valid_utf8(cut.substr(4)));
  // What the writer produces, the reader accepts (masked as a client would).
  for (auto const& f : {ws::ControlFrame::close(4000, "bye"), ws::ControlFrame::close(1000, reason)}) {
    auto const b = f.bytes();
    auto const payload = b.substr(2);
    auto const r = feed(frame(Opcode::close, payload));
    REQUIRE_FALSE(r.ec);
    CHECK(r.got.at(0).payload == payload.substr(2));
  }
}

TEST_CASE("ws_frame reader: permessage-deflate messages inflate, split anywhere", "[unit][websocket]") {
  std::vector<std::string> const messages{
      "hello hello hello hello", "hello hello hello hello, again", std::string(5000, 'a') + "tail",
      "", "\xe2\x82\xac uro \xe2\x82\xac"};
  for (bool takeover : {true, false}) {
    INFO("context takeover " << takeover);
    ws::DeflateParams const params{.enabled = true, .client_max_window_bits = 12,
                                   .client_no_context_takeover = !takeover};
    auto const compressed = deflate_messages(messages, 12, takeover);
    std::string stream;
    std::vector<Got> expected;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      if (i == 2) {
        // Fragmented: RSV1 on the first frame only, a ping in between.
        auto const& c = compressed[i];
        stream += frame(Opcode::text, c.substr(0, 3), false, true);
        stream += frame(Opcode::ping, "mid");
        expected.push_back({Opcode::ping, "mid", 0});
        stream += frame(Opcode::continuation, c.substr(3, 5), false);
        stream += frame(Opcode::continuation, c.substr(8), true);
      } else {
        stream += frame(Opcode::text, compressed[i], true, true);
      }
      expected.push_back({Opcode::text, messages[i], 0});
    }
    // An uncompressed message (RSV1 clear) between compressed ones.
    stream += frame(Opcode::binary, "plain");
    expected.push_back({Opcode::binary, "plain", 0});
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
      auto const r = feed_cut(stream, {cut}, 1 << 20, params);
      INFO("cut at " << cut);
      REQUIRE_FALSE(r.ec);
      REQUIRE(r.got == expected);
    }
    ws::FrameReader r{params};
    REQUIRE_FALSE(r.feed(std::span<char>(stream.data(), stream.size()), 1 << 20, [](auto const&) {}));
    // With context takeover the window must be kept; without, nothing is held between messages.
    CHECK(r.inflating() == takeover);
    CHECK(r.buffered() == 0);
    CHECK(r.idle() == !takeover);  // a connection keeps a reader that holds zlib's window
  }
}

TEST_CASE("ws_frame reader: permessage-deflate limits and violations", "[unit][websocket]") {
  ws::DeflateParams const params{.enabled = true, .client_max_window_bits = 15};
  // A compression bomb: 10 MB of zeros in a few KB; cut at the limit, holding at most the limit.
  std::string const zeros(4 * 1024 * 1024, '\0');
  auto const bomb = deflate_messages({zeros}, 15, true).at(0);
  CHECK(bomb.size() < 20000);
  {
    ws::FrameReader r{params};
    auto bytes = frame(Opcode::binary, bomb, true, true);
    std::size_t most = 0;
    std::size_t const max = 64 * 1024;
    boost::system::error_code ec;
    // In reads of 1000 bytes, watching how much the reader holds.
    for (std::size_t at = 0; at < bytes.size() && !ec; at += 1000) {
      ec = r.feed(std::span<char>(bytes.data() + at, std::min<std::size_t>(1000, bytes.size() - at)), max,
                  [](auto const&) {});
      most = std::max(most, r.buffered());
    }
    CHECK(ec == herald::error::message_too_big);
    CHECK(most <= max + 1);
    CHECK(r.buffered() == 0);
    CHECK_FALSE(r.inflating());
  }
  // At the limit exactly: accepted.
  auto const exact = deflate_messages({std::string(4096, 'q')}, 15, true).at(0);
  CHECK_FALSE(feed(frame(Opcode::binary, exact, true, true), 4096, params).ec);
  CHECK(feed(frame(Opcode::binary, exact, true, true), 4095, params).ec == herald::error::message_too_big);
  // Data that does not inflate (a reserved block type).
  auto const junk = feed(frame(Opcode::binary, "\xff\xff\xff\xff", true, true), 1 << 20, params);
  CHECK(junk.ec == herald::error::invalid_payload);
  CHECK(close_code_of(junk.ec) == 1007);
  // Inflated text is checked as text.
  auto const latin1 = deflate_messages({"caf\xe9"}, 15, true).at(0);
  CHECK(feed(frame(Opcode::text, latin1, true, true), 1 << 20, params).ec == herald::error::invalid_payload);
  CHECK_FALSE(feed(frame(Opcode::binary, latin1, true, true), 1 << 20, params).ec);
  // RSV1 belongs on a message's first frame only, and never on a control frame.
  auto const c = deflate_messages({"abcdef"}, 15, true).at(0);
  CHECK(feed(frame(Opcode::text, c.substr(0, 2), false, true) + frame(Opcode::continuation, c.substr(2), true, true),
             1 << 20, params)
            .ec == herald::error::protocol_error);
  CHECK(feed(frame(Opcode::ping, "x", true, true), 1 << 20, params).ec == herald::error::protocol_error);
  // Without the extension negotiated RSV1 is a protocol error, as for any reserved bit.
  CHECK(feed(frame(Opcode::text, c, true, true)).ec == herald::error::protocol_error);
}

// ---------------------------------------------------------------------------------------------
// Cross-check: the frames of independent clients, captured on a loopback socket.
// ---------------------------------------------------------------------------------------------

namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using net::ip::tcp;

/// What tests/interop/ws_frames_client.{py,mjs} send, in order.
std::vector<Got> cross_check_expected() {
  auto letters = [](std::size_t n) {
    std::string s(n, 'a');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
    return s;
  };
  std::string all_bytes(256, '\0');
  for (int i = 0; i < 256; ++i) all_bytes[static_cast<std::size_t>(i)] = static_cast<char>(i);
  std::string sevens(200000, '\0');
  for (std::size_t i = 0; i < sevens.size(); ++i) sevens[i] = static_cast<char>((i * 7) % 256);
  return {{Opcode::text, "hello", 0},
          {Opcode::text, "", 0},
          {Opcode::text, "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xf0\x9d\x84\x9e", 0},
          {Opcode::binary, all_bytes, 0},
          {Opcode::text, letters(125), 0},
          {Opcode::text, letters(126), 0},
          {Opcode::text, letters(65535), 0},
          {Opcode::text, letters(65536), 0},
          {Opcode::binary, sevens, 0},
          {Opcode::text, "fragmented \xc3\xbc" "ber", 0},
          {Opcode::binary, "abcd", 0},
          {Opcode::ping, "are you there?", 0},
          {Opcode::close, "bye \xe2\x9c\x93", 4000}};
}

/// A client process, stopped by its PID if the test ends before it does.
struct Child {
  pid_t pid = -1;
  int status = -1;

  explicit Child(std::vector<std::string> args) {
    // CTest starts tests with SIGCHLD ignored, which reaps children unasked: their exit
    // status would be lost to waitpid.
    ::signal(SIGCHLD, SIG_DFL);
    pid = ::fork();
    if (pid == 0) {
      ::close_range(3, ~0U, 0);  // nothing of the test (its sockets) lives on in the client
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  Child(Child const&) = delete;
  Child& operator=(Child const&) = delete;
  ~Child() {
    if (pid > 0 && status < 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  bool exited() {
    if (status < 0 && ::waitpid(pid, &status, WNOHANG) != pid) status = -1;
    return status >= 0;
  }
};

/** Run `client` (its argv, the port appended last but one) against a bare handshake that
    answers `extensions`, and read what it sends with herald's reader, through a 1,500-byte
    read buffer (so frames arrive cut wherever TCP and that size cut them). */
Outcome capture(std::vector<std::string> client, std::string mode, std::string extensions,
                ws::DeflateParams deflate) {
  net::io_context ioc;
  tcp::acceptor acceptor{ioc, {net::ip::address_v4::loopback(), 0}};
  client.push_back(std::to_string(acceptor.local_endpoint().port()));
  client.push_back(mode);
  Child child{client};
  REQUIRE(child.pid > 0);

  tcp::socket sock{ioc};
  bool accepted = false;
  acceptor.async_accept(sock, [&](boost::system::error_code ec) { accepted = !ec; });
  REQUIRE(test::run_until(ioc, [&] { return accepted || child.exited(); }, std::chrono::seconds(20)));
  REQUIRE(accepted);

  boost::beast::flat_buffer buf;
  http::request<http::empty_body> req;
  bool have_request = false;
  http::async_read(sock, buf, req, [&](boost::system::error_code ec, std::size_t) { have_request = !ec; });
  REQUIRE(test::run_until(ioc, [&] { return have_request; }, std::chrono::seconds(20)));
  INFO("client offered: " << req[http::field::sec_websocket_extensions]);
  boost::beast::static_string<28> accept_key;
  boost::beast::websocket::detail::make_sec_ws_accept(accept_key, req[http::field::sec_websocket_key]);
  std::string res = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Accept: " + std::string(accept_key.data(), accept_key.size()) + "\r\n";
  if (!extensions.empty()) res += "Sec-WebSocket-Extensions: " + extensions + "\r\n";
  res += "\r\n";
  net::write(sock, net::buffer(res));

  ws::FrameReader reader{deflate};
  Outcome out;
  auto on = [&](ws::Received const& m) {
    out.got.push_back({m.opcode, std::string(m.payload), m.close_code});
    // The writer's pong, built while the ping's bytes are still there; the clients wait for it.
    if (m.opcode == Opcode::ping) net::write(sock, net::buffer(ws::ControlFrame(Opcode::pong, m.payload).bytes()));
  };
  // Bytes read past the request are the first frames.
  std::string early{static_cast<char const*>(buf.cdata().data()), buf.size()};
  out.ec = reader.feed(std::span<char>(early.data(), early.size()), 1 << 20, on);
  std::array<char, 1500> chunk{};
  bool done = false;
  std::function<void()> read_more = [&] {
    sock.async_read_some(net::buffer(chunk), [&](boost::system::error_code ec, std::size_t n) {
      if (ec) return void(done = true);
      out.ec = reader.feed(std::span<char>(chunk.data(), n), 1 << 20, on);
      if (out.ec || reader.closed()) return void(done = true);
      read_more();
    });
  };
  if (!out.ec && !reader.closed()) read_more();
  else done = true;
  REQUIRE(test::run_until(ioc, [&] { return done; }, std::chrono::seconds(30)));
  // Complete the closing handshake, so the client exits on its own, with 0.
  // The server closes the TCP connection first (RFC 6455 §7.1.1); a client waits for it.
  if (reader.closed()) net::write(sock, net::buffer(ws::ControlFrame::close(out.got.back().code).bytes()));
  boost::system::error_code ignored;
  sock.shutdown(tcp::socket::shutdown_both, ignored);
  sock.close(ignored);
  REQUIRE(test::run_until(ioc, [&] { return child.exited(); }, std::chrono::seconds(30)));
  out.client_exit = WIFEXITED(child.status) ? WEXITSTATUS(child.status) : 128 + WTERMSIG(child.status);
  return out;
}

/** tests/interop, from this file's path: absolute, or (Ninja) relative to the top of the build
    tree, which holds the test binary's directory. */
std::string interop_dir() {
  std::filesystem::path const file{__FILE__};
  if (file.is_absolute()) return (file.parent_path() / "interop").string();
  auto const build = std::filesystem::canonical("/proc/self/exe").parent_path().parent_path();
  return ((build / file).lexically_normal().parent_path() / "interop").string();
}

void check_cross(Outcome const& r) {
  auto const expected = cross_check_expected();
  CHECK_FALSE(r.ec);
  CHECK(r.client_exit == 0);
  REQUIRE(r.got.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("message " << i);
    CHECK(r.got[i] == expected[i]);
  }
}

}  // namespace

TEST_CASE("ws_frame reader: what Python websockets sends, plain and compressed", "[e2e][websocket]") {
  std::vector<std::string> const client{"/usr/bin/python3", interop_dir() + "/ws_frames_client.py"};
  SECTION("plain") { check_cross(capture(client, "plain", "", {})); }
  SECTION("the compressed frames really are: a reader without the extension refuses them") {
    auto const refused = capture(client, "deflate", "permessage-deflate", {});
    CHECK(refused.ec == herald::error::protocol_error);
  }
  SECTION("permessage-deflate, a 4 KiB window, context takeover") {
    check_cross(capture(client, "deflate", "permessage-deflate; client_max_window_bits=12",
                        {.enabled = true, .client_max_window_bits = 12}));
  }
  SECTION("permessage-deflate, no context takeover") {
    check_cross(capture(client, "deflate", "permessage-deflate; client_no_context_takeover",
                        {.enabled = true, .client_no_context_takeover = true}));
  }
}

TEST_CASE("ws_frame reader: what Node ws sends, plain and compressed", "[e2e][websocket]") {
  auto const ws_module = interop_dir() + "/node_modules/ws";
  if (!std::filesystem::exists(ws_module) || !std::filesystem::exists("/usr/bin/node")) {
    // scripts/setup installs them; CI runs it. Python's client above checks the same frames.
    WARN("node or tests/interop/node_modules/ws missing: the Node cross-check did not run");
    return;
  }
  std::vector<std::string> const client{"/usr/bin/node", interop_dir() + "/ws_frames_client.mjs"};
  SECTION("plain") { check_cross(capture(client, "plain", "", {})); }
  SECTION("the compressed frames really are: a reader without the extension refuses them") {
    auto const refused = capture(client, "deflate", "permessage-deflate", {});
    CHECK(refused.ec == herald::error::protocol_error);
  }
  SECTION("permessage-deflate, a 4 KiB window, context takeover") {
    check_cross(capture(client, "deflate", "permessage-deflate; client_max_window_bits=12",
                        {.enabled = true, .client_max_window_bits = 12}));
  }
}
