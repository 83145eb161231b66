#pragma once

#include <herald/config.hpp>
#include <herald/hooks.hpp>
#include <herald/transport.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace herald::inline v0 {
class MetricsText;
}  // namespace herald

namespace herald::inline v0::detail {

class RetrySpread;

/// What a channel needs from each live connection, whatever its transport.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  /// Tell the client the server is going away and close once it has been told.
  virtual void stop() = 0;
  /// Close now.
  virtual void abort() = 0;
  /** Close for a drain: like stop(), but the client is told to come back after `delay`, and
      from which cursor (error::draining). */
  virtual void drain(std::chrono::milliseconds delay) = 0;
  /// Bytes queued for the client, if the connection belongs to `channel` (herald::Metrics).
  virtual std::size_t queued_bytes(void const* channel) const { (void)channel; return 0; }
  /// This connection, shared; null once its last owner let go (it is being destroyed).
  virtual std::shared_ptr<SessionBase> shared() noexcept = 0;

 private:
  friend class SessionList;
  SessionBase* prev_ = nullptr;
  SessionBase* next_ = nullptr;
};

/** A channel's live connections, as a list threaded through them: a node of a map would cost
    every idle connection 50 bytes more. The caller holds the channel's lock. */
class SessionList {
 public:
  void push(SessionBase* s) noexcept {
    s->prev_ = nullptr;
    s->next_ = std::exchange(head_, s);
    if (s->next_) s->next_->prev_ = s;
    ++size_;
  }

  /// Take `s` out of the list; nothing if it is not in it.
  void erase(SessionBase* s) noexcept {
    if (s->prev_) s->prev_->next_ = s->next_;
    else if (head_ == s) head_ = s->next_;
    else return;
    if (s->next_) s->next_->prev_ = s->prev_;
    s->prev_ = s->next_ = nullptr;
    --size_;
  }

  std::size_t size() const noexcept { return size_; }

  /// Every connection still owned, shared.
  std::vector<std::shared_ptr<SessionBase>> live() const {
    std::vector<std::shared_ptr<SessionBase>> out;
    out.reserve(size_);
    for (auto* s = head_; s; s = s->next_)
      if (auto p = s->shared()) out.push_back(std::move(p));
    return out;
  }

 private:
  SessionBase* head_ = nullptr;
  std::size_t size_ = 0;
};

/// What herald::Server needs from a channel: the type-erased face of ChannelImpl<T>.
class Endpoint {
 public:
  virtual ~Endpoint() = default;
  virtual std::string const& path() const noexcept = 0;
  virtual void accept(beast::tcp_stream&& stream, Request&& req) = 0;
  /** Whether `req` is answered in place with answer() (the connection stays the caller's, for
      keep-alive and other paths) rather than handed over with accept(). */
  virtual bool answers(Request const& req) const {
    (void)req;
    return false;
  }
  /** Answer `req` without taking the connection. `respond` runs on `ex` (a strand: the
      connection's), exactly once unless the returned Held is cancelled first. It may run before
      answer() returns (an immediate answer), and then nullptr is returned; otherwise the request
      is held and the Held is how the caller cancels it when its client goes away. A held request
      keeps itself alive until it is answered or cancelled, so the caller may (and should) keep
      it as a weak_ptr: `respond` usually owns the caller, and a strong pointer back is a cycle.
      `remote` is the client's address (AuthRequest::remote), when the caller knows it. */
  virtual std::shared_ptr<Held> answer(Request&& req, net::any_io_executor const& ex, Respond respond,
                                       net::ip::tcp::endpoint remote = {}) {
    (void)ex;
    (void)remote;
    respond(Response{http::status::not_found, req.version()});
    return nullptr;
  }
  /** How the server refuses `req` for this path when it is over its own connection limit or
      draining (`ec`, retryable): retryable_refusal plus the channel's CORS headers, so a
      cross-origin EventSource can read the refusal and comes back (a poll refused during a
      drain: drain_answer, with its cursor). */
  virtual Response refusal(Request const& req, boost::system::error_code ec,
                           std::chrono::milliseconds retry_after) const = 0;
  virtual void shutdown() = 0;
  /** Begin a drain: refuse new connections with error::draining, their delays drawn from
      `spread`, and return the live connections (the server closes them over its window). */
  virtual std::vector<std::shared_ptr<SessionBase>> drain(std::shared_ptr<RetrySpread> spread) = 0;
  virtual void abort() = 0;
  virtual std::size_t active() const = 0;
  /// The channel's series (herald::Metrics): one per transport it serves.
  virtual void metrics(MetricsText& m) const = 0;
};

}  // namespace herald::detail
