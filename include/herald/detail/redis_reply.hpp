#pragma once

// What the Redis backplane makes of Redis' replies, as pure functions: a hiredis reply copied
// into a RedisValue, and the readings of the replies to EVALSHA (publish, history), XREAD (the
// shared log) and TIME. No I/O; a reply of any shape is refused or read, never trusted to have
// the shape asked for (tests/fuzz/fuzz_redis_reply.cpp feeds them arbitrary replies).

#include <herald/backplane.hpp>
#include <herald/event.hpp>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::inline v0::detail {

/// A Redis reply, copied out of hiredis (whose reply objects live only inside its callback).
struct RedisValue {
  enum class Type : std::uint8_t { none, nil, integer, string, status, error, array };
  /// `none`: no reply at all (the connection was lost, timed out or closed).
  Type type = Type::none;
  long long integer = 0;
  std::string str;
  std::vector<RedisValue> elements;

  bool ok() const noexcept { return type != Type::none && type != Type::error; }

  static RedisValue from(redisReply const* r) {
    RedisValue v;
    if (!r) return v;
    switch (r->type) {
      case REDIS_REPLY_NIL: v.type = Type::nil; break;
      case REDIS_REPLY_INTEGER:
        v.type = Type::integer;
        v.integer = r->integer;
        break;
      case REDIS_REPLY_STRING: v.type = Type::string; break;
      case REDIS_REPLY_STATUS: v.type = Type::status; break;
      case REDIS_REPLY_ERROR: v.type = Type::error; break;
      case REDIS_REPLY_ARRAY:
        v.type = Type::array;
        v.elements.reserve(r->elements);
        for (std::size_t i = 0; i < r->elements; ++i) v.elements.push_back(from(r->element[i]));
        break;
      default: v.type = Type::error; v.str = "unexpected reply type"; return v;
    }
    if (v.type == Type::string || v.type == Type::status || v.type == Type::error)
      v.str.assign(r->str, r->len);
    return v;
  }
};

