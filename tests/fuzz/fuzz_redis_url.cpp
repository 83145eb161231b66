// Fuzz target: the redis:// and unix:// URL parser (detail/redis_url.hpp). Invariants: an
// accepted URL yields an endpoint in range (port 1..65535, database 0..2^20, an absolute socket
// path), and printing that endpoint back as a URL and parsing it again gives the same endpoint;
// a refused URL says why.

#include <herald/detail/redis_url.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"

namespace {

using herald::detail::RedisEndpoint;

/// Percent-encode everything but unreserved characters (and `keep`).
std::string encode(std::string_view s, std::string_view keep = {}) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    auto const c = static_cast<unsigned char>(ch);
    bool const plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       ch == '-' || ch == '.' || ch == '_' || ch == '~' || keep.find(ch) != std::string_view::npos;
    if (plain) {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string print(RedisEndpoint const& ep) {
  if (!ep.socket.empty()) {
    std::string url = "unix://" + encode(ep.socket, "/");
    if (ep.db != 0) url += "?db=" + std::to_string(ep.db);
    return url;
  }
  std::string url = "redis://";
  if (!ep.user.empty() || !ep.password.empty()) url += encode(ep.user) + ":" + encode(ep.password) + "@";
  // The host is not percent-decoded by the parser, so it is printed as it was read.
  bool const bracket = ep.host.find_first_of(":[]") != std::string::npos;
  url += bracket ? "[" + ep.host + "]" : ep.host;
  url += ":" + std::to_string(ep.port) + "/" + std::to_string(ep.db);
  return url;
}

bool same(RedisEndpoint const& a, RedisEndpoint const& b) {
  return a.host == b.host && a.port == b.port && a.socket == b.socket && a.user == b.user &&
         a.password == b.password && a.db == b.db;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::string_view const url{reinterpret_cast<char const*>(data), size};
  std::string problem;
  auto const ep = herald::detail::parse_redis_url(url, problem);
  if (!ep) {
    FUZZ_CHECK(!problem.empty());
    return 0;
  }
  FUZZ_CHECK(problem.empty());
  FUZZ_CHECK(ep->db >= 0 && ep->db <= (1 << 20));
  if (!ep->socket.empty()) {
    FUZZ_CHECK(ep->socket.front() == '/');
  } else {
    FUZZ_CHECK(ep->port >= 1 && ep->port <= 65535);
    FUZZ_CHECK(!ep->host.empty());
  }
  std::string const again_url = print(*ep);
  std::string again_problem;
  auto const again = herald::detail::parse_redis_url(again_url, again_problem);
  if (!again) std::fprintf(stderr, "reprinted URL refused: %s (%s)\n", again_url.c_str(), again_problem.c_str());
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(same(*ep, *again));
  return 0;
}
