#pragma once

// Command-line conventions shared by every example: --host (default 127.0.0.1), --port
// (default 8080; 0 picks a free port), and "listening on http://HOST:PORT" as the first line.

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>

namespace example {

struct Cli {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
};

/// Parses --host/--port (also --host=X); prints usage and exits on anything else.
inline Cli parse_cli(int argc, char** argv) {
  Cli cli;
  auto usage = [&](int code) {
    std::cerr << "usage: " << argv[0] << " [--host ADDRESS] [--port PORT]\n";
    std::exit(code);
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string value;
    auto take = [&](std::string_view name) {
      if (arg == name) {
        if (i + 1 >= argc) usage(2);
        value = argv[++i];
        return true;
      }
      if (arg.size() > name.size() && arg.substr(0, name.size()) == name && arg[name.size()] == '=') {
        value = arg.substr(name.size() + 1);
        return true;
      }
      return false;
    };
    if (take("--host")) {
      cli.host = value;
    } else if (take("--port")) {
      char* end = nullptr;
      long const p = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || p < 0 || p > 65535) usage(2);
      cli.port = static_cast<std::uint16_t>(p);
    } else if (arg == "--help" || arg == "-h") {
      usage(0);
    } else {
      usage(2);
    }
  }
  return cli;
}

/// The first line every example prints, flushed so scripts reading a pipe see it at once.
inline void announce(std::string const& host, std::uint16_t port) {
  bool const v6 = host.find(':') != std::string::npos;
  std::cout << "listening on http://" << (v6 ? "[" : "") << host << (v6 ? "]" : "") << ':' << port
            << std::endl;
}

/// A file next to the example's sources (HERALD_EXAMPLE_DIR), or `fallback` if it is missing.
inline std::string asset(std::string const& name, std::string fallback) {
#ifdef HERALD_EXAMPLE_DIR
  std::ifstream in(std::string(HERALD_EXAMPLE_DIR) + "/" + name, std::ios::binary);
  if (in) {
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
#endif
  (void)name;
  return fallback;
}

}  // namespace example
