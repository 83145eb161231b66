#pragma once

#include <herald/detail/error_map.hpp>
#include <herald/detail/http.hpp>
#include <herald/detail/sse_format.hpp>
#include <herald/error.hpp>
#include <herald/options.hpp>
#include <herald/transport.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace herald::inline v0::detail {

/// The TCP socket under any stream layering (tcp_stream, ssl_stream<tcp_stream>, raw socket).
template <class Stream>
auto& lowest_socket(Stream& s) noexcept {
  auto& layer = beast::get_lowest_layer(s);
  if constexpr (requires { layer.socket(); }) return layer.socket();
  else return layer;
}

/** Half-close then close: the peer reads everything sent before it sees the end. A stream type
    whose lowest layer is not a socket closes itself: `herald_close(stream)`, found by
    argument-dependent lookup, is called instead (the customization point of transport.hpp). */
template <class Stream>
void close_stream(Stream& s) noexcept {
  if constexpr (requires { herald_close(s); }) {
    herald_close(s);
  } else {
    auto& sock = lowest_socket(s);
    boost::system::error_code ignored;
    sock.shutdown(net::ip::tcp::socket::shutdown_send, ignored);
    sock.close(ignored);
  }
}

/// The JSON body of an error answer: {"error":"<wire name>","message":"<detail>"}.
inline std::string error_body(boost::system::error_code ec, std::string_view detail) {
  std::string body = R"({"error":")";
  append_json_escaped(body, wire_name(ec));
  body += '"';
  if (!detail.empty()) {
    body += R"(,"message":")";
    append_json_escaped(body, detail);
    body += '"';
  }
  body += "}\n";
  return body;
}

/** A complete error response for `ec`, status from the error map, JSON body; a retryable
    refusal says when to come back (`retry_after`, in seconds: RFC 9110 §10.2.3). `Body`: an
    answer's by default, http::string_body for an application's Reply. */
template <class Body = AnswerBody>
http::response<Body> error_response(boost::system::error_code ec, std::string_view detail, unsigned version,
                                    bool keep_alive, std::chrono::seconds retry_after = default_retry_after) {
  http::response<Body> res{to_http_status(ec), version};
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  if (ec == error::method_not_allowed) res.set(http::field::allow, "GET");
  if (retryable(ec)) res.set(http::field::retry_after, std::to_string(retry_after.count()));
  res.body() = error_body(ec, detail);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

/** Whether `req` is what an EventSource sends: a GET that accepts text/event-stream (every
    EventSource does; Negotiated routes by it too). */
inline bool wants_event_stream(Request const& req) {
  return req.method() == http::verb::get &&
         req[http::field::accept].find("text/event-stream") != std::string_view::npos;
}

/** A retryable refusal (retryable(ec)) as an event stream that ends at once: EventSource fails
    for good on any status but 200, and reconnects after `retry:` when a 200 stream ends. The
    body is a comment naming the reason (no handler of the page sees it) and the retry; the
    Retry-After header says the same to clients that read it (herald's SseClient). */
inline Response stream_refusal(unsigned version, boost::system::error_code ec, std::chrono::seconds retry_after) {
  Response res{http::status::ok, version};
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-store");
  res.set(http::field::retry_after, std::to_string(retry_after.count()));
  res.body() = sse_refusal(wire_name(ec), retry_after);
  res.keep_alive(false);
  res.prepare_payload();
  return res;
}

/** A retryable refusal shaped for the client that asked: the stream above for an EventSource's
    request, else 503 with Retry-After (a WebSocket upgrade too: before any 101). */
inline Response retryable_refusal(Request const& req, boost::system::error_code ec, std::chrono::seconds retry_after) {
  return wants_event_stream(req) ? stream_refusal(req.version(), ec, retry_after)
                                 : error_response(ec, {}, req.version(), false, retry_after);
}

/// An application's text response as an answer: its body is moved, not copied.
inline Response to_answer(http::response<http::string_body>&& res) {
  return Response{std::move(res.base()), std::move(res.body())};
}

/// Write `res` and close: how a channel answers a request it will not serve.
template <class Stream>
void write_and_close(Stream&& stream, Response res) {
  struct Op {
    std::decay_t<Stream> stream;
    Response res;
  };
  auto op = std::make_shared<Op>(Op{std::move(stream), std::move(res)});
  auto& s = op->stream;
  auto& r = op->res;
  http::async_write(s, r, [op = std::move(op)](boost::system::error_code, std::size_t) {
    close_stream(op->stream);
  });
}

}  // namespace herald::detail
