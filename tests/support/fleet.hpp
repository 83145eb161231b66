#pragma once

// A fleet of clients of every transport for the chaos tests: what was published (per topic,
// with each id's topic and payload), the clients' records, and the checks that each client
// got exactly the published sequence of its topics.

#include <herald/client.hpp>
#include <herald/event.hpp>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "client_record.hpp"
#include "loopback.hpp"

namespace test {

namespace net = boost::asio;
namespace hc = herald::client;

inline std::uint64_t chaos_seed() {
  if (char const* env = std::getenv("HERALD_CHAOS_SEED")) return std::strtoull(env, nullptr, 10);
  return std::random_device{}();
}

inline std::vector<std::string> const all_topics{"a", "b", "c"};

/// What the publisher published, per topic, and what each id was.
struct Published {
  std::map<std::string, std::vector<herald::EventId>> ids;
  std::unordered_map<herald::EventId, std::string> topic_of;
  std::unordered_map<herald::EventId, std::string> data_of;
  std::size_t count = 0;

  void add(herald::EventId id, std::string const& topic, std::string data) {
    ids[topic].push_back(id);
    topic_of[id] = topic;
    data_of[id] = std::move(data);
  }
};

/// Clients of every transport, each following a set of topics, recording what they get.
struct Fleet {
  struct Member {
    std::string transport;
    std::vector<std::string> topics;  // what it follows (empty in the request: every topic)
    Record rec;
    std::function<void(std::function<void(boost::system::error_code)>)> stop;
    std::function<hc::ClientStats()> stats;
    std::shared_ptr<void> client;
    /// Events per topic (since the first reset, if any), kept as they arrive so that the
    /// completion check stays cheap.
    std::map<std::string, std::size_t> counts;
  };

  /// The publisher's record that tells which topic an id belongs to (SSE streams do not say).
  Published const* published = nullptr;

  template <class Client>
  void add(net::io_context& ioc, std::string const& transport, std::string const& url, std::vector<std::string> topics,
           hc::Options o) {
    auto& m = members.emplace_back();
    m.transport = transport;
    m.topics = topics.empty() ? all_topics : topics;
    o.topics = std::move(topics);
    auto c = std::make_shared<Client>(ioc.get_executor(), url, std::move(o));
    m.rec.attach(*c);
    c->on_event([this, &m](herald::Event const& e) {
      m.rec.events.push_back(e);
      auto it = published->topic_of.find(e.id);
      ++m.counts[it == published->topic_of.end() ? "?" : it->second];
    });
    c->on_reset([&m](hc::Reset const& r) {
      if (m.rec.resets.empty()) m.counts.clear();
      m.rec.resets.push_back(r);
      m.rec.reset_at.push_back(m.rec.events.size());
    });
    m.stop = [c](std::function<void(boost::system::error_code)> h) { c->async_stop(std::move(h)); };
    m.stats = [c] { return c->stats(); };
    m.client = c;
  }

  /// Three clients per transport: one topic, two topics, every topic.
  void add_every_kind(net::io_context& ioc, std::uint16_t port, hc::Options const& base, std::size_t copies) {
    auto url = [&](char const* scheme, char const* path) {
      return std::string(scheme) + "://127.0.0.1:" + std::to_string(port) + path;
    };
    for (std::size_t i = 0; i < copies; ++i) {
      add<hc::SseClient>(ioc, "sse", url("http", "/sse"), {"a"}, base);
      add<hc::SseClient>(ioc, "sse", url("http", "/sse"), {"a", "b"}, base);
      add<hc::SseClient>(ioc, "sse", url("http", "/sse"), {}, base);
      add<hc::WebSocketClient>(ioc, "websocket", url("ws", "/ws"), {"b"}, base);
      add<hc::WebSocketClient>(ioc, "websocket", url("ws", "/ws"), {"b", "c"}, base);
      add<hc::WebSocketClient>(ioc, "websocket", url("ws", "/ws"), {"a", "b", "c"}, base);
      add<hc::PollingClient>(ioc, "polling", url("http", "/poll"), {"c"}, base);
      add<hc::PollingClient>(ioc, "polling", url("http", "/poll"), {"a", "c"}, base);
      add<hc::PollingClient>(ioc, "polling", url("http", "/poll"), {}, base);
    }
  }

  void start() {
    for (auto& m : members) {
      if (m.transport == "sse") std::static_pointer_cast<hc::SseClient>(m.client)->start();
      else if (m.transport == "websocket") std::static_pointer_cast<hc::WebSocketClient>(m.client)->start();
      else std::static_pointer_cast<hc::PollingClient>(m.client)->start();
    }
  }

  bool stop(net::io_context& ioc) {
    std::size_t stopped = 0;
    for (auto& m : members) m.stop([&](boost::system::error_code) { ++stopped; });
    return run_until(ioc, [&] { return stopped == members.size(); }, 20s);
  }

  std::uint64_t reconnects() const {
    std::uint64_t n = 0;
    for (auto const& m : members) n += m.stats().reconnects;
    return n;
  }
  std::uint64_t duplicates() const {
    std::uint64_t n = 0;
    for (auto const& m : members) n += m.stats().duplicates;
    return n;
  }

  std::deque<Member> members;
};

/// The ids a client saw per topic, in arrival order, from events [from, to) of its record.
inline std::map<std::string, std::vector<herald::EventId>> by_topic(Record const& r, Published const& p, std::size_t from = 0,
                                                             std::size_t to = SIZE_MAX) {
  std::map<std::string, std::vector<herald::EventId>> out;
  for (std::size_t i = from; i < std::min(to, r.events.size()); ++i) {
    auto const& e = r.events[i];
    auto it = p.topic_of.find(e.id);
    out[it == p.topic_of.end() ? "?" + e.topic : it->second].push_back(e.id);
  }
  return out;
}

/// Whether a client has (at least) as many events of each followed topic as were published
/// (counted since its first reset, if it had one).
inline bool caught_up(Fleet::Member const& m, Published const& p) {
  for (auto const& t : m.topics) {
    auto const want = p.ids.count(t) ? p.ids.at(t).size() : 0;
    auto const it = m.counts.find(t);
    if ((it == m.counts.end() ? 0 : it->second) < want) return false;
  }
  return true;
}

/// Exactly the published sequence of each followed topic, with the published payloads.
inline void check_exact(Fleet::Member const& m, Published const& p, std::size_t from = 0) {
  INFO(m.transport << " client following " << m.topics.size() << " topic(s)");
  auto const got = by_topic(m.rec, p, from);
  std::size_t expected_total = 0;
  for (auto const& t : m.topics) {
    INFO("topic " << t);
    auto const want = p.ids.count(t) ? p.ids.at(t) : std::vector<herald::EventId>{};
    auto const it = got.find(t);
    CHECK((it == got.end() ? std::vector<herald::EventId>{} : it->second) == want);
    expected_total += want.size();
  }
  CHECK(m.rec.events.size() - from == expected_total);  // nothing of other topics, nothing unknown
  std::size_t bad_payloads = 0;
  for (std::size_t i = from; i < m.rec.events.size(); ++i) {
    auto it = p.data_of.find(m.rec.events[i].id);
    if (it == p.data_of.end() || it->second != m.rec.events[i].data) ++bad_payloads;
  }
  CHECK(bad_payloads == 0);
}

}  // namespace test
