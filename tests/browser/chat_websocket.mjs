// browser.chat_websocket: examples/chat's own page in two headless Chromium pages (one browser),
// over the browser's WebSocket. Both join the lobby; then, through the page's form, "ann" says
// a1..aN on one page while "bob" says b1..bN on the other, interleaved without waiting. Each page
// must show all 2N messages exactly once, both pages in the same order (the server's), and
// each sender's messages in the order they were sent.
//
//   node tests/browser/chat_websocket.mjs path/to/herald_example_chat
import { launchChromium } from "../interop/chromium.mjs";
import { run, startExample, until } from "./example.mjs";

const binary = process.argv[2];
if (!binary) {
  console.error("usage: chat_websocket.mjs path/to/herald_example_chat");
  process.exit(2);
}
const N = 10;

await run(45000, async (own) => {
  const chat = await startExample(binary);
  own(chat.stop);
  const browser = await launchChromium("");
  own(browser.close);

  const open = async (page, name) => {
    const nav = await page.goto(`${chat.origin}/`);
    if (!nav || !nav.ok()) throw new Error(`page load failed: ${nav && nav.status()}`);
    await page.waitForFunction(() => document.getElementById("state").textContent === "in lobby", null,
                               { timeout: 20000, polling: 50 });
    await page.fill("input[name=name]", name);
    return page;
  };
  const [ann, bob] = await Promise.all([open(browser.page, "ann"),
                                        browser.page.context().newPage().then((p) => open(p, "bob"))]);
  const say = (page, text) => page.fill("input[name=text]", text).then(() => page.press("input[name=text]", "Enter"));
  // The log's messages, oldest first (the page prepends). Joining with "since": 0 may first show
  // the room's reset notice (ids start from the clock, so older ids are unknown to history).
  const lines = async (page) => {
    const all = await page.evaluate(() => [...document.querySelectorAll("#log li")].map((li) => li.textContent).reverse());
    const other = all.filter((l) => !/^lobby(ann|bob): /.test(l) && l !== "lobby(some older messages are no longer available)");
    if (other.length) throw new Error(`unexpected lines in the log: ${other}`);
    return all.filter((l) => /^lobby(ann|bob): /.test(l));
  };

  const sent = { ann: [], bob: [] };
  for (let i = 1; i <= N; ++i) {
    sent.ann.push(`a${i}`);
    sent.bob.push(`b${i}`);
    await Promise.all([say(ann, `a${i}`), say(bob, `b${i}`)]);
  }
  await until(async () => (await lines(ann)).length >= 2 * N && (await lines(bob)).length >= 2 * N,
              `${2 * N} messages on both pages`);

  const seen = { ann: await lines(ann), bob: await lines(bob) };
  for (const [who, got] of Object.entries(seen)) {
    if (got.length !== 2 * N) throw new Error(`${who}'s page shows ${got.length} lines: ${got}`);
    for (const from of ["ann", "bob"]) {
      const texts = got.filter((l) => l.startsWith(`lobby${from}: `)).map((l) => l.slice(`lobby${from}: `.length));
      if (JSON.stringify(texts) !== JSON.stringify(sent[from]))
        throw new Error(`${who}'s page shows ${from}'s messages as ${texts}, sent ${sent[from]}`);
    }
  }
  if (JSON.stringify(seen.ann) !== JSON.stringify(seen.bob))
    throw new Error(`the pages disagree on the order:\n${seen.ann}\n${seen.bob}`);
  console.log(`ok   chat: ${2 * N} messages from two pages, on both once each, in one order, each sender's in ` +
              `sending order: ${seen.ann.map((l) => l.replace(/^lobby\w+: /, "")).join(" ")}`);
});
