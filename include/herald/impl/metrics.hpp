#pragma once

#include <herald/metrics_text.hpp>

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>

#include <string>

namespace herald::inline v0 {

namespace detail {

inline void hub_metrics(MetricsText& m, HubState& hub, std::string_view name) {
  auto const s = hub.stats();
  m.family("herald_events_published_total", "counter", "Events published on the hub.");
  m.sample({{"hub", name}}, s.events_published);
  m.family("herald_topics", "gauge", "Topics the hub tracks now.");
  m.sample({{"hub", name}}, s.topics);
  m.family("herald_resets_total", "counter", "Reset notices sent to clients, by reason.");
  m.sample({{"hub", name}, {"reason", "cursor_expired"}}, s.reset_reasons.cursor_expired);
  m.sample({{"hub", name}, {"reason", "slow_consumer"}}, s.reset_reasons.slow_consumer);
  m.sample({{"hub", name}, {"reason", "backplane_gap"}}, s.reset_reasons.backplane_gap);
}

}  // namespace detail

inline std::string Metrics::text() const {
  MetricsText m;
  for (auto const& [hub, name] : hubs_) detail::hub_metrics(m, *hub.state(), name);
  for (auto const& channel : channels_) channel->metrics(m);
  for (auto const& source : sources_) source(m);
  return m.str();
}

inline http::response<http::string_body> Metrics::answer(Request const& req) const {
  http::response<http::string_body> res{http::status::ok, req.version()};
  if (req.method() != http::verb::get) {
    res.result(http::status::method_not_allowed);
    res.set(http::field::allow, "GET");
    res.prepare_payload();
    return res;
  }
  res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  res.set(http::field::cache_control, "no-store");
  res.body() = text();
  res.prepare_payload();
  return res;
}

}  // namespace herald::inline v0
