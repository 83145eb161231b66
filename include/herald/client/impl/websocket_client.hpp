#pragma once

#include <herald/client/detail/any_stream.hpp>
#include <herald/client/detail/envelope.hpp>
#include <herald/client/detail/http.hpp>
#include <herald/detail/heartbeat.hpp>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/error.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace herald::inline v0::client::detail {

namespace websocket = boost::beast::websocket;

/// The herald::error named `text` on the wire (detail/error_table.hpp); bad_response if none.
inline boost::system::error_code error_from_text(std::string_view text) {
  if (auto const e = herald::detail::error_from_wire(text)) return *e;
  return error::bad_response;
}

class WsImpl final : public Core {
 public:
  using Public = WebSocketClient;

  WsImpl(executor_type const& ex, Url url, Options options) : Core(ex, std::move(url), std::move(options)) {
    for (auto const& t : options_.topics) {
      if (std::find(topics_.begin(), topics_.end(), t) != topics_.end()) continue;
      topics_.push_back(t);
      if (options_.since) set_last(t, *options_.since);
    }
  }

  std::function<void(Message const&)> on_message_;
  std::function<void(boost::system::error_code, std::string_view, std::string_view)> on_error_;

  void subscribe(std::string topic, std::optional<EventId> since) {
    net::post(strand(), [self = self(), topic = std::move(topic), since] {
      if (self->stopping() || topic.empty()) return;
      if (since) self->set_last(topic, *since);
      if (std::find(self->topics_.begin(), self->topics_.end(), topic) != self->topics_.end()) return;
      self->topics_.push_back(topic);
      if (auto const& c = self->conn_; c && c->open) {
        c->control.push_back(self->subscribe_message(topic));
        self->pump(c);
      }
    });
  }

