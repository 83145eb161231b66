// Interop: the `eventsource` package (WHATWG EventSource for Node, tests/interop/package.json)
// against herald's SSE transport (herald_interop_server).
//
//   node tests/interop/sse_eventsource.mjs path/to/herald_interop_server
//
// Starts the server on a free port of 127.0.0.1 with a small history (--history 16), then:
//   1. resume: one EventSource on /sse?topic=t; a numbered sequence is published over /publish
//      while /drop closes the stream several times (events keep coming while the client is
//      disconnected); EventSource reconnects by itself with Last-Event-ID, and onmessage must
//      see every event exactly once, in order (ids and data equal to the published list).
//   2. reset, the natural way: a client whose reconnect is held back (its fetch waits on a gate)
//      while more events than the history keeps are published; it resumes with its own
//      Last-Event-ID and receives a `reset` event (addEventListener("reset")) naming the last
//      evicted id, then exactly what history retained, then live events.
//   3. reset, with a stale Last-Event-ID sent by a custom fetch on the first request; after
//      the reset and a later /drop the client resumes normally (no second reset, no duplicate).
//   4. /stop: the stream ends (error event), the server exits 0, and the reconnect attempt fails
//      (the client never opens again).
// Every wait is bounded; any failure exits 1 with a message.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";

