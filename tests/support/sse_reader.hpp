#pragma once

// An independent incremental WHATWG event-stream parser for assertions. It deliberately shares
// no code with herald's encoder, so a test cannot pass because both sides share a bug.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace test {

struct SseEvent {
  std::string id;    // the last event id in effect when the event was dispatched
  std::string type;  // "message" unless an event: field said otherwise
  std::string data;
};

class SseReader {
 public:
  /// Feed body bytes (headers already removed); complete events are appended to events().
  void feed(std::string_view bytes) {
    for (char c : bytes) {
      if (skip_lf_) {
        skip_lf_ = false;
        if (c == '\n') continue;
      }
      if (c == '\r' || c == '\n') {
        skip_lf_ = c == '\r';
        line(line_);
        line_.clear();
      } else {
        line_ += c;
      }
    }
  }

  /// Feed the whole body seen so far; only the bytes not fed before are parsed.
  void feed_all(std::string const& body) {
    if (body.size() > consumed_) feed(std::string_view(body).substr(consumed_));
    consumed_ = body.size();
  }

  std::vector<SseEvent> const& events() const { return events_; }
  std::optional<long> retry() const { return retry_; }
  int comments() const { return comments_; }
  std::string const& last_event_id() const { return last_id_; }
  int id_fields() const { return id_fields_; }
  int event_fields() const { return event_fields_; }
  /// Bytes after the last blank line that never formed a complete event.
  bool trailing_partial() const { return pending_ || !line_.empty(); }

 private:
  void line(std::string_view l) {
    if (l.empty()) {
      pending_ = false;
      return dispatch();
    }
    if (l.front() == ':') {
      ++comments_;
      return;
    }
    pending_ = true;
    auto const colon = l.find(':');
    std::string_view field = l.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view{} : l.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "data") {
      data_ += value;
      data_ += '\n';
    } else if (field == "event") {
      ++event_fields_;
      type_ = value;
    } else if (field == "id") {
      ++id_fields_;
      if (value.find('\0') == std::string_view::npos) last_id_ = value;
    } else if (field == "retry") {
      bool digits = !value.empty();
      for (char ch : value) digits = digits && ch >= '0' && ch <= '9';
      if (digits) retry_ = std::stol(std::string(value));
    }
  }

  void dispatch() {
    if (data_.empty()) {
      type_.clear();
      return;
    }
    data_.pop_back();
    events_.push_back({last_id_, type_.empty() ? "message" : type_, data_});
    data_.clear();
    type_.clear();
  }

  std::string line_;
  bool skip_lf_ = false;
  std::string data_;
  std::string type_;
  std::string last_id_;
  std::optional<long> retry_;
  int comments_ = 0;
  int id_fields_ = 0;
  int event_fields_ = 0;
  bool pending_ = false;
  std::size_t consumed_ = 0;
  std::vector<SseEvent> events_;
};

}  // namespace test
