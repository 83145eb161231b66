#!/usr/bin/env python3
"""Interop: curl against examples/status (the polling transport).

    polling_curl.py <herald_example_status> [curl]

Starts the example on a free port (--port 0), reads its "listening on http://HOST:PORT" line, then
drives it with curl only: short poll, HEAD, If-None-Match -> 304, a long poll that a POSTed report
wakes, a long poll that times out, keep-alive across two polls, a CORS preflight and a 400. Ends
with SIGTERM and expects a clean exit. Python's standard library only parses curl's output.
"""
import json
import re
import signal
import subprocess
import sys
import time

EXAMPLE = sys.argv[1]
CURL = sys.argv[2] if len(sys.argv) > 2 else "curl"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def parse(raw):
    """curl -i output -> (status, {lower-case header: value}, body). Skips 1xx blocks."""
    while True:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if 100 <= status < 200 and rest:
            raw = rest
            continue
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers, rest


def curl(url, *args, timeout=30):
    out = subprocess.run([CURL, "-sS", "-i", "--max-time", "25", *args, url],
                         capture_output=True, timeout=timeout, check=True)
    return parse(out.stdout)


def main():
    proc = subprocess.Popen([EXAMPLE, "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.match(r"listening on (http://\S+)", line)
        if not m:
            print("FAIL no 'listening on' line, got: %r" % line)
            return 1
        base = m.group(1)
        poll = base + "/api/status"
        run(base, poll)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
            check(code == 0, "SIGTERM stops the example cleanly (exit %s)" % code)
        except subprocess.TimeoutExpired:
            proc.kill()
            check(False, "SIGTERM stops the example within 15 s")
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all polling interop checks passed")
    return 0


def run(base, poll):
    # Short poll from the start of history: the three services the example reports at start-up.
    status, h, body = curl(poll + "?topic=services&since=0")
    check(status == 200, "short poll answers 200")
    check(h.get("content-type") == "application/json", "short poll is application/json")
    check(bool(h.get("etag")), "short poll carries an ETag")
    batch = json.loads(body)
    names = sorted(e["data"]["service"] for e in batch["events"] if e["topic"] == "services")
    check(names == ["api", "db", "queue"], "events embed JSON payloads as JSON: %s" % names)
    cursor = batch["cursor"]
    check(isinstance(cursor, int) and cursor == batch["events"][-1]["id"], "cursor is the last event's id")

    # No since: start from now.
    status, _, body = curl(poll + "?topic=services")
    now = json.loads(body)
    check(status == 200 and now["events"] == [] and now["cursor"] >= cursor, "no since: empty batch and a cursor")

    # ETag / If-None-Match -> 304 while nothing is new for the topic (metrics keep publishing).
    url = "%s?topic=services&since=%d" % (poll, cursor)
    status, h, body = curl(url)
    etag = h.get("etag", "")
    check(status == 200 and json.loads(body)["events"] == [], "caught up: empty batch")
    status, h2, body = curl(url, "-H", "If-None-Match: " + etag)
    check(status == 304 and body == b"" and h2.get("etag") == etag, "If-None-Match answers 304 with no body")

    # HEAD: the headers of the GET, no body.
    status, h, body = curl(url, "-I")
    check(status == 200 and body == b"" and h.get("content-length", "0") != "0", "HEAD answers headers only")

    # Long poll woken by a publish: hold it, see it held in a metrics sample, then report.
    started = time.monotonic()
    held = subprocess.Popen([CURL, "-sS", "-i", "--max-time", "25", url + "&wait=20"], stdout=subprocess.PIPE)
    m_cursor = now["cursor"]
    seen_held = False
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not seen_held:
        _, _, body = curl("%s?topic=metrics&since=%d&wait=5" % (poll, m_cursor))
        sample = json.loads(body)
        m_cursor = sample["cursor"]
        # The metrics poll is held too when a sample is taken, hence 2.
        seen_held = any(e["data"].get("held_polls", 0) >= 2 for e in sample["events"])
    check(seen_held and held.poll() is None, "the long poll is held by the server")
    status, _, body = curl(base + "/api/report", "-H", "Content-Type: application/json",
                           "--data", '{"service":"db","state":"down","note":"interop"}')
    reported = json.loads(body)["id"]
    check(status == 202, "POST /api/report publishes (202)")
    out, _ = held.communicate(timeout=30)
    elapsed = time.monotonic() - started
    status, h, body = parse(out)
    woke = json.loads(body)
    check(status == 200 and [e["id"] for e in woke["events"]] == [reported], "the publish wakes the long poll")
    check(woke["events"][0]["data"]["state"] == "down", "the woken batch carries the report")
    check(h.get("cache-control") == "no-store", "long polls are not cached")
    check(elapsed < 19, "woken before its wait ended (%.2f s)" % elapsed)

    # A long poll with nothing new ends after its wait with an empty batch.
    t0 = time.monotonic()
    status, _, body = curl("%s?topic=services&since=%d&wait=0.5" % (poll, reported))
    waited = time.monotonic() - t0
    empty = json.loads(body)
    check(status == 200 and empty["events"] == [] and empty["cursor"] == reported and waited >= 0.45,
          "a long poll times out with an empty batch (%.2f s)" % waited)

    # Keep-alive: curl reuses one connection for two polls.
    out = subprocess.run([CURL, "-sS", "-v", "-o", "/dev/null", "-o", "/dev/null", url, url + "&limit=5"],
                         capture_output=True, text=True, timeout=30)
    check(out.returncode == 0 and "Re-using existing connection" in out.stderr, "keep-alive: two polls on one connection")

    # CORS preflight from the page's own origin (no allowlist: same origin only).
    status, h, _ = curl(poll, "-X", "OPTIONS", "-H", "Origin: " + base, "-H", "Access-Control-Request-Method: GET")
    check(status == 204 and h.get("access-control-allow-origin") == base, "CORS preflight answers 204")
    status, _, _ = curl(poll, "-X", "OPTIONS", "-H", "Origin: http://evil.example", "-H",
                        "Access-Control-Request-Method: GET")
    check(status == 403, "a preflight from another origin is refused")

    # Bad parameters: 400 with a JSON error.
    status, h, body = curl(poll + "?since=abc")
    check(status == 400 and json.loads(body).get("error") == "bad cursor", "a non-numeric cursor answers 400")
    status, _, body = curl(poll + "?wait=-1")
    check(status == 400 and "error" in json.loads(body), "a negative wait answers 400")


if __name__ == "__main__":
    sys.exit(main())
