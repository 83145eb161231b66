#pragma once

#include <herald/config.hpp>
#include <herald/detail/channel_core.hpp>
#include <herald/detail/response.hpp>
#include <herald/hooks.hpp>
#include <herald/transport.hpp>

#include <boost/beast/core/string.hpp>

#include <chrono>
#include <memory>
#include <string_view>

namespace herald::inline v0 {

/// Options of the SSE transport.
struct SseOptions {
  /// Reconnection delay sent to EventSource as `retry:` when the stream starts and ends.
  std::chrono::milliseconds retry = std::chrono::seconds(3);
  /** A heartbeat is sent after this much silence, so proxies keep the stream and clients can
      tell a quiet stream from a stuck one: a comment, or for a request with `?heartbeat` an
      event of type `heartbeat` (data `{"heartbeat":<ms>}`, also sent right after the headers)
      that a page's script can see. Every stream advertises it as `Herald-Heartbeat: <ms>`.
      Zero: no heartbeat and no header. */
  std::chrono::milliseconds heartbeat = std::chrono::seconds(15);
  /** Send every event's JSON envelope as its data ({"id","topic","event","data"}), so a client
      of several topics can tell each event's topic. Off: bare data, as `new EventSource(url)`
      with `JSON.parse(e.data)` expects. A request decides for itself with `?envelope` (or
      `?envelope=0`). */
  bool envelope = false;
};

/** Server-Sent Events (WHATWG event-stream): one-way push that browsers consume with
    `new EventSource(url)`, resuming by themselves with `Last-Event-ID`.

    A request is served when it is a GET; `?topic=` names topics, and the cursor comes from the
    `Last-Event-ID` header or a `lastEventId` query parameter. `?envelope` makes each event's
    data its JSON envelope, naming its topic (for streams of several topics); `?heartbeat`
    asks for heartbeat events (see SseOptions::heartbeat).
*/
struct Sse {
  static constexpr std::string_view name = "sse";
  static constexpr Capabilities capabilities{
      .client_to_server = false, .binary = false, .server_push = true, .resumable = true,
      .plain_http = false};
  using options = SseOptions;

  /// A GET that accepts text/event-stream.
  static bool matches(Request const& req) { return detail::wants_event_stream(req); }

  template <class Stream>
  static void start(std::shared_ptr<ChannelContext<Sse>> channel, Stream&& stream, Request&& req);
};

}  // namespace herald

#include <herald/transports/impl/sse.hpp>
