"""Shared pieces of the Python interop and deploy tests (tls.py, tests/deploy/nginx.py).

Every wait is a condition with a deadline (never a sleep as synchronisation); every process a
test starts is recorded in `children` and stopped by PID (`stop_all`); `start_watchdog` ends a
test that overruns its overall budget, children included.
"""
import os
import socket
import subprocess
import threading
import time

cv = threading.Condition()   # guards what the reader threads fill in; notified on every change
children = []                # every process started through spawn()


class Failure(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def check(cond, what):
    if not cond:
        raise Failure(what)
    log("ok   " + what)


def wait_for(pred, what, timeout):
    """Waits until pred() holds (checked under cv, on every notify and every 50 ms)."""
    deadline = time.monotonic() + timeout
    with cv:
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("timeout after %g s: %s" % (timeout, what))
            cv.wait(min(left, 0.05))


def start_watchdog(seconds):
    def fire():
        print("FAIL overall timeout (%d s)" % seconds, flush=True)
        for p in children:
            if p.poll() is None:
                p.kill()
        os._exit(1)
    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


def free_port():
    """A port the kernel just handed out, for servers that cannot listen on port 0 themselves
    (they retry when it was taken meanwhile)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lines:
    """A child's output read on a thread: (arrival time, line) pairs so far, and whether it ended."""

    def __init__(self, stream):
        self.lines, self.eof = [], False
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            with cv:
                self.lines.append((time.monotonic(), line.rstrip("\r\n")))
                cv.notify_all()
        with cv:
            self.eof = True
            cv.notify_all()

    def text(self):
        with cv:
            return [line for _, line in self.lines]


def spawn(args, **kw):
    p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, close_fds=True, **kw)
    children.append(p)
    return p


def stop_all():
    for p in children:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


def spki_sha256(openssl, cert):
    """Base64 SHA-256 of a certificate's public key: what Chromium's
    --ignore-certificate-errors-spki-list takes."""
    def run(args, data):
        return subprocess.run([openssl, *args], input=data, capture_output=True, check=True, timeout=20).stdout
    pub = run(["x509", "-pubkey", "-noout", "-in", cert], None)
    der = run(["pkey", "-pubin", "-outform", "der"], pub)
    digest = run(["dgst", "-sha256", "-binary"], der)
    return run(["base64", "-A"], digest).decode().strip()


def start_redis(redis_server, tmp):
    """A redis-server of the test's own (free port, no persistence); ready when it says so.
    A port free_port() saw free can be taken before Redis binds it: then Redis exits; retry."""
    for _ in range(5):
        port = free_port()
        proc = spawn([redis_server, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp, "--save", "",
                      "--appendonly", "no", "--daemonize", "no"], stderr=subprocess.STDOUT)
        out = Lines(proc.stdout)
        ready = lambda: any("Ready to accept connections" in line for line in out.text())  # noqa: E731
        wait_for(lambda: ready() or out.eof, "redis-server starts", 10)
        if ready():
            return proc, port
        proc.wait(timeout=10)
    raise Failure("redis-server did not start")
