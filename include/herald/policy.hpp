#pragma once

#include <herald/fwd.hpp>

#include <type_traits>

namespace herald::inline v0 {

/** What an application needs from its live channel, as a value usable as a template argument.
    Every field defaults to false; herald::select_t picks the least powerful transport that fits.

    Example:
      herald::Channel<herald::select_t<herald::Needs{.client_to_server = true}>> live{hub, "/live"};
*/
struct Needs {
  /// Clients send messages to the server in real time (chat, collaboration, trading).
  bool client_to_server = false;
  /// Payloads are binary and must travel as binary.
  bool binary = false;
  /// Updates are infrequent (every 30 s or slower): a request now and then beats a held stream.
  bool infrequent = false;
  /// No stateful infrastructure: no held connections, every exchange is a plain HTTP request.
  bool stateless = false;
};

namespace detail {

template <Needs N>
struct Select {
  static_assert(!(N.stateless && N.client_to_server),
                "herald: Needs{.stateless = true} rules out real-time client->server messages, "
                "which need a held WebSocket; drop .stateless (to get herald::WebSocket) or drop "
                ".client_to_server (to get herald::Polling)");
  static_assert(!(N.stateless && N.binary),
                "herald: Needs{.stateless = true} rules out binary frames, which need a held "
                "WebSocket; drop .stateless (to get herald::WebSocket) or send text/JSON (to get "
                "herald::Polling)");
  // The decision flow, least powerful first: real-time client->server or binary -> WebSocket;
  // infrequent updates or no stateful infrastructure -> Polling; one-way push -> SSE.
  using type = std::conditional_t<N.client_to_server || N.binary, WebSocket,
                                  std::conditional_t<N.infrequent || N.stateless, Polling, Sse>>;
};

}  // namespace detail

/// The least powerful transport that meets `N`: WebSocket, Sse or Polling.
template <Needs N>
using select_t = typename detail::Select<N>::type;

}  // namespace herald
