#pragma once

#include <herald/config.hpp>
#include <herald/detail/channel_core.hpp>
#include <herald/detail/http.hpp>
#include <herald/detail/response.hpp>
#include <herald/detail/topic.hpp>
#include <herald/hooks.hpp>
#include <herald/session.hpp>
#include <herald/transport.hpp>
#include <herald/transports/impl/negotiated.hpp>

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

namespace herald::inline v0 {

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

    /// f(member) for each member's channel, in order.
    template <class F>
    void for_each_member(F&& f) const {
      std::apply([&](auto const&... m) { (f(m), ...); }, members_);
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
  using Own = detail::NegotiatedOwn;

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

  static std::shared_ptr<Held> answer(std::shared_ptr<ChannelContext<Negotiated>> channel,
                                              Request&& req, net::any_io_executor const& ex,
                                              Respond respond) {
    if (auto kind = own(req); kind != Own::none) {
      respond(own_answer(*channel, kind, req));
      return nullptr;
    }
    return member_answer(channel, member_index(req), std::move(req), ex, respond,
                         std::index_sequence_for<Ms...>{});
  }

  /** Take over a connection handed over with Channel::accept() (or routed by herald::Server);
      `already_read` (bytes past the request) goes to a member that reads them (WebSocket). */
  template <class Stream>
  static void start(std::shared_ptr<ChannelContext<Negotiated>> channel, Stream&& stream, Request&& req,
                    std::string already_read = {}) {
    if (auto kind = own(req); kind != Own::none) {
      auto res = own_answer(*channel, kind, req);
      res.keep_alive(false);  // an embedded connection is answered once, like a polling one
      detail::write_and_close(std::forward<Stream>(stream), std::move(res));
      return;
    }
    member_start(channel, member_index(req), std::forward<Stream>(stream), std::move(req), std::move(already_read),
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
    ((I == index ? void(out = answers_in_place<Ms>(req)) : void()), ...);
    return out;
  }

  template <class M>
  static bool answers_in_place(Request const& req) {
    if constexpr (requires { M::answers(req); }) return M::answers(req);
    else return false;
  }

  template <std::size_t... I>
  static std::shared_ptr<Held> member_answer(std::shared_ptr<ChannelContext<Negotiated>> const& ch,
                                                     std::size_t index, Request&& req,
                                                     net::any_io_executor const& ex, Respond& respond,
                                                     std::index_sequence<I...>) {
    std::shared_ptr<Held> held;
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
  static void member_start(std::shared_ptr<ChannelContext<Negotiated>> const& ch, std::size_t index,
                           Stream&& stream, Request&& req, std::string&& already_read, std::index_sequence<I...>) {
    bool done = false;
    auto one = [&]<std::size_t J>(std::integral_constant<std::size_t, J>) {
      using M = std::tuple_element_t<J, std::tuple<Ms...>>;
      if (done || J != index) return;
      done = true;
      detail::start_transport<M>(ch->channel_state().template member<J>(), std::forward<Stream>(stream),
                                 std::move(req), std::move(already_read));
    };
    (one(std::integral_constant<std::size_t, I>{}), ...);
  }

  static Response own_answer(ChannelContext<Negotiated>& ch, Own kind, Request const& req) {
    return detail::negotiated_answer(ch, kind, req, ch.transport_options().max_message, transport_list());
  }
};

}  // namespace herald
