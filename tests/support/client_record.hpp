#pragma once

// What tests need around herald's clients: a record of everything a client reports, and
// reconnect delays short enough for tests.

#include <herald/client.hpp>
#include <herald/event.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace test {

namespace hc = herald::client;
using namespace std::chrono_literals;

/// Collects what a client reports.
struct Record {
  std::vector<herald::Event> events;
  std::vector<hc::Reset> resets;
  std::vector<std::pair<hc::State, boost::system::error_code>> states;
  std::vector<std::string> messages;
  /// Index into `events` at which each reset arrived.
  std::vector<std::size_t> reset_at;
  std::vector<hc::Gap> gaps;
  /// Index into `events` at which each gap notice arrived.
  std::vector<std::size_t> gap_at;

  template <class Client>
  void attach(Client& c) {
    c.on_event([this](herald::Event const& e) { events.push_back(e); });
    c.on_reset([this](hc::Reset const& r) {
      resets.push_back(r);
      reset_at.push_back(events.size());
    });
    c.on_gap([this](hc::Gap const& g) {
      gaps.push_back(g);
      gap_at.push_back(events.size());
    });
    c.on_state([this](hc::State s, boost::system::error_code ec) { states.emplace_back(s, ec); });
  }

  bool saw(herald::EventId id) const {
    for (auto const& e : events)
      if (e.id == id) return true;
    return false;
  }
  std::vector<herald::EventId> ids() const {
    std::vector<herald::EventId> out;
    for (auto const& e : events) out.push_back(e.id);
    return out;
  }
  std::size_t count(hc::State s) const {
    std::size_t n = 0;
    for (auto const& [state, ec] : states) n += state == s;
    return n;
  }
  bool closed() const { return !states.empty() && states.back().first == hc::State::closed; }
  bool open() const { return !states.empty() && states.back().first == hc::State::open; }
};

/// Fast reconnects for tests (the defaults are seconds).
inline hc::BackoffOptions quick_backoff(std::uint64_t seed = 1) {
  auto rng = std::make_shared<std::mt19937_64>(seed);
  return {.base = 2ms, .cap = 20ms, .reset_after = 50ms, .random = [rng] { return (*rng)(); }};
}

}  // namespace test
