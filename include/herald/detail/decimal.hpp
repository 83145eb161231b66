#pragma once

#include <charconv>
#include <cstdint>
#include <string>

namespace herald::inline v0::detail {

/// Append `v` in decimal, without the temporary string of std::to_string (ids have 16 digits,
/// past the small-string buffer, so each to_string was a heap allocation per event).
inline void append_decimal(std::string& out, std::uint64_t v) {
  char digits[20];
  auto const end = std::to_chars(digits, digits + sizeof digits, v).ptr;
  out.append(digits, end);
}

}  // namespace herald::detail
