// bench/loadgen: the load generator of herald's benchmark suite (bench/run drives it).
//
// Opens N WebSocket, SSE or long-poll subscribers against any server under test, optionally
// publishes M messages (HTTP POST or over its own WebSocket) at a fixed rate or closed-loop, and
// reports delivered messages/s, publish->receive latency (p50/p99/p999/max), connection errors,
// and per-subscriber loss (gaps, duplicates, missing tail), so that speed never hides loss.
//
// Every message carries its sequence number and send time in the payload:
//   {"s":<seq>,"t":<steady_clock ns>,"p":"xxxx…"}   (padded to --payload bytes)
// Subscribers find that pattern in whatever framing the server wraps it in (WebSocket frames,
// SSE `data:` lines, a JSON envelope, chunked encoding, long-poll bodies) with a streaming
// matcher that skips to each '{' with memchr, so the cost per message is a few dozen bytes.
//
// Efficiency: one thread, one io_context (epoll), every subscriber's buffers allocated before the
// run; no allocation per message on the receive path. Closed-loop mode (--rate 0) keeps at most
// --window messages published but not yet received by every subscriber, so a run measures the
// server's fan-out capacity without overrunning any bounded queue.
//
// Output: a human summary on stderr and one machine-readable line on stdout:
//   RESULT key=value key=value …
//
// Example (1,000 WebSocket subscribers of herald, closed-loop publishing for 5 s):
//   herald_bench_loadgen --port 8080 --proto ws --path '/ws?topic=t' --ready-marker subscribed
//     --clients 1000 --pub http --pub-path '/pub?topic=t' --duration 5
//
// Two servers (a hub spread over several processes, bench/run scenario f): --port is where the
// subscribers connect, --pub-port where the publisher (and --mark-path) does. --rss-pid names
// the subscribers' server (RSS, server_cpu_s); --cpu-pids P,Q,… names the other processes that
// serve the run (the publishing node, Redis): their CPU over the same window is reported as
// other_cpu_s (and per process as cpu_by_pid), and all_server_cpu_us_per_msg charges the
// deliveries with the whole server side.
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <netinet/in.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;

namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count();
}

// --- options ---------------------------------------------------------------------------------

enum class Proto { ws, sse, poll };
enum class PubMode { none, http, ws };
enum class PollStyle { herald, nchan, plain };

struct Options {
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  Proto proto = Proto::ws;
  std::string path = "/";
  std::string subscribe_msg;  // WS: text frame sent after the handshake
  std::string ready_marker;   // WS: ready once a frame containing this arrives
  PollStyle poll_style = PollStyle::herald;
  std::size_t clients = 10;
  int sources = 1;              // 127.0.0.1 .. 127.0.0.<sources>
  std::size_t connect_batch = 256;  // connections being set up at once
  PubMode pub = PubMode::none;
  unsigned short pub_port = 0;
  std::string pub_path = "/pub";
  std::uint64_t messages = 0;  // 0: until --duration
  double rate = 0;             // messages/s; 0: closed loop
  std::size_t window = 64;     // messages published but not yet received by every subscriber
  std::size_t pipeline = 32;   // HTTP publish requests in flight
  std::size_t payload = 64;
  double duration = 5;         // publishing stops after this many seconds
  double drain = 5;            // then at most this long for the rest to arrive
  double connect_timeout = 30;
  double settle = 0.2;         // after every subscriber is ready, before publishing
  double hold = 0;             // idle mode: keep the connections this long
  int rss_pid = 0;
  std::vector<int> cpu_pids;   // other server-side processes whose CPU is reported
  std::string mark_path;       // GET before and after publishing (server counters)
  std::size_t read_buffer = 16 * 1024;
  bool quiet = false;
};

[[noreturn]] void usage(char const* why) {
  std::fprintf(stderr, "loadgen: %s\n(see the comment at the top of bench/loadgen.cpp)\n", why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view const a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + std::string(a)).c_str());
      return argv[++i];
    };
    if (a == "--host") o.host = val();
    else if (a == "--port") o.port = static_cast<unsigned short>(std::stoul(val()));
    else if (a == "--proto") {
      auto v = val();
      o.proto = v == "ws" ? Proto::ws : v == "sse" ? Proto::sse : v == "poll" ? Proto::poll : (usage("--proto ws|sse|poll"), Proto::ws);
    } else if (a == "--path") o.path = val();
    else if (a == "--subscribe-msg") o.subscribe_msg = val();
    else if (a == "--ready-marker") o.ready_marker = val();
    else if (a == "--poll-style") {
      auto v = val();
      o.poll_style = v == "herald" ? PollStyle::herald : v == "nchan" ? PollStyle::nchan : v == "plain" ? PollStyle::plain : (usage("--poll-style herald|nchan|plain"), PollStyle::plain);
    } else if (a == "--clients") o.clients = std::stoul(val());
    else if (a == "--sources") o.sources = std::max(1, std::stoi(val()));
    else if (a == "--connect-batch") o.connect_batch = std::max<std::size_t>(1, std::stoul(val()));
    else if (a == "--pub") {
      auto v = val();
      o.pub = v == "http" ? PubMode::http : v == "ws" ? PubMode::ws : v == "none" ? PubMode::none : (usage("--pub http|ws|none"), PubMode::none);
    } else if (a == "--pub-port") o.pub_port = static_cast<unsigned short>(std::stoul(val()));
    else if (a == "--pub-path") o.pub_path = val();
    else if (a == "--messages") o.messages = std::stoull(val());
    else if (a == "--rate") o.rate = std::stod(val());
    else if (a == "--window") o.window = std::max<std::size_t>(1, std::stoul(val()));
    else if (a == "--pipeline") o.pipeline = std::max<std::size_t>(1, std::stoul(val()));
    else if (a == "--payload") o.payload = std::stoul(val());
    else if (a == "--duration") o.duration = std::stod(val());
    else if (a == "--drain") o.drain = std::stod(val());
    else if (a == "--connect-timeout") o.connect_timeout = std::stod(val());
    else if (a == "--settle") o.settle = std::stod(val());
    else if (a == "--hold") o.hold = std::stod(val());
    else if (a == "--rss-pid") o.rss_pid = std::stoi(val());
    else if (a == "--cpu-pids") {
      auto v = val();
      for (std::size_t at = 0; at < v.size();) {
        auto const comma = std::min(v.find(',', at), v.size());
        if (comma > at) o.cpu_pids.push_back(std::stoi(v.substr(at, comma - at)));
        at = comma + 1;
      }
    }
    else if (a == "--mark-path") o.mark_path = val();
    else if (a == "--read-buffer") o.read_buffer = std::max<std::size_t>(512, std::stoul(val()));
    else if (a == "--quiet") o.quiet = true;
    else if (a == "-h" || a == "--help") usage("help");
    else usage(("unknown option " + std::string(a)).c_str());
  }
  if (o.port == 0) usage("--port is required");
  if (o.pub_port == 0) o.pub_port = o.port;
  if (o.payload < 48) o.payload = 48;
  return o;
}

