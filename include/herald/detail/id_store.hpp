#pragma once

#include <herald/event.hpp>

#include <cerrno>
#include <charconv>
#include <limits>
#include <string_view>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <system_error>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace herald::inline v0::detail {

/** Allocates event ids that keep increasing across restarts of the process.

    With a file, ids are reserved in blocks and the end of the reserved block is written
    (write-temp, fsync, rename) before any id of it is handed out, so a crash can skip ids
    but never repeat one. Without a file, the first id is the wall clock in microseconds, which
    increases across restarts as long as the clock does and publishing averages below one
    event per microsecond. Not thread-safe: the hub calls it under its lock.
*/
class IdStore {
 public:
  IdStore(std::string path, EventId first, std::uint64_t block)
      : path_(std::move(path)), block_(block == 0 ? 1 : block) {
    EventId start = first;
    if (!path_.empty()) {
      start = std::max<EventId>(first, read_mark() + 1);
    } else if (start == 0) {
      auto const now = std::chrono::system_clock::now().time_since_epoch();
      start = static_cast<EventId>(std::chrono::duration_cast<std::chrono::microseconds>(now).count());
    }
    if (start == 0) start = 1;
    next_ = start;
    floor_ = start - 1;
    if (!path_.empty()) reserve();
  }

  /// The next id. Throws std::system_error if the id file cannot be written.
  EventId next() {
    if (!path_.empty() && next_ > reserved_) reserve();
    return next_++;
  }

  /// Every id at or below this one was handed out by an earlier run, or never.
  EventId floor() const noexcept { return floor_; }

  /// The last id handed out by this run (floor() if none).
  EventId last() const noexcept { return next_ - 1; }

 private:
  static constexpr std::size_t max_file_size = 64;

  EventId read_mark() const {
    std::FILE* f = std::fopen(path_.c_str(), "rb");
    if (!f) {
      if (errno == ENOENT) return 0;
      throw std::system_error(errno, std::generic_category(), "herald: cannot read id file " + path_);
    }
    // The whole file is read: a prefix that happens to be digits (leading zeros, then more)
    // must not pass for the mark. herald writes at most 21 bytes; longer files are refused.
    char buf[max_file_size + 1] = {};
    std::size_t const n = std::fread(buf, 1, sizeof buf, f);
    std::fclose(f);
    // Digits and one optional newline, nothing else: a sign or an overflowing value must not
    // wrap around and restart ids from 1.
    std::string_view text(buf, n > max_file_size ? 0 : n);
    if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    EventId mark = 0;
    auto const [end, ec] = std::from_chars(text.data(), text.data() + text.size(), mark);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() ||
        mark >= std::numeric_limits<EventId>::max() - block_)
      throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                              "herald: id file " + path_ + " does not hold a usable id");
    return mark;
  }

  void reserve() {
    EventId const mark = next_ + block_ - 1;
    std::string const tmp = path_ + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    bool ok = f && std::fprintf(f, "%llu\n", static_cast<unsigned long long>(mark)) > 0 &&
              std::fflush(f) == 0;
#if defined(__unix__) || defined(__APPLE__)
    ok = ok && ::fsync(::fileno(f)) == 0;
#endif
    int const err = errno;
    if (f) std::fclose(f);
    if (!ok || std::rename(tmp.c_str(), path_.c_str()) != 0)
      throw std::system_error(ok ? errno : err, std::generic_category(),
                              "herald: cannot write id file " + path_);
    reserved_ = mark;
  }

  std::string path_;
  std::uint64_t block_;
  EventId next_ = 1;
  EventId floor_ = 0;
  EventId reserved_ = 0;
};

}  // namespace herald::detail
