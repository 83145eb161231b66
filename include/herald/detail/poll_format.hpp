#pragma once

// The wire format of polling, as pure functions: request parameters, the JSON frame of an answer
// (each event's shared JSON envelope is spliced into it) and its ETag. No I/O; unit-tested directly.

#include <herald/detail/decimal.hpp>
#include <herald/detail/http.hpp>
#include <herald/detail/json_format.hpp>
#include <herald/detail/stored_event.hpp>
#include <herald/error.hpp>
#include <herald/event.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace herald::inline v0::detail {

/// A `wait` above this many seconds is not a wait but a mistake or an attack: 400.
inline constexpr std::int64_t max_wait_parameter_seconds = 3600;

/// A `limit` above this is refused (400); between PollingOptions::max_limit and it, capped.
inline constexpr std::size_t max_limit_parameter = 1'000'000'000;

/** A wait in seconds: digits with an optional fraction ("25", "0.05", "1.5"), at most
    max_wait_parameter_seconds. Precision is one millisecond (further digits are dropped).
    nullopt for anything else: empty, a sign, an exponent, letters, more than an hour. */
inline std::optional<std::chrono::milliseconds> parse_wait(std::string_view s) noexcept {
  std::size_t i = 0;
  std::int64_t whole = 0;
  std::size_t whole_digits = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, ++whole_digits) {
    if (whole > max_wait_parameter_seconds) return std::nullopt;  // stop before overflow
    whole = whole * 10 + (s[i] - '0');
  }
  std::int64_t millis = 0;
  std::size_t frac_digits = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    std::int64_t scale = 100;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, ++frac_digits) {
      millis += (s[i] - '0') * scale;
      scale /= 10;
    }
    if (frac_digits == 0) return std::nullopt;  // "1." is not a number we accept
  }
  if (i != s.size() || whole_digits == 0) return std::nullopt;
  if (whole > max_wait_parameter_seconds || (whole == max_wait_parameter_seconds && millis > 0))
    return std::nullopt;
  return std::chrono::milliseconds(whole * 1000 + millis);
}

/// A batch limit: decimal digits, 1..max_limit_parameter. nullopt otherwise.
inline std::optional<std::size_t> parse_limit(std::string_view s) noexcept {
  if (s.empty() || s.size() > 10) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (v == 0 || v > max_limit_parameter) return std::nullopt;
  return static_cast<std::size_t>(v);
}

/// What a poll asks for, beyond its topics and its cursor (read_cursor).
struct PollParams {
  /// Long poll: hold up to this long (before the server's cap). Absent or zero: short poll.
  std::optional<std::chrono::milliseconds> wait;
  std::optional<std::size_t> limit;
};

/** Read `wait` and `limit` from a decoded query. Other parameters are ignored (cache busters
    such as `_=1700000000` are common). A parameter given twice is an error, as is any value that
    does not parse; `detail` then says which and why. */
inline boost::system::error_code parse_poll_params(QueryParams const& query, PollParams& out,
                                                   std::string& detail) {
  bool seen_wait = false;
  bool seen_limit = false;
  auto fail = [&](error e, std::string why) -> boost::system::error_code {
    detail = std::move(why);
    return e;
  };
  for (auto const& [key, value] : query) {
    if (key == "wait") {
      if (seen_wait) return fail(error::bad_request, "wait given twice");
      seen_wait = true;
      out.wait = parse_wait(value);
      if (!out.wait)
        return fail(error::bad_request, "wait must be a number of seconds from 0 to " +
                                            std::to_string(max_wait_parameter_seconds));
    } else if (key == "limit") {
      if (seen_limit) return fail(error::bad_request, "limit given twice");
      seen_limit = true;
      out.limit = parse_limit(value);
      if (!out.limit) return fail(error::bad_request, "limit must be a positive integer");
    }
  }
  return {};
}

/// Where a poll_frame takes its events: right after `{"events":[`.
inline constexpr std::size_t poll_frame_events_at = 11;

/** The body of a poll answer around its events:
      {"events":[],"cursor":N}\n            plus ,"reset":true and ,"more":true when so
    The events' shared JSON envelopes go in at poll_frame_events_at, comma-separated, as they
    are (AnswerBody splices them in without copying). */
inline std::string poll_frame(EventId cursor, bool reset, bool more) {
  std::string out;
  out.reserve(64);
  out += R"({"events":[],"cursor":)";
  append_decimal(out, cursor);
  if (reset) out += R"(,"reset":true)";
  if (more) out += R"(,"more":true)";
  out += "}\n";
  return out;
}

/** A strong ETag for a poll answer: FNV-1a over the event ids, the cursor and the flags. Events
    are immutable and ids unique per hub, so for one URL equal tags mean equal bodies. */
inline std::string poll_etag(std::span<EventPtr const> events, EventId cursor, bool reset, bool more) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xffu;
      h *= 0x100000001b3ull;
    }
  };
  mix(1);  // the body format's version: bump when poll_frame changes shape
  for (auto const& ev : events) mix(ev->id());
  mix(cursor);
  mix((reset ? 1u : 0u) | (more ? 2u : 0u));
  static constexpr char hex[] = "0123456789abcdef";
  std::string tag = "\"p";
  for (int i = 15; i >= 0; --i) tag += hex[(h >> (4 * i)) & 0xfu];
  tag += '"';
  return tag;
}

/** Whether an If-None-Match value names `etag`: "*", or a comma-separated list of entity tags
    compared weakly (a W/ prefix is ignored), as RFC 9110 §13.1.2 asks for this header. */
inline bool etag_matches(std::string_view if_none_match, std::string_view etag) noexcept {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  if (etag.starts_with("W/")) etag.remove_prefix(2);
  while (!if_none_match.empty()) {
    auto const comma = if_none_match.find(',');
    auto item = trim(if_none_match.substr(0, comma));
    if_none_match = comma == std::string_view::npos ? std::string_view{} : if_none_match.substr(comma + 1);
    if (item == "*") return true;
    if (item.starts_with("W/")) item.remove_prefix(2);
    if (!item.empty() && item == etag) return true;
  }
  return false;
}

}  // namespace herald::detail
