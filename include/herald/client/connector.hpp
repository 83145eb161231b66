#pragma once

#include <herald/client/options.hpp>
#include <herald/config.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <memory>
#include <span>

namespace herald::inline v0::client {

/** One connection's byte stream, type-erased: plain TCP, TLS, or anything a Connector makes.

    Clients open a fresh ByteStream for every connection attempt and never use one after
    close(). Every operation completes through the handler's associated executor (the client's
    strand); at most one read and one write are outstanding at a time.
*/
class ByteStream {
 public:
  using executor_type = net::any_io_executor;
  using OpenHandler = net::any_completion_handler<void(boost::system::error_code)>;
  using IoHandler = net::any_completion_handler<void(boost::system::error_code, std::size_t)>;

  virtual ~ByteStream() = default;

  virtual executor_type get_executor() noexcept = 0;

  /// Resolve the URL's host, connect, and do any handshake the scheme needs (TLS).
  virtual void async_open(Url const& url, OpenHandler handler) = 0;

  virtual void async_read_some(net::mutable_buffer buffer, IoHandler handler) = 0;

  /// Write some of `buffers` (the sequence is copied before this returns).
  virtual void async_write_some(std::span<net::const_buffer const> buffers, IoHandler handler) = 0;

  /// Close at once; pending operations complete with net::error::operation_aborted. Idempotent.
  virtual void close() noexcept = 0;
};

/** Makes the ByteStream of each connection attempt. Set Options::connector to use one; the
    default reaches http and ws URLs over plain TCP. <herald/client/tls.hpp> provides
    herald::client::tls(...), which also reaches https and wss.
*/
class Connector {
 public:
  virtual ~Connector() = default;

  /// A new, unopened stream for `url` on `ex`, or null if this connector cannot serve the
  /// URL's scheme (the client then stops with error::tls_not_configured).
  virtual std::unique_ptr<ByteStream> make(net::any_io_executor const& ex, Url const& url) = 0;
};

/// The default connector: plain TCP for http and ws URLs; null for https and wss.
std::shared_ptr<Connector> plain_tcp();

}  // namespace herald::client

#include <herald/client/detail/tcp_stream.hpp>
