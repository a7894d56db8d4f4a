// The client half of a session in pool_mode = transaction. Each request (a Query, or an
// extended-protocol batch up to Sync) is classified: an autocommit statement is pipelined onto a
// shared connection (lane) of the node routing chooses; a transaction takes a primary lane to
// itself until ReadyForQuery says idle (a READ ONLY one a lane of the load-balance node, with
// transaction_read_only_load_balance); a statement that changes session state (LISTEN, temp
// tables, SQL PREPARE, session advisory locks, a SET inside a transaction) pins the session to its
// primary lane for good. A session-level SET or RESET is kept per session instead and set on each
// lane before the session's request runs there. Named prepared statements are renamed per lane so
// that clients never see each other's.

import { Frontend, TxStatus } from '../protocol/codes.ts';
import * as w from '../protocol/writer.ts';
import { beginWord, leadingEnd, mayBeBegin, transactionControlReply } from '../protocol/deferred-begin.ts';
import {
  closeStatement,
  parseKey,
  parseText,
  PARSE_COMPLETE,
  parseMessage,
  statementName,
  withStatementName,
  type NameSpan,
} from '../protocol/statement-names.ts';
import { BackendStartupError, endedBecause, sendCancel } from '../backend/connection.ts';
import { describeNode } from '../backend/node.ts';
import { isUsable, type ClusterNode } from '../pool/cluster.ts';
import type { Lane, LaneClient, OpensWith } from '../pool/lane.ts';
import type { LaneGroup } from '../pool/lane-group.ts';
import type { TransactionPool } from '../pool/transaction-pool.ts';
import { ADMIN_COMMAND, type DispatchHost } from './dispatch.ts';
import { classify, plainTransactionControl } from '../router/classify.ts';
import type { Classification, SessionSetting } from '../router/statement.ts';
import { lagOverThreshold, writesForReads, NEEDS_CATALOG_LOOKUP, primaryReason, readOnlyTransactionReason, sessionLoadBalanceNode, weightedChoice, type RouteSettings } from '../router/route.ts';
import { catalogCache, freshFacts, mayChangeCatalogFacts, type DatabaseFacts } from '../router/catalog-cache.ts';
import { laneRows } from '../pool/lane-query.ts';
import { reasonCategory } from '../router/reason-category.ts';
import { ProxyError } from '../errors/proxy-error.ts';
import { SqlState } from '../errors/sqlstate.ts';

/** What the transaction dispatcher needs from its session: the dispatcher's host, and a few more. */
export interface TransactionHost extends Omit<DispatchHost, 'refuseWrite'> {
  readonly lanes: TransactionPool;
  /** Bytes still queued on the client's socket. */
  clientQueuedBytes(): number;
  onceClientDrained(cb: () => void): void;
  fail(e: ProxyError): void;
  connectTimeoutMs(): number;
  /** transaction_unnamed_statement_cache: keep repeated unnamed statements on the lanes. */
  cacheUnnamedStatements(): boolean;
  /** transaction_defer_begin: answer a plain BEGIN here and send it with the next request. */
  deferBegin(): boolean;
  /** Every request the session sent has been answered. */
  settled(): void;
}

/** How a request may share a connection. */
const enum Mode {
  /** Autocommit: ends with ReadyForQuery idle and leaves nothing behind; other clients' requests may follow it at once. */
  Pipeline = 0,
  /** Opens or continues a transaction (or COPY, a multi-statement string, a Flush-ended batch): the lane is held until idle. */
  Exclusive = 1,
  /** Leaves session state behind: the session keeps the lane for good. */
  Pin = 2,
}

interface ClientStatement {
  readonly key: string;
  readonly c: Classification;
  readonly sql: string;
  /** statementMode(c, sql), decided once at its Parse. */
  readonly mode: Mode;
}

/** Where a request goes and how it may share its lane. */
type Plan = {
  node: number;
  readonly mode: Mode;
  /** A read that load balancing placed: another node may serve it when this one cannot be reached. */
  readonly balanced: boolean;
  /** Set once the request was moved off a node that could not be reached (it is moved once). */
  moved?: true;
  /** The first request of a READ ONLY transaction, placed by load balancing: it takes a lane of that node to itself. */
  readonly readOnly: boolean;
};

/** One request: complete client messages (copies once the request has to wait). */
interface Request {
  frames: Buffer[];
  /** A Query's text, decoded once. */
  sql?: string;
  /** Decided once, the first time the request is looked at. */
  plan?: Plan;
  /** Per frame, set by plan: the statement it names (Parse with its key, Bind, Describe, Close), or null. */
  named?: Array<NamedFrame | null>;
  /** What ends it: a Query, a Sync, a Flush, COPY data for the request in progress, a FunctionCall. */
  readonly end: 'query' | 'sync' | 'flush' | 'copy' | 'call';
  /** Set by plan: the session settings it changes, in order (a SET or RESET outside a transaction). */
  changes?: SettingChange[];
}

/** One SET or RESET of a session's: what it sets, and its text (replayed on other lanes). */
interface SettingChange {
  readonly setting: SessionSetting;
  readonly sql: string;
}

/** Settings changes sent and not answered yet: the number of the request that carries them. */
interface UnconfirmedChanges {
  readonly seq: number;
  readonly changes: readonly SettingChange[];
}

/**
 * Where a frame's statement name lies, and for a Parse the statement's key (see statement-names.ts).
 * An unnamed statement's Parse, Bind and Describe are recorded too (span.name ''), for the
 * unnamed-statement cache.
 */
interface NamedFrame {
  readonly span: NameSpan;
  readonly key?: string;
}

