#pragma once

// HTTP helpers of the clients: query building, request headers, and what a status means.

#include <herald/client/error.hpp>
#include <herald/client/options.hpp>
#include <herald/detail/drain.hpp>
#include <herald/detail/error_table.hpp>
#include <herald/detail/http.hpp>
#include <herald/error.hpp>
#include <herald/version.hpp>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/status.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace herald::inline v0::client::detail {

namespace http = boost::beast::http;

/// Percent-encode a query component: every byte but the RFC 3986 unreserved ones.
inline void append_encoded(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  for (char ch : s) {
    auto const c = static_cast<unsigned char>(ch);
    bool const unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                            c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
}

/// Append `key=value` to a request target, with '?' or '&' as needed.
inline void append_query(std::string& target, std::string_view key, std::string_view value) {
  target += target.find('?') == std::string::npos ? '?' : '&';
  append_encoded(target, key);
  target += '=';
  append_encoded(target, value);
}

inline std::string user_agent() { return std::string("herald-client/") + HERALD_VERSION; }

/// Host, User-Agent, then the application's headers (which may replace the defaults).
template <class Fields>
void set_common_headers(Fields& fields, Url const& url, Options const& options) {
  fields.set(http::field::host, url.host_header());
  fields.set(http::field::user_agent, user_agent());
  for (auto const& [name, value] : options.headers) fields.set(name, value);
}

/// What an HTTP status means to a client: the error to report and whether to retry.
struct StatusVerdict {
  boost::system::error_code ec;
  bool retry = false;
};

/** 429, 408 and 5xx are worth retrying (overload, restarts, proxies): error::unavailable. Any
    other refusal is permanent (401, 403, 404, 400, ...): retrying would only repeat it; its
    error is the one the server's JSON body names ({"error":"<wire name>"}), else the one the
    status stands for (detail/error_table.hpp). */
inline StatusVerdict classify_status(unsigned status, std::string_view body = {}) {
  if (status == 408 || status == 429 || (status >= 500 && status <= 599)) return {error::unavailable, true};
  std::optional<herald::error> named;
  if (auto const at = body.find(R"("error":")"); at != std::string_view::npos) {
    auto const from = at + 9;
    if (auto const to = body.find('"', from); to != std::string_view::npos)
      named = herald::detail::error_from_wire(body.substr(from, to - from));
  }
  if (named) return {*named, false};
  if (auto const e = herald::detail::error_from_status(status)) return {*e, false};
  return {error::unexpected_status, false};
}

/// A Retry-After in seconds (RFC 9110 §10.2.3; an HTTP-date is not used by herald): nullopt if none.
inline std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value) {
  auto const s = herald::detail::parse_event_id(value);  // decimal digits, no overflow
  if (!s || *s > 86'400) return std::nullopt;
  return std::chrono::seconds(*s);
}

/** A drain's exact delay (Herald-Retry-Ms, detail/drain.hpp): nullopt if absent or not a
    number of milliseconds up to a day. */
inline std::optional<std::chrono::milliseconds> parse_retry_ms(std::string_view value) {
  auto const ms = herald::detail::parse_event_id(value);
  if (!ms || *ms > 86'400'000) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(*ms));
}

/// Whether a Content-Type names `type` (ignoring parameters and case).
inline bool content_type_is(std::string_view value, std::string_view type) {
  auto const semi = value.find(';');
  auto base = value.substr(0, semi);
  while (!base.empty() && (base.back() == ' ' || base.back() == '\t')) base.remove_suffix(1);
  while (!base.empty() && (base.front() == ' ' || base.front() == '\t')) base.remove_prefix(1);
  return boost::beast::iequals(base, type);
}

}  // namespace herald::client::detail
