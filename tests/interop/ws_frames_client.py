#!/usr/bin/python3
"""A WebSocket client for tests/unit_ws_frame.cpp: Python's `websockets` (Debian's
python3-websockets) sends a fixed list of messages, so that herald's own frame reader is checked
against the frames an independent implementation puts on the wire.

    /usr/bin/python3 tests/interop/ws_frames_client.py PORT plain|deflate

The test answers the handshake itself (with permessage-deflate when it chooses to) and reads the
frames; this script exits 0 once the closing handshake is over. The list must stay the same as
cross_check_expected() in tests/unit_ws_frame.cpp and ws_frames_client.mjs.
"""
import asyncio
import sys

import websockets


def letters(n):
    return "".join(chr(97 + i % 26) for i in range(n))


async def main(port, mode):
    url = f"ws://127.0.0.1:{port}/frames"
    compression = "deflate" if mode == "deflate" else None
    async with websockets.connect(url, compression=compression, max_size=None,
                                  open_timeout=20, close_timeout=20) as ws:
        await ws.send("hello")
        await ws.send("")
        await ws.send("h\u00e9llo w\u00f6rld \u2713 \U0001d11e")
        await ws.send(bytes(range(256)))
        for n in (125, 126, 65535, 65536):
            await ws.send(letters(n))
        await ws.send(bytes((i * 7) % 256 for i in range(200000)))
        await ws.send(["frag", "mented ", "\u00fc", "ber"])
        await ws.send([b"ab", b"", b"cd"])
        pong = await ws.ping(b"are you there?")
        await pong  # the test answers with herald's pong
        await ws.close(4000, "bye \u2713")


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(int(sys.argv[1]), sys.argv[2]), 30))
