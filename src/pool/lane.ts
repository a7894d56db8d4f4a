// One backend connection shared by transaction-pooled sessions (pool_mode = transaction). Requests
// of several clients are written to it back to back, several per write (pipelined), and its reply
// stream is cut at each ReadyForQuery and handed, in order, to the client whose request it answers.
// It also keeps the server-side names of the prepared statements parsed on this connection, and
// sends a client's deferred BEGIN in front of the first request of its transaction.

import type { ReplySink, ServerConnection } from '../backend/connection.ts';
import { Backend, TxStatus } from '../protocol/codes.ts';
import { decodeErrorFields } from '../protocol/error-response.ts';
import { closeStatement } from '../protocol/statement-names.ts';
import { query, sync } from '../protocol/writer.ts';
import { DEFERRED_BEGIN, deferredBeginOf } from '../protocol/deferred-begin.ts';

/** What a lane needs from a client session. */
export interface LaneClient {
  /** Reply bytes for the client (a view of the lane's read buffer). */
  deliver(bytes: Buffer): void;
  /** Bytes still queued on the client's socket. */
  readonly queuedBytes: number;
  /** Calls `cb` once the client's socket has drained (or closed). */
  onceDrained(cb: () => void): void;
  /**
   * One of the client's requests got its ReadyForQuery (`status` is its status byte); `failed`
   * when an ErrorResponse came in its replies.
   */
  requestDone(lane: Lane, status: number, failed: boolean): void;
  /** The backend connection failed while the client held it (a transaction, or pinned). */
  laneLost(lane: Lane, err: Error | undefined): void;
  /** The backend connection failed before one of the client's requests was answered (once per request, in order). */
  requestLost(lane: Lane, err: Error | undefined): void;
  /** A cached statement of one of the client's requests was stale: sent again (`retried`), or the error went to the client. */
  statementStale?(lane: Lane, retried: boolean): void;
}

/**
 * How to send a request again that used a cached statement in place of the client's unnamed
 * Parse, should the server find that statement stale ("cached plan must not change result type",
 * after a change of the tables it reads): the statement is closed and the request goes again as
 * the client wrote it.
 */
export interface Retry {
  /** The cached statement's parse key and server-side name. */
  readonly key: string;
  readonly name: string;
  /** The client's request, unchanged (a copy). */
  readonly bytes: Buffer;
}

/**
 * A client's BEGIN answered by pgrouter and sent in front of its next request (see
 * transaction_defer_begin): `begin` for a request that ends in the client's own Sync (an
 * extended-protocol batch), `begin+sync` for a Query or FunctionCall, which gets a Sync of
 * pgrouter's after it.
 */
export type OpensWith = 'none' | 'begin' | 'begin+sync';

const SYNC = sync();
/** CommandComplete "BEGIN": 'C', Int32 length, "BEGIN\0". */
const BEGIN_COMPLETE_BYTES = 11;
const READY_BYTES = 6;

/** A request written to the lane, waiting for its ReadyForQuery. */
interface Pending {
  readonly client: LaneClient;
  /** ParseComplete/CloseComplete replies to drop: answers to the Parses and Closes pgrouter put in front of the request. */
  strip: number;
  /**
   * Bytes the client gets before the request's replies (ParseComplete for Parses answered here).
   * A request ending in Sync always has a reply, so its prefix goes out with the reply's first
   * bytes in one write; otherwise it goes as soon as the request is at the head.
   */
  prefix: Buffer | null;
  readonly replyFollows: boolean;
  /** A reply pgrouter makes itself (an admin command's); nothing of it went to the server. */
  readonly local: Buffer | null;
  /**
   * Parse keys this request registered in `statements`. If it fails they are forgotten, and
   * closed on the server: the Parse may have succeeded before a later message failed.
   */
  readonly registered: readonly string[] | null;
  failed: boolean;
  /** performance.now() when it was written (pgrouter_query_duration_seconds). */
  readonly sentAt: number;
  /** Set when the request may be sent again (see Retry) until its first reply message is seen. */
  retry: Retry | null;
  /** Its replies are being dropped up to its ReadyForQuery, and it is then sent again. */
  swallow: boolean;
  /** Leading replies still to drop: a deferred BEGIN's BindComplete and CommandComplete (its ParseComplete counts in `strip`), or the BindComplete of a refusal a request was replaced with (TransactionDispatcher.refuseOnStandby). */
  lead: number;
  /**
   * A deferred BEGIN's Sync follows the request (OpensWith 'begin+sync'): 1 while the client's
   * own ReadyForQuery is to come, 2 once it has passed (the next one, pgrouter's, is dropped and
   * ends the request), 0 otherwise.
   */
  extraReady: number;
}

