// pgrouter's own feed of the metrics: runs each SHOW pool_* through its Admin (in process, no SQL
// round trip) and decodes the reply like a real Pgpool-II's, and reads the pgrouter_* figures
// (client sessions by state, backend connections by node and state, health check durations,
// query latency, waits, routing decisions, bytes) from the running proxy at scrape time: the
// per-query path only bumps plain counters.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AdminSessionInfo } from '../client/context.ts';
import type { NodeStats } from '../pool/node-stats.ts';
import type { BucketCounts } from '../util/bucket-counts.ts';
import { bucketHistogram } from './bucket-histogram.ts';
import type { ConnectionInfo } from '../pool/pool.ts';
import type { ClusterView } from '../pool/cluster.ts';
import type { HealthStats } from '../health/health-stats.ts';
import { SHOW_NAMESPACES, type PgpoolSnapshot, type ShowNamespace } from './pgpool-metrics.ts';
import { decodeShowReply, namedRows, type ShowResult } from './show-result.ts';

/** What the metrics read of a running Proxy (all read-only). */
export interface ProxySource {
  /** Answers one of pgrouter's own commands (ProxyContext.admin). */
  readonly admin: ((sql: string, session: AdminSessionInfo) => Buffer | undefined) | undefined;
  cluster(): ClusterView;
  healthStats(nodeId: number): HealthStats | undefined;
  connections(): readonly ConnectionInfo[];
  /** Client sessions open (ready, authenticating or waiting for a slot). */
  sessionCount(): number;
  /** Sessions waiting for an admission slot. */
  queued(): number;
  /** num_init_children. */
  maxSessions(): number;
  /** SIGTERM drain in progress. */
  draining(): boolean;
  /** Per-node query latency, connection waits and routing decisions. */
  readonly stats: NodeStats;
  /** Seconds sessions waited for an admission slot. */
  admissionWait(): BucketCounts;
  /** Bytes to and from the backends, per node id. */
  backendBytes(): ReadonlyMap<number, { received: number; sent: number }>;
  /** Bytes to and from the clients. */
  clientBytes(): { received: number; sent: number };
}

/** What the SHOWs are run as: Admin needs a session; no session is anyone's load-balance node. */
const METRICS_SESSION: AdminSessionInfo = { user: '', database: '', loadBalanceNode: -1 };

/** pool_nodes plus pgrouter's two extra columns: the byte and the time lag, both when known. */
function withLagColumns(r: ShowResult, view: ClusterView): ShowResult {
  const idIdx = r.columns.indexOf('node_id');
  if (idIdx < 0) return r;
  return {
    columns: [...r.columns, 'replication_delay_bytes', 'replication_delay_seconds'],
    rows: r.rows.map((row) => {
      const n = view.node(Number(row[idIdx]));
      const primary = n?.id === view.primaryId;
      const bytes = primary ? 0 : n?.lag.bytes;
      const seconds = primary ? 0 : n?.lag.seconds;
      return [...row, bytes == null ? '' : String(bytes), seconds == null ? '' : String(seconds)];
    }),
  };
}

/** Reads one snapshot of every SHOW namespace from pgrouter's Admin. */
export function proxySnapshot(src: ProxySource): PgpoolSnapshot {
  const results = new Map<ShowNamespace, ShowResult | Error>();
  for (const ns of SHOW_NAMESPACES) {
    try {
      const reply = src.admin?.(`SHOW ${ns}`, METRICS_SESSION);
      if (reply === undefined) throw new Error(`SHOW ${ns} is not answered by pgrouter`);
      const r = decodeShowReply(reply);
      results.set(ns, ns === 'pool_nodes' ? withLagColumns(r, src.cluster()) : r);
    } catch (e) {
      results.set(ns, e as Error);
    }
  }
  let version: string | undefined;
  try {
    const v = src.admin?.('SHOW pool_version', METRICS_SESSION);
    version = v ? decodeShowReply(v).rows[0]?.[0] : undefined;
  } catch {
    version = undefined;
  }
  return { up: true, version, results };
}

