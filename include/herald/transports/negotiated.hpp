#pragma once

#include <herald/config.hpp>
#include <herald/detail/base64.hpp>
#include <herald/detail/channel_core.hpp>
#include <herald/detail/http.hpp>
#include <herald/detail/response.hpp>
#include <herald/detail/topic.hpp>
#include <herald/hooks.hpp>
#include <herald/session.hpp>
#include <herald/transport.hpp>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace herald {

namespace detail {

template <class M, class... Ms>
constexpr std::size_t index_of() noexcept {
  constexpr bool same[] = {std::is_same_v<M, Ms>...};
  for (std::size_t i = 0; i < sizeof...(Ms); ++i)
    if (same[i]) return i;
  return sizeof...(Ms);
}

template <class... Ms>
constexpr bool distinct() noexcept {
  return []<std::size_t... I>(std::index_sequence<I...>) {
           return ((index_of<Ms, Ms...>() == I) && ...);
         }(std::index_sequence_for<Ms...>{});
}

}  // namespace detail

/** Options of a multi-transport channel: each member's options, and the limits of the POST
    messages of the degraded modes.

    Example:
      herald::NegotiatedOptions<herald::WebSocket, herald::Sse, herald::Polling> o;
      o.of<herald::Sse>().retry = std::chrono::seconds(1);
      o.of<herald::Polling>().max_wait = std::chrono::seconds(20);
*/
template <class... Ms>
struct NegotiatedOptions {
  /// The members' options, in the order of the members.
  std::tuple<typename Ms::options...> members;
  /** Largest body of a message POSTed to the channel's path; larger ones get 413. (Behind
      herald::Server, ServerOptions::body_limit applies first.) */
  std::size_t max_message = 64 * 1024;

  /// The options of member `M`.
  template <class M>
  typename M::options& of() noexcept {
    static_assert(detail::index_of<M, Ms...>() < sizeof...(Ms), "herald: not a member of this Negotiated");
    return std::get<detail::index_of<M, Ms...>()>(members);
  }
  template <class M>
  typename M::options const& of() const noexcept {
    static_assert(detail::index_of<M, Ms...>() < sizeof...(Ms), "herald: not a member of this Negotiated");
    return std::get<detail::index_of<M, Ms...>()>(members);
  }
};

/** Several transports on one path, for graceful degradation: each request is served by the
    first member whose `matches(req)` holds, all members fed by the channel's one hub (same ids,
    same order) and sharing its handlers, limits (Limits::max_connections counts them together)
    and shutdown. With the usual order `Negotiated<WebSocket, Sse, Polling>`:

      GET + Upgrade: websocket              -> WebSocket
      GET + Accept: text/event-stream       -> SSE
      GET / HEAD (anything else)            -> polling
      GET path?negotiate                    -> 200 {"transports":["websocket","sse","polling"],
                                                    "messages":true,"max_message":65536,"cursor":57}
      POST path (body = one message)        -> on_message; 200 with the replies, a JSON array
      OPTIONS path                          -> CORS preflight that also allows POST

    Degraded-mode messages: the body of a POST is one client message (text; binary when the
    Content-Type is application/octet-stream), run through the same admission as a stream
    (Origin allowlist, authorize, `?topic=` checks) and handed to the same on_message handler.
    Its herald::Session is the POST: what the handler send()s before it returns comes back as
    the response body, a JSON array of strings (a binary reply is {"binary":"<base64>"}), at most
    Limits::queue_events replies and queue_bytes bytes; after the response, send() returns
    SendStatus::dropped. close() answers with Connection: close. on_open/on_close do not run for
    a POST (it is not a connection). No handler: 405; body over max_message: 413; text that is
    not UTF-8: 400; a handler that throws: 500.

    Capabilities: client_to_server is true (the degraded modes POST); binary and resumable only
    if every member has them (a binary event could not reach an SSE or polling client);
    server_push and plain_http if any member has them. docs/negotiation.md has the details.
*/
template <Transport... Ms>
struct Negotiated {
  static_assert(sizeof...(Ms) > 0, "herald: Negotiated needs at least one transport");
  static_assert(detail::distinct<Ms...>(), "herald: Negotiated lists a transport twice");

