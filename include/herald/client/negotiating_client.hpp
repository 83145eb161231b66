#pragma once

#include <herald/client/detail/core.hpp>
#include <herald/client/options.hpp>
#include <herald/config.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace herald::inline v0::client {

namespace detail {
class NegotiatingImpl;
}

/** Follows a herald channel that serves every transport on one path
    (Channel<Negotiated<WebSocket, Sse, Polling>>) over the best transport that actually
    delivers, as `herald.js` does in browsers: WebSocket, else SSE, else long polling.

    A transport counts as working only once data (an event or the server's heartbeat) arrived
    on it (Options::proof_timeout after it opened); a connection that opens and then delivers
    nothing — a proxy that lets the upgrade or the SSE headers through and holds back what
    follows — or that stalls later (nothing for twice the advertised heartbeat) makes the client
    move to the next transport at once. A working connection that merely drops is resumed on the
    same transport, with backoff. When every transport failed, the client backs off and starts
    over from the best one. The working choice is kept in the object; after a fallback the
    better transports are probed again in the background (NegotiateOptions::probe_after,
    doubling up to probe_cap while none works), and the first that proves delivery takes over.

    It starts with `GET url?negotiate`, whose `transports` narrow NegotiateOptions::transports
    and whose `cursor` is where the client starts when Options::since is not set. Every switch
    resumes from the client's positions (per topic on WebSocket, the lowest of them on SSE and
    polling, which carry one cursor) and drops what it already delivered, so every event of the
    followed topics reaches on_event exactly once, in order per topic, across any number of
    switches. Receiving only: messages to the server need a WebSocketClient (or a POST).

    States: connecting, then open whenever a transport proved delivery; reconnecting (with the
    reason) when the working transport dropped or a transport failed and the next is tried;
    closed after async_stop, or when the server refused with 401, 403 or 404.

    Thread safety: start(), async_stop(), stats(), transport() from any thread; set handlers
    before start(). Handlers run on the client's strand.

    Example:
      herald::client::NegotiatingClient live{ioc.get_executor(), "http://127.0.0.1:8080/live",
                                             {.topics = {"metrics"}}};
      live.on_event([](herald::Event const& e) { show(e.topic, e.data); });
      live.start();
*/
class NegotiatingClient : public detail::ClientHandle<detail::NegotiatingImpl> {
 public:
  /** `url` is the channel's http(s) URL; WebSocket uses the same with ws(s). Throws
      std::invalid_argument for another scheme or invalid options (an unknown transport name,
      no transport, a probe_after that is not positive or above probe_cap). */
  NegotiatingClient(executor_type const& ex, std::string_view url, Options options = {});

  /// The transport that last proved delivery ("websocket", "sse", "polling"); empty before any.
  std::string transport() const;
};

}  // namespace herald::client

#include <herald/client/impl/negotiating_client.hpp>
