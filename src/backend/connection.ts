// One connection from pgrouter to a PostgreSQL backend: connect (TCP or Unix socket, TLS when
// configured), StartupMessage, answer whatever authentication the backend asks for, collect
// ParameterStatus/BackendKeyData, then relay replies to whichever session holds the lease.

import net from 'node:net';
import tls from 'node:tls';
import { AuthCode, Backend, TxStatus } from '../protocol/codes.ts';
import { Framer } from '../protocol/framer.ts';
import { ReplyScanner } from '../protocol/reply-scanner.ts';
import { ReplyLead } from '../protocol/reply-lead.ts';
import { DEFERRED_BEGIN, DEFERRED_BEGIN_REPLIES, deferredBeginOf } from '../protocol/deferred-begin.ts';
import { decodeErrorFields, type ErrorFields } from '../protocol/error-response.ts';
import { decodeParameterStatus } from '../protocol/read.ts';
import * as w from '../protocol/writer.ts';
import { md5PasswordHash, md5Response } from '../auth/md5.ts';
import { ScramClientSession, type ScramPassThrough } from '../auth/scram.ts';
import type { PoolSecret } from '../auth/pool-passwd.ts';
import { ProxyError } from '../errors/proxy-error.ts';
import { SqlState } from '../errors/sqlstate.ts';
import { describeNode, nodeAddress, type BackendNode } from './node.ts';
import { moveToUserBuffer, socketBytes } from '../util/user-buffer-socket.ts';
import type { BucketCounts } from '../util/bucket-counts.ts';

/** The authentication methods a backend may ask for, as pg_hba.conf names them. */
export type AuthMethod = 'trust' | 'password' | 'md5' | 'scram-sha-256';

/** What pgrouter knows of the user's secret when a backend asks it to authenticate. */
export interface BackendCredentials {
  /** The user's pool_passwd entry, if any. */
  readonly secret: PoolSecret | undefined;
  /** A cleartext password obtained from the client, when pool_passwd has none. */
  readonly askPassword?: (() => Promise<string>) | undefined;
  /** SCRAM pass-through keys recovered from the client's own SCRAM login (verifier entries). */
  readonly scramPassThrough?: ScramPassThrough | undefined;
}

export interface ConnectOptions {
  readonly node: BackendNode;
  readonly user: string;
  readonly database: string;
  /** StartupMessage parameters besides user and database (application_name, options...). */
  readonly params: ReadonlyMap<string, string>;
  readonly credentials: BackendCredentials;
  readonly connectTimeoutMs: number;
  /** Try TLS first (SSLRequest); go on in the clear if the server declines. */
  readonly ssl: boolean;
}

/** A backend refused the startup with an ErrorResponse; `raw` is that message, to relay byte for byte. */
export class BackendStartupError extends Error {
  constructor(
    readonly raw: Buffer,
    readonly fields: ErrorFields,
  ) {
    super(fields.message);
    this.name = 'BackendStartupError';
  }
}

const REPLY_INTEREST = new Uint8Array(256);
REPLY_INTEREST[Backend.ReadyForQuery] = 1;
REPLY_INTEREST[Backend.ParameterStatus] = 1;
REPLY_INTEREST[Backend.ErrorResponse] = 1;
// COPY FROM STDIN makes the server ignore a Sync: a deferred BEGIN's own Sync is then not answered.
REPLY_INTEREST[Backend.CopyInResponse] = 1;
REPLY_INTEREST[Backend.CopyBothResponse] = 1;

let nextId = 1;

const SYNC = w.sync();

/** Connection life: the pool moves a connection between these; `closed` is final. */
export type ServerState = 'connecting' | 'idle' | 'leased' | 'resetting' | 'closed';

/** Receives a leased connection's reply stream. */
export interface ReplySink {
  /** Raw reply bytes, to forward unchanged. */
  onReply(conn: ServerConnection, chunk: Buffer): void;
  /** After a chunk that completed one or more ReadyForQuery. */
  onReady(conn: ServerConnection): void;
  /** The backend went away or broke the protocol while leased. */
  onServerClose(conn: ServerConnection, err: Error | undefined): void;
  /** True while the last reply chunk handed to onReply is still referenced (its write is pending). */
  holdsReplyChunk?(): boolean;
}