  static constexpr std::string_view name = "negotiated";
  static constexpr Capabilities capabilities{
      .client_to_server = true,
      .binary = (Ms::capabilities.binary && ...),
      .server_push = (Ms::capabilities.server_push || ...),
      .resumable = (Ms::capabilities.resumable && ...),
      .plain_http = (Ms::capabilities.plain_http || ...)};
  using options = NegotiatedOptions<Ms...>;

  /// The members' channels: each shares the negotiated channel's handlers and registry.
  class channel_state {
   public:
    channel_state(detail::ChannelCore const& core, options const& o)
        : members_(make(core, o, std::index_sequence_for<Ms...>{})) {}

    template <std::size_t I>
    auto const& member() const noexcept {
      return std::get<I>(members_);
    }

   private:
    template <std::size_t... I>
    static auto make(detail::ChannelCore const& core, options const& o, std::index_sequence<I...>) {
      return std::tuple<std::shared_ptr<detail::ChannelImpl<Ms>>...>(
          std::make_shared<detail::ChannelImpl<Ms>>(core, std::get<I>(o.members))...);
    }
    std::tuple<std::shared_ptr<detail::ChannelImpl<Ms>>...> members_;
  };

  /// Requests the negotiated channel answers itself rather than a member.
  enum class Own { none, post, preflight, negotiate, unmatched };

  static Own own(Request const& req) {
    auto const m = req.method();
    if (m == http::verb::post) return Own::post;
    if (m == http::verb::options) return Own::preflight;
    if ((m == http::verb::get || m == http::verb::head) && !beast::websocket::is_upgrade(req) &&
        asks_negotiation(req.target()))
      return Own::negotiate;
    return member_index(req) < sizeof...(Ms) ? Own::none : Own::unmatched;
  }

  /// The index of the first member that matches `req`; sizeof...(Ms) if none does.
  static std::size_t member_index(Request const& req) {
    std::size_t i = 0;
    bool found = false;
    ((found || (Ms::matches(req) ? (found = true) : (++i, false))), ...);
    return i;
  }

  /// Every request this channel serves on its path: a member's, a POST, OPTIONS, ?negotiate.
  static bool matches(Request const& req) { return own(req) != Own::unmatched; }

  /** Whether herald::Server answers `req` in place (keep-alive): the channel's own answers, and
      requests of members that answer in place (polling). */
  static bool answers(Request const& req) {
    if (own(req) != Own::none) return true;
    return member_answers(req, member_index(req), std::index_sequence_for<Ms...>{});
  }

  static std::shared_ptr<detail::Held> answer(std::shared_ptr<detail::ChannelImpl<Negotiated>> channel,
                                              Request&& req, net::any_io_executor const& ex,
                                              detail::Respond respond) {
    if (auto kind = own(req); kind != Own::none) {
      respond(own_answer(*channel, kind, req));
      return nullptr;
    }
    return member_answer(channel, member_index(req), std::move(req), ex, respond,
                         std::index_sequence_for<Ms...>{});
  }

  /// Take over a connection handed over with Channel::accept() (or routed by herald::Server).
  template <class Stream>
  static void start(std::shared_ptr<detail::ChannelImpl<Negotiated>> channel, Stream&& stream, Request&& req) {
    if (auto kind = own(req); kind != Own::none) {
      auto res = own_answer(*channel, kind, req);
      res.keep_alive(false);  // an embedded connection is answered once, like a polling one
      detail::write_and_close(std::forward<Stream>(stream), std::move(res));
      return;
    }
    member_start(channel, member_index(req), std::forward<Stream>(stream), std::move(req),
                 std::index_sequence_for<Ms...>{});
  }

  /// Throws std::invalid_argument for options that cannot work.
  static void validate(options const& o) {
    if (o.max_message == 0) throw std::invalid_argument("herald: NegotiatedOptions::max_message must be positive");
  }

  /// The members' names, as the negotiation answer lists them: ["websocket","sse","polling"].
  static std::string transport_list() {
    std::string out = "[";
    ((out += (out.size() > 1 ? ",\"" : "\""), out += Ms::name, out += '"'), ...);
    out += ']';
    return out;
  }

 private:
  static bool asks_negotiation(std::string_view target) {
    auto q = detail::target_query(target);
    while (!q.empty()) {
      auto const amp = q.find('&');
      auto const part = q.substr(0, amp);
      if (part == "negotiate" || part.starts_with("negotiate=")) return true;
      q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    }
    return false;
  }

