#pragma once

#include <herald/client/detail/any_stream.hpp>
#include <herald/client/detail/envelope.hpp>
#include <herald/client/detail/http.hpp>
#include <herald/client/polling_client.hpp>
#include <herald/client/sse_client.hpp>
#include <herald/client/websocket_client.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::inline v0::client::detail {

/** The NegotiatingClient: one member client (SseImpl, WsImpl or PollImpl) at a time does the
    work, plus a second one while a better transport is probed. Members run on a strand nested
    in this client's, so their handlers are serialized with everything here; a member that is
    given up is detached (none of its handlers runs afterwards). Core's backoff is used only
    when every transport failed; Core's positions (last_) are the client's, above the members'
    own, and decide what reaches on_event. */
class NegotiatingImpl final : public Core {
 public:
  using Public = NegotiatingClient;

  NegotiatingImpl(executor_type const& ex, Url url, Options options)
      : Core(ex, std::move(url), std::move(options)),
        fetch_timer_(strand()),
        probe_timer_(strand()),
        floor_(options_.since) {
    auto const& n = options_.negotiate;
    for (auto const& name : n.transports) {
      auto const k = kind_of(name);
      if (!k) throw std::invalid_argument("herald: NegotiateOptions::transports names an unknown transport: " + name);
      if (std::find(order_.begin(), order_.end(), *k) == order_.end()) order_.push_back(*k);
    }
    if (order_.empty()) throw std::invalid_argument("herald: NegotiateOptions::transports is empty");
    if (n.probe_after.count() <= 0 || n.probe_cap < n.probe_after)
      throw std::invalid_argument("herald: NegotiateOptions::probe_after must be positive and at most probe_cap");
    probe_delay_ = n.probe_after;
  }

  std::string transport() const {
    auto const k = working_.load();
    return k < 0 ? std::string() : std::string(names[static_cast<std::size_t>(k)]);
  }

 private:
  enum class Kind : std::uint8_t { websocket, sse, polling };
  static constexpr std::array<std::string_view, 3> names{"websocket", "sse", "polling"};

  struct Member {
    Kind kind;
    std::shared_ptr<Core> client;
    /// Proved delivery since its last drop.
    bool proved = false;
  };

  struct Fetch {
    explicit Fetch(std::unique_ptr<ByteStream> s) : stream(std::move(s)) {}
    AnyStream stream;
    beast::flat_buffer buffer;
    http::request<http::empty_body> req;
    http::response_parser<http::string_body> parser;
  };

  static std::optional<Kind> kind_of(std::string_view name) {
    for (std::size_t i = 0; i < names.size(); ++i)
      if (names[i] == name) return static_cast<Kind>(i);
    return std::nullopt;
  }

  // Connecting ------------------------------------------------------------------------------

  void connect() override {
    unwatch();  // the members watch their own connections
    if (!negotiated_) return negotiate();
    start_current();
  }

  /** GET url?negotiate: the transports the channel serves and its cursor. Any failure is no
      reason to stop: the configured order is tried as it is (and asked again next time). */
  void negotiate() {
    boost::system::error_code ec;
    auto stream = make_stream(ec);
    if (!stream) return fail(ec);
    auto f = std::make_shared<Fetch>(std::move(stream));
    fetch_ = f;
    std::string target = url_.target;
    append_query(target, "negotiate", "");
    f->req.method(http::verb::get);
    f->req.target(target);
    f->req.version(11);
    f->req.set(http::field::accept, "application/json");
    set_common_headers(f->req, url_, options_);
    f->parser.body_limit(64 * 1024);
    fetch_timer_.expires_after(options_.connect_timeout);
    fetch_timer_.async_wait(track([this, f](boost::system::error_code e) {
      if (!e && f == fetch_) f->stream.impl().close();
    }));
    f->stream.impl().async_open(url_, track([this, f](boost::system::error_code ec) {
      if (f != fetch_) return;
      if (ec) return negotiated(ec);
      http::async_write(f->stream, f->req, track([this, f](boost::system::error_code ec, std::size_t) {
        if (f != fetch_) return;
        if (ec) return negotiated(ec);
        http::async_read(f->stream, f->buffer, f->parser, track([this, f](boost::system::error_code ec, std::size_t) {
          if (f == fetch_) negotiated(ec);
        }));
      }));
    }));
  }

