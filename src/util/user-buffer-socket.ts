// Moves a plain TCP/Unix socket onto Node's `onread` path: the kernel's bytes land in a buffer
// the socket reuses and go straight to a callback, skipping the Readable stream machinery and
// one allocation per read (half of a relay's user CPU per round trip, measured in bench/).
// The caller must say when the last chunk is still referenced (a write that has not completed,
// a view it kept), so that the next read gets a fresh buffer instead of overwriting it.

import net from 'node:net';
import tls from 'node:tls';
import { touch } from './busy-poll.ts';

const CHUNK = 64 * 1024;

/** Internal fields of net.Socket this module relies on (stable across Node 18-22). */
interface SocketInternals {
  _handle: unknown;
  _server: unknown;
  server: unknown;
}

/**
 * Returns a new net.Socket that owns `sock`'s handle and hands every read to `onChunk` (a view
 * valid until the next read unless `chunkStillInUse()` returns true after the callback). Returns
 * null, leaving `sock` as it was, when it cannot be moved (TLS, buffered data, no handle).
 */
export function moveToUserBuffer(
  sock: net.Socket,
  onChunk: (chunk: Buffer) => void,
  chunkStillInUse: () => boolean,
  size = CHUNK,
): net.Socket | null {
  const inner = sock as unknown as SocketInternals;
  // PGROUTER_STREAM_READS=1 keeps Node's ordinary 'data' path (for A/B measurements in bench/).
  if (process.env['PGROUTER_STREAM_READS'] === '1') return null;
  if (sock instanceof tls.TLSSocket || !inner._handle || sock.readableLength > 0 || sock.destroyed) return null;
  sock.pause();
  const handle = inner._handle;
  sock.removeAllListeners();
  inner._handle = null;
  let buf = Buffer.allocUnsafe(size);
  const moved = new net.Socket({
    handle: handle as never,
    onread: {
      // Called after each read's callback: reuse the buffer unless its bytes are still needed.
      buffer: () => {
        if (chunkStillInUse()) buf = Buffer.allocUnsafe(size);
        return buf;
      },
      callback: (n: number, b: Uint8Array) => {
        onChunk(Buffer.isBuffer(b) ? b.subarray(0, n) : Buffer.from(b.buffer, b.byteOffset, n));
        touch();
      },
    },
  } as net.SocketConstructorOpts);
  // The server counts its connections through the socket that owns the handle.
  const m = moved as unknown as SocketInternals;
  m._server = inner._server;
  m.server = inner.server;
  inner._server = null;
  // No setNoDelay here: TCP_NODELAY belongs to the file descriptor, which keeps what the first
  // socket set (another setsockopt per connection otherwise).
  writtenBeforeMove.set(moved, sock.bytesWritten ?? 0);
  return moved;
}

/** Bytes the original socket object wrote before its handle moved (its counter does not move along). */
const writtenBeforeMove = new WeakMap<net.Socket, number>();

/** Bytes read and written over a socket's whole life, whether or not it was moved here. */
export function socketBytes(sock: net.Socket): { received: number; sent: number } {
  return { received: sock.bytesRead, sent: (writtenBeforeMove.get(sock) ?? 0) + (sock.bytesWritten ?? 0) };
}
