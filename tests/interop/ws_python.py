#!/usr/bin/python3
"""Interop: Python's `websockets` (Debian's python3-websockets) against examples/chat.

    /usr/bin/python3 tests/interop/ws_python.py path/to/herald_example_chat

Starts the chat server on a free port, reads its "listening on" line, then checks with two
independent clients: the handshake, subscribe acks, a message from one client reaching both as
an event envelope with the JSON payload embedded, resume with "since", an error reply, and the
1001 close on SIGTERM. Every wait is bounded; any failure exits non-zero.
"""
import asyncio
import json
import re
import signal
import subprocess
import sys

import websockets

TIMEOUT = 10


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def expect(cond, msg):
    if not cond:
        fail(msg)


async def recv_json(ws):
    raw = await asyncio.wait_for(ws.recv(), TIMEOUT)
    expect(isinstance(raw, str), f"expected a text frame, got {raw!r}")
    return json.loads(raw)


async def main(binary):
    server = subprocess.Popen([binary, "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(server.stdout.readline), TIMEOUT)
        m = re.fullmatch(r"listening on http://([^\s]+):(\d+)\n", line)
        expect(m, f"unexpected first line: {line!r}")
        url = f"ws://{m.group(1)}:{m.group(2)}/chat"

        async with websockets.connect(url) as a, websockets.connect(url) as b:
            for ws in (a, b):
                await ws.send(json.dumps({"subscribe": "lobby"}))
                ack = await recv_json(ws)
                expect(set(ack) == {"subscribed", "cursor"} and ack["subscribed"] == "lobby",
                       f"bad ack {ack}")
                expect(isinstance(ack["cursor"], int), f"cursor is not an integer: {ack}")

            await a.send(json.dumps({"room": "lobby", "name": "py", "text": "hello from python ✓"}))
            got_a = await recv_json(a)
            got_b = await recv_json(b)
            expect(got_a == got_b, f"clients disagree: {got_a} vs {got_b}")
            expect(set(got_a) == {"id", "topic", "data"}, f"bad envelope {got_a}")
            expect(got_a["topic"] == "lobby", f"bad topic {got_a}")
            expect(got_a["data"] == {"name": "py", "text": "hello from python ✓"},
                   f"payload not embedded as JSON: {got_a}")
            first_id = got_a["id"]

            # The application refuses a message for a room the sender is not in; still connected.
            await b.send(json.dumps({"room": "elsewhere", "text": "x"}))
            err = await recv_json(b)
            expect("error" in err, f"expected an error reply, got {err}")
            # A malformed control message: herald's own error, connection stays up.
            await b.send(json.dumps({"subscribe": 42}))
            err = await recv_json(b)
            expect(err.get("error") == "bad control message", f"expected bad control message, got {err}")

            await b.send(json.dumps({"room": "lobby", "name": "py2", "text": "second"}))
            second = await recv_json(a)
            expect(second["data"] == {"name": "py2", "text": "second"} and second["id"] > first_id,
                   f"bad second event {second}")
            await recv_json(b)

            await a.send(json.dumps({"unsubscribe": "lobby"}))
            expect(await recv_json(a) == {"unsubscribed": "lobby"}, "bad unsubscribe ack")

        # Resume: a new connection asks for everything after the first message.
        async with websockets.connect(url) as c:
            await c.send(json.dumps({"subscribe": "lobby", "since": first_id}))
            ack = await recv_json(c)
            expect(ack["subscribed"] == "lobby", f"bad ack {ack}")
            replay = await recv_json(c)
            expect(replay == second, f"resume did not replay exactly the missed event: {replay}")

            # Graceful stop: SIGTERM -> close frame 1001 (going away).
            server.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(c.wait_closed(), TIMEOUT)
            except asyncio.TimeoutError:
                fail("no close within the timeout after SIGTERM")
            expect(c.close_code == 1001, f"expected close code 1001, got {c.close_code}")

        code = await asyncio.wait_for(asyncio.to_thread(server.wait), TIMEOUT)
        expect(code == 0, f"server exited with {code}")
        print("ok: python websockets", websockets.__version__)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        fail("usage: ws_python.py path/to/herald_example_chat")
    asyncio.run(asyncio.wait_for(main(sys.argv[1]), 60))
