// One client session: the startup packet (SSL, cancel, protocol version), admission,
// authentication, then the data path — client frames to the leased backend connection,
// replies streamed back unchanged — and a clean release of the lease when the client leaves.

import net from 'node:net';
import tls from 'node:tls';
import { LARGE_FRONTEND_TYPES, MessageLimit, RequestCode, TxStatus } from '../protocol/codes.ts';
import { Framer, FrameError } from '../protocol/framer.ts';
import { decodeStartupPacket } from '../protocol/startup.ts';
import * as w from '../protocol/writer.ts';
import { BackendStartupError, sendCancel, type BackendCredentials, type ReplySink, type ServerConnection } from '../backend/connection.ts';
import { describeNode } from '../backend/node.ts';
import { ProxyError } from '../errors/proxy-error.ts';
import { SqlState } from '../errors/sqlstate.ts';
import type { Release } from './admission.ts';
import { authenticateClient, type ClientAuthMethod, type ClientChannel } from './authenticate.ts';
import type { ScramPassThrough } from '../auth/scram.ts';
import type { PoolSecret } from '../auth/pool-passwd.ts';
import type { AdminSessionInfo, ProxyContext } from './context.ts';
import { Dispatcher, type DispatchHost } from './dispatch.ts';
import { TransactionDispatcher, type TransactionHost } from './transaction-dispatch.ts';
import { moveToUserBuffer, readTargetOf, socketBytes } from '../util/user-buffer-socket.ts';
import { CLIENT_READ_BUFFER } from './listener.ts';
import { clientRead } from '../util/busy-poll.ts';
import type { Logger } from 'pino';
import { isUsable, type ClusterNode, type ClusterView } from '../pool/cluster.ts';
import { weightedChoice, type RouteSettings } from '../router/route.ts';
import { SessionOverrides } from '../config/session-overrides.ts';

let nextSessionId = 1;

/** Session-settable parameters that routing reads, and their RouteSettings field. */
const ROUTE_FIELDS = [
  ['allow_sql_comments', 'allowSqlComments'],
  ['notice_per_node_statement', 'traceAll'],
  ['check_unlogged_table', 'checkUnloggedTable'],
] as const;

const frontendLimit = (type: number): number => (LARGE_FRONTEND_TYPES.has(type) ? MessageLimit.large : MessageLimit.small);

/** `cancel`: a CancelRequest is being passed on; the client's bytes are ignored until it closes. */
type Phase = 'startup' | 'auth' | 'ready' | 'cancel' | 'closed';

const AUTHENTICATION_OK = w.authenticationOk();

/** The last ParameterStatus block built from each parameter set (see parameterStatusBlock). */
const statusBlocks = new WeakMap<object, { version: number; applicationName: string | undefined; bytes: Buffer }>();

/**
 * The ParameterStatus messages of a login reply: `params` (the version of which `owner` is at),
 * with `applicationName` in place of the server's application_name when given (a shared
 * connection's sessions each have their own). In transaction pooling every login of a group is
 * answered from the same lane, so the block is built again only when its parameters change or the
 * name differs.
 */
function parameterStatusBlock(owner: object, params: ReadonlyMap<string, string>, version: number, applicationName: string | undefined): Buffer {
  const last = statusBlocks.get(owner);
  if (last !== undefined && last.version === version && last.applicationName === applicationName) return last.bytes;
  const parts: Buffer[] = [];
  for (const [k, v] of params) parts.push(w.parameterStatus(k, applicationName !== undefined && k === 'application_name' ? applicationName : v));
  const bytes = Buffer.concat(parts);
  statusBlocks.set(owner, { version, applicationName, bytes });
  return bytes;
}

/** PostgreSQL's answer to a startup packet whose code it does not take (here: 3.0 only). */
function unsupportedProtocol(code: number): ProxyError {
  return new ProxyError(
    SqlState.FEATURE_NOT_SUPPORTED,
    `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: server supports 3.0 to 3.0`,
    'FATAL',
  );
}

