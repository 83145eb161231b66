#pragma once

// herald::Negotiated's own answers (the preflight, ?negotiate, degraded-mode POSTs): the body
// behind the declaration in transports/negotiated.hpp, independent of the member transports.

#include <herald/detail/base64.hpp>
#include <herald/detail/channel_core.hpp>
#include <herald/detail/connection.hpp>
#include <herald/detail/cors.hpp>
#include <herald/detail/response.hpp>
#include <herald/detail/topic.hpp>
#include <herald/session.hpp>

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::inline v0::detail {

/// The requests a negotiated channel answers itself.
enum class NegotiatedOwn { none, post, preflight, negotiate, unmatched };

inline std::vector<std::string> const& negotiated_methods() {
  static std::vector<std::string> const m{"GET", "HEAD", "OPTIONS", "POST"};
  return m;
}
inline std::vector<std::string> const& negotiated_headers() {
  static std::vector<std::string> const h{"Content-Type", "If-None-Match", "Last-Event-ID"};
  return h;
}

inline Response negotiated_fail(ChannelCore& ch, boost::system::error_code ec, std::string_view detail_text,
                                Request const& req, CorsGrant const& cors) {
  ch.refused(ec, 0, req.target());
  auto res = error_response(ec, detail_text, req.version(), req.keep_alive(), ch.retry_after(ec));
  if (ec == error::method_not_allowed) res.set(http::field::allow, "GET, HEAD, OPTIONS, POST");
  add_cors(res, cors, ch.options().cors);
  return res;
}

inline Response negotiation(ChannelCore& ch, Request const& req, CorsGrant const& cors, std::size_t max_message,
                            std::string_view transports, net::ip::tcp::endpoint const& remote) {
  Admission admission;
  std::string why;
  if (auto ec = ch.admit(req, admission, why, true, remote)) return negotiated_fail(ch, ec, why, req, cors);
  Response res{http::status::ok, req.version()};
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  add_cors(res, cors, ch.options().cors);
  std::string body = R"({"transports":)";
  body += transports;
  body += R"(,"messages":)";
  body += ch.has_message_handler() ? "true" : "false";
  body += R"(,"max_message":)";
  body += std::to_string(max_message);
  body += R"(,"cursor":)";
  body += std::to_string(ch.state().last());
  body += "}\n";
  res.body() = std::move(body);
  res.keep_alive(req.keep_alive());
  res.prepare_payload();
  return res;
}

/// The herald::Session of a POST: collects replies until the response is built.
class PostPeer final : public Peer {
 public:
  PostPeer(std::uint64_t id, std::string principal, std::vector<std::string> topics, Limits const& limits)
      : id_(id), principal_(std::move(principal)), topics_(std::move(topics)),
        max_count_(limits.queue_events), max_bytes_(limits.queue_bytes) {}

  std::uint64_t id() const noexcept override { return id_; }
  std::string const& principal() const noexcept override { return principal_; }
  std::vector<std::string> subscriptions() const override { return topics_; }

  SendStatus send(std::string data, bool binary) override {
    if (!binary && !valid_utf8(data)) return SendStatus::dropped;
    std::lock_guard lock{mutex_};
    if (count_ + 1 > max_count_ || bytes_ + data.size() > max_bytes_) return SendStatus::dropped;
    ++count_;
    bytes_ += data.size();
    body_ += count_ == 1 ? "" : ",";
    if (binary) {
      body_ += R"({"binary":")";
      body_ += base64_encode(data);
      body_ += "\"}";
    } else {
      body_ += '"';
      append_json_escaped(body_, data);
      body_ += '"';
    }
    return SendStatus::accepted;
  }

  void close(boost::system::error_code) override {
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

inline Response negotiated_post(ChannelCore& ch, Request const& req, CorsGrant const& cors,
                                std::size_t max_message, net::ip::tcp::endpoint const& remote) {
  Admission admission;
  std::string why;
  if (auto ec = ch.admit(req, admission, why, true, remote)) return negotiated_fail(ch, ec, why, req, cors);
  if (!ch.has_message_handler())
    return negotiated_fail(ch, error::method_not_allowed, "this channel takes no client messages", req, cors);
  auto const& body = req.body();
  if (body.size() > max_message)
    return negotiated_fail(ch, error::message_too_big, "at most " + std::to_string(max_message) + " bytes", req,
                           cors);
  bool const binary = req[http::field::content_type].starts_with("application/octet-stream");
  if (!binary && !valid_utf8(body))
    return negotiated_fail(ch, error::bad_request, "a text message must be UTF-8", req, cors);

  auto peer = std::make_shared<PostPeer>(ch.state().next_connection_id(), std::move(admission.principal),
                                         std::move(admission.topics.topics), ch.options().limits);
  Session session{std::weak_ptr<Peer>(peer)};
  if (!ch.message(session, Message{body, binary})) {
    ch.state().log(LogLevel::error, ch.transport_name(), peer->id(), error::hook_failed, "on_message threw");
    return negotiated_fail(ch, error::hook_failed, {}, req, cors);
  }
  auto [replies, close] = peer->finish();
  Response res{http::status::ok, req.version()};
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  add_cors(res, cors, ch.options().cors);
  res.body() = std::move(replies);
  res.keep_alive(req.keep_alive() && !close);
  res.prepare_payload();
  return res;
}

/// A negotiated channel's own answer to `req` from `remote` (see herald::Negotiated).
inline Response negotiated_answer(ChannelCore& ch, NegotiatedOwn kind, Request const& req, std::size_t max_message,
                                  std::string_view transports, net::ip::tcp::endpoint const& remote) {
  auto const cors = ch.cors(req);
  switch (kind) {
    case NegotiatedOwn::preflight:
      return preflight(req, cors, ch.options().cors, negotiated_methods(), negotiated_headers());
    case NegotiatedOwn::negotiate: return negotiation(ch, req, cors, max_message, transports, remote);
    case NegotiatedOwn::post: return negotiated_post(ch, req, cors, max_message, remote);
    case NegotiatedOwn::none:
    case NegotiatedOwn::unmatched: break;
  }
  if (req.method() != http::verb::get && req.method() != http::verb::head)
    return negotiated_fail(ch, error::method_not_allowed, "this path answers GET, HEAD, OPTIONS and POST", req,
                           cors);
  return negotiated_fail(ch, error::bad_request, "no transport of this path serves this request", req, cors);
}

}  // namespace herald::detail
