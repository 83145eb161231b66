#pragma once

#include <herald/event.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace herald::inline v0::detail {

/** Writes `mark` to the id file at `path` durably (write-temp, fsync, rename); throws
    std::system_error when it cannot. */
inline void write_id_file(std::string const& path, EventId mark) {
  std::string const tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  bool ok = f && std::fprintf(f, "%llu\n", static_cast<unsigned long long>(mark)) > 0 && std::fflush(f) == 0;
#if defined(__unix__) || defined(__APPLE__)
  ok = ok && ::fsync(::fileno(f)) == 0;
#endif
  int const err = errno;
  if (f) std::fclose(f);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::system_error(ok ? errno : err, std::generic_category(), "herald: cannot write id file " + path);
}

/** Allocates event ids that keep increasing across restarts of the process.

    With a file, ids are reserved in blocks: an id is handed out only once a mark at or above
    it is durably in the file, so a crash can skip ids but never repeat one (the next run starts
    above the mark). Without a file, the first id is the wall clock in microseconds, which
    increases across restarts as long as the clock does and publishing averages below one
    event per microsecond.

    The file is never written under the hub's lock: next() runs under it and only decides;
    the write itself (write(), which may take as long as the disk does) runs outside it, and
    written() records its outcome under the lock again. When half a block is used, next()
    asks for the following block ahead of need, so publishers keep drawing reserved ids while
    the disk works; only when every reserved id is used before that write completes must a
    publisher wait for it. At most one write is in flight.

    Not thread-safe: next() and written() are called under the hub's lock; write() may run
    outside it, by the one caller that next() asked to write.
*/
class IdStore {
 public:
  /// Writes a mark durably (write_id_file by default); a seam for tests of a slow disk.
  using Writer = std::function<void(std::string const& path, EventId mark)>;

  /** Throws std::system_error if the file cannot be read or written, or holds no usable id:
      the first block is reserved here. */
  IdStore(std::string path, EventId first, std::uint64_t block, Writer writer = {})
      : path_(std::move(path)), block_(block == 0 ? 1 : block),
        writer_(writer ? std::move(writer) : Writer(write_id_file)) {
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
    if (!path_.empty()) {
      EventId const mark = next_ + block_ - 1;
      writer_(path_, mark);
      reserved_ = mark;
    }
  }

  /// What next() decided.
  struct Draw {
    /// The id handed out; 0 when none is reserved (write `write`, or wait for the write in flight).
    EventId id = 0;
    /// Non-zero: the caller must write() this mark outside the lock, then call written().
    EventId write = 0;
  };

  /// The next id, or what to do to get one. Under the hub's lock.
  Draw next() {
    if (path_.empty()) return {next_++, 0};
    if (next_ <= reserved_) {
      EventId const id = next_++;
      // Fewer than half a block left: this caller reserves the next block while others draw.
      if (writing_ == 0 && reserved_ - id < (block_ + 1) / 2) {
        writing_ = reserved_ + block_;
        return {id, writing_};
      }
      return {id, 0};
    }
    if (writing_ != 0) return {};  // the write in flight brings the next ids
    writing_ = next_ + block_ - 1;
    return {0, writing_};
  }

  /// Write `mark` (from next()) durably; outside the lock. Throws std::system_error.
  void write(EventId mark) const { writer_(path_, mark); }

  /// The outcome of the write of `mark`; under the lock. A failed write is asked for again.
  void written(EventId mark, bool ok) noexcept {
    writing_ = 0;
    if (ok) reserved_ = std::max(reserved_, mark);
  }

  /// Every id at or below this one was handed out by an earlier run, or never.
  EventId floor() const noexcept { return floor_; }

  /// The last id handed out by this run (floor() if none).
  EventId last() const noexcept { return next_ - 1; }

  /// The highest id durably reserved (0 without a file).
  EventId reserved() const noexcept { return reserved_; }

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

  std::string path_;
  std::uint64_t block_;
  Writer writer_;
  EventId next_ = 1;
  EventId floor_ = 0;
  /// Ids up to here are durably reserved.
  EventId reserved_ = 0;
  /// The mark being written (0: none in flight).
  EventId writing_ = 0;
};

}  // namespace herald::detail
