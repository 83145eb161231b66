#pragma once

#include <herald/config.hpp>
#include <herald/detail/channel_core.hpp>
#include <herald/hooks.hpp>
#include <herald/transport.hpp>

#include <boost/beast/http/verb.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace herald::inline v0 {

/// Options of the polling transport. Every default is safe for a public server.
struct PollingOptions {
  /** Longest a long poll is held; a larger `wait` is capped to it. The default stays below the
      60-second idle timeouts of common proxies and load balancers. Zero turns long polls into
      short polls. */
  std::chrono::milliseconds max_wait = std::chrono::seconds(25);
  /// Events per answer when the request names no `limit`.
  std::size_t default_limit = 100;
  /// Largest `limit` honoured; a larger one is capped to it.
  std::size_t max_limit = 1000;
  /** Bytes of events one answer holds at most (a single larger event still goes, alone). An
      answer cut short says `"more":true` and its cursor is where the next poll continues, so
      nothing is lost. Each answer is built in memory until the client reads it, so this bounds
      what a client that polls and never reads can pin: 1 MiB is a few thousand typical events,
      and twenty such clients hold 20 MiB, not what `limit` times the largest event allows. */
  std::size_t max_answer_bytes = 1024 * 1024;
};

/** Short and long polling: plain HTTP request/response, so it passes every proxy and needs no
    stateful infrastructure. The least powerful transport and the most robust.

      GET path?topic=orders&since=<cursor>[&wait=<seconds>][&limit=<n>]
      -> 200 application/json {"events":[{"id":…,"topic":…,"event":…,"data":…},…],"cursor":…}

    Without `wait` the answer comes at once and carries an ETag (If-None-Match -> 304); with
    `wait` it is held until at least one event is there or the (capped) wait ends. A cursor
    outside the history answers `"reset": true`. Without `since` the poll starts from now.
    docs/polling.md has the whole contract.

    Polls are answered in place: behind herald::Server the connection stays the Server's
    (keep-alive, other paths). A connection handed over with Channel::accept() is answered once
    and closed, since the application's other paths may share it. A held poll counts as one of
    the channel's connections (Limits::max_connections); a short poll is never held.
*/
struct Polling {
  static constexpr std::string_view name = "polling";
  static constexpr Capabilities capabilities{
      .client_to_server = false, .binary = false, .server_push = false, .resumable = true,
      .plain_http = true};
  using options = PollingOptions;

  /// A plain request: GET, HEAD or OPTIONS that asks for no event stream and no upgrade.
  static bool matches(Request const& req) {
    auto const m = req.method();
    if (m != http::verb::get && m != http::verb::head && m != http::verb::options) return false;
    if (req[http::field::accept].find("text/event-stream") != std::string_view::npos) return false;
    return req[http::field::upgrade].empty();
  }

  /// Every request that reaches a polling channel is answered in place (405 for other methods).
  static bool answers(Request const&) noexcept { return true; }

  /// Throws std::invalid_argument for options that cannot work (named in the message).
  static void validate(PollingOptions const& options);

  /** Answer `req` on a connection that stays its owner's (see detail::Endpoint::answer);
      `remote`: the client's address, for the authorize hook. */
  static std::shared_ptr<Held> answer(std::shared_ptr<ChannelContext<Polling>> channel,
                                              Request&& req, net::any_io_executor const& ex,
                                              Respond respond, net::ip::tcp::endpoint remote = {});

  /// Serve one request on a connection handed over with Channel::accept(), then close it.
  template <class Stream>
  static void start(std::shared_ptr<ChannelContext<Polling>> channel, Stream&& stream, Request&& req);
};

}  // namespace herald

#include <herald/transports/impl/polling.hpp>
