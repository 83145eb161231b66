// Fuzz target: herald's WebSocket frame reader (detail/ws_frame_reader.hpp), which reads every
// byte a client sends once it replaces Beast's websocket::stream.
//
// The first input byte picks the mode and the connection's settings (permessage-deflate and its
// window, context takeover, the message limit).
//   raw:        the rest is the client's byte stream, read whole and again in pieces cut where
//               the input says; both reads must agree exactly (messages and error), and every
//               message delivered must keep the rules (UTF-8 text, within the limit, control
//               frames of at most 125 bytes, nothing after a close or an error).
//   structured: the rest describes valid frames (fragmented messages, controls in between),
//               built here and masked as a client does; the reader must return exactly the
//               messages that went in, however the stream is cut.

#include <herald/detail/topic.hpp>
#include <herald/detail/ws_frame.hpp>
#include <herald/detail/ws_frame_reader.hpp>
#include <herald/error.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fuzz_check.hpp"

namespace {

namespace ws = herald::detail::ws;

struct Got {
  ws::Opcode op;
  std::string payload;
  std::uint16_t code;
  bool operator==(Got const&) const = default;
};

struct Outcome {
  std::vector<Got> got;
  boost::system::error_code ec;
  bool operator==(Outcome const&) const = default;
};

Outcome read(std::string stream, std::vector<std::size_t> const& piece_sizes, std::size_t max,
             ws::DeflateParams const& deflate) {
  ws::FrameReader r{deflate};
  Outcome out;
  std::size_t at = 0;
  std::size_t i = 0;
  bool ended = false;
  while (!out.ec) {
    std::size_t const n = i < piece_sizes.size() ? std::min(piece_sizes[i++], stream.size() - at) : stream.size() - at;
    std::string piece = stream.substr(at, n);  // a buffer of its own: reads do not share bytes
    at += n;
    out.ec = r.feed(std::span<char>(piece.data(), piece.size()), max, [&](ws::Received const& m) {
      FUZZ_CHECK(!ended);
      bool const control = m.opcode == ws::Opcode::close || m.opcode == ws::Opcode::ping || m.opcode == ws::Opcode::pong;
      if (control) FUZZ_CHECK(m.payload.size() <= ws::max_control_payload);
      else FUZZ_CHECK(m.payload.size() <= max);
      if (m.opcode == ws::Opcode::text || m.opcode == ws::Opcode::close) FUZZ_CHECK(herald::detail::valid_utf8(m.payload));
      if (m.opcode == ws::Opcode::close) {
        FUZZ_CHECK(m.close_code == 1005 || ws::receivable_close_code(m.close_code));
        ended = true;
      }
      out.got.push_back({m.opcode, std::string(m.payload), m.close_code});
    });
    // A partial message (or inflated output) and a control frame after it, never more.
    FUZZ_CHECK(r.buffered() <= std::max<std::size_t>(max + ws::max_control_payload, 256));
    if (at == stream.size()) break;
  }
  if (out.ec) {
    FUZZ_CHECK(out.ec == herald::error::protocol_error || out.ec == herald::error::invalid_payload ||
               out.ec == herald::error::message_too_big);
    FUZZ_CHECK(r.buffered() == 0 && !r.inflating());
  }
  FUZZ_CHECK(ended == r.closed());
  return out;
}

std::string client_frame(std::uint8_t b0, std::string_view payload, std::uint32_t key) {
  std::string f(1, static_cast<char>(b0));
  std::size_t const len = payload.size();
  if (len < 126) {
    f += static_cast<char>(0x80 | len);
  } else if (len <= 0xffff) {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(len >> 8);
    f += static_cast<char>(len & 0xff);
  } else {
    f += static_cast<char>(0x80 | 127);
    for (int s = 56; s >= 0; s -= 8) f += static_cast<char>((std::uint64_t{len} >> s) & 0xff);
  }
  char k[4] = {static_cast<char>(key >> 24), static_cast<char>(key >> 16), static_cast<char>(key >> 8),
               static_cast<char>(key)};
  f.append(k, 4);
  for (std::size_t i = 0; i < len; ++i) f += static_cast<char>(payload[i] ^ k[i % 4]);
  return f;
}

/// Valid frames from the input: binary or ASCII text messages, fragmented, pings between.
void structured(FuzzedDataProvider& in, std::size_t max) {
  std::string stream;
  std::vector<Got> expected;
  while (in.remaining_bytes() > 2) {
    bool const text = in.ConsumeBool();
    std::size_t const fragments = in.ConsumeIntegralInRange<std::size_t>(1, 4);
    std::string message;
    std::vector<Got> after;  // a ping after the last fragment comes after the message
    for (std::size_t f = 0; f < fragments; ++f) {
      auto part = in.ConsumeRandomLengthString(400);
      if (text)
        for (auto& c : part) c = static_cast<char>(c & 0x7f);
      message += part;
      auto const op = f == 0 ? (text ? 0x1 : 0x2) : 0x0;
      stream += client_frame(static_cast<std::uint8_t>((f + 1 == fragments ? 0x80 : 0) | op), part,
                             in.ConsumeIntegral<std::uint32_t>());
      if (in.ConsumeBool()) {
        auto const ping = in.ConsumeRandomLengthString(ws::max_control_payload);
        stream += client_frame(0x89, ping, in.ConsumeIntegral<std::uint32_t>());
        (f + 1 == fragments ? after : expected).push_back({ws::Opcode::ping, ping, 0});
      }
    }
    if (message.size() > max) return;  // the raw mode covers the limit
    expected.push_back({text ? ws::Opcode::text : ws::Opcode::binary, message, 0});
    expected.insert(expected.end(), after.begin(), after.end());
  }
  stream += client_frame(0x88, "\x03\xe8", 0x01020304);
  expected.push_back({ws::Opcode::close, "", 1000});
  for (std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{1} << 30}) {
    auto const r = read(stream, std::vector<std::size_t>(stream.size(), piece), max, {});
    FUZZ_CHECK(!r.ec);
    FUZZ_CHECK(r.got == expected);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  FuzzedDataProvider in{data, size};
  auto const setup = in.ConsumeIntegral<std::uint8_t>();
  std::size_t const max = (setup & 0x4) ? 100000 : 64;
  if (setup & 0x1) {
    structured(in, max);
    return 0;
  }
  ws::DeflateParams const deflate{.enabled = (setup & 0x2) != 0,
                                  .client_max_window_bits = 8 + ((setup >> 3) & 0x7),
                                  .client_no_context_takeover = (setup & 0x40) != 0};
  // Cut points first (a few bytes), then the stream: a mutation of either keeps the other.
  std::vector<std::size_t> pieces;
  for (auto n = in.ConsumeIntegralInRange<std::size_t>(0, 8); n > 0; --n)
    pieces.push_back(in.ConsumeIntegralInRange<std::size_t>(0, 300));
  auto const stream = in.ConsumeRemainingBytesAsString();
  auto const whole = read(stream, {}, max, deflate);
  auto const cut = read(stream, pieces, max, deflate);
  FUZZ_CHECK(whole == cut);
  return 0;
}
