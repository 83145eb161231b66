#pragma once

#include <herald/config.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/detail/concurrency_hint.hpp>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

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
