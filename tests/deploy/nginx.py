#!/usr/bin/python3
"""Deploy test: deploy/nginx/herald.conf in front of two herald nodes on one Redis.

    /usr/bin/python3 tests/deploy/nginx.py HERALD_EXAMPLE_CLUSTER NGINX REDIS_SERVER CURL NODE OPENSSL

Starts, each in its own temporary directory and stopped by PID at the end:
  - a certificate made now with Debian's `openssl` (a CA, and a server certificate it signs for
    127.0.0.1, served with the chain as fullchain.pem);
  - redis-server and two examples/cluster nodes on it (--port 0, each one's "listening on" line);
  - nginx from the committed deploy/nginx/herald.conf, included as it is in an http {} block,
    with only its listen port (nginx cannot listen on port 0: a port the kernel just gave out,
    retried if taken), certificate paths and upstream addresses substituted.
Checks through nginx, every wait bounded by a deadline:
  1. SSE over HTTP/2 (curl --http2) arrives event by event: each event is read before the next is
     published (with proxy buffering on, the first would sit in nginx's buffer);
  2. a WebSocket (Python `websockets`, TLS context trusting the test CA) upgrades and receives;
  3. polling: a short poll and a long poll answered when an event arrives;
  4. a client resumes across the nodes: a WebSocket and an SSE stream (Last-Event-ID) reconnect
     through nginx, land on the other node (nginx's log names the upstream) and get exactly the
     events they missed;
  5. headless Chromium opens ten EventSource streams to the origin over HTTP/2 and every one
     receives every event (tests/deploy/chromium_streams.mjs); nginx's log shows ten HTTP/2.0
     stream requests spread over both nodes.
Prints what it measured (arrival times) and ends with a summary line; any failure exits 1.
"""
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
from harness import (Failure, Lines, check, cv, free_port, log, spawn, spki_sha256,  # noqa: E402
                     start_redis, start_watchdog, stop_all)
import harness  # noqa: E402

RECIPE = os.path.join(ROOT, "deploy", "nginx", "herald.conf")
CLUSTER, NGINX, REDIS, CURL, NODE, OPENSSL = sys.argv[1:7]
STEP = 20       # seconds one step may take
OVERALL = 150   # seconds the whole test may take (ctest allows 180)


def wait_for(pred, what, timeout=STEP):
    harness.wait_for(pred, what, timeout)


def run(args, **kw):
    out = subprocess.run(args, capture_output=True, text=True, timeout=STEP, **kw)
    if out.returncode != 0:
        raise Failure("%s failed: %s" % (" ".join(args[:3]), out.stderr.strip()[-500:]))
    return out.stdout


# --- the certificate ------------------------------------------------------------------------------

