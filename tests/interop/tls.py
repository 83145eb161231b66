#!/usr/bin/python3
"""Interop: herald::TlsServer (examples/tls) with clients that share nothing with herald.

    /usr/bin/python3 tests/interop/tls.py path/to/herald_example_tls CURL OPENSSL NODE

Makes a self-signed certificate for 127.0.0.1 with Debian's `openssl` in a temporary directory,
starts the example on it (--port 0, its "listening on https://…" line), and checks:
  1. a certificate path that does not exist: the example exits 1 at start, naming the file;
  2. curl --cacert: POST /publish answers over HTTP/1.1 (ALPN; curl offered h2 too); without
     --cacert curl refuses the certificate (exit 60);
  3. curl follows SSE (https) and gets the events published after it opened, in order; a poll
     (https) returns them too;
  4. Python `websockets` with an SSL context trusting the certificate: wss upgrade, subscribe
     with since, replay + live events, an application message acknowledged; a context limited to
     TLS 1.1 is refused;
  5. headless Chromium (tls_chromium.mjs) loads the example's page over https and its
     EventSource and wss WebSocket both receive ticks;
  6. SIGTERM stops the example cleanly (exit 0).
Every wait is bounded; processes are stopped by PID; any failure exits 1.
"""
import asyncio
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import warnings

import websockets

from harness import Failure, Lines, check, log, spawn, spki_sha256, start_watchdog, stop_all
import harness

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE, CURL, OPENSSL, NODE = sys.argv[1:5]
STEP = 20
OVERALL = 100


def wait_for(pred, what, timeout=STEP):
    harness.wait_for(pred, what, timeout)


def curl(*args):
    out = subprocess.run([CURL, "-sS", "--max-time", "10", *args], capture_output=True, text=True, timeout=STEP)
    return out.returncode, out.stdout, out.stderr