/// CPU seconds (user + system) a process has used, from /proc/PID/stat; -1 if unknown.
double read_cpu_s(int pid) {
  if (pid <= 0) return -1;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto const close = all.rfind(')');
  if (close == std::string::npos) return -1;
  // Fields after the command: state is field 3; utime and stime are fields 14 and 15.
  char const* p = all.c_str() + close + 2;
  unsigned long long v[13] = {};
  char state = 0;
  if (std::sscanf(p, "%c %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &state, &v[0], &v[1], &v[2], &v[3],
                  &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11]) < 13)
    return -1;
  return static_cast<double>(v[10] + v[11]) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double self_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

long read_rss_kb(int pid) {
  if (pid <= 0) return -1;
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

/// Raise RLIMIT_NOFILE to what the run needs; as root the hard limit is raised too.
void raise_nofile(std::size_t need) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur >= need) return;
  rlimit want = rl;
  want.rlim_cur = need;
  if (want.rlim_max < need) want.rlim_max = need;
  if (setrlimit(RLIMIT_NOFILE, &want) != 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    std::fprintf(stderr, "loadgen: RLIMIT_NOFILE is %llu (wanted %zu)\n",
                 static_cast<unsigned long long>(rl.rlim_cur), need);
  }
}

// --- latency histogram (log-linear, ~1.5% resolution) ----------------------------------------

class Histogram {
 public:
  void add(std::int64_t ns) {
    auto v = static_cast<std::uint64_t>(ns < 0 ? 0 : ns);
    ++counts_[index(v)];
    ++n_;
    if (v > max_) max_ = v;
  }
  std::uint64_t count() const { return n_; }
  double percentile_us(double p) const {
    if (n_ == 0) return -1;
    auto const want = static_cast<std::uint64_t>(p / 100.0 * static_cast<double>(n_ - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= want) return static_cast<double>(std::min(upper(i), max_)) / 1000.0;
    }
    return static_cast<double>(max_) / 1000.0;
  }
  double max_us() const { return static_cast<double>(max_) / 1000.0; }

 private:
  static constexpr std::size_t buckets = 128 + 64 * 58;
  static std::size_t index(std::uint64_t v) {
    if (v < 128) return v;
    int const msb = 63 - __builtin_clzll(v);
    int const shift = msb - 6;
    return 128 + static_cast<std::size_t>(shift - 1) * 64 + ((v >> shift) - 64);
  }
  static std::uint64_t upper(std::size_t i) {
    if (i < 128) return i;
    auto const shift = (i - 128) / 64 + 1;
    auto const top = (i - 128) % 64 + 64;
    return ((top + 1) << shift) - 1;
  }
  std::array<std::uint64_t, buckets> counts_{};
  std::uint64_t n_ = 0;
  std::uint64_t max_ = 0;
};

// --- the shared run state ----------------------------------------------------------------------

struct Run;

/** Finds {"s":<digits>,"t":<digits> in a byte stream cut at arbitrary points. */
class Matcher {
 public:
  template <class Emit>
  void feed(char const* p, std::size_t n, Emit&& emit) {
    char const* const end = p + n;
    while (p < end) {
      if (st_ == 0) {
        auto const* q = static_cast<char const*>(std::memchr(p, '{', static_cast<std::size_t>(end - p)));
        if (!q) return;
        p = q + 1;
        st_ = 1;
        continue;
      }
      char const c = *p++;
      switch (st_) {
        case 1: st_ = c == '"' ? 2 : 0; break;
        case 2: st_ = c == 's' ? 3 : 0; break;
        case 3: st_ = c == '"' ? 4 : 0; break;
        case 4: st_ = c == ':' ? 5 : 0; seq_ = 0; digits_ = 0; break;
        case 5:
          if (c >= '0' && c <= '9') { seq_ = seq_ * 10 + static_cast<std::uint64_t>(c - '0'); ++digits_; }
          else st_ = (c == ',' && digits_) ? 6 : 0;
          break;
        case 6: st_ = c == '"' ? 7 : 0; break;
        case 7: st_ = c == 't' ? 8 : 0; break;
        case 8: st_ = c == '"' ? 9 : 0; break;
        case 9: st_ = c == ':' ? 10 : 0; ts_ = 0; digits_ = 0; break;
        case 10:
          if (c >= '0' && c <= '9') { ts_ = ts_ * 10 + (c - '0'); ++digits_; }
          else {
            if (digits_) emit(seq_, ts_);
            st_ = 0;
          }
          break;
        default: st_ = 0;
      }
      if (st_ == 0 && c == '{') st_ = 1;
    }
  }

 private:
  int st_ = 0;
  int digits_ = 0;
  std::uint64_t seq_ = 0;
  std::int64_t ts_ = 0;
};

