#pragma once

// RFC 6455 framing as pure functions and small value types: opcodes, the server's frame
// headers and close frames (written into fixed buffers, so a payload is sent gathered behind
// its header without a copy), unmasking, and UTF-8 validation that carries its state across
// fragments. No I/O; the reader that uses them is detail/ws_frame_reader.hpp.

#include <herald/detail/ws_protocol.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

namespace herald::inline v0::detail::ws {

/// Frame opcodes (RFC 6455 §5.2); every other value is reserved.
enum class Opcode : std::uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

/// Whether `op` is a control frame's opcode (close, ping, pong; reserved ones included).
constexpr bool is_control(std::uint8_t op) noexcept { return (op & 0x8u) != 0; }

/// Whether RFC 6455 defines `op`: anything else fails the connection with 1002.
constexpr bool known_opcode(std::uint8_t op) noexcept { return op <= 2 || (op >= 8 && op <= 10); }

/// The largest payload of a control frame (RFC 6455 §5.5).
inline constexpr std::size_t max_control_payload = 125;

/** A server frame's header (unmasked: RFC 6455 §5.1 forbids a server to mask), 2 to 10 bytes,
    held in place. Send it gathered with the payload: the payload's bytes stay shared. */
class FrameHeader {
 public:
  /** The header of a frame of `op` carrying `size` bytes. `fin` false starts or continues a
      fragmented message; `rsv1` marks a permessage-deflate message's first frame. */
  constexpr FrameHeader(Opcode op, std::uint64_t size, bool fin = true, bool rsv1 = false) noexcept {
    bytes_[0] = static_cast<char>((fin ? 0x80u : 0u) | (rsv1 ? 0x40u : 0u) | static_cast<unsigned>(op));
    if (size < 126) {
      bytes_[1] = static_cast<char>(size);
      size_ = 2;
    } else if (size <= 0xffff) {
      bytes_[1] = 126;
      size_ = 4;
    } else {
      bytes_[1] = 127;
      size_ = 10;
    }
    // The extended length, big-endian, minimal (what RFC 6455 §5.2 asks of every sender).
    for (std::size_t i = 2; i < size_; ++i)
      bytes_[i] = static_cast<char>((size >> (8 * (size_ - 1u - i))) & 0xffu);
  }

  constexpr std::string_view bytes() const noexcept { return {bytes_.data(), size_}; }

 private:
  std::array<char, 10> bytes_{};
  std::uint8_t size_ = 0;
};

/** A whole server message as one frame, header and payload in one string (one allocation,
    given a good `size_hint`): `append(out)` writes the payload. What the connection queues: its
    bytes go out as they are, and an event's are shared by every subscriber. */
template <class Append>
std::string frame_message(Opcode op, std::size_t size_hint, Append&& append, bool rsv1 = false) {
  constexpr std::size_t room = 10;  // the longest header
  std::string out;
  out.reserve(room + size_hint);
  out.resize(room);
  std::forward<Append>(append)(out);
  FrameHeader const header(op, out.size() - room, true, rsv1);
  out.replace(0, room, header.bytes());  // in place: it only shrinks
  return out;
}

/// `payload` as one whole server frame of `op`.
inline std::string frame_message(Opcode op, std::string_view payload, bool rsv1 = false) {
  return frame_message(op, payload.size(), [&](std::string& out) { out += payload; }, rsv1);
}

/** A whole server control frame (RFC 6455 §5.5), header and payload in one fixed buffer: a
    pong echoes a ping's bytes that are gone once the reader's callback returns, and a close
    frame is built where no allocation should happen (a connection failing under memory
    pressure). */
class ControlFrame {
 public:
  /// A ping or pong carrying `payload`, cut to the 125 bytes a control frame may carry.
  constexpr ControlFrame(Opcode op, std::string_view payload) noexcept {
    if (payload.size() > max_control_payload) payload = payload.substr(0, max_control_payload);
    copy(FrameHeader(op, payload.size()).bytes(), 0);
    copy(payload, 2);
    size_ = static_cast<std::uint8_t>(2 + payload.size());
  }

  /** A close frame: `code`, then `reason` cut to the 123 bytes that fit, at a UTF-8 character
      boundary (a cut inside a character would make the peer fail the connection with 1007).
      Code 1005 ("no status", RFC 6455 §7.1.5) sends an empty body. */
  static constexpr ControlFrame close(std::uint16_t code, std::string_view reason = {}) noexcept {
    if (code == 1005) return ControlFrame(Opcode::close, {});
    if (reason.size() > max_control_payload - 2) {
      std::size_t n = max_control_payload - 2;
      // Back up over continuation bytes to the start of the character that does not fit.
      while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xc0u) == 0x80u) --n;
      reason = reason.substr(0, n);
    }
    ControlFrame f(Opcode::close, {});
    f.copy(FrameHeader(Opcode::close, 2 + reason.size()).bytes(), 0);
    f.bytes_[2] = static_cast<char>(code >> 8);
    f.bytes_[3] = static_cast<char>(code & 0xffu);
    f.copy(reason, 4);
    f.size_ = static_cast<std::uint8_t>(4 + reason.size());
    return f;
  }

  constexpr std::string_view bytes() const noexcept { return {bytes_.data(), size_}; }

 private:
  constexpr void copy(std::string_view s, std::size_t at) noexcept {
    for (std::size_t i = 0; i < s.size(); ++i) bytes_[at + i] = s[i];
  }

  std::array<char, 2 + max_control_payload> bytes_{};
  std::uint8_t size_ = 0;
};

