// The main() of a fuzz target when it is built without libFuzzer (g++, the normal test trees):
// it replays the files and directories named on the command line through
// LLVMFuzzerTestOneInput, so every committed corpus input runs as a test under the tree's
// sanitizers. A named directory that holds no file is an error: an empty corpus would pass
// while testing nothing.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size);

namespace {

bool replay(std::filesystem::path const& file) {
  std::ifstream in{file, std::ios::binary};
  if (!in) {
    std::fprintf(stderr, "fuzz replay: cannot read %s\n", file.c_str());
    return false;
  }
  std::vector<char> const bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  // libFuzzer never passes a null pointer, not even for an empty input; neither does this.
  static std::uint8_t const empty = 0;
  auto const* data = bytes.empty() ? &empty : reinterpret_cast<std::uint8_t const*>(bytes.data());
  LLVMFuzzerTestOneInput(data, bytes.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  std::size_t inputs = 0;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path const p{argv[i]};
    if (std::filesystem::is_directory(p)) {
      std::vector<std::filesystem::path> files;
      for (auto const& e : std::filesystem::directory_iterator{p})
        if (e.is_regular_file()) files.push_back(e.path());
      if (files.empty()) {
        std::fprintf(stderr, "fuzz replay: %s holds no input\n", p.c_str());
        return 1;
      }
      std::sort(files.begin(), files.end());
      for (auto const& f : files) {
        if (!replay(f)) return 1;
        ++inputs;
      }
    } else {
      if (!replay(p)) return 1;
      ++inputs;
    }
  }
  std::printf("fuzz replay: %zu inputs replayed, none failed\n", inputs);
  return 0;
}
