#pragma once

#include <herald/config.hpp>
#include <herald/detail/channel_core.hpp>
#include <herald/hooks.hpp>
#include <herald/hub.hpp>
#include <herald/options.hpp>
#include <herald/session.hpp>
#include <herald/transport.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/buffers_to_string.hpp>

#include <memory>
#include <string>
#include <utility>

namespace herald::inline v0 {

/** A path on which clients receive a hub's events over transport `T`.

    Connections reach a channel in one of two ways: a herald::Server routes them by path, or
    the application's own Beast server hands over a parsed request with accept(). Either way
    the channel owns the connection from then on.

    Thread safety: every member function may be called from any thread. Connections keep the
    channel's state alive; destroying the Channel closes them.

    Example:
      herald::Channel<herald::Sse> feed{hub, "/api/feed"};
      server.add(feed);
*/
template <Transport T>
class Channel {
 public:
  using transport_type = T;
  using transport_options = typename T::options;

  /// Throws std::invalid_argument for a path not starting with '/' or invalid options.
  Channel(Hub const& hub, std::string path, ChannelOptions options = {},
          transport_options topts = {})
      : impl_(std::make_shared<detail::ChannelImpl<T>>(hub, std::move(path), std::move(options),
                                                       std::move(topts))) {}

  Channel(Channel&&) noexcept = default;
  Channel& operator=(Channel&&) noexcept = default;

  ~Channel() {
    if (impl_) impl_->abort();
  }

  /** Take over a connection whose request the application has read.

      `stream` is a connected `beast::tcp_stream`, `ssl_stream<tcp_stream>` or socket; its
      executor should be a strand or a single-threaded context (herald adds a strand of its
      own). Requests the channel refuses are answered with a plain HTTP error and closed.
      `already_read` is what the application's buffer holds past the request (`buffer.data()`
      after `http::read`): a WebSocket client may send frames in the same packet as its
      upgrade, and they are the connection's first bytes.
  */
  template <class Stream, class Buffers = net::const_buffer>
    requires net::is_const_buffer_sequence<Buffers>::value
  void accept(Stream&& stream, Request req, Buffers const& already_read = {}) {
    impl_->accept_stream(std::forward<Stream>(stream), std::move(req), beast::buffers_to_string(already_read));
  }

  /** Receive the application's client->server messages (not control messages).

      Only for transports that carry messages from the client; set before the channel serves.
      Example:
        live.on_message([](herald::Session& s, herald::Message const& m) { s.send(m.data); });
  */
  template <class F>
  Channel& on_message(F&& handler) {
    static_assert(detail::dependent_true<F> && T::capabilities.client_to_server,
                  "herald: on_message needs client->server messages, which this transport does not "
                  "carry; use herald::WebSocket (or Needs{.client_to_server = true})");
    impl_->set_on_message(MessageHandler(std::forward<F>(handler)));
    return *this;
  }

  /** Publish on the channel's hub (any thread). The same as hub().publish(); here so that code
      written against a Channel reads the same for every transport. */
  EventId publish(std::string_view topic, std::string_view data, PublishOptions options = {}) {
    return impl_->hub().publish(topic, data, options);
  }

  /// Publish binary data; only on transports that carry binary (a compile error elsewhere).
  template <class Bytes = std::string_view>
  EventId publish_binary(std::string_view topic, Bytes const& bytes, std::string_view type = {}) {
    static_assert(detail::dependent_true<Bytes> && T::capabilities.binary,
                  "herald: publish_binary needs a transport that carries binary payloads, which "
                  "this one does not; use herald::WebSocket (or Needs{.binary = true})");
    return impl_->hub().publish(topic, std::string_view(bytes),
                                {.type = type, .kind = PayloadKind::binary});
  }

  /** Called for every connection once it is admitted and subscribed (SSE streams, WebSocket
      connections; a poll is a request, not a connection, and calls neither). Set before
      serving. If it throws, the connection is closed. */
  template <class F>
  Channel& on_open(F&& handler) {
    impl_->set_on_open(OpenHandler(std::forward<F>(handler)));
    return *this;
  }

  /// Called once when a connection that on_open saw closes, with the reason. Set before serving.
  template <class F>
  Channel& on_close(F&& handler) {
    impl_->set_on_close(CloseHandler(std::forward<F>(handler)));
    return *this;
  }

  std::string const& path() const noexcept { return impl_->path(); }

  /** Connections open now (a poll while it is held): admitted and subscribed, so an event
      published after this count includes a connection reaches it. */
  std::size_t connections() const { return impl_->open_connections(); }

  /// Stop admitting; tell every client the server is going away, then close.
  void shutdown() { impl_->shutdown(); }

  /** Close every current connection at once, and keep admitting new ones: clients reconnect
      and resume from their cursor (e.g. to move load to other nodes). */
  void disconnect_all() { impl_->disconnect_all(); }

  Hub const& hub() const noexcept { return impl_->hub(); }

  /// The type-erased endpoint herald::Server routes to.
  std::shared_ptr<detail::Endpoint> endpoint() const noexcept { return impl_; }

 private:
  std::shared_ptr<detail::ChannelImpl<T>> impl_;
};

}  // namespace herald
