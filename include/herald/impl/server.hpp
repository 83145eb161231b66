#pragma once

#include <herald/impl/server_state.hpp>
#include <herald/impl/http_session.hpp>

#include <boost/asio/compose.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <stdexcept>
#include <utility>
#include <vector>

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

/** The state machine of async_drain: begin (stop admitting, take the live connections in a
    random order), close them on schedule (the i-th of N at window * i / N), and at the
    window's end stop as StopOp does. */
template <class State>
struct DrainOp {
  std::shared_ptr<State> server;
  DrainOptions options;
  std::unique_ptr<net::steady_timer> timer;
  std::shared_ptr<RetrySpread> spread{};
  std::vector<std::shared_ptr<SessionBase>> connections{};
  std::chrono::steady_clock::time_point start{};
  std::size_t next = 0;
  bool started = false;
  bool stopping = false;

  template <class Self>
  void operator()(Self& self, boost::system::error_code = {}) {
    auto const now = std::chrono::steady_clock::now();
    if (!started) {
      started = true;
      start = now;
      // Its own generator: channels draw from `spread` on other threads from now on.
      std::mt19937_64 order{options.random()};
      spread = std::make_shared<RetrySpread>(options.retry_min, options.retry_jitter, now + options.window,
                                              std::move(options.random));
      connections = server->begin_drain(spread);
      // A random order: the registry lists one channel (one transport) after another, and
      // each transport's clients should come back over the whole window, not in one stretch.
      std::shuffle(connections.begin(), connections.end(), order);
    }
    if (!stopping) {
      auto const n = connections.size();
      // Released as they go: a connection closed early is not kept alive by the schedule.
      for (; next < n && due(next, n) <= now; ++next) std::exchange(connections[next], nullptr)->drain(spread->draw());
      // The window runs its course even when the last close came early: requests meanwhile
      // are refused with delays spread over what is left of it, not by a closed listener.
      if (next < n || now < start + options.window) {
        timer->expires_at(next < n ? due(next, n) : start + options.window);
        return timer->async_wait(std::move(self));
      }
      stopping = true;
      connections.clear();
      server->begin_stop();
    } else if (server->drained()) {
      return self.complete({});
    } else if (now >= start + options.window + options.grace) {
      server->abort_all();
      return self.complete(net::error::timed_out);
    }
    timer->expires_after(std::chrono::milliseconds(5));  // as StopOp: poll until closed
    timer->async_wait(std::move(self));
  }

  std::chrono::steady_clock::time_point due(std::size_t i, std::size_t n) const {
    return start + options.window * static_cast<std::int64_t>(i) / static_cast<std::int64_t>(n);
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
auto BasicServer<Streams...>::async_drain(DrainOptions options, Token&& token) {
  if (options.window.count() < 0 || options.retry_min.count() < 0 || options.retry_jitter.count() < 0 ||
      options.grace.count() < 0)
    throw std::invalid_argument("herald: DrainOptions durations must not be negative");
  if (!options.random) {
    auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
    options.random = [engine] { return (*engine)(); };
  }
  using State = detail::ServerState<Streams...>;
  auto timer = std::make_unique<net::steady_timer>(state_->executor());
  return net::async_compose<Token, void(boost::system::error_code)>(
      detail::DrainOp<State>{state_, std::move(options), std::move(timer)}, token, state_->executor());
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
