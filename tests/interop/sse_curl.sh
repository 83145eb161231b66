#!/usr/bin/env bash
# Interop: curl against herald's SSE transport (herald_interop_server).
#
#   bash tests/interop/sse_curl.sh path/to/herald_interop_server [path/to/curl]
#
# Starts the server on a free port of 127.0.0.1 (--port 0), reads its "listening on" line, then
# with curl only: checks the response headers (curl -D), the exact event-stream bytes of events
# published over /publish (plain, multi-line with LF and CRLF, JSON, an injection attempt, a
# typed event), resume with the Last-Event-ID header and the lastEventId query parameter (exactly
# the later events, then live with no duplicate), a reset notice for a cursor older than history,
# 400 for a bad cursor, 404 for an unknown path, resume after /drop closed every stream, and
# /stop: streams end with a final retry: and the server exits 0.
#
# Every wait is a bounded polling loop (sleep 0.05 up to a deadline); curl runs with --max-time.
# The trap kills only the processes this script started, by PID.
set -euo pipefail

SERVER=${1:?usage: sse_curl.sh path/to/herald_interop_server [curl]}
CURL=${2:-curl}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/herald-sse-curl.XXXXXX")
server_pid=
declare -A stream_pid=()   # stream name -> PID of its background curl

cleanup() {
  local status=$?
  set +e
  for name in "${!stream_pid[@]}"; do
    kill "${stream_pid[$name]}" 2>/dev/null
  done
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$server_pid" 2>/dev/null
  fi
  if ((status != 0)) && [[ -s $tmp/server.err ]]; then
    echo "--- server stderr:" >&2
    cat "$tmp/server.err" >&2
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
ok() { echo "ok   $*"; }

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 50 ms until it succeeds.
wait_until() {
  local seconds=$1 what=$2
  shift 2
  local tries=$((seconds * 20))
  for ((i = 0; i < tries; ++i)); do
    if "$@"; then return 0; fi
    sleep 0.05
  done
  fail "timed out after ${seconds}s waiting for: $what"
}

exited() { ! kill -0 "$1" 2>/dev/null; }

# --- server --------------------------------------------------------------------------------------
"$SERVER" --port 0 --history 64 >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
has_line() { (($(wc -l <"$tmp/server.out") >= 1)); }
wait_until 10 "the server's first line" has_line
first=$(head -n 1 "$tmp/server.out")
[[ $first =~ ^listening\ on\ (http://127\.0\.0\.1:([0-9]+))$ ]] ||
  fail "unexpected first line: '$first'"
base=${BASH_REMATCH[1]}
port=${BASH_REMATCH[2]}
((port > 0)) || fail "port 0 in '$first'"
ok "server listens on $base"

# --- helpers -------------------------------------------------------------------------------------
# stream NAME URL [curl args...]: curl -N in the background; body in $tmp/NAME, headers in
# $tmp/NAME.h, PID in stream_pid[NAME].
stream() {
  local name=$1 url=$2
  shift 2
  "$CURL" -sN --max-time 30 -D "$tmp/$name.h" -o "$tmp/$name" "$@" "$url" &
  stream_pid[$name]=$!
}

# stream_end NAME: waits (bounded) for the stream's curl to end; its exit status goes to $rc.
# (Not in a $(...) subshell: only this shell can wait for its children.)
stream_end() {
  local pid=${stream_pid[$1]}
  wait_until 10 "curl of stream $1 to end" exited "$pid"
  rc=0
  wait "$pid" || rc=$?
  unset "stream_pid[$1]"
}

# publish TOPIC DATA [TYPE [curl args...]]: publishes over /publish (query percent-encoded by
# curl); prints the new id.
publish() {
  local topic=$1 data=$2 type=${3:-}
  shift $(($# < 3 ? $# : 3))
  local args=(-G --data-urlencode "topic=$topic" --data-urlencode "data=$data")
  [[ -n $type ]] && args+=(--data-urlencode "type=$type")
  local id
  id=$("$CURL" -sS --fail-with-body --max-time 5 "${args[@]}" "$@" "$base/publish") ||
    fail "publish to $topic: $id"
  [[ $id =~ ^[0-9]+$ ]] || fail "publish answered '$id', not an id"
  echo "$id"
}

# frame ID DATA... / frame_typed ID TYPE DATA...: the exact bytes of one event.
frame() {
  local id=$1
  shift
  printf 'id: %s\n' "$id"
  printf 'data: %s\n' "$@"
  printf '\n'
}
frame_typed() {
  local id=$1 type=$2
  shift 2
  printf 'id: %s\nevent: %s\n' "$id" "$type"
  printf 'data: %s\n' "$@"
  printf '\n'
}
retry_block() { printf 'retry: 100\n\n'; }

# expect_stream NAME EXPECTED_FILE: waits until the stream holds at least as many bytes as
# expected, then compares exactly.
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }
at_least() { (($(size_of "$1") >= $(size_of "$2"))); }
expect_stream() {
  local name=$1 want=$2
  wait_until 10 "stream $name to hold $(size_of "$want") bytes (has $(size_of "$tmp/$name"))" \
    at_least "$tmp/$name" "$want"
  if ! cmp -s "$tmp/$name" "$want"; then
    echo "--- expected:" >&2; cat -A "$want" >&2
    echo "--- got:" >&2; cat -A "$tmp/$name" >&2
    fail "stream $name differs from the expected bytes"
  fi
}

# header NAME FIELD: the value of FIELD in the stream's headers (case-insensitive, CR removed).
header() {
  tr -d '\r' <"$tmp/$1.h" | awk -v f="$(tr '[:upper:]' '[:lower:]' <<<"$2")" '
    { n = index($0, ":"); if (n && tolower(substr($0, 1, n - 1)) == f) { v = substr($0, n + 1); sub(/^ +/, "", v); print v; exit } }'
}

# --- a live stream: headers and exact framing ----------------------------------------------------
stream s1 "$base/sse?topic=t"
retry_block >"$tmp/want.retry"
# The retry: block is written with the headers, once the subscription is in place.
wait_until 10 "the first stream's retry: block" at_least "$tmp/s1" "$tmp/want.retry"

status_line=$(head -n 1 "$tmp/s1.h" | tr -d '\r')
[[ $status_line == "HTTP/1.1 200 OK" ]] || fail "status line: '$status_line'"
[[ $(header s1 Content-Type) == "text/event-stream" ]] || fail "Content-Type: '$(header s1 Content-Type)'"
[[ $(header s1 Cache-Control) == "no-cache" ]] || fail "Cache-Control: '$(header s1 Cache-Control)'"
[[ $(header s1 X-Accel-Buffering) == "no" ]] || fail "X-Accel-Buffering: '$(header s1 X-Accel-Buffering)'"
ok "headers: 200, text/event-stream, no-cache, X-Accel-Buffering: no"

json='{"n":3,"msg":"a \"quoted\" word, 100% ✓","list":[1,2]}'
id1=$(publish t "hello")
id2=$(publish t $'line one\nline two\r\nline three' "" -X POST)   # POST with the query
id3=$(publish t "$json")
id4=$(publish t $'data: x\n\nid: 1\nevent: evil')                   # cannot inject fields
id5=$(publish t "typed" note)
# A POST whose body is the payload.
printf 'from the body' >"$tmp/body"
id6=$("$CURL" -sS --fail-with-body --max-time 5 --data-binary "@$tmp/body" "$base/publish?topic=t")
[[ $id6 =~ ^[0-9]+$ ]] || fail "POST body publish answered '$id6'"
((id1 < id2 && id2 < id3 && id3 < id4 && id4 < id5 && id5 < id6)) ||
  fail "ids not increasing: $id1 $id2 $id3 $id4 $id5 $id6"
ok "publish answers increasing ids ($id1 .. $id6)"

frame "$id1" "hello" >"$tmp/e1"
frame "$id2" "line one" "line two" "line three" >"$tmp/e2"
frame "$id3" "$json" >"$tmp/e3"
frame "$id4" "data: x" "" "id: 1" "event: evil" >"$tmp/e4"
frame_typed "$id5" note "typed" >"$tmp/e5"
frame "$id6" "from the body" >"$tmp/e6"
cat "$tmp/want.retry" "$tmp"/e{1..6} >"$tmp/want.s1"
expect_stream s1 "$tmp/want.s1"
ok "exact id:/event:/data: lines (multi-line LF and CRLF, JSON, injection attempt, typed)"

# --- resume --------------------------------------------------------------------------------------
stream s2 "$base/sse?topic=t" -H "Last-Event-ID: $id2"
cat "$tmp/want.retry" "$tmp"/e{3..6} >"$tmp/want.s2"
expect_stream s2 "$tmp/want.s2"
ok "Last-Event-ID: $id2 replays exactly the 4 later events"

stream s3 "$base/sse?topic=t&lastEventId=$id5"
cat "$tmp/want.retry" "$tmp/e6" >"$tmp/want.s3"
expect_stream s3 "$tmp/want.s3"
ok "?lastEventId=$id5 replays exactly the later event"

# Another topic's events never reach these streams; the next one on t reaches all three once.
publish other "not for t" >/dev/null
id7=$(publish t "after resume")
frame "$id7" "after resume" >"$tmp/e7"
for s in s1 s2 s3; do
  cat "$tmp/want.$s" "$tmp/e7" >"$tmp/want.$s.7"
  expect_stream "$s" "$tmp/want.$s.7"
done
ok "replayed and live streams continue with the next event: no gap, no duplicate"

# --- reset: a cursor older than history ----------------------------------------------------------
stream s4 "$base/sse?topic=t" -H "Last-Event-ID: 1"
notice='^data: {"reason":"cursor_expired","cursor":\([0-9][0-9]*\)}$'
wait_until 10 "the reset notice" grep -qs "$notice" "$tmp/s4"
reset_cursor=$(sed -n "s/$notice/\\1/p" "$tmp/s4" | head -n 1)
((reset_cursor >= 1 && reset_cursor < id1)) || fail "reset cursor '$reset_cursor' is not below the first id $id1"
{
  cat "$tmp/want.retry"
  frame_typed 1 reset "{\"reason\":\"cursor_expired\",\"cursor\":$reset_cursor}"
  cat "$tmp"/e{1..7}
} >"$tmp/want.s4"
expect_stream s4 "$tmp/want.s4"
ok "Last-Event-ID: 1 gets event: reset (id 1, cursor $reset_cursor), then all 7 retained events"

# --- errors: bad cursor, unknown path ------------------------------------------------------------
code=$("$CURL" -s --max-time 5 -o "$tmp/bad" -D "$tmp/bad.h" -w '%{http_code}' \
  -H "Last-Event-ID: abc" "$base/sse?topic=t")
[[ $code == 400 ]] || fail "a bad Last-Event-ID answered $code"
tr -d '\r' <"$tmp/bad.h" | grep -qi '^content-type: application/json' || fail "400 without a JSON body"
grep -q '"error"' "$tmp/bad" || fail "400 body: $(cat "$tmp/bad")"
code=$("$CURL" -s --max-time 5 -o /dev/null -w '%{http_code}' "$base/nowhere")
[[ $code == 404 ]] || fail "an unknown path answered $code"
ok "bad Last-Event-ID -> 400 with a JSON error; unknown path -> 404"

# --- drop: every stream closes; curl resumes with its last id ------------------------------------
dropped=$("$CURL" -sS --fail-with-body --max-time 5 "$base/drop")
[[ $dropped =~ ^dropped\ ([0-9]+)$ ]] || fail "/drop answered '$dropped'"
((BASH_REMATCH[1] >= 4)) || fail "/drop closed ${BASH_REMATCH[1]} connections, expected the 4 streams"
codes=()
for s in s1 s2 s3 s4; do
  stream_end "$s"
  # 0: the close-delimited body ended; 18/56: the close came as a partial transfer or a reset.
  # Anything else (28: --max-time) means the stream did not end.
  [[ $rc == 0 || $rc == 18 || $rc == 56 ]] || fail "curl of dropped stream $s exited $rc"
  codes+=("$rc")
done
cmp -s "$tmp/s1" "$tmp/want.s1.7" || fail "the dropped stream s1 received something after the drop"
ok "/drop ends every stream (curl exit codes: ${codes[*]})"

id8=$(publish t "while disconnected")
frame "$id8" "while disconnected" >"$tmp/e8"
stream s5 "$base/sse?topic=t" -H "Last-Event-ID: $id7"
cat "$tmp/want.retry" "$tmp/e8" >"$tmp/want.s5"
expect_stream s5 "$tmp/want.s5"
ok "after the drop, Last-Event-ID: $id7 gets exactly the event published meanwhile"

# --- graceful stop -------------------------------------------------------------------------------
stop=$("$CURL" -sS --fail-with-body --max-time 5 "$base/stop")
[[ $stop == stopping ]] || fail "/stop answered '$stop'"
stream_end s5
[[ $rc == 0 ]] || fail "curl of the stream ended with $rc on a graceful stop"
cat "$tmp/want.s5" "$tmp/want.retry" >"$tmp/want.s5.end"
cmp -s "$tmp/s5" "$tmp/want.s5.end" || {
  cat -A "$tmp/s5" >&2
  fail "the stream did not end with a final retry: block"
}
wait_until 10 "the server to exit after /stop" exited "$server_pid"
rc=0
wait "$server_pid" || rc=$?
server_pid=
[[ $rc == 0 ]] || fail "the server exited with $rc after /stop"
ok "/stop: the stream ends with a final retry:, curl exits 0, the server exits 0"

echo "all SSE curl interop checks passed"
