// Interop: a full SSE channel, and a full server, refuse so that EventSource comes back by
// itself. With the npm `eventsource` package and with EventSource in headless Chromium
// (chromium.mjs), twice each:
//   - the channel's limit: herald_interop_server's /sse-one (one connection at most,
//     Limits::retry_after = 1 s), whose only slot an occupant EventSource takes;
//   - the server's limit: its second server (--limited 1: ServerOptions::max_connections = 1,
//     retry_after = 1 s), whose only slot a raw connection that never finishes its request
//     takes; the EventSource asks for /sse-any there (cross-origin from Chromium's page, so the
//     refusal must carry the channel's CORS headers too).
// Each time:
//   1. the occupant takes the only slot;
//   2. an EventSource is refused: it sees the stream end (an error event) but stays CONNECTING
//      (a 503 would make it CLOSED for good), and no message reaches onmessage;
//   3. the occupant leaves; an event is published; the refused client reconnects on its own
//      and receives it (it resumes from the cursor in its URL, so an event published before
//      its reconnect is not missed: nothing is lost while it is refused).
//
//   node tests/interop/sse_retryable.mjs path/to/herald_interop_server [--no-chromium]
//
// Every wait is bounded; any failure exits 1 with a message.
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { createInterface } from "node:readline";

const STEP_TIMEOUT = 15_000;
const [binary, flag] = process.argv.slice(2);
if (!binary) {
  console.error("usage: sse_retryable.mjs path/to/herald_interop_server [--no-chromium]");
  process.exit(2);
}
const { EventSource } = await import("eventsource");

let server = null;
let browser = null;
function die(message) {
  console.error(`FAIL: ${message}`);
  if (server && server.exitCode === null) server.kill("SIGKILL");  // only the process this script started
  process.exit(1);
}
const overall = setTimeout(() => die("overall timeout (100 s)"), 100_000);

/** Waits until pred() holds, checked every 20 ms, at most STEP_TIMEOUT. */
async function until(pred, what) {
  const deadline = Date.now() + STEP_TIMEOUT;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timeout after ${STEP_TIMEOUT} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
function ok(what) { console.log(`ok   ${what}`); }

server = spawn(binary, ["--host", "127.0.0.1", "--port", "0", "--limited", "1"],
               { stdio: ["ignore", "pipe", "inherit"] });
const [base, limited] = await new Promise((resolve, reject) => {
  const lines = createInterface({ input: server.stdout });
  const urls = [];
  lines.on("line", (line) => {
    const m = /^(?:listening|limited) on (http:\/\/\S+)/.exec(line);
    if (!m) return reject(new Error(`unexpected line: ${line}`));
    urls.push(m[1]);
    if (urls.length === 2) resolve(urls);
  });
  server.once("exit", (code) => reject(new Error(`server exited (${code}) before listening`)));
});

async function publish(topic, data) {
  const r = await fetch(`${base}/publish?topic=${topic}&data=${encodeURIComponent(data)}`);
  if (!r.ok) throw new Error(`publish: HTTP ${r.status}`);
  return (await r.text()).trim();
}

/** An occupant that holds the channel's only slot until close(). */
async function occupyChannel(topic) {
  const es = new EventSource(`${base}/sse-one?topic=${topic}`);
  let open = false;
  es.onopen = () => { open = true; };
  await until(() => open, "the occupant opens");
  return es;
}

/** An occupant of the limited server's only connection: a request that never ends.

    The slot may still be taken for a moment by a client that just left: Node keeps a connection
    of a closed EventSource's for a few seconds (seen as a registered connection that sends no
    request). An occupant refused for that is closed unanswered when the server's refusal
    timeout (2 s) passes, so only one that outlives it is kept; a refused one is replaced. */
async function occupyServer() {
  const { hostname, port } = new URL(limited);
  for (let attempt = 1; attempt <= 5; ++attempt) {
    const socket = connect(Number(port), hostname);
    await new Promise((resolve, reject) => { socket.once("connect", resolve); socket.once("error", reject); });
    socket.write(`GET /sse-any HTTP/1.1\r\nHost: ${hostname}:${port}\r\n`);
    const refused = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 2_500);
      socket.once("close", () => { clearTimeout(timer); resolve(true); });
    });
    if (!refused) return { close: () => socket.destroy() };
    console.log(`     (occupant ${attempt} was refused: the slot was still taken; again)`);
  }
  throw new Error("the limited server's only slot stayed taken");
}

