#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace herald::inline v0::detail {

/// Where a Redis server is and how to log in: what a redis:// URL says.
struct RedisEndpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  /// A Unix socket path (unix:// URLs); then host and port are unused.
  std::string socket;
  /// ACL user (Redis 6+); empty: the default user.
  std::string user;
  /// Empty: no AUTH.
  std::string password;
  int db = 0;
};

inline int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Percent-decode a URL part; nullopt for a broken escape.
inline std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int const hi = hex_digit(s[i + 1]);
    int const lo = hex_digit(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

/// Decimal digits only, at most `max`. from_chars alone would take a sign ("-1" for a port).
template <class Int>
bool parse_decimal(std::string_view s, Int& out, Int max) noexcept {
  if (s.empty() || s.front() < '0' || s.front() > '9') return false;
  Int v{};
  auto const [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || v > max) return false;
  out = v;
  return true;
}

/** Parse `redis://[[user]:password@]host[:port][/db]` (IPv6 hosts in brackets) or
    `unix:///path/to/socket[?db=N]`. Returns nullopt and sets `problem` for anything else:
    another scheme, a port outside 1..65535, a database that is not a number, a query on a
    redis:// URL (TLS and other options are not supported), broken percent-escapes, a colon or
    bracket in a host outside brackets. */
inline std::optional<RedisEndpoint> parse_redis_url(std::string_view url, std::string& problem) {
  RedisEndpoint ep;
  auto fail = [&](char const* why) -> std::optional<RedisEndpoint> {
    problem = why;
    return std::nullopt;
  };
  if (url.starts_with("unix://")) {
    std::string_view rest = url.substr(7);
    std::string_view query;
    if (auto q = rest.find('?'); q != std::string_view::npos) {
      query = rest.substr(q + 1);
      rest = rest.substr(0, q);
    }
    if (rest.empty() || rest.front() != '/') return fail("a unix:// URL needs an absolute socket path");
    auto path = percent_decode(rest);
    if (!path) return fail("broken percent-escape in the socket path");
    ep.socket = std::move(*path);
    if (!query.empty()) {
      if (!query.starts_with("db=") || !parse_decimal(query.substr(3), ep.db, 1 << 20))
        return fail("the only query a unix:// URL takes is db=<number>");
    }
    return ep;
  }
  if (!url.starts_with("redis://")) return fail("the URL must start with redis:// or unix://");
  std::string_view rest = url.substr(8);
  if (rest.find('?') != std::string_view::npos || rest.find('#') != std::string_view::npos)
    return fail("redis:// URLs take no query or fragment");
  std::string_view path;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view const info = rest.substr(0, at);
    rest = rest.substr(at + 1);
    std::string_view user = info;
    std::string_view password;
    if (auto colon = info.find(':'); colon != std::string_view::npos) {
      user = info.substr(0, colon);
      password = info.substr(colon + 1);
    } else {
      // redis://secret@host: a lone userinfo is the password (as redis-cli reads it).
      password = info;
      user = {};
    }
    auto u = percent_decode(user);
    auto p = percent_decode(password);
    if (!u || !p) return fail("broken percent-escape in the user or password");
    ep.user = std::move(*u);
    ep.password = std::move(*p);
  }
  std::string_view host = rest;
  std::string_view port;
  if (host.starts_with('[')) {
    auto close = host.find(']');
    if (close == std::string_view::npos) return fail("unterminated [IPv6] host");
    std::string_view const after = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail("junk after the [IPv6] host");
      port = after.substr(1);
    }
  } else {
    if (auto colon = host.rfind(':'); colon != std::string_view::npos) {
      port = host.substr(colon + 1);
      host = host.substr(0, colon);
    }
    // "redis://a:b:6379" or "redis://]x:1": an IPv6 address goes in brackets, and a bracket
    // belongs to nothing else.
    if (host.find_first_of(":[]") != std::string_view::npos)
      return fail("an IPv6 host goes in brackets: redis://[::1]:6379");
  }
  if (!host.empty()) ep.host = std::string(host);
  if (!port.empty() && (!parse_decimal(port, ep.port, 65535) || ep.port == 0))
    return fail("the port must be a number from 1 to 65535");
  if (!path.empty() && !parse_decimal(path, ep.db, 1 << 20)) return fail("the database must be a number");
  return ep;
}

}  // namespace herald::detail
