// Deploy test, browser part: a real headless Chromium (tests/interop/chromium.mjs: Debian's
// /usr/bin/chromium through playwright-core) opens STREAMS EventSource streams to one
// https origin served by nginx over HTTP/2, then events are published and every stream must
// receive every one of them. Over HTTP/1.1 a browser holds at most six connections per origin,
// so streams beyond the sixth would never open: ten open streams that all receive show HTTP/2.
//
//   node tests/deploy/chromium_streams.mjs ORIGIN PUBLISH_URL SPKI_SHA256_BASE64 [STREAMS]
//
// The test's certificate is trusted by its SPKI hash only. Prints one JSON line with what it
// saw; exits 1 on any failure or when a step misses its deadline.
import { launchChromium } from "../interop/chromium.mjs";

const [origin, publishUrl, spki, count = "10"] = process.argv.slice(2);
const STREAMS = Number(count);
const EVENTS = 3;
const STEP_MS = 20000;

const overall = setTimeout(() => {
  console.log("FAIL overall timeout");
  process.exit(1);
}, 90000);

let browser;
let code = 1;
try {
  browser = await launchChromium(spki);
  const { page } = browser;
  // Any page of the origin will do: the streams are opened from it, to it.
  const nav = await page.goto(`${origin}/node`);
  if (!nav || !nav.ok()) throw new Error(`page load failed: ${nav && nav.status()}`);

  const t0 = Date.now();
  await page.evaluate((n) => {
    window.streams = [];
    for (let i = 0; i < n; ++i) {
      const s = { open: false, ids: [], errors: 0 };
      const es = new EventSource("/live?topic=chromium");
      es.onopen = () => { s.open = true; };
      es.onmessage = (e) => { s.ids.push(Number(e.lastEventId)); };
      es.onerror = () => { s.errors += 1; };
      s.es = es;
      window.streams.push(s);
    }
  }, STREAMS);
  await page.waitForFunction((n) => window.streams.filter((s) => s.open).length === n, STREAMS,
                             { timeout: STEP_MS, polling: 20 }).catch(async (e) => {
    const open = await page.evaluate(() => window.streams.filter((s) => s.open).length);
    throw new Error(`${open} of ${STREAMS} streams opened within ${STEP_MS} ms (${e.message})`);
  });
  const openedMs = Date.now() - t0;

  // Publish on a node directly (the backplane carries it to the other); every stream must get it.
  const published = [];
  for (let i = 0; i < EVENTS; ++i) {
    const res = await fetch(publishUrl, { method: "POST", body: JSON.stringify({ n: i }) });
    if (res.status !== 200) throw new Error(`publish answered ${res.status}`);
    published.push(Number((await res.text()).trim()));
  }
  await page.waitForFunction((n) => window.streams.every((s) => s.ids.length >= n), EVENTS,
                             { timeout: STEP_MS, polling: 20 });
  const seen = await page.evaluate(() => window.streams.map((s) => ({ ids: s.ids, errors: s.errors })));
  const protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0]?.nextHopProtocol ?? "");
  await page.evaluate(() => window.streams.forEach((s) => s.es.close()));

  const exact = seen.every((s) => JSON.stringify(s.ids) === JSON.stringify(published));
  console.log(JSON.stringify({ streams: STREAMS, opened_ms: openedMs, published, protocol, exact, seen }));
  code = exact && protocol === "h2" ? 0 : 1;
} catch (e) {
  console.log(`FAIL ${e && e.stack ? e.stack : e}`);
} finally {
  if (browser) await browser.close();
  clearTimeout(overall);
  process.exit(code);
}