/** Streaming decoder of HTTP/1.1 chunked transfer coding. */
class Dechunker {
 public:
  template <class Sink>
  bool feed(char const* p, std::size_t n, Sink&& sink) {
    char const* const end = p + n;
    while (p < end) {
      switch (st_) {
        case 0: {  // size line
          char const c = *p++;
          if (std::isxdigit(static_cast<unsigned char>(c))) {
            size_ = size_ * 16 + static_cast<std::size_t>(std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10));
          } else if (c == '\n') {
            if (size_ == 0) { st_ = 3; break; }
            st_ = 1;
          } else if (c != '\r' && c != ';' && !ext_) {
            return false;
          } else if (c == ';') {
            ext_ = true;
          }
          break;
        }
        case 1: {  // data
          auto const take = std::min<std::size_t>(size_, static_cast<std::size_t>(end - p));
          sink(p, take);
          p += take;
          size_ -= take;
          if (size_ == 0) st_ = 2;
          break;
        }
        case 2: {  // CRLF after data
          char const c = *p++;
          if (c == '\n') { st_ = 0; ext_ = false; }
          break;
        }
        case 3:  // trailer / end: ignore
          ++p;
          done_ = true;
          break;
      }
    }
    return true;
  }
  bool done() const { return done_; }
  void reset() { *this = Dechunker{}; }

 private:
  int st_ = 0;
  std::size_t size_ = 0;
  bool ext_ = false;
  bool done_ = false;
};

/** Tracks which messages one subscriber saw. */
struct SeqTrack {
  std::uint64_t last = 0;
  std::uint64_t received = 0;
  std::uint64_t gaps = 0;     // missing messages between received ones
  std::uint64_t dups = 0;     // a sequence number at or below the last one seen
  std::uint64_t first = 0;
};

/// One HTTP response in a byte stream (for the publisher and long polls).
struct ResponseHead {
  int status = 0;
  std::optional<std::size_t> content_length;
  bool chunked = false;
  bool close = false;
  std::string last_modified;
  std::string etag;
};

std::string_view header_value(std::string_view head, std::string_view name) {
  std::size_t pos = 0;
  while (true) {
    auto const eol = head.find("\r\n", pos);
    if (eol == std::string_view::npos) return {};
    auto const line = head.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.size() <= name.size() || line[name.size()] != ':') continue;
    bool same = true;
    for (std::size_t i = 0; i < name.size() && same; ++i)
      same = std::tolower(static_cast<unsigned char>(line[i])) == std::tolower(static_cast<unsigned char>(name[i]));
    if (!same) continue;
    auto v = line.substr(name.size() + 1);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    return v;
  }
}

ResponseHead parse_head(std::string_view head) {
  ResponseHead h;
  if (head.size() > 12 && head.substr(0, 5) == "HTTP/") h.status = std::atoi(std::string(head.substr(9, 3)).c_str());
  auto const cl = header_value(head, "Content-Length");
  if (!cl.empty()) h.content_length = std::strtoull(std::string(cl).c_str(), nullptr, 10);
  auto const te = header_value(head, "Transfer-Encoding");
  h.chunked = te.find("chunked") != std::string_view::npos;
  auto const conn = header_value(head, "Connection");
  h.close = conn == "close" || conn == "Close";
  h.last_modified = std::string(header_value(head, "Last-Modified"));
  h.etag = std::string(header_value(head, "Etag"));
  return h;
}

constexpr char ws_key_request[] =
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n";

/// A masked client->server text (or control) frame.
std::string ws_frame(std::string_view payload, std::uint8_t opcode = 0x1) {
  std::string f;
  f.reserve(payload.size() + 14);
  f += static_cast<char>(0x80 | opcode);
  if (payload.size() < 126) {
    f += static_cast<char>(0x80 | payload.size());
  } else if (payload.size() < 65536) {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>((payload.size() >> 8) & 0xff);
    f += static_cast<char>(payload.size() & 0xff);
  } else {
    f += static_cast<char>(0x80 | 127);
    for (int i = 7; i >= 0; --i) f += static_cast<char>((payload.size() >> (8 * i)) & 0xff);
  }
  static constexpr unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  f.append(reinterpret_cast<char const*>(mask), 4);
  for (std::size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ static_cast<char>(mask[i % 4]));
  return f;
}

// --- subscribers -------------------------------------------------------------------------------

class Subscriber;

struct Run {
  Options const& o;
  net::io_context& ioc;
  std::vector<std::unique_ptr<Subscriber>> subs;
  Histogram latency;
  std::int64_t recv_now = 0;  // time of the current read completion

  // connection phase
  std::size_t next_connect = 0;
  std::size_t connecting = 0;
  std::size_t ready = 0;
  std::size_t failed = 0;       // never became ready
  std::size_t dropped = 0;      // ready, then lost
  std::uint64_t conn_errors = 0;
  std::string first_error;

  // publishing
  bool publishing = false;
  std::uint64_t published = 0;
  std::uint64_t pub_errors = 0;
  std::uint64_t pub_acked = 0;
  std::int64_t pub_start = 0;
  std::int64_t pub_end = 0;
  std::int64_t last_recv = 0;
  std::uint64_t deliveries = 0;
  std::uint64_t expected_subs = 0;
  // closed loop: received-by-everyone floor
  std::vector<std::uint32_t> ring;
  std::uint64_t floor = 0;
  std::int64_t all_delivered_at = 0;

  void error(std::string const& what) {
    ++conn_errors;
    if (first_error.empty()) first_error = what;
  }

  void received(SeqTrack& t, std::uint64_t seq, std::int64_t ts) {
    if (seq == 0) return;
    if (seq <= t.last) {
      ++t.dups;
      return;
    }
    if (t.received == 0) t.first = seq;
    else if (seq != t.last + 1) t.gaps += seq - t.last - 1;
    t.last = seq;
    ++t.received;
    ++deliveries;
    last_recv = recv_now;
    latency.add(recv_now - ts);
    if (!ring.empty() && seq > floor && seq <= floor + ring.size()) {
      auto& c = ring[seq & (ring.size() - 1)];
      ++c;
      while (floor < published && ring[(floor + 1) & (ring.size() - 1)] >= expected_subs) {
        ring[(floor + 1) & (ring.size() - 1)] = 0;
        ++floor;
        all_delivered_at = recv_now;
      }
    }
  }

