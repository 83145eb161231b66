// Fuzz target: the id file reader (detail/id_store.hpp). The input is the content of an id file.
// The reader's rule is "decimal digits and one optional newline, nothing else, at most 64
// bytes"; the oracle here applies that rule to the whole file. Invariants: the reader accepts exactly the files the rule
// accepts (with a mark low enough to reserve a block above it), never throws anything but
// std::system_error, and the first id it hands out lies above the mark, then survives a
// restart from the file it wrote.

#include <herald/detail/id_store.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <unistd.h>

#include "fuzz_check.hpp"

namespace {

constexpr std::uint64_t block = 16;

/// The rule, applied to the whole file.
std::optional<std::uint64_t> oracle(std::string_view text) {
  if (text.size() > 64) return std::nullopt;  // the reader's documented bound on the file
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.empty()) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    auto const d = static_cast<std::uint64_t>(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  if (v >= std::numeric_limits<std::uint64_t>::max() - block) return std::nullopt;
  return v;
}

/// A directory of this process's own, removed at exit (scripts/fuzz points TMPDIR at a tmpfs:
/// every input is written and fsynced).
struct TempDir {
  TempDir() : path(std::filesystem::temp_directory_path() / ("herald-fuzz-id-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::filesystem::path path;
};

std::filesystem::path const& dir() {
  static TempDir const d;
  return d.path;
}

/// One id, writing the id file whenever the store asks, as the hub does (here with no lock).
herald::EventId draw(herald::detail::IdStore& ids) {
  for (;;) {
    auto const d = ids.next();
    if (d.write != 0) {
      ids.write(d.write);
      ids.written(d.write, true);
    }
    if (d.id != 0) return d.id;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::string_view const text{reinterpret_cast<char const*>(data), size};
  auto const path = (dir() / "ids").string();
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    FUZZ_CHECK(f != nullptr);
    FUZZ_CHECK(std::fwrite(text.data(), 1, text.size(), f) == text.size());
    std::fclose(f);
  }
  auto const expected = oracle(text);
  std::optional<herald::EventId> first;
  try {
    herald::detail::IdStore ids{path, 0, block};
    first = draw(ids);
  } catch (std::system_error const&) {
  }
  if (first.has_value() != expected.has_value())
    std::fprintf(stderr, "id file %s: oracle %s, reader %s\n", path.c_str(), expected ? "accepts" : "refuses",
                 first ? "accepts" : "refuses");
  FUZZ_CHECK(first.has_value() == expected.has_value());
  if (!first) return 0;
  FUZZ_CHECK(*first > *expected);
  // A restart from the file the store wrote continues above every id handed out, or, at the
  // very end of the id space, refuses to start.
  try {
    herald::detail::IdStore again{path, 0, block};
    FUZZ_CHECK(draw(again) > *first);
  } catch (std::system_error const&) {
    FUZZ_CHECK(*first + block - 1 >= std::numeric_limits<std::uint64_t>::max() - block);
  }
  return 0;
}
