#pragma once

#include <herald/config.hpp>
#include <herald/hooks.hpp>
#include <herald/transport.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace herald::inline v0 {
class MetricsText;
}  // namespace herald

namespace herald::inline v0::detail {

/// What a channel needs from each live connection, whatever its transport.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  /// Tell the client the server is going away and close once it has been told.
  virtual void stop() = 0;
  /// Close now.
  virtual void abort() = 0;
  /// Bytes queued for the client, if the connection belongs to `channel` (herald::Metrics).
  virtual std::size_t queued_bytes(void const* channel) const { (void)channel; return 0; }
};

/// What herald::Server needs from a channel: the type-erased face of ChannelImpl<T>.
class Endpoint {
 public:
  virtual ~Endpoint() = default;
  virtual std::string const& path() const noexcept = 0;
  virtual void accept(beast::tcp_stream&& stream, Request&& req) = 0;
  /** Whether `req` is answered in place with answer() (the connection stays the caller's, for
      keep-alive and other paths) rather than handed over with accept(). */
  virtual bool answers(Request const& req) const {
    (void)req;
    return false;
  }
  /** Answer `req` without taking the connection. `respond` runs on `ex` (a strand: the
      connection's), exactly once unless the returned Held is cancelled first. It may run before
      answer() returns (an immediate answer), and then nullptr is returned; otherwise the request
      is held and the Held is how the caller cancels it when its client goes away. A held request
      keeps itself alive until it is answered or cancelled, so the caller may (and should) keep
      it as a weak_ptr: `respond` usually owns the caller, and a strong pointer back is a cycle. */
  virtual std::shared_ptr<Held> answer(Request&& req, net::any_io_executor const& ex, Respond respond) {
    (void)ex;
    respond(Response{http::status::not_found, req.version()});
    return nullptr;
  }
  /** How the server refuses `req` for this path when it is over its own connection limit
      (`ec`, retryable): retryable_refusal plus the channel's CORS headers, so a cross-origin
      EventSource can read the refusal and comes back. */
  virtual Response refusal(Request const& req, boost::system::error_code ec, std::chrono::seconds retry_after) const = 0;
  virtual void shutdown() = 0;
  virtual void abort() = 0;
  virtual std::size_t active() const = 0;
  /// The channel's series (herald::Metrics): one per transport it serves.
  virtual void metrics(MetricsText& m) const = 0;
};

}  // namespace herald::detail
