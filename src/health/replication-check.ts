// The streaming-replication check and primary discovery: every sr_check_period seconds (and at
// start, and whenever a health check changes a node's status) ask each node that is not down
// (or that an operator detached) pg_is_in_recovery() as sr_check_user, settle which node is the
// primary, then measure each standby's lag: bytes from pg_wal_lsn_diff(primary's pg_current_wal_lsn(), standby's
// pg_last_wal_replay_lsn()), time, state and sync_state from the primary's pg_stat_replication.

import type { Logger } from 'pino';
import type { PoolSecret } from '../auth/pool-passwd.ts';
import { ClusterView, type ClusterNode, type ClusterStore, type NodeLag } from '../pool/cluster.ts';
import { CheckConnection, resolveNode, withDeadline, type Row } from './check-connection.ts';

export interface ReplicationCheckSettings {
  /** sr_check_period in seconds; 0: no periodic check and no lag (discovery still runs on events). */
  readonly period: number;
  readonly user: string;
  readonly database: string;
  readonly connectTimeoutMs: number;
  readonly ssl: boolean;
  /** delay_threshold (bytes) and delay_threshold_by_time (ms), for log_standby_delay. */
  readonly delayThresholdBytes: number;
  readonly delayThresholdMs: number;
  readonly logStandbyDelay: 'always' | 'if_over_threshold' | 'none';
}

export interface ReplicationCheckOptions {
  readonly settings: ReplicationCheckSettings;
  readonly store: ClusterStore;
  /** sr_check_user's password (sr_check_password or pool_passwd). */
  readonly secret: () => PoolSecret | undefined;
  readonly log: Logger;
}

/** What a node said it is at its last probe. */
export type ProbedRole = 'primary' | 'standby' | 'unknown';

const PRIMARY_LAG: NodeLag = { bytes: 0, seconds: 0, state: '', syncState: '' };
const LSN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;

function sameLag(a: NodeLag, b: NodeLag): boolean {
  return a.bytes === b.bytes && a.seconds === b.seconds && a.state === b.state && a.syncState === b.syncState;
}

export class ReplicationChecker {
  /** Each node's answer to pg_is_in_recovery() at the last round. */
  readonly roles = new Map<number, ProbedRole>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;
  private running: Promise<void> | null = null;
  private again = false;
  private warnedNoUser = false;
  /** Nodes whose last probe failed (the first failure of a run is logged as a warning). */
  private readonly unreachable = new Set<number>();

  constructor(private readonly o: ReplicationCheckOptions) {}

  /** Starts the periodic rounds; resolves when the first round (primary discovery) is done. */
  start(): Promise<void> {
    this.stopped = false;
    return this.runRound();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Runs a round soon (a node changed status); coalesced with one already running. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    void this.runRound();
  }

  /** Resolves when the round in progress (if any) has finished. */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  private runRound(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const p = this.round()
      .catch((e: unknown) => this.o.log.error({ err: (e as Error).message }, 'replication check failed'))
      .finally(() => {
        this.running = null;
        if (this.stopped) return;
        if (this.again) {
          this.again = false;
          void this.runRound();
        } else if (this.o.settings.period > 0) {
          this.timer = setTimeout(() => void this.runRound(), this.o.settings.period * 1000);
          this.timer.unref();
        }
      });
    this.running = p;
    return p;
  }

  /** One round: probe roles, settle the primary, measure lag. */
  private async round(): Promise<void> {
    const { settings, store, log } = this.o;
    if (settings.user === '') {
      if (!this.warnedNoUser && (settings.period > 0 || !store.view.nodes.some((n) => n.alwaysPrimary)))
        log.warn('sr_check_user is empty: no primary discovery and no replication delay check');
      this.warnedNoUser = true;
      return;
    }
    const view = store.view;
    const probes = await Promise.all(view.nodes.map((n) => this.probe(n)));
    try {
      if (this.stopped) return;
      for (const p of probes) this.roles.set(p.node.id, p.role);
      this.settlePrimary(probes);
      if (settings.period > 0) await this.measureLag(probes);
    } finally {
      for (const p of probes) p.conn?.close();
    }
  }

  /** Connects to a node that is not down and asks pg_is_in_recovery(). */
  private async probe(node: ClusterNode): Promise<{ node: ClusterNode; role: ProbedRole; conn: CheckConnection | null }> {
    // A node an operator detached is still asked, so pg_role tells what it really is.
    if (node.status === 'down' && !this.o.store.isDetached(node.id)) return { node, role: 'unknown', conn: null };
    const { settings } = this.o;
    let conn: CheckConnection | null = null;
    try {
      const open = async (): Promise<CheckConnection> => {
        await resolveNode(node);
        return CheckConnection.open({
          node,
          user: settings.user,
          database: settings.database,
          secret: this.o.secret(),
          connectTimeoutMs: settings.connectTimeoutMs,
          ssl: settings.ssl,
        });
      };
      conn = await withDeadline(open(), settings.connectTimeoutMs * 2, 'replication check connection', (late) => late.close());
      const rows = await conn.query('SELECT pg_catalog.pg_is_in_recovery()', settings.connectTimeoutMs);
      const v = rows[0]?.[0];
      this.unreachable.delete(node.id);
      return { node, role: v === 't' ? 'standby' : v === 'f' ? 'primary' : 'unknown', conn };
    } catch (e) {
      const level = this.unreachable.has(node.id) ? 'debug' : 'warn';
      this.unreachable.add(node.id);
      this.o.log[level]({ node: node.id, err: (e as Error).message }, `replication check could not ask node ${node.id} its role`);
      conn?.close();
      return { node, role: 'unknown', conn: null };
    }
  }