const HISTORY = 16;
const STEP_TIMEOUT = 10_000;
const binary = process.argv[2];
if (!binary) {
  console.error("usage: sse_eventsource.mjs path/to/herald_interop_server");
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
let exitWaiters = [];
function die(message) {
  console.error(`FAIL: ${message}`);
  if (server && exited === null) server.kill("SIGKILL");  // only the process this script started
  process.exit(1);
}
const overall = setTimeout(() => die("overall timeout (50 s)"), 50_000);

function within(promise, what, ms = STEP_TIMEOUT) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Waits (bounded) until pred() holds; checked every 10 ms and whenever notify() is called. */
let checks = [];
const notify = () => { checks = checks.filter((check) => !check()); };
setInterval(notify, 10).unref();
function until(pred, what) {
  return within(new Promise((resolve) => {
    const check = () => (pred() ? (resolve(), true) : false);
    if (!check()) checks.push(check);
  }), what);
}

/** An EventSource that records what it sees; until(pred) waits (bounded) for a condition. */
function recorder(url, init) {
  const es = new EventSource(url, init);
  const r = { es, messages: [], resets: [], opens: 0, errors: 0, until };
  es.onopen = () => { r.opens++; notify(); };
  es.onerror = () => { r.errors++; notify(); };
  es.onmessage = (e) => { r.messages.push({ id: e.lastEventId, data: e.data }); notify(); };
  es.addEventListener("reset", (e) => {
    r.resets.push({ id: e.lastEventId, data: e.data, after: r.messages.length });
    notify();
  });
  return r;
}

let base;
async function get(path) {
  const res = await within(fetch(base + path), `GET ${path}`);
  const text = (await res.text()).trim();
  assert.equal(res.status, 200, `GET ${path} answered ${res.status}: ${text}`);
  return text;
}
/** Publishes over /publish (POST, query percent-encoded); returns the new id as a string. */
async function publish(topic, data) {
  const query = new URLSearchParams({ topic, data });
  const res = await within(fetch(`${base}/publish?${query}`, { method: "POST" }), "publish");
  const id = (await res.text()).trim();
  assert.equal(res.status, 200, `publish answered ${res.status}: ${id}`);
  assert.match(id, /^\d+$/, "publish answers the new id");
  return id;
}

try {
  server = spawn(binary, ["--port", "0", "--history", String(HISTORY)],
                 { stdio: ["ignore", "pipe", "inherit"] });
  server.on("exit", (code, signal) => {
    exited = { code, signal };
    exitWaiters.forEach((f) => f());
  });
  const serverExit = () => new Promise((resolve) => (exited ? resolve() : exitWaiters.push(resolve)));
  const lines = createInterface({ input: server.stdout });
  const first = await within(new Promise((resolve) => lines.once("line", resolve)), "listening line");
  const m = /^listening on (http:\/\/127\.0\.0\.1:(\d+))$/.exec(first);
  assert.ok(m && Number(m[2]) > 0, `unexpected first line: ${first}`);
  base = m[1];

  // --- 1. every event exactly once, in order, across drops --------------------------------------
  const a = recorder(`${base}/sse?topic=t`);
  await a.until(() => a.opens === 1, "first open");
  const published = [];
  let drops = 0;
  let whileDisconnected = 0;
  const N = 40;
  for (let i = 1; i <= N; ++i) {
    // Plain text, JSON, and multi-line payloads (LF and CRLF; EventSource joins lines with LF).
    let data = `event ${i}`;
    let expect = data;
    if (i % 5 === 0) data = expect = JSON.stringify({ n: i, text: "ünïcødé ✓", list: [i, i + 1] });
    else if (i % 7 === 0) { data = `line ${i}a\r\nline ${i}b\nline ${i}c`; expect = `line ${i}a\nline ${i}b\nline ${i}c`; }
    const id = await publish("t", data);
    if (a.es.readyState !== EventSource.OPEN) whileDisconnected++;
    published.push({ id, data: expect });
    if (i % 8 === 0 && i < N) {
      // Every 8 events a drop: the next 3 are published at once (the client reconnects only
      // after retry: 100 ms, so they are replayed from history), the rest once it is back (live).
      const errors = a.errors;
      assert.match(await get("/drop"), /^dropped 1$/);
      ++drops;
      // Every other drop, publishing goes on without waiting for the client to notice: events
      // may race the closing stream (they must still arrive exactly once).
      if (drops % 2 === 1) await a.until(() => a.errors > errors, `EventSource notices drop #${drops}`);
    }
    if (i % 8 === 3 && drops > 0) await a.until(() => a.opens === drops + 1, `reconnect #${drops}`);
  }
  const sentinel = await publish("t", "end");
  published.push({ id: sentinel, data: "end" });
  await a.until(() => a.messages.some((e) => e.id === sentinel), "the last event");
  assert.deepEqual(a.messages, published, "onmessage saw every event exactly once, in order");
  assert.equal(a.opens, drops + 1, "one reconnect per drop");
  assert.equal(a.errors, drops, "one error event per drop, none from a failed reconnect");
  assert.equal(a.resets.length, 0, "no reset while resuming inside history");
  assert.ok(whileDisconnected > 0, "some events were published while the client was disconnected");
  a.es.close();
  console.log(`ok   ${published.length} events exactly once and in order across ${drops} drops ` +
              `(${whileDisconnected} published while disconnected)`);

  // --- 2. reset: the client falls behind while disconnected -------------------------------------
  let gateOpen;
  const gate = new Promise((resolve) => { gateOpen = resolve; });
  const sent = [];  // the Last-Event-ID of each request EventSource made
  const gated = async (url, init) => {
    sent.push(init?.headers?.["Last-Event-ID"] ?? null);
    if (sent.length === 2) await gate;  // hold back the first reconnect
    return fetch(url, init);
  };
  const b = recorder(`${base}/sse?topic=r`, { fetch: gated });
  await b.until(() => b.opens === 1, "reset client: open");
  const all = [];
  for (const d of ["r1", "r2"]) all.push({ id: await publish("r", d), data: d });
  await b.until(() => b.messages.length === 2, "reset client: live events");
  await get("/drop");
  await b.until(() => sent.length === 2, "reset client: reconnect held at the gate");
  for (let i = 0; i < HISTORY + 4; ++i) all.push({ id: await publish("r", `behind ${i}`), data: `behind ${i}` });
  gateOpen();
  let evicted = all.slice(0, all.length - HISTORY);
  let retained = all.slice(-HISTORY);
  await b.until(() => b.messages.length === 2 + HISTORY, "reset client: retained events");
  assert.equal(sent[1], all[1].id, "EventSource resumed with its own Last-Event-ID");
  assert.equal(b.resets.length, 1, "one reset event");
  assert.equal(b.resets[0].after, 2, "the reset comes before the replay");
  assert.equal(b.resets[0].id, all[1].id, "the reset keeps the client's cursor as its id");
  const notice = JSON.parse(b.resets[0].data);
  assert.equal(notice.reason, "cursor_expired");
  assert.equal(String(notice.cursor), evicted.at(-1).id, "the reset names the last evicted id");
  assert.deepEqual(b.messages, [...all.slice(0, 2), ...retained], "then exactly what history kept");
  const live = { id: await publish("r", "live after reset"), data: "live after reset" };
  all.push(live);
  await b.until(() => b.messages.length === 3 + HISTORY, "reset client: live after the reset");
  assert.deepEqual(b.messages.at(-1), live);
  b.es.close();
  console.log(`ok   a client that fell ${HISTORY + 4} events behind gets a reset (cursor ` +
              `${notice.cursor}), then the ${HISTORY} retained events, then live`);

  // --- 3. reset for a stale Last-Event-ID sent by a custom fetch --------------------------------
  const stale = all[0].id;
  const c = recorder(`${base}/sse?topic=r`, {
    // The stale cursor only on the first request: EventSource's own Last-Event-ID wins after.
    fetch: (url, init) => fetch(url, { ...init, headers: { "Last-Event-ID": stale, ...init?.headers } }),
  });
  evicted = all.slice(0, all.length - HISTORY);
  retained = all.slice(-HISTORY);
  await c.until(() => c.messages.length === HISTORY, "stale client: retained events");
  assert.equal(c.resets.length, 1, "stale client: one reset event");
  assert.equal(c.resets[0].after, 0, "stale client: the reset comes first");
  assert.equal(c.resets[0].id, stale);
  assert.deepEqual(JSON.parse(c.resets[0].data), { reason: "cursor_expired", cursor: Number(evicted.at(-1).id) });
  assert.deepEqual(c.messages, retained);
  const errors = c.errors;
  await get("/drop");
  await c.until(() => c.errors > errors, "stale client: drop noticed");
  const next = { id: await publish("r", "after the second drop"), data: "after the second drop" };
  await c.until(() => c.opens === 2 && c.messages.length === HISTORY + 1, "stale client: resumed");
  assert.deepEqual(c.messages, [...retained, next], "resumed after a reset: no duplicate, no gap");
  assert.equal(c.resets.length, 1, "no second reset");
  console.log("ok   a stale Last-Event-ID gets a reset, then the retained events; later resumes are normal");

  // --- 4. graceful stop -------------------------------------------------------------------------
  const before = { errors: c.errors, opens: c.opens, messages: c.messages.length };
  assert.equal(await get("/stop"), "stopping");
  await c.until(() => c.errors > before.errors, "the stream ends on /stop");
  await within(serverExit(), "server exit after /stop");
  assert.deepEqual(exited, { code: 0, signal: null }, "the server exits 0 after a graceful stop");
  // retry: 100 -> EventSource tries again at once and fails: the server is gone.
  await c.until(() => c.errors > before.errors + 1, "the reconnect attempt fails");
  assert.equal(c.opens, before.opens, "never opens again");
  assert.equal(c.messages.length, before.messages, "no message after stop");
  assert.notEqual(c.es.readyState, EventSource.OPEN);
  c.es.close();
  console.log("ok   /stop ends the stream, the server exits 0, reconnecting fails");

  clearTimeout(overall);
  console.log("all SSE eventsource interop checks passed");
  process.exit(0);
} catch (e) {
  die(e && e.stack ? e.stack : String(e));
}