/** The reason of `SET transaction_read_only = off` (see parse-tree.ts). */
const READ_WRITE_AGAIN = 'SET transaction_read_only to false';
/** Advisory-lock and set_config calls whose effect outlives the transaction. */
// An unlock (pg_advisory_unlock*) does not pin: a session that holds a session lock is pinned
// already, and for one that holds none an unlock on any connection answers as it would directly.
// set_config(name, value, true) lasts only as long as its transaction: it pins nothing.
const SESSION_FUNCTIONS = /^(?:pg_catalog\.)?(pg_(try_)?advisory_lock(_shared)?|set_config|dblink_connect(_u)?)$/;
const SET_CONFIG = /(?:^|\.)set_config$/;
/** Utility statements whose effect outlives the transaction. */
// UNLISTEN does not pin, for the same reason as an unlock: only a pinned session listens. A
// cursor without HOLD ends with its transaction, which holds its lane anyway.
// SET SESSION CHARACTERISTICS changes the defaults of the session's later transactions.
const SESSION_REASONS = new Set([
  'LISTEN',
  'LOAD',
  'DECLARECURSOR WITH HOLD',
  'SET isolation SERIALIZABLE',
  READ_WRITE_AGAIN,
  'SET SESSION CHARACTERISTICS READ WRITE/SERIALIZABLE',
]);
const SET_LOCAL = /^\s*set\s+local\b/i;
const DISCARD_ALL = /^\s*discard\s+all\s*;?\s*$/i;
const DISCARD_ALL_REPLY = Buffer.concat([w.commandComplete('DISCARD ALL'), w.readyForQuery(TxStatus.Idle)]);
/** SET TRANSACTION, or SET of a parameter that lasts only for the current transaction (transaction_read_only...). */
const SET_TRANSACTION = /^\s*set\s+(?:transaction\b|(?:session\s+|local\s+)?transaction_(?:read_only|isolation|deferrable)\b)/i;
const TEMP_WORD = /\btemp(orary)?\b/i;
/** A name no statement ever has: Close of a client's statement goes there (CloseComplete, nothing closed). */
const NO_STATEMENT = 'pgrouter_closed';
/** What a standby running a READ ONLY transaction answers to a statement that would pin the session there (see refuseOnStandby). */
const STANDBY_REFUSAL_SQL =
  'DO $pgrouter$BEGIN RAISE EXCEPTION USING ERRCODE = \'0A000\', ' +
  "MESSAGE = 'pgrouter runs this READ ONLY transaction on a standby, where this statement would leave session state behind', " +
  "HINT = 'Run it outside the READ ONLY transaction, or set transaction_read_only_load_balance = off to run READ ONLY transactions on the primary.'; END$pgrouter$";
const STANDBY_STATE_REFUSAL = w.query(STANDBY_REFUSAL_SQL);
/** The same as an extended-protocol batch's first messages (the unnamed statement and portal). */
const STANDBY_REFUSAL_PARSE = w.parse('', STANDBY_REFUSAL_SQL);
const STANDBY_REFUSAL_BIND = w.bind('', '');
const STANDBY_REFUSAL_EXECUTE = w.execute('');
/** PostgreSQL's answer to a statement in an aborted transaction. */
const ABORTED_TRANSACTION = w.errorResponse({
  severity: 'ERROR',
  code: SqlState.IN_FAILED_SQL_TRANSACTION,
  message: 'current transaction is aborted, commands ignored until end of transaction block',
});
/** Requests queued before the client's reads are paused. */
const MAX_QUEUED = 64;
/** Server-side statements a lane keeps before the oldest are closed. */
const MAX_LANE_STATEMENTS = 512;

/** The mode a statement needs (see Mode). */
export function statementMode(c: Classification, sql: string): Mode {
  if (c.prepare !== undefined || c.deallocate !== undefined || c.createsTemp.length > 0) return Mode.Pin;
  // A session-level SET or RESET is kept by the session (see TransactionDispatcher.settings).
  if (c.setting !== undefined) return Mode.Pipeline;
  if (c.parts !== undefined) {
    // A multi-statement string holds its lane. Without transaction control in it, it is one
    // implicit transaction: a RESET in it is kept by the session like one on its own (undone if
    // the string fails), as in asyncpg's reset on giving a connection back to its pool
    // (`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`). A SET in it, or a
    // RESET beside transaction control, pins the session.
    const oneTransaction = c.parts.every((p) => p.tx === 'none');
    let m = Mode.Exclusive;
    for (const p of c.parts)
      if (p.setting !== undefined ? !(oneTransaction && p.setting.reset) : statementMode(p, sql) === Mode.Pin) m = Mode.Pin;
    return m;
  }
  if (c.target === 'all' && c.tx === 'none') {
    // SET, RESET, DISCARD, DEALLOCATE ALL; a LOCK weaker than ROW EXCLUSIVE, SET LOCAL and SET
    // TRANSACTION only mean something in a transaction.
    if (c.reason === 'LOCK' || SET_LOCAL.test(sql) || SET_TRANSACTION.test(sql)) return Mode.Exclusive;
    return Mode.Pin;
  }
  if (SESSION_REASONS.has(c.reason) && !SET_TRANSACTION.test(sql)) return Mode.Pin;
  let configCalls = 0;
  for (const f of c.functions)
    if (SESSION_FUNCTIONS.test(f)) {
      if (!SET_CONFIG.test(f)) return Mode.Pin;
      configCalls++;
    }
  if (configCalls > c.localSetConfig) return Mode.Pin;
  if (c.kind === 'ddl' && TEMP_WORD.test(sql)) return Mode.Pin;
  if (c.tx !== 'none' || c.execute !== undefined) return Mode.Exclusive;
  if (c.reason === 'multi-statement query' || c.reason.startsWith('COPY') || c.reason === 'parser not loaded yet') return Mode.Exclusive;
  if (c.reason === 'unparsable statement' || c.reason === 'statement too long to classify') return Mode.Exclusive;
  return Mode.Pipeline;
}

export class TransactionDispatcher implements LaneClient {
  /** The lane holding this session's requests in flight (replies must come back in order). */
  private lane: Lane | null = null;
  private inFlight = 0;
  /** A lane held by this session: a transaction, a Flush-ended batch, or pinned for good. */
  private held: Lane | null = null;
  private heldGroup: LaneGroup | null = null;
  /** `held` is a standby's lane, running a READ ONLY transaction (transaction_read_only_load_balance). */
  private heldOnStandby = false;
  private pinned = false;
  /** A Flush-ended batch whose Sync has not come yet. */
  private openBatch = false;
  /** Frames of the extended-protocol batch being gathered (views until the chunk ends). */
  private batch: Buffer[] = [];
  private readonly queue: Request[] = [];
  private acquiring = false;
  private granted: Lane | null = null;
  private terminated = false;
  /**
   * Terminate came behind requests still queued or unanswered: the session ends once they are
   * answered, as PostgreSQL answers every request before it reads the Terminate behind them.
   */
  private ending = false;
  /**
   * The client's BEGIN was answered here and is still to be sent, in front of its next request
   * (transaction_defer_begin): the transaction has not started on any server yet.
   */
  private beginPending = false;
  private readonly statements = new Map<string, ClientStatement>();
  private readonly facts: DatabaseFacts;
  private readonly catalog;
  private lookingUp = false;
  private readPaused = false;

  /**
   * The session's settings: each parameter it SET outside a transaction, with the statement that
   * set it, in the order they last changed. Changes count from the moment they are sent (a
   * request behind them must run with them), and are undone if their request fails.
   */
  private settings = new Map<string, string>();
  /** `settings` as one text, a statement per line ('' for none): what a lane must have before this session's request runs there. */
  private settingsSql = '';
  /** The settings as the server has confirmed them, and the changes still on their way. */
  private confirmedSettings = new Map<string, string>();
  private readonly unconfirmed: UnconfirmedChanges[] = [];
  /** Requests sent (given a place in a lane's FIFO) and answered, counted to match answers to changes. */
  private sentCount = 0;
  private doneCount = 0;