  template <std::size_t... I>
  static bool member_answers(Request const& req, std::size_t index, std::index_sequence<I...>) {
    bool out = false;
    ((I == index ? (out = answers_in_place<Ms>(req), true) : false), ...);
    return out;
  }

  template <class M>
  static bool answers_in_place(Request const& req) {
    if constexpr (requires { M::answers(req); }) return M::answers(req);
    else return false;
  }

  template <std::size_t... I>
  static std::shared_ptr<detail::Held> member_answer(std::shared_ptr<detail::ChannelImpl<Negotiated>> const& ch,
                                                     std::size_t index, Request&& req,
                                                     net::any_io_executor const& ex, detail::Respond& respond,
                                                     std::index_sequence<I...>) {
    std::shared_ptr<detail::Held> held;
    bool done = false;
    auto one = [&]<std::size_t J>(std::integral_constant<std::size_t, J>) {
      using M = std::tuple_element_t<J, std::tuple<Ms...>>;
      if (done || J != index) return;
      done = true;
      if constexpr (requires { M::answers(req); }) {
        held = M::answer(ch->channel_state().template member<J>(), std::move(req), ex, std::move(respond));
      } else {
        // Not reached behind herald::Server (answers() said no); answer rather than drop.
        respond(detail::error_response(error::bad_request, "this request needs its own connection",
                                       req.version(), false));
      }
    };
    (one(std::integral_constant<std::size_t, I>{}), ...);
    return held;
  }

  template <class Stream, std::size_t... I>
  static void member_start(std::shared_ptr<detail::ChannelImpl<Negotiated>> const& ch, std::size_t index,
                           Stream&& stream, Request&& req, std::index_sequence<I...>) {
    bool done = false;
    auto one = [&]<std::size_t J>(std::integral_constant<std::size_t, J>) {
      using M = std::tuple_element_t<J, std::tuple<Ms...>>;
      if (done || J != index) return;
      done = true;
      M::start(ch->channel_state().template member<J>(), std::forward<Stream>(stream), std::move(req));
    };
    (one(std::integral_constant<std::size_t, I>{}), ...);
  }

  /// CORS answer headers for an allowed cross-origin request.
  static void add_cors(detail::Response& res, detail::CorsGrant const& cors) {
    res.set(http::field::vary, "Origin");
    if (cors.allow.empty()) return;
    res.set(http::field::access_control_allow_origin, cors.allow);
    if (cors.credentials) res.set(http::field::access_control_allow_credentials, "true");
  }

  static detail::Response fail(detail::ChannelImpl<Negotiated>& ch, boost::system::error_code ec,
                               std::string_view detail_text, Request const& req,
                               detail::CorsGrant const& cors) {
    ch.state().log(LogLevel::info, name, 0, ec, "request refused");
    auto res = detail::error_response(ec, detail_text, req.version(), req.keep_alive());
    if (ec == error::method_not_allowed) res.set(http::field::allow, "GET, HEAD, OPTIONS, POST");
    add_cors(res, cors);
    return res;
  }

  static detail::Response own_answer(detail::ChannelImpl<Negotiated>& ch, Own kind, Request const& req) {
    auto const cors = detail::cors_grant(req[http::field::origin], req[http::field::host],
                                         ch.options().allowed_origins);
    switch (kind) {
      case Own::preflight: return preflight(ch, req, cors);
      case Own::negotiate: return negotiation(ch, req, cors);
      case Own::post: return post(ch, req, cors);
      default: break;
    }
    if (req.method() != http::verb::get && req.method() != http::verb::head)
      return fail(ch, error::method_not_allowed, "this path answers GET, HEAD, OPTIONS and POST", req, cors);
    return fail(ch, error::bad_request, "no transport of this path serves this request", req, cors);
  }

  static detail::Response preflight(detail::ChannelImpl<Negotiated>& ch, Request const& req,
                                    detail::CorsGrant const& cors) {
    if (!req[http::field::origin].empty() && cors.allow.empty())
      return fail(ch, error::origin_not_allowed, {}, req, {});
    detail::Response res{http::status::no_content, req.version()};
    res.set(http::field::allow, "GET, HEAD, OPTIONS, POST");
    add_cors(res, cors);
    if (!cors.allow.empty()) {
      res.set(http::field::access_control_allow_methods, "GET, HEAD, OPTIONS, POST");
      res.set(http::field::access_control_allow_headers,
              "Authorization, Cache-Control, Content-Type, If-None-Match, Last-Event-ID");
      res.set(http::field::access_control_max_age, "600");
    }
    res.keep_alive(req.keep_alive());
    return res;
  }

