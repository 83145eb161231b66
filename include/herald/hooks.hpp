#pragma once

#include <herald/config.hpp>
#include <herald/error.hpp>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace herald::inline v0 {

/// The request type channels accept and hooks inspect.
using Request = http::request<http::string_body>;

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

  bool allowed() const noexcept { return !reason_; }
  /// The reason of a denial; empty when allowed.
  boost::system::error_code reason() const noexcept { return reason_; }
  /// The principal when allowed, the message when denied.
  std::string const& text() const noexcept { return text_; }

 private:
  Verdict(boost::system::error_code reason, std::string text)
      : reason_(reason), text_(std::move(text)) {}
  boost::system::error_code reason_;
  std::string text_;
};

/** Runs on every request a channel admits, before any response byte (and before any upgrade).
    Runs on the connection's strand: it must not block. If it throws, the client gets a 500. */
using AuthorizeHook = std::function<Verdict(Request const&)>;

/// Whether `principal` may subscribe to `topic`; runs for every topic a connection asks for.
using AuthorizeTopicHook = std::function<bool(std::string_view principal, std::string_view topic)>;

}  // namespace herald