export class Session implements ReplySink, ClientChannel {
  readonly id = nextSessionId++;
  private sock: net.Socket;
  private phase: Phase = 'startup';
  /** The session's child logger, made on first use (see the constructor). */
  private logger: Logger | null = null;
  private ssl = false;
  /** An SSLRequest, or a GSSENCRequest, was answered already (each kind is answered once). */
  private sslAnswered = false;
  private gssAnswered = false;
  user = '';
  database = '';
  pid = 0;
  secret = 0;
  private startupBytes: Buffer = Buffer.alloc(0);
  private readonly framer = new Framer(frontendLimit);
  private inbox: Buffer[] = [];
  private waiter: { resolve: (m: Buffer) => void; reject: (e: Error) => void } | null = null;
  /** Routes the client's requests over the session's backend connections once it is ready. */
  private dispatcher: Dispatcher | null = null;
  /** pool_mode = transaction: routes the client's requests over shared connections instead. */
  private txd: TransactionDispatcher | null = null;
  /** Set at authentication when the session runs in transaction pooling. */
  private transactionMode = false;
  private params = new Map<string, string>();
  private credentials: BackendCredentials = { secret: undefined };
  private releaseSlot: Release | null = null;
  /** Aborts a wait for an admission slot; made only when the session has to wait (its abort() builds a DOMException). */
  private abort: AbortController | null = null;
  private authTimer: NodeJS.Timeout | null = null;
  /** This session's PGPOOL SET values. */
  readonly overrides = new SessionOverrides();
  /**
   * Set when the session started while no primary was usable: it runs on another node (with
   * default_transaction_read_only on) and statements only a primary may run are refused.
   */
  private withoutPrimary = false;
  /** When the session last finished a request or received bytes (client_idle_limit). */
  lastActivity = Date.now();
  /** Busy polling's count of active clients (see util/busy-poll.ts). */
  pollPeriod = -1;
  readonly startedAt = Date.now();

  /** AdminSession: BEGIN was answered here and the transaction's first statement has not come yet. */
  get deferredTransaction(): boolean {
    return this.dispatcher?.deferredBegin === true || this.txd?.beginDeferred === true;
  }

  constructor(
    sock: net.Socket,
    private readonly ctx: ProxyContext,
    private readonly local: boolean,
  ) {
    this.sock = sock;
    // TCP_NODELAY is already set on the accepted socket (the listener's noDelay option).
    // The child logger names the client's address, one getpeername(2) and a pino child per
    // login: made now only when info lines (a refused login, say) are logged, else on first use.
    if (ctx.log.isLevelEnabled('info')) this.logger = this.newLogger();
    this.listen(sock);
    const t = ctx.settings().authenticationTimeout;
    if (t > 0)
      this.authTimer = setTimeout(() => {
        this.fail(new ProxyError(SqlState.QUERY_CANCELED, 'canceling authentication due to timeout', 'FATAL'));
      }, t * 1000);
  }

  private isClosed(): boolean {
    return this.phase === 'closed';
  }

  private get log(): Logger {
    return (this.logger ??= this.newLogger());
  }

  private newLogger(): Logger {
    return this.ctx.log.child({ conn: `C-${this.id}`, client: this.peer() });
  }

  private peer(): string {
    if (this.local) return '[local]';
    const address = this.sock.remoteAddress;
    // A socket already closed, whose address was never asked for, no longer knows it.
    return address === undefined ? '[closed]' : `${address}:${this.sock.remotePort}`;
  }

  private listen(sock: net.Socket): void {
    const target = readTargetOf(sock);
    if (target) {
      target.onChunk = this.onData;
      target.chunkStillInUse = this.holdsClientChunk;
    } else sock.on('data', this.onData);
    sock.on('error', (e) => {
      this.log.debug({ err: e.message }, 'client socket error');
      this.close();
    });
    sock.on('close', () => this.close());
  }

  /**
   * Whether the client chunk just read is still referenced (then the next read must not reuse its
   * buffer). Before the session is ready nothing keeps one: the startup packet, authentication
   * messages and the framer's partial tails are all copies.
   */
  private readonly holdsClientChunk = (): boolean =>
    this.phase === 'ready'
      ? (this.txd?.holdsClientChunk() ?? this.dispatcher?.holdsClientChunk() ?? false)
      : this.chunkHeldAtClose;

  /**
   * Whether the last client chunk was still referenced when the session closed (a backend write
   * not yet done). The read buffer is asked once more after a read whose callback closed the
   * session, and a closed socket's buffer goes to the next client: it must not while held.
   */
  private chunkHeldAtClose = false;

