#pragma once

#include <herald/detail/cors.hpp>
#include <herald/detail/history_store.hpp>
#include <herald/detail/http.hpp>
#include <herald/detail/topic.hpp>
#include <herald/error.hpp>
#include <herald/hooks.hpp>
#include <herald/options.hpp>

#include <boost/beast/http/field.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herald::inline v0::detail {

/** Admission: what every transport checks before it answers a request or subscribes a topic.
    Pure functions of the channel's options and the request, so that one rule gives one
    message on every transport; the error refuses, `detail` tells the client why. */

/// What admission decided for a request that may proceed.
struct Admission {
  std::string principal;
  TopicSet topics;
  QueryParams query;
  /// Where the client resumes from (read_cursor); none: from now.
  std::optional<EventId> since;
  /// When the authorization ends (Verdict::until, Grant::expires); none: it does not.
  std::optional<std::chrono::system_clock::time_point> expires;
  /// The only topics a ticket's Grant lets the connection subscribe to; empty: no such bound.
  std::vector<std::string> granted;
};

/// Whether `topic` is within a ticket's bound (`granted`; empty: no bound).
inline bool within_grant(std::vector<std::string> const& granted, std::string_view topic) {
  return granted.empty() || std::find(granted.begin(), granted.end(), topic) != granted.end();
}

/** Who the request is: its ticket's Grant (a channel with a TicketBook), else the authorize
    hook's Verdict; sets out.principal, out.expires and out.granted. A ticket is consumed here,
    whatever happens to the request after. */
inline boost::system::error_code authenticate(ChannelOptions const& o, AuthRequest const& ar,
                                              QueryParams const& query, Admission& out, std::string& detail) {
  bool by_ticket = false;
  if (o.tickets) {
    std::string_view ticket;
    std::size_t given = 0;
    for (auto const& [key, value] : query)
      if (key == "ticket") ticket = value, ++given;
    if (given > 1) {
      detail = "ticket given twice";
      return error::unauthorized;
    }
    if (given == 1) {
      auto grant = o.tickets->redeem(ticket);
      if (!grant) {
        detail = "ticket unknown, already used or expired";
        return error::unauthorized;
      }
      out.principal = std::move(grant->principal);
      out.granted = std::move(grant->topics);
      out.expires = grant->expires;
      by_ticket = true;
    } else if (!o.authorize) {
      detail = "a ticket is required";
      return error::unauthorized;
    }
  }
  if (o.authorize && !by_ticket) {
    std::optional<Verdict> v;
    try {
      v = o.authorize(ar);
    } catch (...) {
      return error::hook_failed;
    }
    if (!v->allowed()) {
      detail = v->text();
      return v->reason();
    }
    out.principal = v->text();
    out.expires = v->expires();
  }
  if (out.expires && *out.expires <= std::chrono::system_clock::now()) {
    detail = "the authorization has expired";
    return error::credentials_expired;
  }
  return {};
}

/** The one rule for a topic a client asks for, in a query or at run time: a valid name within
    the channel's length limit, and one of the channel's fixed topics when it has some. */
inline boost::system::error_code admit_topic(ChannelOptions const& o, std::string_view topic,
                                             std::string& detail) {
  if (!valid_topic(topic, o.limits.max_topic_length)) {
    detail = "invalid topic name";
    return error::bad_topic;
  }
  if (!o.topics.empty() && std::find(o.topics.begin(), o.topics.end(), topic) == o.topics.end()) {
    detail = "topic not offered on this channel: ";
    detail += topic;
    return error::forbidden;
  }
  return {};
}

/// The subscription count rule, for a connection that would hold `count` topics.
inline boost::system::error_code admit_count(ChannelOptions const& o, std::size_t count, std::string& detail) {
  if (count <= o.limits.max_subscriptions) return {};
  detail = "at most " + std::to_string(o.limits.max_subscriptions) + " topics per connection";
  return error::too_many_subscriptions;
}

/** The authorize_topic hook for `topic` ("*": every topic). A hook that throws refuses with
    error::hook_failed (no detail: the client learns nothing of the server's failure). */
