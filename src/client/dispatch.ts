// The client-to-backend half of a ready session: takes the client's frames in order, decides for
// each request (a Query, or an extended-protocol batch up to Sync/Flush) which node runs it, opens
// a replica connection the first time one is needed, keeps reply order across nodes, and tracks
// the state routing depends on (transaction, writing, temp tables, prepared statements, SETs).

import type { Logger } from 'pino';
import { Frontend, TxStatus } from '../protocol/codes.ts';
import * as w from '../protocol/writer.ts';
import { beginComplete, beginWord, leadingBegin, transactionControlReply } from '../protocol/deferred-begin.ts';
import { BackendStartupError, endedBecause, type BackendCredentials, type ServerConnection } from '../backend/connection.ts';
import type { Pool } from '../pool/pool.ts';
import { isUsable, type ClusterNode, type ClusterView } from '../pool/cluster.ts';
import type { NodeStats } from '../pool/node-stats.ts';
import type { AdminSessionInfo } from './context.ts';
import { classify, plainTransactionControl } from '../router/classify.ts';
import {
  bareName,
  writesForReads,
  isWriteFunction,
  lagMeasure,
  lagOverThreshold,
  NEEDS_CATALOG_LOOKUP,
  primaryReason,
  sessionLoadBalanceNode,
  weightedChoice,
  type CatalogView,
  type RouteSettings,
} from '../router/route.ts';
import { catalogCache, freshFacts, mayChangeCatalogFacts, type DatabaseFacts, type FreshFacts } from '../router/catalog-cache.ts';
import { queryRows, type TextRow } from '../backend/query-rows.ts';
import type { Classification } from '../router/statement.ts';
import { reasonCategory } from '../router/reason-category.ts';
import { SqlState } from '../errors/sqlstate.ts';

/** What the dispatcher needs from its session. */
export interface DispatchHost {
  /** The session's logger. */
  logger(): Logger;
  readonly pool: Pool;
  readonly user: string;
  readonly database: string;
  readonly params: ReadonlyMap<string, string>;
  /** How backend connections log in (it changes once the client has authenticated). */
  credentials(): BackendCredentials;
  cluster(): ClusterView;
  routeSettings(): RouteSettings;
  readonly stats: NodeStats;
  /** pgrouter's own commands; see ProxyContext.admin. */
  readonly admin: ((sql: string, session: AdminSessionInfo) => Buffer | undefined) | undefined;
  /** Writes to the client; false when its buffer is full. */
  writeClient(buf: Buffer): boolean;
  pauseClient(): void;
  resumeClient(): void;
  /** The client sent Terminate. */
  terminate(): void;
  /** A backend connection failed (see ProxyContext.backendFailed). */
  backendFailed(nodeId: number, why: string): void;
  /** A frame type no client may send. */
  protocolViolation(message: string): void;
  /** transaction_defer_begin: answer a plain BEGIN here and send it with the transaction's first request. */
  deferBegin(): boolean;
  /**
   * Present when the session has no primary (see Session): the ErrorResponse refusing `what`, a
   * statement only a primary may run, or undefined when the session was ended instead.
   */
  readonly refuseWrite?: ((what: string) => Buffer | undefined) | undefined;
}

interface PreparedStatement {
  /** A copy of the Parse message, to re-parse on another node. */
  readonly parse: Buffer;
  readonly sql: string;
  readonly c: Classification;
  readonly nodes: Set<number>;
}

/** A frame of the pending extended-protocol batch: a view of the client's chunk. */
type Frame = readonly [buf: Buffer, start: number, end: number];

/** `SET pgrouter.trace_routing = on|off` (a custom setting PostgreSQL accepts as it is). */
const TRACE_SETTING = /^\s*set\s+(?:session\s+)?pgrouter\.trace_routing\s*(?:=|to)\s*(\S+?)\s*;?\s*$/i;

/** SET TRANSACTION READ ONLY and its session form do not make a transaction a writing one. */
const READ_ONLY_SET = /^\s*set\s+(session\s+characteristics\s+as\s+)?transaction\s+read\s+only/i;

/** Text that may be one of pgrouter's own commands (checked before the full match; both pool modes). */
export const ADMIN_COMMAND = /^\s*(show\s+pool_|pgpool\s)/i;

const TRANSACTION_RESET = /^\s*(discard\s+all|reset\s+all)\s*;?\s*$/i;

/** `SET [SESSION|LOCAL] name ...` / `RESET name`: which setting a statement changes. */
const SETTING_NAME = /^\s*(?:set\s+(?:(session|local)\s+)?|reset\s+)("(?:[^"]|"")+"|[a-z_][\w.$]*)/i;

/** The key under which the replay list keeps a SET/RESET: its setting (LOCAL ones apart), or its whole text. */
function settingKey(sql: string): string {
  const m = SETTING_NAME.exec(sql);
  if (!m) return sql;
  const name = m[2]!.startsWith('"') ? m[2]!.slice(1, -1).replace(/""/g, '"') : m[2]!.toLowerCase();
  return m[1]?.toLowerCase() === 'local' ? `local ${name}` : name;
}

/** How long a catalog lookup (pg_proc volatility, unlogged tables) may take before the statement goes to the primary. */
const CATALOG_QUERY_TIMEOUT_MS = 10_000;
/** A deferred BEGIN as the session's other connections get it (their replies are dropped). */
const BEGIN_QUERY = w.query('BEGIN');
/** How the load-balance replica's part of a transaction ends when the client ended it in the extended protocol. */
const ROLLBACK_QUERY = w.query('ROLLBACK');
const NO_PARSES: readonly Buffer[] = [];

