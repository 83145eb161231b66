// What the browser tests share: an example binary started on 127.0.0.1 and port 0, a test run
// bounded by an overall deadline that stops everything it started, and a witness that follows
// the server directly (not through the test's proxy) to know what was published meanwhile.
import { spawn } from "node:child_process";

/**
 * Runs `body(own)` under an overall deadline of `ms`; `own(stop)` registers what the run must stop
 * (in reverse order) whether it passes, throws or misses the deadline. Exits the process.
 */
export async function run(ms, body) {
  const stops = [];
  let ending = false;
  const finish = async (code, why) => {
    if (ending) return;
    ending = true;
    if (why) console.log(`FAIL: ${why}`);
    setTimeout(() => process.exit(code), 10000);  // a stop that hangs does not hold the exit
    for (const stop of stops.reverse()) await Promise.resolve().then(stop).catch(() => {});
    process.exit(code);
  };
  setTimeout(() => finish(1, `overall deadline (${ms} ms)`), ms);
  try {
    await body((stop) => stops.push(stop));
    await finish(0);
  } catch (e) {
    await finish(1, e && e.stack ? e.stack : String(e));
  }
}

/**
 * Starts `binary --port 0 ...args` and reads its `listening on http://HOST:PORT` line. Resolves
 * with { port, origin, stop }; stop() sends SIGTERM to that PID (SIGKILL 5 s later if it lingers).
 */
export async function startExample(binary, args = []) {
  const child = spawn(binary, ["--port", "0", ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const late = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(late);
  };
  try {
    const origin = await new Promise((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
        const m = out.match(/listening on (http:\/\/[^\s/]+:(\d+))/);
        if (m) resolve(m[1]);
      });
      child.on("error", reject);  // e.g. no such binary
      child.on("exit", (code) => reject(new Error(`${binary} exited ${code} before listening`)));
      setTimeout(() => reject(new Error(`${binary}: no listening line within 10 s`)), 10000).unref();
    });
    return { port: Number(new URL(origin).port), origin, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Resolves once `pred()` (sync or async) holds; rejects with `what` after `ms`. */
export async function until(pred, what, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) throw new Error(`timeout after ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * An SSE stream read by Node straight from the server: `values` holds `pick(JSON.parse(data))` of
 * every event in order. Where the browser goes through a proxy that cuts it off, this one does
 * not: it tells what the server published while the browser was away. A plain fetch: the test
 * only reads `data:` lines of a stream that never drops.
 */
export class Witness {
  constructor(url, pick) {
    this.values = [];
    this.abort = new AbortController();
    this.done = (async () => {
      const res = await fetch(url, { headers: { Accept: "text/event-stream" }, signal: this.abort.signal });
      const decoder = new TextDecoder();
      let text = "";
      for await (const chunk of res.body) {
        text += decoder.decode(chunk, { stream: true });
        const blocks = text.split("\n\n");
        text = blocks.pop();
        for (const block of blocks) {
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart());
          if (data.length) this.values.push(pick(JSON.parse(data.join("\n"))));
        }
      }
    })().catch(() => {});
  }
  get last() { return this.values.at(-1); }
  close() { this.abort.abort(); }
}

/** Throws unless `xs` counts up by one from its first element to its last: each once, none missing. */
export function consecutive(xs, what) {
  if (!xs.length || !xs.every((x, i) => i === 0 || x === xs[i - 1] + 1))
    throw new Error(`${what}: not consecutive: ${xs.join(",")}`);
}
