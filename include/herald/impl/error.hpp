#pragma once

#include <string>

namespace herald::inline v0 {
namespace detail {

class ErrorCategory final : public boost::system::error_category {
 public:
  // A fixed id keeps categories equal across shared-object boundaries.
  constexpr ErrorCategory() noexcept : error_category(0x6865726c64455231ull) {}

  char const* name() const noexcept override { return "herald"; }

  // Defined with the table they read (detail/error_table.hpp, included below).
  std::string message(int ev) const override;
  boost::system::error_condition default_error_condition(int ev) const noexcept override;
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

// Last: it defines ErrorCategory's members, and may itself be the header that included this one.
#include <herald/detail/error_table.hpp>
