#pragma once

#include <herald/config.hpp>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#if __has_include(<sys/random.h>)
#include <sys/random.h>
#endif

namespace herald::inline v0 {

/// What a ticket stands for: who, where to, and until when.
struct Grant {
  /// The principal the connection gets (as if the authorize hook had named it).
  std::string principal;
  /** The topics the connection may subscribe to; empty: whatever the channel and its
      authorize_topic hook allow. An SSE stream or a poll that names no topic gets these (a
      WebSocket client subscribes by message). */
  std::vector<std::string> topics;
  /** When the connection's authorization ends (the application's session or token expiry):
      the Verdict's expiry (Verdict::until). None: it does not end. */
  std::optional<std::chrono::system_clock::time_point> expires;
};

/// Options of a TicketBook.
struct TicketOptions {
  /** How long a ticket may wait to be redeemed: long enough for a page to open the stream it
      fetched the ticket for, short enough that one copied out of a log is worthless. */
  std::chrono::milliseconds lifetime = std::chrono::seconds(5);
  /** Tickets minted within one lifetime that the book keeps; mint() refuses beyond it, so a
      client that mints in a loop costs bounded memory. */
  std::size_t capacity = 100'000;
};

/** Single-use, short-lived tickets: how a browser's EventSource or WebSocket, which cannot send
    an Authorization header, authenticates without a long-lived token in its URL.

    The application mints a ticket behind its own authentication (a fetch() with the user's
    cookie or bearer token), the page passes it once in the URL (`/live?ticket=…`), and a channel
    whose ChannelOptions::tickets is this book redeems it while admitting the request. A ticket
    is worth one admission: it is consumed by its first use and worthless after it or after
    `lifetime`, so the copy a proxy or access log keeps is of no use.

    A ticket is 48 hex digits from the operating system's CSPRNG (getrandom(2) where there is
    one, else std::random_device): a 64-bit handle the book looks it up by and a 128-bit secret
    compared in constant time, so the lookup's timing tells nothing about the secret. Expired
    tickets are purged as the book is used (mint and redeem), oldest first, with no timer.

    Thread safety: every member function may be called from any thread.

    Example:
      auto tickets = std::make_shared<herald::TicketBook>();
      herald::Channel<herald::Sse> feed{hub, "/live", {.tickets = tickets}};
      server.handle("/ticket", [&](herald::Request const& req) {   // behind the app's own auth
        return text(*tickets->mint({.principal = user_of(req), .topics = {"orders"}}));
      });
*/
class TicketBook {
 public:
  using clock = std::chrono::steady_clock;

  /// Throws std::invalid_argument for a lifetime that is not positive or a zero capacity.
  explicit TicketBook(TicketOptions options = {}) : options_(options) {
    if (options_.lifetime.count() <= 0) throw std::invalid_argument("herald: TicketOptions::lifetime must be positive");
    if (options_.capacity == 0) throw std::invalid_argument("herald: TicketOptions::capacity must be positive");
  }

  TicketBook(TicketBook const&) = delete;
  TicketBook& operator=(TicketBook const&) = delete;

  /** A new ticket for `grant`, valid once within the lifetime; nullopt when `capacity` tickets
      were minted within the last lifetime (refuse the client, e.g. 503). */
  std::optional<std::string> mint(Grant grant) {
    Secret s = random_secret();
    auto const now = clock::now();
    std::lock_guard lock{mutex_};
    purge(now);
    if (order_.size() >= options_.capacity) return std::nullopt;
    // A handle already taken (2^-64 per pair) is drawn again rather than overwritten.
    while (entries_.count(s.handle) != 0) s = random_secret();
    entries_.emplace(s.handle, Entry{s.secret, now + options_.lifetime, std::move(grant)});
    order_.emplace_back(s.handle, now + options_.lifetime);
    return format(s);
  }

  /** Consume `ticket`: its grant if it is one this book minted, unused and unexpired; nullopt
      otherwise (unknown, malformed, used or expired: the caller cannot tell which, nor can the
      client). */
  std::optional<Grant> redeem(std::string_view ticket) {
    Secret s;
    bool const well_formed = parse(ticket, s);
    auto const now = clock::now();
    std::lock_guard lock{mutex_};
    purge(now);
    if (!well_formed) return std::nullopt;
    auto it = entries_.find(s.handle);
    if (it == entries_.end() || !equal(it->second.secret, s.secret) || it->second.expires <= now) return std::nullopt;
    Grant g = std::move(it->second.grant);
    entries_.erase(it);
    return g;
  }

  /// Tickets minted and neither redeemed nor purged yet.
  std::size_t outstanding() const {
    std::lock_guard lock{mutex_};
    return entries_.size();
  }

  TicketOptions const& options() const noexcept { return options_; }

 private:
  struct Secret {
    std::uint64_t handle = 0;
    std::array<std::uint64_t, 2> secret{};
  };
  struct Entry {
    std::array<std::uint64_t, 2> secret;
    clock::time_point expires;
    Grant grant;
  };

  static Secret random_secret() {
    std::array<std::uint64_t, 3> words{};
    fill_random(words.data(), sizeof words);
    return Secret{words[0], {words[1], words[2]}};
  }

  static void fill_random(void* out, std::size_t n) {
#if __has_include(<sys/random.h>)
    auto* p = static_cast<unsigned char*>(out);
    while (n != 0) {
      auto const got = ::getrandom(p, n, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) break;  // not available (an old kernel, a seccomp filter): random_device
      p += got;
      n -= static_cast<std::size_t>(got);
    }
    if (n == 0) return;
    out = p;
#endif
    std::random_device rd;
    auto* q = static_cast<unsigned char*>(out);
    while (n != 0) {
      auto v = rd();
      for (std::size_t i = 0; i < sizeof v && n != 0; ++i, --n, v >>= 8) *q++ = static_cast<unsigned char>(v);
    }
  }

  static std::string format(Secret const& s) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(48);
    for (std::uint64_t w : {s.handle, s.secret[0], s.secret[1]})
      for (int shift = 60; shift >= 0; shift -= 4) out += digits[(w >> shift) & 15];
    return out;
  }

  static bool parse(std::string_view t, Secret& s) {
    if (t.size() != 48) return false;
    std::array<std::uint64_t, 3> words{};
    for (std::size_t i = 0; i < 48; ++i) {
      char const c = t[i];
      unsigned v;
      if (c >= '0' && c <= '9') v = static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v = static_cast<unsigned>(c - 'a' + 10);
      else return false;
      words[i / 16] = words[i / 16] << 4 | v;
    }
    s = Secret{words[0], {words[1], words[2]}};
    return true;
  }

  // Constant time: the secret's bits are folded together before one comparison.
  static bool equal(std::array<std::uint64_t, 2> const& a, std::array<std::uint64_t, 2> const& b) noexcept {
    std::uint64_t diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ b[i];
    return diff == 0;
  }

  // Tickets expire in the order they were minted (one lifetime for the book): drop the front.
  // An entry of order_ whose ticket was redeemed finds it gone (or a newer one: left alone).
  void purge(clock::time_point now) {
    while (!order_.empty() && order_.front().second <= now) {
      auto it = entries_.find(order_.front().first);
      if (it != entries_.end() && it->second.expires == order_.front().second) entries_.erase(it);
      order_.pop_front();
    }
  }

  TicketOptions const options_;
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, Entry> entries_;
  std::deque<std::pair<std::uint64_t, clock::time_point>> order_;
};

}  // namespace herald