  void subscriber_ready();
  void subscriber_failed(std::string const& why);
  void connect_more();
};

class Subscriber {
 public:
  Subscriber(Run& run, std::size_t index)
      : run_(run), o_(run.o), index_(index), socket_(run.ioc), buf_(new char[run.o.read_buffer]) {}

  SeqTrack track;
  bool ready() const { return ready_; }

  void start() {
    error_code ec;
    socket_.open(tcp::v4(), ec);
    if (ec) return fail("socket: " + ec.message());
    if (o_.sources > 1) {
      int one = 1;
      ::setsockopt(socket_.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      auto const src = net::ip::make_address_v4(static_cast<net::ip::address_v4::uint_type>(
          (127u << 24) | (1u + static_cast<unsigned>(index_ % static_cast<std::size_t>(o_.sources)))));
      socket_.bind(tcp::endpoint(src, 0), ec);
      if (ec) return fail("bind: " + ec.message());
    }
    tcp::endpoint const ep{net::ip::make_address(o_.host), o_.port};
    socket_.async_connect(ep, [this](error_code ec) {
      if (ec) return fail("connect: " + ec.message());
      socket_.set_option(tcp::no_delay(true), ec);
      send_request();
      read();
      // A long poll is ready once its request is on the wire: the server holds it.
      if (o_.proto == Proto::poll) become_ready();
    });
  }

  void close() {
    error_code ec;
    closing_ = true;
    socket_.close(ec);
  }

 private:
  void send_request() {
    out_.clear();
    out_ += "GET ";
    if (o_.proto == Proto::poll) {
      // {cursor} in the path is replaced by the last answer's cursor (herald style polling);
      // before the first answer, the whole `&name={cursor}` parameter is left out.
      auto const at = o_.path.find("{cursor}");
      if (at == std::string::npos) {
        out_ += o_.path;
      } else if (!cursor_.empty()) {
        out_ += o_.path.substr(0, at) + cursor_ + o_.path.substr(at + 8);
      } else {
        auto const param = o_.path.find_last_of("&?", at);
        std::string p = o_.path.substr(0, param == std::string::npos ? at : param);
        if (param != std::string::npos && o_.path[param] == '?') p += '?';
        p += o_.path.substr(at + 8);
        out_ += p;
      }
    } else {
      out_ += o_.path;
    }
    out_ += " HTTP/1.1\r\nHost: ";
    out_ += o_.host;
    out_ += ':';
    out_ += std::to_string(o_.port);
    out_ += "\r\n";
    if (o_.proto == Proto::ws) out_ += ws_key_request;
    if (o_.proto == Proto::sse) out_ += "Accept: text/event-stream\r\nCache-Control: no-cache\r\n";
    if (o_.proto == Proto::poll && o_.poll_style == PollStyle::nchan && !last_modified_.empty()) {
      out_ += "If-Modified-Since: " + last_modified_ + "\r\n";
      out_ += "If-None-Match: " + etag_ + "\r\n";
    }
    out_ += "\r\n";
    write_out();
  }

  void write_out() {
    if (writing_) {
      more_out_ = true;
      return;
    }
    writing_ = true;
    wbuf_.swap(out_);
    out_.clear();
    net::async_write(socket_, net::buffer(wbuf_), [this](error_code ec, std::size_t) {
      writing_ = false;
      if (ec) return lost("write: " + ec.message());
      if (more_out_) {
        more_out_ = false;
        write_out();
      }
    });
  }

  void read() {
    socket_.async_read_some(net::buffer(buf_.get(), o_.read_buffer), [this](error_code ec, std::size_t n) {
      if (ec) {
        if (closing_) return;
        return lost(ec == net::error::eof ? "closed by server" : "read: " + ec.message());
      }
      run_.recv_now = now_ns();
      if (!consume(buf_.get(), n)) return;
      read();
    });
  }

  /// Returns false when the connection ended.
  bool consume(char const* p, std::size_t n) {
    if (!in_body_) {
      head_.append(p, n);
      auto const end = head_.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (head_.size() > 64 * 1024) return lost("response header too large"), false;
        return true;
      }
      auto const head = parse_head(std::string_view(head_).substr(0, end + 4));
      std::string rest = head_.substr(end + 4);
      head_.clear();
      if (!on_head(head)) return false;
      in_body_ = true;
      // A poll answer may be complete with its header (Content-Length: 0, 304).
      if (!rest.empty() || o_.proto == Proto::poll) return body(rest.data(), rest.size());
      return true;
    }
    return body(p, n);
  }

  bool on_head(ResponseHead const& h) {
    chunked_ = h.chunked;
    dechunk_.reset();
    switch (o_.proto) {
      case Proto::ws:
        if (h.status != 101) return fail("websocket handshake answered " + std::to_string(h.status)), false;
        if (!o_.subscribe_msg.empty()) {
          out_ += ws_frame(o_.subscribe_msg);
          write_out();
        }
        if (o_.ready_marker.empty()) become_ready();
        return true;
      case Proto::sse:
        if (h.status != 200) return fail("SSE request answered " + std::to_string(h.status)), false;
        become_ready();
        return true;
      case Proto::poll:
        poll_head_ = h;
        poll_body_.clear();
        if (h.status != 200 && h.status != 304 && h.status != 408 && h.status != 204)
          return lost("poll answered " + std::to_string(h.status)), false;
        if (h.status == 200 && o_.poll_style == PollStyle::nchan) {
          last_modified_ = h.last_modified;
          etag_ = h.etag;
        }
        return true;
    }
    return true;
  }

