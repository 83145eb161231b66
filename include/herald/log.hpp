#pragma once

#include <herald/config.hpp>

#include <boost/system/error_code.hpp>

#include <cstdint>
#include <functional>
#include <string_view>

namespace herald::inline v0 {

/// Severity of a log record.
enum class LogLevel : std::uint8_t { debug, info, warning, error };

/** What herald tells the application's log hook.

    The string views are valid only during the call.
*/
struct LogRecord {
  LogLevel level = LogLevel::info;
  /// The transport involved ("sse", "websocket", "polling", "server"), or empty.
  std::string_view transport;
  /// herald's id of the connection, 0 when none.
  std::uint64_t connection = 0;
  boost::system::error_code ec;
  std::string_view message;
};

/** A log hook: called on the thread that logs, must not block. Empty means "log nothing".

    herald never writes to stderr itself.
*/
using LogHook = std::function<void(LogRecord const&)>;

}  // namespace herald
