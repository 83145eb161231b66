#pragma once

#include <herald/config.hpp>
#include <herald/detail/answer_body.hpp>
#include <herald/hooks.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <concepts>
#include <functional>
#include <memory>
#include <string_view>
#include <utility>

namespace herald::inline v0 {

namespace detail {
/// Makes a static_assert depend on a template parameter, so it fires only when used.
template <class>
inline constexpr bool dependent_true = true;

template <class T>
class ChannelImpl;
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

/** What a transport's start() and answer() receive: the channel as its connections see it —
    its ChannelOptions and the transport's options, its Hub, admission (admit: origin,
    authorization, topics, cursor), the application's handlers and the registry of live
    connections (limits, shutdown). Shared by every connection of the channel. Most transports
    build their connections on detail::Connection (detail/connection.hpp), which uses all of it. */
template <class T>
using ChannelContext = detail::ChannelImpl<T>;

/** An answer a request/response transport gives in place (herald::Server keeps the
    connection). Its body is text (`res.body() = std::string(…)`); a poll answer's body holds
    its events' stored bytes rather than a copy of them (detail::AnswerBody). */
using Response = http::response<detail::AnswerBody>;

/** Delivers such an answer to the connection that owns the stream; call it at most once. The
    answer is complete (prepare_payload done); the connection only sets the request's version
    and its keep-alive decision. */
using Respond = std::function<void(Response&&)>;

/// A request a transport holds (a long poll) on a connection it does not own.
class Held {
 public:
  virtual ~Held() = default;
  /** The client went away: drop the request without answering and free what it holds at once.
      Called on the connection's executor; the Respond is not called after this. */
  virtual void cancel() = 0;
};

namespace detail {

/** The checks behind herald::Transport, one static_assert each, so that a transport that
    misses a member is told which one and how to declare it (a plain concept would only say
    "constraints not satisfied"). */
template <class T>
consteval bool transport_complete() {
  static_assert(requires { { T::name } -> std::convertible_to<std::string_view>; },
                "herald: a Transport needs `static constexpr std::string_view name` (logs, negotiation)");
  static_assert(requires { { T::capabilities } -> std::convertible_to<Capabilities>; },
                "herald: a Transport needs `static constexpr herald::Capabilities capabilities`");
  static_assert(requires { typename T::options; },
                "herald: a Transport needs `using options = ...;` (an empty struct when it has none)");
  static_assert(requires(Request const& req) { { T::matches(req) } -> std::same_as<bool>; },
                "herald: a Transport needs `static bool matches(herald::Request const&)` (which requests "
                "it serves on a shared path)");
  static_assert(requires(std::shared_ptr<ChannelContext<T>> ch, beast::tcp_stream stream, Request req) {
                  T::start(ch, std::move(stream), std::move(req));
                },
                "herald: a Transport needs `template <class Stream> static void start(std::shared_ptr<"
                "herald::ChannelContext<T>>, Stream&&, herald::Request&&)` (takes over a connection)");
  if constexpr (requires(Request const& req) { T::answers(req); }) {
    static_assert(requires(Request const& req) { { T::answers(req) } -> std::same_as<bool>; },
                  "herald: a Transport's answers() must be `static bool answers(herald::Request const&)`");
    static_assert(requires(std::shared_ptr<ChannelContext<T>> ch, Request req, net::any_io_executor ex,
                           Respond respond) {
                    { T::answer(ch, std::move(req), ex, std::move(respond)) } -> std::same_as<std::shared_ptr<Held>>;
                  },
                  "herald: a Transport with answers() needs `static std::shared_ptr<herald::Held> answer("
                  "std::shared_ptr<herald::ChannelContext<T>>, herald::Request&&, net::any_io_executor const&, "
                  "herald::Respond)`");
  }
  return true;
}

}  // namespace detail

/** A transport: how a Channel<T> serves its clients. The contract, checked member by member
    (a missing one is a compile error that names it):

      static constexpr std::string_view name;          // in logs and the negotiation answer
      static constexpr herald::Capabilities capabilities;
      using options = ...;                              // the transport's options (Channel's 4th argument)
      static bool matches(herald::Request const&);      // the requests it serves (Negotiated routes by it)
      template <class Stream>
      static void start(std::shared_ptr<herald::ChannelContext<T>>, Stream&&, herald::Request&&);
          // takes over a connection whose request the channel routed to it: a beast::tcp_stream
          // from herald::Server, whatever stream the application hands to Channel::accept()
          // A transport that reads from the connection after the request (WebSocket) adds a
          // 4th parameter, `std::string already_read = {}`: the bytes read past the request,
          // which it reads first.

    Optional members:
      static void validate(options const&);             // throws std::invalid_argument for bad options
      using channel_state = ...;                        // per-channel state, built from
                                                        // (detail::ChannelCore const&, options const&)
      static bool answers(herald::Request const&);      // request/response transports (Polling):
      static std::shared_ptr<herald::Held> answer(      // answer in place, so herald::Server keeps the
          std::shared_ptr<herald::ChannelContext<T>>,   // connection (keep-alive); a held answer
          herald::Request&&, net::any_io_executor const&, herald::Respond);  // returns its Held

    A transport's events reach the wire through StoredEvent::encoded(format, encode) with a
    detail::WireFormat of its own: each event is encoded once per format and shared by every
    subscriber, and no list of formats is edited. A stream type herald cannot close by its
    lowest layer's socket provides `void herald_close(Stream&)`, found by argument-dependent
    lookup. Adding a transport changes neither Channel, Hub, Server nor the other transports
    (tests/custom_transport.cpp serves one through Channel and Server).
*/
template <class T>
concept Transport = detail::transport_complete<T>();

}  // namespace herald