def main():
    start_watchdog(OVERALL)
    tmp = tempfile.mkdtemp(prefix="herald-tls-")
    try:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "2", "-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=STEP)

        # 1. A configuration error is an error at start that names the file.
        missing = os.path.join(tmp, "missing.pem")
        bad = subprocess.run([EXAMPLE, "--cert", missing, "--key", key, "--port", "0"], capture_output=True,
                             text=True, timeout=STEP)
        check(bad.returncode == 1 and missing in bad.stderr and "certificate_chain_file" in bad.stderr,
              "a missing certificate file stops the example at start: %s" % bad.stderr.strip())

        proc = spawn([EXAMPLE, "--cert", cert, "--key", key, "--port", "0"])
        out = Lines(proc.stdout)
        wait_for(lambda: out.lines or out.eof, "the example prints its first line", 10)
        m = re.fullmatch(r"listening on (https://127\.0\.0\.1:(\d+))", out.text()[0] if out.lines else "")
        if not m:
            raise Failure("unexpected first line %r" % out.text()[:1])
        base = m.group(1)

        # 2. curl: verification, ALPN.
        code, body, err = curl("--cacert", cert, "-w", "\n%{http_version}", "-d", '{"n":0}', base + "/publish?topic=t")
        first_id, version = body.split("\n")[0], body.split("\n")[-1]
        check(code == 0 and first_id.isdigit(), "curl --cacert: POST /publish over https answers an id")
        check(version == "1.1", "ALPN picked http/1.1 although curl offered h2 (curl says %s)" % version)
        code, _, err = curl(base + "/publish?topic=t", "-d", "x")
        check(code == 60, "without --cacert curl refuses the certificate (exit %d)" % code)

        # 3. SSE and polling over https with curl.
        sse = spawn([CURL, "-sS", "-N", "--cacert", cert, "-H", "Accept: text/event-stream", base + "/live?topic=t"],
                    stderr=subprocess.STDOUT)
        sse_out = Lines(sse.stdout)
        wait_for(lambda: any(l.startswith("retry:") for l in sse_out.text()) or sse_out.eof, "the SSE stream opens")
        ids = []
        for n in range(1, 4):
            code, body, _ = curl("--cacert", cert, "-d", '{"n":%d}' % n, base + "/publish?topic=t")
            ids.append(int(body.strip()))
        wait_for(lambda: all("id: %d" % i in sse_out.text() for i in ids), "SSE over https gets the events")
        sse.terminate()
        sse.wait(timeout=10)
        got = [int(l[4:]) for l in sse_out.text() if l.startswith("id: ")]
        check(got == ids, "curl followed SSE over https: %s, in order" % ids)
        code, body, _ = curl("--cacert", cert, "%s/live?topic=t&since=%s" % (base, first_id))
        batch = json.loads(body)
        check([e["id"] for e in batch["events"]] == ids, "a poll over https returns the same events")

        # 4. Python websockets over wss.
        ctx = ssl.create_default_context(cafile=cert)

        async def ws():
            uri = base.replace("https://", "wss://") + "/live"
            async with websockets.connect(uri, ssl=ctx, open_timeout=STEP) as c:
                await c.send(json.dumps({"subscribe": "t", "since": int(first_id)}))
                seen, acked = [], False
                while len(seen) < len(ids) or not acked:
                    msg = json.loads(await asyncio.wait_for(c.recv(), STEP))
                    if msg.get("subscribed") == "t":
                        acked = True
                    elif msg.get("topic") == "t":
                        seen.append(msg["id"])
                live = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: int(curl("--cacert", cert, "-d", '{"n":9}', base + "/publish?topic=t")[1].strip()))
                while True:
                    msg = json.loads(await asyncio.wait_for(c.recv(), STEP))
                    if msg.get("topic") == "t":
                        seen.append(msg["id"])
                        break
                await c.send("hello")
                ack = await asyncio.wait_for(c.recv(), STEP)
                return seen, live, ack
        seen, live, ack = asyncio.run(ws())
        check(seen == ids + [live], "websockets over wss: replay %s then live %d" % (ids, live))
        check(ack == "ack:hello", "websockets over wss: an application message is answered")

        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(cert)
        with warnings.catch_warnings():  # deprecated on purpose: the server must refuse them
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("ALL:@SECLEVEL=0")

        async def ws_old():
            try:
                async with websockets.connect(base.replace("https://", "wss://") + "/live", ssl=old,
                                              open_timeout=STEP):
                    return "connected"
            except (ssl.SSLError, OSError) as e:
                return "refused: %s" % e
        outcome = asyncio.run(ws_old())
        check(outcome.startswith("refused") and "PROTOCOL_VERSION" in outcome,
              "a TLS 1.1 client is refused by the server's protocol_version alert (%s)" % outcome)

        # 5. Chromium.
        spki = spki_sha256(OPENSSL, cert)
        browser = subprocess.run([NODE, os.path.join(HERE, "tls_chromium.mjs"), base + "/", spki],
                                 capture_output=True, text=True, timeout=120)
        last = browser.stdout.strip().splitlines()[-1] if browser.stdout.strip() else ""
        if browser.returncode != 0 or not last.startswith("{"):
            raise Failure("chromium: %s %s" % (browser.stdout[-2000:], browser.stderr[-2000:]))
        seen_by = json.loads(last)
        check(seen_by["protocol"] == "http/1.1" and "tick" in seen_by["sse"] and "tick" in seen_by["ws"],
              "Chromium over https (%s): EventSource got %s, wss WebSocket got %s" %
              (seen_by["protocol"], seen_by["sse"], seen_by["ws"]))

        # 6. Graceful stop.
        proc.send_signal(signal.SIGTERM)
        check(proc.wait(timeout=STEP) == 0, "SIGTERM stops the example cleanly")
        log("PASS interop.tls")
        return 0
    except Failure as e:
        log("FAIL " + str(e))
        return 1
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
