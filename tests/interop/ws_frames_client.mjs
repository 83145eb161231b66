// A WebSocket client for tests/unit_ws_frame.cpp: Node's `ws` (tests/interop/node_modules) sends a
// fixed list of messages, so that herald's own frame reader is checked against the frames an
// independent implementation puts on the wire.
//
//   node tests/interop/ws_frames_client.mjs PORT plain|deflate
//
// The list must stay the same as cross_check_expected() in tests/unit_ws_frame.cpp and
// ws_frames_client.py. Exits 0 once the closing handshake is over.
import { WebSocket } from 'ws';

const [port, mode] = process.argv.slice(2);
const timer = setTimeout(() => { console.error('FAIL: timed out'); process.exit(1); }, 30000);
// threshold 0: every message compressed, the small ones too.
const ws = new WebSocket(`ws://127.0.0.1:${port}/frames`,
                         { perMessageDeflate: mode === 'deflate' ? { threshold: 0 } : false });
const letters = (n) => Array.from({ length: n }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');

ws.on('open', () => {
  ws.send('hello');
  ws.send('');
  ws.send('h\u00e9llo w\u00f6rld \u2713 \u{1d11e}');
  ws.send(Buffer.from(Array.from({ length: 256 }, (_, i) => i)));
  for (const n of [125, 126, 65535, 65536]) ws.send(letters(n));
  ws.send(Buffer.from(Array.from({ length: 200000 }, (_, i) => (i * 7) % 256)));
  const text = ['frag', 'mented ', '\u00fc', 'ber'];
  text.forEach((t, i) => ws.send(t, { fin: i === text.length - 1 }));
  const bin = [Buffer.from('ab'), Buffer.alloc(0), Buffer.from('cd')];
  bin.forEach((b, i) => ws.send(b, { binary: true, fin: i === bin.length - 1 }));
  ws.ping(Buffer.from('are you there?'));
});
// The test answers the ping with herald's pong; then the client closes.
ws.on('pong', (data) => {
  if (data.toString() !== 'are you there?') { console.error('FAIL: pong', data); process.exit(1); }
  ws.close(4000, 'bye \u2713');
});
ws.on('close', () => { clearTimeout(timer); process.exit(0); });
ws.on('error', (e) => { console.error('FAIL:', e.message); process.exit(1); });
