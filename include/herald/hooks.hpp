#pragma once

#include <herald/config.hpp>
#include <herald/error.hpp>
#include <herald/session.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace herald::inline v0 {

/// The request type channels accept and hooks inspect.
using Request = http::request<http::string_body>;

/** What an authorize hook sees of a request: the same on every transport (an SSE stream, a
    WebSocket upgrade, a poll, a negotiated channel's POST), before any response byte.

    It converts to `Request const&`, so a hook written as `[](herald::Request const& req)` works
    unchanged; one that takes `herald::AuthRequest const&` also sees the peer's address.
*/
class AuthRequest {
 public:
  AuthRequest(Request const& request, net::ip::tcp::endpoint remote, std::string_view transport) noexcept
      : request_(request), remote_(std::move(remote)), transport_(transport) {}

  /// Method, target (with the query), headers (Cookie, Authorization, Origin, …).
  Request const& request() const noexcept { return request_; }
  operator Request const&() const noexcept { return request_; }
  /** The peer's address and port as the server's socket sees it (a proxy's, behind one);
      unspecified (port 0) when the stream has no TCP socket. */
  net::ip::tcp::endpoint const& remote() const noexcept { return remote_; }
  /// The transport admitting the request: "sse", "websocket", "polling" or "negotiated".
  std::string_view transport() const noexcept { return transport_; }

  http::verb method() const noexcept { return request_.method(); }
  std::string_view target() const noexcept { return request_.target(); }
  std::string_view operator[](http::field f) const { return request_[f]; }
  std::string_view operator[](std::string_view name) const { return request_[name]; }

  /// The value of cookie `name` in the Cookie header(s); empty when there is none.
  std::string_view cookie(std::string_view name) const {
    for (auto [it, end] = request_.equal_range(http::field::cookie); it != end; ++it) {
      std::string_view rest = it->value();
      while (!rest.empty()) {
        auto const semi = rest.find(';');
        auto pair = rest.substr(0, semi);
        rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
        while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
        auto const eq = pair.find('=');
        if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
      }
    }
    return {};
  }

 private:
  Request const& request_;
  net::ip::tcp::endpoint remote_;
  std::string_view transport_;
};

/** An authorize hook's answer: allow (naming the principal) or deny (401 or 403).

    Example:
      opts.authorize = [](herald::Request const& req) {
        return req[http::field::authorization] == "Bearer s3cret"
                   ? herald::Verdict::allow("alice")
                   : herald::Verdict::deny(herald::error::unauthorized);
      };
*/
class Verdict {
 public:
  /// Let the request through; `principal` is what per-topic checks and sessions see.
  static Verdict allow(std::string principal = {}) { return Verdict{{}, std::move(principal)}; }

  /** Refuse the request before any response byte: error::unauthorized answers 401, any other
      reason 403. `message` goes into the JSON error body. */
  static Verdict deny(error reason = error::forbidden, std::string message = {}) {
    return Verdict{reason, std::move(message)};
  }

  /** The same verdict, with an end: at `at`, a connection it admitted is re-authorized
      (ChannelOptions::reauthorize) or closed with error::credentials_expired (an SSE stream
      gets a final `close` event naming it, a WebSocket the close code 1008 with it as reason;
      a long poll is answered no later than `at`). A time already past refuses the request
      (401, error::credentials_expired). */
  Verdict until(std::chrono::system_clock::time_point at) const {
    Verdict v = *this;
    v.expires_ = at;
    return v;
  }

  bool allowed() const noexcept { return !reason_; }
  /// When the authorization ends (Verdict::until); none: it does not.
  std::optional<std::chrono::system_clock::time_point> expires() const noexcept { return expires_; }
  /// The reason of a denial; empty when allowed.
  boost::system::error_code reason() const noexcept { return reason_; }
  /// The principal when allowed, the message when denied.
  std::string const& text() const noexcept { return text_; }

 private:
  Verdict(boost::system::error_code reason, std::string text)
      : reason_(reason), text_(std::move(text)) {}
  boost::system::error_code reason_;
  std::string text_;
  std::optional<std::chrono::system_clock::time_point> expires_;
};

/** Runs on every request a channel admits, before any response byte (and before any upgrade),
    with the same data on every transport (AuthRequest). Runs on the connection's strand: it
    must not block. If it throws, the client gets a 500. */
using AuthorizeHook = std::function<Verdict(AuthRequest const&)>;

/** Runs when the Verdict of an open connection (SSE, WebSocket) expires, on its strand; must
    not block. An allowing verdict keeps the connection open (until its own expiry, if it has
    one; its principal is not changed); a denying one, or a hook that throws, closes it with
    error::credentials_expired. */
using ReauthorizeHook = std::function<Verdict(Session&)>;

/// Whether `principal` may subscribe to `topic`; runs for every topic a connection asks for.
using AuthorizeTopicHook = std::function<bool(std::string_view principal, std::string_view topic)>;

}  // namespace herald
