// Fuzz target: the client's SSE parser (client/detail/sse_parser.hpp). The input is an event
// stream plus a size limit and split points. The stream is parsed three ways: whole, cut into
// chunks at the input's split points, and one byte at a time. The invariant is the parser's
// promise: how the bytes are chunked never changes the events, the retry values, the last event
// ID buffer or whether (and where) the size limit stops the stream.

#include <herald/client/detail/sse_parser.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"

namespace {

using herald::client::detail::SseDispatch;
using herald::client::detail::SseParser;

struct Seen {
  bool operator==(Seen const&) const = default;
  std::string last_event_id;
  bool has_id = false;
  std::string type;
  std::string data;
  long long retry = -1;  // a retry record when >= 0
};

struct Run {
  std::vector<Seen> seen;
  SseParser::Result result = SseParser::Result::ok;
  std::string last_event_id;
};

template <class Chunks>
Run parse(std::size_t max_event, Chunks const& chunks) {
  Run r;
  SseParser p{max_event};
  auto on_event = [&](SseDispatch const& d) {
    FUZZ_CHECK(d.data.size() <= max_event);
    r.seen.push_back({std::string(d.last_event_id), d.has_id, std::string(d.type), std::string(d.data)});
    return true;
  };
  auto on_retry = [&](std::chrono::milliseconds ms) {
    FUZZ_CHECK(ms.count() >= 0);
    r.seen.push_back({.retry = static_cast<long long>(ms.count())});
  };
  for (std::string_view chunk : chunks) {
    r.result = p.feed(chunk, on_event, on_retry);
    if (r.result != SseParser::Result::ok) break;
  }
  r.last_event_id = p.last_event_id();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  FuzzedDataProvider in{data, size};
  std::size_t const max_event = in.ConsumeIntegralInRange<std::size_t>(1, 512);
  std::size_t const splits = in.ConsumeIntegralInRange<std::size_t>(0, 64);
  std::vector<std::size_t> cuts;
  for (std::size_t i = 0; i < splits; ++i) cuts.push_back(in.ConsumeIntegral<std::uint16_t>());
  std::string const stream = in.ConsumeRemainingBytesAsString();

  Run const whole = parse(max_event, std::vector<std::string_view>{stream});

  std::vector<std::string_view> chunks;
  std::string_view rest = stream;
  for (std::size_t c : cuts) {
    std::size_t const n = rest.empty() ? 0 : c % (rest.size() + 1);
    chunks.push_back(rest.substr(0, n));  // empty chunks too: a read may return nothing new
    rest.remove_prefix(n);
  }
  chunks.push_back(rest);
  Run const chunked = parse(max_event, chunks);

  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < stream.size(); ++i) bytes.push_back(std::string_view(stream).substr(i, 1));
  Run const bytewise = parse(max_event, bytes);

  FUZZ_CHECK(chunked.result == whole.result);
  FUZZ_CHECK(bytewise.result == whole.result);
  FUZZ_CHECK(chunked.seen == whole.seen);
  FUZZ_CHECK(bytewise.seen == whole.seen);
  if (whole.result == SseParser::Result::ok) {
    FUZZ_CHECK(chunked.last_event_id == whole.last_event_id);
    FUZZ_CHECK(bytewise.last_event_id == whole.last_event_id);
  }
  return 0;
}