/**
 * A backend connection. While leased, every reply chunk is scanned (for ReadyForQuery,
 * ParameterStatus and ErrorResponse) and handed to the sink unchanged.
 */
export class ServerConnection {
  readonly id = nextId++;
  readonly node: BackendNode;
  readonly user: string;
  readonly database: string;
  /** The startup parameters this connection was opened with (its RESET values). */
  readonly startupParams: ReadonlyMap<string, string>;
  /** Current ParameterStatus values reported by the server. */
  readonly params = new Map<string, string>();
  /** Counts the changes to `params` (a login reply built from them can be kept until it moves). */
  paramsVersion = 0;
  pid = 0;
  secret = 0;
  authMethod: AuthMethod = 'trust';
  /** Last ReadyForQuery status byte. */
  txStatus: number = TxStatus.Idle;
  /** ReadyForQuery messages still owed for requests sent (Query, Sync, FunctionCall). */
  owed = 0;
  /**
   * For each owed ReadyForQuery of a session's requests, in order: true if its replies go to the
   * client, false if pgrouter swallows them (a SET or BEGIN copied to a second node, a re-Parse).
   */
  private readonly expect: boolean[] = [];
  /** How many entries of `expect` are false. */
  private swallowing = 0;
  /** Whether replies that arrive with no owed ReadyForQuery (after a Flush) go to the client. */
  private openForward = true;
  /** Owed ReadyForQuery messages whose replies go to the client. */
  forwardOwed = 0;
  state: ServerState = 'connecting';
  /** Set when the connection must never be reused (protocol error, unexpected close...). */
  broken = false;
  /** Set when the last message seen was an ErrorResponse of severity FATAL or PANIC. */
  sawFatal = false;
  /**
   * Whether a FATAL (or PANIC) from the server reaches the client. A session's replica
   * connection sets false: the replica going away (a fast shutdown, pg_terminate_backend,
   * idle_session_timeout) must not end the client's session, which then answers any request
   * still owed there itself (see Dispatcher.replicaLost).
   */
  forwardsFatal = true;
  /** Where in the chunk being scanned a FATAL that stays here begins (-1: none). */
  private fatalCut = -1;
  /** The last FATAL (or PANIC) the server sent, whether or not it reached the client. */
  lastFatal: ErrorFields | null = null;
  /** ErrorResponses seen since the connection opened. */
  errors = 0;
  readonly createdAt = Date.now();
  lastUsedAt = Date.now();
  /** Times this connection has been handed to a session. */
  leases = 0;
  sink: ReplySink | null = null;
  socket!: net.Socket;
  private readonly scanner = new ReplyScanner(REPLY_INTEREST);
  private readyCount = 0;
  /**
   * The server is waiting for the client's COPY data: from a CopyInResponse (or CopyBoth) until
   * the client's CopyDone or CopyFail is sent here (the dispatchers clear it) or a ReadyForQuery.
   * Only the client can end that wait.
   */
  awaitingCopyData = false;
  /** Told the severity of each ErrorResponse the backend sends. */
  onError: ((severity: string) => void) | null = null;
  /** Called when an idle (pooled) connection closes, so the pool can forget it. */
  onIdleClose: ((c: ServerConnection) => void) | null = null;
  /** Where the time from sending a client's request to its ReadyForQuery is counted (seconds). */
  latency: BucketCounts | null = null;
  /** Drops a deferred BEGIN's replies (and those of the Parses sent with it) from the head of the stream; see beginDeferred. */
  private readonly lead = new ReplyLead(() => this.dropBeginSync());
  /** pgrouter's Sync follows the request a deferred BEGIN went out with; the client's ReadyForQuery has not come yet. */
  private beginSync = false;
  /** performance.now() at the send of each owed client-bound request, oldest first (only with `latency`). */
  private readonly sentAt: number[] = [];

  private constructor(o: ConnectOptions) {
    this.node = o.node;
    this.user = o.user;
    this.database = o.database;
    this.startupParams = new Map(o.params);
  }