  /** The session's load-balance node (statement_level_load_balance off: chosen once, as Pgpool-II does). */
  private readonly lbNodeId: number;

  constructor(private readonly host: TransactionHost) {
    const s = host.routeSettings();
    const view = host.cluster();
    this.lbNodeId = sessionLoadBalanceNode(s, view.nodes.filter((n) => isUsable(n)), view.primary?.id ?? 0, {
      applicationName: host.params.get('application_name') ?? '',
      database: host.database,
      user: host.user,
    });
    catalogCache.configure(s.relcacheSize, s.relcacheExpire);
    this.facts = catalogCache.database(host.database);
    this.catalog = catalogCache.view(this.facts, () => null);
  }

  /** The session's group on each node, kept while the cluster view still has that node object. */
  private readonly groups = new Map<number, { node: ClusterNode; group: LaneGroup }>();

  private groupOf(nodeId: number): LaneGroup {
    const node = this.host.cluster().node(nodeId)!;
    const known = this.groups.get(nodeId);
    if (known !== undefined && known.node === node) return known.group;
    const group = this.host.lanes.group(node, this.host.user, this.host.database, this.host.params, this.host.credentials());
    this.groups.set(nodeId, { node, group });
    return group;
  }

  private get primaryId(): number {
    return this.host.cluster().primary?.id ?? 0;
  }

  // ---- LaneClient ----

  deliver(bytes: Buffer): void {
    this.host.writeClient(bytes);
  }

  get queuedBytes(): number {
    return this.host.clientQueuedBytes();
  }

  onceDrained(cb: () => void): void {
    this.host.onceClientDrained(cb);
  }

  requestDone(lane: Lane, status: number, failed: boolean): void {
    this.inFlight--;
    this.doneCount++;
    if (this.unconfirmed.length > 0 && this.unconfirmed[0]!.seq === this.doneCount) this.confirmChanges(lane, failed);
    if (this.inFlight === 0 && lane === this.lane) this.lane = null;
    if (this.held === lane && !this.pinned && !this.openBatch && this.inFlight === 0 && status === TxStatus.Idle) {
      this.held = null;
      this.heldOnStandby = false;
      this.heldGroup!.release(lane);
      this.heldGroup = null;
    }
    if (this.queue.length > 0) this.pump();
    if (this.inFlight === 0) this.host.settled();
    if (this.ending) this.endIfAnswered();
  }

  /**
   * After Terminate: ends the session once nothing is queued or unanswered (a batch without Sync
   * is dropped), or at once when its lane's server waits for COPY data the client will never send.
   */
  private endIfAnswered(): void {
    const lane = this.held ?? this.lane;
    const copying = lane !== null && lane.conn.awaitingCopyData && this.queue.length === 0;
    if (!copying && (this.inFlight > 0 || this.queue.length > 0)) return;
    this.ending = false;
    this.terminated = true;
    this.host.terminate();
  }

  /**
   * A shared lane died before answering one of this session's requests: as in session mode, the
   * request fails with 08006 and the session goes on (later requests go to other lanes).
   */
  requestLost(lane: Lane, _err: Error | undefined): void {
    if (this.terminated) return;
    if (this.lostLane !== lane) {
      this.lostLane = lane;
      if (!lane.conn.sawFatal) this.host.backendFailed(lane.conn.node.id, 'connection lost');
    }
    this.host.writeClient(
      Buffer.concat([
        w.errorResponse({
          severity: 'ERROR',
          code: SqlState.CONNECTION_FAILURE,
          message: `lost the connection to ${describeNode(lane.conn.node)} while it ran the statement`,
          detail: endedBecause(lane.conn),
          hint: 'The session goes on; the statement may or may not have run.',
        }),
        w.readyForQuery(TxStatus.Idle),
      ]),
    );
    this.requestDone(lane, TxStatus.Idle, true);
  }

  private lostLane: Lane | null = null;

  /**
   * A READ ONLY transaction whose standby went away: the session goes on, as with any read a
   * lost replica served, and its transaction is aborted until the client ends it (here, since
   * no server holds it any more). `told`: the client has had the 08006 already.
   */
  private lostTransaction: { error: Buffer; told: boolean } | null = null;

  private loseTransaction(lane: Lane): void {
    this.held = null;
    this.heldGroup = null;
    this.heldOnStandby = false;
    this.openBatch = false;
    if (this.lane === lane) this.lane = null;
    this.lostTransaction = {
      error: w.errorResponse({
        severity: 'ERROR',
        code: SqlState.CONNECTION_FAILURE,
        message: `lost the connection to ${describeNode(lane.conn.node)}, which ran this READ ONLY transaction`,
        detail: endedBecause(lane.conn),
        hint: 'The session goes on: end the transaction (ROLLBACK) and run it again.',
      }),
      told: false,
    };
    // The requests still owed an answer get one each, as a server answers an aborted transaction.
    const owed = this.inFlight;
    this.inFlight = 0;
    this.doneCount += owed;
    for (let i = 0; i < owed; i++) this.host.writeClient(this.lostReply());
    this.host.settled();
    this.pump();
  }

  /** The lost transaction's 08006 the first time, then PostgreSQL's 25P02 for an aborted transaction. */
  private lostError(): Buffer {
    const t = this.lostTransaction!;
    if (!t.told) {
      t.told = true;
      return t.error;
    }
    return ABORTED_TRANSACTION;
  }

  /** The answer to one request of the lost transaction that does not end it: its error, and ReadyForQuery aborted. */
  private lostReply(): Buffer {
    return Buffer.concat([this.lostError(), w.readyForQuery(TxStatus.Failed)]);
  }

  /** A request in a lost transaction: answered here; COMMIT, END, ROLLBACK or ABORT ends it. */
  private answerLost(r: Request): void {
    if (r.end === 'copy') return;
    const t = this.lostTransaction!;
    let ends: Buffer | null = null;
    if (r.end === 'query') {
      const word = plainTransactionControl((r.sql ??= r.frames[0]!.toString('utf8', 5, r.frames[0]!.length - 1)));
      if (word !== undefined && word !== 'begin' && word !== 'start') ends = Buffer.alloc(0);
    } else if (r.end === 'sync') {
      const lead = leadingEnd(r.frames.map((f) => [f, 0, f.length] as const));
      if (lead !== undefined && lead.count === r.frames.length - 1 && plainTransactionControl(lead.sql) !== undefined) ends = lead.replies;
    }
    if (ends !== null) {
      this.lostTransaction = null;
      // Never told: the end of the transaction is where it hears of the loss (as of a COMMIT
      // that fails); else it ends as an aborted transaction does.
      this.host.writeClient(
        Buffer.concat(t.told ? [ends, w.commandComplete('ROLLBACK'), w.readyForQuery(TxStatus.Idle)] : [t.error, w.readyForQuery(TxStatus.Idle)]),
      );
    } else if (r.end === 'flush') {
      if (!t.told) this.host.writeClient(this.lostError());
    } else this.host.writeClient(this.lostReply());
    this.host.settled();
  }

