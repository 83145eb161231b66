#pragma once

// The body of an answer given in place (herald::Response): plain text, or a poll answer whose
// events are the hub's stored JSON envelopes, held by pointer and written from where they are.

#include <herald/detail/json_format.hpp>
#include <herald/detail/stored_event.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional/optional.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::inline v0::detail {

/** A Beast body (http::message<…, AnswerBody>): text, into which the JSON envelopes of a list of
    stored events may be spliced at one place, comma-separated. A poll answer holds its events
    by shared pointer, as the hub's history and every other answer do, where a body of its own
    would copy each payload once per waiting client (twenty unread answers of 1,000 large
    events held 20 copies). The writer hands Beast the pieces as one gathered buffer sequence. */
struct AnswerBody {
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

    /** `text` with the envelopes of `events` inserted at offset `at`, separated by commas. The
        envelopes are encoded here if they were not yet (json_envelope), so writing never
        encodes. */
    static value_type spliced(std::string text, std::size_t at, std::vector<EventPtr> events) {
      value_type v{std::move(text)};
      v.at_ = at;
      for (auto const& ev : events) v.spliced_bytes_ += json_envelope(*ev).size() + 1;
      if (!events.empty()) --v.spliced_bytes_;  // n - 1 commas
      v.events_ = std::move(events);
      return v;
    }

    /// Bytes on the wire.
    std::size_t size() const noexcept { return text_.size() + spliced_bytes_; }
    bool empty() const noexcept { return size() == 0; }

    /// The whole body as one string (a copy: for tests and logs, never on the write path).
    std::string str() const;

    class pieces_type;
    /// The body as a buffer sequence: valid while this value lives unchanged.
    pieces_type pieces() const noexcept;

   private:
    std::size_t count() const noexcept { return events_.empty() ? 1 : 2 * events_.size() + 1; }

    // Piece i: the text before the events, then envelope, ",", envelope, …, the text after.
    net::const_buffer piece(std::size_t i) const noexcept {
      if (events_.empty()) return net::buffer(text_);
      std::string_view const t{text_};
      if (i == 0) return net::buffer(t.substr(0, at_));
      if (i == 2 * events_.size()) return net::buffer(t.substr(at_));
      if (i % 2 == 0) return net::const_buffer(",", 1);
      return net::buffer(json_envelope(*events_[i / 2]));
    }

    std::string text_;
    std::vector<EventPtr> events_;
    std::size_t at_ = 0;
    std::size_t spliced_bytes_ = 0;
  };

  static std::uint64_t size(value_type const& v) noexcept { return v.size(); }

  class writer {
   public:
    using const_buffers_type = value_type::pieces_type;

    template <bool isRequest, class Fields>
    writer(http::header<isRequest, Fields> const&, value_type const& v) noexcept : v_(v) {}

    void init(boost::system::error_code& ec) noexcept { ec = {}; }

    boost::optional<std::pair<const_buffers_type, bool>> get(boost::system::error_code& ec) noexcept;

   private:
    value_type const& v_;
  };
};

/** The pieces of a body as a bidirectional buffer sequence, computed as they are visited: no
    vector of buffers is built (Asio gathers at most 64 per write anyway). */
class AnswerBody::value_type::pieces_type {
 public:
  using value_type = net::const_buffer;

  class const_iterator {
   public:
    using iterator_category = std::bidirectional_iterator_tag;
    using value_type = net::const_buffer;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = net::const_buffer;

    const_iterator() = default;
    const_iterator(AnswerBody::value_type const* v, std::size_t i) noexcept : v_(v), i_(i) {}

    net::const_buffer operator*() const noexcept { return v_->piece(i_); }
    const_iterator& operator++() noexcept { return ++i_, *this; }
    const_iterator operator++(int) noexcept { auto t = *this; ++i_; return t; }
    const_iterator& operator--() noexcept { return --i_, *this; }
    const_iterator operator--(int) noexcept { auto t = *this; --i_; return t; }
    bool operator==(const_iterator const& o) const noexcept { return v_ == o.v_ && i_ == o.i_; }

   private:
    AnswerBody::value_type const* v_ = nullptr;
    std::size_t i_ = 0;
  };

  explicit pieces_type(AnswerBody::value_type const& v) noexcept : v_(&v) {}
  const_iterator begin() const noexcept { return {v_, 0}; }
  const_iterator end() const noexcept { return {v_, v_->count()}; }

 private:
  AnswerBody::value_type const* v_;
};

inline AnswerBody::value_type::pieces_type AnswerBody::value_type::pieces() const noexcept {
  return pieces_type{*this};
}

inline std::string AnswerBody::value_type::str() const {
  std::string out;
  out.reserve(size());
  for (auto const b : pieces()) out.append(static_cast<char const*>(b.data()), b.size());
  return out;
}

inline auto AnswerBody::writer::get(boost::system::error_code& ec) noexcept
    -> boost::optional<std::pair<const_buffers_type, bool>> {
  ec = {};
  return std::pair<const_buffers_type, bool>{v_.pieces(), false};
}

}  // namespace herald::detail
