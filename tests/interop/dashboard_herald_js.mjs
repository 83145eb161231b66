// interop.dashboard_herald_js: examples/dashboard/herald.js driven under Node against
// examples/dashboard, with `ws` and `eventsource` (tests/interop/node_modules) installed as the
// WebSocket and EventSource globals and Node's own fetch, i.e. the browser APIs herald.js uses.
// The same script runs in headless Chromium under the browser label (tests/browser:
// dashboard_transports.mjs, herald_js_fallback.mjs); this one checks it against Node's clients.
//
// For each forced transport (websocket, sse, polling): the transport opens, metrics events
// arrive with strictly increasing ids and no duplicate, a message goes up (WebSocket frame or
// POST) and comes back as a reply and as a chat event. Then "auto" picks WebSocket, and with a
// WebSocket that cannot connect (a proxy that breaks upgrades) it falls back to SSE.
//
// Tickets: on each transport, herald.js's `ticket` option against the ticketed /secure channel
// (a herald::TicketBook) fetches a fresh single-use ticket from POST /ticket before every
// request (the negotiation, the connection, each poll) and metrics events arrive; then, with
// plain fetch, a ticket admits once (again: 401), no ticket is 401, a ticket for "metrics" does
// not open "chat" (403), and POST /ticket without the demo's user header is 401.
//
// Drain (docs/drain.md): a second dashboard with --drain 2 and one herald.js per transport on
// it; SIGTERM. Each client is told to wait (status "waiting", reason "draining", its delay), waits
// at least that, and comes back to a successor started on the same port, where the samples go on
// with higher ids, none twice.
//
//   node dashboard_herald_js.mjs <path to herald_example_dashboard>
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import vm from "node:vm";
import WebSocket from "ws";
import { EventSource } from "eventsource";

const here = dirname(fileURLToPath(import.meta.url));
const script = readFileSync(join(here, "../../examples/dashboard/herald.js"), "utf8");
const binary = process.argv[2];
if (!binary) { console.error("usage: dashboard_herald_js.mjs <herald_example_dashboard>"); process.exit(2); }

globalThis.WebSocket = WebSocket;
globalThis.EventSource = EventSource;
vm.runInThisContext(script, { filename: "herald.js" });
const herald = globalThis.herald;

const deadline = setTimeout(() => { console.error("FAIL: deadline"); process.exit(1); }, 75000);
let failures = 0;
const check = (ok, what) => { console.log(`${ok ? "ok" : "FAIL"}: ${what}`); if (!ok) failures += 1; };
const until = (pred, ms = 10000) => new Promise((resolve, reject) => {
  const end = Date.now() + ms;
  const tick = () => (pred() ? resolve() : Date.now() > end ? reject(new Error("timeout")) : setTimeout(tick, 20));
  tick();
});

// Every dashboard started, stopped by its PID however the script ends.
const started = new Set();
process.on("exit", () => started.forEach((p) => p.kill("SIGKILL")));

// A dashboard started with `args`: its process, base URL and a promise of its exit code.
async function start(args) {
  const proc = spawn(binary, args, { stdio: ["ignore", "pipe", "inherit"] });
  started.add(proc);
  proc.on("exit", () => started.delete(proc));
  const exited = new Promise((resolve) => proc.on("exit", (code, sig) => resolve(code ?? sig)));
  const url = await new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    exited.then((code) => reject(new Error(`server exited ${code}`)));
  });
  return { proc, base: url, exited };
}

const first = await start(["--port", "0"]);
const server = first.proc;
const base = first.base;

async function drive(transport, expected) {
  const seen = { events: [], replies: [], chat: [], states: [] };
  const live = herald.connect(`${base}/live`, {
    topics: ["metrics", "chat"], transport, minDelay: 50, maxDelay: 500, pollWait: 5,
    onEvent: (e) => { seen.events.push(e); if (e.data && e.data.text) seen.chat.push(e.data.text); },
    onReply: (r) => seen.replies.push(r),
    onStatus: (s) => seen.states.push(s),
  });
  try {
    await until(() => live.transport !== null);
    check(live.transport === expected, `${transport}: live transport is ${live.transport}, expected ${expected}`);
    await until(() => seen.events.filter((e) => e.data && typeof e.data.load === "number").length >= 3);
    const ids = seen.events.map((e) => e.id);
    check(ids.every((id, i) => i === 0 || id > ids[i - 1]), `${transport}: ids strictly increase (${ids.join(",")})`);
    check(seen.events.every((e) => e.transport === expected), `${transport}: every event came over ${expected}`);
    const text = `hi-${transport}`;
    await live.send(text);
    await until(() => seen.replies.includes(`ack:${text}`) && seen.chat.includes(text));
    check(true, `${transport}: message sent, reply and chat event received`);
  } catch (err) {
    check(false, `${transport}: ${err.message}; states ${JSON.stringify(seen.states)}`);
  } finally {
    live.close();
  }
}

let minted = 0;
async function ticket() {
  const r = await fetch(`${base}/ticket`, { method: "POST", headers: { "X-Demo-User": "demo" } });
  if (!r.ok) throw new Error(`ticket: HTTP ${r.status}`);
  minted += 1;
  return r.text();
}