  statementStale(lane: Lane, retried: boolean): void {
    this.host.stats.serverStatement(lane.conn.node.id, retried ? 'stale_retried' : 'stale_error');
  }

  laneLost(lane: Lane, _err: Error | undefined): void {
    if (this.terminated) return;
    if (!lane.conn.sawFatal) this.host.backendFailed(lane.conn.node.id, 'connection lost');
    if (lane === this.held && this.heldOnStandby && !this.pinned) return this.loseTransaction(lane);
    this.host.fail(
      new ProxyError(
        SqlState.CONNECTION_FAILURE,
        `backend ${describeNode(lane.conn.node)} closed the connection unexpectedly`,
        'FATAL',
        endedBecause(lane.conn),
      ),
    );
  }

  // ---- client frames ----

  readonly onFrame = (type: number, buf: Buffer, start: number, end: number): void => {
    if (this.terminated || this.ending) return;
    const frame = buf.subarray(start, end);
    switch (type) {
      case Frontend.Query:
        return this.submit({ frames: [frame], end: 'query' });
      case Frontend.Parse:
      case Frontend.Bind:
      case Frontend.Describe:
      case Frontend.Close:
      case Frontend.Execute:
        this.batch.push(frame);
        return;
      case Frontend.Flush:
      case Frontend.Sync: {
        this.batch.push(frame);
        const frames = this.batch;
        this.batch = [];
        return this.submit({ frames, end: type === Frontend.Sync ? 'sync' : 'flush' });
      }
      case Frontend.CopyData:
      case Frontend.CopyDone:
      case Frontend.CopyFail:
        return this.submit({ frames: [frame], end: 'copy' });
      case Frontend.FunctionCall:
        return this.submit({ frames: [frame], end: 'call' });
      case Frontend.Terminate:
        this.ending = true;
        this.endIfAnswered();
        return;
      default:
        this.terminated = true;
        this.host.protocolViolation(`invalid frontend message type ${type}`);
    }
  };

  /** After each client chunk: frames kept past it are copied (the chunk's buffer is reused). */
  endOfChunk(): void {
    if (this.batch.length > 0) this.batch = this.batch.map((f) => Buffer.from(f));
  }

  holdsClientChunk(): boolean {
    return this.batch.length > 0;
  }

  /** True while nothing is in flight or waiting. */
  get idle(): boolean {
    return this.inFlight === 0 && this.queue.length === 0 && this.batch.length === 0;
  }

  /** True while a BEGIN answered here waits for the transaction's first request. */
  get beginDeferred(): boolean {
    return this.beginPending;
  }

  /** True while the session holds a lane in a transaction (drain waits for it to end). */
  get inTransaction(): boolean {
    return this.beginPending || this.lostTransaction !== null || (this.held !== null && (this.held.status !== TxStatus.Idle || this.openBatch));
  }

