#pragma once

// An incremental parser of the WHATWG event-stream format ("9.2.6 Interpreting an event
// stream"), written independently of herald's encoder (detail/sse_format.hpp) so that each
// checks the other. Bytes arrive in arbitrary chunks: a line, a CRLF pair or the BOM may be
// split anywhere.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace herald::inline v0::client::detail {

/// One dispatched event. The views are valid during the callback only.
struct SseDispatch {
  /// The stream's last event ID buffer at dispatch (persists across events of one stream).
  std::string_view last_event_id;
  /// Whether this event's own block carried an `id:` field.
  bool has_id = false;
  /// The `event:` field; empty when absent (EventSource then reports "message").
  std::string_view type;
  /// The `data:` lines joined with LF, without the final LF.
  std::string_view data;
};

class SseParser {
 public:
  enum class Result : std::uint8_t {
    /// Every byte was consumed.
    ok,
    /// A callback returned false; the rest of the chunk was not parsed.
    stopped,
    /// A line or an event exceeded the size limit; the stream cannot be trusted any more.
    too_big,
  };

  explicit SseParser(std::size_t max_event = 16 * 1024 * 1024) : max_event_(max_event) {}

  /** Parse `chunk`. `on_event(SseDispatch const&) -> bool` runs for each complete event,
      `on_retry(std::chrono::milliseconds)` for each valid `retry:` field; either stops the
      parse by returning false (on_retry may return void). */
  template <class OnEvent, class OnRetry>
  Result feed(std::string_view chunk, OnEvent&& on_event, OnRetry&& on_retry) {
    std::size_t i = 0;
    std::size_t const n = chunk.size();
    // A UTF-8 byte order mark at the very start of the stream is skipped (once).
    while (!bom_done_ && i < n) {
      static constexpr unsigned char bom[3] = {0xEF, 0xBB, 0xBF};
      if (static_cast<unsigned char>(chunk[i]) == bom[bom_seen_]) {
        ++i;
        if (++bom_seen_ == 3) bom_done_ = true;
      } else {
        bom_done_ = true;
        // The bytes taken for a BOM were the start of the first line after all.
        for (std::size_t k = 0; k < bom_seen_; ++k) line_ += static_cast<char>(bom[k]);
      }
    }
    while (i < n) {
      if (skip_lf_) {
        skip_lf_ = false;
        if (chunk[i] == '\n') {
          ++i;
          continue;
        }
      }
      std::size_t j = i;
      while (j < n && chunk[j] != '\r' && chunk[j] != '\n') ++j;
      if (j == n) {
        if (line_.size() + (n - i) > max_event_) return Result::too_big;
        line_.append(chunk.substr(i));
        break;
      }
      std::string_view line = chunk.substr(i, j - i);
      // The bound holds however the line arrived: whole in this chunk or pieced together.
      if (line_.size() + line.size() > max_event_) return Result::too_big;
      if (!line_.empty()) {
        line_.append(line);
        line = line_;
      }
      if (chunk[j] == '\r') skip_lf_ = true;
      i = j + 1;
      Result const r = process(line, on_event, on_retry);
      line_.clear();
      if (r != Result::ok) return r;
    }
    return Result::ok;
  }

  /** A new connection is a new stream: a partial line and a partial event are forgotten
      (EventSource discards an event that was not completed), the buffers start empty, and a
      BOM may appear again. */
  void restart() {
    last_event_id_.clear();
    line_.clear();
    data_.clear();
    type_.clear();
    has_id_ = false;
    skip_lf_ = false;
    bom_done_ = false;
    bom_seen_ = 0;
  }

  /// The last event ID buffer: the value of the stream's latest `id:` field.
  std::string const& last_event_id() const noexcept { return last_event_id_; }

 private:
  template <class OnEvent, class OnRetry>
  Result process(std::string_view line, OnEvent& on_event, OnRetry& on_retry) {
    if (line.empty()) return dispatch(on_event);
    if (line.front() == ':') return Result::ok;  // a comment (heartbeat)
    std::string_view field = line;
    std::string_view value;
    if (auto const colon = line.find(':'); colon != std::string_view::npos) {
      field = line.substr(0, colon);
      value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
      if (data_.size() + value.size() + 1 > max_event_) return Result::too_big;
      data_.append(value);
      data_ += '\n';
    } else if (field == "event") {
      type_.assign(value);
    } else if (field == "id") {
      if (value.find('\0') == std::string_view::npos) {
        last_event_id_.assign(value);
        has_id_ = true;
      }
    } else if (field == "retry") {
      if (value.empty() || value.size() > 12) return Result::ok;
      std::int64_t ms = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return Result::ok;  // not all ASCII digits: ignored
        ms = ms * 10 + (c - '0');
      }
      if constexpr (std::is_same_v<decltype(on_retry(std::chrono::milliseconds(ms))), bool>) {
        if (!on_retry(std::chrono::milliseconds(ms))) return Result::stopped;
      } else {
        on_retry(std::chrono::milliseconds(ms));
      }
    }
    // Any other field is ignored.
    return Result::ok;
  }

  template <class OnEvent>
  Result dispatch(OnEvent& on_event) {
    bool const has_id = has_id_;
    has_id_ = false;
    if (data_.empty()) {
      type_.clear();
      return Result::ok;
    }
    data_.pop_back();  // the LF after the last data line
    SseDispatch const d{last_event_id_, has_id, type_, data_};
    bool const go_on = on_event(d);
    data_.clear();
    type_.clear();
    return go_on ? Result::ok : Result::stopped;
  }

  std::size_t max_event_;
  std::string line_;
  std::string data_;
  std::string type_;
  std::string last_event_id_;
  bool has_id_ = false;
  bool skip_lf_ = false;
  bool bom_done_ = false;
  unsigned bom_seen_ = 0;
};

}  // namespace herald::client::detail
