#pragma once

// The body of an answer given in place (herald::Response): plain text, or a poll answer whose
// events are the hub's stored JSON envelopes, held by pointer and written from where they are.

#include <herald/detail/buffer_view.hpp>
#include <herald/detail/json_format.hpp>
#include <herald/detail/stored_event.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/optional/optional.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace herald::inline v0::detail {

/** A Beast body (http::message<…, AnswerBody>): text, into which the JSON envelopes of a list of
    stored events may be spliced at one place, comma-separated. A large poll answer holds its
    events by shared pointer, as the hub's history and every other answer do, where a body of
    its own would copy each payload once per waiting client (twenty unread answers of 1,000
    events of 4 KiB held twenty copies). A small one is copied into one string, as before: its
    copy costs less than writing it in pieces, and it pins little. */
struct AnswerBody {
  /// Spliced answers of fewer event bytes than this are copied into their text instead.
  static constexpr std::size_t splice_from = 16 * 1024;

  class value_type {
   public:
    value_type() = default;
    value_type(std::string text) noexcept : text_(std::move(text)) {}  // NOLINT: a body is text
    value_type& operator=(std::string text) noexcept {
      text_ = std::move(text);
      events_.clear();
      spliced_bytes_ = 0;
      return *this;
    }

    /** `text` with the envelopes of `events` inserted at offset `at`, separated by commas:
        referenced in place from splice_from bytes on, copied below. */
    static value_type spliced(std::string text, std::size_t at, std::vector<EventPtr> events) {
      std::size_t bytes = events.empty() ? 0 : events.size() - 1;  // the commas
      for (auto const& ev : events) bytes += json_envelope(*ev).size();
      value_type v;
      if (bytes < splice_from) {
        v.text_.reserve(text.size() + bytes);
        v.text_.append(text, 0, at);
        for (std::size_t i = 0; i < events.size(); ++i) {
          if (i != 0) v.text_ += ',';
          v.text_ += json_envelope(*events[i]);
        }
        v.text_.append(text, at);
        return v;
      }
      v.text_ = std::move(text);
      v.at_ = at;
      v.spliced_bytes_ = bytes;
      v.events_ = std::move(events);
      return v;
    }

    /// Bytes on the wire.
    std::size_t size() const noexcept { return text_.size() + spliced_bytes_; }

    /// How many pieces the body is written in: the text alone, or 2 x events + 1.
    std::size_t pieces() const noexcept { return events_.empty() ? 1 : 2 * events_.size() + 1; }

    /** Piece `i`: the text before the events, then envelope, ",", envelope, …, the text after.
        Valid while this value lives unchanged. */
    net::const_buffer piece(std::size_t i) const noexcept {
      if (events_.empty()) return net::buffer(text_);
      std::string_view const t{text_};
      if (i == 0) return net::buffer(t.substr(0, at_));
      if (i == 2 * events_.size()) return net::buffer(t.substr(at_));
      if (i % 2 == 0) return net::const_buffer(",", 1);
      return net::buffer(json_envelope(*events_[i / 2]));
    }

    /// The whole body as one string (a copy: for tests and logs, never on the write path).
    std::string str() const {
      std::string out;
      out.reserve(size());
      for (std::size_t i = 0; i < pieces(); ++i) {
        auto const b = piece(i);
        out.append(static_cast<char const*>(b.data()), b.size());
      }
      return out;
    }

   private:
    std::string text_;
    std::vector<EventPtr> events_;
    std::size_t at_ = 0;
    std::size_t spliced_bytes_ = 0;
  };

  static std::uint64_t size(value_type const& v) noexcept { return v.size(); }

  /** One piece per call: a text body is one buffer, as with a string body. A spliced body is
      correct this way but takes one write per piece: async_write_answer gathers it instead. */
  class writer {
   public:
    using const_buffers_type = net::const_buffer;

    template <bool isRequest, class Fields>
    writer(http::header<isRequest, Fields> const&, value_type const& v) noexcept : v_(v) {}

    void init(boost::system::error_code& ec) noexcept { ec = {}; }

    boost::optional<std::pair<const_buffers_type, bool>> get(boost::system::error_code& ec) noexcept {
      ec = {};
      if (next_ == v_.pieces()) return boost::none;
      auto const b = v_.piece(next_++);
      return std::pair{b, next_ < v_.pieces()};
    }

   private:
    value_type const& v_;
    std::size_t next_ = 0;
  };
};

/** Write the answer `sr` serializes (its header only with `head_only`), completing `handler`
    with (error, bytes). The header, as Beast renders it, and the body's pieces go out in one
    gathered write, through `gather` (which holds the buffers until the handler runs), where
    Beast's writer would take a write for the header and one per piece. On a plain TCP stream
    whose socket is in non-blocking mode the write is first tried at once (send_now): an answer
    is small and the socket's buffer empty, so it nearly always goes out there, with no
    operation, no reactor and no completion through the scheduler, and the handler runs before
    this returns. A chunked answer is written by Beast, which frames the chunks. The serializer
    renders the header and is not used after: the caller discards it. */
template <class Stream, class Handler>
void async_write_answer(Stream& stream, http::response_serializer<AnswerBody>& sr,
                        std::vector<net::const_buffer>& gather, bool head_only, Handler&& handler) {
  auto const& res = sr.get();
  if (res.chunked()) {
    if (head_only) return http::async_write_header(stream, sr, std::forward<Handler>(handler));
    return http::async_write(stream, sr, std::forward<Handler>(handler));
  }
  gather.clear();
  sr.split(true);  // next() yields the header alone
  boost::system::error_code ec;
  sr.next(ec, [&](boost::system::error_code&, auto const& header) {
    for (auto const b : beast::buffers_range_ref(header)) gather.push_back(b);
  });
  if (ec) {
    auto ex = net::get_associated_executor(handler, stream.get_executor());
    return net::post(ex, [ec, handler = std::forward<Handler>(handler)]() mutable { std::move(handler)(ec, 0); });
  }
  if (!head_only)
    for (std::size_t i = 0; i < res.body().pieces(); ++i) gather.push_back(res.body().piece(i));
  if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
    if (auto& socket = stream.socket(); socket.non_blocking()) {
      std::size_t sent = 0;
      if (send_now(socket, gather, sent)) return std::forward<Handler>(handler)(boost::system::error_code{}, sent);
      if (sent != 0)
        return net::async_write(stream, BufferView(gather),
                                [sent, handler = std::forward<Handler>(handler)](boost::system::error_code e,
                                                                                 std::size_t n) mutable {
                                  std::move(handler)(e, sent + n);
                                });
    }
  }
  net::async_write(stream, BufferView(gather), std::forward<Handler>(handler));
}

}  // namespace herald::detail