/** Server-side statement names are unique in the process, so a reused connection never sees one twice. */
let nextStatement = 1;

/** Replies a slow client may have queued before the lane stops reading for it. */
const CLIENT_HIGH_WATER = 256 * 1024;
const STAGE_SIZE = 16 * 1024;
/** The client of the lane's own housekeeping requests: their replies are dropped. */
const NOBODY: LaneClient = {
  deliver: () => undefined,
  queuedBytes: 0,
  onceDrained: (cb) => cb(),
  requestDone: () => undefined,
  laneLost: () => undefined,
  requestLost: () => undefined,
};

/** Lane.settings of a connection whose settings request failed: anything but what a session wants. */
const UNKNOWN_SETTINGS = '\0unknown';

/** The client of the requests that set a session's settings on a lane (see applySettings): replies dropped. */
const SETTINGS: LaneClient = {
  ...NOBODY,
  // A failed settings request leaves the connection's settings unknown: the next session to use
  // the lane sets its own again, RESET ALL first.
  requestDone: (lane, _status, failed) => {
    if (failed) lane.forgetSettings();
  },
};

/** Unnamed-statement texts a lane remembers having seen once (see seenUnnamed). */
const SEEN_UNNAMED = 1024;

/** Called by the lane on its group's behalf. */
export interface LaneOwner {
  /** The lane has no request in flight any more. */
  laneIdle(lane: Lane): void;
  /** The backend connection closed or broke. */
  laneClosed(lane: Lane, err: Error | undefined): void;
}

export class Lane implements ReplySink {
  private readonly fifo: Pending[] = [];
  private head = 0;
  /** performance.now() when the oldest request in flight was written, or began to be answered. */
  private headSince = 0;
  /** performance.now() at the last reply chunk. */
  private lastReply = 0;
  /** The client holding the lane (a transaction in progress, a Flush-ended batch, or pinned). */
  holder: LaneClient | null = null;
  /** Held for good by one session (it changed session state); no longer in its group's count. */
  pinned = false;
  /** Kept free of new pipelined requests until an exclusive request waiting for it can have it. */
  reserved = false;
  /** Server-side statement name by parse key (see statement-names.ts). */
  readonly statements = new Map<string, string>();
  /** Parse keys of unnamed statements seen once on this connection (see seenUnnamed). */
  private readonly unnamedSeen = new Set<string>();
  /** Last ReadyForQuery status seen. */
  status: number = TxStatus.Idle;
  /**
   * The session settings in force on this connection beyond those of its login: the SET
   * statements of the session whose request it last ran (see applySettings), '' for none.
   */
  settings = '';
  /**
   * The connection's ParameterStatus values at its login. A new session of the group is told
   * these, not what another session's SET made of them since.
   */
  readonly loginParams: ReadonlyMap<string, string>;
  private stage = Buffer.allocUnsafe(STAGE_SIZE);
  private staged = 0;
  private flushScheduled = false;
  private heldChunk = false;
  private pausedForClient = false;
  // Reply stream position: bytes to drop, length bytes still to read, body bytes left.
  private skip = 0;
  private lenNeed = 0;
  private lenAcc = 0;
  private rem = 0;
  private curIsReady = false;
  closed = false;

