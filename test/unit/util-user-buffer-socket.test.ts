// acceptOnUserBuffer's read buffers over real loopback sockets: a closed socket's buffer goes to
// the next accepted socket, except when its owner said the last chunk is still referenced (then
// bytes a later client sends must not overwrite it).

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { acceptOnUserBuffer, readTargetOf, spareReadBuffers } from '../../src/util/user-buffer-socket.ts';

const SIZE = 16 * 1024;

/** What the test does with each accepted socket's chunks: set per test. */
let onAccepted: (sock: net.Socket) => void = () => undefined;
let server: net.Server;
let port = 0;

before(async () => {
  server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
  assert.ok(acceptOnUserBuffer(server, (sock) => onAccepted(sock)), 'the server handle is the expected one');
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

/**
 * One client: connects, sends each of `writes` in turn (50 ms apart, so that each is a read of
 * its own), and resolves with the server-side chunks once the server side has closed. The server
 * reads into SIZE buffers from its second read on (the first goes into the small startup buffer,
 * as in pgrouter); `onChunk` may destroy the socket, `stillInUse` answers for the last chunk.
 */
async function client(
  writes: string[],
  onChunk: (chunk: Buffer, index: number, sock: net.Socket) => void,
  stillInUse: () => boolean = () => false,
): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  let serverClosed!: Promise<void>;
  const accepted = new Promise<void>((resolve) => {
    onAccepted = (sock) => {
      const target = readTargetOf(sock)!;
      target.onChunk = (chunk) => {
        chunks.push(chunk);
        target.size = SIZE;
        onChunk(chunk, chunks.length - 1, sock);
      };
      target.chunkStillInUse = stillInUse;
      sock.on('error', () => undefined);
      // One more turn after 'close', so that its buffer has gone back (or not).
      serverClosed = new Promise((r) => sock.once('close', () => setImmediate(r)));
      resolve();
    };
  });
  const c = net.connect({ host: '127.0.0.1', port });
  c.on('error', () => undefined);
  await new Promise<void>((r) => c.once('connect', () => r()));
  await accepted;
  for (const w of writes) {
    c.write(w);
    await new Promise((r) => setTimeout(r, 50));
  }
  await serverClosed;
  c.destroy();
  return chunks;
}

test('a socket closed by its owner inside a read gives its buffer to the next socket, which reads into it', async () => {
  assert.equal(spareReadBuffers(), 0);
  const first = await client(['startup', 'query, then Terminate'], (_c, i, sock) => i === 1 && sock.destroy());
  assert.deepEqual(first.map(String), ['startup', 'query, then Terminate']);
  assert.equal(first[1]!.buffer.byteLength >= SIZE, true, 'the second read came into a SIZE buffer');
  assert.equal(spareReadBuffers(), 1, 'its buffer waits for the next socket');

  const second = await client(['startup', 'next client'], (_c, i, sock) => i === 1 && sock.destroy());
  assert.deepEqual(second.map(String), ['startup', 'next client']);
  assert.ok(second[1]!.buffer === first[1]!.buffer, 'the next socket read into the same buffer');
  assert.equal(spareReadBuffers(), 1);
});

test('a chunk still held when its socket closes is never overwritten by a later client', async () => {
  let held: Buffer | null = null;
  const before = spareReadBuffers();
  await client(
    ['startup', 'keep these bytes'],
    (chunk, i, sock) => {
      if (i !== 1) return;
      held = chunk; // kept past the callback, as a backend write not yet done keeps one
      sock.destroy();
    },
    () => held !== null,
  );
  // Its second read took the spare buffer the first test left; held, it does not go back.
  assert.equal(before, 1);
  assert.equal(spareReadBuffers(), 0, 'the held buffer did not go back');
  for (let k = 0; k < 3; k++) await client(['startup', 'Z'.repeat(SIZE)], (_c, i, sock) => i >= 1 && sock.destroy());
  assert.equal(held!.toString(), 'keep these bytes');
});