  bool body(char const* p, std::size_t n) {
    switch (o_.proto) {
      case Proto::sse:
        if (chunked_) {
          if (!dechunk_.feed(p, n, [&](char const* d, std::size_t k) { match(d, k); }))
            return lost("bad chunked encoding"), false;
        } else {
          match(p, n);
        }
        return true;
      case Proto::ws:
        return ws_bytes(reinterpret_cast<unsigned char const*>(p), n);
      case Proto::poll:
        return poll_bytes(p, n);
    }
    return true;
  }

  void match(char const* p, std::size_t n) {
    matcher_.feed(p, n, [&](std::uint64_t seq, std::int64_t ts) { run_.received(track, seq, ts); });
  }

  // WebSocket frames from the server (unmasked). Payload bytes of data frames go to the
  // matcher as they arrive; pings are answered; a close frame ends the connection.
  bool ws_bytes(unsigned char const* p, std::size_t n) {
    unsigned char const* const end = p + n;
    while (p < end) {
      if (remaining_ == 0 && hdr_len_ < hdr_need_) {
        hdr_[hdr_len_++] = *p++;
        if (hdr_len_ == 2) {
          auto const len7 = hdr_[1] & 0x7f;
          hdr_need_ = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((hdr_[1] & 0x80) ? 4 : 0);
        }
        if (hdr_len_ < hdr_need_) continue;
        std::uint64_t len = hdr_[1] & 0x7f;
        if (len == 126) len = (std::uint64_t{hdr_[2]} << 8) | hdr_[3];
        else if (len == 127) {
          len = 0;
          for (int i = 0; i < 8; ++i) len = (len << 8) | hdr_[2 + i];
        }
        opcode_ = hdr_[0] & 0x0f;
        remaining_ = len;
        control_.clear();
        hdr_len_ = 0;
        hdr_need_ = 2;
        if (opcode_ == 0x8) return lost("server sent close"), false;
        if (len == 0) {
          if (!frame_done()) return false;
        }
        continue;
      }
      auto const take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, static_cast<std::uint64_t>(end - p)));
      auto const* d = reinterpret_cast<char const*>(p);
      if (opcode_ >= 0x8) control_.append(d, take);
      else {
        if (!ready_ && !o_.ready_marker.empty()) control_.append(d, take);
        match(d, take);
      }
      p += take;
      remaining_ -= take;
      if (remaining_ == 0 && !frame_done()) return false;
    }
    return true;
  }

  bool frame_done() {
    if (opcode_ == 0x9) {  // ping -> pong
      out_ += ws_frame(control_, 0xA);
      write_out();
    } else if (opcode_ < 0x8 && !ready_ && !o_.ready_marker.empty() &&
               control_.find(o_.ready_marker) != std::string::npos) {
      become_ready();
    }
    control_.clear();
    return true;
  }

  // One long-poll answer at a time; its body goes to the matcher once complete, then the next
  // poll goes out with the cursor the answer gave.
  bool poll_bytes(char const* p, std::size_t n) {
    if (chunked_) {
      if (!dechunk_.feed(p, n, [&](char const* d, std::size_t k) { poll_body_.append(d, k); }))
        return lost("bad chunked encoding"), false;
      if (!dechunk_.done()) return true;
    } else {
      poll_body_.append(p, n);
      if (poll_body_.size() < poll_head_.content_length.value_or(0)) return true;
    }
    // Complete (nothing is pipelined behind a poll, so no bytes belong to the next answer).
    if (poll_head_.status == 200) {
      match(poll_body_.data(), poll_body_.size());
      if (o_.poll_style == PollStyle::herald) {
        auto const at = poll_body_.rfind("\"cursor\":");
        if (at != std::string::npos) {
          std::size_t i = at + 9;
          std::string c;
          while (i < poll_body_.size() && std::isdigit(static_cast<unsigned char>(poll_body_[i]))) c += poll_body_[i++];
          if (!c.empty()) cursor_ = c;
        }
      }
    }
    in_body_ = false;
    poll_body_.clear();
    if (!ready_) become_ready();
    if (poll_head_.close) return lost("server closed the poll connection"), false;
    if (!stop_polling_) send_request();
    return true;
  }

  void become_ready() {
    if (ready_) return;
    ready_ = true;
    run_.subscriber_ready();
  }

  void fail(std::string why) {
    if (done_) return;
    done_ = true;
    error_code ec;
    socket_.close(ec);
    run_.subscriber_failed(why);
  }

  void lost(std::string why) {
    if (done_) return;
    if (!ready_) return fail(std::move(why));
    done_ = true;
    error_code ec;
    socket_.close(ec);
    ++run_.dropped;
    run_.error(why);
  }

 public:
  void stop_polling() { stop_polling_ = true; }

 private:
  Run& run_;
  Options const& o_;
  std::size_t index_;
  tcp::socket socket_;
  std::unique_ptr<char[]> buf_;
  std::string out_, wbuf_;
  bool writing_ = false, more_out_ = false;
  std::string head_;
  bool in_body_ = false;
  bool chunked_ = false;
  Dechunker dechunk_;
  Matcher matcher_;
  bool ready_ = false, done_ = false, closing_ = false, stop_polling_ = false;
  // websocket frame state
  std::array<unsigned char, 14> hdr_{};
  std::size_t hdr_len_ = 0, hdr_need_ = 2;
  std::uint64_t remaining_ = 0;
  unsigned opcode_ = 0;
  std::string control_;
  // polling
  ResponseHead poll_head_;
  std::string poll_body_;
  std::string cursor_;
  std::string last_modified_, etag_;
};

void Run::subscriber_ready() {
  ++ready;
  --connecting;
  connect_more();
}

void Run::subscriber_failed(std::string const& why) {
  ++failed;
  --connecting;
  error(why);
  connect_more();
}

void Run::connect_more() {
  while (next_connect < subs.size() && connecting < o.connect_batch) {
    ++connecting;
    auto& s = *subs[next_connect++];
    s.start();
  }
}

// --- publisher ---------------------------------------------------------------------------------