export class Dispatcher {
  /** Leased connections by node id; the primary's is leased for the whole session. */
  readonly conns = new Map<number, ServerConnection>();
  private readonly primaryId: number;
  /** This session's load-balance node (Pgpool-II chooses it once per session). */
  private lbNodeId: number;
  private blocked = false;
  private pending: Buffer[] = [];
  private batch: Frame[] = [];
  /** Node of a Flush-ended batch whose Sync has not come yet. */
  private openNode: number | null = null;
  /** Node that received the last client request (COPY data follows it). */
  private activeNode: number;
  private readonly statements = new Map<string, PreparedStatement>();
  /** SQL-level PREPARE name → node it was prepared on. */
  private readonly sqlPrepared = new Map<string, { node: number; sql: string }>();
  /**
   * The session's SET/RESET statements, replayed on a node that joins the session late: the
   * latest one per parameter, in the order they last ran (so a client that sets
   * application_name on every request does not grow the list).
   */
  private readonly sets = new Map<string, string>();
  private writing = false;
  private pinned = false;
  private predictedTx = false;
  private lbInTx = false;
  private readonly temp = new Set<string>();
  /** dml_adaptive: bare names of the tables (and `f()` functions) written in this transaction, with their dependents. */
  private readonly written = new Set<string>();
  /** This database's cached catalog facts, and the view the routing gate reads them through. */
  private readonly facts: DatabaseFacts;
  private readonly catalog: CatalogView;
  /** What the last catalog lookup returned, for the statement that waited for it (cleared once a request is sent). */
  private fresh: FreshFacts | null = null;
  /** A catalog lookup runs: the client's frames wait, in order, behind the statement that needs it. */
  private lookingUp = false;
  /** The statement whose catalog facts endBatch found missing. */
  private lookupFor: Classification | null = null;
  /** DDL ran in the open transaction: cached catalog facts are forgotten again when it ends. */
  private ddlInTx = false;
  // The run of consecutive frames of one chunk going to one connection.
  private runConn: ServerConnection | null = null;
  private runBuf: Buffer | null = null;
  private runStart = 0;
  private runEnd = 0;
  private runUnits = 0;
  private terminated = false;
  /**
   * Terminate came while replies were still owed: the session ends once they are delivered, as
   * PostgreSQL answers every request before it reads the Terminate behind them.
   */
  private ending = false;
  /** `SET pgrouter.trace_routing = on`: a NoticeResponse for every routing decision. */
  private trace = false;
  /**
   * The client's BEGIN was answered here (transaction_defer_begin) and goes out in front of the
   * transaction's first request: the transaction has not started on any server yet.
   */
  deferredBegin = false;

  constructor(
    private readonly host: DispatchHost,
    primary: ServerConnection,
  ) {
    this.primaryId = primary.node.id;
    // Losing its primary (or base) connection ends the session: the client gets the FATAL.
    primary.forwardsFatal = true;
    this.activeNode = this.primaryId;
    this.conns.set(this.primaryId, primary);
    this.lbNodeId = this.chooseLbNode();
    const s = host.routeSettings();
    catalogCache.configure(s.relcacheSize, s.relcacheExpire);
    this.facts = catalogCache.database(host.database);
    this.catalog = catalogCache.view(this.facts, () => this.fresh);
  }

  get primary(): ServerConnection | undefined {
    return this.conns.get(this.primaryId);
  }

  /** Weighted choice among the configured nodes (the primary included), as Pgpool-II does at session start. */
  private chooseLbNode(): number {
    const nodes = this.host.cluster().nodes.filter((n) => isUsable(n));
    return sessionLoadBalanceNode(this.host.routeSettings(), nodes, this.primaryId, {
      applicationName: this.host.params.get('application_name') ?? '',
      database: this.host.database,
      user: this.host.user,
    });
  }

  /** True while `conn` runs something for the client: owed replies, or a Flush-ended batch not yet synced. */
  isBusy(conn: ServerConnection): boolean {
    return conn.owed > 0 || this.openNode === conn.node.id;
  }

  /**
   * True when the client chunk just processed is still referenced: frames of an unfinished batch,
   * or a write to a backend that has not completed. The next read must then use a fresh buffer.
   */
  holdsClientChunk(): boolean {
    if (this.batch.length > 0) return true;
    for (const c of this.conns.values()) if (c.socket.writableLength > 0) return true;
    return false;
  }

  /** True while no request is in flight on any connection. */
  get idle(): boolean {
    for (const c of this.conns.values()) if (c.owed > 0) return false;
    return this.openNode === null && this.batch.length === 0 && !this.lookingUp;
  }

  /** Takes one complete client frame. */
  readonly onFrame = (type: number, buf: Buffer, start: number, end: number): void => {
    if (this.terminated || this.ending) return;
    if (this.blocked) {
      this.pending.push(Buffer.from(buf.subarray(start, end)));
      return;
    }
    switch (type) {
      case Frontend.Query:
        this.flushRun();
        this.onQuery(buf, start, end);
        return;
      case Frontend.Parse:
      case Frontend.Bind:
      case Frontend.Describe:
      case Frontend.Close:
      case Frontend.Execute:
        this.batch.push([buf, start, end]);
        return;
      case Frontend.Flush:
        this.batch.push([buf, start, end]);
        this.endBatch(0);
        return;
      case Frontend.Sync:
        this.batch.push([buf, start, end]);
        this.endBatch(1);
        return;
      case Frontend.CopyData:
      case Frontend.CopyDone:
      case Frontend.CopyFail: {
        const conn = this.conns.get(this.activeNode) ?? this.primary;
        if (conn) {
          if (type !== Frontend.CopyData) conn.awaitingCopyData = false;
          this.addToRun(conn, buf, start, end, 0);
        }
        return;
      }
      case Frontend.FunctionCall: {
        const p = this.primary;
        if (!p || !this.mayForwardTo(this.primaryId)) return this.block(buf, start, end);
        this.activeNode = this.primaryId;
        const deferred = this.deferredBegin;
        if (deferred) this.openDeferred(p, NO_PARSES);
        this.addToRun(p, buf, start, end, 1);
        if (deferred) {
          this.flushRun();
          p.endDeferred(true);
        }
        return;
      }
      case Frontend.Terminate:
        this.flushRun();
        this.ending = true;
        this.endIfAnswered();
        return;
      default:
        this.flushRun();
        this.terminated = true;
        this.host.protocolViolation(`invalid frontend message type ${type}`);
    }
  };