  /** `S-7 node1` log prefix. */
  get tag(): string {
    return `S-${this.id} node${this.node.id}`;
  }

  /** Opens and authenticates a new connection; resolves at its first ReadyForQuery. */
  static async open(o: ConnectOptions): Promise<ServerConnection> {
    const c = new ServerConnection(o);
    await c.start(o);
    return c;
  }

  private async start(o: ConnectOptions): Promise<void> {
    let sock = await connectSocket(o.node, o.connectTimeoutMs);
    try {
      if (o.ssl && !o.node.unix) sock = await negotiateTls(sock, o.node, o.connectTimeoutMs);
      this.socket = sock;
      const startup: Record<string, string> = { user: o.user, database: o.database };
      for (const [k, v] of o.params) startup[k] = v;
      sock.write(w.startupMessage(startup));
      await this.authenticate(o);
    } catch (e) {
      sock.destroy();
      throw e;
    }
  }

  /** Runs the startup exchange up to the first ReadyForQuery. */
  private authenticate(o: ConnectOptions): Promise<void> {
    const sock = this.socket;
    return new Promise<void>((resolve, reject) => {
      const framer = new Framer(() => 0x3fffffff);
      let scram: ScramClientSession | null = null;
      let done = false;
      const timer = setTimeout(() => fail(connError(o.node, 'timeout expired during authentication')), o.connectTimeoutMs);
      const fail = (e: Error): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.off('data', onData);
        reject(e);
      };
      const secretFor = async (): Promise<string> => {
        const s = o.credentials.secret;
        if (s?.kind === 'plain') return s.password;
        if (o.credentials.askPassword) return o.credentials.askPassword();
        throw new ProxyError(
          SqlState.INVALID_PASSWORD,
          `password authentication failed for user "${o.user}"`,
          'FATAL',
          undefined,
          undefined,
          s?.kind === 'unusable'
            ? s.reason
            : `${describeNode(o.node)} asked for a password and pool_passwd has no plain-text or AES entry for this user`,
        );
      };
      const onMessage = async (type: number, buf: Buffer, start: number, end: number): Promise<void> => {
        switch (type) {
          case Backend.Authentication: {
            const code = buf.readInt32BE(start + 5);
            if (code === AuthCode.Ok) return;
            if (code === AuthCode.CleartextPassword) {
              this.authMethod = 'password';
              sock.write(w.passwordMessage(await secretFor()));
            } else if (code === AuthCode.MD5Password) {
              this.authMethod = 'md5';
              const salt = Buffer.from(buf.subarray(start + 9, start + 13));
              const s = o.credentials.secret;
              const hash = s?.kind === 'md5' ? s.hash : md5PasswordHash(await secretFor(), o.user);
              sock.write(w.passwordMessage(md5Response(hash, salt)));
            } else if (code === AuthCode.SASL) {
              this.authMethod = 'scram-sha-256';
              const mechs = buf.toString('utf8', start + 9, end).split('\0');
              if (!mechs.includes('SCRAM-SHA-256'))
                throw connError(o.node, `server offered no supported SASL mechanism (${mechs.filter(Boolean).join(', ')})`);
              const pt = o.credentials.scramPassThrough;
              scram = new ScramClientSession(o.credentials.secret?.kind !== 'plain' && pt ? pt : await secretFor());
              sock.write(w.saslInitialResponse('SCRAM-SHA-256', scram.clientFirst()));
            } else if (code === AuthCode.SASLContinue && scram) {
              sock.write(w.saslResponse(scram.handleServerFirst(buf.toString('utf8', start + 9, end))));
            } else if (code === AuthCode.SASLFinal && scram) {
              scram.handleServerFinal(buf.toString('utf8', start + 9, end));
            } else {
              throw connError(o.node, `unsupported authentication request ${code} from server`);
            }
            return;
          }
          case Backend.ParameterStatus: {
            const kv = decodeParameterStatus(buf, start, end);
            if (kv) this.setParam(kv[0], kv[1]);
            return;
          }
          case Backend.BackendKeyData:
            this.pid = buf.readInt32BE(start + 5);
            this.secret = buf.readInt32BE(start + 9);
            return;
          case Backend.ReadyForQuery:
            this.txStatus = buf[start + 5]!;
            done = true;
            clearTimeout(timer);
            sock.off('data', onData);
            this.attach();
            resolve();
            return;
          case Backend.ErrorResponse: {
            const raw = Buffer.from(buf.subarray(start, end));
            fail(new BackendStartupError(raw, decodeErrorFields(raw, 0, raw.length)));
            return;
          }
          default:
            return; // NoticeResponse, NegotiateProtocolVersion: nothing to do
        }
      };
      // Messages are handled strictly in order, even though answering one may need an await.
      let chain = Promise.resolve();
      const onData = (chunk: Buffer): void => {
        try {
          framer.feed(chunk, (t, b, s, e) => {
            const copy = Buffer.from(b.subarray(s, e));
            chain = chain.then(() => (done ? undefined : onMessage(t, copy, 0, copy.length))).catch(fail);
          });
        } catch (e) {
          fail(e as Error);
        }
      };
      sock.on('data', onData);
      sock.once('close', () => fail(connError(o.node, 'server closed the connection during startup')));
      sock.once('error', (e) => fail(connError(o.node, e.message)));
    });
  }

  /** Switches the socket to the streaming reply path. */
  private attach(): void {
    let sock = this.socket;
    sock.removeAllListeners('close');
    sock.removeAllListeners('error');
    // Replies are read into a reused buffer (no stream machinery) unless the socket is TLS.
    const moved = moveToUserBuffer(sock, (chunk) => this.onData(chunk), () => this.sink?.holdsReplyChunk?.() ?? false);
    if (moved) this.socket = sock = moved;
    else sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', () => {
      this.broken = true;
    });
    sock.on('close', () => this.onClose());
  }

  /**
   * Sends a request of `units` owed ReadyForQuery messages (Query/Sync/FunctionCall count one each;
   * a Flush-ended batch counts none). `forward` says whether its replies go to the client.
   */
  request(buf: Buffer, units: number, forward: boolean): boolean {
    this.owed += units;
    for (let i = 0; i < units; i++) this.expect.push(forward);
    if (forward) {
      this.forwardOwed += units;
      if (this.latency !== null && units > 0) {
        const now = performance.now();
        for (let i = 0; i < units; i++) this.sentAt.push(now);
      }
    } else this.swallowing += units;
    if (units === 0) this.openForward = forward;
    return this.socket.write(buf);
  }

  /**
   * Starts a request that opens a transaction the client began earlier (transaction_defer_begin
   * in session pooling): writes the deferred BEGIN, then `parses` (Parse messages without a Sync,
   * for statements the request uses but this server has not seen), and corks the socket so that
   * the request the caller writes next goes out in the same write. Nothing may be owed. The
   * replies to all of these are dropped; if the BEGIN fails, the client gets its error instead of
   * the request's replies (the server skips the request up to the next Sync). endDeferred
   * uncorks. `text`: the client's BEGIN when it had options (a plain BEGIN otherwise).
   */
  beginDeferred(parses: readonly Buffer[], text: string | null = null): void {
    this.lead.expect(DEFERRED_BEGIN_REPLIES + parses.length);
    this.socket.cork();
    this.socket.write(text === null ? DEFERRED_BEGIN : deferredBeginOf(text));
    for (const p of parses) this.socket.write(p);
  }

  /**
   * Ends what beginDeferred started. `sync` for a Query or FunctionCall: pgrouter's Sync follows
   * it, so that a failed BEGIN's skip stops there, and its ReadyForQuery is dropped (a request
   * ending in the client's own Sync needs none).
   */
  endDeferred(sync: boolean): void {
    if (sync) {
      this.request(SYNC, 1, false);
      this.beginSync = true;
    }
    this.socket.uncork();
  }

  private setParam(name: string, value: string): void {
    this.params.set(name, value);
    this.paramsVersion++;
  }

  /** pgrouter's Sync behind a deferred BEGIN will not be answered (the BEGIN failed, or the request is a COPY FROM STDIN). */
  private dropBeginSync(): void {
    if (!this.beginSync) return;
    this.beginSync = false;
    // The client's request is at the head of `expect`; pgrouter's Sync is right behind it.
    if (this.expect.length > 1 && this.expect[1] === false) {
      this.expect.splice(1, 1);
      this.swallowing--;
      this.owed--;
    }
  }

  /** True when replies of a client-bound request are still to come (owed, or a Flush-ended batch). */
  get busyForClient(): boolean {
    return this.forwardOwed > 0;
  }

  /** Where the replies now arriving go: the oldest owed request's, or the open (Flush-ended) one's. */
  private get forwarding(): boolean {
    return this.expect.length > 0 ? this.expect[0]! : this.openForward;
  }

  private onData(chunk: Buffer): void {
    this.readyCount = 0;
    if (this.lead.active) {
      try {
        chunk = this.lead.take(chunk);
      } catch (e) {
        this.broken = true;
        this.socket.destroy();
        this.sink?.onServerClose(this, e as Error);
        return;
      }
      if (chunk.length === 0) return;
    }
    if (this.swallowing > 0) {
      this.onMixedData(chunk);
      return;
    }
    try {
      this.scanner.scan(chunk, this.onMessage);
    } catch (e) {
      this.broken = true;
      this.socket.destroy();
      this.sink?.onServerClose(this, e as Error);
      return;
    }
    const cut = this.fatalCut;
    this.fatalCut = -1;
    const sink = this.sink;
    if (sink === null) {
      // Bytes from an idle backend (a FATAL before shutdown, say): it cannot be reused.
      if (this.state === 'idle') {
        this.broken = true;
        this.socket.destroy();
      }
      return;
    }
    if (cut < 0) sink.onReply(this, chunk);
    else if (cut > 0) sink.onReply(this, chunk.subarray(0, cut));
    if (this.readyCount > 0) sink.onReady(this);
  }

  /** A chunk whose replies belong partly to swallowed requests: forward only the client's parts. */
  private onMixedData(chunk: Buffer): void {
    const cuts: number[] = [];
    const modes: boolean[] = [];
    let mode = this.forwarding;
    try {
      this.scanner.scan(chunk, (type, buf, start, end, chunkEnd) => {
        if (type === Backend.ReadyForQuery) {
          cuts.push(chunkEnd);
          modes.push(mode);
          this.onMessage(type, buf, start, end, chunkEnd);
          mode = this.forwarding;
        } else this.onMessage(type, buf, start, end, chunkEnd);
      });
    } catch (e) {
      this.broken = true;
      this.socket.destroy();
      this.sink?.onServerClose(this, e as Error);
      return;
    }
    cuts.push(chunk.length);
    modes.push(mode);
    const sink = this.sink;
    const limit = this.fatalCut < 0 ? chunk.length : this.fatalCut;
    this.fatalCut = -1;
    if (sink === null) return;
    let from = 0;
    for (let i = 0; i < cuts.length; i++) {
      const to = Math.min(cuts[i]!, limit);
      if (to > from && modes[i]) sink.onReply(this, from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to));
      from = to;
    }
    if (this.readyCount > 0) sink.onReady(this);
  }

  private readonly onMessage = (type: number, buf: Buffer, start: number, end: number, chunkEnd: number): void => {
    if (type === Backend.ReadyForQuery) {
      this.txStatus = buf[start + 5]!;
      if (this.owed > 0) this.owed--;
      if (this.expect.length > 0) {
        if (this.expect.shift()!) {
          // The client's ReadyForQuery: pgrouter's Sync behind a deferred BEGIN comes next.
          this.beginSync = false;
          this.forwardOwed--;
          const sent = this.sentAt.shift();
          if (sent !== undefined) this.latency?.observe((performance.now() - sent) / 1000);
        } else this.swallowing--;
      }
      this.readyCount++;
      this.sawFatal = false;
      this.awaitingCopyData = false;
    } else if (type === Backend.CopyInResponse || type === Backend.CopyBothResponse) {
      this.awaitingCopyData = true;
      this.dropBeginSync();
    } else if (type === Backend.ParameterStatus) {
      const kv = decodeParameterStatus(buf, start, end);
      if (kv) this.setParam(kv[0], kv[1]);
    } else if (type === Backend.ErrorResponse) {
      this.errors++;
      const f = decodeErrorFields(buf, start, end);
      this.onError?.(f.severity);
      this.sawFatal = f.severity === 'FATAL' || f.severity === 'PANIC';
      if (this.sawFatal) {
        this.broken = true;
        this.lastFatal = f;
        // Held back only when the whole message is in this chunk (`at` is negative for one begun
        // in an earlier chunk: forwarded in part, so the client must get the rest of it).
        const at = chunkEnd - (end - start);
        if (!this.forwardsFatal && at >= 0 && this.fatalCut < 0) this.fatalCut = at;
      }
    }
  };

  private onClose(): void {
    const wasIdle = this.state === 'idle';
    this.state = 'closed';
    this.broken = true;
    if (wasIdle) this.onIdleClose?.(this);
    else this.sink?.onServerClose(this, undefined);
  }

  /** Bytes read from and written to the backend over this connection's life, startup included. */
  bytes(): { received: number; sent: number } {
    return socketBytes(this.socket);
  }

  /** Sends bytes towards the backend. Returns false when the socket's buffer is full. */
  write(buf: Buffer): boolean {
    return this.socket.write(buf);
  }

  /** Closes the connection politely (Terminate) or at once. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.broken = true;
    this.sink = null;
    if (!this.socket.destroyed) {
      this.socket.end(w.terminate());
      this.socket.destroySoon?.();
      setTimeout(() => this.socket.destroy(), 1000).unref();
    }
  }
}

function connError(node: BackendNode, why: string): ProxyError {
  return new ProxyError(
    SqlState.CONNECTION_FAILURE,
    `could not connect to backend ${describeNode(node)}: ${why}`,
    'FATAL',
  );
}

/** Opens the TCP or Unix socket, with TCP_NODELAY, within the timeout. */
function connectSocket(node: BackendNode, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ ...nodeAddress(node), noDelay: true } as net.NetConnectOpts);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(connError(node, `timeout expired after ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeAllListeners('error');
      sock.setNoDelay(true);
      sock.setKeepAlive(true, 30_000);
      resolve(sock);
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(connError(node, e.code === 'ECONNREFUSED' ? 'connection refused' : e.code === 'ENOTFOUND' ? `could not translate host name "${node.host}" to address` : e.message));
    });
  });
}

/** Sends SSLRequest; upgrades to TLS on 'S', stays in the clear on 'N'. */
function negotiateTls(sock: net.Socket, node: BackendNode, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(connError(node, 'timeout during SSL negotiation')), timeoutMs);
    sock.once('data', (b: Buffer) => {
      clearTimeout(timer);
      if (b[0] === 0x4e) return resolve(sock); // 'N'
      if (b[0] !== 0x53) return reject(connError(node, 'invalid response to SSL negotiation'));
      // Like libpq's sslmode=require: encrypt, do not verify the certificate.
      const t = tls.connect({ socket: sock, rejectUnauthorized: false, servername: net.isIP(node.host) ? undefined as unknown as string : node.host });
      t.once('secureConnect', () => {
        t.setNoDelay(true);
        resolve(t);
      });
      t.once('error', (e) => reject(connError(node, `SSL error: ${e.message}`)));
    });
    sock.write(w.sslRequest());
  });
}

/** What a client is told the server said when it ended `conn` (undefined when it said nothing). */
export function endedBecause(conn: ServerConnection): string | undefined {
  const f = conn.lastFatal;
  return f === null ? undefined : `The server ended the connection: ${f.message} (SQLSTATE ${f.code}).`;
}

/**
 * Sends a CancelRequest for this backend's BackendKeyData over a new connection. Settles when
 * the server has closed that connection (or it failed, or `timeoutMs` passed): only then has
 * the server signalled the backend. PostgreSQL signals it twice (its pid and its process
 * group), and a signal still to come cancels whatever the backend runs next.
 */
export function sendCancel(conn: ServerConnection, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const sock = net.connect({ ...nodeAddress(conn.node) } as net.NetConnectOpts);
    const t = setTimeout(() => sock.destroy(), timeoutMs);
    t.unref();
    sock.once('connect', () => sock.end(w.cancelRequest(conn.pid, conn.secret)));
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}