/// An id from a decimal string, or from a stream entry id "<id>-0"; nullopt if neither.
inline std::optional<EventId> parse_redis_id(std::string_view s) {
  if (auto dash = s.find('-'); dash != std::string_view::npos) s = s.substr(0, dash);
  EventId v = 0;
  auto const [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

/// The value of `name` in a stream entry's [field, value, …]; empty if absent.
inline std::string_view redis_field(std::vector<RedisValue> const& fields, std::string_view name) {
  for (std::size_t i = 0; i + 1 < fields.size(); i += 2)
    if (fields[i].str == name) return fields[i + 1].str;
  return {};
}

/** One stream entry ([id, [field, value, ...]]) as an Event; `topic` names it when the entry
    has no `t` field (a topic's own history). With `prev`, the entry must name its predecessor
    (`p`), which is stored there. nullopt for anything else. */
inline std::optional<Event> parse_redis_entry(RedisValue const& entry, std::string_view topic,
                                              EventId* prev = nullptr) {
  if (entry.type != RedisValue::Type::array || entry.elements.size() != 2) return std::nullopt;
  auto const id = parse_redis_id(entry.elements[0].str);
  if (!id || entry.elements[1].type != RedisValue::Type::array) return std::nullopt;
  auto const& fields = entry.elements[1].elements;
  Event ev;
  ev.id = *id;
  auto const t = redis_field(fields, "t");
  ev.topic = t.empty() ? std::string(topic) : std::string(t);
  ev.type = redis_field(fields, "y");
  ev.data = redis_field(fields, "d");
  auto const k = redis_field(fields, "k");
  int kind = k.empty() ? 0 : k.front() - '0';
  ev.kind = kind >= 1 && kind <= 3 ? static_cast<PayloadKind>(kind) : PayloadKind::text;
  if (prev) {
    auto const p = parse_redis_id(redis_field(fields, "p"));
    if (!p) return std::nullopt;
    *prev = *p;
  }
  return ev;
}

/** The reply of the history script: [last, floor, entries of source 1, entries of source 2, …],
    one source per topic asked for (or the log, for every topic: `topics` empty), each cut at
    `limit` entries (0: no limit). Fills `out` with the events in id order up to the id below
    which every source is complete; false when the reply has another shape. */
inline bool parse_redis_history(RedisValue const& v, std::vector<std::string> const& topics, std::size_t limit,
                                BackplaneHistory& out) {
  if (v.type != RedisValue::Type::array || v.elements.size() < 2) return false;
  // One source per topic (the log alone for every topic): more would name no topic.
  if (v.elements.size() - 2 > std::max<std::size_t>(topics.size(), 1)) return false;
  auto const last = parse_redis_id(v.elements[0].str);
  auto const floor = parse_redis_id(v.elements[1].str);
  if (!last || !floor) return false;
  out.last = *last;
  out.floor = *floor;
  out.complete_to = *last;
  for (std::size_t i = 2; i < v.elements.size(); ++i) {
    auto const& entries = v.elements[i].elements;
    std::string_view const topic = topics.empty() ? std::string_view{} : std::string_view(topics[i - 2]);
    for (auto const& e : entries)
      if (auto ev = parse_redis_entry(e, topic)) out.events.push_back(std::move(*ev));
    // A stream cut by the limit is complete only up to its last entry.
    if (limit != 0 && entries.size() >= limit && !out.events.empty())
      if (auto id = parse_redis_id(entries.back().elements.empty() ? std::string_view{}
                                                                   : entries.back().elements[0].str))
        out.complete_to = std::min(out.complete_to, *id);
  }
  // Several sources interleave; one is in order already (Redis streams are), unless the reply
  // is not what the script sends, and then the hub must still get its events in order.
  auto const by_id = [](Event const& a, Event const& b) { return a.id < b.id; };
  if (!std::is_sorted(out.events.begin(), out.events.end(), by_id))
    std::sort(out.events.begin(), out.events.end(), by_id);
  std::erase_if(out.events, [&](Event const& e) { return e.id > out.complete_to; });
  return true;
}

/** Events of the shared log that follow one another, and what came before them: when `broken`,
    the log's chain of predecessors broke ahead of them (entries were lost or trimmed unread);
    `position` is then the cursor up to which events may be missing, and `lost` says the log
    went back below what this node had already taken in. */
struct RedisLogRun {
  bool broken = false;
  bool lost = false;
  EventId position = 0;
  std::vector<Event> events;
};

/** The entries of an XREAD of the log ([[key, [entry, …]], …]) after `applied`, checked link by
    link (each entry names its predecessor); `applied` moves to the last one taken. Entries at
    or below `applied`, and malformed ones, are skipped. */
inline std::vector<RedisLogRun> read_redis_log(RedisValue const& v, EventId& applied) {
  std::vector<RedisLogRun> runs(1);
  for (auto const& stream : v.elements) {
    if (stream.elements.size() != 2) continue;
    for (auto const& entry : stream.elements[1].elements) {
      EventId prev = 0;
      auto ev = parse_redis_entry(entry, {}, &prev);
      if (!ev || ev->id <= applied) continue;
      if (prev != applied) {
        auto& run = runs.back().events.empty() && !runs.back().broken ? runs.back() : runs.emplace_back();
        run.broken = true;
        // Below what this node has seen: cursors from there may have missed events now gone.
        run.lost = prev < applied;
        run.position = run.lost ? applied : prev;
        applied = run.position;
      }
      applied = ev->id;
      runs.back().events.push_back(std::move(*ev));
    }
  }
  if (runs.back().events.empty() && !runs.back().broken) runs.pop_back();
  return runs;
}

/// Redis' TIME reply ([seconds, microseconds]) in microseconds; nullopt for anything else.
inline std::optional<long long> parse_redis_time(RedisValue const& v) {
  if (v.type != RedisValue::Type::array || v.elements.size() != 2) return std::nullopt;
  auto number = [](std::string const& s) -> std::optional<long long> {
    long long n = 0;
    auto const [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || n < 0) return std::nullopt;
    return n;
  };
  auto const seconds = number(v.elements[0].str);
  auto const micros = number(v.elements[1].str);
  // Up to the year 292,000 in microseconds, and a fraction below one second.
  if (!seconds || !micros || *seconds > 9'000'000'000'000 || *micros >= 1'000'000) return std::nullopt;
  return *seconds * 1'000'000 + *micros;
}

}  // namespace herald::detail
