// Interop helper of cluster.py: one `eventsource` (WHATWG EventSource for Node) client that
// cluster.py moves from node to node. It follows one URL at a time; EventSource reconnects by
// itself to that URL (with its own Last-Event-ID), and since an EventSource cannot change its
// URL, a hop closes it and opens a new one on the next node with the last id it saw.
//
//   node tests/interop/cluster_eventsource.mjs
//
// stdin, one command a line:
//   open URL [LAST_ID]   close the current EventSource (if any) and open one on URL, sending
//                        Last-Event-ID: LAST_ID (default: the last id seen) on its first request
//   quit                 close and exit 0
// stdout, one JSON object a line:
//   {"open":URL}  {"event":{"id":"…","data":"…"},"url":URL}  {"reset":"…","url":URL}
//   {"error":URL,"readyState":N}
// The helper exits by itself when stdin closes or after 110 s, so it never outlives its test.
import { createInterface } from "node:readline";

let EventSource;
try {
  ({ EventSource } = await import("eventsource"));
} catch (e) {
  console.error(`FAIL: cannot load the eventsource package from tests/interop/node_modules ` +
                `(run bash scripts/setup): ${e.message}`);
  process.exit(1);
}

const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
setTimeout(() => {
  console.error("FAIL: cluster_eventsource.mjs overall timeout (110 s)");
  process.exit(1);
}, 110_000).unref();

let es = null;
let last = "";

function open(url, since) {
  if (es) es.close();
  const first = since ?? last;
  const current = new EventSource(url, {
    // The cursor on the first request only: EventSource's own Last-Event-ID wins after that.
    fetch: (u, init) => fetch(u, { ...init, headers: { "Last-Event-ID": first, ...init?.headers } }),
  });
  current.onopen = () => say({ open: url });
  current.onerror = () => say({ error: url, readyState: current.readyState });
  current.onmessage = (e) => {
    last = e.lastEventId;
    say({ event: { id: e.lastEventId, data: e.data }, url });
  };
  current.addEventListener("reset", (e) => say({ reset: e.data, url }));
  es = current;
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const [cmd, url, since] = line.trim().split(/\s+/);
  if (cmd === "open" && url) return open(url, since);
  if (cmd === "quit") {
    if (es) es.close();
    process.exit(0);
  }
  console.error(`cluster_eventsource.mjs: unknown command: ${line}`);
  process.exit(2);
});
lines.on("close", () => {
  if (es) es.close();
  process.exit(0);
});
