// The floor of a Node.js proxy: a byte relay between each client and the primary using the same
// socket path as pgrouter (reads into a reused buffer via onread, writes with socket.write), and
// nothing else: no framing, no routing, no pooling. bench/cpu-cost.ts measures its CPU per
// transaction beside pgrouter's and PgBouncer's, to show how much of pgrouter's cost is the
// runtime's I/O path itself.
//
//   node --import tsx bench/floor/relay.ts <listen port> <primary port>

import net from 'node:net';
import { moveToUserBuffer } from '../../src/util/user-buffer-socket.ts';

const [listenPort, targetPort] = process.argv.slice(2).map(Number);
if (!listenPort || !targetPort) {
  console.error('usage: relay.ts <listen port> <primary port>');
  process.exit(2);
}

const server = net.createServer({ noDelay: true }, (client) => {
  client.pause();
  const server = net.connect({ host: '127.0.0.1', port: targetPort, noDelay: true });
  server.on('error', () => client.destroy());
  client.on('error', () => server.destroy());
  server.once('connect', () => {
    // Bytes the client sent before the backend connection was up.
    const early: Buffer[] = [];
    for (let b = client.read() as Buffer | null; b; b = client.read() as Buffer | null) early.push(b);
    let c: net.Socket | null = null;
    let s: net.Socket | null = null;
    c = moveToUserBuffer(client, (b) => s!.write(b), () => (s?.writableLength ?? 0) > 0);
    s = moveToUserBuffer(server, (b) => c!.write(b), () => (c?.writableLength ?? 0) > 0);
    if (!c || !s) {
      client.destroy();
      server.destroy();
      return;
    }
    c.on('close', () => s!.destroy());
    s.on('close', () => c!.destroy());
    c.on('error', () => undefined);
    s.on('error', () => undefined);
    for (const b of early) s.write(b);
  });
});
server.listen(listenPort, '127.0.0.1', () => console.log(`relay listening on ${listenPort}`));