  /** Called after each client chunk: writes what was gathered. */
  endOfChunk(): void {
    this.flushRun();
  }

  // ---- simple Query ----

  private onQuery(buf: Buffer, start: number, end: number): void {
    const sql = buf.toString('utf8', start + 5, end - 1);
    if (this.host.admin && ADMIN_COMMAND.test(sql)) {
      const reply = this.host.admin(sql, { user: this.host.user, database: this.host.database, loadBalanceNode: this.lbNodeId });
      if (reply !== undefined) {
        // Answered here, after every reply still owed to the client; ReadyForQuery 'I' as Pgpool-II sends.
        if (!this.mayForwardTo(-1)) return this.block(buf, start, end);
        this.host.writeClient(Buffer.concat([reply, w.readyForQuery(TxStatus.Idle)]));
        return;
      }
    }
    const c = classify(sql);
    if (this.host.refuseWrite && this.primaryOnly(c, sql)) return this.refuse(c.reason, [[buf, start, end]], 1);
    const begins = c.tx === 'begin' ? this.defersBegin(c, sql) : undefined;
    if (begins !== undefined) return this.answerBegin(c, sql, begins);
    if (c.tx === 'end' && this.deferredBegin && this.answerEnd(c, sql)) return;
    const d = this.decide(c, sql);
    if (d === null) return this.block(buf, start, end); // waits for a catalog lookup
    if (!this.ready(d.node)) return this.block(buf, start, end);
    // A BEGIN that goes out now (not deferred) reaches the session's load-balance replica too, as
    // in Pgpool-II, so that the transaction's reads may go there: its connection opens first.
    if (c.tx === 'begin' && d.all && this.replicaMayJoin(c) && !this.ready(this.lbNodeId)) return this.block(buf, start, end);
    const conn = this.conns.get(d.node)!;
    this.activeNode = d.node;
    if (this.trace || this.host.routeSettings().traceAll) this.notice(d.node, d.all, d.reason);
    const deferred = this.deferredBegin;
    if (deferred) this.openDeferred(conn, NO_PARSES);
    this.addToRun(conn, buf, start, end, 1);
    this.flushRun();
    if (deferred) conn.endDeferred(true);
    this.host.stats.statement(d.node, c.kind);
    this.host.stats.routed(d.node, d.category);
    if (d.all) {
      const copy = Buffer.from(buf.subarray(start, end));
      for (const [id, other] of this.conns)
        if (id !== d.node) {
          other.request(copy, 1, false);
          this.host.stats.statement(id, c.kind);
          this.host.stats.routed(id, d.category);
        }
      if (c.tx === 'begin' && this.conns.has(this.lbNodeId)) this.lbInTx = true;
    }
    this.afterRoute(c, sql, d.node);
    if (c.tx === 'begin' && d.node === this.lbNodeId) this.lbInTx = true;
    this.fresh = null;
  }

  /**
   * transaction_defer_begin: a BEGIN (or START TRANSACTION) is answered here when the session is
   * idle on every connection, and goes out with the transaction's first request. One with
   * options goes out as the client wrote it (isolation level, READ ONLY, DEFERRABLE), unless they
   * keep the transaction on the primary (READ WRITE, SERIALIZABLE): that one is sent at once.
   * Returns the statement's first word when it is deferred.
   */
  private defersBegin(c: Classification, sql: string): 'begin' | 'start' | undefined {
    if (this.deferredBegin || this.host.refuseWrite || this.openNode !== null || !this.host.deferBegin()) return undefined;
    if (c.tx !== 'begin' || c.pinsTransaction || c.parts !== undefined) return undefined;
    const p = this.primary;
    if (!p || p.txStatus !== TxStatus.Idle) return undefined;
    for (const conn of this.conns.values()) if (conn.owed > 0 || conn.txStatus !== TxStatus.Idle) return undefined;
    const word = plainTransactionControl(sql);
    if (word === 'begin' || word === 'start') {
      this.deferredText = null;
      return word;
    }
    this.deferredText = sql;
    return beginWord(sql);
  }

  /** The text of a deferred BEGIN with options, sent as the client wrote it; null for a plain one. */
  private deferredText: string | null = null;

  /** Answers a deferred BEGIN: the session is now in a transaction that starts with its next request. */
  private answerBegin(c: Classification, sql: string, word: 'begin' | 'start', reply = transactionControlReply(word)): void {
    this.deferredBegin = true;
    // Every connection open now gets the BEGIN, as it would have had it been sent.
    if (this.conns.has(this.lbNodeId)) this.lbInTx = true;
    this.answerHere(c, sql, 'deferred: sent with the next statement', reply);
  }

  /**
   * transaction_defer_begin for a BEGIN in the extended protocol (psycopg 3 sends it as a batch
   * of its own, pgJDBC in front of the transaction's first statement): a plain BEGIN at the head
   * of a Sync-ended batch is answered here as a server would answer its messages, and the rest of
   * the batch, if any, is routed as the transaction's first request. True when nothing is left.
   */
  private answersExtendedBegin(units: number): boolean {
    if (units !== 1) return false;
    const lead = leadingBegin(this.batch);
    if (lead === undefined) return false;
    const c = classify(lead.sql);
    const word = this.defersBegin(c, lead.sql);
    if (word === undefined) return false;
    // The client's unnamed statement is now its BEGIN, which no server has.
    this.statements.delete('');
    const alone = this.batch.length === lead.count + 1; // only the Sync is left
    this.answerBegin(c, lead.sql, word, Buffer.concat([lead.replies, alone ? transactionControlReply(word) : beginComplete(word)]));
    this.batch = alone ? [] : this.batch.slice(lead.count);
    return alone;
  }