  static detail::Response negotiation(detail::ChannelImpl<Negotiated>& ch, Request const& req,
                                      detail::CorsGrant const& cors) {
    detail::Admission admission;
    std::string why;
    if (auto ec = ch.admit(req, admission, why)) return fail(ch, ec, why, req, cors);
    detail::Response res{http::status::ok, req.version()};
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    add_cors(res, cors);
    std::string body = R"({"transports":)";
    body += transport_list();
    body += R"(,"messages":)";
    body += ch.has_message_handler() ? "true" : "false";
    body += R"(,"max_message":)";
    body += std::to_string(ch.transport_options().max_message);
    body += R"(,"cursor":)";
    body += std::to_string(ch.state().stats().last_id);
    body += "}\n";
    res.body() = std::move(body);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
  }

  /// The herald::Session of a POST: collects replies until the response is built.
  class PostPeer final : public detail::Peer {
   public:
    PostPeer(std::uint64_t id, std::string principal, std::vector<std::string> topics, Limits const& limits)
        : id_(id), principal_(std::move(principal)), topics_(std::move(topics)),
          max_count_(limits.queue_events), max_bytes_(limits.queue_bytes) {}

    std::uint64_t id() const noexcept override { return id_; }
    std::string const& principal() const noexcept override { return principal_; }
    std::vector<std::string> subscriptions() const override { return topics_; }

    SendStatus send(std::string data, bool binary) override {
      if (!binary && !detail::valid_utf8(data)) return SendStatus::dropped;
      std::lock_guard lock{mutex_};
      if (count_ + 1 > max_count_ || bytes_ + data.size() > max_bytes_) return SendStatus::dropped;
      ++count_;
      bytes_ += data.size();
      body_ += count_ == 1 ? "" : ",";
      if (binary) {
        body_ += R"({"binary":")";
        body_ += detail::base64_encode(data);
        body_ += "\"}";
      } else {
        body_ += '"';
        detail::append_json_escaped(body_, data);
        body_ += '"';
      }
      return SendStatus::accepted;
    }

    void close() override {
      std::lock_guard lock{mutex_};
      closed_ = true;
    }

    /// The JSON array of replies; whether the handler asked to close.
    std::pair<std::string, bool> finish() {
      std::lock_guard lock{mutex_};
      return {"[" + body_ + "]\n", closed_};
    }

   private:
    std::uint64_t id_;
    std::string principal_;
    std::vector<std::string> topics_;
    std::size_t max_count_;
    std::size_t max_bytes_;
    std::mutex mutex_;
    std::string body_;
    std::size_t count_ = 0;
    std::size_t bytes_ = 0;
    bool closed_ = false;
  };

  static detail::Response post(detail::ChannelImpl<Negotiated>& ch, Request const& req,
                               detail::CorsGrant const& cors) {
    detail::Admission admission;
    std::string why;
    if (auto ec = ch.admit(req, admission, why)) return fail(ch, ec, why, req, cors);
    if (!ch.has_message_handler())
      return fail(ch, error::method_not_allowed, "this channel takes no client messages", req, cors);
    auto const& body = req.body();
    if (body.size() > ch.transport_options().max_message)
      return fail(ch, error::message_too_big,
                  "at most " + std::to_string(ch.transport_options().max_message) + " bytes", req, cors);
    bool const binary = req[http::field::content_type].starts_with("application/octet-stream");
    if (!binary && !detail::valid_utf8(body))
      return fail(ch, error::bad_request, "a text message must be UTF-8", req, cors);

    auto peer = std::make_shared<PostPeer>(ch.state().next_connection_id(), std::move(admission.principal),
                                           std::move(admission.topics.topics), ch.options().limits);
    Session session{std::weak_ptr<detail::Peer>(peer)};
    if (!ch.message(session, Message{body, binary})) {
      ch.state().log(LogLevel::error, name, peer->id(), error::hook_failed, "on_message threw");
      return fail(ch, error::hook_failed, {}, req, cors);
    }
    auto [replies, close] = peer->finish();
    detail::Response res{http::status::ok, req.version()};
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    add_cors(res, cors);
    res.body() = std::move(replies);
    res.keep_alive(req.keep_alive() && !close);
    res.prepare_payload();
    return res;
  }
};

}  // namespace herald
