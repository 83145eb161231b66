#pragma once

#include <herald/config.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <boost/system/error_code.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

namespace herald::inline v0::detail {

/** The frame header of an unmasked, final, single-frame server message (RFC 6455 §5.2):
    what Beast writes ahead of a message when permessage-deflate is off and auto_fragment is. */
inline std::string ws_frame_header(bool binary, std::size_t size) {
  std::string h;
  h += static_cast<char>(binary ? 0x82 : 0x81);
  if (size < 126) {
    h += static_cast<char>(size);
  } else if (size <= 0xffff) {
    h += static_cast<char>(126);
    h += static_cast<char>((size >> 8) & 0xff);
    h += static_cast<char>(size & 0xff);
  } else {
    h += static_cast<char>(127);
    for (int shift = 56; shift >= 0; shift -= 8) h += static_cast<char>((std::uint64_t{size} >> shift) & 0xff);
  }
  return h;
}

/** A whole text message framed for the wire, header and payload in one string (and one
    allocation, given a good `size_hint`): `append(out)` writes the payload. */
template <class Append>
std::string ws_text_frame(std::size_t size_hint, Append&& append) {
  constexpr std::size_t room = 10;  // the longest header
  std::string out;
  out.reserve(room + size_hint);
  out.resize(room);
  std::forward<Append>(append)(out);
  out.replace(0, room, ws_frame_header(false, out.size() - room));  // in place: it only shrinks
  return out;
}

/** Follows the frames a client sends (RFC 6455 §5.2) as their bytes pass, to find the status
    code of its close frame, and makes 1014 acceptable to Beast 1.81: its close-code check
    predates 1014's registration (Bad Gateway, IANA WebSocket close code registry) and would
    fail the connection with 1002. The code is rewritten in place, still masked, to 1000 (the
    same high byte, so the one byte that changes is always in the bytes at hand); Beast then
    completes the close handshake with a normal closure. Every other code is left for Beast
    (1004-1006, 1015, 1016-2999 and below 1000 fail the connection) and for the session (5000
    and above). Only headers are parsed; payloads are skipped by their length. */
class ClientFrames {
 public:
  /// The peer's bytes `p[0, n)`, in order, right after they were read.
  void scan(unsigned char* p, std::size_t n) noexcept {
    while (n != 0) {
      if (left_ == 0) {
        head_[have_++] = *p++;
        --n;
        if (have_ == 2) need_ = static_cast<unsigned char>(2 + ext() + (masked() ? 4 : 0));
        if (have_ >= 2 && have_ == need_) begin_payload();
        continue;
      }
      std::size_t const k = static_cast<std::size_t>(std::min<std::uint64_t>(left_, n));
      if (close_)
        for (std::size_t i = 0; i < k && offset_ + i < 2; ++i) code_byte(p[i], offset_ + i);
      offset_ = static_cast<unsigned char>(std::min<std::size_t>(offset_ + k, 2));  // only the code's 2 bytes matter
      left_ -= k;
      p += k;
      n -= k;
    }
  }

 private:
  unsigned len7() const noexcept { return head_[1] & 0x7fu; }
  bool masked() const noexcept { return (head_[1] & 0x80u) != 0; }

  std::size_t ext() const noexcept { return len7() == 126 ? 2 : len7() == 127 ? 8 : 0; }
  // The masking key stays in head_ until the next frame's header: the payload comes first.
  unsigned char key(std::size_t at) const noexcept { return masked() ? head_[2 + ext() + at % 4] : 0; }

  void begin_payload() noexcept {
    std::size_t const ext = this->ext();
    std::uint64_t len = ext == 0 ? len7() : 0;
    for (std::size_t i = 0; i < ext; ++i) len = (len << 8) | head_[2 + i];
    close_ = (head_[0] & 0x0fu) == 0x8u;
    left_ = len;
    offset_ = 0;
    have_ = 0;
  }

  void code_byte(unsigned char& b, std::size_t at) noexcept {
    auto const plain = static_cast<unsigned char>(b ^ key(at));
    if (at == 0) return void(high_ = plain);
    if (high_ == (1014 >> 8) && plain == (1014 & 0xff))
      b = static_cast<unsigned char>((1000 & 0xff) ^ key(at));
  }

