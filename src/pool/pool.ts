// The backend connection pool: idle connections kept per (node, user, database, startup
// parameter names), handed out as leases and taken back after a reset. Connections to a node
// are opened only when a session first needs that node.

import type { Logger } from 'pino';
import { ServerConnection, type BackendCredentials, type ServerState } from '../backend/connection.ts';
import { runInternal } from '../backend/internal-query.ts';
import type { BackendNode } from '../backend/node.ts';
import { TxStatus } from '../protocol/codes.ts';
import { NodeStats } from './node-stats.ts';

export interface PoolOptions {
  readonly connectTimeoutMs: number;
  readonly ssl: boolean;
  /** Pgpool-II's connection_cache: keep connections for the next client with the same user and database. */
  readonly connectionCache: boolean;
  /** Pgpool-II's reset_query_list, run before a connection goes back to the idle list. */
  readonly resetQueries: readonly string[];
  /** Most idle connections kept per node (num_init_children × max_pool). */
  readonly maxIdlePerNode: number;
  /** Idle connections older than this many seconds are closed (0: never). */
  readonly connectionLifeTime: number;
}

/** What a session asks the pool for. */
export interface LeaseRequest {
  readonly node: BackendNode;
  readonly user: string;
  readonly database: string;
  readonly params: ReadonlyMap<string, string>;
  readonly credentials: BackendCredentials;
  /** Open a new connection even if a cached one is free (the backend must check the password). */
  readonly fresh?: boolean;
}

/** A read-only description of one backend connection (SHOW pool_pools, pool_processes). */
export interface ConnectionInfo {
  readonly id: number;
  readonly nodeId: number;
  readonly user: string;
  readonly database: string;
  /** The backend's process id. */
  readonly pid: number;
  /** Times the connection has been handed to a session. */
  readonly leases: number;
  /** Epoch ms. */
  readonly createdAt: number;
  readonly lastUsedAt: number;
  readonly state: ServerState;
  /** Last ReadyForQuery status byte. */
  readonly txStatus: number;
  /** A request is in flight. */
  readonly busy: boolean;
  /** Whoever receives its replies while leased (the session), else null. */
  readonly holder: unknown;
}

/** Databases whose connections are never cached: a held connection blocks CREATE DATABASE from them. */
const UNCACHED_DATABASES = new Set(['template0', 'template1']);

/** Startup parameters that cannot be changed with SET once connected. */
const FIXED_PARAMS = new Set(['options', 'replication']);

export function poolKey(r: { node: BackendNode; user: string; database: string; params: ReadonlyMap<string, string> }): string {
  const fixed: string[] = [];
  for (const [k, v] of r.params) fixed.push(FIXED_PARAMS.has(k) ? `${k}=${v}` : k);
  fixed.sort();
  return `${r.node.id}\0${r.user}\0${r.database}\0${fixed.join('\0')}`;
}

/** Quotes a value as a SQL string literal. */
function literal(v: string): string {
  return `'${v.replace(/'/g, "''")}'`;
}

function ident(v: string): string {
  return `"${v.replace(/"/g, '""')}"`;
}

export class Pool {
  private readonly idle = new Map<string, ServerConnection[]>();
  private readonly idleByNode = new Map<number, number>();
  /** Every open connection, leased or idle. */
  readonly all = new Set<ServerConnection>();

  constructor(
    private options: PoolOptions,
    private readonly log: Logger,
    /** Told of every ErrorResponse severity a backend sends (SHOW pool_backend_stats), query latencies and lease waits. */
    private readonly stats: NodeStats = new NodeStats(),
  ) {}

  /** Bytes of connections already closed, per node id. */
  private readonly closedBytes = new Map<number, { received: number; sent: number }>();

  /** Bytes received from and sent to each node's backends, connections closed or open, per node id. */
  byteTotals(): Map<number, { received: number; sent: number }> {
    const out = new Map<number, { received: number; sent: number }>();
    for (const [id, b] of this.closedBytes) out.set(id, { ...b });
    for (const c of this.all) addBytes(out, c);
    return out;
  }

