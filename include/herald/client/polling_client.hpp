#pragma once

#include <herald/client/detail/core.hpp>
#include <herald/client/options.hpp>
#include <herald/config.hpp>

#include <memory>
#include <string_view>

namespace herald::inline v0::client {

namespace detail {
class PollImpl;
}

/** Follows a herald polling endpoint (Channel<Polling>): long polls by default
    (PollOptions::wait), short polls every PollOptions::interval when `wait` is zero. Each
    answer's `cursor` becomes the next request's `since`, so the batches chain without gap or
    overlap; duplicates are dropped anyway (per topic), a `"reset": true` answer is reported
    through on_reset before the events it carries, and failures retry with backoff.

    `GET url?topic=a&topic=b&since=N&wait=S[&limit=K]` on one keep-alive connection (a new
    one after the server closes it). The state is open once a poll is answered, reconnecting
    after a failed one.

    Thread safety: start(), async_stop(), stats() from any thread; set handlers before start().
    Handlers run on the client's strand.

    Example:
      herald::client::PollingClient p{ioc.get_executor(), "http://127.0.0.1:8080/poll",
                                      {.topics = {"status"}, .poll = {.wait = 20s}}};
      p.on_event([](herald::Event const& e) { update(e.data); });
      p.start();
*/
class PollingClient : public detail::ClientHandle<detail::PollImpl> {
 public:
  /// Throws std::invalid_argument for a URL that is not http(s) or for invalid options.
  PollingClient(executor_type const& ex, std::string_view url, Options options = {});
};

}  // namespace herald::client

#include <herald/client/impl/polling_client.hpp>
