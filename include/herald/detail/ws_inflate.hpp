#pragma once

// permessage-deflate (RFC 7692): inflating a client's compressed message into a bounded buffer,
// deflating the server's messages. Beast's zlib port does the work (the same code Beast's
// websocket::stream uses, header-only: no zlib to link).

#include <herald/config.hpp>
#include <herald/error.hpp>

#include <boost/beast/zlib/error.hpp>
#include <boost/beast/zlib/deflate_stream.hpp>
#include <boost/beast/zlib/inflate_stream.hpp>
#include <boost/system/error_code.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
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

/** One connection's deflater for the messages the server sends: zlib's state (the window plus
    about 2^(mem_level + 9) bytes of hash and buffers), allocated by the connection only once
    a message reaches the compression threshold. */
class Deflater {
 public:
  Deflater(int level, int window_bits, int mem_level) {
    z_.reset(level, window_bits, mem_level, beast::zlib::Strategy::normal);
  }

  /** Append the compressed form of the whole message `in` to `out` (RFC 7692 §7.2.1: a sync
      flush, its trailing 00 00 ff ff removed). `no_takeover`: the next message starts from an
      empty window (server_no_context_takeover). */
  void deflate(std::string_view in, std::string& out, bool no_takeover) {
    namespace zlib = beast::zlib;
    zlib::z_params zs{};
    zs.next_in = in.data();
    zs.avail_in = in.size();
    for (;;) {
      std::size_t const before = out.size();
      // Room for incompressible input plus zlib's block overhead, at least a little.
      out.resize(before + std::max<std::size_t>(zs.avail_in + zs.avail_in / 64 + 64, 256));
      zs.next_out = out.data() + before;
      zs.avail_out = out.size() - before;
      boost::system::error_code ec;
      z_.write(zs, zlib::Flush::sync, ec);
      out.resize(out.size() - zs.avail_out);
      // Room left over: the flush is complete (zlib fills the output before it stops).
      if (zs.avail_out != 0 && zs.avail_in == 0) break;
      if (ec && ec != zlib::error::need_buffers) break;  // cannot happen with valid parameters
    }
    // A sync flush ends with an empty stored block, 00 00 ff ff: the receiver adds it back.
    if (out.size() >= 4 && out.compare(out.size() - 4, 4, std::string_view("\x00\x00\xff\xff", 4)) == 0)
      out.resize(out.size() - 4);
    if (no_takeover) z_.reset();
  }

 private:
  beast::zlib::deflate_stream z_;
};

}  // namespace herald::detail::ws
