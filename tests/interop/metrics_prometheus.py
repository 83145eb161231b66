#!/usr/bin/env python3
"""Interop: examples/dashboard's /metrics, read by Prometheus' own text parser.

    metrics_prometheus.py <herald_example_dashboard>

Starts the example on a free port, opens an SSE stream and a WebSocket (raw sockets, so the
test reads the wire), sends one refused request, then scrapes /metrics and parses it with
prometheus_client's parser (Debian's python3-prometheus-client): every family herald documents
is there with its type, labels and values that match what the clients did.
"""
import base64
import os
import re
import signal
import socket
import subprocess
import sys
import time

from prometheus_client.parser import text_string_to_metric_families

EXAMPLE = sys.argv[1]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def read_until(sock, predicate, deadline):
    data = b""
    sock.settimeout(0.5)
    while time.monotonic() < deadline and not predicate(data):
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    return data


def get(port, target):
    s = connect(port)
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % (target, port)).encode())
    data = read_until(s, lambda d: False, time.monotonic() + 10)
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    headers = dict(
        (k.strip().lower(), v.strip())
        for k, _, v in (line.partition(":") for line in head.decode("latin-1").split("\r\n")[1:])
    )
    return status, headers, body.decode()


def samples(text):
    out = {}
    for family in text_string_to_metric_families(text):
        out[family.name] = family
    return out


def value(families, name, **labels):
    """The value of the one sample of `name` (the sample name) with `labels` among its labels."""
    for family in families.values():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def main():
    proc = subprocess.Popen([EXAMPLE, "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.match(r"listening on http://[^:]+:(\d+)", line)
        if not m:
            print("FAIL no 'listening on' line, got: %r" % line)
            return 1
        run(int(m.group(1)))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all metrics interop checks passed")
    return 0


def run(port):
    deadline = time.monotonic() + 30
    # An SSE stream on the dashboard's metrics topic: its first event proves a delivery.
    sse = connect(port)
    sse.sendall(("GET /live?topic=metrics HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n\r\n"
                 % port).encode())
    got = read_until(sse, lambda d: b"\ndata:" in d and d.endswith(b"\n\n"), deadline)
    check(b"200 OK" in got and b"data:" in got, "the SSE stream delivers an event")
    # A WebSocket on the same path, subscribed at the upgrade.
    ws = connect(port)
    key = base64.b64encode(os.urandom(16)).decode()
    ws.sendall(("GET /live?topic=metrics HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                % (port, key)).encode())
    got = read_until(ws, lambda d: b"\r\n\r\n" in d and len(d.partition(b"\r\n\r\n")[2]) > 2, deadline)
    check(got.startswith(b"HTTP/1.1 101"), "the WebSocket upgrade succeeds and an event follows")
    # One refusal: a bad cursor is a 400 (a plain GET on /live goes to the polling member).
    status, _, _ = get(port, "/live?topic=metrics&since=nope")
    check(status == 400, "a bad cursor is refused with 400")

    status, headers, text = get(port, "/metrics")
    check(status == 200, "/metrics answers 200")
    check(headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
          "the exposition format 0.0.4 is announced: %s" % headers.get("content-type"))
    try:
        families = samples(text)
    except Exception as e:  # the parser's verdict is the point of this test
        check(False, "prometheus_client parses the exposition: %s" % e)
        print(text)
        return
    check(True, "prometheus_client parses the exposition (%d families)" % len(families))

    expected = {
        "herald_events_published": "counter",
        "herald_topics": "gauge",
        "herald_resets": "counter",
        "herald_connections": "gauge",
        "herald_connections_opened": "counter",
        "herald_subscriptions": "gauge",
        "herald_deliveries": "counter",
        "herald_replayed_events": "counter",
        "herald_slow_consumer_disconnects": "counter",
        "herald_overflows": "counter",
        "herald_dropped_events": "counter",
        "herald_gap_notices": "counter",
        "herald_coalesced_events": "counter",
        "herald_queued_bytes": "gauge",
        "herald_written_bytes": "counter",
        "herald_refusals": "counter",
    }
    for name, kind in expected.items():
        f = families.get(name)
        check(f is not None and f.type == kind, "family %s is a %s" % (name, kind))

    sse_live = value(families, "herald_connections", channel="/live", transport="sse")
    ws_live = value(families, "herald_connections", channel="/live", transport="websocket")
    check(sse_live == 1 and ws_live == 1, "one SSE and one WebSocket connection open (%s, %s)" % (sse_live, ws_live))
    check((value(families, "herald_deliveries_total", channel="/live", transport="sse") or 0) >= 1,
          "deliveries counted on the SSE member")
    check((value(families, "herald_written_bytes_total", channel="/live", transport="sse") or 0) > 0,
          "bytes written counted on the SSE member")
    check(value(families, "herald_subscriptions", channel="/live", transport="websocket") == 1,
          "the WebSocket's one subscription is counted")
    check(value(families, "herald_refusals_total", channel="/live", transport="polling", status="400",
                reason="bad cursor") == 1, "the refused request is counted by status and reason")
    check(value(families, "herald_overflows_total", channel="/live", transport="sse", policy="disconnect") == 0,
          "overflows are labelled with the channel's policy")
    check((value(families, "herald_events_published_total", hub="default") or 0) >= 1,
          "the hub's published events are counted")
    sse.close()
    ws.close()


if __name__ == "__main__":
    sys.exit(main())
