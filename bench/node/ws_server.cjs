// bench/node/ws_server.cjs: a broadcast server on Node's `ws` package, written the way ws's README
// broadcasts (loop over wss.clients, client.send(data)). Publishing: POST /pub (body = message),
// on a keep-alive HTTP server that the WebSocket server shares. Subscribers connect to any path.
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
      for (const client of wss.clients) {
        if (client.readyState === WebSocket.OPEN) client.send(data, { binary: false });
      }
      res.end('ok');
    });
    return;
  }
  res.statusCode = 404;
  res.end();
});
server.keepAliveTimeout = 60000;
const wss = new WebSocketServer({ server, perMessageDeflate: false });
server.listen({ port, host: '127.0.0.1', backlog: 4096 }, () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
