// browser.dashboard_transports: examples/dashboard's own page, whose herald.js client is forced to
// one transport by ?transport=websocket|sse|polling (herald.js has no short-polling mode: its
// first poll is short, the rest are long polls), one page each in one headless Chromium, through
// a StallProxy. For each page:
//   - the client opens on the forced transport and every event arrives over it;
//   - the "metrics" samples (published every 500 ms) arrive exactly once and in order: their n
//     count up by one, ids strictly increase per topic, and a sample has the same id on every page;
//   - a message sent with the page's form (a WebSocket frame, or a POST) is acknowledged to that
//     page and reaches all three as a "chat" event;
//   - across a forced drop (the proxy resets every connection and refuses new ones until a
//     witness straight to the server saw two more samples) it resumes with nothing lost or
//     duplicated: the samples published while it was away arrive once.
// Prints how long each page took to get back.
//
//   node tests/browser/dashboard_transports.mjs path/to/herald_example_dashboard
import { launchChromium } from "../interop/chromium.mjs";
import { StallProxy } from "./stall_proxy.mjs";
import { consecutive, run, startExample, until, Witness } from "./example.mjs";

const binary = process.argv[2];
if (!binary) {
  console.error("usage: dashboard_transports.mjs path/to/herald_example_dashboard");
  process.exit(2);
}
const TRANSPORTS = ["websocket", "sse", "polling"];

await run(75000, async (own) => {
  const dashboard = await startExample(binary, ["--heartbeat", "1000"]);
  own(dashboard.stop);
  const proxy = new StallProxy(dashboard.port);
  const origin = `http://127.0.0.1:${await proxy.listen()}`;
  own(() => proxy.close());
  const witness = new Witness(`${dashboard.origin}/live?topic=metrics`, (d) => d.n);
  own(() => witness.close());
  const browser = await launchChromium("");
  own(browser.close);
  const context = browser.page.context();

  // Every event the page's own client delivers, recorded by wrapping herald.connect's onEvent.
  await context.addInitScript(() => {
    window.seen = [];
    let wrapped;
    Object.defineProperty(window, "herald", {
      configurable: true,
      get: () => wrapped,
      set: (real) => {
        wrapped = {
          connect: (url, options) => real.connect(url, Object.assign({}, options, {
            onEvent: (e) => {
              window.seen.push({ id: e.id, topic: e.topic, n: e.data && e.data.n, text: e.data && e.data.text,
                                 transport: e.transport });
              options.onEvent(e);
            },
          })),
        };
      },
    });
  });
  const pages = {};
  await Promise.all(TRANSPORTS.map(async (t, i) => {
    const page = i === 0 ? browser.page : await context.newPage();
    const nav = await page.goto(`${origin}/?transport=${t}`);
    if (!nav || !nav.ok()) throw new Error(`${t}: page load failed: ${nav && nav.status()}`);
    pages[t] = page;
  }));
  const seen = (t) => pages[t].evaluate(() => window.seen);
  const metrics = (events) => events.filter((e) => e.topic === "metrics").map((e) => e.n);
  const reached = async (n) => {
    for (const t of TRANSPORTS) if (!(metrics(await seen(t)).at(-1) >= n)) return false;
    return true;
  };

  for (const t of TRANSPORTS) {
    await pages[t].waitForFunction((x) => document.body.dataset.transport === x, t, { timeout: 20000, polling: 50 });
  }
  await until(() => witness.last !== undefined, "the witness sees a sample");
  const soon = witness.last + 2;
  await until(() => reached(soon), `sample ${soon} on every page`);

  for (const t of TRANSPORTS) {  // one message from each page, over its own transport
    const text = `hello from ${t}`;
    await pages[t].fill("#text", text);
    await pages[t].press("#text", "Enter");
    await pages[t].waitForFunction((x) => document.body.dataset.reply === `ack:${x}`, text, { timeout: 20000, polling: 50 });
    await until(async () => {
      for (const p of TRANSPORTS) if (!(await seen(p)).some((e) => e.topic === "chat" && e.text === text)) return false;
      return true;
    }, `"${text}" as a chat event on every page`);
  }

  // The drop: away until two samples were published without the pages.
  // What the pages may have had: up to the newest sample a page or the witness saw at the cut.
  const lastSeen = Math.max(...await Promise.all(TRANSPORTS.map(async (t) => metrics(await seen(t)).at(-1))));
  const cutAt = Date.now();
  proxy.refuse(true);
  proxy.cut();
  const lastBefore = Math.max(lastSeen, witness.last);
  await until(() => witness.last >= lastBefore + 2, "two samples published while the pages are cut off");
  const missed = witness.values.filter((n) => n > lastBefore);
  proxy.refuse(false);
  const back = {};
  await until(async () => {
    for (const t of TRANSPORTS) {
      if (!back[t] && metrics(await seen(t)).at(-1) > missed.at(-1)) back[t] = Date.now() - cutAt;
    }
    return Object.keys(back).length === TRANSPORTS.length;
  }, "every page past the samples it missed");

  const all = {};
  for (const t of TRANSPORTS) {
    const events = (all[t] = await seen(t));
    const ns = metrics(events);
    consecutive(ns, `${t}: metrics n`);
    for (const n of missed) if (!ns.includes(n)) throw new Error(`${t}: sample ${n}, published while away, never came`);
    const chat = events.filter((e) => e.topic === "chat").map((e) => e.text);
    if (JSON.stringify(chat) !== JSON.stringify(TRANSPORTS.map((x) => `hello from ${x}`)))
      throw new Error(`${t}: chat events ${JSON.stringify(chat)}`);
    const via = [...new Set(events.map((e) => e.transport))];
    if (via.length !== 1 || via[0] !== t) throw new Error(`${t}: events came over ${via}`);
    for (const topic of ["metrics", "chat"]) {
      const ids = events.filter((e) => e.topic === topic).map((e) => e.id);
      if (!ids.every((id, i) => i === 0 || id > ids[i - 1])) throw new Error(`${t}: ${topic} ids not increasing: ${ids}`);
    }
    const state = await pages[t].evaluate(() => document.body.dataset.transport);
    if (state !== t) throw new Error(`${t}: the page ended on "${state}"`);
  }
  const idOf = new Map();
  for (const t of TRANSPORTS) {
    for (const e of all[t].filter((x) => x.topic === "metrics")) {
      if (idOf.has(e.n) && idOf.get(e.n) !== e.id) throw new Error(`sample ${e.n} has id ${e.id} on ${t}, ${idOf.get(e.n)} elsewhere`);
      idOf.set(e.n, e.id);
    }
  }
  for (const t of TRANSPORTS) {
    const ns = metrics(all[t]);
    console.log(`ok   dashboard ${t}: samples ${ns[0]}..${ns.at(-1)} once each, in order, all over ${t}; ` +
                `the 3 chat events once each; cut after ${lastBefore}, past ${missed.at(-1)} after ${back[t]} ms ` +
                `(${missed.join(",")} published while away)`);
  }
});
