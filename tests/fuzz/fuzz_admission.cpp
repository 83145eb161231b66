// Fuzz target: the request admission path. Raw bytes go through the same Beast request parser
// and limits herald::Server reads with, then through ChannelCore::admit (origin, query string,
// topics, topic authorization) under a channel configuration the input also chooses, then through
// each transport's cursor rules (SSE Last-Event-ID / lastEventId, WebSocket since, the polling
// parameters). Invariants: nothing throws or crashes, an admitted request's topics are valid and
// within the limits, and every refusal maps to an HTTP error status.

#include <herald/detail/channel_core.hpp>
#include <herald/detail/error_map.hpp>
#include <herald/detail/http.hpp>
#include <herald/detail/poll_format.hpp>
#include <herald/detail/topic.hpp>
#include <herald/hub.hpp>
#include <herald/server.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/beast/http/parser.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"

namespace {

namespace http = boost::beast::http;

struct World {
  boost::asio::io_context ioc;
  herald::Hub hub{ioc.get_executor(), {.first_id = 1}};
  // One core per configuration the input may pick: open, fixed topics with an origin
  // allowlist and a topic hook, and tight limits.
  herald::detail::ChannelCore open{hub, "/live", {}, "fuzz"};
  herald::detail::ChannelCore fixed{hub, "/feed", [] {
    herald::ChannelOptions o;
    o.topics = {"orders", "news", "caf\xc3\xa9"};
    o.allowed_origins = {"https://app.example"};
    o.authorize_topic = [](std::string_view principal, std::string_view topic) {
      return topic != "news" || principal == "editor";
    };
    o.authorize = [](herald::Request const& req) {
      auto const auth = req[http::field::authorization];
      if (auth == "Bearer throw") throw std::runtime_error("hook failed");
      if (auth.empty()) return herald::Verdict::allow("anonymous");
      if (auth == "Bearer editor") return herald::Verdict::allow("editor");
      return herald::Verdict::deny(herald::error::unauthorized, "bad token");
    };
    return o;
  }(), "fuzz"};
  herald::detail::ChannelCore tight{hub, "/tight", [] {
    herald::ChannelOptions o;
    o.limits.max_subscriptions = 2;
    o.limits.max_topic_length = 8;
    o.allowed_origins = {"*"};
    return o;
  }(), "fuzz"};
};

World& world() {
  static World w;
  return w;
}

void check_admitted(herald::detail::ChannelCore const& core, herald::detail::Admission const& a) {
  auto const& o = core.options();
  FUZZ_CHECK(a.topics.topics.size() <= o.limits.max_subscriptions);
  for (auto const& t : a.topics.topics) {
    FUZZ_CHECK(herald::detail::valid_topic(t, o.limits.max_topic_length));
    if (!o.topics.empty()) FUZZ_CHECK(std::find(o.topics.begin(), o.topics.end(), t) != o.topics.end());
    FUZZ_CHECK(std::count(a.topics.topics.begin(), a.topics.topics.end(), t) == 1);
  }
  if (a.topics.all) FUZZ_CHECK(a.topics.topics.empty() && o.topics.empty());
}

void check_refused(boost::system::error_code ec) {
  auto const status = static_cast<unsigned>(herald::detail::to_http_status(ec));
  FUZZ_CHECK(status >= 400 && status <= 599);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  auto& w = world();
  // The first byte picks the channel and the admit flavour; the rest is the request's bytes.
  std::uint8_t const pick = data[0];
  std::string_view const bytes{reinterpret_cast<char const*>(data + 1), size - 1};

  herald::ServerOptions const so;
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(so.header_limit));
  parser.body_limit(so.body_limit);
  parser.eager(true);
  boost::system::error_code ec;
  std::size_t used = 0;
  while (!ec && used < bytes.size() && !parser.is_done()) {
    auto const n = parser.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
    if (n == 0 && !ec) break;
    used += n;
  }
  if (!parser.is_done()) {
    if (ec == http::error::need_more) ec = {};
    if (!ec) parser.put_eof(ec);
    if (!parser.is_done()) return 0;
  }
  if (ec) return 0;
  herald::Request const req = parser.release();

  herald::detail::ChannelCore const* cores[] = {&w.open, &w.fixed, &w.tight};
  auto const& core = *cores[pick % 3];
  bool const empty_means_all = (pick & 4) == 0;

  // herald::Server's router and the examples read single parameters with query_param.
  (void)herald::query_param(req.target(), "topic");

  herald::detail::Admission admission;
  std::string detail;
  ec = core.admit(req, admission, detail, empty_means_all);
  if (ec) {
    check_refused(ec);
    return 0;
  }
  check_admitted(core, admission);

  // The cursor, one rule for every transport (read_cursor, inside admit): the Last-Event-ID
  // header wins; else since or lastEventId, which admit refused unless it was an id.
  if (auto const header = req["Last-Event-ID"]; !header.empty())
    FUZZ_CHECK(admission.since == herald::detail::parse_event_id(header));
  for (auto const& [key, value] : admission.query)
    if ((key == "since" || key == "lastEventId") && req["Last-Event-ID"].empty())
      FUZZ_CHECK(admission.since == herald::detail::parse_event_id(value));
  // Polling: wait and limit.
  herald::detail::PollParams params;
  std::string poll_detail;
  if (auto const pec = herald::detail::parse_poll_params(admission.query, params, poll_detail)) {
    check_refused(pec);
    FUZZ_CHECK(!poll_detail.empty());
  } else {
    if (params.wait)
      FUZZ_CHECK(params.wait->count() >= 0 &&
                 *params.wait <= std::chrono::seconds(herald::detail::max_wait_parameter_seconds));
    if (params.limit) FUZZ_CHECK(*params.limit >= 1 && *params.limit <= herald::detail::max_limit_parameter);
  }
  (void)herald::detail::etag_matches(req[http::field::if_none_match], "\"p0123456789abcdef\"");
  return 0;
}