def make_certificate(tmp):
    """A CA and a server certificate it signs (127.0.0.1, localhost); returns the paths and the
    base64 SHA-256 of the server key's SPKI (what Chromium's spki list takes)."""
    ca_key, ca = os.path.join(tmp, "ca.key"), os.path.join(tmp, "ca.pem")
    key, csr, crt = (os.path.join(tmp, n) for n in ("server.key", "server.csr", "server.pem"))
    ext = os.path.join(tmp, "server.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run([OPENSSL, "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=herald deploy test CA"])
    run([OPENSSL, "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"])
    run([OPENSSL, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", crt, "-days", "2", "-extfile", ext])
    chain = os.path.join(tmp, "fullchain.pem")
    with open(chain, "w") as out, open(crt) as a, open(ca) as b:
        out.write(a.read() + b.read())
    spki = spki_sha256(OPENSSL, crt)
    return ca, chain, key, spki


# --- redis and the nodes ------------------------------------------------------------------------

class Node:
    def __init__(self, name, redis_url):
        self.name = name
        self.proc = spawn([CLUSTER, "--redis", redis_url, "--port", "0"])
        out = Lines(self.proc.stdout)
        wait_for(lambda: out.lines or out.eof, "node %s prints its first line" % name, 10)
        m = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)", out.text()[0] if out.lines else "")
        if not m:
            raise Failure("node %s: unexpected first line %r" % (name, out.text()[:1]))
        self.port = int(m.group(1))
        self.addr = "127.0.0.1:%d" % self.port
        self.base = "http://" + self.addr

    def connected(self):
        with urllib.request.urlopen(self.base + "/node", timeout=10) as res:
            return json.loads(res.read())["connected"]


def publish(node, topic, n):
    """POST to a node directly (not through nginx, so nginx's round robin is the clients' alone)."""
    req = urllib.request.Request("%s/publish?topic=%s" % (node.base, topic), data=json.dumps({"n": n}).encode(),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=10) as res:
        return int(res.read().decode().strip())


# --- nginx ----------------------------------------------------------------------------------------

def substitute(recipe, port, chain, key, nodes):
    """The committed recipe with this test's port, certificate and nodes. Each substitution
    must match what the recipe says, so a change to its shape fails here, visibly."""
    def sub(pattern, repl, text, count):
        out, n = re.subn(pattern, repl, text, flags=re.M)
        if n != count:
            raise Failure("recipe: expected %d match(es) of %r, found %d" % (count, pattern, n))
        return out
    text = sub(r"^(\s*)listen 443 ssl http2;$", r"\1listen 127.0.0.1:%d ssl http2;" % port, recipe, 1)
    text = sub(r"^\s*listen \[::\]:443 ssl http2;\n", "", text, 1)
    text = sub(r"^(\s*ssl_certificate)(\s+)\S+;$", r"\1\g<2>%s;" % chain, text, 1)
    text = sub(r"^(\s*ssl_certificate_key)(\s+)\S+;$", r"\1\g<2>%s;" % key, text, 1)
    servers = iter(nodes)
    text, n = re.subn(r"^(\s*server) 127\.0\.0\.1:\d+;$", lambda m: "%s %s;" % (m.group(1), next(servers).addr),
                      text, flags=re.M)
    if n != len(nodes):
        raise Failure("recipe: expected %d upstream servers, found %d" % (len(nodes), n))
    return text


MAIN_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 1024; }}
http {{
    log_format herald '$request_method|$uri|$server_protocol|$status|$upstream_addr';
    access_log {tmp}/access.log herald;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/herald.conf;
}}
"""


def tls_context(ca):
    ctx = ssl.create_default_context(cafile=ca)
    return ctx


def start_nginx(tmp, ca, chain, key, nodes):
    with open(RECIPE) as f:
        recipe = f.read()
    for _ in range(5):
        port = free_port()
        with open(os.path.join(tmp, "herald.conf"), "w") as f:
            f.write(substitute(recipe, port, chain, key, nodes))
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(MAIN_CONF.format(tmp=tmp))
        proc = spawn([NGINX, "-p", tmp, "-c", os.path.join(tmp, "nginx.conf"), "-e", os.path.join(tmp, "error.log")],
                     stderr=subprocess.STDOUT)
        ctx = tls_context(ca)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
                    with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                        return proc, port
            except OSError:
                with cv:
                    cv.wait(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    raise Failure("nginx did not start: %s" % open(os.path.join(tmp, "error.log")).read()[-1000:])


def access_log(tmp):
    try:
        with open(os.path.join(tmp, "access.log")) as f:
            return [line.split("|") for line in f.read().splitlines()]
    except FileNotFoundError:
        return []


def wait_log(tmp, pred, what):
    """nginx writes a line when a request ends; wait (bounded) for one that pred() accepts."""
    deadline = time.monotonic() + STEP
    while True:
        hits = [line for line in access_log(tmp) if pred(line)]
        if hits:
            return hits
        if time.monotonic() > deadline:
            raise Failure("timeout: nginx log line for " + what)
        with cv:
            cv.wait(0.05)


# --- the checks ---------------------------------------------------------------------------------

def sse_event_by_event(origin, ca, node):
    """curl --http2 follows an SSE stream through nginx; each event must be read before the next
    one is published."""
    curl = spawn([CURL, "-sS", "-N", "--http2", "--cacert", ca, "-D", "-", "-H", "Accept: text/event-stream",
                  origin + "/live?topic=sse"], stderr=subprocess.STDOUT)
    out = Lines(curl.stdout)
    wait_for(lambda: any(l.startswith("retry:") for l in out.text()) or out.eof, "the SSE stream opens")
    head = out.text()
    check(head[0].startswith("HTTP/2 200"), "SSE through nginx is served over HTTP/2 (%s)" % head[0])
    check(any(l.lower().startswith("content-type: text/event-stream") for l in head), "SSE content type")
    arrivals = []
    for n in range(3):
        sent = time.monotonic()
        event_id = publish(node, "sse", n)
        line = "id: %d" % event_id
        wait_for(lambda: any(l == line for l in out.text()), "SSE event %d arrives through nginx" % event_id, 10)
        got = next(t for t, l in out.lines if l == line)
        arrivals.append((event_id, (got - sent) * 1000))
    curl.terminate()
    curl.wait(timeout=10)
    log("     SSE through nginx (HTTP/2), publish -> read: " +
        ", ".join("event %d %.1f ms" % a for a in arrivals))
    check(len(arrivals) == 3, "SSE: 3 events, each read before the next was published")
    return arrivals


async def ws_session(uri, ctx, topic, since, want):
    """Subscribe over a WebSocket through nginx; return the ids of the first `want` events."""
    async with websockets.connect(uri, ssl=ctx, open_timeout=STEP) as ws:
        sub = {"subscribe": topic}
        if since is not None:
            sub["since"] = since
        await ws.send(json.dumps(sub))
        ids, acked = [], False
        while len(ids) < want:
            msg = json.loads(await asyncio.wait_for(ws.recv(), STEP))
            if msg.get("subscribed") == topic:
                acked = True
            elif "id" in msg and msg.get("topic") == topic:
                ids.append(msg["id"])
            elif "error" in msg or msg.get("event") == "reset":
                raise Failure("WebSocket: unexpected %r" % msg)
        return acked, ids


async def ws_live(uri, ctx, node):
    async with websockets.connect(uri, ssl=ctx, open_timeout=STEP) as ws:
        await ws.send(json.dumps({"subscribe": "ws"}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), STEP))
        event_id = await asyncio.get_running_loop().run_in_executor(None, publish, node, "ws", 1)
        msg = json.loads(await asyncio.wait_for(ws.recv(), STEP))
        return ack, event_id, msg


def get(url, ctx, timeout=STEP):
    with urllib.request.urlopen(url, context=ctx, timeout=timeout) as res:
        return res.status, json.loads(res.read())


def polling(origin, ctx, node):
    status, first = get(origin + "/live?topic=poll", ctx)
    check(status == 200 and first["events"] == [], "short poll through nginx: 200, nothing yet")
    event_id = publish(node, "poll", 1)
    status, batch = get("%s/live?topic=poll&since=%d" % (origin, first["cursor"]), ctx)
    check([e["id"] for e in batch["events"]] == [event_id], "short poll through nginx gets the event")
    result = {}

    def long_poll():
        result["answer"] = get("%s/live?topic=poll&since=%d&wait=10" % (origin, batch["cursor"]), ctx)
        with cv:
            cv.notify_all()
    t = threading.Thread(target=long_poll, daemon=True)
    t.start()
    # The long poll is held (nginx's log gets its line only when it ends): publish, then it answers.
    later = publish(node, "poll", 2)
    wait_for(lambda: "answer" in result, "the long poll answers")
    check([e["id"] for e in result["answer"][1]["events"]] == [later], "long poll through nginx gets the event")


def node_of(line, nodes):
    return next((n.name for n in nodes if n.addr == line[4]), line[4])


def live_lines(tmp):
    return [l for l in access_log(tmp) if l[1] == "/live"]


def resume_across_nodes(origin, ca, ctx, tmp, nodes):
    """A WebSocket gets e1 and goes away; e2 and e3 are published meanwhile (on both nodes); it
    comes back through nginx with since=e1 and lands on the other node; then an SSE stream
    resumes from e1 with Last-Event-ID. Each must get exactly e2, e3."""
    wss = origin.replace("https://", "wss://") + "/live"
    seen = len(live_lines(tmp))
    e1 = None

    async def first():
        nonlocal e1
        async with websockets.connect(wss, ssl=ctx, open_timeout=STEP) as ws:
            await ws.send(json.dumps({"subscribe": "hop"}))
            json.loads(await asyncio.wait_for(ws.recv(), STEP))  # the ack
            e1 = await asyncio.get_running_loop().run_in_executor(None, publish, nodes[0], "hop", 1)
            msg = json.loads(await asyncio.wait_for(ws.recv(), STEP))
            if msg.get("id") != e1:
                raise Failure("WebSocket: expected event %d, got %r" % (e1, msg))
    asyncio.run(first())
    # nginx logs a request when it ends: the closed WebSocket's line names its node.
    wait_for(lambda: len(live_lines(tmp)) > seen, "nginx logs the first WebSocket")
    first_line = live_lines(tmp)[seen]
    missed = [publish(nodes[1], "hop", 2), publish(nodes[0], "hop", 3)]
    # Round robin sends the next request to the other node; the log confirms it (a few tries,
    # bounded, in case something else took a turn in between).
    for attempt in range(4):
        acked, ids = asyncio.run(ws_session(wss, ctx, "hop", e1, 2))
        wait_for(lambda: len(live_lines(tmp)) > seen + 1 + attempt, "nginx logs the resumed WebSocket")
        second_line = live_lines(tmp)[seen + 1 + attempt]
        check(acked and ids == missed, "WebSocket resumed from %d got exactly the missed %s" % (e1, missed))
        if second_line[4] != first_line[4]:
            break
    check(first_line[3] == "101" and second_line[3] == "101", "both WebSockets upgraded through nginx (101)")
    check(second_line[4] != first_line[4], "the WebSocket resumed on the other node (%s, then %s)" %
          (node_of(first_line, nodes), node_of(second_line, nodes)))

    before = len(live_lines(tmp))
    curl = spawn([CURL, "-sS", "-N", "--http2", "--cacert", ca, "-H", "Accept: text/event-stream",
                  "-H", "Last-Event-ID: %d" % e1, origin + "/live?topic=hop"], stderr=subprocess.STDOUT)
    out = Lines(curl.stdout)
    wanted = ["id: %d" % i for i in missed]
    wait_for(lambda: all(w in out.text() for w in wanted) or out.eof, "SSE resumes from Last-Event-ID")
    curl.terminate()
    curl.wait(timeout=10)
    ids = [int(l[4:]) for l in out.text() if l.startswith("id: ")]
    check(ids == missed, "SSE resumed with Last-Event-ID %d got exactly %s" % (e1, missed))
    wait_for(lambda: len(live_lines(tmp)) > before, "nginx logs the SSE stream")
    log("     resume: WebSocket on node %s, then node %s; SSE resumed on node %s" %
        (node_of(first_line, nodes), node_of(second_line, nodes), node_of(live_lines(tmp)[before], nodes)))


def chromium_streams(origin, node, spki, tmp, nodes):
    before = len(access_log(tmp))
    started = time.monotonic()
    out = subprocess.run([NODE, os.path.join(HERE, "chromium_streams.mjs"), origin,
                          "%s/publish?topic=chromium" % node.base, spki, "10"],
                         capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    if out.returncode != 0 or not last.startswith("{"):
        raise Failure("chromium: %s %s" % (out.stdout[-2000:], out.stderr[-2000:]))
    result = json.loads(last)
    check(result["protocol"] == "h2", "Chromium loaded the origin over HTTP/2 (%s)" % result["protocol"])
    check(result["streams"] == 10 and all(s["ids"] == result["published"] for s in result["seen"]),
          "Chromium: all 10 EventSource streams opened (in %d ms) and each received every event %s" %
          (result["opened_ms"], result["published"]))
    # The streams' log lines: ten HTTP/2.0 requests for /live, spread over both nodes.
    wait_for(lambda: len([l for l in access_log(tmp)[before:] if l[1] == "/live"]) >= 10,
             "nginx logs the ten streams")
    streams = [l for l in access_log(tmp)[before:] if l[1] == "/live"]
    check(len(streams) == 10 and all(l[2] == "HTTP/2.0" and l[3] == "200" for l in streams),
          "nginx served the ten streams over HTTP/2.0")
    upstreams = {l[4] for l in streams}
    check(upstreams == {n.addr for n in nodes}, "the ten streams were spread over both nodes (round robin)")
    log("     chromium: %d streams open after %d ms, whole browser step %.1f s" % (10, result["opened_ms"], took))


def main():
    if not os.path.exists(NGINX):
        print("SKIP nginx is not installed (scripts/setup installs Debian's nginx): deploy.nginx not run")
        return 77
    start_watchdog(OVERALL)
    tmp = tempfile.mkdtemp(prefix="herald-deploy-")
    os.chmod(tmp, 0o755)  # nginx's workers (nobody when run as root) enter it
    nginx = None
    started = time.monotonic()
    try:
        ca, chain, key, spki = make_certificate(tmp)
        redis, redis_port = start_redis(REDIS, tmp)
        url = "redis://127.0.0.1:%d" % redis_port
        nodes = [Node("A", url), Node("B", url)]
        for n in nodes:
            deadline = time.monotonic() + STEP
            while not n.connected():
                if time.monotonic() > deadline:
                    raise Failure("node %s is not connected to Redis" % n.name)
                with cv:
                    cv.wait(0.05)
        nginx, port = start_nginx(tmp, ca, chain, key, nodes)
        origin = "https://127.0.0.1:%d" % port
        with open(os.path.join(tmp, "error.log")) as f:
            complaints = [l for l in f.read().splitlines() if re.search(r"\[(warn|error|crit|alert|emerg)\]", l)]
        check(not complaints, "nginx takes the recipe without a warning%s" % "".join("\n     " + l for l in complaints))
        log("nginx %s on %s, nodes %s" % (NGINX, origin, ", ".join(n.addr for n in nodes)))
        ctx = tls_context(ca)

        sse_event_by_event(origin, ca, nodes[0])
        ack, event_id, msg = asyncio.run(ws_live(origin.replace("https://", "wss://") + "/live", ctx, nodes[1]))
        check(ack.get("subscribed") == "ws" and msg.get("id") == event_id and msg.get("data") == {"n": 1},
              "WebSocket through nginx: upgraded, subscribed, received event %d" % event_id)
        polling(origin, ctx, nodes[0])
        resume_across_nodes(origin, ca, ctx, tmp, nodes)
        chromium_streams(origin, nodes[1], spki, tmp, nodes)

        # Graceful stops by PID: nginx (QUIT), the nodes (TERM), then Redis.
        nginx.send_signal(signal.SIGQUIT)
        check(nginx.wait(timeout=STEP) == 0, "nginx stops cleanly")
        for n in nodes:
            n.proc.terminate()
            check(n.proc.wait(timeout=STEP) == 0, "node %s stops cleanly" % n.name)
        redis.terminate()
        redis.wait(timeout=STEP)
        log("PASS deploy.nginx in %.1f s" % (time.monotonic() - started))
        return 0
    except Failure as e:
        log("FAIL " + str(e))
        try:
            log(open(os.path.join(tmp, "error.log")).read()[-2000:])
        except OSError:
            pass
        return 1
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
