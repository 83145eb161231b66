#!/usr/bin/python3
"""Interop: three independent clients against a cluster of herald_example_cluster processes.

    /usr/bin/python3 tests/interop/cluster.py path/to/herald_example_cluster \
        [/usr/bin/redis-server] [curl] [node]

Starts its own redis-server (free port, temporary directory, no persistence; ready when it says
"Ready to accept connections") and three nodes on it (--port 0, each one's "listening on" line),
then follows topic "t" with three clients that share nothing with herald:
  - polling: curl, long polls (wait=2) chained by cursor, a short poll first after a hop;
  - websocket: Python's `websockets`, {"subscribe":"t","since":N};
  - sse: Node's `eventsource` (cluster_eventsource.mjs), Last-Event-ID.
Checks, every wait bounded by a deadline:
  1. an event POSTed to node A reaches the clients on B and C, with the id A answered;
  2. kill -9 of the node the clients follow, twice: events are published on the other nodes
     while the clients are away, then each client resumes on another node with its cursor (the
     second time on a node started after the kill, whose memory does not cover the cursors);
  3. Redis paused (SIGSTOP): POST /publish answers 503 with Retry-After: 1 in bounded time, the
     clients stay connected, and after SIGCONT they get what follows and never the failed event;
  4. every client saw exactly the published ids, once each, in order, with their payloads; no
     reset notice; /node reports the last id; POST /publish refuses bad topics (400); SIGTERM
     stops each remaining node cleanly (exit 0).
Ends with a one-line summary. Processes are stopped by PID; any failure exits 1.
"""
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = sys.argv[1] if len(sys.argv) > 1 else ""
REDIS = sys.argv[2] if len(sys.argv) > 2 else "/usr/bin/redis-server"
CURL = sys.argv[3] if len(sys.argv) > 3 else "curl"
NODE = sys.argv[4] if len(sys.argv) > 4 else "node"
TOPIC = "t"
STEP = 20          # seconds one step may take
OVERALL = 100      # seconds the whole test may take (ctest allows 120)

cv = threading.Condition()   # guards every shared field below; notified on every change
children = []                # every process this script started (stopped by PID at the end)


class Failure(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def check(cond, what):
    if not cond:
        raise Failure(what)
    log("ok   " + what)


def wait_for(pred, what, timeout=STEP):
    """Waits until pred() holds (checked under cv, on every notify and every 50 ms)."""
    deadline = time.monotonic() + timeout
    with cv:
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("timeout after %g s: %s" % (timeout, what))
            cv.wait(min(left, 0.05))


def watchdog():
    print("FAIL overall timeout (%d s)" % OVERALL, flush=True)
    for p in children:
        if p.poll() is None:
            p.kill()
    os._exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lines:
    """A child's stdout, read on a thread: the lines so far, and whether it ended."""

    def __init__(self, stream):
        self.lines, self.eof = [], False
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            with cv:
                self.lines.append(line.rstrip("\n"))
                cv.notify_all()
        with cv:
            self.eof = True
            cv.notify_all()


def spawn(args, **kw):
    p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, close_fds=True, **kw)
    children.append(p)
    return p


def start_redis(tmp):
    # A port free_port() saw free can be taken before Redis binds it: then Redis exits; retry.
    for _ in range(5):
        port = free_port()
        proc = spawn([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp, "--save", "",
                      "--appendonly", "no", "--daemonize", "no"], stderr=subprocess.STDOUT)
        out = Lines(proc.stdout)
        ready = lambda: any("Ready to accept connections" in line for line in out.lines)
        wait_for(lambda: ready() or out.eof, "redis-server starts", 10)
        if ready():
            return proc, port
        proc.wait(timeout=10)
    raise Failure("redis-server did not start: %s" % "\n".join(out.lines[-5:]))


def http(method, url, body=None):
    """(status, headers, body text) of one request; HTTP errors are answers, not exceptions."""
    req = urllib.request.Request(url, data=body.encode() if body is not None else None, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, res.headers, res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


class Node:
    """One herald_example_cluster process."""

    def __init__(self, name, redis_url):
        self.name = name
        self.proc = spawn([EXAMPLE, "--redis", redis_url, "--port", "0"])
        out = Lines(self.proc.stdout)
        wait_for(lambda: out.lines or out.eof, "node %s prints its first line" % name, 10)
        m = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+))", out.lines[0] if out.lines else "")
        if not m or int(m.group(2)) == 0:
            raise Failure("node %s: unexpected first line %r" % (name, out.lines[:1]))
        self.base = m.group(1)
        self.live = self.base + "/live"

    def status(self):
        code, _, body = http("GET", self.base + "/node")
        if code != 200:
            raise Failure("GET /node on %s answered %d" % (self.name, code))
        return json.loads(body)

    def wait_connected(self):
        deadline = time.monotonic() + STEP
        while not self.status()["connected"]:
            if time.monotonic() > deadline:
                raise Failure("node %s is not connected to Redis" % self.name)
            with cv:
                cv.wait(0.05)

    def kill(self):
        self.proc.kill()  # SIGKILL to this node's PID
        self.proc.wait(timeout=10)