  /**
   * A plain COMMIT or ROLLBACK (END, ABORT) right after a deferred BEGIN: the transaction never
   * started on a server, so it is ended here too, as a server would answer it. False for any
   * other statement that ends a transaction (COMMIT AND CHAIN, PREPARE TRANSACTION...).
   */
  private answerEnd(c: Classification, sql: string): boolean {
    const word = plainTransactionControl(sql);
    if (word !== 'commit' && word !== 'end' && word !== 'rollback' && word !== 'abort') return false;
    this.deferredBegin = false;
    this.deferredText = null;
    this.answerHere(c, sql, 'answered here: the deferred BEGIN never reached a server', transactionControlReply(word));
    return true;
  }

  /** The bookkeeping and reply of a transaction-control statement no server sees (see answerBegin, answerEnd). */
  private answerHere(c: Classification, sql: string, why: string, reply: Buffer): void {
    const primary = this.primaryId;
    if (this.trace || this.host.routeSettings().traceAll) this.notice(primary, true, `${c.reason} (${why})`);
    for (const id of this.conns.keys()) {
      this.host.stats.statement(id, c.kind);
      this.host.stats.routed(id, 'session_command');
    }
    this.afterRoute(c, sql, primary);
    this.fresh = null;
    this.host.writeClient(reply);
  }

  /**
   * The deferred BEGIN goes out: in front of the request about to be written to `conn` (with
   * `parses`, statements that request uses but `conn` has not parsed), and as a plain BEGIN to the
   * session's other connections. The caller writes the request, then calls conn.endDeferred.
   */
  private openDeferred(conn: ServerConnection, parses: readonly Buffer[]): void {
    this.deferredBegin = false;
    const text = this.deferredText;
    this.deferredText = null;
    this.flushRun();
    const others = text === null ? BEGIN_QUERY : w.query(text);
    for (const other of this.conns.values()) if (other !== conn) other.request(others, 1, false);
    conn.beginDeferred(parses, text);
    // The load-balance replica opened after the BEGIN was answered (for this request): it is in
    // the transaction too.
    if (this.conns.has(this.lbNodeId)) this.lbInTx = true;
  }

  /**
   * Whether a transaction beginning now may take in the session's load-balance replica, whose
   * connection is not open yet: load balancing on, the replica usable, and a BEGIN that does not
   * keep the transaction on the primary (READ WRITE, SERIALIZABLE).
   */
  private replicaMayJoin(c: Classification): boolean {
    const lb = this.lbNodeId;
    return lb !== this.primaryId && !this.conns.has(lb) && !c.pinsTransaction && this.host.routeSettings().loadBalance && this.usable(lb);
  }

  /**
   * Where a statement goes: its node, whether copies go to every other open connection, the
   * reason (for the trace) and its category (for pgrouter_routing_decisions_total).
   */
  private decide(c: Classification, sql: string): { node: number; all: boolean; reason: string; category: string } | null {
    const primary = this.primaryId;
    if (c.execute !== undefined) {
      const p = this.sqlPrepared.get(c.execute);
      const pc = p && p.node !== primary && this.usable(p.node) ? classify(p.sql) : undefined;
      const pwhy = pc && p ? primaryReason(pc, p.sql, this.state(), this.host.routeSettings(), this.catalog) : 'EXECUTE';
      if (pwhy === NEEDS_CATALOG_LOOKUP && this.startLookup(pc!)) return null;
      if (p && pwhy === null)
        return { node: p.node, all: false, reason: 'EXECUTE where PREPARE went', category: 'prepared_statement' };
      return { node: primary, all: false, reason: 'EXECUTE', category: 'prepared_statement' };
    }
    if (c.target === 'primary') return { node: primary, all: false, reason: c.reason, category: 'write' };
    if (c.target === 'all') return { node: primary, all: true, reason: c.reason, category: 'session_command' };
    const why = primaryReason(c, sql, this.state(), this.host.routeSettings(), this.catalog);
    if (why === NEEDS_CATALOG_LOOKUP && this.startLookup(c)) return null;
    if (why !== null) {
      // After a failed lookup the unknown names counted as volatile / unlogged: say so in the trace.
      const reason = this.fresh?.error !== undefined ? `${why} (catalog lookup failed)` : why;
      return { node: primary, all: false, reason, category: reasonCategory(why) };
    }
    const lb = this.balanceNode();
    return { node: lb, all: false, reason: this.balanceReason, category: reasonCategory(this.balanceReason) };
  }

  /** Why balanceNode chose what it chose (for the routing trace). */
  private balanceReason = 'read';

  /** The node a read may go to now. */
  private balanceNode(): number {
    this.balanceReason = 'read';
    const s = this.host.routeSettings();
    let lb = this.lbNodeId;
    if (s.statementLevel && !this.inTransaction()) {
      const choice = weightedChoice(this.host.cluster().nodes.filter((n) => this.usable(n.id)));
      if (choice) lb = choice.id;
    }
    if (lb === this.primaryId) {
      this.balanceReason = 'read (the load-balance node is the primary)';
      return lb;
    }
    if (!this.usable(lb)) {
      this.balanceReason = `read (node ${lb} is not available)`;
      return this.primaryId;
    }
    // Inside a transaction a replica may serve reads only if it took part in the BEGIN, or if the
    // BEGIN is still deferred: it then goes to the replica with this read (its connection opens
    // first, see openDeferred).
    if (this.inTransaction() && !this.lbInTx && !this.deferredBegin) {
      this.balanceReason = 'read in a transaction the replica did not begin';
      return this.primaryId;
    }
    const node = this.host.cluster().node(lb)!;
    const over = lagOverThreshold(node.lag, s);
    if (over > 0) {
      this.balanceReason = `replica node ${lb} lag ${s.delayThresholdMs > 0 ? `${over.toFixed(0)} ms` : `${over} bytes`} over threshold`;
      return this.lessDelayed(s);
    }
    return lb;
  }

