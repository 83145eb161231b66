// Interop: Node's `ws` package (tests/interop/package.json) against examples/chat.
//
//   node tests/interop/ws_node.mjs path/to/herald_example_chat
//
// Starts the chat server on a free port, reads its "listening on" line, then checks with two
// independent clients: subscribe acks, a message from one reaching both as an event envelope
// with the JSON payload embedded, binary refused by the application, resume with "since",
// permessage-deflate negotiation, and close code 1001 on SIGTERM. Every wait is bounded; any
// failure exits non-zero.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";
import WebSocket from "ws";

const TIMEOUT = 10_000;
const binary = process.argv[2];
if (!binary) {
  console.error("usage: ws_node.mjs path/to/herald_example_chat");
  process.exit(2);
}

const overall = setTimeout(() => {
  console.error("FAIL: overall timeout");
  process.exit(1);
}, 60_000);

function within(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), TIMEOUT);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A client whose text frames are queued as parsed JSON, so tests can await them in order. */
function client(url, options) {
  const ws = new WebSocket(url, options);
  const queue = [];
  const waiters = [];
  ws.on("message", (data, isBinary) => {
    assert.equal(isBinary, false, "the chat sends text frames only");
    const msg = JSON.parse(data.toString("utf8"));
    if (waiters.length) waiters.shift()(msg);
    else queue.push(msg);
  });
  const opened = within(new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  }), "open");
  const closed = new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  const next = (what = "message") =>
    within(new Promise((resolve) => (queue.length ? resolve(queue.shift()) : waiters.push(resolve))), what);
  const send = (obj) => ws.send(JSON.stringify(obj));
  return { ws, opened, closed, next, send };
}

const server = spawn(binary, ["--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
let exited = null;
server.on("exit", (code, signal) => { exited = { code, signal }; });

try {
  const lines = createInterface({ input: server.stdout });
  const first = await within(new Promise((resolve) => lines.once("line", resolve)), "listening line");
  const m = /^listening on http:\/\/(\S+):(\d+)$/.exec(first);
  assert.ok(m, `unexpected first line: ${first}`);
  const url = `ws://${m[1]}:${m[2]}/chat`;

  const a = client(url);
  const b = client(url, { perMessageDeflate: true });
  await a.opened;
  await b.opened;
  // The server offers permessage-deflate only when enabled; the chat example leaves it off.
  assert.equal(b.ws.extensions, "", "no extension negotiated by default");

  for (const c of [a, b]) {
    c.send({ subscribe: "lobby" });
    const ack = await c.next("ack");
    assert.deepEqual(Object.keys(ack).sort(), ["cursor", "subscribed"]);
    assert.equal(ack.subscribed, "lobby");
    assert.equal(typeof ack.cursor, "number");
  }

  a.send({ room: "lobby", name: "node", text: "hello from node ✓" });
  const gotA = await a.next("event at a");
  const gotB = await b.next("event at b");
  assert.deepEqual(gotA, gotB);
  assert.deepEqual(Object.keys(gotA).sort(), ["data", "id", "topic"]);
  assert.equal(gotA.topic, "lobby");
  assert.deepEqual(gotA.data, { name: "node", text: "hello from node ✓" });

  // Binary goes to the application, which refuses it politely; the connection stays up.
  b.ws.send(Buffer.from([0, 1, 2, 255]));
  assert.ok("error" in (await b.next("binary refusal")));
  b.send({ subscribe: "lobby", unsubscribe: "lobby" });
  assert.equal((await b.next("bad control")).error, "bad control message");

  b.send({ room: "lobby", name: "node2", text: "second" });
  const second = await a.next("second at a");
  await b.next("second at b");
  assert.ok(second.id > gotA.id);
  assert.deepEqual(second.data, { name: "node2", text: "second" });

  // Resume on a fresh connection: exactly the event after the cursor.
  const c = client(url);
  await c.opened;
  c.send({ subscribe: "lobby", since: gotA.id });
  assert.equal((await c.next("resume ack")).subscribed, "lobby");
  assert.deepEqual(await c.next("replayed"), second);

  a.ws.close(1000);
  assert.equal((await within(a.closed, "a closed")).code, 1000);

  // Graceful stop: every remaining client is told 1001 (going away).
  server.kill("SIGTERM");
  for (const x of [b, c]) assert.equal((await within(x.closed, "close after SIGTERM")).code, 1001);
  await within(new Promise((resolve) => (exited ? resolve() : server.once("exit", resolve))), "server exit");
  assert.equal(exited.code, 0, `server exited with ${JSON.stringify(exited)}`);
  console.log("ok: node ws");
  clearTimeout(overall);
} catch (e) {
  console.error("FAIL:", e && e.stack ? e.stack : e);
  if (exited === null) server.kill("SIGKILL");
  process.exit(1);
}
