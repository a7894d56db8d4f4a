// Per-node counters: statements sent to each node by kind (Pgpool-II's select_cnt and
// pool_backend_stats columns), the PANIC/FATAL/ERROR replies each node sent, and pgrouter's own
// figures: query latency, time to get a backend connection, and routing decisions by reason.

import type { StatementKind } from '../router/statement.ts';
import { BucketCounts, QUERY_SECONDS_BUCKETS } from '../util/bucket-counts.ts';

export interface NodeCounters {
  select: number;
  insert: number;
  update: number;
  delete: number;
  ddl: number;
  other: number;
  panic: number;
  fatal: number;
  error: number;
}

/** pgrouter's per-node figures beyond Pgpool-II's columns. */
export interface NodeMeters {
  /** Seconds from sending a client's request (Query, Sync, FunctionCall) to its ReadyForQuery. */
  readonly queryLatency: BucketCounts;
  /** Seconds a session waited for a connection to the node (a cached one, or a new one opened). */
  readonly connectionWait: BucketCounts;
  /** Routing decisions that sent a request to this node, by reason category. */
  readonly routed: Map<string, number>;
  /** pool_mode = transaction: server-side statements on the node's shared connections, by event (see serverStatement). */
  readonly serverStatements: Map<string, number>;
}

const zero = (): NodeCounters => ({ select: 0, insert: 0, update: 0, delete: 0, ddl: 0, other: 0, panic: 0, fatal: 0, error: 0 });

export class NodeStats {
  private readonly byNode = new Map<number, NodeCounters>();
  private readonly meters = new Map<number, NodeMeters>();

  /** The counters of one node (created on first use). */
  of(nodeId: number): NodeCounters {
    let c = this.byNode.get(nodeId);
    if (!c) this.byNode.set(nodeId, (c = zero()));
    return c;
  }

  /** pgrouter's figures of one node (created on first use). */
  metersOf(nodeId: number): NodeMeters {
    let m = this.meters.get(nodeId);
    if (!m) {
      m = { queryLatency: new BucketCounts(QUERY_SECONDS_BUCKETS), connectionWait: new BucketCounts(QUERY_SECONDS_BUCKETS), routed: new Map(), serverStatements: new Map() };
      this.meters.set(nodeId, m);
    }
    return m;
  }

  /** Nodes with figures, in id order. */
  meteredNodes(): number[] {
    return [...this.meters.keys()].sort((a, b) => a - b);
  }

  /** A statement of `kind` was sent to `nodeId` for a client. */
  statement(nodeId: number, kind: StatementKind): void {
    this.of(nodeId)[kind]++;
  }

  /** A routing decision sent a request to `nodeId` for the reason category `reason`. */
  routed(nodeId: number, reason: string): void {
    const m = this.metersOf(nodeId).routed;
    m.set(reason, (m.get(reason) ?? 0) + 1);
  }

  /**
   * An event of the server-side statements on a shared connection of `nodeId`: `hit` (a client's
   * Parse answered from a statement the connection holds), `parsed` (a Parse sent under a name of
   * pgrouter's), `evicted` (closed to keep a connection under its limit), `stale_retried` and
   * `stale_error` (a cached statement the server found stale: the request sent again, or the
   * error passed on). `n` events at once.
   */
  serverStatement(nodeId: number, event: string, n = 1): void {
    const m = this.metersOf(nodeId).serverStatements;
    m.set(event, (m.get(event) ?? 0) + n);
  }

  serverError(nodeId: number, severity: string): void {
    const c = this.of(nodeId);
    if (severity === 'PANIC') c.panic++;
    else if (severity === 'FATAL') c.fatal++;
    else if (severity === 'ERROR') c.error++;
  }
}
