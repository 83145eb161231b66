// browser.herald_js_fallback: examples/dashboard/herald.js in headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core through tests/interop/chromium.mjs) against
// examples/dashboard behind a StallProxy (stall_proxy.mjs) that holds data back the way broken
// proxies do. Each case must end on a working transport with every event once:
//   baseline     nothing held                                   -> websocket
//   upgrade      the 101 passes, then nothing                   -> sse
//   no headers   upgrade and SSE answers never arrive           -> polling
//   body held    101 and SSE headers pass, then nothing          -> polling
//   stall        a working WebSocket goes silent mid-way         -> sse
//   probe        WebSocket held, then released                   -> sse, then websocket again
//   remembered   the page reloaded in the tab of "upgrade"       -> starts on sse, no upgrade tried
// "Every event once": the dashboard publishes {"n":…} on "metrics" every 500 ms; each client
// must see strictly increasing ids per topic and consecutive n from its first event to its last.
// Prints the time from herald.connect() (or from the stall, or the release) to the working
// transport for each case, as `fallback <case>: <transport> after <ms> ms`.
//
//   node tests/browser/herald_js_fallback.mjs path/to/herald_example_dashboard
import { spawn } from "node:child_process";
import { launchChromium } from "../interop/chromium.mjs";
import { StallProxy } from "./stall_proxy.mjs";

const binary = process.argv[2];
if (!binary) {
  console.error("usage: herald_js_fallback.mjs path/to/herald_example_dashboard");
  process.exit(2);
}
const HEARTBEAT = 1000;  // the dashboard's heartbeat (ms): a stall shows after 2 s
// Deadlines for a loaded CI machine; the defaults (10 s, 5 s) are for real networks.
const OPTIONS = { connectTimeout: 3000, proofTimeout: 2500, minDelay: 100, maxDelay: 1000, pollWait: 5 };
const STEP = 30000;

let server = null;
let browser = null;
let proxy = null;
const overall = setTimeout(() => finish(1, "overall deadline"), 200000);

async function finish(code, why) {
  if (why) console.log(`FAIL: ${why}`);
  if (browser) await browser.close().catch(() => {});
  if (proxy) proxy.close();
  if (server && server.exitCode === null) server.kill("SIGTERM");  // only the process we started
  clearTimeout(overall);
  process.exit(code);
}

server = spawn(binary, ["--port", "0", "--heartbeat", String(HEARTBEAT)], { stdio: ["ignore", "pipe", "inherit"] });
const port = await new Promise((resolve, reject) => {
  let out = "";
  server.stdout.on("data", (d) => {
    out += d;
    const m = out.match(/listening on http:\/\/[^:]+:(\d+)/);
    if (m) resolve(Number(m[1]));
  });
  server.on("exit", (code) => reject(new Error(`dashboard exited ${code}`)));
});
proxy = new StallProxy(port);
const origin = `http://127.0.0.1:${await proxy.listen()}`;

/** A fresh tab (its own sessionStorage) on the dashboard page, whose own client is closed. */
async function tab() {
  const page = await browser.page.context().newPage();
  await page.goto(`${origin}/`);
  await page.evaluate(() => window.live.close());
  return page;
}

/** A herald.js client in `page` with the test's deadlines, recording events and states. */
async function connect(page, extra = {}) {
  await page.evaluate((options) => {
    window.t0 = performance.now();
    window.seen = { events: [], states: [] };
    window.client = herald.connect("/live", Object.assign({
      topics: ["metrics"],
      onEvent: (e) => window.seen.events.push({ id: e.id, topic: e.topic, n: e.data && e.data.n, transport: e.transport }),
      onStatus: (s) => window.seen.states.push({ state: s.state, transport: s.transport, reason: s.reason,
                                                  at: performance.now() - window.t0 }),
    }, options));
  }, Object.assign({}, OPTIONS, extra));
}

async function working(page, transport) {
  await page.waitForFunction((t) => window.client.transport === t, transport, { timeout: STEP, polling: 50 });
  return page.evaluate((t) => {
    const open = window.seen.states.filter((s) => s.state === "open" && s.transport === t).pop();
    return open.at;
  }, transport);
}

