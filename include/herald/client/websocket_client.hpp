#pragma once

#include <herald/client/detail/core.hpp>
#include <herald/client/options.hpp>
#include <herald/config.hpp>
#include <herald/session.hpp>

#include <boost/system/error_code.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace herald::inline v0::client {

namespace detail {
class WsImpl;
}

/** Follows a herald WebSocket endpoint (Channel<WebSocket>) and talks to it: subscribes with
    per-topic cursors, reconnects with backoff and resubscribes each topic from the last id
    seen on it, drops duplicates, reports reset notices and state changes, and carries the
    application's messages both ways.

    Protocol: `{"subscribe":"t","since":N}` / `{"unsubscribe":"t"}` out, event envelopes
    `{"id":…,"topic":…,"event":…,"data":…}` in (a binary event is a head with "binary":true
    followed by a binary frame). A topic followed without a cursor starts at the position
    the server's `{"subscribed":t,"cursor":N}` acknowledgement names. Server frames that are
    neither envelopes nor acknowledgements nor `{"error":…}` replies go to on_message.

    Thread safety: start(), async_stop(), subscribe(), unsubscribe(), send() and stats() from
    any thread; set handlers before start(). Handlers run on the client's strand.

    Example:
      herald::client::WebSocketClient live{ioc.get_executor(), "ws://127.0.0.1:8080/live",
                                           {.topics = {"room1"}}};
      live.on_event([](herald::Event const& e) { show(e.data); });
      live.on_message([](herald::Message const& m) { reply(m.data); });
      live.start();
      live.send(R"({"say":"hi"})");
*/
class WebSocketClient : public detail::ClientHandle<detail::WsImpl> {
 public:
  /// Throws std::invalid_argument for a URL that is not ws(s) or for invalid options.
  WebSocketClient(executor_type const& ex, std::string_view url, Options options = {});

  /** Receive the server's application messages (Session::send on the server): text frames
      that are not herald control messages, and binary frames that follow no event head.
      Set before start(). */
  template <class F>
  WebSocketClient& on_message(F&& handler);

  /** Receive the server's refusals of a subscription or message, `{"error":…}`: the code (a
      herald::error such as forbidden or too_many_subscriptions), the topic (may be empty)
      and the server's detail. A refused topic is no longer followed. Set before start(). */
  template <class F>
  WebSocketClient& on_error(F&& handler);

  /** Follow `topic` too, from `since` if given, else from the last id seen on it, else from
      now. Followed topics are resubscribed on every reconnection. Already followed: nothing. */
  void subscribe(std::string topic, std::optional<EventId> since = std::nullopt);

  /// Stop following `topic`; events of it that are still in flight are dropped.
  void unsubscribe(std::string topic);

  /** Send an application message (a text frame). Messages wait in a bounded queue while the
      client is not connected and go out, in order, once it is; each is written at most once
      (a message being written when the connection drops is not repeated).
      Returns accepted, backpressure (over half full) or dropped (full, or stopping). */
  SendStatus send(std::string text);

  /// Send binary data (a binary frame); otherwise as send().
  SendStatus send_binary(std::string bytes);
};

}  // namespace herald::client

#include <herald/client/impl/websocket_client.hpp>