  void negotiated(boost::system::error_code ec) {
    auto const f = std::exchange(fetch_, nullptr);
    fetch_timer_.cancel();
    f->stream.impl().close();
    if (!ec && f->parser.get().result_int() == 200) apply(parse_json(f->parser.get().body()));
    start_current();
  }

  void apply(nlohmann::json const& answer) {
    if (!answer.is_object()) return;
    negotiated_ = true;
    if (auto const t = answer.find("transports"); t != answer.end() && t->is_array()) {
      std::vector<Kind> offered;
      for (auto const& name : *t)
        if (name.is_string())
          if (auto const k = kind_of(name.get_ref<std::string const&>())) offered.push_back(*k);
      std::vector<Kind> order;
      for (auto const k : order_)
        if (std::find(offered.begin(), offered.end(), k) != offered.end()) order.push_back(k);
      if (!order.empty()) order_ = std::move(order);
    }
    // Where "now" is for a client that gave no cursor: the position of every topic.
    if (auto const c = answer.find("cursor"); c != answer.end() && !floor_ && last_.empty())
      if (auto const id = json_id(*c)) floor_ = *id;
  }

  std::shared_ptr<Core> make_member(Kind kind) {
    Options o = options_;
    o.since = resume();
    Url u = url_;
    std::shared_ptr<Core> c;
    switch (kind) {
      case Kind::websocket:
        u.scheme = url_.secure() ? "wss" : "ws";
        c = std::make_shared<WsImpl>(strand(), std::move(u), std::move(o));
        break;
      case Kind::sse:
        c = std::make_shared<SseImpl>(strand(), std::move(u), std::move(o));
        break;
      case Kind::polling:
        c = std::make_shared<PollImpl>(strand(), std::move(u), std::move(o));
        break;
    }
    // Raw pointers: a member's handlers never run once it is detached, which happens before
    // this object goes away (disconnect()).
    Core* const m = c.get();
    c->on_event_ = [this, m](Event const& e) {
      member_event(m, e);
      maybe_finish();
    };
    c->on_reset_ = [this, m](Reset const& r) {
      member_reset(m, r);
      maybe_finish();
    };
    c->on_state_ = [this, m](State s, boost::system::error_code ec) {
      member_state(m, s, ec);
      maybe_finish();
    };
    c->start();
    return c;
  }

  void start_current() {
    if (index_ >= order_.size()) index_ = 0;
    current_ = Member{order_[index_], make_member(order_[index_])};
  }

  static void drop(std::optional<Member>& m) {
    if (!m) return;
    m->client->detach();
    m.reset();
  }

  // What members report --------------------------------------------------------------------

  Member* which(Core const* m) {
    if (current_ && current_->client.get() == m) return &*current_;
    if (probe_ && probe_->client.get() == m) return &*probe_;
    return nullptr;
  }

  void member_event(Core const* m, Event const& e) {
    auto const* member = which(m);
    if (!member) return;
    // SSE and polling carry one sequence in id order over every followed topic: each of them is
    // complete up to this id. (WebSocket replays topic by topic; its positions stay per topic.)
    bool const sequence = member->kind != Kind::websocket;
    if (!deliver(e, e.topic, floor_.value_or(0))) return;  // stopping (the member may be gone)
    if (sequence && e.id != 0) floor_ = std::max(floor_.value_or(0), e.id);
  }

  void member_reset(Core const* m, Reset const& r) {
    if (!which(m)) return;
    if (r.cursor == 0) {
      // Polling does not say where the gap ends: what follows may lie below every position.
      if (r.topic.empty()) last_.clear();
      else last_.erase(r.topic);
      floor_.reset();
    } else if (r.topic.empty()) {
      for (auto& [topic, id] : last_) id = r.cursor;
      floor_ = r.cursor;
    } else {
      set_last(r.topic, r.cursor);
      if (floor_) floor_ = std::min(*floor_, r.cursor);
    }
    notify_reset(r);
  }

  void member_state(Core const* m, State s, boost::system::error_code ec) {
    if (stopping() || s == State::connecting) return;
    if (current_ && current_->client.get() == m) return current_state(s, ec);
    if (probe_ && probe_->client.get() == m) return probe_state(s, ec);
  }

