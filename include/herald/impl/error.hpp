#pragma once

#include <string>

namespace herald {
namespace detail {

class ErrorCategory final : public boost::system::error_category {
 public:
  // A fixed id keeps categories equal across shared-object boundaries.
  constexpr ErrorCategory() noexcept : error_category(0x6865726c64455231ull) {}

  char const* name() const noexcept override { return "herald"; }

  std::string message(int ev) const override {
    switch (static_cast<error>(ev)) {
      case error::unauthorized: return "unauthorized";
      case error::forbidden: return "forbidden";
      case error::origin_not_allowed: return "origin not allowed";
      case error::not_found: return "not found";
      case error::method_not_allowed: return "method not allowed";
      case error::bad_request: return "bad request";
      case error::bad_topic: return "bad topic name";
      case error::bad_cursor: return "bad cursor";
      case error::too_many_connections: return "too many connections";
      case error::too_many_subscriptions: return "too many subscriptions";
      case error::message_too_big: return "message too big";
      case error::bad_control_message: return "bad control message";
      case error::slow_consumer: return "slow consumer";
      case error::cursor_expired: return "cursor expired";
      case error::idle_timeout: return "idle timeout";
      case error::write_timeout: return "write timeout";
      case error::shutting_down: return "shutting down";
      case error::hook_failed: return "hook failed";
      case error::backplane_unavailable: return "backplane unavailable";
      case error::too_many_topics: return "too many topics";
    }
    return "herald error";
  }

  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    switch (static_cast<error>(ev)) {
      case error::unauthorized:
      case error::forbidden:
      case error::origin_not_allowed:
      case error::not_found:
      case error::method_not_allowed:
        return condition::rejected;
      case error::too_many_connections:
      case error::slow_consumer:
      case error::idle_timeout:
      case error::write_timeout:
      case error::shutting_down:
      case error::backplane_unavailable:
      case error::too_many_topics:
        return condition::overloaded;
      case error::bad_request:
      case error::bad_topic:
      case error::bad_cursor:
      case error::too_many_subscriptions:
      case error::message_too_big:
      case error::bad_control_message:
        return condition::protocol_violation;
      case error::cursor_expired:
      case error::hook_failed:
        break;
    }
    return {ev, *this};
  }
};

class ConditionCategory final : public boost::system::error_category {
 public:
  constexpr ConditionCategory() noexcept : error_category(0x6865726c64434e31ull) {}

  char const* name() const noexcept override { return "herald.condition"; }

  std::string message(int ev) const override {
    switch (static_cast<condition>(ev)) {
      case condition::rejected: return "request rejected";
      case condition::overloaded: return "overloaded";
      case condition::protocol_violation: return "protocol violation";
    }
    return "herald condition";
  }
};

}  // namespace detail

inline boost::system::error_category const& error_category() noexcept {
  static detail::ErrorCategory const instance;
  return instance;
}

inline boost::system::error_category const& condition_category() noexcept {
  static detail::ConditionCategory const instance;
  return instance;
}

}  // namespace herald
