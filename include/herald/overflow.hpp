#pragma once

#include <cstdint>

namespace herald::inline v0 {

/// What happens when a connection's outbound queue is full (ChannelOptions::overflow).
enum class OverflowPolicy : std::uint8_t {
  /// Close the connection (error::slow_consumer); the client resumes from its cursor.
  disconnect,
  /// Drop what is queued and send a reset notice; the connection stays up.
  reset,
};

}  // namespace herald