  constructor(
    readonly conn: ServerConnection,
    private readonly owner: LaneOwner,
  ) {
    conn.sink = this;
    // A server ending the connection must not end the clients' sessions with it: those with a
    // request in flight get an error for it instead (requestLost, laneLost).
    conn.forwardsFatal = false;
    this.status = conn.txStatus;
    this.loginParams = new Map(conn.params);
  }

  /** Requests in flight. */
  get inFlight(): number {
    return this.fifo.length - this.head;
  }

  /**
   * True when the oldest request in flight has waited longer than `ms` and no reply byte has come
   * for as long: a slow statement holds the lane (a busy lane keeps answering, however loaded).
   */
  stalled(now: number, ms: number): boolean {
    return this.inFlight > 0 && now - Math.max(this.headSince, this.lastReply) > ms;
  }

  /**
   * True when an unnamed statement with this parse key was seen on this connection before: the
   * second time, it is worth keeping as a named statement. A text seen once is remembered, up to
   * SEEN_UNNAMED texts (then the memory starts again).
   */
  seenUnnamed(key: string): boolean {
    if (this.unnamedSeen.delete(key)) return true;
    if (this.unnamedSeen.size >= SEEN_UNNAMED) this.unnamedSeen.clear();
    this.unnamedSeen.add(key);
    return false;
  }

  /** A fresh server-side name for a statement parsed on this connection. */
  newStatementName(): string {
    return `pgrouter_${nextStatement++}`;
  }

  /**
   * Writes a request that ends in a ReadyForQuery. Its bytes are staged and written with the
   * other requests of this event-loop turn in one write. `dropBindComplete`: the first
   * BindComplete of its replies is not the client's (see `lead`).
   */
  request(
    client: LaneClient,
    bytes: readonly Buffer[],
    strip: number,
    prefix: Buffer | null,
    registered: readonly string[] | null,
    retry: Retry | null = null,
    replyFollows = false,
    opens: OpensWith = 'none',
    beginText: string | null = null,
    dropBindComplete = false,
  ): void {
    const begin = opens !== 'none';
    this.push({
      client,
      strip: begin ? strip + 1 : strip,
      prefix,
      replyFollows,
      local: null,
      registered,
      failed: false,
      sentAt: performance.now(),
      retry,
      swallow: false,
      lead: begin ? 2 : dropBindComplete ? 1 : 0,
      extraReady: opens === 'begin+sync' ? 1 : 0,
    });
    if (begin) this.stageBytes(beginText === null ? DEFERRED_BEGIN : deferredBeginOf(beginText));
    for (const b of bytes) this.stageBytes(b);
    if (opens === 'begin+sync') this.stageBytes(SYNC);
    this.kick();
  }

  /**
   * Gives the connection a session's settings (`sql`: its SET statements, one per line, as
   * Session keeps them) ahead of whatever is written next: RESET ALL first when the connection
   * has others, all in one Query whose replies are dropped (ParameterStatus included: the
   * session was told of each value when it set it).
   */
  applySettings(sql: string): void {
    const text = this.settings === '' ? sql : sql === '' ? 'RESET ALL' : `RESET ALL;\n${sql}`;
    this.settings = sql;
    this.push({ client: SETTINGS, strip: 0, prefix: null, replyFollows: false, local: null, registered: null, failed: false, sentAt: 0, retry: null, swallow: false, lead: 0, extraReady: 0 });
    this.put(query(text));
  }

  /** The connection's settings are not known any more: the next session to use it sets its own, RESET ALL first. */
  forgetSettings(): void {
    this.settings = UNKNOWN_SETTINGS;
  }

  /** Bytes that belong to a request already in flight (after a Flush, COPY data). */
  write(bytes: Buffer): void {
    this.put(bytes);
  }

  /**
   * More ParseComplete/CloseComplete replies to drop for the request last written (the rest of
   * a batch after a Flush, on a held lane: the client has read the replies before it).
   */
  stripMore(n: number): void {
    if (this.inFlight > 0) this.fifo[this.fifo.length - 1]!.strip += n;
  }