inline boost::system::error_code authorize_topic(ChannelOptions const& o, std::string_view principal,
                                                 std::string_view topic, std::string& detail) {
  if (!o.authorize_topic) return {};
  try {
    if (o.authorize_topic(principal, topic)) return {};
  } catch (...) {
    return error::hook_failed;
  }
  detail = topic == "*" ? std::string("not allowed to subscribe to every topic")
                        : "not allowed to subscribe to " + std::string(topic);
  return error::forbidden;
}

/** The cursor of a request, the same on every transport: the Last-Event-ID header (what
    EventSource sends when it reconnects) wins; else the `since` or `lastEventId` query
    parameter, at most one of them, once. Every cursor given must be an event id. */
inline boost::system::error_code read_cursor(Request const& req, QueryParams const& query,
                                             std::optional<EventId>& since, std::string& detail) {
  auto bad = [&](std::string_view name) -> boost::system::error_code {
    detail = std::string(name) + " must be an event id (decimal digits)";
    return error::bad_cursor;
  };
  std::optional<EventId> param;
  std::string_view seen;
  for (auto const& [key, value] : query) {
    if (key != "since" && key != "lastEventId") continue;
    if (!seen.empty()) {
      detail = seen == key ? key + " given twice" : "give since or lastEventId, not both";
      return error::bad_cursor;
    }
    seen = key;
    param = parse_event_id(value);
    if (!param) return bad(key);
  }
  if (auto const header = req["Last-Event-ID"]; !header.empty()) {
    since = parse_event_id(header);
    if (!since) return bad("Last-Event-ID");
    return {};
  }
  since = param;
  return {};
}

/** Decide whether `ar` may proceed: host, origin, query, authorization (a ticket or the
    authorize hook), topics, their count, topic authorization and the cursor. Hooks that throw
    refuse with error::hook_failed. A request naming no topic gets its ticket's topics, else the
    channel's fixed topics, or, if it has none and `empty_means_all`, every topic (else no topic
    at all: WebSocket clients subscribe later). */
inline boost::system::error_code admit_request(ChannelOptions const& o, AuthRequest const& ar, Admission& out,
                                               std::string& detail, bool empty_means_all) {
  Request const& req = ar.request();
  // The Host first: the same-origin rule below compares the Origin with it, which only means
  // something once the Host is known to be one of this server's names.
  if (!host_allowed(req[http::field::host], o.allowed_hosts)) {
    detail = "this server does not answer for the requested host";
    return error::host_not_allowed;
  }
  if (!origin_allowed(req[http::field::origin], req[http::field::host], o.allowed_origins))
    return error::origin_not_allowed;
  auto query = parse_query(target_query(req.target()));
  if (!query) {
    detail = "malformed query string";
    return error::bad_request;
  }
  if (auto ec = authenticate(o, ar, *query, out, detail)) return ec;
  auto& topics = out.topics.topics;
  for (auto const& [key, value] : *query) {
    if (key != "topic") continue;
    if (auto ec = admit_topic(o, value, detail)) return ec;
    if (!within_grant(out.granted, value)) {
      detail = "the ticket does not cover topic " + value;
      return error::forbidden;
    }
    if (std::find(topics.begin(), topics.end(), value) == topics.end()) topics.push_back(value);
  }
  if (topics.empty()) {
    // A ticket's topics stand in for "every topic"; a WebSocket client subscribes (with its
    // cursors) by message instead.
    for (auto const& t : o.topics)
      if (within_grant(out.granted, t)) topics.push_back(t);
    if (o.topics.empty() && empty_means_all) {
      if (out.granted.empty()) out.topics.all = true;
      else topics = out.granted;
    }
    if (topics.empty() && !out.topics.all && empty_means_all && !out.granted.empty()) {
      detail = "the ticket covers no topic of this channel";
      return error::forbidden;
    }
  }
  if (auto ec = admit_count(o, topics.size(), detail)) return ec;
  if (out.topics.all)
    if (auto ec = authorize_topic(o, out.principal, "*", detail)) return ec;
  for (auto const& t : topics)
    if (auto ec = authorize_topic(o, out.principal, t, detail)) return ec;
  if (auto ec = read_cursor(req, *query, out.since, detail)) return ec;
  out.query = std::move(*query);
  return {};
}

}  // namespace herald::detail
