// A TCP proxy that holds data back the way broken corporate proxies do, for the browser's
// proof-of-delivery tests (the Node twin of tests/support/stall_proxy.hpp). Each request is told
// apart by its head: a WebSocket upgrade, an SSE request (Accept: text/event-stream) or a plain
// one. Per kind the proxy may hold back the server's whole answer (its headers never arrive), or
// let the headers through (a 101, a 200) and hold back everything after them, both ways;
// stall() makes every open connection go silent mid-way. Held bytes are read and dropped.
//
// Browsers reuse keep-alive connections for later requests, so the proxy asks the server to
// close after each plain or SSE answer (it rewrites the request's Connection header): every
// connection then carries one request, and its first head says what it is.
import net from "node:net";

export class StallProxy {
  constructor(upstreamPort) {
    this.upstreamPort = upstreamPort;
    this.holds = { websocket: "nothing", sse: "nothing", plain: "nothing" };
    this.counts = { websocket: 0, sse: 0, plain: 0 };
    this.pairs = new Set();
  }

  /** Listens on 127.0.0.1 and a free port; resolves with the port. */
  async listen() {
    this.server = net.createServer((socket) => this.accept(socket));
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return this.server.address().port;
  }

  /** Requests of `kind` ("websocket" | "sse" | "plain") from now on: hold "nothing" | "response" | "body". */
  hold(kind, what) { this.holds[kind] = what; }

  /** Every open connection goes silent, both ways (it stays open). */
  stall() { for (const p of this.pairs) p.stalled = true; }

  close() {
    for (const p of this.pairs) p.close();
    this.server.close();
  }

  accept(down) {
    const up = net.connect(this.upstreamPort, "127.0.0.1");
    const p = {
      head: Buffer.alloc(0), answer: Buffer.alloc(0), kind: null, hold: "nothing",
      headersPassed: false, stalled: false,
      close: () => { down.destroy(); up.destroy(); this.pairs.delete(p); },
    };
    this.pairs.add(p);
    // One side done: the other gets what is still buffered, then the end.
    const finish = () => { down.end(); up.end(); this.pairs.delete(p); };
    for (const s of [down, up]) { s.on("end", finish); s.on("close", finish); s.on("error", p.close); }
    // Under "body", once the answer's head went through, nothing passes either way.
    const held = () => p.stalled || (p.hold === "body" && p.headersPassed);

    down.on("data", (chunk) => {
      if (p.kind === null) {
        p.head = Buffer.concat([p.head, chunk]);
        const end = p.head.indexOf("\r\n\r\n");
        if (end < 0) return;  // the rest of the head is still to come
        let head = p.head.subarray(0, end).toString("latin1");
        const rest = p.head.subarray(end + 4);
        const lower = head.toLowerCase();
        p.kind = /\r\nupgrade:\s*websocket/.test(lower) ? "websocket"
          : /\r\naccept:[^\r\n]*text\/event-stream/.test(lower) ? "sse" : "plain";
        this.counts[p.kind] += 1;
        p.hold = this.holds[p.kind];
        if (p.kind !== "websocket")
          head = head.split("\r\n").filter((l) => !/^connection:/i.test(l)).join("\r\n") + "\r\nConnection: close";
        chunk = Buffer.concat([Buffer.from(head + "\r\n\r\n", "latin1"), rest]);
      }
      if (!held()) up.write(chunk);
    });

    up.on("data", (chunk) => {
      if (held() || p.hold === "response") return;
      if (p.hold === "body") {
        // Up to the end of the answer's head, not a byte beyond.
        const before = p.answer.length;
        p.answer = Buffer.concat([p.answer, chunk]);
        const end = p.answer.indexOf("\r\n\r\n");
        if (end >= 0) {
          chunk = chunk.subarray(0, end + 4 - before);
          p.headersPassed = true;
        }
      }
      down.write(chunk);
    });
  }
}
