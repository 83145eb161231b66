#pragma once

#include <herald/client/detail/core.hpp>
#include <herald/client/options.hpp>
#include <herald/config.hpp>

#include <memory>
#include <string_view>

namespace herald::inline v0::client {

namespace detail {
class SseImpl;
}

/** Follows an SSE endpoint (herald's Channel<Sse>, or any WHATWG event stream) like a robust
    EventSource: reconnects with backoff, resumes with `Last-Event-ID`, drops duplicates,
    reports reset notices and state changes.

    `GET url?topic=a&topic=b` with `Accept: text/event-stream`; the cursor travels as
    `Last-Event-ID`. The server's `retry:` sets the backoff base (BackoffOptions). An SSE
    stream is one sequence, so de-duplication is by id over the whole stream; Event::topic is
    the topic when exactly one is followed (SSE does not carry topics on the wire), else empty.
    A 401/403/404/400 answer closes the client (no retry); 429/5xx and network errors retry.

    Thread safety: start(), async_stop(), stats() from any thread; set handlers before start().
    Handlers run on the client's strand. The client must be destroyed before its io_context.

    Example:
      herald::client::SseClient feed{ioc.get_executor(), "http://127.0.0.1:8080/api/feed",
                                     {.topics = {"orders"}}};
      feed.on_event([](herald::Event const& e) { std::cout << e.id << ' ' << e.data << '\n'; });
      feed.start();
*/
class SseClient : public detail::ClientHandle<detail::SseImpl> {
 public:
  /// Throws std::invalid_argument for a URL that is not http(s) or for invalid options.
  SseClient(executor_type const& ex, std::string_view url, Options options = {});
};

}  // namespace herald::client

#include <herald/client/impl/sse_client.hpp>