  void current_state(State s, boost::system::error_code ec) {
    auto& cur = *current_;
    if (s == State::open) {
      cur.proved = true;
      working_ = static_cast<int>(cur.kind);
      opened();
      return schedule_probe();
    }
    if (s == State::closed && refused(ec)) return fail(ec);
    // A connection that proved delivery and dropped: the member resumes it by itself.
    if (s == State::reconnecting && cur.proved && ec != error::stalled && ec != error::no_data) {
      cur.proved = false;
      return reconnecting(ec);
    }
    // Failed before it delivered anything, stalled, or closed for good: the next transport.
    // A probe under way is given up too; the next transport that works schedules its own.
    stop_timers();
    drop(current_);
    drop(probe_);
    if (index_ + 1 < order_.size()) {
      ++index_;
      reconnecting(ec);
      return start_current();
    }
    index_ = 0;
    lost(ec);  // every transport failed: back off, then from the best one again
  }

  /// Refusals no other transport can fix: the same admission runs on every one.
  static bool refused(boost::system::error_code ec) {
    return ec == herald::error::unauthorized || ec == herald::error::forbidden || ec == herald::error::not_found;
  }

  // Probing a better transport ----------------------------------------------------------------

  void schedule_probe() {
    if (stopping() || index_ == 0 || probe_ || probing_) return;
    probing_ = true;
    probe_timer_.expires_after(probe_delay_);
    probe_timer_.async_wait(track([this](boost::system::error_code e) {
      if (e || stopping() || !probing_) return;
      probe_index_ = 0;
      start_probe();
    }));
  }

  void start_probe() { probe_ = Member{order_[probe_index_], make_member(order_[probe_index_])}; }

  void probe_state(State s, boost::system::error_code) {
    if (s == State::open) {
      // It delivers: it takes over (its events were deduplicated against the current one's).
      drop(current_);
      current_ = std::exchange(probe_, std::nullopt);
      current_->proved = true;
      index_ = probe_index_;
      working_ = static_cast<int>(current_->kind);
      probing_ = false;
      probe_delay_ = options_.negotiate.probe_after;
      return schedule_probe();
    }
    drop(probe_);
    if (++probe_index_ < index_) return start_probe();
    probing_ = false;
    probe_delay_ = std::min(probe_delay_ * 2, options_.negotiate.probe_cap);
    schedule_probe();
  }

  // Positions -------------------------------------------------------------------------------

  /** Where a new member starts: the lowest position of the followed topics (each topic at least
      at the floor), or of every topic seen when the channel chooses them; nullopt: from now. */
  std::optional<EventId> resume() const {
    std::optional<EventId> low;
    auto consider = [&](std::optional<EventId> p) {
      if (floor_ && (!p || *p < *floor_)) p = floor_;
      if (p && (!low || *p < *low)) low = p;
    };
    if (!options_.topics.empty()) {
      for (auto const& t : options_.topics) consider(last(t));
    } else {
      for (auto const& [topic, id] : last_) consider(id);
    }
    if (!low) low = floor_;
    return low;
  }

  // Stopping --------------------------------------------------------------------------------

  void begin_stop() override {
    stop_timers();
    // Each member says goodbye (WebSocket: a close handshake); the stop completes after them.
    for (auto* m : {&current_, &probe_})
      if (*m) (*m)->client->stop(StopHandler(track([](boost::system::error_code) {})));
  }

  void disconnect() override {
    stop_timers();
    drop(current_);
    drop(probe_);
  }

  void stop_timers() {
    probing_ = false;
    probe_timer_.cancel();
    fetch_timer_.cancel();
    if (auto const f = std::exchange(fetch_, nullptr)) f->stream.impl().close();
  }

  net::steady_timer fetch_timer_;
  net::steady_timer probe_timer_;
  std::shared_ptr<Fetch> fetch_;
  std::vector<Kind> order_;
  std::optional<Member> current_;
  std::optional<Member> probe_;
  /// Every followed topic is complete up to this id (set by SSE and polling, resets, the start).
  std::optional<EventId> floor_;
  std::size_t index_ = 0;        // order_[index_] is the current transport
  std::size_t probe_index_ = 0;  // order_[probe_index_] is being probed
  std::chrono::milliseconds probe_delay_{};
  std::atomic<int> working_{-1};
  bool negotiated_ = false;
  bool probing_ = false;
};

}  // namespace herald::client::detail

namespace herald::inline v0::client {

inline NegotiatingClient::NegotiatingClient(executor_type const& ex, std::string_view url, Options options)
    : ClientHandle(std::make_shared<detail::NegotiatingImpl>(ex, detail::checked_url(url, detail::Schemes::http),
                                                             std::move(options))) {}

inline std::string NegotiatingClient::transport() const { return impl_->transport(); }

}  // namespace herald::client
