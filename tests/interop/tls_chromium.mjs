// interop.tls, browser part: headless Chromium (chromium.mjs) loads examples/tls's page over
// https, trusting only the test's self-signed certificate (by its SPKI hash); the page's
// EventSource and its wss WebSocket must both show a tick.
//
//   node tests/interop/tls_chromium.mjs PAGE_URL SPKI_SHA256_BASE64
//
// Prints one JSON line ({"protocol","sse","ws"}); exits 1 on failure or a missed deadline.
import { launchChromium } from "./chromium.mjs";

const [url, spki] = process.argv.slice(2);
const overall = setTimeout(() => {
  console.log("FAIL overall timeout");
  process.exit(1);
}, 90000);

let browser;
let code = 1;
try {
  browser = await launchChromium(spki);
  const { page } = browser;
  const nav = await page.goto(url);
  if (!nav || !nav.ok()) throw new Error(`page load failed: ${nav && nav.status()}`);
  await page.waitForFunction(
    () => ["sse", "ws"].every((id) => document.getElementById(id).textContent.includes("tick")),
    null, { timeout: 20000, polling: 50 });
  const seen = await page.evaluate(() => ({
    protocol: performance.getEntriesByType("navigation")[0]?.nextHopProtocol ?? "",
    sse: document.getElementById("sse").textContent,
    ws: document.getElementById("ws").textContent,
  }));
  console.log(JSON.stringify(seen));
  code = 0;
} catch (e) {
  console.log(`FAIL ${e && e.stack ? e.stack : e}`);
} finally {
  if (browser) await browser.close();
  clearTimeout(overall);
  process.exit(code);
}