/** Wait for `more` further metrics events, then check the whole record: once each, none missing. */
async function complete(page, name, more = 3) {
  const have = await page.evaluate(() => window.seen.events.length);
  await page.waitForFunction((n) => window.seen.events.length >= n, have + more, { timeout: STEP, polling: 50 });
  const seen = await page.evaluate(() => window.seen);
  const ids = seen.events.map((e) => e.id);
  const ns = seen.events.map((e) => e.n);
  if (!ids.every((id, i) => i === 0 || id > ids[i - 1])) throw new Error(`${name}: ids not strictly increasing: ${ids}`);
  if (!ns.every((n, i) => i === 0 || n === ns[i - 1] + 1)) throw new Error(`${name}: metrics not consecutive: ${ns}`);
  return seen;
}

function report(name, transport, ms, seen) {
  const reasons = seen.states.filter((s) => s.reason).map((s) => `${s.transport}:${s.reason}`);
  const via = [...new Set(seen.events.map((e) => e.transport))];
  console.log(`fallback ${name}: ${transport} after ${Math.round(ms)} ms ` +
              `(${seen.events.length} events n=${seen.events[0].n}..${seen.events.at(-1).n} via ${via.join("+")}; ` +
              `given up: ${reasons.join(", ") || "none"})`);
}

function holds(h) {
  for (const kind of ["websocket", "sse", "plain"]) proxy.hold(kind, h[kind] || "nothing");
}

async function fallback(name, h, transport, expectReason) {
  holds(h);
  const page = await tab();
  await connect(page);
  const ms = await working(page, transport);
  const seen = await complete(page, name);
  if (expectReason && !seen.states.some((s) => s.reason === expectReason))
    throw new Error(`${name}: no transport was given up for "${expectReason}": ${JSON.stringify(seen.states)}`);
  report(name, transport, ms, seen);
  return page;
}

try {
  browser = await launchChromium("");

  const base = await fallback("baseline", {}, "websocket");
  await base.evaluate(() => window.client.close());

  const upgrade = await fallback("upgrade", { websocket: "body" }, "sse", "no data");
  await upgrade.evaluate(() => window.client.close());

  await (await fallback("no-headers", { websocket: "response", sse: "response" }, "polling", "connect timeout"))
    .evaluate(() => window.client.close());

  await (await fallback("body-held", { websocket: "body", sse: "body" }, "polling", "no data"))
    .evaluate(() => window.client.close());

  {  // stall: a working WebSocket goes silent mid-way
    holds({});
    const page = await tab();
    await connect(page);
    await working(page, "websocket");
    await complete(page, "stall (before)");
    const stalledAt = await page.evaluate(() => performance.now() - window.t0);
    proxy.stall();
    const ms = (await working(page, "sse")) - stalledAt;
    const seen = await complete(page, "stall");
    if (!seen.states.some((s) => s.reason === "stalled")) throw new Error(`stall: not given up as stalled`);
    report("stall", "sse", ms, seen);
    await page.evaluate(() => window.client.close());
  }

  {  // probe: after the fallback, WebSocket is tried again and takes over once it delivers
    holds({ websocket: "body" });
    const page = await tab();
    await connect(page, { probeAfter: 1500, probeMax: 3000 });
    await working(page, "sse");
    await complete(page, "probe (before)", 2);
    const releasedAt = await page.evaluate(() => performance.now() - window.t0);
    holds({});
    const ms = (await working(page, "websocket")) - releasedAt;
    const seen = await complete(page, "probe");
    report("probe", "websocket", ms, seen);
    await page.evaluate(() => window.client.close());
  }

  {  // remembered: the tab of "upgrade" found SSE working; reloaded, its page starts there
    holds({});
    const upgrades = proxy.counts.websocket;
    await upgrade.reload();
    await upgrade.waitForFunction(() => document.body.dataset.transport === "sse", null, { timeout: STEP, polling: 50 });
    if (proxy.counts.websocket !== upgrades) throw new Error("remembered: the reloaded page tried WebSocket first");
    const key = await upgrade.evaluate(() => Object.keys(sessionStorage).map((k) => `${k}=${sessionStorage.getItem(k)}`));
    console.log(`fallback remembered: the reloaded page opened on sse without an upgrade (${key.join(", ")})`);
  }
  await finish(0);
} catch (e) {
  await finish(1, e && e.stack ? e.stack : String(e));
}