class Follower:
    """What one client saw: events (id, n, node), the node it follows, the node it should."""

    def __init__(self, name, node, since):
        self.name, self.target, self.cursor = name, node, since
        self.node = None          # the node of its current connection, once open
        self.open = False
        self.events, self.resets, self.errors = [], [], []
        self.hops = 0
        self.opens = 0            # connections opened (for polling: answers received)
        self.stopping = False

    def opened(self, node):
        with cv:
            if self.node is not None and self.node is not node:
                self.hops += 1
            self.node, self.open = node, True
            self.opens += 1
            cv.notify_all()

    def lost(self):
        with cv:
            self.open = False
            cv.notify_all()

    def got(self, event_id, data, node):
        with cv:
            self.events.append((int(event_id), data["n"], node.name))
            self.cursor = int(event_id)
            cv.notify_all()

    def failed(self, what):
        with cv:
            self.errors.append(what)
            cv.notify_all()

    def hop(self, node):
        with cv:
            self.target = node
            cv.notify_all()

    def has(self, event_id):
        return any(e[0] == event_id for e in self.events)

    def wait_hop_order(self, dead):
        """After losing `dead`: wait (bounded) until the test names the node to go to."""
        wait_for(lambda: self.stopping or self.target is not dead, "%s: told where to go" % self.name, 40)


class PollClient(Follower):
    """curl: long polls chained by cursor on the node it follows; the first request on a node it
    hops to is a short poll."""

    def start(self):
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            short = True
            while not self.stopping:
                node = self.target
                url = "%s?topic=%s&since=%d%s" % (node.live, TOPIC, self.cursor, "" if short else "&wait=2")
                out = subprocess.run([CURL, "-sS", "-i", "--max-time", "10", url], capture_output=True,
                                     timeout=15)
                if out.returncode != 0:  # the node is gone (reset, refused)
                    if self.stopping:
                        return
                    self.lost()
                    self.wait_hop_order(node)
                    short = True
                    continue
                head, _, body = out.stdout.partition(b"\r\n\r\n")
                status = int(head.split()[1])
                if status != 200:
                    return self.failed("poll answered %d: %r" % (status, body[:200]))
                batch = json.loads(body)
                if batch.get("reset"):
                    with cv:
                        self.resets.append(batch)
                for e in batch["events"]:
                    self.got(e["id"], e["data"], node)
                with cv:
                    self.cursor = batch["cursor"]
                self.opened(node)
                short = False
        except Exception as e:  # reported by the main thread
            self.failed("polling client: %r" % e)


class WsClient(Follower):
    """Python websockets: subscribe with since = the last id seen, on every (re)connection."""

    def start(self):
        self.thread = threading.Thread(target=lambda: asyncio.run(self.run()), daemon=True)
        self.thread.start()

    async def run(self):
        try:
            while not self.stopping:
                node = self.target
                try:
                    async with websockets.connect(node.live.replace("http://", "ws://", 1), open_timeout=5,
                                                  close_timeout=2) as ws:
                        await ws.send(json.dumps({"subscribe": TOPIC, "since": self.cursor}))
                        while not self.stopping:
                            try:
                                raw = await asyncio.wait_for(ws.recv(), 0.25)
                            except asyncio.TimeoutError:
                                continue
                            msg = json.loads(raw)
                            if msg.get("subscribed") == TOPIC:
                                self.opened(node)
                            elif msg.get("event") == "reset":
                                with cv:
                                    self.resets.append(msg)
                            elif "id" in msg and msg.get("topic") == TOPIC:
                                self.got(msg["id"], msg["data"], node)
                            else:
                                self.failed("websocket: unexpected message %r" % msg)
                except (websockets.ConnectionClosed, OSError, asyncio.TimeoutError):
                    if self.stopping:
                        return
                    self.lost()
                    await asyncio.to_thread(self.wait_hop_order, node)  # off the loop: it blocks on cv
        except Exception as e:
            self.failed("websocket client: %r" % e)