  /** prefer_lower_delay_standby: the least-delayed replica within the threshold, else the primary. */
  private lessDelayed(s: RouteSettings): number {
    if (!s.preferLowerDelayStandby || this.inTransaction()) return this.primaryId;
    const candidates = this.host
      .cluster()
      .nodes.filter((n) => n.id !== this.primaryId && n.weight > 0 && this.usable(n.id) && lagOverThreshold(n.lag, s) === 0);
    if (candidates.length === 0) return this.primaryId;
    const least = Math.min(...candidates.map((n) => lagMeasure(n.lag, s)));
    return weightedChoice(candidates.filter((n) => lagMeasure(n.lag, s) === least))?.id ?? this.primaryId;
  }

  private usable(nodeId: number): boolean {
    if (nodeId === this.primaryId) return true;
    const n = this.host.cluster().node(nodeId);
    if (n === undefined || !isUsable(n)) return false;
    const failedAt = this.failedNodes.get(nodeId);
    if (failedAt === undefined) return true;
    // Tried again once the node has come back (the health check saw it down, then up), or,
    // when it never went down (its backend alone was ended, or health checks are off, as in
    // the Kubernetes settings), after replica_retry_interval.
    if (n.lastStatusChange.getTime() <= failedAt && Date.now() - failedAt < this.host.routeSettings().replicaRetryMs) return false;
    this.failedNodes.delete(nodeId);
    return true;
  }

  /** Nodes whose connection this session lost or could not open, with when (Date.now()). */
  private readonly failedNodes = new Map<number, number>();

  private nodeFailed(nodeId: number): void {
    this.failedNodes.set(nodeId, Date.now());
  }

  private state() {
    return { inTransaction: this.inTransaction(), writing: this.writing, pinned: this.pinned, tempTables: this.temp, written: this.written };
  }

  /** The transaction state: ReadyForQuery's when nothing is in flight, else what was sent predicts. */
  private inTransaction(): boolean {
    if (this.deferredBegin) return true;
    const p = this.primary;
    if (!p) return false;
    if (p.owed > 0) return this.predictedTx;
    return p.txStatus !== TxStatus.Idle;
  }

  /** Bookkeeping once a statement has been sent. */
  private afterRoute(c: Classification, sql: string, node: number): void {
    this.trackTransaction(c, sql);
    if (c.target === 'all' && c.tx === 'none') {
      const t = TRACE_SETTING.exec(sql);
      if (t) this.trace = /^(on|true|yes|1|'on'|'true')$/i.test(t[1]!);
      if (TRANSACTION_RESET.test(sql)) this.sets.clear();
      else if (/^\s*(set|reset)\b/i.test(sql)) {
        const key = settingKey(sql);
        this.sets.delete(key);
        this.sets.set(key, sql);
      }
      if (/^\s*discard\s+(all|temp|temporary)/i.test(sql)) this.temp.clear();
      if (c.deallocate === '') this.sqlPrepared.clear();
    }
    for (const t of c.createsTemp) this.temp.add(t.toLowerCase());
    for (const t of c.drops) this.temp.delete(t.toLowerCase().slice(t.lastIndexOf('.') + 1));
    if (c.prepare !== undefined) this.sqlPrepared.set(c.prepare, { node, sql: sql.replace(/^\s*prepare\s+\S+\s+as\s+/i, '') });
    if (c.deallocate) this.sqlPrepared.delete(c.deallocate);
  }

  /** What a statement that ran does to the transaction state (also for a named statement bound again). */
  private trackTransaction(c: Classification, sql: string): void {
    const s = this.host.routeSettings();
    const mode = s.disableLbOnWrite;
    if (c.tx === 'begin') {
      this.predictedTx = true;
      this.pinned = c.pinsTransaction;
      if (mode === 'transaction' || mode === 'dml_adaptive') this.writing = false;
      if (this.written.size > 0) this.written.clear();
    } else if (c.tx === 'end') {
      this.predictedTx = false;
      this.pinned = false;
      this.lbInTx = false;
      if (mode === 'transaction' || mode === 'dml_adaptive') this.writing = false;
      if (this.written.size > 0) this.written.clear();
      // Lookups made while the transaction ran could not see its DDL.
      if (this.ddlInTx) catalogCache.forget(this.facts);
      this.ddlInTx = false;
    } else if (mode !== 'off') {
      // A function of unknown volatility counts as writing (the safe side). A statement sent to
      // every node (SET, RESET, DISCARD, SAVEPOINT, a weak LOCK), or one for the primary that
      // changes no table (LISTEN, CLOSE, CHECKPOINT), writes no data: it does not keep later reads
      // off the replicas. Pgpool-II counts them, and so keeps a JDBC session, whose driver sends
      // SET extra_float_digits on connecting, on the primary under `always`.
      const writes = writesForReads(c, s, this.catalog);
      // Checked only for statements that would count as writes: reads skip the regex.
      if (writes && !READ_ONLY_SET.test(sql) && (this.inTransaction() || mode === 'always')) {
        if (mode === 'dml_adaptive') this.noteWrites(c, s);
        else this.writing = true;
      }
    }
    if (mayChangeCatalogFacts(c)) {
      // A function or table may have changed: look them up again.
      catalogCache.forget(this.facts);
      if (this.inTransaction()) this.ddlInTx = true;
    }
  }

  /**
   * dml_adaptive: records what a write in a transaction wrote, with the objects that depend on it.
   * A write whose tables are unknown (DO, CALL, most DDL) makes the whole transaction a writing one.
   */
  private noteWrites(c: Classification, s: RouteSettings): void {
    if (c.writes === null) {
      this.writing = true;
      return;
    }
    for (const t of c.writes) this.addWritten(bareName(t), s);
    for (const f of c.functions) if (isWriteFunction(f, s, this.catalog) !== false) this.addWritten(`${bareName(f)}()`, s);
  }

  private addWritten(name: string, s: RouteSettings): void {
    if (this.written.has(name)) return;
    this.written.add(name);
    for (const d of s.dmlDependents.get(name) ?? []) this.addWritten(d, s);
  }

  // ---- catalog lookups ----

