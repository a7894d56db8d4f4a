// Puts plain TCP/Unix sockets on Node's `onread` path: the kernel's bytes land in a buffer the
// socket reuses and go straight to a callback, skipping the Readable stream machinery and one
// allocation per read (half of a relay's user CPU per round trip, measured in bench/). A
// listener can build its accepted sockets that way from the start (acceptOnUserBuffer); a
// socket that already exists is moved there (moveToUserBuffer). The owner must say when the last
// chunk is still referenced (a write that has not completed, a view it kept), so that the next
// read gets a fresh buffer instead of overwriting it.

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

/** Internal fields of net.Server this module relies on (stable across Node 18-22). */
interface ServerInternals {
  _handle: { onconnection: (err: number, clientHandle: unknown) => void } | null;
  _connections: number;
  noDelay?: boolean;
}

/** Where an accepted socket's reads go; its owner (the session) sets both fields. */
export interface ReadTarget {
  /** A view of the read buffer, valid until the next read unless `chunkStillInUse()` says otherwise. */
  onChunk: (chunk: Buffer) => void;
  /** Asked after each read's callback: true makes the next read use a new buffer. */
  chunkStillInUse: () => boolean;
  /**
   * Size of the read buffer from the next read on. It starts small (STARTUP_READ_BUFFER): a
   * connection that waits in the admission queue, or is refused, touches no more memory than
   * its startup packet needs; the owner raises it when the session is ready.
   */
  size: number;
}

/** The first read buffer of an accepted socket; bytes past it come in the following reads. */
const STARTUP_READ_BUFFER = 1024;

const readTargets = new WeakMap<net.Socket, ReadTarget>();

/** The read target of a socket built by acceptOnUserBuffer (undefined for any other socket). */
export function readTargetOf(sock: net.Socket): ReadTarget | undefined {
  return readTargets.get(sock);
}

/**
 * Makes `server` build each accepted connection's net.Socket on the reused-buffer path itself,
 * and hand it to `onSocket` instead of emitting 'connection'. Node has no public option for
 * this; without it, each connection costs a second net.Socket when it moves there (about 8% of
 * pgrouter's CPU per login in a profile of `pgbench -S -C`). The socket's reads are dropped until
 * its owner sets its ReadTarget (readTargetOf), which it must do before returning to the event
 * loop. Call after `listen` succeeded. Returns false, changing nothing, when the server's handle
 * is not the expected one; it then keeps emitting ordinary sockets.
 */
export function acceptOnUserBuffer(server: net.Server, onSocket: (sock: net.Socket) => void): boolean {
  const srv = server as unknown as ServerInternals;
  if (process.env['PGROUTER_STREAM_READS'] === '1') return false;
  const handle = srv._handle;
  if (!handle || typeof handle.onconnection !== 'function' || typeof srv._connections !== 'number') return false;
  const noDelay = srv.noDelay === true;
  handle.onconnection = (err: number, clientHandle: unknown): void => {
    if (err || !clientHandle) return; // an accept(2) error: Node's own handler drops it too
    if (noDelay) (clientHandle as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    const target: ReadTarget = { onChunk: dropChunk, chunkStillInUse: notInUse, size: STARTUP_READ_BUFFER };
    const sock = socketOnHandle(clientHandle, target, true);
    // As Node's own handler does: the server counts the socket until it closes.
    srv._connections++;
    const m = sock as unknown as SocketInternals;
    m.server = server;
    m._server = server;
    readTargets.set(sock, target);
    onSocket(sock);
  };
  return true;
}

function dropChunk(): void {}
function notInUse(): boolean {
  return false;
}

/**
 * Read buffers of closed client sockets, by size, for the next sockets to read into. Each fresh
 * 16 KiB buffer is memory outside V8's heap that V8 counts towards its next full collection:
 * under a new connection per transaction, thousands a second made it mark and compact the old
 * generation several times a second (bench/RESULTS.md).
 */
const spare = new Map<number, Buffer[]>();
let spareCount = 0;
/** At most this many buffers wait (256 KiB at 16 KiB each). */
const SPARE_MAX = 16;
/** Smaller buffers are slices of Node's shared pool: not worth keeping. */
const SPARE_MIN_SIZE = 4096;

function takeBuffer(size: number): Buffer {
  const b = spare.get(size)?.pop();
  if (b === undefined) return Buffer.allocUnsafe(size);
  spareCount--;
  return b;
}

function giveBack(b: Buffer): void {
  if (spareCount >= SPARE_MAX || b.length < SPARE_MIN_SIZE) return;
  let list = spare.get(b.length);
  if (list === undefined) spare.set(b.length, (list = []));
  list.push(b);
  spareCount++;
}

/** How many read buffers wait for a socket (for tests). */
export function spareReadBuffers(): number {
  return spareCount;
}

/**
 * A net.Socket on `handle` whose reads go to `target`, through a buffer it reuses when it may.
 * `recycle`: when the socket closes, its read buffer goes to the next socket, unless
 * `chunkStillInUse()` said it was still referenced (then it is left to whoever holds it).
 */
function socketOnHandle(handle: unknown, target: ReadTarget, recycle = false): net.Socket {
  let buf: Buffer | null = null;
  // Not set during the constructor, which asks for the first buffer itself.
  let sock: net.Socket | null = null;
  sock = new net.Socket({
    handle: handle as never,
    onread: {
      // Called once when the socket starts, then after each read's callback (also one that
      // destroyed the socket).
      buffer: () => {
        if (buf !== null && target.chunkStillInUse()) buf = null; // left to whoever holds it
        if (sock?.destroyed) return buf; // no more reads: not a Uint8Array when null, which Node ignores
        if (buf === null || buf.length !== target.size) buf = recycle ? takeBuffer(target.size) : Buffer.allocUnsafe(target.size);
        return buf;
      },
      callback: (n: number, b: Uint8Array) => {
        target.onChunk(Buffer.isBuffer(b) ? b.subarray(0, n) : Buffer.from(b.buffer, b.byteOffset, n));
        touch();
      },
    },
  } as net.SocketConstructorOpts);
  if (recycle)
    sock.once('close', () => {
      // Nothing read since buffer() last ruled on it, so nothing but this socket refers to it.
      if (buf !== null && buf.length === target.size) giveBack(buf);
      buf = null;
    });
  return sock;
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
  const moved = socketOnHandle(handle, { onChunk, chunkStillInUse, size });
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