  /** A reply made by pgrouter, delivered after the client's replies still in flight here. */
  local(client: LaneClient, reply: Buffer): void {
    this.push({ client, strip: 0, prefix: null, replyFollows: false, local: reply, registered: null, failed: false, sentAt: 0, retry: null, swallow: false, lead: 0, extraReady: 0 });
  }

  private push(p: Pending): void {
    if (this.inFlight === 0) {
      this.headSince = performance.now();
      if (p.local !== null) {
        p.client.deliver(p.local);
        p.client.requestDone(this, this.status, false);
        return;
      }
      if (p.prefix !== null && !p.replyFollows) {
        p.client.deliver(p.prefix);
        p.prefix = null;
      }
    }
    this.fifo.push(p);
  }

  private put(b: Buffer): void {
    this.stageBytes(b);
    this.kick();
  }

  /** Adds bytes to the stage (a request's parts go out in one write; see kick). */
  private stageBytes(b: Buffer): void {
    if (this.staged + b.length > this.stage.length) {
      if (this.staged > 0) this.flush();
      if (b.length > this.stage.length) {
        this.conn.write(b);
        return;
      }
    }
    b.copy(this.stage, this.staged);
    this.staged += b.length;
  }

  /** Writes the stage now on a held lane (one client's requests only: nothing to wait for), else at the end of this event-loop turn. */
  private kick(): void {
    if (this.staged === 0) return;
    if (this.holder !== null) {
      this.flush();
      return;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.staged === 0 || this.closed) return;
    const out = this.stage.subarray(0, this.staged);
    this.staged = 0;
    this.conn.write(out);
    // The socket still references the bytes: stage the next ones elsewhere.
    if (this.conn.socket.writableLength > 0) this.stage = Buffer.allocUnsafe(STAGE_SIZE);
  };

  // ---- replies ----

  holdsReplyChunk(): boolean {
    return this.heldChunk;
  }

  onReply(_conn: ServerConnection, chunk: Buffer): void {
    this.heldChunk = false;
    this.lastReply = performance.now();
    const n = chunk.length;
    let i = 0;
    let from = 0;
    while (i < n) {
      if (this.skip > 0) {
        const t = Math.min(this.skip, n - i);
        i += t;
        this.skip -= t;
        from = i;
        continue;
      }
      if (this.lenNeed > 0) {
        while (this.lenNeed > 0 && i < n) {
          this.lenAcc = this.lenAcc * 256 + chunk[i++]!;
          this.lenNeed--;
        }
        if (this.lenNeed === 0) this.startBody(this.lenAcc);
        continue;
      }
      if (this.rem > 0) {
        const t = Math.min(this.rem, n - i);
        i += t;
        this.rem -= t;
        if (this.rem === 0 && this.curIsReady) {
          this.curIsReady = false;
          this.ready(chunk, from, i, chunk[i - 1]!);
          from = i;
        }
        continue;
      }
      // A message starts at i.
      const type = chunk[i]!;
      const p = this.inFlight > 0 ? this.fifo[this.head]! : null;
      if ((type === Backend.ParseComplete || type === Backend.CloseComplete) && p !== null && p.strip > 0) {
        if (i > from) this.toClient(chunk.subarray(from, i));
        p.strip--;
        this.skip = 5;
        continue;
      }
      if (p !== null && (p.lead > 0 || p.extraReady > 0) && this.deferredBegin(p, type, chunk, i, n, from)) {
        from = i;
        continue;
      }
      if (p !== null && p.retry !== null && !p.swallow) {
        // The request's first reply: a stale cached statement means dropping its replies and sending it again.
        if (type === Backend.ErrorResponse && staleStatement(chunk, i, n)) {
          const retried = this.lastOf(p);
          p.client.statementStale?.(this, retried);
          if (retried) {
            if (i > from) this.toClient(chunk.subarray(from, i));
            from = i;
            p.swallow = true;
          } else {
            // A later request of the same client is in flight: the error goes to the client, and
            // the stale statement is dropped so that the next use parses it afresh.
            this.dropStatement(p.retry);
            p.retry = null;
          }
        } else p.retry = null;
      }
      this.curIsReady = type === Backend.ReadyForQuery;
      if (type === Backend.ErrorResponse && p !== null) p.failed = true;
      if (n - i >= 5) {
        const len = chunk.readInt32BE(i + 1);
        i += 5;
        this.startBody(len);
      } else {
        i += 1;
        this.lenNeed = 4;
        this.lenAcc = 0;
      }
    }
    if (from < n) this.toClient(from === 0 ? chunk : chunk.subarray(from, n));
  }

