// Drops a known number of leading replies from a backend's reply stream: those of a deferred
// BEGIN that pgrouter sent in front of a client's request, and of the Parses it sent with it
// (ParseComplete, BindComplete, CommandComplete). Other messages that come in between, such as a
// NoticeResponse or NotificationResponse, are kept. An ErrorResponse ends the lead: the BEGIN
// failed, and the error belongs to the client. Works across any chunk boundaries.

import { Backend } from './codes.ts';
import { FrameError } from './framer.ts';

const EMPTY = Buffer.alloc(0);

export class ReplyLead {
  /** Lead messages still to drop. */
  private left = 0;
  /** Bytes still to come of the message being walked, and whether they are dropped. */
  private remain = 0;
  private dropping = false;
  /** A message header split across chunks. */
  private readonly head = Buffer.alloc(5);
  private headLen = 0;

  /** Called when an ErrorResponse comes while lead messages are still expected. */
  constructor(private readonly onFailed: () => void) {}

  /** The next `n` replies of the lead kinds are to be dropped (the stream is at a message boundary). */
  expect(n: number): void {
    this.left = n;
  }

  /** True while the filter still has something to do: call take() on each chunk. */
  get active(): boolean {
    return this.left > 0 || this.remain > 0 || this.headLen > 0;
  }

  /** The chunk without the lead's bytes (the chunk itself, a view of it, or a copy of the kept parts). Throws FrameError on a bad length. */
  take(chunk: Buffer): Buffer {
    const n = chunk.length;
    let kept: Buffer[] | null = null;
    let keepFrom = 0;
    let i = 0;
    const keep = (to: number): void => {
      if (to > keepFrom) (kept ??= []).push(chunk.subarray(keepFrom, to));
    };
    while (i < n) {
      if (this.remain > 0) {
        const t = Math.min(this.remain, n - i);
        i += t;
        this.remain -= t;
        if (this.dropping) keepFrom = i;
        continue;
      }
      if (this.left === 0 && this.headLen === 0) break;
      // A message starts at i, or its header began in the last chunk.
      let type: number;
      let len: number;
      let split = false;
      const at = i;
      if (this.headLen === 0 && n - i >= 5) {
        type = chunk[i]!;
        len = chunk.readInt32BE(i + 1);
        i += 5;
      } else {
        keep(i);
        const t = Math.min(5 - this.headLen, n - i);
        chunk.copy(this.head, this.headLen, i, i + t);
        this.headLen += t;
        i += t;
        keepFrom = i;
        if (this.headLen < 5) break;
        this.headLen = 0;
        split = true;
        type = this.head[0]!;
        len = this.head.readInt32BE(1);
      }
      if (len < 4) throw new FrameError('invalid message length from server', type);
      const drop = this.left > 0 && (type === Backend.ParseComplete || type === Backend.BindComplete || type === Backend.CommandComplete);
      if (drop) this.left--;
      else if (type === Backend.ErrorResponse && this.left > 0) {
        this.left = 0;
        this.onFailed();
      }
      this.dropping = drop;
      this.remain = len - 4;
      if (drop) {
        if (!split) keep(at);
        keepFrom = i;
      } else if (split) (kept ??= []).push(Buffer.from(this.head));
    }
    keep(n);
    if (kept === null) return EMPTY;
    return kept.length === 1 ? kept[0]! : Buffer.concat(kept);
  }
}