class Publisher {
 public:
  Publisher(Run& run) : run_(run), o_(run.o), socket_(run.ioc), timer_(run.ioc), buf_(new char[64 * 1024]) {
    payload_.assign(o_.payload, 'x');
  }

  template <class Done>
  void connect(Done done) {
    tcp::endpoint const ep{net::ip::make_address(o_.host), o_.pub_port};
    socket_.async_connect(ep, [this, done](error_code ec) mutable {
      if (ec) return done(ec);
      socket_.set_option(tcp::no_delay(true), ec);
      if (o_.pub == PubMode::ws) {
        std::string req = "GET " + o_.pub_path + " HTTP/1.1\r\nHost: " + o_.host + "\r\n" + ws_key_request + "\r\n";
        out_ = std::move(req);
        net::async_write(socket_, net::buffer(out_), [](error_code, std::size_t) {});
        handshake_done_ = [done]() mutable { done(error_code{}); };
      } else {
        net::post(run_.ioc, [done]() mutable { done(error_code{}); });
      }
      read();
    });
  }

  void start() {
    run_.publishing = true;
    run_.pub_start = now_ns();
    deadline_ = run_.pub_start + static_cast<std::int64_t>(o_.duration * 1e9);
    tick();
  }

  /// Publish what the rate or the window allows now.
  void pump() {
    if (!run_.publishing) return;
    auto const now = now_ns();
    bool const done_count = o_.messages != 0 && run_.published >= o_.messages;
    if (done_count || now >= deadline_) {
      stop();
      return;
    }
    std::uint64_t allowed = o_.messages ? o_.messages : UINT64_MAX;
    if (o_.rate > 0) {
      auto const due = static_cast<std::uint64_t>(static_cast<double>(now - run_.pub_start) * 1e-9 * o_.rate) + 1;
      allowed = std::min(allowed, due);
    }
    // Never more than --window messages ahead of the slowest subscriber: closed loop at full
    // speed, and in paced mode a bound on the backlog when the server cannot keep the rate
    // (the achieved rate is reported as pub_rate).
    allowed = std::min<std::uint64_t>(allowed, run_.floor + o_.window);
    while (run_.published < allowed && in_flight() < o_.pipeline * (o_.pub == PubMode::ws ? 1024 : 1)) {
      append_message(++run_.published);
    }
    flush();
  }

  void stop() {
    if (!run_.publishing) return;
    run_.publishing = false;
    run_.pub_end = now_ns();
    timer_.cancel();
  }

  void close() {
    error_code ec;
    closing_ = true;
    timer_.cancel();
    socket_.close(ec);
  }

  std::string const& mark_answer() const { return mark_answer_; }

  /// GET o_.mark_path on its own connection (synchronously: it is outside the measured window).
  std::string mark() {
    if (o_.mark_path.empty()) return {};
    try {
      net::io_context ioc;
      tcp::socket s{ioc};
      s.connect({net::ip::make_address(o_.host), o_.pub_port});
      std::string req = "GET " + o_.mark_path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
      net::write(s, net::buffer(req));
      std::string all;
      char b[4096];
      error_code ec;
      for (;;) {
        auto n = s.read_some(net::buffer(b), ec);
        all.append(b, n);
        if (ec) break;
      }
      auto const at = all.find("\r\n\r\n");
      std::string body = at == std::string::npos ? all : all.substr(at + 4);
      while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
      return body;
    } catch (std::exception const& e) {
      return std::string("mark failed: ") + e.what();
    }
  }

 private:
  std::uint64_t in_flight() const { return run_.published - run_.pub_acked; }

  void append_message(std::uint64_t seq) {
    char head[64];
    int const k = std::snprintf(head, sizeof head, "{\"s\":%" PRIu64 ",\"t\":%" PRId64 ",\"p\":\"", seq, now_ns());
    payload_.assign(head, static_cast<std::size_t>(k));
    if (payload_.size() + 2 < o_.payload) payload_.append(o_.payload - payload_.size() - 2, 'x');
    payload_ += "\"}";
    if (o_.pub == PubMode::http) {
      pending_ += "POST ";
      pending_ += o_.pub_path;
      pending_ += " HTTP/1.1\r\nHost: ";
      pending_ += o_.host;
      pending_ += "\r\nContent-Type: application/json\r\nContent-Length: ";
      pending_ += std::to_string(payload_.size());
      pending_ += "\r\n\r\n";
      pending_ += payload_;
    } else {
      pending_ += ws_frame(payload_);
      ++run_.pub_acked;  // nothing comes back for a WebSocket publish
    }
  }

  void flush() {
    if (writing_ || pending_.empty()) return;
    writing_ = true;
    out_.swap(pending_);
    pending_.clear();
    net::async_write(socket_, net::buffer(out_), [this](error_code ec, std::size_t) {
      writing_ = false;
      if (ec) {
        if (!closing_) {
          ++run_.pub_errors;
          run_.error("publisher write: " + ec.message());
          stop();
        }
        return;
      }
      pump();
      flush();
    });
  }

  void tick() {
    if (!run_.publishing) return;
    pump();
    // 100 µs resolution for paced publishing; closed loop is driven by deliveries and acks, the
    // timer only catches the deadline.
    timer_.expires_after(o_.rate > 0 ? std::chrono::microseconds(100) : std::chrono::milliseconds(2));
    timer_.async_wait([this](error_code ec) {
      if (!ec) tick();
    });
  }

  void read() {
    socket_.async_read_some(net::buffer(buf_.get(), 64 * 1024), [this](error_code ec, std::size_t n) {
      if (ec) {
        if (!closing_ && run_.publishing) {
          ++run_.pub_errors;
          run_.error("publisher connection: " + ec.message());
          stop();
        }
        return;
      }
      in_.append(buf_.get(), n);
      parse_responses();
      read();
    });
  }