  private readonly onData = (chunk: Buffer): void => {
    try {
      if (this.phase === 'ready') {
        this.lastActivity = Date.now();
        clientRead(this);
        const t = this.txd;
        if (t !== null) {
          this.framer.feed(chunk, t.onFrame);
          t.endOfChunk();
          return;
        }
        const d = this.dispatcher!;
        this.framer.feed(chunk, d.onFrame);
        d.endOfChunk();
      } else if (this.phase === 'startup') this.onStartupBytes(chunk);
      else if (this.phase === 'auth') this.framer.feed(chunk, this.onAuthFrame);
    } catch (e) {
      if (e instanceof FrameError) this.fail(new ProxyError(SqlState.PROTOCOL_VIOLATION, e.message, 'FATAL'));
      else this.fail(e as Error);
    }
  };

  // ---- startup phase ----

  private onStartupBytes(chunk: Buffer): void {
    // Always a copy: `chunk` may be a view of a read buffer that the next read overwrites.
    this.startupBytes = this.startupBytes.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.startupBytes, chunk]);
    const b = this.startupBytes;
    if (b.length < 4) return;
    const len = b.readInt32BE(0);
    if (len < 8 || len > MessageLimit.startup) {
      this.fail(new ProxyError(SqlState.PROTOCOL_VIOLATION, 'invalid length of startup packet', 'FATAL'));
      return;
    }
    if (b.length < len) return;
    const pkt = b.subarray(0, len);
    const rest = b.subarray(len);
    this.startupBytes = Buffer.alloc(0);
    // No pause while the packet is handled: everything up to the change of phase (to 'auth', or
    // back to 'startup' after an SSL or GSS answer, or to TLS) runs before this read's callback
    // returns, so the next read already finds the new phase. A pause and resume in one turn
    // would cost two epoll_ctl calls per packet.
    this.onStartupPacket(pkt, rest).catch((e) =>
      this.fail(e instanceof FrameError ? new ProxyError(SqlState.PROTOCOL_VIOLATION, e.message, 'FATAL') : (e as Error)),
    );
  }

  private async onStartupPacket(pkt: Buffer, rest: Buffer): Promise<void> {
    const p = decodeStartupPacket(pkt);
    switch (p.kind) {
      case 'invalid':
        throw new ProxyError(SqlState.PROTOCOL_VIOLATION, p.reason, 'FATAL');
      case 'cancel':
        // As PostgreSQL: the connection closes once the cancel is done. libpq's PQcancel waits
        // for that close, so a client's next statement can no longer meet the cancel's
        // second signal.
        this.phase = 'cancel';
        if (this.authTimer) clearTimeout(this.authTimer);
        this.authTimer = null;
        await this.ctx.cancels.cancel(p.pid, p.secret);
        this.close();
        return;
      case 'gssenc':
        // As PostgreSQL: one answer to each kind of request; a second is an unknown protocol.
        if (this.gssAnswered) throw unsupportedProtocol(RequestCode.GSSENCRequest);
        this.gssAnswered = true;
        this.sock.write(Buffer.from('N'));
        if (rest.length > 0) this.onStartupBytes(rest);
        return;
      case 'ssl': {
        if (this.sslAnswered) throw unsupportedProtocol(RequestCode.SSLRequest);
        this.sslAnswered = true;
        const context = this.ctx.tls();
        if (!context || this.local) {
          // Refused: the session goes on in the clear, so bytes the client sent without waiting
          // for the answer are its next startup packet, as PostgreSQL reads them.
          this.sock.write(Buffer.from('N'));
          if (rest.length > 0) this.onStartupBytes(rest);
          return;
        }
        if (rest.length > 0)
          throw new ProxyError(SqlState.PROTOCOL_VIOLATION, 'received unencrypted data after SSL request', 'FATAL');
        this.sock.write(Buffer.from('S'));
        this.gssAnswered = true; // nothing to negotiate inside TLS
        this.upgradeTls(context);
        return;
      }
      case 'startup':
        await this.onStartup(p.major, p.minor, p.params, rest);
        return;
    }
  }

  private upgradeTls(context: tls.SecureContext): void {
    const raw = this.sock;
    // TLS reads the raw socket itself from here on; the raw socket's own reads, if it had any
    // of its own, would be ciphertext.
    const target = readTargetOf(raw);
    if (target) target.onChunk = () => undefined;
    raw.removeAllListeners('data');
    raw.removeAllListeners('error');
    raw.removeAllListeners('close');
    const t = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
    this.sock = t;
    this.ssl = true;
    this.listen(t);
    raw.on('error', () => this.close());
    raw.resume();
  }

  private async onStartup(major: number, minor: number, params: Map<string, string>, rest: Buffer): Promise<void> {
    if (major !== 3) throw unsupportedProtocol((major << 16) | minor);
    const unrecognized = [...params.keys()].filter((k) => k.startsWith('_pq_.'));
    for (const k of unrecognized) params.delete(k);
    if (minor > 0 || unrecognized.length > 0) this.sock.write(w.negotiateProtocolVersion(0, unrecognized));
    const user = params.get('user');
    if (!user)
      throw new ProxyError(SqlState.INVALID_AUTHORIZATION_SPECIFICATION, 'no PostgreSQL user name specified in startup packet', 'FATAL');
    if (params.has('replication'))
      throw new ProxyError(SqlState.FEATURE_NOT_SUPPORTED, 'replication connections are not supported through pgrouter', 'FATAL');
    this.user = user;
    this.database = params.get('database') || user;
    params.delete('user');
    params.delete('database');
    if (this.ctx.draining())
      throw new ProxyError(SqlState.CANNOT_CONNECT_NOW, 'pgrouter is shutting down', 'FATAL');

    this.phase = 'auth';
    if (rest.length > 0) this.framer.feed(rest, this.onAuthFrame);
    const slot = this.ctx.admission.tryAcquire();
    if (slot !== null) this.releaseSlot = slot;
    else {
      this.abort = new AbortController();
      this.releaseSlot = await this.ctx.admission.acquire(this.abort.signal);
    }
    if (this.isClosed()) return this.releaseSlot();
    await this.authenticateAndLease(params);
  }

  // ---- authentication phase ----

  private readonly onAuthFrame = (_type: number, buf: Buffer, start: number, end: number): void => {
    const m = Buffer.from(buf.subarray(start, end));
    if (this.waiter) {
      const wt = this.waiter;
      this.waiter = null;
      wt.resolve(m);
    } else this.inbox.push(m);
  };

  /** ClientChannel: the next message during authentication. */
  next(): Promise<Buffer> {
    const m = this.inbox.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  send(buf: Buffer): void {
    if (!this.sock.destroyed) this.sock.write(buf);
  }

  /**
   * The node a session starts on when no primary is usable (none known, two claim it, or it is
   * down or detached): an up node chosen by weight, so SHOW, PGPOOL commands and reads still work.
   */
  private nodeWithoutPrimary(view: ClusterView): ClusterNode | undefined {
    const up = view.nodes.filter((n) => isUsable(n));
    return weightedChoice(up) ?? up[0];
  }

  private async authenticateAndLease(params: Map<string, string>): Promise<void> {
    const ctx = this.ctx;
    const settings = ctx.settings();
    const view = ctx.cluster();
    const known = view.primary;
    let primary = known && isUsable(known) ? known : undefined;
    if (!primary) {
      primary = this.nodeWithoutPrimary(view);
      const why = known ? `the primary, ${describeNode(known)}, is down` : 'no primary node is known';
      if (!primary) throw new ProxyError(SqlState.CONNECTION_FAILURE, `${why} and no other node is up`, 'FATAL');
      // Defence in depth: even a write pgrouter failed to spot cannot run on that node.
      params = new Map(params).set('default_transaction_read_only', 'on');
      this.withoutPrimary = true;
      this.log.info({ node: primary.id, reason: why }, `${why}: session runs read-only on node ${primary.id}`);
    }
    const secret = ctx.passwd()?.get(this.user);
    const verifyLater = settings.allowClearTextFrontendAuth && (secret === undefined || secret.kind === 'unusable');
    const hba = ctx.hba();
    let clientPassword: string | undefined;
    let passThrough: ScramPassThrough | undefined;
    let authenticated = false;
    if (!hba && secret?.kind === 'scram') {
      // A SCRAM verifier holds no password: log the client in first, then reuse its proof's
      // ClientKey with the backend that stores the same verifier.
      passThrough = (await authenticateClient(this, 'scram-sha-256', this.user, secret, false)).scram;
      authenticated = true;
    }
    if (hba) {
      const method = hba.match({
        local: this.local,
        ssl: this.ssl,
        address: this.sock.remoteAddress ?? '',
        database: this.database,
        user: this.user,
      });
      if (method === undefined)
        throw new ProxyError(
          SqlState.INVALID_AUTHORIZATION_SPECIFICATION,
          `no pool_hba.conf entry for host "${this.local ? '[local]' : this.sock.remoteAddress}", user "${this.user}", database "${this.database}", ${this.ssl ? 'SSL encryption' : 'no encryption'}`,
          'FATAL',
        );
      const out = await authenticateClient(this, method, this.user, secret, verifyLater);
      clientPassword = out.password;
      passThrough = out.scram;
      authenticated = true;
    }
    this.params = params;
    if (settings.poolMode === 'transaction' && !this.withoutPrimary && !verifyLater) {
      await this.loginShared(primary, secret, passThrough, clientPassword, authenticated);
      return;
    }
    const conn = await this.orRefused(
      primary,
      ctx.pool.lease({
        node: primary,
        user: this.user,
        database: this.database,
        params,
        // Without a usable pool_passwd entry, only the backend can check the client's password:
        // never hand such a client a cached connection.
        fresh: verifyLater,
        credentials: {
          secret,
          scramPassThrough: passThrough,
          askPassword:
            clientPassword !== undefined
              ? async () => clientPassword!
              : verifyLater
                ? async () => {
                    clientPassword = (await authenticateClient(this, 'password', this.user, secret, true)).password;
                    authenticated = true;
                    return clientPassword!;
                  }
                : undefined,
        },
      }),
    );
    if (conn === undefined) return;
    if (this.isClosed()) {
      ctx.pool.release(conn);
      return;
    }
    conn.sink = this;
    this.credentials = {
      secret,
      scramPassThrough: passThrough,
      askPassword: clientPassword !== undefined ? async () => clientPassword! : undefined,
    };
    const host: DispatchHost = this.withoutPrimary ? { ...this.host(), refuseWrite: (what: string) => this.refuseWrite(what) } : this.host();
    this.dispatcher = new Dispatcher(host, conn);
    this.dispatcher.sink = this;
    if (!authenticated) {
      const out = await authenticateClient(this, conn.authMethod as ClientAuthMethod, this.user, secret, verifyLater);
      if (out.password !== undefined) this.credentials = { secret, askPassword: async () => out.password! };
      else if (out.scram !== undefined) this.credentials = { secret, scramPassThrough: out.scram };
    }
    if (this.isClosed()) return;
    this.becomeReady(conn);
  }

  /** Awaits a backend connection; when the backend refused the startup, relays its error to the client and gives undefined. */
  private async orRefused<T>(node: ClusterNode, pending: Promise<T>): Promise<T | undefined> {
    try {
      return await pending;
    } catch (e) {
      if (!(e instanceof BackendStartupError)) throw e;
      this.log.info({ node: node.id, code: e.fields.code }, `backend refused the session: ${e.fields.message}`);
      this.sendAndClose(e.raw);
      return undefined;
    }
  }

  /**
   * pool_mode = transaction: the session logs in against pgrouter only. Its ParameterStatus set
   * and authentication method are those of a shared connection of its group (the first session
   * of a group opens one; concurrent ones wait for it), so a login costs no backend connection.
   */
  private async loginShared(
    primary: ClusterNode,
    secret: PoolSecret | undefined,
    passThrough: ScramPassThrough | undefined,
    clientPassword: string | undefined,
    authenticated: boolean,
  ): Promise<void> {
    this.transactionMode = true;
    this.credentials = {
      secret,
      scramPassThrough: passThrough,
      askPassword: clientPassword !== undefined ? async () => clientPassword : undefined,
    };
    const group = this.ctx.lanes.group(primary, this.user, this.database, this.params, this.credentials);
    const lane = await this.orRefused(primary, group.loginLane());
    if (lane === undefined || this.isClosed()) return;
    const template = lane.conn;
    if (!authenticated) {
      const out = await authenticateClient(this, template.authMethod as ClientAuthMethod, this.user, secret, false);
      if (out.scram !== undefined) this.credentials = { secret, scramPassThrough: out.scram };
    }
    if (this.isClosed()) return;
    this.becomeReady(template, lane.loginParams);
  }

  /**
   * The login reply, then the session proper. `loginParams`: a lane's parameters as of its login
   * (transaction pooling), in place of the connection's current ones, which another session's
   * SET may have changed.
   */
  private becomeReady(conn: ServerConnection, loginParams?: ReadonlyMap<string, string>): void {
    if (this.authTimer) clearTimeout(this.authTimer);
    this.authTimer = null;
    const keys = this.ctx.cancels.allocate();
    this.pid = keys.pid;
    this.secret = keys.secret;
    this.ctx.cancels.add(this.pid, this);
    const shared = this.transactionMode;
    const status =
      loginParams !== undefined
        ? parameterStatusBlock(loginParams, loginParams, 0, this.params.get('application_name') ?? '')
        : parameterStatusBlock(conn, conn.params, conn.paramsVersion, shared ? (this.params.get('application_name') ?? '') : undefined);
    this.sock.write(
      Buffer.concat([AUTHENTICATION_OK, status, w.backendKeyData(this.pid, this.secret), w.readyForQuery(shared ? TxStatus.Idle : conn.txStatus)]),
    );
    this.phase = 'ready';
    if (shared) this.txd = new TransactionDispatcher(this.host());
    const target = readTargetOf(this.sock);
    if (target) target.size = CLIENT_READ_BUFFER;
    if (!this.ssl && !target) {
      // From here on the client's bytes are read into a reused buffer (no stream machinery);
      // a socket the listener built that way from the start is already there.
      const moved = moveToUserBuffer(this.sock, this.onData, this.holdsClientChunk, CLIENT_READ_BUFFER);
      if (moved) {
        this.sock = moved;
        moved.on('error', () => this.close());
        moved.on('close', () => this.close());
      }
    }
    this.lastActivity = Date.now();
    if (this.ctx.log.isLevelEnabled('debug'))
      this.log.debug({ user: this.user, database: this.database, server: conn.tag, reused: conn.leases > 1 }, 'session ready');
    // Anything the client pipelined behind its last authentication message.
    const queued = this.inbox;
    this.inbox = [];
    const t = this.txd;
    if (t !== null) {
      for (const m of queued) t.onFrame(m[0]!, m, 0, m.length);
      t.endOfChunk();
      return;
    }
    const d = this.dispatcher!;
    for (const m of queued) d.onFrame(m[0]!, m, 0, m.length);
    d.endOfChunk();
  }

  /**
   * What both dispatchers need from the session, as one object made once per session (the
   * session-pooling dispatcher reads only its DispatchHost part).
   */
  private host(): TransactionHost {
    return {
      logger: () => this.log,
      pool: this.ctx.pool,
      user: this.user,
      database: this.database,
      params: this.params,
      credentials: () => this.credentials,
      cluster: () => this.ctx.cluster(),
      routeSettings: () => this.routeSettings(),
      stats: this.ctx.stats,
      admin: this.ctx.admin && ((sql: string, info: AdminSessionInfo) => this.ctx.admin!(sql, { ...info, settings: this.overrides })),
      writeClient: (b: Buffer) => !this.sock.destroyed && this.sock.write(b),
      pauseClient: () => this.sock.pause(),
      resumeClient: () => {
        if (this.phase === 'ready') this.sock.resume();
      },
      terminate: () => this.close(true),
      backendFailed: (id: number, why: string) => this.ctx.backendFailed(id, why),
      protocolViolation: (m: string) => this.fail(new ProxyError(SqlState.PROTOCOL_VIOLATION, m, 'FATAL')),
      deferBegin: () => this.ctx.settings().transactionDeferBegin,
      lanes: this.ctx.lanes,
      clientQueuedBytes: () => this.sock.writableLength,
      onceClientDrained: (cb: () => void) => {
        if (this.sock.destroyed || this.sock.writableLength === 0) return cb();
        let done = false;
        const once = (): void => {
          if (done) return;
          done = true;
          cb();
        };
        this.sock.once('drain', once);
        this.sock.once('close', once);
      },
      fail: (e: ProxyError) => this.fail(e),
      connectTimeoutMs: () => this.ctx.settings().connectTimeoutMs,
      cacheUnnamedStatements: () => this.ctx.settings().transactionUnnamedStatementCache,
      settled: () => {
        this.lastActivity = Date.now();
        if (this.ctx.draining()) this.drainIfIdle();
      },
    };
  }

  private routeCache: { base: RouteSettings; version: number; merged: RouteSettings } | null = null;

  /** The route settings with this session's PGPOOL SET values laid over them. */
  private routeSettings(): RouteSettings {
    const base = this.ctx.routeSettings();
    const o = this.overrides;
    if (o.size === 0) return base;
    const c = this.routeCache;
    if (c && c.base === base && c.version === o.version) return c.merged;
    const merged = { ...base } as Record<string, unknown>;
    for (const [name, field] of ROUTE_FIELDS) {
      const v = o.get(name);
      if (v !== undefined && field in merged) merged[field] = v;
    }
    this.routeCache = { base, version: o.version, merged: merged as unknown as RouteSettings };
    return this.routeCache.merged;
  }

  /**
   * A session without a primary was asked to run `what`, which only a primary may run: an ERROR
   * 25006 (what a standby answers), or, once a primary is usable again, the end of the session so
   * that the client reconnects to one that can write (undefined then).
   */
  private refuseWrite(what: string): Buffer | undefined {
    const p = this.ctx.cluster().primary;
    if (p && isUsable(p)) {
      this.fail(
        new ProxyError(
          SqlState.ADMIN_SHUTDOWN,
          `terminating connection: it started while no primary was known, and node ${p.id} is the primary now`,
          'FATAL',
          undefined,
          'Reconnect: new sessions write to the primary.',
        ),
      );
      return undefined;
    }
    return w.errorResponse({
      severity: 'ERROR',
      code: SqlState.READ_ONLY_SQL_TRANSACTION,
      message: `cannot execute ${what}: ${p ? `the primary node ${p.id} is down` : 'no primary node is known'}, so pgrouter accepts no writes`,
      detail: p ? `The primary, ${describeNode(p)}, is down or detached.` : 'No node is the primary, or more than one claims to be.',
      hint: 'Reads, SHOW and PGPOOL commands work; writes need a new session once a primary is found.',
    });
  }

  /** PGPOOL DETACH NODE: a session whose primary (or base) connection is on that node ends. */
  nodeDetached(nodeId: number): void {
    if (this.phase !== 'ready' || this.dispatcher?.primary?.node.id !== nodeId) return;
    // After the reply to the DETACH itself, if this session sent it.
    setImmediate(() =>
      this.fail(
        new ProxyError(
          SqlState.ADMIN_SHUTDOWN,
          `terminating connection because node ${nodeId}, which this session writes to, was detached by an administrator`,
          'FATAL',
        ),
      ),
    );
  }

  // ---- replies ----

  /** Bytes read from and written to the client so far (pgrouter_client_bytes_*). */
  bytes(): { received: number; sent: number } {
    return socketBytes(this.sock);
  }

  /** ReplySink: the last reply chunk is still queued on the client socket. */
  holdsReplyChunk(): boolean {
    return this.sock.writableLength > 0;
  }

  /** ReplySink: forward a reply chunk unchanged, pausing the backend when the client is slow. */
  onReply(conn: ServerConnection, chunk: Buffer): void {
    if (this.sock.write(chunk)) return;
    if (conn.socket.isPaused()) return;
    conn.socket.pause();
    this.sock.once('drain', () => {
      if (conn.sink === this) conn.socket.resume();
    });
  }

  onReady(conn: ServerConnection): void {
    const d = this.dispatcher;
    d?.onReady(conn);
    if (conn.owed !== 0) return;
    this.lastActivity = Date.now();
    if (this.ctx.draining()) this.drainIfIdle();
  }

  onServerClose(conn: ServerConnection, err: Error | undefined): void {
    if (this.phase === 'closed') return;
    this.log.warn({ server: conn.tag, err: err?.message }, 'backend connection closed during the session');
    const d = this.dispatcher;
    if (d && conn !== d.primary) {
      d.replicaLost(conn);
      return;
    }
    if (d) d.conns.delete(conn.node.id);
    if (!conn.sawFatal) this.ctx.backendFailed(conn.node.id, err?.message ?? 'connection lost');
    if (conn.sawFatal) this.close();
    else
      this.fail(
        new ProxyError(
          SqlState.CONNECTION_FAILURE,
          `backend ${describeNode(conn.node)} closed the connection unexpectedly`,
          'FATAL',
        ),
      );
  }

  /** Cancellable: cancel what the session's backends are running. */
  cancel(): Promise<void> {
    if (this.txd) return this.txd.cancel();
    const d = this.dispatcher;
    if (!d) return Promise.resolve();
    // A statement sent with Flush (no Sync yet) owes no ReadyForQuery but is running all the same.
    const sent: Array<Promise<void>> = [];
    for (const c of d.conns.values()) if (d.isBusy(c)) sent.push(sendCancel(c, this.ctx.settings().connectTimeoutMs));
    return Promise.all(sent).then(() => undefined);
  }

  /** The maintenance tick: enforces client_idle_limit. */
  tick(now: number, configuredIdleLimit: number): void {
    const idleLimit = this.overrides.get('client_idle_limit') ?? configuredIdleLimit;
    if (this.phase !== 'ready' || idleLimit <= 0) return;
    if (this.dispatcher && !this.dispatcher.idle) return;
    if (this.txd && !this.txd.idle) return;
    if (now - this.lastActivity >= idleLimit * 1000)
      this.fail(
        new ProxyError(SqlState.IDLE_SESSION_TIMEOUT, 'terminating connection due to idle-session timeout', 'FATAL', `client_idle_limit is ${idleLimit} s`),
      );
  }

  /** Drain: end the session now if it is between transactions, else at its next ReadyForQuery 'I'. */
  drainIfIdle(): void {
    if (this.phase !== 'ready') return;
    if (this.txd) {
      if (this.txd.idle && !this.txd.inTransaction) this.shutdown();
      return;
    }
    const d = this.dispatcher;
    const p = d?.primary;
    if (!d || !p || (d.idle && !d.deferredBegin && p.txStatus === TxStatus.Idle)) this.shutdown();
  }

  /** Ends the session with 57P01, as PostgreSQL does on a shutdown. */
  shutdown(): void {
    this.fail(new ProxyError(SqlState.ADMIN_SHUTDOWN, 'terminating connection due to administrator command', 'FATAL'));
  }

  /** Sends an ErrorResponse for `e` (FATAL ends the session) and closes. */
  fail(e: Error): void {
    if (this.phase === 'closed') return;
    if (e instanceof ProxyError) {
      this.log.info({ code: e.code, user: this.user || undefined, reason: e.internal }, e.message);
      this.sendAndClose(w.errorResponse({ severity: e.severity, code: e.code, message: e.message, detail: e.detail, hint: e.hint }));
    } else {
      this.log.error({ err: e.message, stack: e.stack }, 'session failed');
      this.sendAndClose(w.errorResponse({ severity: 'FATAL', code: SqlState.INTERNAL_ERROR, message: 'internal error in pgrouter' }));
    }
  }

  private sendAndClose(msg: Buffer): void {
    if (!this.sock.destroyed && this.sock.writable) this.sock.end(msg);
    this.close();
  }

  /**
   * Ends the session: gives the backend connection back to the pool and frees the slot.
   * `terminated`: the client sent Terminate, so it expects nothing more and sends nothing more.
   */
  close(terminated = false): void {
    if (this.phase === 'closed') return;
    this.chunkHeldAtClose = this.holdsClientChunk();
    this.phase = 'closed';
    this.abort?.abort();
    if (this.authTimer) clearTimeout(this.authTimer);
    if (this.waiter) this.waiter.reject(new Error('client went away'));
    this.waiter = null;
    if (this.pid) this.ctx.cancels.remove(this.pid);
    this.txd?.close();
    this.txd = null;
    const d = this.dispatcher;
    this.dispatcher = null;
    for (const c of d?.conns.values() ?? []) {
      if (c.socket.isPaused()) c.socket.resume();
      this.ctx.pool.release(c);
    }
    this.releaseSlot?.();
    this.releaseSlot = null;
    if (this.sock.destroyed) {
      // Nothing to close.
    } else if (terminated && this.sock.writableLength === 0) {
      // Everything is written: close the socket now, without the shutdown(2), the wait for the
      // client's FIN and the cut-off timer of the path below. Under a new connection per
      // transaction (strace -c, 1,000 logins) this took epoll_ctl from 7 calls per login to 6
      // and shutdown from 1 to 0.
      this.sock.destroy();
    } else {
      // An error just sent (or replies still queued) must reach the client before the socket
      // closes: a close with the client's unread bytes pending would reset the connection and
      // could drop them. A client that does not close its end in time is cut off. The timer
      // goes as soon as the socket closes: kept for its 5 s, it would keep every ended session
      // alive that long, and under a new connection per transaction they would all reach the
      // old generation.
      const sock = this.sock;
      sock.end();
      const cutOff = setTimeout(() => sock.destroy(), 5000);
      cutOff.unref();
      sock.once('close', () => clearTimeout(cutOff));
    }
    this.ctx.sessionEnded(this);
  }
}