  /**
   * Starts the pg_proc / pg_class lookup the routing of `c` waits for; the caller holds the
   * request (block) and the lookup's end replays it. False when nothing is missing after all.
   */
  private startLookup(c: Classification): boolean {
    const want = catalogCache.missing(this.facts, c, this.host.routeSettings(), this.fresh);
    if (want === undefined) return false;
    this.lookingUp = true;
    const fresh = freshFacts();
    void catalogCache.lookUp(this.facts, want, (sql) => this.catalogQuery(sql), fresh).then(() => {
      this.lookingUp = false;
      if (fresh.error !== undefined) this.host.logger().warn({ err: fresh.error }, 'catalog lookup failed: the statement goes to the primary');
      if (!this.alive()) return;
      this.fresh = fresh;
      this.unblock();
    });
    return true;
  }

  /** Runs a catalog query on a pooled connection of this session's user and database (relcache_query_target's node). */
  private async catalogQuery(sql: string): Promise<readonly TextRow[]> {
    const s = this.host.routeSettings();
    const id = s.relcacheQueryTarget === 'load_balance_node' && this.usable(this.lbNodeId) ? this.lbNodeId : this.primaryId;
    const node = this.host.cluster().node(id);
    if (!node) throw new Error(`node ${id} is not configured`);
    const conn = await this.host.pool.lease({
      node: node as ClusterNode,
      user: this.host.user,
      database: this.host.database,
      params: this.host.params,
      credentials: this.host.credentials(),
    });
    try {
      return await queryRows(conn, sql, CATALOG_QUERY_TIMEOUT_MS);
    } finally {
      this.host.pool.release(conn);
    }
  }

  /** False once the session has ended (its connections went back to the pool). */
  private alive(): boolean {
    return !this.terminated && this.sink !== null && this.primary?.sink === this.sink;
  }

  // ---- extended protocol ----

  private endBatch(units: number): void {
    if (this.openNode === null && !this.skipToSync && this.answersExtendedBegin(units)) return;
    const frames = this.batch;
    this.lookupFor = null;
    let node: number;
    const parsed: Array<{ name: string; sql: string; c: Classification; frame: Frame }> = [];
    const referenced: string[] = [];
    const closed: string[] = [];
    const bound: string[] = [];
    let needPrimary = false;
    /** The category of the first reason found to send the batch to the primary. */
    let category: string | null = null;
    for (const f of frames) {
      const [buf, start, end] = f;
      const type = buf[start]!;
      if (type === Frontend.Parse) {
        const nameEnd = buf.indexOf(0, start + 5);
        const qEnd = buf.indexOf(0, nameEnd + 1);
        if (nameEnd < 0 || qEnd < 0 || qEnd >= end) {
          needPrimary = true;
          category ??= 'other';
          continue;
        }
        const name = buf.toString('utf8', start + 5, nameEnd);
        const sql = buf.toString('utf8', nameEnd + 1, qEnd);
        const c = classify(sql);
        parsed.push({ name, sql, c, frame: f });
        const why = this.primaryCategory(c, sql);
        if (why !== null) {
          needPrimary = true;
          category ??= why;
        }
      } else if (type === Frontend.Bind || type === Frontend.Describe || type === Frontend.Close) {
        let at = start + 5;
        let isStatement = true;
        if (type === Frontend.Bind) {
          at = buf.indexOf(0, at) + 1; // skip the portal name
        } else {
          isStatement = buf[at] === 0x53; // 'S'
          at += 1;
        }
        if (!isStatement) continue;
        const stop = buf.indexOf(0, at);
        const name = stop < 0 || stop >= end ? '' : buf.toString('utf8', at, stop);
        if (type === Frontend.Close) {
          closed.push(name);
          continue;
        }
        if (type === Frontend.Bind) bound.push(name);
        if (parsed.some((p) => p.name === name)) continue;
        referenced.push(name);
        const s = this.statements.get(name);
        const why = s ? this.primaryCategory(s.c, s.sql) : 'prepared_statement';
        if (why !== null) {
          needPrimary = true;
          category ??= why;
        }
      }
    }
    const continuing = this.openNode !== null;
    // Without a primary, a batch with a write is refused (one continuing after a Flush goes on).
    if (this.skipToSync || (this.host.refuseWrite && this.openNode === null)) {
      const write = parsed.find((p) => this.primaryOnly(p.c, p.sql));
      if (this.skipToSync || write) return this.refuse(write?.c.reason ?? '', frames, units);
    }
    const lookupFor = this.lookupFor;
    this.lookupFor = null;
    if (lookupFor !== null && this.openNode === null && this.startLookup(lookupFor)) {
      // Hold the whole batch until the catalog answers; the lookup's end replays it.
      this.batch = [];
      this.hold(frames);
      return;
    }
    if (this.openNode !== null) node = this.openNode;
    else if (needPrimary || (parsed.length === 0 && referenced.length === 0)) node = parsed.length === 0 && referenced.length === 0 ? this.activeNode : this.primaryId;
    else node = this.balanceNode();
    if (!this.conns.has(node) && !this.usable(node)) node = this.primaryId;
    if (!this.ready(node)) {
      this.batch = [];
      this.hold(frames);
      return;
    }
    this.batch = [];
    const conn = this.conns.get(node)!;
    const deferred = this.deferredBegin && !continuing;
    let parses: Buffer[] | null = null;
    // A statement this batch uses but that was parsed on another node: parse it here first
    // (behind a deferred BEGIN, without a Sync of its own).
    for (const name of referenced) {
      const s = this.statements.get(name);
      if (s && !s.nodes.has(node)) {
        if (deferred) (parses ??= []).push(s.parse);
        else {
          this.flushRun();
          conn.request(Buffer.concat([s.parse, w.sync()]), 1, false);
        }
        s.nodes.add(node);
      }
    }
    if (deferred) this.openDeferred(conn, parses ?? NO_PARSES);
    this.activeNode = node;
    if ((this.trace || this.host.routeSettings().traceAll) && (parsed.length > 0 || referenced.length > 0))
      this.notice(node, false, needPrimary ? 'extended-protocol batch needs the primary' : 'extended-protocol read');
    for (let i = 0; i < frames.length; i++) {
      const [buf, start, end] = frames[i]!;
      this.addToRun(conn, buf, start, end, i === frames.length - 1 ? units : 0);
    }
    if (deferred) {
      this.flushRun();
      conn.endDeferred(false);
    }
    this.openNode = units === 0 ? node : null;
    // A transaction's end in the extended protocol goes to one node; the load-balance replica,
    // which took part in the transaction for its reads, ends its part too (nothing was written
    // there, so a ROLLBACK is all it needs).
    if (this.lbInTx && node !== this.lbNodeId && this.endsTransaction(parsed, bound)) {
      const replica = this.conns.get(this.lbNodeId);
      if (replica) {
        this.flushRun();
        replica.request(ROLLBACK_QUERY, 1, false);
      }
    }
    for (const p of parsed) {
      const bytes = p.frame[0].subarray(p.frame[1], p.frame[2]);
      const old = this.statements.get(p.name);
      if (old !== undefined && old.sql === p.sql && old.parse.equals(bytes)) {
        // The same Parse again (drivers re-parse the unnamed statement for every query): keep its copy.
        old.nodes.clear();
        old.nodes.add(node);
      } else this.statements.set(p.name, { parse: Buffer.from(bytes), sql: p.sql, c: p.c, nodes: new Set([node]) });
      this.afterRoute(p.c, p.sql, node);
    }
    // A statement parsed in an earlier batch runs again: it writes (or begins, or ends) as at its Parse.
    for (const name of bound) {
      let parsedHere = false;
      for (const p of parsed) if (p.name === name) parsedHere = true;
      const s = parsedHere ? undefined : this.statements.get(name);
      if (s) this.trackTransaction(s.c, s.sql);
    }
    this.fresh = null;
    for (const name of closed) this.statements.delete(name);
    // One decision per batch that names a statement (a batch continuing after a Flush was decided before).
    if (!continuing && (parsed.length > 0 || referenced.length > 0))
      this.host.stats.routed(node, needPrimary ? (category ?? 'other') : reasonCategory(this.balanceReason));
    for (const name of bound) {
      const s = this.statements.get(name);
      if (s) this.host.stats.statement(node, s.c.kind);
    }
  }