  void parse_responses() {
    if (o_.pub == PubMode::ws) {
      if (handshake_done_) {
        auto const end = in_.find("\r\n\r\n");
        if (end == std::string::npos) return;
        auto const h = parse_head(std::string_view(in_).substr(0, end + 4));
        in_.erase(0, end + 4);
        auto done = std::move(handshake_done_);
        handshake_done_ = nullptr;
        if (h.status != 101) {
          ++run_.pub_errors;
          run_.error("publisher websocket handshake answered " + std::to_string(h.status));
        }
        done();
      }
      in_.clear();  // frames sent back to the publisher are ignored
      return;
    }
    std::size_t pos = 0;
    while (true) {
      auto const end = in_.find("\r\n\r\n", pos);
      if (end == std::string::npos) break;
      auto const h = parse_head(std::string_view(in_).substr(pos, end + 4 - pos));
      std::size_t body_end = end + 4;
      if (h.chunked) {
        auto const term = in_.find("\r\n0\r\n\r\n", end + 4 - 2);
        auto const term0 = in_.compare(end + 4, 5, "0\r\n\r\n") == 0 ? end + 4 : std::string::npos;
        if (term0 != std::string::npos) body_end = term0 + 5;
        else if (term != std::string::npos) body_end = term + 7;
        else break;
      } else {
        body_end += h.content_length.value_or(0);
        if (body_end > in_.size()) break;
      }
      pos = body_end;
      ++run_.pub_acked;
      if (h.status < 200 || h.status >= 300) {
        ++run_.pub_errors;
        if (run_.first_error.empty()) run_.first_error = "publish answered " + std::to_string(h.status);
      }
    }
    in_.erase(0, pos);
    pump();
  }

  Run& run_;
  Options const& o_;
  tcp::socket socket_;
  net::steady_timer timer_;
  std::unique_ptr<char[]> buf_;
  std::string payload_, pending_, out_, in_;
  bool writing_ = false, closing_ = false;
  std::int64_t deadline_ = 0;
  std::function<void()> handshake_done_;
  std::string mark_answer_;
};


