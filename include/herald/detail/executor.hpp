#pragma once

#include <herald/config.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/detail/concurrency_hint.hpp>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <optional>
#include <type_traits>
#include <utility>

namespace herald::inline v0::detail {

/** Whether `ex` is the executor of an io_context made to be run by one thread
    (`net::io_context ioc{1}`, or an unlocked concurrency hint). Its handlers never run
    concurrently, so it serializes a connection's handlers as a strand would, and a strand
    would only add cost: with hundreds of connections, every strand wake-up allocates, because
    Asio recycles at most two blocks per thread. */
inline bool single_threaded(net::any_io_executor const& ex) {
#if defined(BOOST_ASIO_HAS_IOCP)
  (void)ex;
  return false;
#else
  auto const* io = ex.target<net::io_context::executor_type>();
  if (!io) return false;
  // On POSIX an io_context's implementation is its scheduler service.
  auto& ctx = io->context();
  if (!net::has_service<net::detail::scheduler>(ctx)) return false;
  int const hint = net::use_service<net::detail::scheduler>(ctx).concurrency_hint();
  return hint == 1 || (BOOST_ASIO_CONCURRENCY_HINT_IS_SPECIAL(hint) &&
                       !BOOST_ASIO_CONCURRENCY_HINT_IS_LOCKING(SCHEDULER, hint));
#endif
}

/** An executor that runs a new connection's handlers one at a time: the io_context's own
    executor when it is single-threaded, else a new strand. When `ex` is an io_context's or a
    thread_pool's executor, the strand wraps that concrete executor, so it fits
    any_io_executor's small-object buffer and never type-erases its inner executor: a
    strand<any_io_executor> heap-allocates on every prefer/require/query Asio makes per
    operation (bench/results/analysis.md, section 1). */
inline net::any_io_executor new_strand(net::any_io_executor const& ex) {
  if (single_threaded(ex)) return ex;
  if (auto const* io = ex.target<net::io_context::executor_type>()) return net::make_strand(*io);
  if (auto const* pool = ex.target<net::thread_pool::executor_type>()) return net::make_strand(*pool);
  return net::make_strand(ex);
}

/** An executor that runs one handler at a time: `ex` itself when it is a strand already (as
    herald::Server's connections are) or single-threaded, so handlers do not pay for two
    strands, else a new strand on it. */
inline net::any_io_executor serialized(net::any_io_executor const& ex) {
  if (ex.target<net::strand<net::io_context::executor_type>>() ||
      ex.target<net::strand<net::thread_pool::executor_type>>() ||
      ex.target<net::strand<net::any_io_executor>>())
    return ex;
  return new_strand(ex);
}

/** The executor under a strand new_strand() or serialized() returned (`ex` itself when it is
    none): where work that belongs to no one connection runs, such as the loop's timer. */
inline net::any_io_executor inner_executor(net::any_io_executor const& ex) {
  if (auto const* s = ex.target<net::strand<net::io_context::executor_type>>()) return s->get_inner_executor();
  if (auto const* s = ex.target<net::strand<net::thread_pool::executor_type>>()) return s->get_inner_executor();
  if (auto const* s = ex.target<net::strand<net::any_io_executor>>()) return s->get_inner_executor();
  return ex;
}

/** A TCP socket on an io_context's own executor type. An idle connection keeps a read pending
    for as long as it lives, and an operation carries its socket's executor: with
    any_io_executor a readiness wait is 208 bytes, with this one 104; the socket itself is 48
    bytes smaller. */
using IoSocket = net::basic_stream_socket<net::ip::tcp, net::io_context::executor_type>;

/// Whether a session's stream is a plain TCP socket (readiness reads, non-blocking sends).
template <class Stream>
inline constexpr bool plain_socket_v =
    std::is_same_v<Stream, net::ip::tcp::socket> || std::is_same_v<Stream, IoSocket>;

/** `s` moved onto an IoSocket, when it runs on an io_context (directly or through a strand);
    else nullopt and `s` is left as it was. The descriptor is handed over, not duplicated. */
inline std::optional<IoSocket> to_io_socket(net::ip::tcp::socket& s) {
  auto const ex = inner_executor(s.get_executor());
  auto const* io = ex.target<net::io_context::executor_type>();
  boost::system::error_code ec;
  auto const local = s.local_endpoint(ec);
  if (!io || ec) return std::nullopt;
  auto const fd = s.release(ec);
  if (ec) return std::nullopt;
  std::optional<IoSocket> out{std::in_place, *io};
  if (out->assign(local.protocol(), fd, ec); ec) {
    // Not registered with the reactor: back to where it came from, so it is closed as before.
    s.assign(local.protocol(), fd, ec);
    return std::nullopt;
  }
  return out;
}

/** net::post(ex, handler) through `ex`'s concrete type when it is one new_strand() makes. A
    post through any_io_executor type-erases the handler into memory from Asio's recycling
    allocator, whatever allocator the handler carries, and that allocator keeps only two blocks
    per thread: with hundreds of connections waking at once, every post went to malloc. */
template <class Handler>
void post_to(net::any_io_executor const& ex, Handler&& handler) {
  if (auto const* io = ex.target<net::io_context::executor_type>())
    return net::post(*io, std::forward<Handler>(handler));
  if (auto const* strand = ex.target<net::strand<net::io_context::executor_type>>())
    return net::post(*strand, std::forward<Handler>(handler));
  net::post(ex, std::forward<Handler>(handler));
}

}  // namespace herald::detail