async function driveTickets(transport) {
  const seen = { events: [], states: [] };
  const before = minted;
  const live = herald.connect(`${base}/secure`, {
    topics: ["metrics"], transport, minDelay: 50, maxDelay: 500, pollWait: 1, ticket,
    onEvent: (e) => seen.events.push(e),
    onStatus: (s) => seen.states.push(s),
  });
  try {
    await until(() => live.transport === transport && seen.events.length >= 3);
    const ids = seen.events.map((e) => e.id);
    check(ids.every((id, i) => i === 0 || id > ids[i - 1]), `tickets, ${transport}: ids strictly increase (${ids.join(",")})`);
    const used = minted - before;  // the negotiation, then the connection (polling: each poll)
    check(transport === "polling" ? used >= 4 : used === 2, `tickets, ${transport}: ${used} tickets fetched`);
  } catch (err) {
    check(false, `tickets, ${transport}: ${err.message}; states ${JSON.stringify(seen.states)}`);
  } finally {
    live.close();
  }
}

async function ticketRules() {
  const t = await ticket();
  const first = await fetch(`${base}/secure?topic=metrics&ticket=${t}`);
  check(first.status === 200, `a ticket admits a poll (${first.status})`);
  const again = await fetch(`${base}/secure?topic=metrics&ticket=${t}`);
  const body = await again.json();
  check(again.status === 401 && body.error === "unauthorized", `the same ticket again: ${again.status} ${JSON.stringify(body)}`);
  check((await fetch(`${base}/secure?topic=metrics`)).status === 401, "no ticket: 401");
  const chat = await fetch(`${base}/secure?topic=chat&ticket=${await ticket()}`);
  check(chat.status === 403, `a ticket for metrics does not open chat: ${chat.status}`);
  const anon = await fetch(`${base}/ticket`, { method: "POST" });
  check(anon.status === 401, `POST /ticket without the app's auth: ${anon.status}`);
}

async function driveDrain() {
  const a = await start(["--port", "0", "--drain", "2"]);
  let b = null;
  const isSample = (e) => e.data && typeof e.data.load === "number";
  const clients = ["websocket", "sse", "polling"].map((transport) => {
    const c = { transport, events: [], states: [] };
    c.live = herald.connect(`${a.base}/live`, {
      topics: ["metrics"], transport, minDelay: 50, maxDelay: 500, pollWait: 1,
      onEvent: (e) => { if (isSample(e)) c.events.push({ id: e.id, at: Date.now() }); },
      onStatus: (st) => c.states.push(Object.assign({ at: Date.now() }, st)),
    });
    return c;
  });
  const handOff = (c) => c.states.find((st) => st.state === "waiting" && st.reason === "draining");
  try {
    await until(() => clients.every((c) => c.live.transport === c.transport && c.events.length >= 2));
    a.proc.kill("SIGTERM");
    await until(() => clients.every(handOff), 8000);
    check((await a.exited) === 0, "drain: the draining dashboard exits cleanly after its window");
    b = await start(["--port", new URL(a.base).port]);
    const back = Date.now();
    await until(() => clients.every((c) => c.events.some((e) => e.at > back)), 15000);
    for (const c of clients) {
      const w = handOff(c);
      check(typeof w.delay === "number" && w.delay >= 0 && w.delay <= 3000, `drain, ${c.transport}: told to wait ${w.delay} ms`);
      const next = c.events.find((e) => e.at > w.at);
      check(next.at - w.at >= w.delay - 20, `drain, ${c.transport}: the next sample came ${next.at - w.at} ms after the hand-off`);
      const ids = c.events.map((e) => e.id);
      check(ids.every((id, i) => i === 0 || id > ids[i - 1]), `drain, ${c.transport}: ids strictly increase across the drain (${ids.length} samples)`);
    }
  } catch (err) {
    check(false, `drain: ${err.message}; states ${JSON.stringify(clients.map((c) => c.states))}`);
  } finally {
    clients.forEach((c) => c.live.close());
    a.proc.kill("SIGKILL");
    if (b) { b.proc.kill("SIGTERM"); await b.exited; }
  }
}

try {
  const neg = await (await fetch(`${base}/live?negotiate`)).json();
  check(JSON.stringify(neg.transports) === JSON.stringify(["websocket", "sse", "polling"]), "negotiation answer lists websocket, sse, polling");
  const page = await (await fetch(`${base}/`)).text();
  check(page.includes("/herald.js"), "the page loads /herald.js");
  const js = await (await fetch(`${base}/herald.js`)).text();
  check(js === script, "/herald.js is served verbatim");

  await drive("websocket", "websocket");
  await drive("sse", "sse");
  await drive("polling", "polling");
  await drive("auto", "websocket");
  await driveTickets("websocket");
  await driveTickets("sse");
  await driveTickets("polling");
  await ticketRules();
  await driveDrain();
  // A WebSocket that never opens (a proxy that breaks upgrades): auto falls back to SSE.
  globalThis.WebSocket = class Broken {
    constructor() { setTimeout(() => this.onclose && this.onclose({ code: 1006 }), 10); }
    send() { throw new Error("not open"); }
    close() {}
  };
  await drive("auto", "sse");
  globalThis.EventSource = undefined;
  await drive("auto", "polling");
} finally {
  server.kill("SIGTERM");
}
const code = await first.exited;
check(code === 0, `dashboard exits cleanly on SIGTERM (${code})`);
clearTimeout(deadline);
process.exit(failures ? 1 : 0);
