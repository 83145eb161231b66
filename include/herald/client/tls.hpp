#pragma once

// TLS for herald's clients (https, wss) through OpenSSL: link herald::tls. Only this header
// needs OpenSSL; the clients themselves do not.

#include <herald/client/connector.hpp>
#include <herald/client/detail/tcp_stream.hpp>
#include <herald/config.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <utility>

namespace herald::inline v0::client {

/** TLS settings. The defaults verify the server: certificate chain against the system's
    trusted CAs, and the certificate against the host name (or IP address) of the URL, which is
    also sent as SNI.

    Example (a private CA):
      auto ctx = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_client);
      ctx->load_verify_file("ca.pem");
      herald::client::SseClient c{ex, "https://feed.internal/api/feed", {.connector = herald::client::tls({.context = ctx})}};
*/
struct TlsOptions {
  /** The OpenSSL context: trusted CAs, client certificate, protocol versions. Empty: a
      TLS client context with the system's default CA paths. Shared by every connection. */
  std::shared_ptr<net::ssl::context> context;
  /// Check the server's certificate (chain and name). Turn off only for tests.
  bool verify = true;
  /// The name to verify and send as SNI; empty: the URL's host.
  std::string server_name;
};

namespace detail {

class TlsByteStream final : public ByteStream {
 public:
  TlsByteStream(net::any_io_executor const& ex, std::shared_ptr<net::ssl::context> ctx, TlsOptions const& o)
      : ctx_(std::move(ctx)), resolver_(ex), stream_(ex, *ctx_), verify_(o.verify), server_name_(o.server_name) {}

  executor_type get_executor() noexcept override { return stream_.get_executor(); }

  void async_open(Url const& url, OpenHandler handler) override {
    std::string const name = server_name_.empty() ? url.host : server_name_;
    boost::system::error_code ec;
    net::ip::make_address(name, ec);
    bool const is_ip = !ec;
    // SNI carries host names only (RFC 6066 §3), never IP literals.
    if (!is_ip && !SSL_set_tlsext_host_name(stream_.native_handle(), name.c_str())) {
      boost::system::error_code err{static_cast<int>(::ERR_get_error()), net::error::get_ssl_category()};
      return net::dispatch(stream_.get_executor(), net::append(std::move(handler), err));
    }
    if (verify_) {
      stream_.set_verify_mode(net::ssl::verify_peer);
      stream_.set_verify_callback(net::ssl::host_name_verification(name));
    } else {
      stream_.set_verify_mode(net::ssl::verify_none);
    }
    resolve_and_connect(resolver_, stream_.next_layer(), url,
                        [this, h = std::move(handler)](boost::system::error_code err) mutable {
                          if (err) return net::dispatch(net::append(std::move(h), err));
                          stream_.async_handshake(net::ssl::stream_base::client, std::move(h));
                        });
  }

  void async_read_some(net::mutable_buffer buffer, IoHandler handler) override {
    stream_.async_read_some(buffer, std::move(handler));
  }

  void async_write_some(std::span<net::const_buffer const> buffers, IoHandler handler) override {
    stream_.async_write_some(to_array(buffers), std::move(handler));
  }

  void close() noexcept override {
    boost::system::error_code ignored;
    resolver_.cancel();
    stream_.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.next_layer().close(ignored);
  }

 private:
  std::shared_ptr<net::ssl::context> ctx_;
  tcp::resolver resolver_;
  net::ssl::stream<tcp::socket> stream_;
  bool verify_;
  std::string server_name_;
};

class TlsConnector final : public Connector {
 public:
  explicit TlsConnector(TlsOptions options) : options_(std::move(options)) {
    if (!options_.context) {
      options_.context = std::make_shared<net::ssl::context>(net::ssl::context::tls_client);
      options_.context->set_default_verify_paths();
    }
  }

  std::unique_ptr<ByteStream> make(net::any_io_executor const& ex, Url const& url) override {
    if (!url.secure()) return std::make_unique<TcpByteStream>(ex);
    return std::make_unique<TlsByteStream>(ex, options_.context, options_);
  }

 private:
  TlsOptions options_;
};

}  // namespace detail

/** A connector for https and wss (and plain http and ws) URLs: pass it as Options::connector.
    Throws boost::system::system_error if the default context cannot be set up. */
inline std::shared_ptr<Connector> tls(TlsOptions options = {}) {
  return std::make_shared<detail::TlsConnector>(std::move(options));
}

}  // namespace herald::client