  private startBody(len: number): void {
    // The connection's own scanner has checked every length before the chunk got here.
    this.rem = Math.max(0, len - 4);
  }

  /**
   * The replies around a deferred BEGIN, at the start of a message of request `p`: true when the
   * message is dropped (the bytes before it have gone to the client and `skip` covers it).
   */
  private deferredBegin(p: Pending, type: number, chunk: Buffer, i: number, n: number, from: number): boolean {
    if (p.lead > 0) {
      if (type === Backend.BindComplete || type === Backend.CommandComplete) {
        if (i > from) this.toClient(chunk.subarray(from, i));
        p.lead--;
        this.skip = n - i >= 5 ? 1 + chunk.readInt32BE(i + 1) : type === Backend.BindComplete ? 5 : BEGIN_COMPLETE_BYTES;
        return true;
      }
      if (type === Backend.ErrorResponse) {
        // The BEGIN failed: the server skips the request up to the next Sync, whose
        // ReadyForQuery ends it. The client gets the error as its request's.
        p.lead = 0;
        p.extraReady = 0;
      }
      return false;
    }
    if (type === Backend.CopyInResponse || type === Backend.CopyBothResponse) {
      // The server ignores a Sync that comes during COPY FROM STDIN: pgrouter's is gone.
      if (p.extraReady === 1) p.extraReady = 0;
      return false;
    }
    if (type !== Backend.ReadyForQuery || p.extraReady !== 2) return false;
    // pgrouter's Sync's ReadyForQuery: dropped, and the request is done.
    if (i > from) this.toClient(chunk.subarray(from, i));
    this.skip = READY_BYTES;
    p.extraReady = 0;
    this.answered(this.status);
    return true;
  }

  /** A ReadyForQuery ended at `to`: the head request is answered. */
  private ready(chunk: Buffer, from: number, to: number, status: number): void {
    this.status = status;
    if (to > from) this.toClient(chunk.subarray(from, to));
    if (this.inFlight === 0) return; // one nobody asked for: already given to the holder
    const p = this.fifo[this.head]!;
    if (p.extraReady === 1) {
      // The client's own ReadyForQuery: it has its whole reply. pgrouter's Sync's is next.
      p.extraReady = 2;
      return;
    }
    this.answered(status);
  }

  /** The head request's last reply has come: it leaves the FIFO and its client is told. */
  private answered(status: number): void {
    const p = this.fifo[this.head]!;
    this.fifo[this.head++] = undefined as never;
    if (this.head > 64 && this.head * 2 > this.fifo.length) {
      this.fifo.splice(0, this.head);
      this.head = 0;
    }
    this.headSince = performance.now();
    if (p.failed && p.registered !== null) {
      const names: string[] = [];
      for (const k of p.registered) {
        const name = this.statements.get(k);
        if (name === undefined) continue;
        this.statements.delete(k);
        names.push(name);
      }
      if (names.length > 0) this.closeOnServer(names);
    }
    if (p.swallow) {
      // Close the stale statement, then send the request again as the client wrote it; the
      // client's count of requests in flight is unchanged (its one ReadyForQuery is still to come).
      // Nothing of it reached the client, not even its prefix (that waits for the reply's first
      // bytes): the server's own ParseComplete takes the prefix's place.
      this.dropStatement(p.retry!);
      this.push({ ...p, strip: 0, prefix: null, registered: null, failed: false, retry: null, swallow: false, lead: 0, extraReady: 0 });
      this.put(p.retry!.bytes);
    } else {
      this.conn.latency?.observe((this.headSince - p.sentAt) / 1000);
      p.client.requestDone(this, status, p.failed);
    }
    // Replies pgrouter makes itself, and prefixes, of the requests now at the head.
    while (this.inFlight > 0) {
      const q = this.fifo[this.head]!;
      if (q.prefix !== null && !q.replyFollows) {
        q.client.deliver(q.prefix);
        q.prefix = null;
      }
      if (q.local === null) break;
      this.fifo[this.head++] = undefined as never;
      q.client.deliver(q.local);
      q.client.requestDone(this, this.status, false);
    }
    if (this.inFlight === 0) {
      this.fifo.length = 0;
      this.head = 0;
      this.owner.laneIdle(this);
    }
  }

