// Shared by the bench servers (herald_server.cpp, raw_floor.cpp): command line, the /mark
// endpoint's counters, and the allocation counter of the *_allocs builds.
//
// /mark answers `allocs=<n> rss_kb=<kb>` and, under valgrind --tool=callgrind, dumps the
// profile collected since the previous mark: bench/run marks before and after a fixed workload,
// so the second dump holds exactly the instructions that workload cost.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HERALD_BENCH_CALLGRIND_DUMP(label) CALLGRIND_DUMP_STATS_AT(label)
#else
#define HERALD_BENCH_CALLGRIND_DUMP(label) ((void)0)
#endif

namespace bench {

/// Heap allocations since start; -1 when this build does not count them.
inline std::atomic<std::int64_t> allocations{0};

#if defined(HERALD_BENCH_COUNT_ALLOCS)
inline constexpr bool counting_allocations = true;
#else
inline constexpr bool counting_allocations = false;
#endif

inline long rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

/// The body of a /mark answer (also dumps the callgrind profile when running under it).
inline std::string mark() {
  HERALD_BENCH_CALLGRIND_DUMP("mark");
  std::string out = "allocs=";
  out += counting_allocations ? std::to_string(allocations.load(std::memory_order_relaxed)) : "-1";
  out += " rss_kb=" + std::to_string(rss_kb());
  return out;
}

struct Args {
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  std::size_t queue = 1024;  // per-connection queue bound (events)
  std::string redis;         // herald_server only: the Redis backplane's URL (empty: none)
};

inline Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view const k = argv[i];
    if (k == "--host") a.host = argv[i + 1];
    else if (k == "--port") a.port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
    else if (k == "--queue") a.queue = std::strtoul(argv[i + 1], nullptr, 10);
    else if (k == "--redis") a.redis = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      std::exit(2);
    }
  }
  return a;
}

/// The value of `key` in a request target's query, or `fallback`.
inline std::string_view query_arg(std::string_view target, std::string_view key, std::string_view fallback) {
  auto const q = target.find('?');
  if (q == std::string_view::npos) return fallback;
  auto rest = target.substr(q + 1);
  while (!rest.empty()) {
    auto const amp = rest.find('&');
    auto const pair = rest.substr(0, amp);
    auto const eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == key) return pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return fallback;
}

}  // namespace bench

#if defined(HERALD_BENCH_COUNT_ALLOCS) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
// Counting malloc: the executable's definitions interpose glibc's, so every allocation of the
// process (operator new included: libstdc++ calls malloc) is counted, then served by glibc.
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);

void* malloc(std::size_t n) {
  bench::allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t m) {
  bench::allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(n, m);
}
void* realloc(void* p, std::size_t n) {
  bench::allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, n);
}
void* memalign(std::size_t a, std::size_t n) {
  bench::allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(a, n);
}
void* aligned_alloc(std::size_t a, std::size_t n) {
  bench::allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, std::size_t a, std::size_t n) {
  bench::allocations.fetch_add(1, std::memory_order_relaxed);
  *out = __libc_memalign(a, n);
  return *out ? 0 : 12;  // ENOMEM
}
void free(void* p) { __libc_free(p); }
}
#endif
