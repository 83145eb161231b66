#pragma once

// Command-line conventions shared by every example: --host (default 127.0.0.1), --port
// (default 8080; 0 picks a free port), and "listening on http://HOST:PORT" as the first line.
// An example with flags of its own lists them as example::Flag values for parse_cli.

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace example {

/// A `--name VALUE` flag of one example, besides --host and --port.
struct Flag {
  std::string name;   ///< with its dashes: "--redis"
  std::string meta;   ///< what the value is, for the usage line: "URL"
  std::string value;  ///< the default, replaced by what the command line says
  bool required = false;
};

struct Cli {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  std::vector<Flag> flags;  ///< the example's own flags, with the values given

  /// The value of one of the example's own flags (empty for a name parse_cli was not given).
  std::string const& flag(std::string_view name) const {
    static std::string const none;
    for (auto const& f : flags)
      if (f.name == name) return f.value;
    return none;
  }
};

/** Parses --host/--port and the example's own `flags` (each also as --name=X); prints usage and
    exits on anything else, or when a required flag is missing. */
inline Cli parse_cli(int argc, char** argv, std::vector<Flag> flags = {}) {
  Cli cli;
  cli.flags = std::move(flags);
  std::vector<bool> given(cli.flags.size(), false);
  auto usage = [&](int code) {
    std::cerr << "usage: " << argv[0];
    for (auto const& f : cli.flags)
      std::cerr << ' ' << (f.required ? "" : "[") << f.name << ' ' << f.meta
                << (f.required ? "" : "]");
    std::cerr << " [--host ADDRESS] [--port PORT]\n";
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
      std::size_t f = 0;
      while (f < cli.flags.size() && !take(cli.flags[f].name)) ++f;
      if (f == cli.flags.size()) usage(2);
      cli.flags[f].value = value;
      given[f] = true;
    }
  }
  for (std::size_t f = 0; f < cli.flags.size(); ++f)
    if (cli.flags[f].required && !given[f]) usage(2);
  return cli;
}

/// The first line every example prints, flushed so scripts reading a pipe see it at once.
inline void announce(std::string const& host, std::uint16_t port, std::string_view scheme = "http") {
  bool const v6 = host.find(':') != std::string::npos;
  std::cout << "listening on " << scheme << "://" << (v6 ? "[" : "") << host << (v6 ? "]" : "") << ':'
            << port << std::endl;
}

/** `server.listen(cli.host, cli.port)` (a herald::Server), then the announce line; returns the
    bound port (the one chosen for --port 0). Says why and exits 1 if the address is unusable. */
template <class Server>
std::uint16_t listen(Server& server, Cli const& cli) {
  std::uint16_t port = 0;
  try {
    port = server.listen(cli.host, cli.port).port();
  } catch (std::exception const& e) {
    std::cerr << "cannot listen on " << cli.host << ':' << cli.port << ": " << e.what() << '\n';
    std::exit(1);
  }
  announce(cli.host, port);
  return port;
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