/** Whether a client's close frame may carry `code` (RFC 6455 §7.4): the codes an endpoint may
    send, so 1004-1006 and 1015 (never in a frame), 1016-2999 (unassigned) and 5000 and above
    (no such code) fail the connection. */
constexpr bool receivable_close_code(std::uint16_t code) noexcept { return sendable_close_code(code); }

/** XOR `data` with the 4-byte masking key `key`, starting at key byte `pos` (0..3), in place
    (RFC 6455 §5.3); returns the key position after the last byte. */
inline std::uint8_t unmask(char* data, std::size_t size, std::array<std::uint8_t, 4> key, std::uint8_t pos) noexcept {
  std::size_t i = 0;
  // Eight bytes at a time with the key rotated to `pos`; the bytes themselves stay in order.
  std::array<std::uint8_t, 8> k8{};
  for (std::size_t j = 0; j < 8; ++j) k8[j] = key[(pos + j) & 3u];
  std::uint64_t k;
  std::memcpy(&k, k8.data(), 8);
  for (; i + 8 <= size; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, data + i, 8);
    v ^= k;
    std::memcpy(data + i, &v, 8);
  }
  for (; i < size; ++i) data[i] = static_cast<char>(static_cast<std::uint8_t>(data[i]) ^ key[(pos + i) & 3u]);
  return static_cast<std::uint8_t>((pos + size) & 3u);
}

/** UTF-8 validation fed in pieces (RFC 3629: no overlongs, no surrogates, nothing above
    U+10FFFF): a character split between two fragments or two reads is checked once whole, and
    a bad byte is found as soon as it arrives (so a connection fails fast, not at the end of a
    long message). One byte of state. */
class Utf8Stream {
 public:
  /// Check `s` as the continuation of everything fed before; false once anything was invalid.
  constexpr bool feed(std::string_view s) noexcept {
    std::size_t i = 0;
    while (i < s.size()) {
      if (state_ == accept) {
        // The common case, ASCII, a byte at a time without the state machine.
        while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80u) ++i;
        if (i == s.size()) break;
      }
      state_ = next(state_, static_cast<unsigned char>(s[i++]));
      if (state_ == reject) return false;
    }
    return state_ != reject;
  }

  /// Whether everything fed so far ends on a character boundary (a message may end here).
  constexpr bool complete() const noexcept { return state_ == accept; }

  constexpr void reset() noexcept { state_ = accept; }

 private:
  // What the next byte must be: `accept` a character's first byte; `tail1..3` that many
  // continuation bytes (80..BF); the others restrict the second byte of a 3- or 4-byte form
  // (E0: A0..BF against overlongs; ED: 80..9F against surrogates; F0: 90..BF; F4: 80..8F).
  enum State : std::uint8_t { accept, tail1, tail2, tail3, after_e0, after_ed, after_f0, after_f4, reject };

  static constexpr State next(State s, unsigned char c) noexcept {
    auto in = [c](unsigned lo, unsigned hi) { return c >= lo && c <= hi; };
    switch (s) {
      case accept:
        if (c < 0x80u) return accept;
        if (in(0xc2, 0xdf)) return tail1;
        if (c == 0xe0u) return after_e0;
        if (c == 0xedu) return after_ed;
        if (in(0xe1, 0xef)) return tail2;
        if (c == 0xf0u) return after_f0;
        if (c == 0xf4u) return after_f4;
        if (in(0xf1, 0xf3)) return tail3;
        return reject;
      case tail1: return in(0x80, 0xbf) ? accept : reject;
      case tail2: return in(0x80, 0xbf) ? tail1 : reject;
      case tail3: return in(0x80, 0xbf) ? tail2 : reject;
      case after_e0: return in(0xa0, 0xbf) ? tail1 : reject;
      case after_ed: return in(0x80, 0x9f) ? tail1 : reject;
      case after_f0: return in(0x90, 0xbf) ? tail2 : reject;
      case after_f4: return in(0x80, 0x8f) ? tail2 : reject;
      case reject: return reject;
    }
    return reject;
  }

  State state_ = accept;
};

}  // namespace herald::detail::ws
