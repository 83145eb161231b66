#pragma once

// A client Connector that sends every connection attempt to the next port of a list: a client
// behind a round-robin load balancer with no sticky sessions, which lands on another node each
// time it reconnects.

#include <herald/client/connector.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace test {

class HopConnector final : public herald::client::Connector {
 public:
  explicit HopConnector(std::vector<std::uint16_t> ports) : ports_(std::move(ports)) {}

  std::unique_ptr<herald::client::ByteStream> make(herald::net::any_io_executor const& ex,
                                                   herald::client::Url const& url) override {
    auto inner = herald::client::plain_tcp()->make(ex, url);
    std::uint16_t const port = ports_.at(next_++ % ports_.size());
    attempts.push_back(port);
    return std::make_unique<Hop>(std::move(inner), port);
  }

  /// The rotation from the next attempt on (e.g. without a node that went away).
  void ports(std::vector<std::uint16_t> p) {
    ports_ = std::move(p);
    next_ = 0;
  }

  /// The port of every attempt, in order.
  std::vector<std::uint16_t> attempts;

 private:
  class Hop final : public herald::client::ByteStream {
   public:
    Hop(std::unique_ptr<ByteStream> inner, std::uint16_t port) : inner_(std::move(inner)), port_(port) {}
    executor_type get_executor() noexcept override { return inner_->get_executor(); }
    void async_open(herald::client::Url const& url, OpenHandler handler) override {
      auto there = url;
      there.port = port_;
      inner_->async_open(there, std::move(handler));
    }
    void async_read_some(herald::net::mutable_buffer b, IoHandler h) override { inner_->async_read_some(b, std::move(h)); }
    void async_write_some(std::span<herald::net::const_buffer const> b, IoHandler h) override {
      inner_->async_write_some(b, std::move(h));
    }
    void close() noexcept override { inner_->close(); }

   private:
    std::unique_ptr<ByteStream> inner_;
    std::uint16_t port_;
  };

  std::vector<std::uint16_t> ports_;
  std::size_t next_ = 0;
};

}  // namespace test
