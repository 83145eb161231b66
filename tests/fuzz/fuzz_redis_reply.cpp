// Fuzz target: the Redis backplane's reading of Redis' replies (detail/redis_reply.hpp). The
// input's first bytes choose what the reply answers (topics asked for, a limit, the position in
// the log); the rest is RESP, parsed by hiredis' own reader (as the backplane's connection does)
// into replies, each copied into a RedisValue and read as every reply the backplane interprets:
// the history script's, XREAD's of the log, TIME's, and a publish's id. Invariants: nothing
// throws or reads out of bounds; an accepted history is in id order and complete up to
// complete_to <= last; the log's events come in strictly increasing id order above where the
// node stood, a break reports where from, and `applied` ends at the last one; a TIME is a
// non-negative count of µs.

#include <herald/detail/redis_reply.hpp>

#include <hiredis/hiredis.h>

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.hpp"

namespace {

using herald::detail::RedisValue;

// hiredis 0.14 allocates an array's element table as soon as it reads "*<n>", before the
// elements arrive, and knows no bound: a Redis server is trusted not to claim billions. Bound it
// here, so that the fuzzer explores herald's code instead of hiredis' allocation.
redisReplyObjectFunctions const* hiredis_functions = nullptr;
void* bounded_array(redisReadTask const* task, int elements) {
  if (elements > 4096) return nullptr;  // the reader fails the input as out of memory
  return hiredis_functions->createArray(task, elements);
}

void check_history(RedisValue const& v, std::vector<std::string> const& topics, std::size_t limit) {
  herald::BackplaneHistory out;
  if (!herald::detail::parse_redis_history(v, topics, limit, out)) return;
  FUZZ_CHECK(out.complete_to <= out.last);
  for (std::size_t i = 0; i < out.events.size(); ++i) {
    FUZZ_CHECK(out.events[i].id <= out.complete_to);
    if (i > 0) FUZZ_CHECK(out.events[i - 1].id <= out.events[i].id);
  }
}

void check_log(RedisValue const& v, herald::EventId applied) {
  auto const start = applied;
  auto runs = herald::detail::read_redis_log(v, applied);
  herald::EventId last = start;
  for (auto const& run : runs) {
    FUZZ_CHECK(!run.events.empty());  // a break is always followed by the entry that showed it
    // Lost: the log went back below where the node stood, which is where it reports from.
    if (run.broken) FUZZ_CHECK(run.lost ? run.position == last : run.position > last);
    for (auto const& ev : run.events) {
      FUZZ_CHECK(ev.id > last);
      last = ev.id;
    }
  }
  FUZZ_CHECK(applied == last);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  FuzzedDataProvider in{data, size};
  std::vector<std::string> topics;
  for (auto n = in.ConsumeIntegralInRange<int>(0, 3); n > 0; --n) topics.push_back(in.ConsumeRandomLengthString(8));
  auto const limit = in.ConsumeIntegralInRange<std::size_t>(0, 4);
  auto const applied = in.ConsumeIntegral<herald::EventId>();
  auto const resp = in.ConsumeRemainingBytesAsString();

  redisReader* reader = redisReaderCreate();
  FUZZ_CHECK(reader != nullptr);
  hiredis_functions = reader->fn;
  redisReplyObjectFunctions functions = *reader->fn;
  functions.createArray = bounded_array;
  reader->fn = &functions;
  if (redisReaderFeed(reader, resp.data(), resp.size()) == REDIS_OK) {
    // Every reply the bytes hold, until they end or hiredis finds them malformed.
    for (int replies = 0; replies < 64; ++replies) {
      void* raw = nullptr;
      if (redisReaderGetReply(reader, &raw) != REDIS_OK || raw == nullptr) break;
      auto const v = RedisValue::from(static_cast<redisReply const*>(raw));
      reader->fn->freeObject(raw);
      FUZZ_CHECK(v.type != RedisValue::Type::none);
      check_history(v, topics, limit);
      check_log(v, applied);
      if (auto const t = herald::detail::parse_redis_time(v)) FUZZ_CHECK(*t >= 0);
      if (auto const id = herald::detail::parse_redis_id(v.str)) FUZZ_CHECK(v.str.find_first_of("0123456789") == 0);
    }
  }
  redisReaderFree(reader);
  return 0;
}
