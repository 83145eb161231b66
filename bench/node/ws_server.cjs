// bench/node/ws_server.cjs: a broadcast server on Node's `ws` package, written the way ws's README
// broadcasts (loop over the clients, client.send(data)). Publishing: a WebSocket connected to /pub
// (each message it sends is broadcast), or POST /pub (body = message) on the keep-alive HTTP
// server that the WebSocket server shares. Subscribers connect to any other path.
//
//   node bench/node/ws_server.cjs [--port 0]      (NODE_PATH must reach a `ws` install)
//
// Prints `listening on http://127.0.0.1:PORT`.
'use strict';
const http = require('node:http');
const { WebSocketServer, WebSocket } = require('ws');

const args = process.argv.slice(2);
const port = Number(args[args.indexOf('--port') + 1] || 0) || 0;

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url.startsWith('/pub')) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const data = Buffer.concat(chunks);
      broadcast(data);
      res.end('ok');
    });
    return;
  }
  res.statusCode = 404;
  res.end();
});
server.keepAliveTimeout = 60000;
const wss = new WebSocketServer({ server, perMessageDeflate: false });
const subscribers = new Set();
function broadcast(data) {
  for (const client of subscribers) {
    if (client.readyState === WebSocket.OPEN) client.send(data, { binary: false });
  }
}
wss.on('connection', (ws, req) => {
  if (req.url.startsWith('/pub')) {
    ws.on('message', (data) => broadcast(data));
    return;
  }
  subscribers.add(ws);
  ws.on('close', () => subscribers.delete(ws));
});
server.listen({ port, host: '127.0.0.1', backlog: 4096 }, () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