/** Pgpool-II's child status words → the state label of pgrouter_client_connections. */
const SLOT_STATE: Record<string, string> = {
  'Execute command': 'active',
  Idle: 'idle',
  'Idle in transaction': 'idle_in_transaction',
};

const CLIENT_STATES = ['active', 'idle', 'idle_in_transaction', 'authenticating', 'waiting'] as const;
const BACKEND_STATES = ['active', 'in_use', 'idle', 'connecting', 'resetting'] as const;

/** Seconds; health checks take from under a millisecond (loopback) to connect_timeout. */
const HEALTH_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20];

/** The pgrouter_* families fed from the proxy's state at scrape time. */
export class ProxyMetrics {
  readonly registry = new Registry();
  private readonly clients = new Gauge({
    name: 'pgrouter_client_connections',
    help: 'Client connections by state (waiting: queued for one of the num_init_children slots)',
    labelNames: ['state'],
    registers: [this.registry],
  });
  private readonly clientsMax = new Gauge({
    name: 'pgrouter_client_connections_max',
    help: 'Client sessions served at once (num_init_children)',
    registers: [this.registry],
  });
  private readonly backends = new Gauge({
    name: 'pgrouter_backend_connections',
    help: 'Backend connections by node and state (in_use: leased to a session, active: running a request, idle: cached)',
    labelNames: ['node', 'state'],
    registers: [this.registry],
  });
  private readonly healthDuration = new Histogram({
    name: 'pgrouter_health_check_duration_seconds',
    help: 'Duration of each health check (retries included), by node',
    labelNames: ['node'],
    buckets: HEALTH_BUCKETS,
    registers: [this.registry],
  });
  private readonly draining = new Gauge({
    name: 'pgrouter_draining',
    help: '1 while a SIGTERM drain is in progress',
    registers: [this.registry],
  });
  private readonly routed = new Counter({
    name: 'pgrouter_routing_decisions_total',
    help: 'Routing decisions by the node chosen and the reason category (write, session_command, load_balance, writing_transaction, write_function, replica_lag, ...)',
    labelNames: ['node', 'reason'],
    registers: [this.registry],
  });
  private readonly serverStatements = new Counter({
    name: 'pgrouter_server_statements_total',
    help: 'pool_mode = transaction: server-side statements on shared backend connections by node and event (hit: a Parse answered from a statement the connection holds; parsed: a Parse sent under a pgrouter name; evicted: closed past the per-connection limit; stale_retried / stale_error: a cached statement made stale by a schema change, the request sent again or the error passed on)',
    labelNames: ['node', 'event'],
    registers: [this.registry],
  });
  private readonly clientBytes = new Counter({
    name: 'pgrouter_client_bytes_total',
    help: 'Bytes received from (direction=in) and sent to (direction=out) client connections',
    labelNames: ['direction'],
    registers: [this.registry],
  });
  private readonly backendBytes = new Counter({
    name: 'pgrouter_backend_bytes_total',
    help: 'Bytes received from (direction=in) and sent to (direction=out) backend connections, by node',
    labelNames: ['node', 'direction'],
    registers: [this.registry],
  });
  private readonly info: Gauge;
  /** Health check totals already observed, per node: [checks, summed duration ms]. */
  private readonly healthSeen = new Map<number, [number, number]>();

