#pragma once

#include <herald/channel.hpp>
#include <herald/config.hpp>
#include <herald/metrics_text.hpp>
#include <herald/hub.hpp>
#include <herald/server.hpp>
#include <herald/transport.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::inline v0 {

/** What an operator scrapes: the counters of hubs and channels in the Prometheus text
    exposition format (version 0.0.4).

    Families (base units, `_total` for counters):
      herald_events_published_total{hub}           herald_topics{hub}
      herald_resets_total{hub,reason}              reset notices sent, by reason
                                                   (cursor_expired, slow_consumer, discontinuity)
      herald_connections{channel,transport}        open now
      herald_connections_opened_total{channel,transport}
      herald_subscriptions{channel,transport}      topics subscribed now (an every-topic stream: 1)
      herald_deliveries_total{channel,transport}   events written to clients
      herald_replayed_events_total{channel,transport}  events replayed from history on resume
      herald_slow_consumer_disconnects_total{channel,transport}
      herald_overflows_total{channel,transport,policy}  queues over their budget (drop_oldest,
                                                   coalesce_latest: once per write)
      herald_dropped_events_total{channel,transport}    events dropped, named in gap notices
      herald_gap_notices_total{channel,transport}
      herald_coalesced_events_total{channel,transport}  replaced by a newer one: never written
      herald_queued_bytes{channel,transport}       bytes waiting in connections' queues
      herald_written_bytes_total{channel,transport}
      herald_refusals_total{channel,transport,status,reason}  requests refused, by HTTP status
                                                   and herald::error wire name
    plus whatever sources add (herald::redis::metrics for the backplane's state).

    Thread safety: add() before serving; text() and the handler from any thread.

    Example:
      herald::Metrics metrics;
      metrics.add(hub).add(feed).add(live);
      server.handle("/metrics", metrics.handler());
*/
class Metrics {
 public:
  /// Writes extra families (a backplane's) into the exposition.
  using Source = std::function<void(MetricsText&)>;

  /// The hub's counters, labelled hub="<name>".
  Metrics& add(Hub const& hub, std::string name = "default") {
    hubs_.emplace_back(hub, std::move(name));
    return *this;
  }

  /// The channel's counters, one series per transport it serves (Negotiated: each member).
  template <Transport T>
  Metrics& add(Channel<T> const& channel) {
    channels_.push_back(channel.endpoint());
    return *this;
  }

  Metrics& add(Source source) {
    sources_.push_back(std::move(source));
    return *this;
  }

  /// The exposition, every family once.
  std::string text() const;

  /** A route for herald::Server::handle: GET answers the exposition with
      `Content-Type: text/plain; version=0.0.4`, other methods 405. */
  Handler handler() const {
    return [self = std::make_shared<Metrics>(*this)](Request const& req) { return self->answer(req); };
  }

 private:
  http::response<http::string_body> answer(Request const& req) const;

  std::vector<std::pair<Hub, std::string>> hubs_;
  std::vector<std::shared_ptr<detail::Endpoint>> channels_;
  std::vector<Source> sources_;
};

}  // namespace herald::inline v0

#include <herald/impl/metrics.hpp>
