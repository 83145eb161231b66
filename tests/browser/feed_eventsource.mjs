// browser.feed_eventsource: the seed's EventSource snippet in headless Chromium: examples/feed's
// own page at /, whose script is `new EventSource("/api/feed")` with
// `es.onmessage = (e) => console.log("event:", e.data)`, loaded through a StallProxy.
//
// Mid-stream the proxy resets the page's connection and refuses new ones until a witness (Node's
// `eventsource`, straight to the server) has seen two more ticks published; then it lets
// connections through again. The browser must reconnect by itself with `Last-Event-ID` = the id
// of the last event it saw, and the page must see every tick exactly once, in order: the ticks
// published while it was cut off are replayed, none twice. The snippet's console lines must be
// exactly those events. Prints how long the page was away and what was replayed.
//
//   node tests/browser/feed_eventsource.mjs path/to/herald_example_feed
import { launchChromium } from "../interop/chromium.mjs";
import { StallProxy } from "./stall_proxy.mjs";
import { consecutive, run, startExample, until, Witness } from "./example.mjs";

const binary = process.argv[2];
if (!binary) {
  console.error("usage: feed_eventsource.mjs path/to/herald_example_feed");
  process.exit(2);
}

await run(45000, async (own) => {
  const feed = await startExample(binary);
  own(feed.stop);
  const proxy = new StallProxy(feed.port);
  const origin = `http://127.0.0.1:${await proxy.listen()}`;
  own(() => proxy.close());
  const witness = new Witness(`${feed.origin}/api/feed`, (d) => d.tick);
  own(() => witness.close());
  const browser = await launchChromium("");
  own(browser.close);
  const { page } = browser;

  // The page's own EventSource, with every message's lastEventId recorded next to the snippet's.
  // Its errors are counted: after one, no message of the old connection can follow.
  await page.addInitScript(() => {
    window.seen = [];
    window.errors = 0;
    const Native = window.EventSource;
    window.EventSource = class extends Native {
      constructor(...args) {
        super(...args);
        this.addEventListener("message", (e) => window.seen.push({ id: e.lastEventId, data: e.data }));
        this.addEventListener("error", () => { window.errors += 1; });
      }
    };
  });
  const logged = [];
  page.on("console", (m) => {
    if (m.type() === "log" && m.text().startsWith("event: ")) logged.push(m.text().slice("event: ".length));
  });
  const nav = await page.goto(`${origin}/`);
  if (!nav || !nav.ok()) throw new Error(`page load failed: ${nav && nav.status()}`);
  const seen = () => page.evaluate(() => window.seen);
  const ticks = (s) => s.map((e) => JSON.parse(e.data).tick);

  await until(async () => (await seen()).length >= 2, "two ticks on the page");
  const heads = proxy.heads.length;
  proxy.refuse(true);
  proxy.cut();
  const cutAt = Date.now();
  await until(() => page.evaluate(() => window.errors > 0), "the page's EventSource sees the drop");
  const before = (await seen()).at(-1);
  const lastBefore = JSON.parse(before.data).tick;
  // Away for two ticks at least: both must come back as a replay.
  await until(() => witness.last >= lastBefore + 2, "two ticks published while the page is cut off");
  const missed = witness.values.filter((t) => t > lastBefore);
  proxy.refuse(false);

  await until(() => proxy.heads.slice(heads).some((h) => h.kind === "sse"), "the page's EventSource reconnects");
  const back = proxy.heads.slice(heads).find((h) => h.kind === "sse").head;
  const resumeId = /\r\nlast-event-id:\s*(\S+)/i.exec(back);
  if (!resumeId || resumeId[1] !== before.id)
    throw new Error(`the reconnection sent Last-Event-ID ${resumeId && resumeId[1]}, not ${before.id}:\n${back}`);
  const awayMs = Date.now() - cutAt;
  const target = witness.last + 1;  // one tick published after the reconnection
  await until(async () => ticks(await seen()).at(-1) >= target, `tick ${target} on the page`);

  const all = await seen();
  consecutive(ticks(all), "ticks on the page");
  if (!all.every((e, i) => i === 0 || BigInt(e.id) > BigInt(all[i - 1].id)))
    throw new Error(`ids not strictly increasing: ${all.map((e) => e.id)}`);
  if (!missed.every((t) => ticks(all).includes(t))) throw new Error(`missed ticks ${missed} not all on the page`);
  await until(() => logged.length >= all.length, "the snippet's console lines");
  const data = all.map((e) => e.data);
  if (JSON.stringify(logged) !== JSON.stringify(data))
    throw new Error(`the snippet logged ${JSON.stringify(logged)}, the page got ${JSON.stringify(data)}`);
  console.log(`ok   feed: ticks ${ticks(all)[0]}..${ticks(all).at(-1)} once each, in order, logged by the ` +
              `snippet; cut after tick ${lastBefore}, back after ${awayMs} ms with Last-Event-ID ${before.id}, ` +
              `ticks ${missed.join(",")} replayed`);
});
