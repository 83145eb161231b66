#pragma once

// herald's RFC 6455 frame reader for the server side: bytes in (from whatever buffer the
// connection read into), whole messages and control frames out, every framing rule enforced.

#include <herald/detail/topic.hpp>
#include <herald/detail/ws_frame.hpp>
#include <herald/detail/ws_inflate.hpp>
#include <herald/error.hpp>

#include <boost/system/error_code.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

namespace herald::inline v0::detail::ws {

/// What the reader hands over: a whole message or one control frame.
struct Received {
  /// text, binary, close, ping or pong.
  Opcode opcode = Opcode::text;
  /** The message (inflated, and UTF-8 for text), the ping's or pong's bytes, or the close
      reason (UTF-8). Valid only until the callback returns. */
  std::string_view payload;
  /// close only: the client's code, or 1005 (no status) when its frame had none.
  std::uint16_t close_code = 0;
};

/** An incremental reader of a client's frames (RFC 6455 §5, RFC 7692 for permessage-deflate),
    one per connection.

    feed() takes the bytes the connection just read, in any split: a frame may end in the next
    read, or a read may hold many frames. A frame whose payload is all in the given bytes is
    unmasked in place and handed over without a copy; only what ends in a later read is kept
    (a partial frame, a fragmented message so far, a compressed message inflated so far). An
    idle connection's reader holds no allocation: sizeof(FrameReader) bytes in all.

    Every violation fails the connection with the error whose close code (error_table) the
    server sends: protocol_error (1002) for an unmasked frame, RSV bits without a negotiated
    extension, a reserved opcode, a control frame over 125 bytes or fragmented, a
    continuation with no message to continue or a new message inside one, a length that is not
    minimally encoded or has its top bit set, a close frame of 1 byte or with a code RFC 6455
    §7.4 does not allow; invalid_payload (1007) for text or a close reason that is not UTF-8
    (found as soon as the bad byte arrives, across fragments) and a compressed message that
    does not inflate; message_too_big (1009) for a message over the limit, compressed or not
    (checked on the header's length before any payload is stored, and while inflating, so a
    compression bomb stops at the limit). After an error or a close frame, feed() reads no more.

    Not thread-safe; one connection's reads are serial anyway. */
class FrameReader {
 public:
  FrameReader() noexcept = default;
  explicit FrameReader(DeflateParams const& deflate) noexcept
      : deflate_(deflate.enabled),
        no_takeover_(deflate.client_no_context_takeover),
        // zlib cannot deflate with a 256-byte window and quietly uses 512: so may a client.
        window_bits_(static_cast<std::uint8_t>(std::clamp(deflate.client_max_window_bits, 9, 15))) {}

  /** Read `bytes`: `on(Received const&)` runs for each message and control frame completed,
      in order. The bytes are modified (unmasked in place). Returns the connection's error, or
      success when every byte was used (or a close frame ended the reading). A message over
      `max_message` bytes (payload, after inflating) fails with message_too_big. */
  template <class Handler>
  boost::system::error_code feed(std::span<char> bytes, std::size_t max_message, Handler&& on) {
    max_message = std::min<std::size_t>(max_message, 0xffffffffu - 2 * max_control_payload);
    if (error_ != 0) return static_cast<error>(error_);
    char* p = bytes.data();
    std::size_t left = bytes.size();
    while (!closed_) {
      if (!in_payload_) {
        if (left == 0) return {};
        if (auto const e = read_header(p, left, max_message); e != Step::done) {
          if (e == Step::more) return {};
          return fail();
        }
      }
      // The payload (possibly empty) of the frame whose header was just read, or part of it.
      std::size_t const n = static_cast<std::size_t>(std::min<std::uint64_t>(remain_, left));
      key_pos_ = unmask(p, n, key(), key_pos_) & 3u;
      remain_ -= n;
      std::string_view const chunk{p, n};
      p += n;
      left -= n;
      if (auto const r = payload(chunk, max_message, on); r != Step::done) {
        if (r == Step::more) return {};
        return fail();
      }
    }
    return {};
  }

  /// Whether a close frame was read (the reader then reads nothing more).
  bool closed() const noexcept { return closed_; }

  /** The code of a close frame that failed the reading (protocol_error) because RFC 6455 §7.4
      does not allow it; 0 otherwise. A server may treat codes no one could ever send (5000 and
      above) differently from reserved ones. */
  std::uint16_t bad_close_code() const noexcept { return bad_close_; }

