// Walks a backend's reply stream without holding it back: it finds message boundaries across
// chunk edges so the caller can forward each chunk untouched, and hands out in full only the
// few message types the proxy must read (ReadyForQuery, ErrorResponse, ParameterStatus...).

import { FrameError } from './framer.ts';

/**
 * Called for each complete message of an interesting type: `buf[start, end)` holds it (a view of
 * the chunk, or a copy when it straddled chunks); `chunkEnd` is where it ends in the current chunk.
 */
export type ReplyHandler = (type: number, buf: Buffer, start: number, end: number, chunkEnd: number) => void;

/**
 * A streaming scanner over server messages. `interest[type]` marks the types handed to the
 * handler; all others are only skipped over.
 */
export class ReplyScanner {
  /** Bytes of the current message still to skip (uninteresting) or collect (interesting). */
  private remaining = 0;
  /** Header bytes of a message whose header straddles chunks. */
  private readonly head = Buffer.alloc(5);
  private headLen = 0;
  /** An interesting message being collected across chunks. */
  private collecting: Buffer | null = null;
  private collected = 0;

  constructor(
    private readonly interest: Uint8Array,
    private readonly maxLength = 0x3fffffff,
  ) {}

  /** True when the stream is at a message boundary. */
  get atBoundary(): boolean {
    return this.remaining === 0 && this.headLen === 0;
  }

  scan(chunk: Buffer, onMessage: ReplyHandler): void {
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      if (this.remaining > 0) {
        // Inside a message body that began in an earlier chunk.
        const take = Math.min(this.remaining, n - pos);
        if (this.collecting !== null) {
          chunk.copy(this.collecting, this.collected, pos, pos + take);
          this.collected += take;
        }
        this.remaining -= take;
        pos += take;
        if (this.remaining === 0) this.deliver(onMessage, pos);
        continue;
      }
      if (this.headLen === 0 && n - pos >= 5) {
        const type = chunk[pos]!;
        const len = this.checkedLength(type, chunk.readInt32BE(pos + 1));
        const end = pos + 1 + len;
        if (end <= n) {
          if (this.interest[type] === 1) onMessage(type, chunk, pos, end, end);
          pos = end;
          continue;
        }
        this.startBody(type, len, chunk, pos);
        pos += 5;
        continue;
      }
      // A header split across chunks.
      const take = Math.min(5 - this.headLen, n - pos);
      chunk.copy(this.head, this.headLen, pos, pos + take);
      this.headLen += take;
      pos += take;
      if (this.headLen < 5) return;
      this.headLen = 0;
      const type = this.head[0]!;
      this.startBody(type, this.checkedLength(type, this.head.readInt32BE(1)), this.head, 0);
      if (this.remaining === 0) this.deliver(onMessage, pos);
    }
  }

  private checkedLength(type: number, len: number): number {
    if (len < 4 || len > this.maxLength) throw new FrameError('invalid message length from server', type);
    return len;
  }

  private startBody(type: number, len: number, src: Buffer, at: number): void {
    this.remaining = len - 4;
    if (this.interest[type] === 1) {
      this.collecting = Buffer.allocUnsafe(1 + len);
      src.copy(this.collecting, 0, at, at + 5);
      this.collected = 5;
    }
  }

  private deliver(onMessage: ReplyHandler, chunkEnd: number): void {
    const msg = this.collecting;
    if (msg === null) return;
    this.collecting = null;
    onMessage(msg[0]!, msg, 0, msg.length, chunkEnd);
  }
}
