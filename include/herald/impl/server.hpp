#pragma once

#include <herald/impl/server_state.hpp>
#include <herald/impl/http_session.hpp>

#include <boost/asio/compose.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>

namespace herald::inline v0::detail {

/// The state machine of async_stop: begin, poll until drained or past the deadline.
template <class State>
struct StopOp {
  std::shared_ptr<State> server;
  std::chrono::steady_clock::time_point deadline;
  std::unique_ptr<net::steady_timer> timer;
  bool started = false;

  template <class Self>
  void operator()(Self& self, boost::system::error_code = {}) {
    if (!started) {
      started = true;
      server->begin_stop();
    } else if (server->drained()) {
      return self.complete({});
    } else if (std::chrono::steady_clock::now() >= deadline) {
      server->abort_all();
      return self.complete(net::error::timed_out);
    }
    // Connections close on their own strands; poll briefly rather than couple every session
    // to a completion callback (shutdown is rare, and this bounds the wait at the deadline).
    timer->expires_after(std::chrono::milliseconds(5));
    timer->async_wait(std::move(self));
  }
};

}  // namespace herald::inline v0::detail

namespace herald::inline v0 {

template <class... Streams>
BasicServer<Streams...>::BasicServer(executor_type ex, ServerOptions options)
    : state_(std::make_shared<detail::ServerState<Streams...>>(std::move(ex), std::move(options))) {}

template <class... Streams>
BasicServer<Streams...>::~BasicServer() {
  if (state_) state_->abort_all();
}

template <class... Streams>
template <Transport T>
BasicServer<Streams...>& BasicServer<Streams...>::add(Channel<T> const& channel) {
  // The hand-offs are compiled here, where T and every stream type are known.
  auto impl = std::static_pointer_cast<detail::ChannelImpl<T>>(channel.endpoint());
  typename detail::ServerState<Streams...>::Routed route{
      channel.endpoint(),
      {std::function<void(Streams&&, Request&&, std::string&&)>(
          [impl](Streams&& stream, Request&& req, std::string&& already_read) {
            impl->accept_stream(std::move(stream), std::move(req), std::move(already_read));
          })...}};
  state_->add_route(channel.path(), std::move(route));
  return *this;
}

template <class... Streams>
BasicServer<Streams...>& BasicServer<Streams...>::handle(std::string path, Handler handler) {
  if (!handler) throw std::invalid_argument("herald: Server::handle needs a handler");
  state_->add_route(std::move(path), std::move(handler));
  return *this;
}

template <class... Streams>
BasicServer<Streams...>& BasicServer<Streams...>::handle_async(std::string path, AsyncHandler handler) {
  if (!handler) throw std::invalid_argument("herald: Server::handle_async needs a handler");
  state_->add_route(std::move(path), std::move(handler));
  return *this;
}

template <class... Streams>
net::ip::tcp::endpoint BasicServer<Streams...>::listen(std::string_view host, std::uint16_t port) {
  return listen_as<beast::tcp_stream>(host, port, {});
}

template <class... Streams>
template <class Stream>
net::ip::tcp::endpoint BasicServer<Streams...>::listen_as(std::string_view host, std::uint16_t port,
                                                          typename detail::ServerStream<Stream>::Config config) {
  static_assert((std::is_same_v<Stream, Streams> || ...), "herald: this server does not serve that stream type");
  return state_->template listen<Stream>(host, port, std::move(config));
}

template <class... Streams>
net::ip::tcp::endpoint BasicServer<Streams...>::local_endpoint() const {
  return state_->local_endpoint();
}

template <class... Streams>
typename BasicServer<Streams...>::executor_type BasicServer<Streams...>::get_executor() const noexcept {
  return state_->executor();
}

template <class... Streams>
template <class Token>
auto BasicServer<Streams...>::async_stop(std::chrono::steady_clock::duration grace, Token&& token) {
  using State = detail::ServerState<Streams...>;
  auto timer = std::make_unique<net::steady_timer>(state_->executor());
  return net::async_compose<Token, void(boost::system::error_code)>(
      detail::StopOp<State>{state_, std::chrono::steady_clock::now() + grace, std::move(timer)}, token,
      state_->executor());
}

}  // namespace herald
