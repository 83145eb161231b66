#pragma once

#include <herald/event.hpp>

#include <boost/beast/core/string.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::inline v0::detail {

/// The path part of a request target ("/a/b?x=1" -> "/a/b").
inline std::string_view target_path(std::string_view target) noexcept {
  return target.substr(0, target.find('?'));
}

/// The query part of a request target, without '?'.
inline std::string_view target_query(std::string_view target) noexcept {
  auto const q = target.find('?');
  return q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
}

/// Percent-decode a query component ('+' is a space). False on a malformed escape.
inline bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < in.size(); ++i) {
    char const c = in[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int const hi = hex(in[i + 1]);
      int const lo = hex(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += c;
    }
  }
  return true;
}

using QueryParams = std::vector<std::pair<std::string, std::string>>;

/// Decoded `key=value` pairs in order; nullopt if any component is malformed.
inline std::optional<QueryParams> parse_query(std::string_view query) {
  QueryParams out;
  std::string key;
  std::string value;
  while (!query.empty()) {
    auto const amp = query.find('&');
    std::string_view const part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (part.empty()) continue;
    auto const eq = part.find('=');
    if (!percent_decode(part.substr(0, eq), key)) return std::nullopt;
    if (!percent_decode(eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1), value))
      return std::nullopt;
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

/// A flag parameter (`?envelope`, `?heartbeat=1`): on when present, unless "0" or "false".
inline bool query_flag(std::string_view value) noexcept { return value != "0" && value != "false"; }

/// A cursor: decimal digits only, no sign, no overflow. Empty is not a cursor.
inline std::optional<EventId> parse_event_id(std::string_view s) noexcept {
  if (s.empty() || s.size() > 20) return std::nullopt;
  EventId v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    EventId const d = static_cast<EventId>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

/// Whether `s` is an HTTP token (RFC 9110 §5.6.2): a method or header name.
constexpr bool http_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char ch : s) {
    auto const c = static_cast<unsigned char>(ch);
    bool const ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(ch) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

/// Escape `s` as the inside of a JSON string (quotes not included).
inline void append_json_escaped(std::string& out, std::string_view s) {
  static constexpr char hexdigits[] = "0123456789abcdef";
  for (char ch : s) {
    auto const c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out += hexdigits[c >> 4];
          out += hexdigits[c & 15];
        } else {
          out += ch;
        }
    }
  }
}

}  // namespace herald::detail
