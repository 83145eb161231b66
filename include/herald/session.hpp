#pragma once

#include <herald/config.hpp>
#include <herald/error.hpp>

#include <boost/system/error_code.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace herald::inline v0 {

/// The outcome of Session::send, modelled on uWebSockets' three-way send status.
enum class SendStatus : std::uint8_t {
  /// Queued for writing.
  accepted,
  /// Queued, but the connection's queue is over half full: slow down.
  backpressure,
  /// Not queued: the connection is gone or its queue is full (then it is closed as slow).
  dropped,
};

namespace detail {

/// What a Session handle reaches: implemented by each transport's connection.
class Peer {
 public:
  virtual ~Peer() = default;
  virtual std::uint64_t id() const noexcept = 0;
  virtual std::string const& principal() const noexcept = 0;
  virtual std::vector<std::string> subscriptions() const = 0;
  virtual SendStatus send(std::string data, bool binary) = 0;
  /// Close after the connection's own messages; `reason` success is a normal close.
  virtual void close(boost::system::error_code reason) = 0;
};

}  // namespace detail

/** A handle to one client connection, given to message and lifecycle handlers.

    Handles are cheap to copy and may be kept: once the connection is gone, send() returns
    SendStatus::dropped and close() does nothing.

    Thread safety: every member function may be called from any thread.
*/
class Session {
 public:
  Session() = default;
  explicit Session(std::weak_ptr<detail::Peer> peer) : peer_(std::move(peer)) {}

  /// herald's id of the connection (unique per hub); 0 for an empty handle.
  std::uint64_t id() const noexcept {
    auto p = peer_.lock();
    return p ? p->id() : 0;
  }

  /// The principal the authorize hook named; empty if none or gone.
  std::string principal() const {
    auto p = peer_.lock();
    return p ? p->principal() : std::string();
  }

  /// Topics the connection is subscribed to now.
  std::vector<std::string> subscriptions() const {
    auto p = peer_.lock();
    return p ? p->subscriptions() : std::vector<std::string>();
  }

  /// Send an application message to this client only (a text frame on WebSocket).
  SendStatus send(std::string text) {
    auto p = peer_.lock();
    return p ? p->send(std::move(text), false) : SendStatus::dropped;
  }

  /// Send binary data to this client only (needs a transport with binary capability).
  SendStatus send_binary(std::string bytes) {
    auto p = peer_.lock();
    return p ? p->send(std::move(bytes), true) : SendStatus::dropped;
  }

  /// Close the connection normally (WebSocket 1000), after the messages already sent.
  void close() {
    if (auto p = peer_.lock()) p->close({});
  }

  /** Close the connection for `reason`, after the messages already sent: a WebSocket client
      gets the close code and name of `reason` (e.g. error::forbidden: 1008 "forbidden", for a
      revoked client), an SSE stream ends. on_close reports `reason`. */
  void close(error reason) {
    if (auto p = peer_.lock()) p->close(make_error_code(reason));
  }

  /// Whether the connection is still open.
  bool alive() const noexcept { return !peer_.expired(); }

 private:
  std::weak_ptr<detail::Peer> peer_;
};

/// A message a client sent to the server.
struct Message {
  std::string_view data;
  bool binary = false;
};

/** Receives client->server messages. Runs on the connection's strand, must not block; may
    publish. If it throws, the connection is closed (WebSocket 1011, HTTP 500). */
using MessageHandler = std::function<void(Session&, Message const&)>;

/// Called when a connection opens or closes (with the reason; success for a normal close).
using OpenHandler = std::function<void(Session&)>;
using CloseHandler = std::function<void(Session&, boost::system::error_code)>;

}  // namespace herald
