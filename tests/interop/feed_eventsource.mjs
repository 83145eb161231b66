// Interop: the README's browser snippet, run by the `eventsource` package (tests/interop/
// package.json), against examples/feed itself.
//
//   node tests/interop/feed_eventsource.mjs path/to/herald_example_feed
//
// Starts the example with --port 0 on 127.0.0.1, then does what the seed's page does —
// `new EventSource(url + "/api/feed")` with `onmessage = e => JSON.parse(e.data)` — and expects
// two consecutive ticks (about 2 s: the example publishes one a second); the page at / must hold
// that snippet. Ends with SIGTERM and
// expects a clean exit. Bounded by a global timeout; any failure exits 1 with a message.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";

const binary = process.argv[2];
if (!binary) {
  console.error("usage: feed_eventsource.mjs path/to/herald_example_feed");
  process.exit(2);
}

let EventSource;
try {
  ({ EventSource } = await import("eventsource"));
} catch (e) {
  console.error("FAIL: cannot load the eventsource package from tests/interop/node_modules " +
                `(run bash scripts/setup): ${e.message}`);
  process.exit(1);
}

let server = null;
let exited = null;
function die(message) {
  console.error(`FAIL: ${message}`);
  if (server && exited === null) server.kill("SIGKILL");  // only the process this script started
  process.exit(1);
}
const overall = setTimeout(() => die("overall timeout (30 s)"), 30_000);

function within(promise, what, ms = 10_000) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

try {
  server = spawn(binary, ["--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
  const exit = new Promise((resolve) => server.on("exit", (code, signal) => {
    exited = { code, signal };
    resolve();
  }));
  const lines = createInterface({ input: server.stdout });
  const first = await within(new Promise((resolve) => lines.once("line", resolve)), "listening line");
  const m = /^listening on (http:\/\/127\.0\.0\.1:(\d+))$/.exec(first);
  assert.ok(m && Number(m[2]) > 0, `unexpected first line: ${first}`);
  const url = m[1];

  // The page at / runs exactly that snippet.
  const page = await within(fetch(url + "/"), "GET /");
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.ok(html.includes('new EventSource("/api/feed")'), "the page opens EventSource(\"/api/feed\")");
  assert.ok(html.includes("es.onmessage = (e) =>"), "the page sets es.onmessage");

  // The seed's snippet, verbatim apart from the absolute URL (Node has no page origin).
  const ticks = [];
  let failure = null;
  const es = new EventSource(url + "/api/feed");
  es.onmessage = (e) => {
    try {
      ticks.push({ id: e.lastEventId, value: JSON.parse(e.data) });
    } catch (err) {
      failure = `onmessage could not JSON.parse ${JSON.stringify(e.data)}: ${err.message}`;
    }
  };
  await within(new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (failure) reject(new Error(failure));
      else if (ticks.length >= 2) resolve();
      else return;
      clearInterval(timer);
    }, 20);
  }), "two ticks");
  es.close();

  const [t1, t2] = ticks;
  for (const t of [t1, t2]) {
    assert.equal(typeof t.value.tick, "number", `a tick has a numeric "tick": ${JSON.stringify(t.value)}`);
    assert.match(t.value.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, "a tick has an ISO time");
    assert.match(t.id, /^\d+$/, "every event carries an id (for Last-Event-ID)");
  }
  assert.equal(t2.value.tick, t1.value.tick + 1, "consecutive ticks");
  assert.ok(BigInt(t2.id) > BigInt(t1.id), "ids increase");
  console.log(`ok   EventSource("/api/feed") received ticks ${t1.value.tick} and ${t2.value.tick}`);

  server.kill("SIGTERM");
  await within(exit, "example exit after SIGTERM");
  assert.deepEqual(exited, { code: 0, signal: null }, "the example exits 0 on SIGTERM");
  console.log("ok   SIGTERM stops the example cleanly");
  clearTimeout(overall);
  process.exit(0);
} catch (e) {
  die(e && e.stack ? e.stack : String(e));
}
