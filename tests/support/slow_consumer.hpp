#pragma once

// What the slow-consumer tests of every transport share: the channel's counters as an operator
// scrapes them, and what a client that stopped reading must eventually have received under
// OverflowPolicy::drop_oldest and coalesce_latest.

#include <herald/metrics.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace test {

/// The sum of every sample of `family` in the exposition (whatever its labels).
inline std::uint64_t metric(herald::Metrics const& m, std::string_view family) {
  std::uint64_t n = 0;
  std::istringstream in{m.text()};
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(family, 0) != 0 || line.size() == family.size()) continue;
    if (char const c = line[family.size()]; c != '{' && c != ' ') continue;
    n += std::stoull(line.substr(line.rfind(' ') + 1));
  }
  return n;
}

/// One thing a slow client received: an event, or a gap notice (its data parsed).
struct Received {
  std::uint64_t id = 0;
  std::string topic;
  bool gap = false;
  nlohmann::json data;
};

/** drop_oldest on one topic (whose ids are consecutive, so a range names exactly its ids):
    every published id reached the client exactly once and in order, as an event or inside a
    gap notice's range, and each notice comes where its events would have. Returns how many
    were dropped. */
inline std::uint64_t check_gaps(std::vector<Received> const& got, std::vector<std::uint64_t> const& published,
                                std::string const& topic) {
  std::vector<std::uint64_t> seen;
  std::uint64_t dropped = 0;
  for (auto const& r : got) {
    if (!r.gap) {
      seen.push_back(r.id);
      continue;
    }
    CHECK(r.data["reason"] == "slow_consumer");
    REQUIRE(r.data["missed"].size() == 1);
    auto const& m = r.data["missed"][0];
    CHECK(m["topic"] == topic);
    auto const first = m["first"].get<std::uint64_t>();
    auto const last = m["last"].get<std::uint64_t>();
    auto const count = m["count"].get<std::uint64_t>();
    CHECK(count == last - first + 1);
    CHECK(r.id == last);
    for (auto id = first; id <= last; ++id) seen.push_back(id);
    dropped += count;
  }
  CHECK(dropped > 0);
  CHECK(seen == published);
  return dropped;
}

/** coalesce_latest: no notice, no event twice, each topic's events in order and among those
    published, and the newest of every topic received. Returns how many events arrived. */
inline std::size_t check_coalesced(std::vector<Received> const& got,
                                   std::map<std::string, std::vector<std::uint64_t>> const& published) {
  std::map<std::string, std::vector<std::uint64_t>> seen;
  for (auto const& r : got) {
    CHECK_FALSE(r.gap);
    seen[r.topic].push_back(r.id);
  }
  std::size_t n = 0;
  for (auto const& [topic, ids] : published) {
    auto const& s = seen[topic];
    n += s.size();
    REQUIRE_FALSE(s.empty());
    CHECK(s.back() == ids.back());
    for (std::size_t i = 1; i < s.size(); ++i) CHECK(s[i - 1] < s[i]);
    for (auto id : s) CHECK(std::find(ids.begin(), ids.end(), id) != ids.end());
  }
  CHECK(n == got.size());
  return n;
}

}  // namespace test
