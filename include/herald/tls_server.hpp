#pragma once

// https and wss for herald's standalone server, through OpenSSL: link herald::tls. Only this
// header needs OpenSSL; herald::Server and the rest of herald do not.

#include <herald/config.hpp>
#include <herald/server.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/system/system_error.hpp>

#include <openssl/ssl.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace herald::inline v0 {

/** The TLS settings of a listener from PEM files. The server then speaks TLS 1.2 and 1.3 only,
    offers `http/1.1` by ALPN (so browsers do not try HTTP/2), and refuses renegotiation.

    Example (certbot's files):
      server.listen("0.0.0.0", 443, {.certificate_chain_file = "/etc/letsencrypt/live/x/fullchain.pem",
                                     .private_key_file = "/etc/letsencrypt/live/x/privkey.pem"});
*/
struct TlsOptions {
  /// PEM file: the server's certificate first, then the intermediate CAs.
  std::string certificate_chain_file;
  /// PEM file with the certificate's private key, not encrypted.
  std::string private_key_file;
};

namespace detail {

/// The stream of a TLS connection of herald::TlsServer.
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

/** ALPN: pick `http/1.1` from the client's list; without it, go on without ALPN (a client that
    offered only h2 then fails on its own terms, with a clear HTTP/1.1 answer). */
inline int select_http11(SSL*, unsigned char const** out, unsigned char* outlen, unsigned char const* in,
                         unsigned int inlen, void*) {
  static constexpr unsigned char http11[] = {'h', 't', 't', 'p', '/', '1', '.', '1'};
  for (unsigned int i = 0; i < inlen;) {
    unsigned int const n = in[i];
    if (i + 1 + n > inlen) break;
    if (n == sizeof http11 && std::memcmp(in + i + 1, http11, n) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(n);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + n;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

/// Installs herald's ALPN choice on a server context.
inline void set_alpn_http11(net::ssl::context& ctx) {
  SSL_CTX_set_alpn_select_cb(ctx.native_handle(), &select_http11, nullptr);
}

template <>
struct ServerStream<TlsStream> {
  struct Config {
    std::shared_ptr<net::ssl::context> context;
  };
  static TlsStream make(net::ip::tcp::socket&& socket, Config const& config) {
    return TlsStream(beast::tcp_stream(std::move(socket)), *config.context);
  }
  static constexpr bool handshake = true;
  template <class Handler>
  static void async_handshake(TlsStream& stream, Handler&& handler) {
    stream.async_handshake(net::ssl::stream_base::server, std::forward<Handler>(handler));
  }
  static bool peer_gone(boost::system::error_code const& ec) noexcept {
    return ec == net::ssl::error::stream_truncated;
  }
};

}  // namespace detail

/** A server context from PEM files, set up as TlsOptions describes; for sharing one context
    between servers, or adjusting it before listen().

    Throws boost::system::system_error naming the file when a file cannot be read or parsed,
    or when the key does not belong to the certificate.
*/
inline std::shared_ptr<net::ssl::context> make_tls_context(TlsOptions const& options) {
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_compression |
                   net::ssl::context::single_dh_use);
  SSL_CTX_set_options(ctx->native_handle(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  auto load = [](auto&& step, std::string const& what, std::string const& file) {
    if (file.empty()) throw boost::system::system_error(make_error_code(boost::system::errc::invalid_argument),
                                                        "herald: TlsOptions::" + what + " is empty");
    try {
      step();
    } catch (boost::system::system_error const& e) {
      throw boost::system::system_error(e.code(), "herald: cannot use " + what + " " + file);
    }
  };
  load([&] { ctx->use_certificate_chain_file(options.certificate_chain_file); }, "certificate_chain_file",
       options.certificate_chain_file);
  load([&] { ctx->use_private_key_file(options.private_key_file, net::ssl::context::pem); }, "private_key_file",
       options.private_key_file);
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
    throw boost::system::system_error(make_error_code(boost::system::errc::invalid_argument),
                                      "herald: the private key " + options.private_key_file +
                                          " does not belong to the certificate " + options.certificate_chain_file);
  detail::set_alpn_http11(*ctx);
  return ctx;
}

/** herald::Server that also speaks TLS: https and wss on the same channels and routes, and
    plain http/ws on listeners opened with listen(host, port). Everything else is
    herald::Server's (see BasicServer). The TLS handshake is bounded by
    ServerOptions::request_timeout; a connection over max_connections is closed before it.

    Example:
      herald::TlsServer server{ioc.get_executor()};
      server.add(feed);
      server.listen("0.0.0.0", 8443, {.certificate_chain_file = "fullchain.pem",
                                      .private_key_file = "privkey.pem"});
*/
class TlsServer final : public BasicServer<beast::tcp_stream, detail::TlsStream> {
 public:
  using BasicServer::BasicServer;
  using BasicServer::listen;

  /** Bind a TLS listener with the certificate chain and key of `tls`. Throws
      boost::system::system_error, naming the file, when a file cannot be used (before
      anything is bound), and when binding fails. */
  net::ip::tcp::endpoint listen(std::string_view host, std::uint16_t port, TlsOptions const& tls) {
    return listen(host, port, make_tls_context(tls));
  }

  /** Bind a TLS listener with a context the application set up (certificates, versions,
      ciphers). herald installs its ALPN choice (http/1.1) on it and keeps it alive while
      connections use it. Throws std::invalid_argument for a null context. */
  net::ip::tcp::endpoint listen(std::string_view host, std::uint16_t port,
                                std::shared_ptr<net::ssl::context> context) {
    if (!context) throw std::invalid_argument("herald: TlsServer::listen needs a TLS context");
    detail::set_alpn_http11(*context);
    return listen_as<detail::TlsStream>(host, port, {std::move(context)});
  }
};

}  // namespace herald
