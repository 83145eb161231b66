// bench/node/uws_server.cjs: a broadcast server on uWebSockets.js (the uWebSockets C++ server as a
// Node addon; npm package @trufflesuite/uws-js-unofficial, which ships prebuilt binaries), written
// the way uWebSockets broadcasts: every subscriber is subscribed to one topic and each published
// message goes out through app.publish(topic, message), so the frame is built once and the fan-out
// over the subscribers runs in C++, with no JavaScript per delivery.
//
// Publishing: a WebSocket connected to /pub (each message it sends is published), or POST /pub
// (body = message) over keep-alive HTTP. Subscribers connect to any other path and are subscribed
// when the upgrade completes, before the client reads the 101, so they need no ready marker.
//
//   node bench/node/uws_server.cjs [--port 0]      (run from bench/, which holds node_modules)
//
// Prints `listening on http://127.0.0.1:PORT`.
'use strict';
const uws = require('@trufflesuite/uws-js-unofficial');

// The package falls back to a JavaScript implementation (on top of `ws`) when its binary does not
// load on this Node; that would be a different server under uWebSockets' name, so refuse to run.
if (!Object.keys(require.cache).some((k) => /[\\/]uws_[^\\/]*\.node$/.test(k))) {
  console.error('uws_server: the uWebSockets.js binary did not load on this Node (only the JS fallback did)');
  process.exit(1);
}

const args = process.argv.slice(2);
const port = Number(args[args.indexOf('--port') + 1] || 0) || 0;
const topic = 't';

const app = uws.App();
// Limits as loose as the other peers': no idle timeout or pings (scenario c holds idle clients),
// and a backpressure allowance above the 1,024 queued messages the other servers allow per
// connection, so that uWebSockets never skips a subscriber (the load generator would count gaps).
const behaviour = {
  compression: uws.DISABLED,
  idleTimeout: 0,
  sendPingsAutomatically: false,
  maxPayloadLength: 64 * 1024,
  maxBackpressure: 1024 * 1024,
};
app.ws('/pub', {
  ...behaviour,
  message: (ws, message, isBinary) => {
    app.publish(topic, message, isBinary);
  },
});
app.ws('/*', {
  ...behaviour,
  open: (ws) => {
    ws.subscribe(topic);
  },
});
app.post('/pub', (res) => {
  const chunks = [];
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  res.onData((chunk, isLast) => {
    // uWebSockets reuses the chunk's memory once this handler returns.
    chunks.push(Buffer.from(chunk.slice(0)));
    if (!isLast) return;
    app.publish(topic, Buffer.concat(chunks), false);
    if (!aborted) res.end('ok');
  });
});
app.listen('127.0.0.1', port, (listenSocket) => {
  if (!listenSocket) {
    console.error(`uws_server: cannot listen on 127.0.0.1:${port}`);
    process.exit(1);
  }
  console.log(`listening on http://127.0.0.1:${uws.us_socket_local_port(listenSocket)}`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