  /// Bytes held for what is not complete yet (0 for an idle connection).
  std::size_t buffered() const noexcept { return held_.capacity(); }

  /// Whether zlib's state is allocated (permessage-deflate with context takeover keeps it).
  bool inflating() const noexcept { return inflater_ != nullptr; }

  /** Whether the reader stands between frames with nothing kept: no partial header, frame or
      message, no zlib state, no failure or close. Such a reader is as good as a new one with
      the same DeflateParams, so a connection need not keep it (detail::Pooled). */
  bool idle() const noexcept {
    return !in_payload_ && head_len_ == 0 && message_ == 0 && control_len_ == 0 && !inflater_ && error_ == 0 &&
           !closed_;
  }

  /// For detail::Pooled: back to a new reader's state (its next user configures it).
  bool recycle() noexcept {
    *this = FrameReader();
    return true;
  }

 private:
  enum class Step : std::uint8_t { done, more, failed };

  std::array<std::uint8_t, 4> key() const noexcept { return {head_[0], head_[1], head_[2], head_[3]}; }

  Step failed(error e) noexcept {
    error_ = static_cast<std::uint8_t>(e);
    return Step::failed;
  }

  boost::system::error_code fail() noexcept {
    // Nothing more is read: the memory can go now, not when the session does.
    held_.release();
    inflater_.reset();
    return static_cast<error>(error_);
  }

  /// Collect the header's bytes (2 to 14) and check them as soon as each part is there.
  Step read_header(char*& p, std::size_t& left, std::size_t max_message) {
    auto const take = [&](std::size_t upto) {
      std::size_t const n = std::min(upto - head_len_, left);
      std::memcpy(head_.data() + head_len_, p, n);
      head_len_ = static_cast<std::uint8_t>(head_len_ + n);
      p += n;
      left -= n;
      return head_len_ == upto;
    };
    if (head_len_ < 2) {
      if (!take(2)) return Step::more;
      // Fail fast on the first two bytes: nothing a broken client sends after them matters.
      auto const b0 = head_[0];
      auto const b1 = head_[1];
      std::uint8_t const op = b0 & 0x0fu;
      bool const rsv1 = (b0 & 0x40u) != 0;
      if ((b0 & 0x30u) != 0 || !known_opcode(op) || (b1 & 0x80u) == 0) return failed(error::protocol_error);
      if (is_control(op)) {
        if ((b0 & 0x80u) == 0 || (b1 & 0x7fu) > max_control_payload || rsv1) return failed(error::protocol_error);
      } else if (op == 0) {
        if (message_ == 0 || rsv1) return failed(error::protocol_error);
      } else if (message_ != 0 || (rsv1 && !deflate_)) {
        return failed(error::protocol_error);
      }
    }
    std::uint8_t const len7 = head_[1] & 0x7fu;
    std::size_t const ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    if (!take(2 + ext + 4)) return Step::more;
    head_len_ = 0;

    std::uint64_t len = len7;
    if (ext != 0) {
      len = 0;
      for (std::size_t i = 0; i < ext; ++i) len = len << 8 | head_[2 + i];
      // RFC 6455 §5.2: the minimal encoding, and a 64-bit length's top bit is 0.
      if ((ext == 2 && len < 126) || (ext == 8 && (len <= 0xffff || (len >> 63) != 0)))
        return failed(error::protocol_error);
    }
    std::uint8_t const op = head_[0] & 0x0fu;
    if (!is_control(op)) {
      if (op != 0) {
        message_ = op;
        compressed_ = (head_[0] & 0x40u) != 0;
        utf8_.reset();
      }
      // Refused on the header: a client cannot make the server store what it will refuse.
      if (!compressed_ && len > max_message - held_.size()) return failed(error::message_too_big);
    }
    opcode_ = op;
    fin_ = (head_[0] & 0x80u) != 0;
    // The header's bytes are done with: its first four hold the masking key from now on.
    std::memmove(head_.data(), head_.data() + 2 + ext, 4);
    key_pos_ = 0;
    remain_ = len;
    in_payload_ = true;
    return Step::done;
  }