  /**
   * ALWAYS_PRIMARY wins without looking at answers. Otherwise exactly one node answering "not in
   * recovery" is the primary; two or more means no primary (no writes anywhere) until it resolves;
   * none keeps the current primary unless it now says it is a standby.
   */
  private settlePrimary(probes: ReadonlyArray<{ node: ClusterNode; role: ProbedRole }>): void {
    const { store, log } = this.o;
    const view = store.view;
    const current = view.primaryId;
    let next = current;
    const flagged = view.nodes.find((n) => n.alwaysPrimary);
    // A detached node gets no writes: its claim does not count (it stays primary only if it was).
    const claims = probes.filter((p) => p.role === 'primary' && !store.isDetached(p.node.id)).map((p) => p.node.id);
    if (flagged) next = flagged.id;
    else if (claims.length === 1) next = claims[0]!;
    else if (claims.length > 1) {
      next = -1;
      log.error(
        { nodes: claims },
        `nodes ${claims.join(', ')} all claim to be the primary (pg_is_in_recovery() is false): no node gets writes until only one does`,
      );
    } else if (current >= 0 && probes.find((p) => p.node.id === current)?.role === 'standby') {
      next = -1;
      log.error({ node: current }, `primary node ${current} is now a standby and no other node is primary: no node gets writes`);
    }
    if (next === current) return;
    // A role change is a status change for SHOW pool_nodes' last_status_change.
    const now = new Date();
    const v = store.view;
    store.set(new ClusterView(v.nodes.map((n) => (n.id === current || n.id === next ? { ...n, lastStatusChange: now } : n)), next));
    if (next >= 0) log.warn({ from: current, to: next }, `primary changed from node ${current} to node ${next}`);
  }

  /** Measures every standby's lag against the primary and stores it in the cluster view. */
  private async measureLag(probes: ReadonlyArray<{ node: ClusterNode; role: ProbedRole; conn: CheckConnection | null }>): Promise<void> {
    const { settings, store, log } = this.o;
    const primaryId = store.view.primaryId;
    const primary = probes.find((p) => p.node.id === primaryId);
    if (!primary?.conn) return;
    const t = settings.connectTimeoutMs;
    let lsn: string | null | undefined;
    let replication: Row[];
    try {
      lsn = (await primary.conn.query('SELECT pg_catalog.pg_current_wal_lsn()', t))[0]?.[0];
      replication = await primary.conn.query(
        'SELECT application_name, state, sync_state, (EXTRACT(EPOCH FROM replay_lag) * 1000000)::bigint FROM pg_catalog.pg_stat_replication',
        t,
      );
    } catch (e) {
      log.debug({ node: primaryId, err: (e as Error).message }, 'replication check: primary did not answer');
      return;
    }
    if (typeof lsn !== 'string' || !LSN.test(lsn)) return;
    const byName = new Map<string, Row>();
    for (const r of replication) if (r[0]) byName.set(r[0], r);
    const lags = new Map<number, NodeLag>();
    lags.set(primaryId, PRIMARY_LAG);
    await Promise.all(
      probes.map(async (p) => {
        if (p.node.id === primaryId) return;
        const before = store.view.node(p.node.id)?.lag;
        const row = p.node.applicationName !== '' ? byName.get(p.node.applicationName) : undefined;
        let bytes: number | null = before?.bytes ?? null;
        if (p.conn && p.role === 'standby') {
          try {
            const v = (await p.conn.query(`SELECT pg_catalog.pg_wal_lsn_diff('${lsn}', pg_catalog.pg_last_wal_replay_lsn())`, t))[0]?.[0];
            // The standby may have replayed past the position read on the primary a moment ago.
            bytes = v === null || v === undefined ? null : Math.max(0, Math.round(Number(v)));
          } catch (e) {
            log.debug({ node: p.node.id, err: (e as Error).message }, 'replication check: standby did not answer');
          }
        } else if (p.node.status === 'down') bytes = null;
        // replay_lag is NULL once a standby has caught up and nothing new is written: no delay.
        const us = row?.[3];
        const seconds = row ? (us === null || us === undefined ? 0 : Number(us) / 1e6) : null;
        lags.set(p.node.id, { bytes, seconds, state: row?.[1] ?? '', syncState: row?.[2] ?? '' });
      }),
    );
    let view = store.view;
    for (const [id, lag] of lags) {
      const n = view.node(id);
      if (n && !sameLag(n.lag, lag)) view = view.withNode(id, { lag });
    }
    if (view !== store.view) store.set(view);
    for (const [id, lag] of lags) if (id !== primaryId) this.logDelay(id, primaryId, lag);
  }

  /** log_standby_delay: every check ('always') or past delay_threshold ('if_over_threshold'). */
  private logDelay(id: number, primaryId: number, lag: NodeLag): void {
    const s = this.o.settings;
    if (s.logStandbyDelay === 'none' || lag.bytes === null) return;
    const over =
      s.delayThresholdMs > 0
        ? lag.seconds !== null && lag.seconds * 1000 > s.delayThresholdMs
        : s.delayThresholdBytes > 0 && lag.bytes > s.delayThresholdBytes;
    if (s.logStandbyDelay === 'always' || over)
      this.o.log[over ? 'warn' : 'info'](
        { node: id, bytes: lag.bytes, seconds: lag.seconds },
        `Replication of node ${id} is behind ${lag.bytes} bytes from the primary server (node: ${primaryId})`,
      );
  }
}