  // Small: one per WebSocket connection (32 bytes).
  std::uint64_t left_ = 0;      // payload bytes of the current frame still to pass
  unsigned char head_[14] = {};  // the current frame's header, as far as it arrived
  unsigned char have_ = 0;       // header bytes in head_
  unsigned char need_ = 0;       // the header's length, once its first 2 bytes are in
  unsigned char offset_ = 0;     // payload bytes passed, up to 2
  unsigned char high_ = 0;       // a close code's first byte, unmasked
  bool close_ = false;
};

template <class Next>
class WsGate;

/// What a gate notes when a write of its own or of Beast's ends.
template <class Next>
struct RawWriteDone {
  WsGate<Next>* gate;
  void operator()(boost::system::error_code, std::size_t) const { gate->raw_write_done(); }
};
template <class Next>
struct BeastWriteDone {
  WsGate<Next>* gate;
  void operator()(boost::system::error_code, std::size_t) const { gate->beast_write_done(); }
};

/// What a gate does with the bytes a read brought: follow the client's frames.
template <class Buffers>
struct ReadDone {
  ClientFrames* frames;
  Buffers buffers;
  void operator()(boost::system::error_code, std::size_t n) const {
    for (auto it = net::buffer_sequence_begin(buffers); n != 0 && it != net::buffer_sequence_end(buffers); ++it) {
      net::mutable_buffer const b = *it;
      std::size_t const k = std::min(n, b.size());
      frames->scan(static_cast<unsigned char*>(b.data()), k);
      n -= k;
    }
  }
};

/** The completion of an operation on a WsGate: the gate's own step (`before`), then the
    handler. It keeps the handler's executor, allocator and cancellation slot (associator,
    below). */
template <class Handler, class Before>
struct GateDone {
  Before before;
  Handler handler;

  void operator()(boost::system::error_code ec, std::size_t n) {
    before(ec, n);
    std::move(handler)(ec, n);
  }
};

/** The next layer of herald's `websocket::stream`: everything passes through, and the session
    may also write *raw*, pre-framed messages straight to the next layer, several in one
    gathered write (Beast writes one message per write, so one syscall per event).

    Beast still writes on its own: pongs and close replies from inside a read, keepalive pings
    from its timer. The gate keeps those from interleaving with a raw write: a Beast write that
    starts during a raw write is parked until the raw write is over, and a raw write is only
    started when no Beast write is in progress (Beast finishes a frame with one write
    operation, and issues a partial write's continuation from inside its completion, so "no
    write_some outstanding" is always a frame boundary). Everything runs on the session's
    strand, like Beast's own operations.

    Reads pass through too, after the bytes the HTTP server read past the upgrade request
    (already_read): a client may send its first frames in the same packet as the request.
    Every byte read is shown to ClientFrames (a close code of 1014, above). */
template <class Next>
class WsGate {
 public:
  using executor_type = typename Next::executor_type;
  using next_layer_type = Next;

  template <class... Args>
  explicit WsGate(Args&&... args) : next_(std::forward<Args>(args)...) {}

  executor_type get_executor() noexcept { return next_.get_executor(); }
  Next& next_layer() noexcept { return next_; }
  Next const& next_layer() const noexcept { return next_; }

  /// Bytes to read before the next layer's: what was read past the upgrade request.
  void already_read(std::string bytes) noexcept { already_read_ = std::move(bytes); }