  /** Forgets a cached statement and closes it on the server. */
  private dropStatement(r: Retry): void {
    if (this.statements.get(r.key) === r.name) this.statements.delete(r.key);
    this.closeOnServer([r.name]);
  }

  /**
   * Closes server-side statements in a request of nobody's (its replies are dropped). A Close of a
   * name the server does not have is answered with CloseComplete as well.
   */
  private closeOnServer(names: readonly string[]): void {
    this.push({ client: NOBODY, strip: 0, prefix: null, replyFollows: false, local: null, registered: null, failed: false, sentAt: 0, retry: null, swallow: false, lead: 0, extraReady: 0 });
    this.put(Buffer.concat([...names.map(closeStatement), SYNC]));
  }

  /** True when no later request of `p`'s client is in flight here (sending `p` again keeps its order). */
  private lastOf(p: Pending): boolean {
    for (let k = this.head + 1; k < this.fifo.length; k++) if (this.fifo[k]!.client === p.client) return false;
    return true;
  }

  private toClient(bytes: Buffer): void {
    let c: LaneClient | null;
    if (this.inFlight > 0) {
      const p = this.fifo[this.head]!;
      if (p.swallow) return;
      c = p.client;
      if (p.prefix !== null) {
        bytes = Buffer.concat([p.prefix, bytes]);
        p.prefix = null;
      }
    } else c = this.holder;
    if (c === null) return; // a notice nobody waits for
    c.deliver(bytes);
    const q = c.queuedBytes;
    if (q === 0) return;
    this.heldChunk = true;
    if (q > CLIENT_HIGH_WATER && !this.pausedForClient) {
      this.pausedForClient = true;
      this.conn.socket.pause();
      c.onceDrained(() => {
        this.pausedForClient = false;
        if (!this.closed) this.conn.socket.resume();
      });
    }
  }

  onReady(): void {
    // Requests are answered as their ReadyForQuery passes through onReply.
  }

  onServerClose(_conn: ServerConnection, err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    const pending = this.fifo.slice(this.head);
    const holder = this.holder;
    this.fifo.length = 0;
    this.head = 0;
    this.owner.laneClosed(this, err);
    if (holder) holder.laneLost(this, err);
    for (const p of pending) if (p.client !== holder) p.client.requestLost(this, err);
  }

  /** True when the request at the head belongs to `client` (a cancel would hit it). */
  runningFor(client: LaneClient): boolean {
    return this.inFlight > 0 && this.fifo[this.head]!.client === client;
  }
}

/**
 * True for an ErrorResponse at `chunk[i]` (whole in the chunk) saying a prepared statement's
 * result type changed since it was parsed (SQLSTATE 0A000 from RevalidateCachedQuery).
 */
function staleStatement(chunk: Buffer, i: number, n: number): boolean {
  if (n - i < 5) return false;
  const end = i + 1 + chunk.readInt32BE(i + 1);
  if (end > n) return false;
  const f = decodeErrorFields(chunk, i, end);
  return f.code === '0A000' && (f.routine === 'RevalidateCachedQuery' || f.message === 'cached plan must not change result type');
}