  /** Takes a connection out of `all`, keeping its byte counts. */
  private forget(c: ServerConnection): void {
    if (this.all.delete(c)) addBytes(this.closedBytes, c);
  }

  /** Applies reloadable options (reset_query_list, cache size) to later leases and releases. */
  reconfigure(options: PoolOptions): void {
    this.options = options;
  }

  /** Every open connection, leased or idle, described (a snapshot). */
  connections(): ConnectionInfo[] {
    return [...this.all].map((c) => ({
      id: c.id,
      nodeId: c.node.id,
      user: c.user,
      database: c.database,
      pid: c.pid,
      leases: c.leases,
      createdAt: c.createdAt,
      lastUsedAt: c.lastUsedAt,
      state: c.state,
      txStatus: c.txStatus,
      busy: c.owed > 0,
      holder: c.sink,
    }));
  }

  /** Idle connections, per node id. */
  idleCount(nodeId: number): number {
    return this.idleByNode.get(nodeId) ?? 0;
  }

  /** Connections being reset after their client left, per pool key. */
  private readonly resetting = new Map<string, number>();
  /** Leases waiting for one of those resets to finish, per pool key. */
  private readonly waiters = new Map<string, Array<(c: ServerConnection | null) => void>>();

  /**
   * A connection for the request: a cached one (its parameters brought in line), one whose reset
   * is about to finish (a client that reconnects at once gets its old backend instead of a new
   * one: no fork, no authentication), or a new one.
   */
  async lease(r: LeaseRequest): Promise<ServerConnection> {
    const t0 = performance.now();
    const c = await this.obtain(r);
    this.stats.metersOf(c.node.id).connectionWait.observe((performance.now() - t0) / 1000);
    return c;
  }

  private async obtain(r: LeaseRequest): Promise<ServerConnection> {
    const key = poolKey(r);
    let list = r.fresh ? undefined : this.idle.get(key);
    if (!r.fresh && (!list || list.length === 0) && (this.resetting.get(key) ?? 0) > (this.waiters.get(key)?.length ?? 0)) {
      const handed = await new Promise<ServerConnection | null>((resolve) => {
        let q = this.waiters.get(key);
        if (!q) this.waiters.set(key, (q = []));
        q.push(resolve);
      });
      if (handed) {
        handed.state = 'leased';
        if (await this.align(handed, r.params)) return this.leased(handed);
        this.destroy(handed);
      }
      list = this.idle.get(key);
    }
    while (list && list.length > 0) {
      // forgetIdle takes it off the list and the node's idle count (a pop here first would leave
      // the count too high, and once it reached max_idle every release evicted a good connection).
      const c = list[list.length - 1]!;
      this.forgetIdle(c);
      if (c.broken || c.state === 'closed') continue;
      c.state = 'leased';
      if (await this.align(c, r.params)) return this.leased(c);
      this.destroy(c);
    }
    const c = await ServerConnection.open({
      node: r.node,
      user: r.user,
      database: r.database,
      params: r.params,
      credentials: r.credentials,
      connectTimeoutMs: this.options.connectTimeoutMs,
      ssl: this.options.ssl,
    });
    this.all.add(c);
    c.onError = (severity) => this.stats.serverError(c.node.id, severity);
    c.latency = this.stats.metersOf(c.node.id).queryLatency;
    c.state = 'leased';
    this.log.debug({ conn: c.tag, pid: c.pid }, 'backend connection opened');
    return this.leased(c);
  }

  private leased(c: ServerConnection): ServerConnection {
    c.leases++;
    c.lastUsedAt = Date.now();
    return c;
  }

  /** SETs the startup parameters whose values differ from the ones the connection was opened with. */
  private async align(c: ServerConnection, want: ReadonlyMap<string, string>): Promise<boolean> {
    const sets: string[] = [];
    for (const [k, v] of want) {
      if (FIXED_PARAMS.has(k)) continue;
      if (c.startupParams.get(k) !== v) sets.push(`SET ${ident(k)} TO ${literal(v)}`);
    }
    if (sets.length === 0) return true;
    try {
      return await runInternal(c, sets, this.options.connectTimeoutMs);
    } catch {
      return false;
    }
  }