class SseClient(Follower):
    """Node's eventsource through cluster_eventsource.mjs; a hop opens a new EventSource."""

    def start(self, nodes):
        self.nodes = nodes  # every node it may be sent to (a list that grows)
        self.proc = spawn([NODE, os.path.join(HERE, "cluster_eventsource.mjs")], stdin=subprocess.PIPE)
        threading.Thread(target=self.read, daemon=True).start()
        self.send_open(self.target)

    def url(self, node):
        return "%s?topic=%s" % (node.live, TOPIC)

    def send_open(self, node):
        self.proc.stdin.write("open %s %d\n" % (self.url(node), self.cursor))
        self.proc.stdin.flush()

    def node_of(self, url):
        return next(n for n in self.nodes if self.url(n) == url)

    def hop(self, node):
        super().hop(node)
        self.send_open(node)

    def read(self):
        try:
            for line in self.proc.stdout:
                msg = json.loads(line)
                if "open" in msg:
                    self.opened(self.node_of(msg["open"]))
                elif "event" in msg:
                    self.got(msg["event"]["id"], json.loads(msg["event"]["data"]), self.node_of(msg["url"]))
                elif "reset" in msg:
                    with cv:
                        self.resets.append(msg)
                elif "error" in msg:
                    if msg["error"] == self.url(self.target):
                        self.lost()
        except Exception as e:
            self.failed("eventsource client: %r" % e)

    def stop(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        except OSError:
            pass
        return self.proc.wait(timeout=10)


class Cluster:
    def __init__(self, redis_url):
        self.redis_url = redis_url
        self.nodes = []      # every node started, killed ones too
        self.published = []  # (id, n), in publish order
        self.kills = 0

    def add(self, name):
        node = Node(name, self.redis_url)
        self.nodes.append(node)
        node.wait_connected()
        return node

    def publish(self, node):
        n = len(self.published)
        code, headers, body = http("POST", "%s/publish?topic=%s" % (node.base, TOPIC),
                                   json.dumps({"n": n, "via": node.name}))
        if code != 200 or not re.fullmatch(r"\d+\n?", body):
            raise Failure("POST /publish on %s answered %d %r" % (node.name, code, body))
        event_id = int(body)
        if self.published and event_id <= self.published[-1][0]:
            raise Failure("ids not increasing across nodes: %d after %d" % (event_id, self.published[-1][0]))
        self.published.append((event_id, n))
        return event_id

    def kill(self, node):
        node.kill()
        self.kills += 1


def main(tmp):
    redis, redis_port = start_redis(tmp)
    cluster = Cluster("redis://127.0.0.1:%d" % redis_port)
    a, b, c = cluster.add("A"), cluster.add("B"), cluster.add("C")
    log("ok   redis-server on :%d, nodes A %s, B %s, C %s" % (redis_port, a.base, b.base, c.base))

    # A first event gives every client a cursor to start from (ids are µs-based, not 0-based).
    start = cluster.publish(a)
    poll, ws, sse = PollClient("polling", b, start), WsClient("websocket", c, start), SseClient("sse", b, start)
    clients = [poll, ws, sse]
    poll.start()
    ws.start()
    sse.start(cluster.nodes)
    try:
        run(cluster, redis, clients)
    finally:
        for cl in clients:
            cl.stopping = True
        with cv:
            cv.notify_all()
        poll.thread.join(timeout=15)
        ws.thread.join(timeout=15)
        sse.stop()


def all_have(clients, event_id):
    for cl in clients:
        if cl.errors:
            raise Failure("%s: %s" % (cl.name, cl.errors[0]))
    return all(cl.has(event_id) for cl in clients)


def kill_under(cluster, clients, victim, followers, away):
    """kill -9 `victim` while `followers` follow it; away() publishes while they are away and
    returns where each resumes; then one more event on each of those nodes, and every client
    must have everything."""
    names = ", ".join(f.name for f in followers)
    wait_for(lambda: all(f.open and f.node is victim for f in followers), "%s follow %s" % (names, victim.name))
    cluster.kill(victim)
    wait_for(lambda: not any(f.open for f in followers), "%s notice that %s is gone" % (names, victim.name))
    moves = away()
    for follower, node in moves.items():
        follower.hop(node)
    for node in dict.fromkeys(moves.values()):
        last = cluster.publish(node)
    wait_for(lambda: all_have(clients, last), "after %s's kill: the missed events, then live ones" % victim.name)
    check(all(f.node is node for f, node in moves.items()),
          "resumed after %s's kill: %s" % (victim.name, ", ".join("%s on %s" % (f.name, n.name) for f, n in moves.items())))


def run(cluster, redis, clients):
    a, b, c = cluster.nodes
    poll, ws, sse = clients
    wait_for(lambda: all(cl.open for cl in clients), "every client follows its first node")

    # 1. Published on A, seen on B (polling, sse) and C (websocket), with A's ids.
    for _ in range(5):
        last = cluster.publish(a)
    wait_for(lambda: all_have(clients, last), "events POSTed to A reach the clients on B and C")
    check(all(e[2] == "B" for e in poll.events + sse.events) and all(e[2] == "C" for e in ws.events),
          "events POSTed to A were delivered by B (polling, sse) and C (websocket)")

    # 2a. kill -9 B under the polling and sse clients; publish on A and C while they are away;
    #     then they resume on C with their cursors.
    def away_from_b():
        for node in (a, c, a, c, a):
            cluster.publish(node)
        return {poll: c, sse: c}
    kill_under(cluster, clients, b, [poll, sse], away_from_b)

    # 2b. kill -9 C under all three; publish on A, start D, publish on A and D, all while they
    #     are away; they all resume on D, a node that started after their cursors, so its
    #     memory does not cover them: the replay comes from Redis (for polling: a short poll,
    #     answered once that replay is read).
    def away_from_c():
        cluster.publish(a)
        cluster.publish(a)
        d = cluster.add("D")
        for node in (d, a, d):
            cluster.publish(node)
        return {poll: d, ws: d, sse: d}
    kill_under(cluster, clients, c, clients, away_from_c)
    d = cluster.nodes[-1]

    # 3. Redis paused: a publish fails in bounded time with 503 + Retry-After, nothing is lost
    #    or made up, clients stay connected.
    opens = (ws.opens, sse.opens)
    os.kill(redis.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        code, headers, body = http("POST", "%s/publish?topic=%s" % (a.base, TOPIC), json.dumps({"n": -1}))
        took = time.monotonic() - t0
    finally:
        os.kill(redis.pid, signal.SIGCONT)
    check(code == 503 and headers.get("Retry-After") == "1" and took < 3,  # command_timeout 1 s
          "Redis paused: POST /publish answers 503, Retry-After: 1 (%.2f s)" % took)
    a.wait_connected()
    d.wait_connected()
    for node in (a, d, a):
        last = cluster.publish(node)
    wait_for(lambda: all_have(clients, last), "after the pause: the events that follow")
    check(poll.node is d and ws.node is d and sse.node is d and (ws.opens, sse.opens) == opens,
          "the clients stayed connected through the pause")

    # 4. Exactly what was published, once, in order, nothing else.
    ids = [p[0] for p in cluster.published[1:]]
    ns = [p[1] for p in cluster.published[1:]]
    for cl in clients:
        seen = [e[0] for e in cl.events]
        if seen != ids or [e[1] for e in cl.events] != ns:
            log("     %s saw (id, n, node): %s" % (cl.name, cl.events))
            log("     published (id, n):    %s" % cluster.published[1:])
        check(seen == ids and [e[1] for e in cl.events] == ns,
              "%s: all %d events once, in order, across %d hops" % (cl.name, len(ids), cl.hops))
        check(not cl.resets, "%s: no reset notice" % cl.name)
    check((poll.hops, ws.hops, sse.hops) == (2, 1, 2), "hops: polling 2, websocket 1, sse 2")
    final = cluster.published[-1][0]
    for node in (a, d):
        wait_for(lambda: node.status()["position"] == final, "node %s reaches the last id" % node.name)
        st = node.status()
        check(st["connected"] and st["last_id"] == final and st["node"] == node.base[len("http://"):],
              "GET /node on %s: %s" % (node.name, json.dumps(st)))
    for target in ("/publish", "/publish?topic=%01", "/publish?topic=a&topic=b"):
        code, _, _ = http("POST", a.base + target, "x")
        check(code == 400, "POST %s answers 400" % target)

    for node in (a, d):
        node.proc.send_signal(signal.SIGTERM)
        code = node.proc.wait(timeout=15)
        check(code == 0, "SIGTERM stops node %s cleanly" % node.name)
    hops = sum(cl.hops for cl in clients)
    log("cluster interop: %d events, %d clients (curl polling, python websockets, node eventsource), "
        "%d hops, %d node kills, 1 redis pause: every client saw every event once, in order"
        % (len(ids), len(clients), hops, cluster.kills))


if __name__ == "__main__":
    if not EXAMPLE:
        print("usage: cluster.py path/to/herald_example_cluster [redis-server] [curl] [node]", file=sys.stderr)
        sys.exit(2)
    timer = threading.Timer(OVERALL, watchdog)
    timer.daemon = True
    timer.start()
    tmp = tempfile.mkdtemp(prefix="herald-cluster-")
    code = 0
    try:
        main(tmp)
    except (Failure, subprocess.TimeoutExpired) as e:
        print("FAIL %s" % e, flush=True)
        code = 1
    finally:
        for p in reversed(children):
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(code)
