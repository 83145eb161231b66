#pragma once

#include <herald/config.hpp>
#include <herald/hooks.hpp>

#include <concepts>
#include <string_view>

namespace herald {

namespace detail {
/// Makes a static_assert depend on a template parameter, so it fires only when used.
template <class>
inline constexpr bool dependent_true = true;
}  // namespace detail

/// What a transport can do. Each transport states its capabilities as a constant.
struct Capabilities {
  /// Clients can send messages to the server in real time on the same connection.
  bool client_to_server = false;
  /// Binary payloads travel as binary (not re-encoded as text).
  bool binary = false;
  /// Events are pushed over a held connection as they are published.
  bool server_push = false;
  /// Clients resume from a cursor after a disconnect, with no gap and no duplicate.
  bool resumable = false;
  /// Works over plain HTTP request/response: no upgrade, no long-lived stream through proxies.
  bool plain_http = false;
};

/** A transport: a name, capabilities, transport options, and a test for its requests.

    A transport also provides
      template <class Stream>
      static void start(std::shared_ptr<detail::ChannelImpl<T>>, Stream&&, Request&&);
    which takes over a connection whose request the channel routed to it. A request/response
    transport (Polling) also provides
      static bool answers(Request const&);
      static std::shared_ptr<detail::Held> answer(std::shared_ptr<detail::ChannelImpl<T>>,
                                                  Request&&, net::any_io_executor const&,
                                                  detail::Respond);
    so herald::Server can answer such requests in place and keep the connection (keep-alive);
    and optionally `static void validate(options const&)`, which throws for unusable options.
    Adding a transport never changes Channel.
*/
template <class T>
concept Transport = requires(Request const& req) {
  { T::name } -> std::convertible_to<std::string_view>;
  { T::capabilities } -> std::convertible_to<Capabilities>;
  typename T::options;
  { T::matches(req) } -> std::same_as<bool>;
};

}  // namespace herald