  void unsubscribe(std::string topic) {
    net::post(strand(), [self = self(), topic = std::move(topic)] {
      auto it = std::find(self->topics_.begin(), self->topics_.end(), topic);
      if (it == self->topics_.end()) return;
      self->topics_.erase(it);
      if (auto const& c = self->conn_; c && c->open) {
        nlohmann::json msg{{"unsubscribe", topic}};
        c->control.push_back(msg.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        self->pump(c);
      }
    });
  }

  SendStatus send(std::string data, bool binary) {
    bool half = false;
    {
      std::lock_guard lock{out_mutex_};
      if (out_closed_ || outbox_.size() + 1 > max_queued || outbox_bytes_ + data.size() > options_.max_message)
        return SendStatus::dropped;
      outbox_bytes_ += data.size();
      outbox_.push_back(Out{std::move(data), binary});
      half = outbox_.size() * 2 > max_queued || outbox_bytes_ * 2 > options_.max_message;
    }
    net::post(strand(), [self = self()] {
      if (self->conn_) self->pump(self->conn_);
    });
    return half ? SendStatus::backpressure : SendStatus::accepted;
  }

 private:
  static constexpr std::size_t max_queued = 1024;

  struct Out {
    std::string data;
    bool binary = false;
  };

  struct Conn {
    explicit Conn(std::unique_ptr<ByteStream> s) : ws(AnyStream(std::move(s))) {}
    websocket::stream<AnyStream> ws;
    websocket::response_type response;
    beast::flat_buffer buffer;
    /// This connection's control messages; they go before application messages.
    std::deque<std::string> control;
    Out out;
    std::optional<Envelope> head;
    bool open = false;
    bool writing = false;
    bool closing = false;
    bool close_sent = false;
  };

  std::shared_ptr<WsImpl> self() { return std::static_pointer_cast<WsImpl>(shared_from_this()); }

  std::string subscribe_message(std::string const& topic) const {
    nlohmann::json msg{{"subscribe", topic}};
    if (auto const since = last(topic)) msg["since"] = *since;
    return msg.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }

  std::string target() const {
    std::string t = url_.target;
    // No topics named: the channel subscribes its fixed topics by itself; resume them all from
    // the lowest position (duplicates above a topic's own position are dropped), or from
    // Options::since before any event.
    if (topics_.empty()) {
      std::optional<EventId> low = options_.since;
      if (!last_.empty()) low = last_.begin()->second;
      for (auto const& [topic, id] : last_) low = std::min(*low, id);
      if (low) append_query(t, "since", std::to_string(*low));
    }
    // Heartbeat frames: the server's proof that data gets through, and its stall deadline.
    append_query(t, ::herald::detail::heartbeat_parameter, "1");
    return t;
  }

  void connect() override {
    boost::system::error_code ec;
    auto stream = make_stream(ec);
    if (!stream) return fail(ec);
    auto c = std::make_shared<Conn>(std::move(stream));
    conn_ = c;
    websocket::stream_base::timeout timeout;
    timeout.handshake_timeout = options_.connect_timeout;
    timeout.idle_timeout = options_.idle_timeout.count() > 0
                               ? std::chrono::steady_clock::duration(options_.idle_timeout)
                               : websocket::stream_base::none();
    timeout.keep_alive_pings = options_.idle_timeout.count() > 0;
    c->ws.set_option(timeout);
    c->ws.read_message_max(options_.max_message);
    c->ws.set_option(websocket::stream_base::decorator(
        [url = url_, options = options_](websocket::request_type& req) { set_common_headers(req, url, options); }));

    c->ws.next_layer().impl().async_open(url_, track([this, c](boost::system::error_code ec) {
      if (c != conn_) return;
      if (ec) return lost(ec);
      c->ws.async_handshake(c->response, url_.host_header(), target(),
                            track([this, c](boost::system::error_code ec) {
                              if (c != conn_) return;
                              if (ec) {
                                auto const status = c->response.result_int();
                                if (status != 0 && status != 101) {
                                  auto const verdict = classify_status(status);
                                  return verdict.retry ? lost(verdict.ec) : fail(verdict.ec);
                                }
                                return lost(ec);
                              }
                              on_open(c);
                            }));
    }));
  }

  void on_open(std::shared_ptr<Conn> const& c) {
    c->open = true;
    for (auto const& t : topics_) c->control.push_back(subscribe_message(t));
    // A server that sends heartbeat frames must show one at once (proof of delivery). Beast's
    // own timeouts (idle, pings, closing handshake) cover the rest, so no idle watch here.
    connected(::herald::detail::parse_heartbeat(c->response[::herald::detail::heartbeat_header]),
              std::chrono::milliseconds::zero());
    if (c != conn_) return;
    pump(c);
    read(c);
  }

  void read(std::shared_ptr<Conn> const& c) {
    c->ws.async_read(c->buffer, track([this, c](boost::system::error_code ec, std::size_t) {
      if (c != conn_) return;
      if (ec) return lost(close_reason(*c, ec));
      received();
      if (c != conn_) return;
      std::string_view const data(static_cast<char const*>(c->buffer.data().data()), c->buffer.size());
      bool const go_on = c->ws.got_text() ? on_text(*c, data) : on_binary(*c, data);
      c->buffer.consume(c->buffer.size());
      if (go_on && c == conn_) read(c);
    }));
  }

  /** What a close frame from the server means, in herald's terms: the error its reason names
      on the wire, else the one its code stands for (detail/error_table.hpp). */
  static boost::system::error_code close_reason(Conn const& c, boost::system::error_code ec) {
    if (ec != websocket::error::closed) return ec;
    auto const& reason = c.ws.reason();
    if (auto const e = herald::detail::error_from_wire(std::string_view(reason.reason.data(), reason.reason.size())))
      return *e;
    if (auto const e = herald::detail::error_from_close_code(static_cast<std::uint16_t>(reason.code))) return *e;
    return ec;
  }

  bool followed(std::string_view topic) const {
    return std::find(topics_.begin(), topics_.end(), topic) != topics_.end();
  }

  bool on_text(Conn& c, std::string_view text) {
    auto const doc = parse_json(text);
    if (doc.is_object()) {
      if (::herald::detail::heartbeat_period(doc)) return true;  // proof of life, counted in read()
      if (auto it = doc.find("subscribed"); it != doc.end() && it->is_string()) {
        auto const& topic = it->get_ref<std::string const&>();
        auto const cursor = doc.find("cursor");
        // A topic followed without a cursor starts where the subscription took effect.
        if (cursor != doc.end() && !last(topic))
          if (auto id = json_id(*cursor)) set_last(topic, *id);
        return true;
      }
      if (auto it = doc.find("unsubscribed"); it != doc.end() && it->is_string()) return true;
      if (auto it = doc.find("error"); it != doc.end() && it->is_string() && !doc.contains("id")) {
        std::string topic;
        std::string message;
        if (auto t = doc.find("topic"); t != doc.end() && t->is_string()) topic = t->get<std::string>();
        if (auto m = doc.find("message"); m != doc.end() && m->is_string()) message = m->get<std::string>();
        if (auto f = std::find(topics_.begin(), topics_.end(), topic); !topic.empty() && f != topics_.end())
          topics_.erase(f);
        invoke(on_error_, error_from_text(it->get_ref<std::string const&>()), std::string_view(topic),
               std::string_view(message));
        return !stopping();
      }
      if (auto env = parse_envelope(doc, text)) {
        if (env->binary_head) {
          c.head = std::move(*env);
          return true;
        }
        return on_envelope(*env);
      }
    }
    invoke(on_message_, Message{text, false});
    return !stopping();
  }

  bool on_binary(Conn& c, std::string_view data) {
    if (c.head) {
      Envelope env = std::move(*c.head);
      c.head.reset();
      env.event.data = std::string(data);
      return on_envelope(env);
    }
    invoke(on_message_, Message{data, true});
    return !stopping();
  }

  bool on_envelope(Envelope const& env) {
    if (env.reset) {
      // The notice's id is the topic's position after it; a notice without a topic covers all.
      if (env.event.topic.empty()) {
        for (auto const& t : topics_) set_last(t, env.event.id);
        for (auto& [topic, id] : last_) id = env.event.id;
      } else {
        set_last(env.event.topic, env.event.id);
      }
      return notify_reset(*env.reset);
    }
    if (!topics_.empty() && !followed(env.event.topic)) return true;  // unsubscribed, still in flight
    return deliver(env.event, env.event.topic);
  }

  void pump(std::shared_ptr<Conn> const& c) {
    if (c != conn_ || !c->open || c->writing || c->close_sent) return;
    if (c->closing) return close(c);
    if (!c->control.empty()) {
      c->out = Out{std::move(c->control.front()), false};
      c->control.pop_front();
    } else {
      std::lock_guard lock{out_mutex_};
      if (outbox_.empty()) return;
      c->out = std::move(outbox_.front());
      outbox_.pop_front();
      outbox_bytes_ -= c->out.data.size();
    }
    c->writing = true;
    c->ws.binary(c->out.binary);
    c->ws.async_write(net::buffer(c->out.data), track([this, c](boost::system::error_code ec, std::size_t) {
      c->writing = false;
      if (c != conn_) return;
      if (ec) return lost(ec);
      pump(c);
    }));
  }

  void close(std::shared_ptr<Conn> const& c) {
    c->close_sent = true;
    c->ws.async_close(websocket::close_code::normal, track([this, c](boost::system::error_code) {
      if (c != conn_) return;
      unwatch();
      disconnect();
    }));
  }

  void begin_stop() override {
    {
      std::lock_guard lock{out_mutex_};
      out_closed_ = true;
    }
    auto c = conn_;
    if (!c || !c->open) return disconnect();
    // Say goodbye (1000) after the write in flight; the watchdog cuts a peer that never answers.
    c->closing = true;
    watch(options_.connect_timeout, {});
    pump(c);
  }

  void disconnect() override {
    if (!conn_) return;
    conn_->ws.next_layer().impl().close();
    conn_.reset();
  }

  void release_handlers() override {
    on_message_ = nullptr;
    on_error_ = nullptr;
  }

  std::shared_ptr<Conn> conn_;
  /// Followed topics, in the order they were asked for.
  std::vector<std::string> topics_;
  std::mutex out_mutex_;
  std::deque<Out> outbox_;
  std::size_t outbox_bytes_ = 0;
  bool out_closed_ = false;
};

}  // namespace herald::client::detail

namespace herald::inline v0::client {

inline WebSocketClient::WebSocketClient(executor_type const& ex, std::string_view url, Options options)
    : ClientHandle(std::make_shared<detail::WsImpl>(ex, detail::checked_url(url, detail::Schemes::ws),
                                                    std::move(options))) {}

template <class F>
WebSocketClient& WebSocketClient::on_message(F&& handler) {
  impl_->on_message_ = std::forward<F>(handler);
  return *this;
}

template <class F>
WebSocketClient& WebSocketClient::on_error(F&& handler) {
  impl_->on_error_ = std::forward<F>(handler);
  return *this;
}

inline void WebSocketClient::subscribe(std::string topic, std::optional<EventId> since) {
  impl_->subscribe(std::move(topic), since);
}

inline void WebSocketClient::unsubscribe(std::string topic) { impl_->unsubscribe(std::move(topic)); }

inline SendStatus WebSocketClient::send(std::string text) { return impl_->send(std::move(text), false); }

inline SendStatus WebSocketClient::send_binary(std::string bytes) { return impl_->send(std::move(bytes), true); }

}  // namespace herald::client
