#pragma once

// permessage-deflate (RFC 7692) on the reading side: inflating a client's compressed message
// into a bounded buffer. Beast's zlib port does the inflating (the same code Beast's
// websocket::stream uses, header-only: no zlib to link).

#include <herald/config.hpp>
#include <herald/error.hpp>

#include <boost/beast/zlib/error.hpp>
#include <boost/beast/zlib/inflate_stream.hpp>
#include <boost/system/error_code.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>

namespace herald::inline v0::detail::ws {

/** What a connection negotiated for permessage-deflate (RFC 7692 §7.1), as its reader needs it:
    the client compresses with at most 2^client_max_window_bits bytes of history and, with
    client_no_context_takeover, starts every message afresh. */
struct DeflateParams {
  bool enabled = false;
  /// 8..15: the window the client compresses with (15 when it did not offer a limit).
  int client_max_window_bits = 15;
  bool client_no_context_takeover = false;
};

/** A connection's bytes held between reads: a partial frame's payload, a fragmented message,
    an inflated message. Empty holds no allocation. 32-bit sizes: a message over 4 GiB is
    refused long before (read_message_max), and the object stays 16 bytes. */
class PartialBytes {
 public:
  char* data() noexcept { return p_.get(); }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return cap_; }
  std::string_view view(std::size_t from, std::size_t n) const noexcept { return {p_.get() + from, n}; }

  /** Make room for `n` bytes in all, growing geometrically but never past `bound` (the most
      the connection may hold), so a message at the limit costs at most the limit. */
  void reserve(std::size_t n, std::size_t bound) {
    if (n <= cap_) return;
    std::size_t cap = std::max<std::size_t>({n, std::min<std::size_t>(std::size_t{cap_} * 2, bound), 256});
    cap = std::min<std::size_t>(std::max(cap, n), 0xffffffffu);
    auto p = std::make_unique_for_overwrite<char[]>(cap);
    if (size_ != 0) std::memcpy(p.get(), p_.get(), size_);
    p_ = std::move(p);
    cap_ = static_cast<std::uint32_t>(cap);
  }

  /// Append `n` bytes at `at` (size() or past it: a control frame's bytes after a message's).
  void write(std::size_t at, char const* bytes, std::size_t n, std::size_t bound) {
    reserve(at + n, bound);
    if (n != 0) std::memcpy(p_.get() + at, bytes, n);
  }

  void resize(std::size_t n) noexcept { size_ = static_cast<std::uint32_t>(n); }

  /// Forget the bytes and give the memory back: an idle connection holds none.
  void release() noexcept {
    p_.reset();
    size_ = cap_ = 0;
  }

 private:
  std::unique_ptr<char[]> p_;
  std::uint32_t size_ = 0;
  std::uint32_t cap_ = 0;
};

/** One connection's inflater: zlib's state (about 7 KB) plus the window, allocated only while
    the connection needs it (see FrameReader). */
class Inflater {
 public:
  explicit Inflater(int window_bits) : bits_(window_bits) { z_.reset(bits_); }

  /** Inflate `in` (the next bytes of the message's compressed payload), appending to `out`
      from out.size(). With `last`, also the 00 00 ff ff that RFC 7692 §7.2.2 has the sender
      strip from every message's end. More than `limit` bytes in `out` is message_too_big;
      data that does not inflate is invalid_payload. */
  boost::system::error_code inflate(std::string_view in, bool last, PartialBytes& out, std::size_t limit) {
    if (auto ec = run(in, out, limit)) return ec;
    if (!last) return {};
    static constexpr char tail[4] = {0x00, 0x00, static_cast<char>(0xff), static_cast<char>(0xff)};
    return run({tail, sizeof tail}, out, limit);
  }

 private:
  boost::system::error_code run(std::string_view in, PartialBytes& out, std::size_t limit) {
    namespace zlib = beast::zlib;
    zlib::z_params zs{};
    zs.next_in = in.data();
    zs.avail_in = in.size();
    for (;;) {
      // One byte of room past the limit: producing it is how an oversized message shows.
      out.reserve(std::min(out.size() + 4096, limit + 1), limit + 1);
      std::size_t const before = out.size();
      zs.next_out = out.data() + before;
      zs.avail_out = out.capacity() - before;
      boost::system::error_code ec;
      z_.write(zs, zlib::Flush::sync, ec);
      out.resize(out.capacity() - zs.avail_out);
      if (out.size() > limit) return error::message_too_big;
      if (ec == zlib::error::end_of_stream) {
        // A block with BFINAL set ends the stream: whatever follows starts a new one.
        z_.reset(bits_);
        if (zs.avail_in == 0) return {};
        continue;
      }
      if (ec && ec != zlib::error::need_buffers) return error::invalid_payload;
      if (zs.avail_out == 0) continue;  // out of room: output may be left inside zlib
      if (zs.avail_in == 0) return {};
      // Input left, room left, and zlib made no progress: it cannot go on.
      if (ec) return error::invalid_payload;
    }
  }

  beast::zlib::inflate_stream z_;
  int bits_;
};

}  // namespace herald::detail::ws