  template <class Buffers, class Token>
  auto async_read_some(Buffers const& buffers, Token&& token) {
    return net::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, Buffers const& b) {
          if (already_read_.empty())
            return next_.async_read_some(b, GateDone<decltype(handler), ReadDone<Buffers>>{{&frames_, b},
                                                                                         std::move(handler)});
          auto const n = net::buffer_copy(b, net::buffer(already_read_));
          already_read_.erase(0, n);
          ReadDone<Buffers>{&frames_, b}({}, n);
          // Never inline: a completion must not run inside its initiating function.
          net::post(next_.get_executor(), net::append(std::move(handler), boost::system::error_code{}, n));
        },
        token, buffers);
  }

  template <class Buffers, class Token>
  auto async_write_some(Buffers const& buffers, Token&& token) {
    return net::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, Buffers const& b) {
          using H = decltype(handler);
          if (!raw_writing_) return start_beast(b, std::move(handler));
          struct Parked final : ParkedWrite {
            WsGate* gate;
            Buffers buffers;
            H h;
            Parked(WsGate* g, Buffers const& bs, H&& hh) : gate(g), buffers(bs), h(std::move(hh)) {}
            void start() override { gate->start_beast(buffers, std::move(h)); }
          };
          parked_ = std::make_unique<Parked>(this, b, std::move(handler));
        },
        token, buffers);
  }

  /// Whether a raw write may start now; if not, `on_idle` runs once Beast's write is over.
  bool raw_ready() const noexcept { return beast_writing_ == 0 && !raw_writing_; }

  /** What to call (on the strand, as a posted handler should be) when a Beast write ends
      while the session waits to write raw; set once, before the first write. */
  void on_idle(std::function<void()> f) { on_idle_ = std::move(f); }

  /// Ask for on_idle after the Beast write in progress.
  void wait_idle() noexcept { idle_wanted_ = true; }

  /** Write whole frames (a buffer sequence that stays valid until the handler runs) to the
      next layer. Only when raw_ready(). */
  template <class Buffers, class Handler>
  void async_write_raw(Buffers const& buffers, Handler&& handler) {
    raw_writing_ = true;
    net::async_write(next_, buffers,
                     GateDone<std::decay_t<Handler>, RawWriteDone<Next>>{{this}, std::forward<Handler>(handler)});
  }

 private:
  friend struct RawWriteDone<Next>;
  friend struct BeastWriteDone<Next>;

  struct ParkedWrite {
    virtual ~ParkedWrite() = default;
    virtual void start() = 0;
  };

  template <class Buffers, class Handler>
  void start_beast(Buffers const& buffers, Handler&& handler) {
    ++beast_writing_;
    next_.async_write_some(buffers,
                           GateDone<std::decay_t<Handler>, BeastWriteDone<Next>>{{this}, std::forward<Handler>(handler)});
  }

  void raw_write_done() {
    raw_writing_ = false;
    // Beast's parked write goes first: the session's handler may free the gate.
    if (auto p = std::move(parked_)) p->start();
  }

  void beast_write_done() {
    --beast_writing_;
    // Beast's handler may issue the frame's next write, or free the gate: decide before it.
    if (std::exchange(idle_wanted_, false) && on_idle_) on_idle_();
  }

  Next next_;
  std::string already_read_;
  ClientFrames frames_;
  std::unique_ptr<ParkedWrite> parked_;
  std::function<void()> on_idle_;
  int beast_writing_ = 0;
  bool raw_writing_ = false;
  bool idle_wanted_ = false;
};

// Beast tears down the layer below a websocket::stream with (async_)teardown, found by ADL.
template <class Next>
void teardown(beast::role_type role, WsGate<Next>& gate, boost::system::error_code& ec) {
  using beast::websocket::teardown;
  teardown(role, gate.next_layer(), ec);
}

template <class Next, class TeardownHandler>
void async_teardown(beast::role_type role, WsGate<Next>& gate, TeardownHandler&& handler) {
  using beast::websocket::async_teardown;
  async_teardown(role, gate.next_layer(), std::forward<TeardownHandler>(handler));
}

}  // namespace herald::detail

namespace boost::asio {

// The gate's completions run on the wrapped handler's executor, allocator and slot.
template <template <class, class> class Associator, class Handler, class Before, class Default>
struct associator<Associator, herald::detail::GateDone<Handler, Before>, Default> : Associator<Handler, Default> {
  static auto get(herald::detail::GateDone<Handler, Before> const& h) noexcept {
    return Associator<Handler, Default>::get(h.handler);
  }
  static auto get(herald::detail::GateDone<Handler, Before> const& h, Default const& d) noexcept {
    return Associator<Handler, Default>::get(h.handler, d);
  }
};

}  // namespace boost::asio
