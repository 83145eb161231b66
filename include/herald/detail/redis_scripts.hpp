#pragma once

// The Lua scripts of herald's Redis backplane and the layout of its keys (docs/scaling.md).
//
// Every key of a hub starts with the hash tag {<prefix>}, so one hub lives in one Cluster slot
// and every script touches one slot only:
//   {p}:meta     hash   last (last id handed out), floor (cursors below it cannot be served:
//                       the store was started over or lost writes), logfloor (newest id
//                       trimmed from the log)
//   {p}:log      stream every event, in id order: the log every node tails. Entry id <id>-0;
//                       fields t (topic), y (type), k (kind), d (data), p (the previous entry's
//                       id: a broken chain is how a node sees lost or trimmed entries),
//                       s (Redis time of the publish, µs)
//   {p}:h:<topic> stream one topic's history: fields y, k, d, s
//   {p}:floors   hash   topic -> newest id trimmed from that topic's history
//
// Ids are u64 and Lua numbers are doubles (exact only below 2^53), so ids are handled as
// decimal strings throughout: compared by length then by text, incremented digit by digit.
// Only the Redis clock (µs since 1970, about 2^51 today) is ever a number.

#include <string>
#include <string_view>

namespace herald::inline v0::detail::redis_lua {

/// Helpers every script starts with.
inline constexpr std::string_view prelude = R"lua(
local function gt(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local function inc(a)
  local i = #a
  while i > 0 and string.byte(a, i) == 57 do i = i - 1 end
  if i == 0 then return '1' .. string.rep('0', #a) end
  return string.sub(a, 1, i - 1) .. string.char(string.byte(a, i) + 1) .. string.rep('0', #a - i)
end
local function dec(a)
  if a == '0' then return '0' end
  local i = #a
  while string.byte(a, i) == 48 do i = i - 1 end
  local r = string.sub(a, 1, i - 1) .. string.char(string.byte(a, i) - 1) .. string.rep('9', #a - i)
  r = string.gsub(r, '^0+', '')
  if r == '' then r = '0' end
  return r
end
local function id_of(sid) return string.match(sid, '^(%d+)') end
local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- Trim stream `key` to `max` entries (max < 0: any number) and to entries published at most
-- `age` us before `now` (age 0: any age). Returns the newest trimmed id, or nil.
local function trim(key, max, age, now)
  local gone = nil
  if max >= 0 then
    local n = redis.call('XLEN', key)
    if n > max then
      local old = redis.call('XRANGE', key, '-', '+', 'COUNT', n - max)
      gone = old[#old][1]
      redis.call('XTRIM', key, 'MINID', id_of(gone) .. '-1')
    end
  end
  if age > 0 then
    local horizon = now - age
    local old = nil
    for _ = 1, 256 do
      local head = redis.call('XRANGE', key, old and ('(' .. old) or '-', '+', 'COUNT', 1)
      if #head == 0 or tonumber(field(head[1][2], 's')) >= horizon then break end
      old = head[1][1]
    end
    if old then
      gone = old
      redis.call('XTRIM', key, 'MINID', id_of(old) .. '-1')
    end
  end
  return gone and id_of(gone) or nil
end
)lua";

/** Publish one event.
    KEYS: meta, log, the topic's history, floors.
    ARGV: topic, type, kind, data, history_events, history_age_us, log_events, log_age_us,
          known (the publishing node's highest id), deadline_us (Redis time; 0: none).
    The id is the largest of the last id + 1, the Redis clock in µs and known + 1, so it keeps
    increasing across a Redis restart that lost everything. A publish that reaches Redis after
    its deadline (the caller has given up on it) is refused, so a failed publish is never
    published later. Returns the id as a decimal string. */
inline constexpr std::string_view publish_body = R"lua(
local now = clock()
local deadline = tonumber(ARGV[10])
if deadline > 0 and now > deadline then
  return redis.error_reply('HERALD_LATE the publish reached Redis after its deadline')
end
local last = redis.call('HGET', KEYS[1], 'last')
local id = string.format('%d', now)
if last then
  local n = inc(last)
  if gt(n, id) then id = n end
end
local k = inc(ARGV[9])
if gt(k, id) then id = k end
if gt(id, '18446744073709551615') then
  return redis.error_reply('HERALD_RANGE event ids are exhausted')
end
if not last then
  -- A new store, or one that lost its data: no cursor from before it can be served.
  local f = redis.call('HGET', KEYS[1], 'floor')
  local d = dec(id)
  if not f or gt(d, f) then redis.call('HSET', KEYS[1], 'floor', d) end
end
redis.call('HSET', KEYS[1], 'last', id)
local sid = id .. '-0'
local ts = string.format('%d', now)
redis.call('XADD', KEYS[2], sid, 't', ARGV[1], 'y', ARGV[2], 'k', ARGV[3], 'd', ARGV[4], 'p', last or '0', 's', ts)
local gone = trim(KEYS[2], tonumber(ARGV[7]), tonumber(ARGV[8]), now)
if gone then redis.call('HSET', KEYS[1], 'logfloor', gone) end
if tonumber(ARGV[5]) > 0 then
  redis.call('XADD', KEYS[3], sid, 'y', ARGV[2], 'k', ARGV[3], 'd', ARGV[4], 's', ts)
  gone = trim(KEYS[3], tonumber(ARGV[5]), tonumber(ARGV[6]), now)
else
  gone = id
end
if gone then redis.call('HSET', KEYS[4], ARGV[1], gone) end
return id
)lua";

/** Read history above a cursor.
    KEYS: meta, floors, then the streams to read: topic histories, or the log.
    ARGV: since, limit per stream (0: all), age_us (events older are trimmed first),
          mode ('t': topic histories, 'a': the log), then one topic name per topic history.
    A cursor above the last id (from another timeline) reads everything retained.
    Returns {last, floor, entries of stream 1, entries of stream 2, ...}. */
inline constexpr std::string_view history_body = R"lua(
local now = clock()
local last = redis.call('HGET', KEYS[1], 'last') or '0'
local floor = redis.call('HGET', KEYS[1], 'floor') or '0'
local from = ARGV[1]
if gt(from, last) then from = '0' end
local limit = tonumber(ARGV[2])
local age = tonumber(ARGV[3])
local out = {last, '0'}
for i = 3, #KEYS do
  local f
  if ARGV[4] == 'a' then
    local gone = trim(KEYS[i], -1, age, now)
    if gone then redis.call('HSET', KEYS[1], 'logfloor', gone) end
    f = redis.call('HGET', KEYS[1], 'logfloor')
  else
    local topic = ARGV[i + 2]
    local gone = trim(KEYS[i], -1, age, now)
    if gone then redis.call('HSET', KEYS[2], topic, gone) end
    f = redis.call('HGET', KEYS[2], topic)
  end
  if f and gt(f, floor) then floor = f end
  if limit > 0 then
    out[#out + 1] = redis.call('XRANGE', KEYS[i], '(' .. from .. '-0', '+', 'COUNT', limit)
  else
    out[#out + 1] = redis.call('XRANGE', KEYS[i], '(' .. from .. '-0', '+')
  end
end
out[2] = floor
return out
)lua";

/** Raise the floor: a node saw the log lose entries it had taken in, so cursors below `id`
    may have missed events that no longer exist.
    KEYS: meta. ARGV: id. */
inline constexpr std::string_view raise_floor_body = R"lua(
local f = redis.call('HGET', KEYS[1], 'floor')
if not f or gt(ARGV[1], f) then redis.call('HSET', KEYS[1], 'floor', ARGV[1]) end
return 1
)lua";

inline std::string script(std::string_view body) {
  std::string s{prelude};
  s += body;
  return s;
}

/// The key names of a hub with `prefix`.
struct Keys {
  std::string meta, log, floors, history_prefix;

  explicit Keys(std::string_view prefix)
      : meta("{" + std::string(prefix) + "}:meta"),
        log("{" + std::string(prefix) + "}:log"),
        floors("{" + std::string(prefix) + "}:floors"),
        history_prefix("{" + std::string(prefix) + "}:h:") {}

  std::string history(std::string_view topic) const { return history_prefix + std::string(topic); }
};

}  // namespace herald::detail::redis_lua