  constructor(version: string, src: ProxySource) {
    this.info = new Gauge({ name: 'pgrouter_build_info', help: 'pgrouter version', labelNames: ['version'], registers: [this.registry] });
    this.info.set({ version }, 1);
    const perNode = (pick: (n: number) => BucketCounts) => () =>
      src.stats.meteredNodes().map((n) => ({ labels: { node: String(n) }, counts: pick(n) }));
    bucketHistogram(
      this.registry,
      'pgrouter_query_duration_seconds',
      'Time from sending a client request (Query, Sync or FunctionCall) to a node until its ReadyForQuery, by node',
      ['node'],
      perNode((n) => src.stats.metersOf(n).queryLatency),
    );
    bucketHistogram(
      this.registry,
      'pgrouter_pool_wait_seconds',
      'Time a new client session waited for one of the num_init_children slots (0 when one was free)',
      [],
      () => [{ labels: {}, counts: src.admissionWait() }],
    );
    bucketHistogram(
      this.registry,
      'pgrouter_backend_connection_wait_seconds',
      'Time a session waited for a backend connection to a node: a cached one brought in line, or a new one opened and authenticated',
      ['node'],
      perNode((n) => src.stats.metersOf(n).connectionWait),
    );
  }

  /** Brings every family up to date; `processes` is the snapshot's pool_processes. */
  update(src: ProxySource, processes: ShowResult | Error | undefined): void {
    const counts = new Map<string, number>(CLIENT_STATES.map((s) => [s, 0]));
    let ready = 0;
    if (processes !== undefined && !(processes instanceof Error))
      for (const row of namedRows(processes)) {
        const state = SLOT_STATE[row['status'] ?? ''];
        if (state === undefined || row['username'] === '') continue;
        ready++;
        counts.set(state, counts.get(state)! + 1);
      }
    const queued = src.queued();
    counts.set('waiting', queued);
    counts.set('authenticating', Math.max(0, src.sessionCount() - ready - queued));
    for (const [state, n] of counts) this.clients.set({ state }, n);
    this.clientsMax.set(src.maxSessions());
    this.draining.set(src.draining() ? 1 : 0);

    const view = src.cluster();
    const byNode = new Map<number, Map<string, number>>();
    for (const n of view.nodes) byNode.set(n.id, new Map(BACKEND_STATES.map((s) => [s, 0])));
    for (const c of src.connections()) {
      const m = byNode.get(c.nodeId);
      if (!m) continue;
      const state = c.state === 'leased' ? (c.busy ? 'active' : 'in_use') : c.state;
      if (m.has(state)) m.set(state, m.get(state)! + 1);
    }
    this.backends.reset();
    for (const [node, m] of byNode) for (const [state, n] of m) this.backends.set({ node: String(node), state }, n);

    // Counters kept by the proxy as plain numbers: set to their totals.
    this.routed.reset();
    for (const n of src.stats.meteredNodes())
      for (const [reason, count] of src.stats.metersOf(n).routed) this.routed.inc({ node: String(n), reason }, count);
    this.serverStatements.reset();
    for (const n of src.stats.meteredNodes())
      for (const [event, count] of src.stats.metersOf(n).serverStatements) this.serverStatements.inc({ node: String(n), event }, count);
    const cb = src.clientBytes();
    this.clientBytes.reset();
    this.clientBytes.inc({ direction: 'in' }, cb.received);
    this.clientBytes.inc({ direction: 'out' }, cb.sent);
    this.backendBytes.reset();
    for (const [node, b] of src.backendBytes()) {
      this.backendBytes.inc({ node: String(node), direction: 'in' }, b.received);
      this.backendBytes.inc({ node: String(node), direction: 'out' }, b.sent);
    }

    // Health checks finished since the last scrape: one observation each (their mean when
    // several finished in between, which takes scrapes further apart than the check period).
    for (const n of view.nodes) {
      const h = src.healthStats(n.id);
      if (!h) continue;
      const [seenCount, seenMs] = this.healthSeen.get(n.id) ?? [0, 0];
      const ran = h.total - h.skip;
      if (ran > seenCount) {
        const mean = (h.totalDurationMs - seenMs) / (ran - seenCount) / 1000;
        const child = this.healthDuration.labels({ node: String(n.id) });
        for (let i = seenCount; i < ran; i++) child.observe(mean);
        this.healthSeen.set(n.id, [ran, h.totalDurationMs]);
      }
    }
  }
}