  /** The reason category that keeps a statement on the primary (see reason-category.ts), or null when it may be balanced. */
  private primaryCategory(c: Classification, sql: string): string | null {
    if (c.target === 'primary') return 'write';
    if (c.target === 'all') return 'session_command';
    const r = primaryReason(c, sql, this.state(), this.host.routeSettings(), this.catalog);
    if (r === NEEDS_CATALOG_LOOKUP) this.lookupFor ??= c;
    return r === null ? null : reasonCategory(r);
  }

  /** Tells the client where its statement went and why. */
  private notice(node: number, all: boolean, reason: string): void {
    const role = node === this.primaryId ? 'primary' : 'replica';
    this.flushRun();
    this.host.writeClient(
      w.noticeResponse({
        severity: 'NOTICE',
        code: SqlState.SUCCESSFUL_COMPLETION,
        message: `pgrouter: sent to node ${node} (${role})${all ? ' and every other node of the session' : ''}: ${reason}`,
      }),
    );
  }

  // ---- sending ----

  private addToRun(conn: ServerConnection, buf: Buffer, start: number, end: number, units: number): void {
    if (this.runConn === conn && this.runBuf === buf && this.runEnd === start) {
      this.runEnd = end;
      this.runUnits += units;
      return;
    }
    this.flushRun();
    this.runConn = conn;
    this.runBuf = buf;
    this.runStart = start;
    this.runEnd = end;
    this.runUnits = units;
  }

  private flushRun(): void {
    const conn = this.runConn;
    const buf = this.runBuf;
    if (conn === null || buf === null) return;
    this.runConn = null;
    this.runBuf = null;
    const out = this.runStart === 0 && this.runEnd === buf.length ? buf : buf.subarray(this.runStart, this.runEnd);
    if (!conn.request(out, this.runUnits, true)) {
      // The backend is not keeping up (a large COPY FROM): stop reading the client until it drains.
      this.host.pauseClient();
      conn.socket.once('drain', () => {
        if (!this.blocked) this.host.resumeClient();
      });
    }
  }

  /**
   * True when a client-bound request may be sent to `node` now: its connection is open, and no
   * other connection still owes the client replies (replies must reach the client in order).
   */
  private ready(node: number): boolean {
    const conn = this.conns.get(node);
    if (conn === undefined) {
      this.openReplica(node);
      return false;
    }
    // A deferred BEGIN's replies are dropped from the head of the connection's reply stream, so
    // it goes out only once the connection has answered everything before it (a replica that
    // just opened first gets the session's SETs).
    if (this.deferredBegin && conn.owed > 0) return false;
    return this.mayForwardTo(node);
  }

  private mayForwardTo(node: number): boolean {
    for (const [id, c] of this.conns) if (id !== node && (c.busyForClient || this.openNode === id)) return false;
    return true;
  }

  private block(buf: Buffer, start: number, end: number): void {
    this.flushRun();
    this.hold([[buf, start, end]]);
  }

  /** Keeps copies of `frames` to re-run in order once unblocked, and stops reading the client. */
  private hold(frames: readonly Frame[]): void {
    for (const [buf, start, end] of frames) this.pending.push(Buffer.from(buf.subarray(start, end)));
    if (!this.blocked) {
      this.blocked = true;
      this.host.pauseClient();
    }
  }

