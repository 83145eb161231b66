"""Hostile-input suite: raw-socket attacks on herald_hostile_server (server.cpp states its budgets).

    python3 tests/hostile/hostile.py path/to/herald_hostile_server

Every case asserts the clear error the attack must get (an HTTP status, a WebSocket close code, an
error message) and then that a fresh, well-behaved client is still served: it subscribes over
WebSocket, an event is published, and it receives that event. The cases run twice: the first
round warms the server up (allocator pools, the hub's tables); after it, and after the second
round, the history the attacks left has aged out (history_age 2 s) and the server's resident
memory (VmRSS of /proc/PID/status) is read. The second reading must stay within RSS_TOLERANCE of
the first: a leak or an unbounded structure grows with every round. Python 3 standard library
only; every wait has a deadline, every loop a bound; the whole suite is cut at OVERALL seconds.
"""
import base64
import json
import os
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from harness import Failure, check, log, spawn, start_watchdog, stop_all  # noqa: E402

OVERALL = 90            # seconds; a passing run takes under 10
STEP = 5.0              # the deadline of any one wait
RSS_TOLERANCE = 2 << 20  # bytes the second round may add to the first round's level (it adds ~0.1 MiB)

server = None
port = 0


def rss():
    with open("/proc/%d/status" % server.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise Failure("no VmRSS for the server")


# --- HTTP over raw sockets -------------------------------------------------------------------------

def connect(rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(STEP)
    s.connect(("127.0.0.1", port))
    return s


def send_quietly(s, data):
    """Sends what the server still takes: it may close once it has seen enough to refuse."""
    try:
        s.sendall(data)
    except OSError:
        pass


class Reader:
    """Buffered reads from one socket, each bounded by STEP."""

    def __init__(self, s):
        self.s, self.buf, self.eof = s, b"", False

    def more(self, deadline):
        if self.eof:
            return False
        self.s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.s.recv(65536)
        except socket.timeout:
            raise Failure("no answer in time")
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def take(self, n, deadline):
        while len(self.buf) < n:
            if not self.more(deadline):
                raise Failure("connection closed after %d of %d bytes" % (len(self.buf), n))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self):
        """One HTTP response: (status, headers with lower-case names, body)."""
        deadline = time.monotonic() + STEP
        while b"\r\n\r\n" not in self.buf:
            if not self.more(deadline):
                raise Failure("connection closed before a response (%r)" % self.buf[:80])
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = self.take(int(headers["content-length"]), deadline)
        elif status in (101, 204, 304):
            body = b""
        else:  # ends with the connection
            while self.more(deadline):
                pass
            body, self.buf = self.buf, b""
        return status, headers, body

    def closed(self):
        """Whether the peer closes (reads to the end, within STEP)."""
        deadline = time.monotonic() + STEP
        while self.more(deadline):
            pass
        return True


def request(method, target, headers=None, body=b"", host=None):
    h = {"Host": host or "127.0.0.1:%d" % port}
    h.update(headers or {})
    if body:
        h["Content-Length"] = str(len(body))
    return ("%s %s HTTP/1.1\r\n" % (method, target) + "".join("%s: %s\r\n" % kv for kv in h.items()) +
            "\r\n").encode() + body


def exchange(data, rcvbuf=None):
    s = connect(rcvbuf)
    send_quietly(s, data)
    r = Reader(s)
    try:
        return r.response()
    finally:
        s.close()


def publish(topic, data):
    status, _, body = exchange(request("POST", "/publish?topic=" + topic, {"Connection": "close"},
                                       data.encode() if isinstance(data, str) else data))
    if status != 200:
        raise Failure("publish to %s: %d %r" % (topic, status, body))
    return int(body)


def pipeline(requests):
    """Several requests on one keep-alive connection, sent at once; their answers in order."""
    s = connect()
    s.sendall(b"".join(requests))
    r = Reader(s)
    try:
        return [r.response() for _ in requests]
    finally:
        s.close()


def stats():
    status, _, body = exchange(request("GET", "/stats", {"Connection": "close"}))
    if status != 200:
        raise Failure("stats: %d" % status)
    return json.loads(body)


# --- WebSocket over raw sockets --------------------------------------------------------------------

def upgrade_request(target="/ws", key=None, extra=None, host=None, version="13"):
    h = {"Upgrade": "websocket", "Connection": "Upgrade",
         "Sec-WebSocket-Key": key if key is not None else base64.b64encode(os.urandom(16)).decode()}
    if version is not None:
        h["Sec-WebSocket-Version"] = version
    h.update(extra or {})
    return request("GET", target, h, host=host)


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class Ws:
    def __init__(self, target="/ws", rcvbuf=None):
        self.s = connect(rcvbuf)
        self.s.sendall(upgrade_request(target))
        self.r = Reader(self.s)
        status, _, _ = self.r.response()
        if status != 101:
            raise Failure("upgrade answered %d" % status)

    def send(self, opcode, payload=b"", **kw):
        send_quietly(self.s, frame(opcode, payload, **kw))

    def text(self, obj):
        self.send(0x1, json.dumps(obj))

    def next(self, deadline=None):
        """The next frame as (opcode, payload); None when the connection ended without one."""
        deadline = deadline or time.monotonic() + STEP
        try:
            b0, b1 = self.r.take(2, deadline)
            n = b1 & 0x7f
            if n == 126:
                n = struct.unpack("!H", self.r.take(2, deadline))[0]
            elif n == 127:
                n = struct.unpack("!Q", self.r.take(8, deadline))[0]
            return b0 & 0x0f, self.r.take(n, deadline)
        except Failure:
            if self.r.eof:
                return None
            raise

    def until(self, pred, what):
        """Frames until pred(opcode, payload) holds; that frame (Failure if the stream ends)."""
        deadline = time.monotonic() + STEP
        for _ in range(100000):
            f = self.next(deadline)
            if f is None:
                raise Failure("connection ended before " + what)
            if pred(*f):
                return f
        raise Failure("too many frames before " + what)

    def close_code(self):
        """The code of the server's close frame (skipping what comes before it); None if the
        connection was cut without one. Answers the close, as a client must."""
        deadline = time.monotonic() + STEP
        for _ in range(100000):
            f = self.next(deadline)
            if f is None:
                return None
            if f[0] == 0x8:
                self.send(0x8, f[1][:2])
                return struct.unpack("!H", f[1][:2])[0] if len(f[1]) >= 2 else 1005
        raise Failure("too many frames before the close")

    def close(self):
        self.s.close()


def envelope_with(event_id):
    def pred(op, payload):
        if op != 0x1:
            return False
        try:
            return json.loads(payload).get("id") == event_id
        except ValueError:
            return False
    return pred


def fresh_client_served(topic="lobby"):
    """A well-behaved client: subscribes, an event is published, it arrives."""
    ws = Ws()
    try:
        ws.text({"subscribe": topic})
        ws.until(lambda op, p: op == 0x1 and b'"subscribed"' in p, "the subscribe ack")
        event_id = publish(topic, json.dumps({"fresh": True}))
        ws.until(envelope_with(event_id), "the event published after subscribing")
    finally:
        ws.close()


# --- the cases -------------------------------------------------------------------------------------

def http_bad_request_line():
    status, _, _ = exchange(b"GARBAGE\r\n\r\n")
    check(status == 400, "a bad request line gets 400, got %d" % status)


def http_huge_headers():
    status, _, _ = exchange(request("GET", "/poll?topic=lobby", {"X-Big": "a" * 16384}))
    check(status == 431, "a 16 KiB header gets 431, got %d" % status)


def http_huge_body():
    status, _, body = exchange(request("POST", "/publish?topic=lobby", {"Content-Length": "100000"}) + b"x" * 1024)
    check(status == 413, "a 100,000-byte body gets 413, got %d" % status)


def http_slowloris():
    s = connect()
    started = time.monotonic()
    s.sendall(b"GET /poll?topic=lobby HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    got = b""
    cut = False
    s.settimeout(0.2)
    for i in range(25):  # a header line every 200 ms; request_timeout is 1 s
        try:
            chunk = s.recv(4096)
            if not chunk:
                cut = True
                break
            got += chunk
        except socket.timeout:
            pass
        except ConnectionResetError:
            cut = True
            break
        send_quietly(s, b"X-Slow-%d: 1\r\n" % i)
    s.close()
    check(cut, "a request trickling in is cut")
    check(got == b"", "the cut request gets no answer (got %r)" % got[:40])
    check(time.monotonic() - started < 3, "it is cut at the request timeout (1 s)")


def ws_bad_key():
    status, _, body = exchange(upgrade_request(key="abc"))
    check(status == 400 and b"Sec-WebSocket-Key" in body, "Sec-WebSocket-Key: abc gets 400 naming it, got %d" % status)


def ws_missing_version():
    status, _, _ = exchange(upgrade_request(version=None))
    check(status in (400, 426), "an upgrade without Sec-WebSocket-Version is refused, got %d" % status)


def ws_foreign_origin():
    status, _, body = exchange(upgrade_request(extra={"Origin": "http://evil.example"}))
    check(status == 403 and b"origin not allowed" in body, "a foreign Origin gets 403 before any 101, got %d" % status)


def bad_host():
    status, _, body = exchange(upgrade_request(host="rebinding.example"))
    check(status == 421 and b"host not allowed" in body, "an upgrade for another Host gets 421, got %d" % status)
    status, _, _ = exchange(request("GET", "/sse?topic=lobby", {"Accept": "text/event-stream"}, host="evil.example:80"))
    check(status == 421, "a stream for another Host gets 421, got %d" % status)


def frame_violation(payload_frames, expect, what):
    ws = Ws("/ws?topic=lobby")
    try:
        for f in payload_frames:
            send_quietly(ws.s, f)
        code = ws.close_code()
        check(code == expect, "%s: close %s, expected %s" % (what, code, expect))
    finally:
        ws.close()


def frame_unmasked():
    frame_violation([frame(0x1, "hello", mask=False)], 1002, "an unmasked client frame")


def frame_reserved_bits():
    frame_violation([frame(0x1, "hello", rsv=0b100)], 1002, "RSV1 without an extension")


def frame_oversized():
    frame_violation([frame(0x1, b"a" * (70 * 1024))], 1009, "a 70 KiB message (read_message_max 64 KiB)")


def frame_bad_utf8():
    frame_violation([frame(0x1, b"\xff\xfe\xfd")], 1007, "a text frame that is not UTF-8")


def frame_bad_close_code():
    frame_violation([frame(0x8, close_payload(1005))], 1002, "close code 1005")
    frame_violation([frame(0x8, close_payload(5000))], None, "close code 5000 (cut, never echoed)")


def frame_fragmented_control():
    frame_violation([frame(0x9, "ping", fin=False)], 1002, "a fragmented ping")


def flood(frames, what):
    ws = Ws("/ws")
    try:
        send_quietly(ws.s, b"".join(frames))
        _, payload = ws.until(lambda op, p: op == 0x1 and b'"rate limited"' in p, "the rate limit's error frame")
        code = ws.close_code()
        check(code == 1008, "%s: close %s after the error frame, expected 1008" % (what, code))
        return json.loads(payload)
    finally:
        ws.close()


def message_flood():
    flood([frame(0x1, "x")] * 1000, "a message flood")


def ping_flood():
    msg = flood([frame(0x9, "p")] * 1000, "a ping flood")
    check("pings count" in msg.get("message", ""), "the error says pings count: %r" % msg)


def connection_flood():
    held = []
    try:
        # The server's max_connections; each sits idle under request_timeout (1 s). Connections
        # are accepted in order, so the ones below find all 64 registered.
        for _ in range(64):
            held.append(connect())
        status, headers, body = exchange(request("GET", "/sse?topic=lobby", {"Accept": "text/event-stream"}))
        check(status == 200 and headers.get("content-type") == "text/event-stream" and b"retry:" in body and
              b": refused: too many connections" in body,
              "an EventSource over the server's limit gets a stream that ends with retry: (got %d %r)" % (status, body))
        status, headers, _ = exchange(upgrade_request())
        check(status == 503 and "retry-after" in headers, "an upgrade over the limit gets 503 + Retry-After, got %d" % status)
        status, headers, body = exchange(request("GET", "/poll?topic=lobby"))
        check(status == 503 and "retry-after" in headers and b"too many connections" in body,
              "a poll over the limit gets 503 + Retry-After, got %d" % status)
    finally:
        for s in held:
            s.close()


def slow_consumer():
    before = stats()["slow_consumer_disconnects"]
    ws = Ws("/ws", rcvbuf=4096)
    try:
        ws.text({"subscribe": "slow"})
        ws.until(lambda op, p: op == 0x1 and b'"subscribed"' in p, "the subscribe ack")
        # No longer read: its queue (64 events, 256 KiB) fills behind a socket that takes little
        # (8 MB: more than the kernel buffers on loopback).
        answers = pipeline([request("POST", "/publish?topic=slow", body=b"s" * 32000) for _ in range(250)])
        check(all(a[0] == 200 for a in answers), "the slow topic's publishes")
        wait_for(lambda: stats()["slow_consumer_disconnects"] != before, "the slow consumer is cut")
        code = ws.close_code()
        check(code == 1013, "the slow consumer's close: %s, expected 1013" % code)
    finally:
        ws.close()


def topic_churn():
    publish("lobby", "kept")  # retained for history_age, so the fresh client's topic exists
    answers = pipeline([request("POST", "/publish?topic=churn-%d" % i, body=b"c") for i in range(600)])
    refused = [a for a in answers if a[0] != 200]
    check(refused and all(a[0] == 503 and b"too many topics" in a[2] and "retry-after" in a[1] for a in refused),
          "past max_topics (500) a publish gets 503 too many topics with Retry-After")
    check(stats()["topics"] <= 500, "the hub holds at most max_topics topics")


def history_and_poll_budgets():
    payload = b"h" * (60 * 1024)
    answers = pipeline([request("POST", "/publish?topic=bulk", body=payload) for _ in range(90)])
    check(all(a[0] == 200 for a in answers), "the bulk publishes: %s" % sorted({a[0] for a in answers}))
    first = int(answers[0][2])
    check(stats()["history_bytes"] <= 4 << 20, "retained history stays within max_history_bytes (4 MiB)")
    # The oldest events gave way: a cursor before them is told, never silently short.
    status, _, body = exchange(request("GET", "/poll?topic=bulk&since=%d&limit=1000" % (first - 1)))
    answer = json.loads(body)
    check(status == 200 and answer.get("reset") is True, "a cursor the byte budget evicted gets reset: true")
    check(len(body) <= 1 << 20 and answer.get("more") is True,
          "a poll answer stays within max_answer_bytes (1 MiB) and says more: %d bytes" % len(body))
    # Twenty polls for all of it that never read their answers: they hold the stored events, not copies.
    base = rss()
    held = []
    try:
        for _ in range(20):
            s = connect(rcvbuf=4096)
            s.sendall(request("GET", "/poll?topic=bulk&since=%d&limit=1000" % (first - 1)))
            held.append(s)
        stats()  # a fence: the server took the polls (accepted and read earlier) before this request
        grew = rss() - base
        history_and_poll_budgets.unread_growth = grew
        check(grew < 4 << 20, "twenty unread 1 MiB answers hold under 4 MiB (grew %d bytes)" % grew)
    finally:
        for s in held:
            s.close()


CASES = [http_bad_request_line, http_huge_headers, http_huge_body, http_slowloris, ws_bad_key, ws_missing_version,
         ws_foreign_origin, bad_host, frame_unmasked, frame_reserved_bits, frame_oversized, frame_bad_utf8,
         frame_bad_close_code, frame_fragmented_control, message_flood, ping_flood, connection_flood, slow_consumer,
         history_and_poll_budgets, topic_churn]  # churn last: new topics wait for its to age out


def round_of_attacks(n):
    for case in CASES:
        started = time.monotonic()
        case()
        fresh_client_served()
        log("ok   round %d: %-26s then a fresh client is served (%.2f s)" % (n, case.__name__,
                                                                              time.monotonic() - started))


def wait_for(pred, what):
    deadline = time.monotonic() + STEP
    while not pred():
        if time.monotonic() >= deadline:
            raise Failure("timeout after %g s: %s" % (STEP, what))
        time.sleep(0.05)


def settled_rss():
    """RSS once the attackers are gone and what they left has aged out (history_age 2 s; reading
    the stats sweeps what expired): every topic they made is forgotten, the fresh clients' at most
    is left."""
    wait_for(lambda: stats()["connections"] == 0, "every attacker's connection is gone")
    wait_for(lambda: stats()["topics"] <= 1, "the attacks' topics age out and are forgotten")
    fresh_client_served()
    return rss()


def main():
    global server, port
    if len(sys.argv) != 2:
        print("usage: hostile.py path/to/herald_hostile_server", file=sys.stderr)
        return 2
    start_watchdog(OVERALL)
    server = spawn([sys.argv[1], "--port", "0"])
    try:
        line = server.stdout.readline()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        check(m is not None, "the server announces its port (%r)" % line.strip())
        port = int(m.group(1))
        fresh_client_served()
        started = rss()
        round_of_attacks(1)
        baseline = settled_rss()
        round_of_attacks(2)
        after = settled_rss()
        log("rss: %d KiB at start, %d KiB after the warm-up round, %d KiB after the second round "
            "(tolerance %d KiB); twenty unread poll answers added %d KiB" %
            (started >> 10, baseline >> 10, after >> 10, RSS_TOLERANCE >> 10,
             history_and_poll_budgets.unread_growth >> 10))
        check(after <= baseline + RSS_TOLERANCE, "memory comes back near its level after the attackers leave")
        check(server.poll() is None, "the server is still running")
        log("PASS")
        return 0
    except Failure as e:
        log("FAIL " + str(e))
        return 1
    finally:
        stop_all()  # the one process this script started, by its PID


if __name__ == "__main__":
    sys.exit(main())
