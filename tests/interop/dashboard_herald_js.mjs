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

const deadline = setTimeout(() => { console.error("FAIL: deadline"); process.exit(1); }, 50000);
let failures = 0;
const check = (ok, what) => { console.log(`${ok ? "ok" : "FAIL"}: ${what}`); if (!ok) failures += 1; };
const until = (pred, ms = 10000) => new Promise((resolve, reject) => {
  const end = Date.now() + ms;
  const tick = () => (pred() ? resolve() : Date.now() > end ? reject(new Error("timeout")) : setTimeout(tick, 20));
  tick();
});

const server = spawn(binary, ["--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
const base = await new Promise((resolve, reject) => {
  let out = "";
  server.stdout.on("data", (d) => {
    out += d;
    const m = out.match(/listening on (http:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
  server.on("exit", (code) => reject(new Error(`server exited ${code}`)));
});

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
const code = await new Promise((resolve) => server.on("exit", (c, sig) => resolve(c ?? sig)));
check(code === 0, `dashboard exits cleanly on SIGTERM (${code})`);
clearTimeout(deadline);
process.exit(failures ? 1 : 0);
