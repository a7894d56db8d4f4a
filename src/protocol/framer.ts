// Splits a byte stream into protocol 3.0 messages (1 type byte, 4 length bytes, body).
// Zero copy: a message that lies inside one chunk is handed out as a view of that chunk; only
// a message that straddles chunks is assembled into a buffer of its own.

/** Called once per complete message: `buf[start]` is the type byte, `buf.subarray(start, end)` the whole message. */
export type FrameHandler = (type: number, buf: Buffer, start: number, end: number) => void;

/** Why a stream could not be framed. */
export class FrameError extends Error {
  constructor(
    message: string,
    readonly type: number,
  ) {
    super(message);
    this.name = 'FrameError';
  }
}

/** Returns the largest length (the length field's value) allowed for a message type. */
export type LengthLimit = (type: number) => number;

/**
 * Incremental framer. Feed it chunks as they arrive; it calls the handler for each complete
 * message in order and keeps the incomplete tail for the next chunk.
 */
export class Framer {
  /** Pieces of a message that has started but not ended (views of earlier chunks). */
  private parts: Buffer[] = [];
  private partsLen = 0;
  /** Total size of the straddling message once its header is known, else 0. */
  private need = 0;

  constructor(private readonly limit: LengthLimit) {}

  /** Bytes held back waiting for the rest of a message. */
  get buffered(): number {
    return this.partsLen;
  }

  /**
   * Frames `chunk`. Throws FrameError on a length that is negative, under 4 or over the limit;
   * after that the stream is out of sync and must be closed.
   */
  feed(chunk: Buffer, onFrame: FrameHandler): void {
    let pos = 0;
    if (this.partsLen > 0) {
      pos = this.finishStraddler(chunk, onFrame);
      if (pos < 0) return;
    }
    const n = chunk.length;
    while (n - pos >= 5) {
      const type = chunk[pos]!;
      const len = chunk.readInt32BE(pos + 1);
      if (len < 4 || len > this.limit(type)) throw new FrameError('invalid message length', type);
      const end = pos + 1 + len;
      if (end > n) break;
      onFrame(type, chunk, pos, end);
      pos = end;
    }
    if (pos < n) this.keep(chunk.subarray(pos));
  }

  /** Drops any partial message (after the caller has decided to stop reading). */
  reset(): void {
    this.parts = [];
    this.partsLen = 0;
    this.need = 0;
  }

  private keep(piece: Buffer): void {
    // Why copy: a view would pin the whole (usually 64 KiB) chunk for as long as we wait.
    const copy = Buffer.allocUnsafe(piece.length);
    piece.copy(copy);
    this.parts.push(copy);
    this.partsLen += copy.length;
    if (this.need === 0 && this.partsLen >= 5) this.learnNeed();
  }

  private learnNeed(): void {
    const head = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partsLen);
    if (this.parts.length !== 1) this.parts = [head];
    const type = head[0]!;
    const len = head.readInt32BE(1);
    if (len < 4 || len > this.limit(type)) throw new FrameError('invalid message length', type);
    this.need = 1 + len;
  }

  /** Completes the held message with the start of `chunk`; returns where the rest of `chunk` starts, or -1 if all was consumed. */
  private finishStraddler(chunk: Buffer, onFrame: FrameHandler): number {
    if (this.need === 0) {
      const take = Math.min(5 - this.partsLen, chunk.length);
      this.parts.push(chunk.subarray(0, take));
      this.partsLen += take;
      if (this.partsLen < 5) {
        this.parts = [Buffer.concat(this.parts, this.partsLen)];
        return -1;
      }
      this.learnNeed();
      return this.continueStraddler(chunk, take, onFrame);
    }
    return this.continueStraddler(chunk, 0, onFrame);
  }

  private continueStraddler(chunk: Buffer, from: number, onFrame: FrameHandler): number {
    const missing = this.need - this.partsLen;
    const avail = chunk.length - from;
    if (avail < missing) {
      this.parts.push(Buffer.from(chunk.subarray(from)));
      this.partsLen += avail;
      return -1;
    }
    this.parts.push(chunk.subarray(from, from + missing));
    const frame = Buffer.concat(this.parts, this.need);
    this.reset();
    onFrame(frame[0]!, frame, 0, frame.length);
    return from + missing;
  }
}