  private submit(r: Request): void {
    if (this.queue.length === 0 && !this.acquiring && this.dispatch(r)) return;
    r.frames = r.frames.map((f) => Buffer.from(f));
    this.queue.push(r);
    if (this.queue.length >= MAX_QUEUED && !this.readPaused) {
      this.readPaused = true;
      this.host.pauseClient();
    }
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.acquiring && !this.terminated) {
      if (!this.dispatch(this.queue[0]!)) return;
      this.queue.shift();
    }
    if (this.readPaused && this.queue.length < MAX_QUEUED / 2) {
      this.readPaused = false;
      this.host.resumeClient();
    }
  }

  /** Sends a request now (true) or arranges for it to be sent later (false). */
  private dispatch(r: Request): boolean {
    if (this.lostTransaction !== null) {
      this.answerLost(r);
      return true;
    }
    if (r.end === 'copy') {
      const lane = this.held ?? this.lane;
      if (lane) {
        if (r.frames[0]![0] !== Frontend.CopyData) lane.conn.awaitingCopyData = false;
        lane.write(r.frames[0]!);
      }
      return true;
    }
    if (this.openBatch) return this.send(this.held!, r, true, (r.plan ??= this.plan(r)));
    if (r.end === 'query') {
      const sql = (r.sql ??= r.frames[0]!.toString('utf8', 5, r.frames[0]!.length - 1));
      if (this.host.admin && ADMIN_COMMAND.test(sql)) {
        const reply = this.host.admin(sql, { user: this.host.user, database: this.host.database, loadBalanceNode: this.lbNodeId });
        if (reply !== undefined) {
          const status = this.beginPending ? TxStatus.InTransaction : (this.held?.status ?? TxStatus.Idle);
          this.answerHere(Buffer.concat([reply, w.readyForQuery(status)]));
          return true;
        }
      }
      if (this.held === null && this.answersTransactionControl(sql)) return true;
      if (this.held === null && !this.beginPending && DISCARD_ALL.test(sql)) {
        this.discardAll();
        return true;
      }
    }
    const plan = (r.plan ??= this.plan(r));
    if (this.held) return this.send(this.held, r, false, plan);
    const node = plan.mode === Mode.Pipeline || plan.readOnly ? plan.node : this.primaryId;
    // Replies come back in order only from one lane: a request for another node (or one needing a
    // lane to itself) waits until the requests in flight are answered.
    if (this.lane !== null && (plan.mode !== Mode.Pipeline || this.lane.conn.node.id !== node || this.lane.reserved)) return false;
    if (this.lane !== null) return this.send(this.lane, r, false, plan);
    if (this.granted !== null) {
      const lane = this.granted;
      this.granted = null;
      return this.send(lane, r, false, plan);
    }
    const group = this.groupOf(node);
    this.waitNode = node;
    this.waitPlan = plan;
    this.waitGroup = group;
    const lane = plan.mode === Mode.Pipeline ? group.forPipeline(this, this.onLane) : group.forExclusive(this, this.onLane);
    if (lane === null) {
      this.acquiring = true;
      return false;
    }
    this.waitPlan = null;
    this.waitGroup = null;
    if (plan.mode !== Mode.Pipeline) this.hold(lane, group, plan);
    return this.send(lane, r, false, plan);
  }

  /**
   * DISCARD ALL from a session that holds nothing on a server (no transaction, not pinned): all
   * it would reset is the session's own here, its settings and its prepared statements, so
   * pgrouter resets those and answers. On a shared lane it would drop the statements of every
   * session there. Npgsql sends it when it takes a connection from its own pool.
   */
  private discardAll(): void {
    this.statements.clear();
    this.lastUnnamed = null;
    // Whatever the SETs still in flight come to, nothing of them is left after this.
    this.unconfirmed.length = 0;
    this.settings = new Map();
    this.confirmedSettings = new Map();
    this.settingsSql = '';
    this.answerHere(DISCARD_ALL_REPLY);
  }

  /** A reply made here, after the replies still due to the client. */
  private answerHere(reply: Buffer): void {
    const lane = this.held ?? this.lane;
    if (lane) {
      this.inFlight++;
      this.sentCount++;
      this.lane = lane;
      lane.local(this, reply);
    } else this.host.writeClient(reply);
  }

  /**
   * transaction_defer_begin: a plain BEGIN (or START TRANSACTION) outside a transaction is
   * answered here and sent in front of the next request, on the lane that request takes; a
   * COMMIT or ROLLBACK right after it is answered here too, and nothing reaches a server. True
   * when `sql` was answered.
   */
  private answersTransactionControl(sql: string): boolean {
    const word = plainTransactionControl(sql);
    if (word === undefined) return this.defersBeginWithOptions(sql);
    if (!this.beginPending && !this.host.deferBegin()) return false;
    if (word === 'begin' || word === 'start') {
      if (this.beginPending) return false; // a second BEGIN goes to the server, which warns about it
      this.beginPending = true;
      this.answerHere(transactionControlReply(word));
      return true;
    }
    if (!this.beginPending) return false;
    this.beginPending = false;
    this.beginText = null;
    this.beginReadOnly = false;
    this.answerHere(transactionControlReply(word));
    return true;
  }

  /**
   * A BEGIN with options (an isolation level, READ ONLY...) is deferred like a plain one and
   * goes out as the client wrote it, in front of the transaction's first request (on the
   * primary, or for READ ONLY where that request's plan puts it).
   */
  private defersBeginWithOptions(sql: string): boolean {
    // Every Query outside a transaction comes here: only a text that can be a BEGIN is classified.
    if (this.beginPending || !mayBeBegin(sql) || !this.host.deferBegin()) return false;
    const c = classify(sql);
    if (c.tx !== 'begin' || c.parts !== undefined) return false;
    this.beginPending = true;
    this.beginText = sql;
    this.beginReadOnly = c.readOnly;
    this.answerHere(transactionControlReply(beginWord(sql)));
    return true;
  }

  /** The text of a deferred BEGIN with options; null for a plain one. */
  private beginText: string | null = null;
  /** The deferred BEGIN is READ ONLY (see Classification.readOnly). */
  private beginReadOnly = false;

  /** The request waiting for a lane of `waitGroup` (only one at a time: `acquiring` holds the rest back). */
  private waitNode = 0;
  private waitPlan: Plan | null = null;
  private waitGroup: LaneGroup | null = null;

  /** A lane for the waiting request, or why none could be opened. One function for the session's life: no closure per request. */
  private readonly onLane = (lane: Lane | Error): void => {
    const node = this.waitNode;
    const plan = this.waitPlan!;
    const group = this.waitGroup!;
    this.waitPlan = null;
    this.waitGroup = null;
    this.acquiring = false;
    if (lane instanceof Error) {
      if (plan.moved === undefined && (plan.mode === Mode.Pipeline || plan.readOnly)) {
        // A replica that cannot be reached: this read goes to the primary instead. A balanced
        // read for a primary that cannot be reached (restarting, before its health check says
        // so) goes to a replica that may serve reads, if there is one.
        const other = node !== this.primaryId ? this.primaryId : plan.balanced ? this.replicaForRead() : undefined;
        if (other !== undefined) {
          if (node !== this.primaryId) this.host.backendFailed(node, lane.message);
          plan.node = other;
          plan.moved = true;
          this.pump();
          return;
        }
      }
      const r = this.queue[0];
      if (r !== undefined && r.end !== 'flush' && this.held === null && !this.beginPending && !this.openBatch) {
        // The session holds nothing a server keeps (no transaction, no pinned state): this
        // request fails alone, as it would on a server that went away under it, and the session
        // goes on. A primary that restarts ends no session of this mode.
        this.queue.shift();
        this.host.writeClient(
          Buffer.concat([
            w.errorResponse({
              severity: 'ERROR',
              // A server that refused the login says why (53300 when it is full, say).
              code: lane instanceof BackendStartupError && lane.fields.code !== '' ? lane.fields.code : SqlState.CONNECTION_FAILURE,
              message: lane.message,
              hint: 'The session goes on: the statement can be sent again once the node is back.',
            }),
            w.readyForQuery(TxStatus.Idle),
          ]),
        );
        this.host.settled();
        this.pump();
        return;
      }
      this.host.fail(new ProxyError(SqlState.CONNECTION_FAILURE, lane.message, 'FATAL'));
      return;
    }
    if (this.terminated) {
      if (lane.holder === this) group.release(lane);
      return;
    }
    if (plan.mode !== Mode.Pipeline) this.hold(lane, group, plan);
    else this.granted = lane;
    this.pump();
  };

  private hold(lane: Lane, group: LaneGroup, plan: Plan): void {
    this.held = lane;
    this.heldGroup = group;
    this.heldOnStandby = plan.readOnly && lane.conn.node.id !== this.primaryId;
  }

  // plan()'s working state, kept in fields so that a request costs no closure or array of its own.
  private planMode = Mode.Pipeline;
  private planPrimary = false;
  private planCategory = 'write';
  private readonly planKinds: Array<Classification['kind']> = [];
  private planChanges: SettingChange[] | null = null;
  /** The request being planned writes (kept only for disable_load_balance_on_write = always or trans_transaction; see `wrote`). */
  private planWrites = false;
  /**
   * The session has written: with disable_load_balance_on_write = always anywhere, with
   * trans_transaction in a transaction (its later READ ONLY transactions then stay on the primary).
   */
  private wrote = false;
  /**
   * The request opens a READ ONLY transaction (its first statement says so, or the deferred
   * BEGIN did); `planReadWrite`: a statement of it makes the transaction SERIALIZABLE, or READ
   * WRITE again, which a standby cannot run, or is one a standby refuses (readOnlyTransactionReason).
   */
  private planReadOnly = false;
  private planReadWrite = false;

  /** Where a request goes and how it may share its lane; also records the client's statements. */
  private plan(r: Request): Plan {
    const s = this.host.routeSettings();
    this.planMode = r.end === 'flush' || r.end === 'call' ? Mode.Exclusive : Mode.Pipeline;
    this.planPrimary = r.end !== 'sync' && r.end !== 'query';
    this.planCategory = 'write';
    this.planReadOnly = this.held === null && this.beginPending && this.beginReadOnly;
    this.planReadWrite = false;
    const kinds = this.planKinds;
    kinds.length = 0;
    // Built by push (a packed array; Array.prototype.fill is a slow builtin on this path).
    const named: Array<NamedFrame | null> = [];
    for (let i = 0; i < r.frames.length; i++) named.push(null);
    for (let i = 0; i < r.frames.length; i++) {
      const f = r.frames[i]!;
      const type = f[0];
      if (type === Frontend.Query) {
        const sql = (r.sql ??= f.toString('utf8', 5, f.length - 1));
        this.consider(s, classify(sql), sql);
        continue;
      }
      if (type !== Frontend.Parse && type !== Frontend.Bind && type !== Frontend.Describe && type !== Frontend.Close) continue;
      const span = statementName(f, 0, f.length);
      if (type === Frontend.Parse) {
        const st = span === null ? null : this.parsed(f, span);
        if (span === null || st === null) {
          this.planPrimary = true;
          continue;
        }
        if (span.name !== '') this.statements.set(span.name, st);
        named[i] = { span, key: st.key };
        this.consider(s, st.c, st.sql, st.mode);
      } else if (span !== null && span.name === '') {
        if (type !== Frontend.Close) named[i] = { span };
      } else if (span !== null) {
        named[i] = { span };
        if (type === Frontend.Close) continue;
        const st = this.statements.get(span.name);
        if (st) this.consider(s, st.c, st.sql, st.mode);
        else this.planPrimary = true;
      }
    }
    r.named = named;
    // A deferred BEGIN goes in front of this request: it opens a transaction, on the primary.
    const inTransaction = this.held !== null || this.beginPending;
    if (this.planChanges !== null) {
      // A SET inside a transaction (or a Flush-ended batch) lasts only if the transaction
      // commits: the session keeps its lane instead, as for any other session state.
      if (inTransaction || this.openBatch || r.end !== 'sync' && r.end !== 'query') this.planMode = Mode.Pin;
      else r.changes = this.planChanges;
      this.planChanges = null;
    }
    // disable_load_balance_on_write = always: after the session's first write, its reads stay on
    // the primary (in a transaction they are there anyway).
    if (this.planWrites) {
      this.planWrites = false;
      this.wrote = true;
    } else if (this.wrote && !this.planPrimary && s.disableLbOnWrite === 'always') {
      this.planPrimary = true;
      this.planCategory = 'writing_transaction';
    }
    const mode = this.beginPending && this.planMode === Mode.Pipeline ? Mode.Exclusive : (this.planMode as Mode);
    if (mode === Mode.Pin) this.planPrimary = true;
    const primary = this.planPrimary;
    // A READ ONLY transaction can write nothing, wherever it runs: it goes where a read would
    // (unless disable_load_balance_on_write = always, or trans_transaction after a write in a
    // transaction, keeps this session's reads in transactions on the primary).
    const readOnly =
      this.planReadOnly &&
      !this.planReadWrite &&
      mode === Mode.Exclusive &&
      s.readOnlyTransactions &&
      !(this.wrote && (s.disableLbOnWrite === 'always' || s.disableLbOnWrite === 'trans_transaction'));
    const node = this.held !== null ? this.held.conn.node.id : readOnly || !(primary || inTransaction) ? this.balanceNode(s) : this.primaryId;
    const reason = this.pinned ? 'pinned_session' : readOnly ? 'load_balance' : inTransaction ? 'transaction' : primary ? this.planCategory : 'load_balance';
    for (const k of kinds) {
      this.host.stats.statement(node, k);
      this.host.stats.routed(node, reason);
    }
    return { node, mode, balanced: readOnly || (!primary && !inTransaction && s.loadBalance), readOnly: readOnly && node !== this.primaryId };
  }

  /** A replica a read may go to (up, weight above 0, within the lag thresholds), by weight. */
  private replicaForRead(): number | undefined {
    const primary = this.primaryId;
    const s = this.host.routeSettings();
    return weightedChoice(this.host.cluster().nodes, Math.random, (n) => n.id !== primary && readsMayGo(n, primary, s))?.id;
  }

  /** One statement of the request being planned: its mode, and whether it must run on the primary. */
  private consider(s: RouteSettings, c: Classification, sql: string, known?: Mode): void {
    this.planKinds.push(c.kind);
    const m = known ?? statementMode(c, sql);
    if (m > this.planMode) this.planMode = m;
    if (mayChangeCatalogFacts(c)) catalogCache.forget(this.facts);
    if (c.setting !== undefined) (this.planChanges ??= []).push({ setting: c.setting, sql: settingText(sql) });
    else if (c.parts !== undefined)
      for (const p of c.parts) if (p.setting !== undefined && p.setting.reset) (this.planChanges ??= []).push({ setting: p.setting, sql: '' });
    if (
      !this.wrote &&
      (s.disableLbOnWrite === 'always' ||
        (s.disableLbOnWrite === 'trans_transaction' && (this.held !== null || this.beginPending || this.planMode !== Mode.Pipeline))) &&
      writesForReads(c, s, this.catalog)
    )
      this.planWrites = true;
    if (this.held === null && this.planKinds.length === 1 && c.readOnly && (c.tx === 'begin' || this.beginPending)) this.planReadOnly = true;
    if (this.planReadOnly && (c.reason.endsWith('SERIALIZABLE') || c.reason === READ_WRITE_AGAIN)) this.planReadWrite = true;
    // The first request of a READ ONLY transaction chooses where it runs: a statement a standby
    // refuses (pg_current_wal_lsn(), an unlogged table) or primary_routing_query_pattern_list
    // sends to the primary keeps the transaction there. A later one runs where the transaction is.
    if (this.planReadOnly && this.held === null && c.tx === 'none' && readOnlyTransactionReason(c, sql, s, this.catalog) !== null)
      this.planReadWrite = true;
    // Inside a transaction everything runs where it began: no balancing rule to ask.
    if (this.held !== null || this.beginPending) return;
    if (c.target !== 'either') {
      this.planPrimary = true;
      this.planCategory = c.target === 'all' ? 'session_command' : 'write';
      return;
    }
    const why = primaryReason(c, sql, NO_STATE, s, this.catalog);
    if (why === NEEDS_CATALOG_LOOKUP) {
      this.planPrimary = true;
      this.planCategory = 'catalog_lookup';
      this.lookUp(c);
    } else if (why !== null) {
      this.planPrimary = true;
      this.planCategory = reasonCategory(why);
    }
  }

  /** The last unnamed Parse this session sent, decoded: clients repeat the same few texts. */
  private lastUnnamed: { body: Buffer; st: ClientStatement } | null = null;

  /**
   * A Parse's text, key, classification and mode, or null when it is malformed. An unnamed Parse
   * equal byte for byte to the session's previous one reuses what that one decoded.
   */
  private parsed(f: Buffer, span: NameSpan): ClientStatement | null {
    const last = this.lastUnnamed;
    const unnamed = span.name === '';
    const from = span.nul + 1;
    if (unnamed && last !== null && last.body.length === f.length - from && f.compare(last.body, 0, last.body.length, from) === 0) return last.st;
    const sql = parseText(f, 0, f.length, span);
    if (sql === null) return null;
    const c = classify(sql);
    const st: ClientStatement = { key: parseKey(f, 0, f.length, span), c, sql, mode: statementMode(c, sql) };
    if (unnamed) this.lastUnnamed = { body: Buffer.from(f.subarray(from)), st };
    return st;
  }

  /**
   * A node for a read: the session's load-balance node, or with statement_level_load_balance a
   * weighted choice for each statement; a node that is down or over the lag thresholds is skipped.
   */
  private balanceNode(s: RouteSettings): number {
    const primary = this.primaryId;
    if (!s.loadBalance) return primary;
    if (!s.statementLevel) {
      const n = this.host.cluster().node(this.lbNodeId);
      return n !== undefined && readsMayGo(n, primary, s) ? n.id : primary;
    }
    return weightedChoice(this.host.cluster().nodes, Math.random, (n) => readsMayGo(n, primary, s))?.id ?? primary;
  }

  /** Writes a request to `lane`, renaming the client's prepared statements to the lane's. */
  private send(lane: Lane, r: Request, continuing: boolean, plan?: Plan): boolean {
    // On a standby's READ ONLY transaction, what would pin the session there is refused instead.
    const refused = plan?.mode === Mode.Pin && this.heldOnStandby && !continuing && this.refuseOnStandby(r);
    if (plan?.mode === Mode.Pin && !this.pinned && !refused) {
      this.pinned = true;
      this.held = lane;
      this.heldGroup!.pin(lane);
    }
    if (r.end === 'flush') this.openBatch = true;
    else if (r.end === 'sync') this.openBatch = false;
    let opens: OpensWith = 'none';
    const beginText = this.beginText;
    if (this.beginPending && !continuing) {
      this.beginPending = false;
      this.beginText = null;
      this.beginReadOnly = false;
      opens = r.end === 'query' || r.end === 'call' ? 'begin+sync' : 'begin';
      this.host.stats.statement(lane.conn.node.id, 'other');
    }
    const out: Buffer[] = [];
    let strip = refused && r.end !== 'query' ? 1 : 0;
    let answered = 0;
    let registered: string[] | null = null;
    let leading = !continuing;
    // The unnamed-statement cache serves autocommit requests on shared lanes only: a stale cached
    // statement can then be replaced and the request sent again without the client noticing (see
    // Lane); in a transaction the server's error would have aborted it.
    const cacheUnnamed =
      !continuing && r.end === 'sync' && plan?.mode === Mode.Pipeline && this.held === null && this.host.cacheUnnamedStatements();
    /** The lane's statement standing for the unnamed one at this point of the request, if any. */
    let unnamedAs: string | null = null;
    /** A cached statement used instead of the client's unnamed Parse, and whether the request names a statement of its own. */
    let cached: { key: string; name: string } | null = null;
    let clientNamed = false;
    // Statements this request uses but the lane has never parsed: parse them first.
    let parsedHere: Set<string> | null = null;
    /** Parses sent under a lane name (for pgrouter_server_statements_total). */
    let parsed = 0;
    if (!continuing && r.end === 'sync' && lane.statements.size > MAX_LANE_STATEMENTS) {
      const evicted = this.evict(lane, r, out);
      strip += evicted;
      if (evicted > 0) this.host.stats.serverStatement(lane.conn.node.id, 'evicted', evicted);
    }
    const named = r.named!;
    for (let i = 0; i < r.frames.length; i++) {
      const n = named[i];
      const type = r.frames[i]![0];
      if (!n || type === Frontend.Close || n.span.name === '') continue;
      if (type === Frontend.Parse) (parsedHere ??= new Set()).add(n.span.name);
      else if (parsedHere === null || !parsedHere.has(n.span.name)) {
        const st = this.statements.get(n.span.name);
        if (st && !lane.statements.has(st.key)) {
          const name = lane.newStatementName();
          lane.statements.set(st.key, name);
          (registered ??= []).push(st.key);
          parsed++;
          out.push(parseMessage(name, st.key));
          strip++;
          leading = false;
        }
      }
    }
    for (let i = 0; i < r.frames.length; i++) {
      const f = r.frames[i]!;
      const type = f[0];
      const n = named[i];
      if (!n) {
        out.push(f);
        if (type !== Frontend.Sync && type !== Frontend.Flush) leading = false;
        continue;
      }
      const span = n.span;
      if (span.name === '') {
        if (type !== Frontend.Parse) {
          out.push(unnamedAs !== null ? withStatementName(f, 0, f.length, span, unnamedAs) : f);
          leading = false;
          continue;
        }
        unnamedAs = null;
        const key = n.key!;
        const have = cacheUnnamed ? lane.statements.get(key) : undefined;
        if (have !== undefined && leading) {
          answered++; // the lane keeps this text as a statement of its own: ParseComplete from here
          unnamedAs = have;
          cached = { key, name: have };
          continue;
        }
        if (have === undefined && cacheUnnamed && lane.seenUnnamed(key)) {
          // Seen here before: parse it under a name of the lane's, and use that.
          const name = lane.newStatementName();
          lane.statements.set(key, name);
          (registered ??= []).push(key);
          parsed++;
          out.push(withStatementName(f, 0, f.length, span, name));
          unnamedAs = name;
        } else out.push(f);
        leading = false;
        continue;
      }
      clientNamed = true;
      if (type === Frontend.Parse) {
        const key = n.key!;
        if (leading && lane.statements.has(key)) {
          answered++; // already parsed on this lane: ParseComplete from here
          continue;
        }
        const name = lane.newStatementName();
        lane.statements.set(key, name);
        (registered ??= []).push(key);
        parsed++;
        out.push(withStatementName(f, 0, f.length, span, name));
      } else if (type === Frontend.Close) {
        this.statements.delete(span.name);
        out.push(withStatementName(f, 0, f.length, span, NO_STATEMENT));
      } else {
        const st = this.statements.get(span.name);
        const name = st ? lane.statements.get(st.key) : undefined;
        out.push(name !== undefined ? withStatementName(f, 0, f.length, span, name) : f);
      }
      leading = false;
    }
    const prefix = answered > 0 ? Buffer.concat(new Array<Buffer>(answered).fill(PARSE_COMPLETE)) : null;
    if (answered > 0) this.host.stats.serverStatement(lane.conn.node.id, 'hit', answered);
    if (parsed > 0) this.host.stats.serverStatement(lane.conn.node.id, 'parsed', parsed);
    if (continuing) {
      // The rest of a batch after a Flush: its replies belong to the request already in flight.
      if (strip > 0) lane.stripMore(strip);
      for (const b of out) lane.write(b);
      return true;
    }
    this.inFlight++;
    this.sentCount++;
    this.lane = lane;
    // A request that only uses unnamed statements, one of them from the cache, can be sent again as the client wrote it.
    const retry = cached !== null && answered === 1 && !clientNamed ? { ...cached, bytes: Buffer.concat(r.frames) } : null;
    // The session's settings go first where the lane has others (or none of them).
    if (lane.settings !== this.settingsSql) lane.applySettings(this.settingsSql);
    lane.request(
      this,
      out,
      strip,
      prefix,
      registered,
      retry,
      r.end === 'sync' || r.end === 'query',
      opens,
      opens === 'none' ? null : beginText,
      refused && r.end !== 'query',
    );
    if (r.changes !== undefined) {
      this.unconfirmed.push({ seq: this.sentCount, changes: r.changes });
      this.applyChanges(this.settings, r.changes);
      this.settingsSql = joinSettings(this.settings);
      lane.settings = this.settingsSql;
    }
    return true;
  }

  /**
   * A request that would leave session state behind (SQL PREPARE, a SET, a session advisory lock,
   * a cursor WITH HOLD...) in a READ ONLY transaction that runs on a standby: the session could
   * then never leave that standby, nor write. The standby fails the transaction instead with
   * pgrouter's error (a DO block that raises it), so the client and the server agree on its state.
   */
  private refuseOnStandby(r: Request): boolean {
    if (r.end !== 'query' && r.end !== 'sync' && r.end !== 'flush') return false;
    const named = r.named!;
    for (let i = 0; i < r.frames.length; i++) {
      const n = named[i];
      // The server never sees these Parses: the names stay free, as after any failed Parse.
      if (n && r.frames[i]![0] === Frontend.Parse && n.span.name !== '') this.statements.delete(n.span.name);
    }
    // A Query becomes the DO block's Query. A batch becomes its Parse, Bind and Execute, whose
    // ParseComplete and BindComplete the lane drops (send asks it to), then the client's Sync or
    // Flush: the client sees the error where its batch began, and the server skips the rest of
    // the batch up to the Sync, as after any error.
    r.frames = r.end === 'query' ? [STANDBY_STATE_REFUSAL] : [STANDBY_REFUSAL_PARSE, STANDBY_REFUSAL_BIND, STANDBY_REFUSAL_EXECUTE, r.frames[r.frames.length - 1]!];
    r.named = r.frames.map(() => null);
    return true;
  }

  /** Applies SET and RESET statements to a settings map, in order. */
  private applyChanges(to: Map<string, string>, changes: readonly SettingChange[]): void {
    for (const { setting, sql } of changes) {
      if (setting.name === '') to.clear();
      else {
        to.delete(setting.name);
        if (!setting.reset) to.set(setting.name, sql);
      }
    }
  }

  /**
   * The request carrying the oldest unconfirmed settings changes was answered. A failed one
   * changed nothing on the server (the SET failed, or a later error in its batch rolled it back):
   * the settings are worked out again without it, and the lane it ran on is set afresh next time.
   */
  private confirmChanges(lane: Lane, failed: boolean): void {
    const done = this.unconfirmed.shift()!;
    if (!failed) {
      this.applyChanges(this.confirmedSettings, done.changes);
      return;
    }
    const now = new Map(this.confirmedSettings);
    for (const u of this.unconfirmed) this.applyChanges(now, u.changes);
    this.settings = now;
    this.settingsSql = joinSettings(now);
    lane.forgetSettings();
  }

  /**
   * Closes the lane's oldest server-side statements (those this request does not use) until it
   * holds three quarters of MAX_LANE_STATEMENTS; the Closes go in front of the request and their
   * CloseComplete replies are dropped. Returns how many were added.
   */
  private evict(lane: Lane, r: Request, out: Buffer[]): number {
    const used = new Set<string>();
    const named = r.named!;
    for (let i = 0; i < named.length; i++) {
      const n = named[i];
      if (!n || r.frames[i]![0] === Frontend.Close) continue;
      const key = n.key ?? this.statements.get(n.span.name)?.key;
      if (key !== undefined) used.add(key);
    }
    let n = 0;
    for (const [key, name] of lane.statements) {
      if (lane.statements.size <= (MAX_LANE_STATEMENTS * 3) / 4) break;
      if (used.has(key)) continue;
      lane.statements.delete(key);
      out.push(closeStatement(name));
      n++;
    }
    return n;
  }

  /** Looks up the catalog facts a statement's routing needs, in the background (it went to the primary meanwhile). */
  private lookUp(c: Classification): void {
    if (this.lookingUp) return;
    const want = catalogCache.missing(this.facts, c, this.host.routeSettings(), null);
    if (want === undefined) return;
    this.lookingUp = true;
    const fresh = freshFacts();
    void catalogCache
      .lookUp(
        this.facts,
        want,
        (sql) => laneRows(this.groupOf(this.primaryId), sql),
        fresh,
      )
      .then(() => {
        this.lookingUp = false;
        if (fresh.error !== undefined) this.host.logger().warn({ err: fresh.error }, 'catalog lookup failed');
      });
  }

  /** Cancels the session's statement if it is the one its lane is running. */
  cancel(): Promise<void> {
    const lane = this.lane ?? this.held;
    return lane && (lane.runningFor(this) || lane === this.held) ? sendCancel(lane.conn, this.host.connectTimeoutMs()) : Promise.resolve();
  }

  /** The session ended: a held lane goes back (rolled back and reset when needed). */
  close(): void {
    this.terminated = true;
    this.queue.length = 0;
    const lane = this.held;
    const group = this.heldGroup;
    this.held = null;
    this.heldGroup = null;
    this.heldOnStandby = false;
    if (lane && group) {
      if (lane.inFlight > 0) {
        // Replies still due on it: it cannot be reset cleanly.
        this.host.pool.destroy(lane.conn);
        lane.closed = true;
        group.abandon(lane);
      } else if (this.pinned || lane.status !== TxStatus.Idle || this.openBatch) group.abandon(lane);
      else group.release(lane);
    }
  }
}

/** A node a read may be balanced to: usable, and the primary or a replica within the lag thresholds. */
function readsMayGo(n: ClusterNode, primary: number, s: RouteSettings): boolean {
  return isUsable(n) && (n.id === primary || lagOverThreshold(n.lag, s) === 0);
}

/** A SET statement's text as it is replayed: without its trailing semicolons. */
function settingText(sql: string): string {
  return sql.replace(/[\s;]+$/, '').trim();
}

/** A session's settings as the text that sets them on a lane: one statement per line. */
function joinSettings(settings: ReadonlyMap<string, string>): string {
  let out = '';
  for (const sql of settings.values()) out = out === '' ? sql : `${out};\n${sql}`;
  return out;
}

const NO_STATE = { inTransaction: false, writing: false, pinned: false, tempTables: new Set<string>(), written: new Set<string>() };