  /// The frame's next `chunk` of payload, unmasked (remain_ counts what follows it).
  template <class Handler>
  Step payload(std::string_view chunk, std::size_t max_message, Handler& on) {
    std::size_t const message_bound = max_message + max_control_payload;
    if (is_control(opcode_)) {
      std::string_view frame = chunk;
      // Whole in these bytes: handed over in place. Otherwise kept after the message's bytes.
      if (control_len_ != 0 || remain_ != 0) {
        // Room for the whole control frame at once: growing copies only the message's bytes.
        if (control_len_ == 0) held_.reserve(held_.size() + chunk.size() + remain_, message_bound);
        held_.write(held_.size() + control_len_, chunk.data(), chunk.size(), message_bound);
        control_len_ = static_cast<std::uint8_t>(control_len_ + chunk.size());
        if (remain_ != 0) return Step::more;
        frame = held_.view(held_.size(), control_len_);
      }
      in_payload_ = false;
      auto const r = control(frame, on);
      control_len_ = 0;
      if (message_ == 0) held_.release();
      return r;
    }

    bool const text = message_ == static_cast<std::uint8_t>(Opcode::text);
    bool const last = fin_ && remain_ == 0;
    std::string_view message;
    if (compressed_) {
      if (!chunk.empty() || last) {
        if (!inflater_) inflater_ = std::make_unique<Inflater>(static_cast<int>(window_bits_));
        std::size_t const before = held_.size();
        if (auto ec = inflater_->inflate(chunk, last, held_, max_message))
          return failed(static_cast<error>(ec.value()));
        if (text && !utf8_.feed(held_.view(before, held_.size() - before))) return failed(error::invalid_payload);
      }
      message = held_.view(0, held_.size());
    } else {
      if (text && !utf8_.feed(chunk)) return failed(error::invalid_payload);
      if (last && held_.size() == 0) {
        message = chunk;  // the rest of the message is all of it, and in these bytes: no copy
      } else {
        held_.write(held_.size(), chunk.data(), chunk.size(), message_bound);
        held_.resize(held_.size() + chunk.size());
        message = held_.view(0, held_.size());
      }
    }
    if (remain_ != 0) return Step::more;
    in_payload_ = false;
    if (!fin_) return Step::done;
    if (text && !utf8_.complete()) return failed(error::invalid_payload);
    on(Received{static_cast<Opcode>(message_), message, 0});
    message_ = 0;
    held_.release();
    if (compressed_ && no_takeover_) inflater_.reset();  // the next message starts afresh anyway
    compressed_ = false;
    return Step::done;
  }

  template <class Handler>
  Step control(std::string_view payload, Handler& on) {
    auto const op = static_cast<Opcode>(opcode_);
    if (op != Opcode::close) {
      on(Received{op, payload, 0});
      return Step::done;
    }
    std::uint16_t code = 1005;
    if (!payload.empty()) {
      if (payload.size() == 1) return failed(error::protocol_error);
      code = static_cast<std::uint16_t>(static_cast<unsigned char>(payload[0]) << 8 |
                                        static_cast<unsigned char>(payload[1]));
      if (!receivable_close_code(code)) {
        bad_close_ = code == 0 ? 1 : code;  // 0 is a code too; never reported as "none"
        return failed(error::protocol_error);
      }
      payload.remove_prefix(2);
      if (!valid_utf8(payload)) return failed(error::invalid_payload);
    }
    closed_ = true;
    on(Received{op, payload, code});
    held_.release();
    inflater_.reset();
    return Step::done;
  }

  // What is kept between reads: bytes of an unfinished message (and after them, of an
  // unfinished control frame), the frame being read, and the header being collected.
  PartialBytes held_;
  std::unique_ptr<Inflater> inflater_;  // only while a compressed message needs it
  std::uint64_t remain_ = 0;            // payload bytes of the current frame still to come
  std::uint16_t bad_close_ = 0;         // see bad_close_code()
  std::array<std::uint8_t, 14> head_{};  // the header being read; in a payload, the key
  std::uint8_t head_len_ = 0;
  std::uint8_t control_len_ = 0;  // a control frame's payload held so far
  std::uint8_t error_ = 0;        // herald::error once failed
  std::uint8_t message_ = 0;      // the unfinished message's opcode (text, binary), 0 for none
  Utf8Stream utf8_;
  std::uint8_t opcode_ : 4 = 0;   // the current frame's
  std::uint8_t key_pos_ : 2 = 0;
  bool fin_ : 1 = false;
  bool in_payload_ : 1 = false;
  bool compressed_ : 1 = false;
  bool closed_ : 1 = false;
  bool deflate_ : 1 = false;
  bool no_takeover_ : 1 = false;
  std::uint8_t window_bits_ : 4 = 15;
};

}  // namespace herald::detail::ws