std::string fmt(double v, int prec = 1) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  Options const o = parse(argc, argv);
  raise_nofile(o.clients + 256);

  net::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE};
  Run run{o, ioc, {}, {}, 0};
  run.subs.reserve(o.clients);
  for (std::size_t i = 0; i < o.clients; ++i) run.subs.push_back(std::make_unique<Subscriber>(run, i));

  long const rss_before = read_rss_kb(o.rss_pid);
  auto const t_connect = now_ns();
  run.connect_more();

  auto const connect_deadline = steady::now() + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.connect_timeout));
  while (run.ready + run.failed < o.clients && steady::now() < connect_deadline) {
    ioc.run_one_for(std::chrono::milliseconds(50));
  }
  auto const connect_s = static_cast<double>(now_ns() - t_connect) * 1e-9;
  if (run.ready + run.failed < o.clients) run.error("timed out connecting subscribers");
  auto run_for = [&](double seconds) {
    auto const until = steady::now() + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(seconds));
    while (steady::now() < until) ioc.run_one_until(until);
  };
  run_for(o.settle);
  long const rss_ready = read_rss_kb(o.rss_pid);
  if (!o.quiet)
    std::fprintf(stderr, "loadgen: %zu of %zu subscribers ready in %.2f s (%zu failed)%s%s\n", run.ready, o.clients,
                 connect_s, run.failed, run.first_error.empty() ? "" : "; first error: ", run.first_error.c_str());

  std::string mark_before, mark_after;
  double server_cpu0 = -1, server_cpu1 = -1, self_cpu0 = 0, self_cpu1 = 0;
  std::vector<double> other_cpu0(o.cpu_pids.size(), -1), other_cpu1(o.cpu_pids.size(), -1);
  auto read_others = [&](std::vector<double>& into) {
    for (std::size_t i = 0; i < o.cpu_pids.size(); ++i) into[i] = read_cpu_s(o.cpu_pids[i]);
  };
  Publisher pub{run};
  std::size_t const ready_at_start = run.ready - run.dropped;
  if (o.pub != PubMode::none && ready_at_start > 0) {
    bool connected = false;
    error_code pub_ec;
    pub.connect([&](error_code ec) {
      pub_ec = ec;
      connected = true;
    });
    auto const until = steady::now() + std::chrono::seconds(10);
    while (!connected && steady::now() < until) ioc.run_one_for(std::chrono::milliseconds(50));
    if (!connected || pub_ec) {
      ++run.pub_errors;
      run.error("publisher connect: " + (connected ? pub_ec.message() : std::string("timed out")));
    } else {
      mark_before = pub.mark();
      server_cpu0 = read_cpu_s(o.rss_pid);
      read_others(other_cpu0);
      self_cpu0 = self_cpu_s();
      run.expected_subs = ready_at_start;
      std::size_t ring = 1;
      while (ring < o.window * 2 + 2) ring <<= 1;
      run.ring.assign(ring, 0);
      pub.start();
      // Publish, then drain: stop when everyone has everything, or at the drain deadline.
      while (run.publishing) {
        ioc.run_one_for(std::chrono::milliseconds(10));
        pub.pump();
      }
      auto const drain_until = steady::now() + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.drain));
      auto const want = run.published * (run.ready - run.dropped);
      while (run.deliveries < want && steady::now() < drain_until) ioc.run_one_for(std::chrono::milliseconds(10));
      server_cpu1 = read_cpu_s(o.rss_pid);
      read_others(other_cpu1);
      self_cpu1 = self_cpu_s();
      mark_after = pub.mark();
    }
  } else if (o.hold > 0) {
    run_for(o.hold);
  }
  long const rss_after = read_rss_kb(o.rss_pid);

  // Per-subscriber accounting: every subscriber that was ready at the start must have seen
  // 1..published exactly once, in order.
  std::uint64_t lost = 0, gaps = 0, dups = 0, subs_with_loss = 0, tail = 0;
  std::uint64_t min_recv = UINT64_MAX, max_recv = 0;
  if (run.published > 0) {
    for (auto const& s : run.subs) {
      if (!s->ready()) continue;
      auto const& t = s->track;
      std::uint64_t const expect = run.published;
      std::uint64_t const missing = expect > t.received ? expect - t.received : 0;
      lost += missing;
      gaps += t.gaps + (t.received ? t.first - 1 : 0);
      tail += t.last < expect ? expect - t.last : 0;
      dups += t.dups;
      if (missing || t.dups) ++subs_with_loss;
      min_recv = std::min(min_recv, t.received);
      max_recv = std::max(max_recv, t.received);
    }
  }
  if (min_recv == UINT64_MAX) min_recv = 0;
  std::int64_t const end = run.all_delivered_at ? std::max(run.all_delivered_at, run.last_recv) : run.last_recv;
  double const elapsed = run.pub_start && end > run.pub_start ? static_cast<double>(end - run.pub_start) * 1e-9 : 0;
  double const rate = elapsed > 0 ? static_cast<double>(run.deliveries) / elapsed : 0;

  for (auto& s : run.subs) s->close();
  pub.close();

  std::string line = "RESULT";
  auto kv = [&](char const* k, std::string const& v) {
    line += ' ';
    line += k;
    line += '=';
    line += v;
  };
  kv("proto", o.proto == Proto::ws ? "ws" : o.proto == Proto::sse ? "sse" : "poll");
  kv("clients", std::to_string(o.clients));
  kv("ready", std::to_string(run.ready));
  kv("connect_failed", std::to_string(run.failed));
  kv("dropped", std::to_string(run.dropped));
  kv("conn_errors", std::to_string(run.conn_errors));
  kv("connect_s", fmt(connect_s, 3));
  kv("published", std::to_string(run.published));
  kv("pub_errors", std::to_string(run.pub_errors));
  double const pub_s = run.pub_end > run.pub_start ? static_cast<double>(run.pub_end - run.pub_start) * 1e-9 : 0;
  kv("pub_rate", fmt(pub_s > 0 ? static_cast<double>(run.published) / pub_s : 0, 0));
  kv("deliveries", std::to_string(run.deliveries));
  kv("lost", std::to_string(lost));
  kv("gaps", std::to_string(gaps));
  kv("tail_missing", std::to_string(tail));
  kv("dups", std::to_string(dups));
  kv("subs_with_loss", std::to_string(subs_with_loss));
  kv("min_recv", std::to_string(min_recv));
  kv("max_recv", std::to_string(max_recv));
  kv("elapsed_s", fmt(elapsed, 4));
  kv("msgs_per_s", fmt(rate, 0));
  kv("p50_us", fmt(run.latency.percentile_us(50)));
  kv("p99_us", fmt(run.latency.percentile_us(99)));
  kv("p999_us", fmt(run.latency.percentile_us(99.9)));
  kv("max_us", fmt(run.latency.max_us()));
  // CPU used during the publish window (until the last delivery or the drain deadline): the
  // server's per delivered message, and the load generator's own share, which shows whether it
  // could have been the bottleneck (it reads whatever has queued, so its cost per message falls
  // as it gets busier).
  double const server_cpu = server_cpu0 >= 0 && server_cpu1 >= 0 ? server_cpu1 - server_cpu0 : -1;
  double const self_cpu = self_cpu1 - self_cpu0;
  kv("server_cpu_s", fmt(server_cpu, 3));
  kv("loadgen_cpu_s", fmt(self_cpu, 3));
  kv("server_cpu_us_per_msg", run.deliveries && server_cpu >= 0 ? fmt(server_cpu * 1e6 / static_cast<double>(run.deliveries), 3) : "-1");
  kv("loadgen_cpu_us_per_msg", run.deliveries ? fmt(self_cpu * 1e6 / static_cast<double>(run.deliveries), 3) : "-1");
  if (!o.cpu_pids.empty()) {
    double other = 0;
    bool known = server_cpu >= 0;
    std::string by_pid;
    for (std::size_t i = 0; i < o.cpu_pids.size(); ++i) {
      double const d = other_cpu0[i] >= 0 && other_cpu1[i] >= 0 ? other_cpu1[i] - other_cpu0[i] : -1;
      known = known && d >= 0;
      other += d >= 0 ? d : 0;
      if (!by_pid.empty()) by_pid += ',';
      by_pid += std::to_string(o.cpu_pids[i]) + ':' + fmt(d, 3);
    }
    kv("other_cpu_s", fmt(other, 3));
    kv("cpu_by_pid", by_pid);
    kv("all_server_cpu_us_per_msg", run.deliveries && known
                                        ? fmt((server_cpu + other) * 1e6 / static_cast<double>(run.deliveries), 3)
                                        : "-1");
  }
  kv("rss_before_kb", std::to_string(rss_before));
  kv("rss_ready_kb", std::to_string(rss_ready));
  kv("rss_after_kb", std::to_string(rss_after));
  auto const live = run.ready - run.dropped;
  kv("rss_per_conn_b", rss_before > 0 && live > 0 ? fmt(static_cast<double>(rss_ready - rss_before) * 1024.0 / static_cast<double>(live), 0) : "-1");
  if (!mark_before.empty()) kv("mark_before", "'" + mark_before + "'");
  if (!mark_after.empty()) kv("mark_after", "'" + mark_after + "'");
  std::string err = run.first_error;
  for (auto& c : err)
    if (c == ' ' || c == '\'') c = '_';
  kv("first_error", err.empty() ? "-" : err);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  if (!o.quiet)
    std::fprintf(stderr,
                 "loadgen: published %" PRIu64 ", delivered %" PRIu64 " in %.3f s = %.0f msgs/s; lost %" PRIu64
                 ", dups %" PRIu64 ", conn errors %" PRIu64 "; latency p50 %.1f us p99 %.1f us p999 %.1f us\n",
                 run.published, run.deliveries, elapsed, rate, lost, dups, run.conn_errors, run.latency.percentile_us(50),
                 run.latency.percentile_us(99), run.latency.percentile_us(99.9));
  return 0;
}
