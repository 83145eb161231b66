#pragma once

#include <cstddef>
#include <string_view>

namespace herald::inline v0::detail {

/// Longest topic name herald accepts anywhere.
inline constexpr std::size_t max_topic_length = 256;

/// Whether `s` is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
constexpr bool valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    auto const c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    unsigned cp = 0;
    if (c < 0x80) { ++i; continue; }
    if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1fu; }
    else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0fu; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07u; }
    else return false;
    if (i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      auto const cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0u) != 0x80u) return false;
      cp = cp << 6 | (cc & 0x3fu);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

/** Topic names are 1..max_length bytes of UTF-8 with no ASCII control characters, and not "*",
    which means "every topic". They travel in URLs, JSON and SSE fields; control characters are
    what could break a frame, and JSON needs UTF-8. */
constexpr bool valid_topic(std::string_view topic, std::size_t max_length = max_topic_length) noexcept {
  if (topic.empty() || topic.size() > max_length || topic == "*") return false;
  for (unsigned char c : topic)
    if (c < 0x20 || c == 0x7f) return false;
  return valid_utf8(topic);
}

}  // namespace herald::detail
