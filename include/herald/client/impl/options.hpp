#pragma once

#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace herald::inline v0::client {

inline std::optional<Url> parse_url(std::string_view text) {
  auto lower = [](std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  for (char c : text)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return std::nullopt;

  auto const sep = text.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  Url url;
  url.scheme = lower(text.substr(0, sep));
  bool const secure = url.scheme == "https" || url.scheme == "wss";
  if (!secure && url.scheme != "http" && url.scheme != "ws") return std::nullopt;
  text.remove_prefix(sep + 3);

  if (auto const hash = text.find('#'); hash != std::string_view::npos) text = text.substr(0, hash);
  auto const end = text.find_first_of("/?");
  std::string_view authority = text.substr(0, end);
  std::string_view rest = end == std::string_view::npos ? std::string_view{} : text.substr(end);
  if (authority.find('@') != std::string_view::npos) return std::nullopt;

  std::string_view host;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    auto const close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(1, close - 1);
    auto const after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      port = after.substr(1);
    }
    if (host.empty()) return std::nullopt;
    for (char c : host)
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return std::nullopt;
  } else {
    auto const colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    if (host.empty()) return std::nullopt;
    for (char c : host)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_' && c != '~')
        return std::nullopt;
  }
  url.host = lower(host);

  url.port = secure ? 443 : 80;
  if (!port.empty()) {  // "host:" with an empty port means the default (RFC 3986 §3.2.3)
    if (port.size() > 5) return std::nullopt;
    unsigned value = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return std::nullopt;
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) return std::nullopt;
    url.port = static_cast<std::uint16_t>(value);
  }

  if (rest.empty()) url.target = "/";
  else if (rest.front() == '?') url.target = "/" + std::string(rest);
  else url.target = std::string(rest);
  return url;
}

}  // namespace herald::client