const limits = [
  { name: "channel limit", url: (topic) => `${base}/sse-one?topic=${topic}`, occupy: occupyChannel },
  { name: "server limit", url: (topic) => `${limited}/sse-any?topic=${topic}`, occupy: occupyServer },
];

async function withNode({ name, url, occupy }) {
  console.log(`-- eventsource, ${name}`);
  const occupant = await occupy("n");
  const cursor = await publish("n", "before");
  const es = new EventSource(`${url("n")}&lastEventId=${cursor}`);
  const seen = { messages: [], errors: 0, closed: false };
  es.onmessage = (e) => seen.messages.push({ id: e.lastEventId, data: e.data });
  es.onerror = () => { seen.errors++; if (es.readyState === EventSource.CLOSED) seen.closed = true; };
  await until(() => seen.errors >= 2, "eventsource: two refusals (stream ended, retried)");
  if (seen.closed) throw new Error("eventsource: the refusal closed the EventSource for good");
  if (seen.messages.length) throw new Error(`eventsource: a refusal delivered ${JSON.stringify(seen.messages)}`);
  ok(`eventsource: refused ${seen.errors} times, still CONNECTING, no message`);
  occupant.close();
  const id = await publish("n", "after");
  await until(() => seen.messages.some((m) => m.id === id && m.data === "after"),
              "eventsource: reconnects and receives the event published after the slot freed up");
  if (seen.messages.length !== 1) throw new Error(`eventsource: got ${JSON.stringify(seen.messages)}`);
  ok("eventsource: reconnected by itself and received the event");
  es.close();
}

async function withChromium({ name, url, occupy }) {
  console.log(`-- chromium, ${name}`);
  if (!browser) {
    const { launchChromium } = await import("./chromium.mjs");
    browser = await launchChromium("");
    const nav = await browser.page.goto(`${base}/page`);
    if (!nav || !nav.ok()) throw new Error(`page load failed: ${nav && nav.status()}`);
  }
  const { page } = browser;
  const occupant = await occupy("c");
  const cursor = await publish("c", "before");
  await page.evaluate((src) => {
    const s = (window.seen = { messages: [], errors: 0, closed: false, states: [] });
    const es = (window.es = new EventSource(src));
    es.onmessage = (e) => s.messages.push({ id: e.lastEventId, data: e.data });
    es.onerror = () => { s.errors++; s.states.push(es.readyState); if (es.readyState === 2) s.closed = true; };
  }, `${url("c")}&lastEventId=${cursor}`);
  const seen = () => page.evaluate(() => window.seen);
  await until(async () => (await seen()).errors >= 2, "chromium: two refusals (stream ended, retried)");
  let s = await seen();
  if (s.closed) throw new Error("chromium: the refusal closed the EventSource for good");
  if (s.messages.length) throw new Error(`chromium: a refusal delivered ${JSON.stringify(s.messages)}`);
  ok(`chromium: refused ${s.errors} times, readyState ${JSON.stringify(s.states)}, no message`);
  occupant.close();
  const id = await publish("c", "after");
  await until(async () => (await seen()).messages.some((m) => m.id === id && m.data === "after"),
              "chromium: reconnects and receives the event published after the slot freed up");
  s = await seen();
  if (s.messages.length !== 1) throw new Error(`chromium: got ${JSON.stringify(s.messages)}`);
  ok("chromium: reconnected by itself and received the event");
  await page.evaluate(() => window.es.close());
}

let code = 0;
try {
  for (const limit of limits) await withNode(limit);
  if (flag !== "--no-chromium") for (const limit of limits) await withChromium(limit);
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  code = 1;
} finally {
  if (browser) await browser.close();
  if (server.exitCode === null) server.kill("SIGTERM");
  clearTimeout(overall);
}
process.exit(code);