  /** Re-runs the frames that waited, in order. */
  private unblock(): void {
    if (!this.blocked || this.lookingUp) return;
    this.blocked = false;
    const frames = this.pending;
    this.pending = [];
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      if (this.blocked) {
        this.pending.push(...frames.slice(i));
        break;
      }
      this.onFrame(f[0]!, f, 0, f.length);
    }
    this.flushRun();
    if (!this.blocked) this.host.resumeClient();
  }

  private opening = false;

  /** Leases a connection to a replica the first time the session sends it something. */
  private openReplica(node: number): void {
    if (this.opening) return;
    const target = this.host.cluster().node(node);
    if (!target) {
      this.nodeFailed(node);
      queueMicrotask(() => this.unblock());
      return;
    }
    this.opening = true;
    this.host.pool
      .lease({
        node: target as ClusterNode,
        user: this.host.user,
        database: this.host.database,
        params: this.host.params,
        credentials: this.host.credentials(),
      })
      .then((conn) => {
        this.opening = false;
        if (this.terminated) {
          this.host.pool.release(conn);
          return;
        }
        conn.sink = this.sink!;
        // The replica going away leaves the session running (replicaLost answers for it).
        conn.forwardsFatal = false;
        this.conns.set(node, conn);
        // A node joining late first gets the session's SET state.
        if (this.sets.size > 0) conn.request(Buffer.concat([...this.sets.values()].map((s) => w.query(s))), this.sets.size, false);
        this.unblock();
      })
      .catch((e: Error) => {
        this.opening = false;
        this.nodeFailed(node);
        this.host.logger().warn({ node, err: e.message }, 'replica unavailable for this session; its reads go to the primary');
        if (!(e instanceof BackendStartupError)) this.host.backendFailed(node, e.message);
        this.unblock();
      });
  }

  /** Whether a batch's statements (those it parses, and those it binds that were parsed before) end a transaction. */
  private endsTransaction(parsed: ReadonlyArray<{ name: string; c: Classification }>, bound: readonly string[]): boolean {
    for (const p of parsed) if (p.c.tx === 'end') return true;
    for (const name of bound) if (!parsed.some((p) => p.name === name) && this.statements.get(name)?.c.tx === 'end') return true;
    return false;
  }

  /** Set by the session: where leased connections deliver their replies. */
  sink: import('../backend/connection.ts').ReplySink | null = null;

  /** A connection finished some requests: waiting frames may proceed. */
  onReady(conn: ServerConnection): void {
    if (conn.node.id === this.primaryId && conn.owed === 0) {
      this.predictedTx = conn.txStatus !== TxStatus.Idle;
      // However the transaction ended (an error, a COMMIT inside a function), dml_adaptive forgets its writes.
      if (!this.predictedTx && this.written.size > 0) this.written.clear();
    }
    if (this.blocked && !conn.busyForClient) this.unblock();
    if (this.ending) this.endIfAnswered();
  }

  /**
   * After Terminate: ends the session once no connection owes the client a reply, or at once when
   * a server waits for COPY data the client will never send (PostgreSQL itself ends the session
   * at a Terminate inside COPY FROM STDIN; the connection is closed, not pooled).
   */
  private endIfAnswered(): void {
    let copying = false;
    let owed = false;
    for (const c of this.conns.values()) {
      if (c.awaitingCopyData) copying = true;
      if (c.owed > 0) owed = true;
    }
    if (owed && !copying) return;
    this.ending = false;
    this.terminated = true;
    this.host.terminate();
  }

  /**
   * A replica connection died. The session goes on with the primary; a request the replica still
   * owed the client gets an ErrorResponse and ReadyForQuery in its place.
   */
  replicaLost(conn: ServerConnection): void {
    const id = conn.node.id;
    this.conns.delete(id);
    this.nodeFailed(id);
    // A connection opened there later has none of this one's statements, nor its transaction.
    for (const st of this.statements.values()) st.nodes.delete(id);
    if (id === this.lbNodeId) this.lbInTx = false;
    if (!conn.sawFatal) this.host.backendFailed(id, 'connection lost');
    const owed = conn.forwardOwed;
    const status = this.primary?.txStatus ?? TxStatus.Idle;
    if (owed > 0 || this.openNode === id) {
      const err = w.errorResponse({
        severity: 'ERROR',
        code: SqlState.CONNECTION_FAILURE,
        message: `lost the connection to replica node ${id} while it ran the statement`,
        detail: endedBecause(conn),
        hint: 'The session goes on; later reads are sent to the primary.',
      });
      for (let i = 0; i < Math.max(1, owed); i++) this.host.writeClient(i < owed ? Buffer.concat([err, w.readyForQuery(status)]) : err);
    }
    if (this.openNode === id) this.openNode = null;
    this.host.pool.release(conn);
    this.unblock();
    if (this.ending) this.endIfAnswered();
  }

  // ---- sessions without a primary ----

  /** After a refused batch ended by Flush: the rest of it, up to Sync, is dropped (as PostgreSQL does after an error). */
  private skipToSync = false;

  /**
   * Without a primary: is this a statement only a primary may run? Writes and DDL (everything
   * Pgpool-II sends only to the primary), EXECUTE of such a PREPARE, and whatever could switch the
   * session's read-only default off. A SELECT calling a volatile function still runs, read-only.
   */
  private primaryOnly(c: Classification, sql: string): boolean {
    if (c.execute !== undefined) {
      const p = this.sqlPrepared.get(c.execute);
      return p === undefined || this.primaryOnly(classify(p.sql), p.sql);
    }
    if (c.target === 'primary') return true;
    if (c.target === 'all') return (c.pinsTransaction && /\bread\s+write\b/i.test(sql)) || /\bdefault_transaction_read_only\b/i.test(sql);
    return c.functions.some((f) => f === 'set_config' || f === 'pg_catalog.set_config');
  }

  /** Answers a refused request (a Query, or a batch ending with Sync or Flush) in its turn. */
  private refuse(what: string, frames: readonly Frame[], units: number): void {
    this.batch = [];
    if (!this.mayForwardTo(-1)) {
      this.hold(frames);
      return;
    }
    const rfq = units > 0 ? w.readyForQuery(this.primary?.txStatus ?? TxStatus.Idle) : Buffer.alloc(0);
    if (this.skipToSync) {
      this.skipToSync = units === 0;
      this.host.writeClient(rfq);
      return;
    }
    const err = this.host.refuseWrite?.(what);
    if (err === undefined) return;
    this.skipToSync = units === 0;
    this.host.writeClient(Buffer.concat([err, rfq]));
  }
}