  /**
   * Takes a connection back from a session. A clean one is reset with reset_query_list and
   * kept for the next client; one that is broken, mid-request or in COPY is closed.
   */
  release(c: ServerConnection): void {
    c.sink = null;
    c.lastUsedAt = Date.now();
    const cacheable =
      this.options.connectionCache &&
      !c.broken &&
      c.state === 'leased' &&
      c.owed === 0 &&
      !UNCACHED_DATABASES.has(c.database);
    if (!cacheable) {
      this.destroy(c);
      return;
    }
    c.state = 'resetting';
    const key = poolKey({ node: c.node, user: c.user, database: c.database, params: c.startupParams });
    this.resetting.set(key, (this.resetting.get(key) ?? 0) + 1);
    const statements = this.options.resetQueries.filter(
      (q) => !(c.txStatus === TxStatus.Idle && /^\s*abort\s*;?\s*$/i.test(q)),
    );
    const done = (ok: boolean): void => {
      const n = (this.resetting.get(key) ?? 1) - 1;
      if (n > 0) this.resetting.set(key, n);
      else this.resetting.delete(key);
      const clean = ok && c.txStatus === TxStatus.Idle && !c.broken && c.state === 'resetting';
      const q = this.waiters.get(key);
      const waiter = q?.shift();
      if (q && q.length === 0) this.waiters.delete(key);
      if (!clean) {
        this.destroy(c);
        waiter?.(null);
      } else if (waiter) waiter(c);
      else this.keep(c);
    };
    runInternal(c, statements, this.options.connectTimeoutMs).then(done, () => done(false));
  }

  private keep(c: ServerConnection): void {
    const nodeIdle = this.idleCount(c.node.id);
    if (nodeIdle >= this.options.maxIdlePerNode) this.evictOldest(c.node.id);
    c.state = 'idle';
    c.onIdleClose = (x) => {
      this.forgetIdle(x);
      this.forget(x);
    };
    const key = poolKey({ node: c.node, user: c.user, database: c.database, params: c.startupParams });
    let list = this.idle.get(key);
    if (!list) this.idle.set(key, (list = []));
    list.push(c);
    this.idleByNode.set(c.node.id, this.idleCount(c.node.id) + 1);
  }

  private forgetIdle(c: ServerConnection): void {
    c.onIdleClose = null;
    const key = poolKey({ node: c.node, user: c.user, database: c.database, params: c.startupParams });
    const list = this.idle.get(key);
    if (!list) return;
    const i = list.indexOf(c);
    if (i >= 0) {
      list.splice(i, 1);
      this.idleByNode.set(c.node.id, this.idleCount(c.node.id) - 1);
    }
    if (list.length === 0) this.idle.delete(key);
  }

  private evictOldest(nodeId: number): void {
    let oldest: ServerConnection | undefined;
    for (const list of this.idle.values())
      for (const c of list) if (c.node.id === nodeId && (!oldest || c.lastUsedAt < oldest.lastUsedAt)) oldest = c;
    if (oldest) {
      this.forgetIdle(oldest);
      this.destroy(oldest);
    }
  }

  /** Closes a connection for good. */
  destroy(c: ServerConnection): void {
    this.forget(c);
    c.close();
  }

  /** The maintenance tick: closes idle connections past connection_life_time. */
  tick(now: number): void {
    const life = this.options.connectionLifeTime;
    if (life <= 0) return;
    for (const list of [...this.idle.values()])
      for (const c of [...list])
        if (now - c.lastUsedAt > life * 1000) {
          this.forgetIdle(c);
          this.destroy(c);
        }
  }

  /** Closes every connection (shutdown). */
  closeAll(): void {
    for (const q of this.waiters.values()) for (const w of q) w(null);
    this.waiters.clear();
    for (const c of [...this.all]) {
      this.forget(c);
      c.close();
    }
    this.idle.clear();
    this.idleByNode.clear();
  }
}

function addBytes(into: Map<number, { received: number; sent: number }>, c: ServerConnection): void {
  const b = c.bytes();
  const t = into.get(c.node.id);
  if (t) {
    t.received += b.received;
    t.sent += b.sent;
  } else into.set(c.node.id, b);
}
