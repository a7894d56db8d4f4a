// Builds and runs the cluster checks of one pgrouter: a health checker per node and the
// streaming-replication / primary-discovery checker, wired so that a status change found by a
// health check triggers a new primary discovery. Answers what SHOW pool_nodes and
// pool_health_check_stats report about the last checks.

import type { Logger } from 'pino';
import type { SecretLookup } from '../auth/env-users.ts';
import type { Config } from '../config/load.ts';
import type { ClusterStore } from '../pool/cluster.ts';
import { checkSecret, type KeySource } from './credentials.ts';
import { HealthChecker } from './health-check.ts';
import type { HealthStats } from './health-stats.ts';
import { ReplicationChecker, type ProbedRole } from './replication-check.ts';

export interface MonitorOptions {
  readonly config: Config;
  readonly store: ClusterStore;
  readonly log: Logger;
  /** The current pool_passwd (checks without their own password look their user up in it). */
  readonly passwd: () => SecretLookup | undefined;
  readonly keys: KeySource;
}

/** How long Proxy.start waits for the first primary discovery before listening anyway. */
const FIRST_DISCOVERY_WAIT_MS = 5000;

export class ClusterMonitor {
  private readonly health = new Map<number, HealthChecker>();
  private readonly replication: ReplicationChecker;
  private readonly srPeriod: number;
  private readonly store: ClusterStore;
  private readonly log: Logger;

  constructor(o: MonitorOptions) {
    const s = o.config.settings;
    const log = o.log.child({ conn: 'health' });
    this.store = o.store;
    this.log = log;
    this.srPeriod = s.sr_check_period;
    const connectTimeoutMs = s.connect_timeout > 0 ? s.connect_timeout : 10_000;
    this.replication = new ReplicationChecker({
      settings: {
        period: s.sr_check_period,
        user: s.sr_check_user,
        database: s.sr_check_database !== '' ? s.sr_check_database : 'postgres',
        connectTimeoutMs,
        ssl: s.ssl,
        delayThresholdBytes: s.delay_threshold,
        delayThresholdMs: s.delay_threshold_by_time,
        logStandbyDelay: s.log_standby_delay,
      },
      store: o.store,
      secret: () => checkSecret(s.sr_check_user, s.sr_check_password, o.passwd(), o.keys),
      log,
    });
    for (const b of o.config.backends) {
      const hc = b.healthCheck;
      const checker = new HealthChecker({
        nodeId: b.id,
        config: hc,
        store: o.store,
        secret: () => checkSecret(hc.user, hc.password, o.passwd(), o.keys),
        ssl: s.ssl,
        log,
        onStatusChange: () => this.replication.kick(),
      });
      if (hc.period > 0 && hc.user === '')
        log.warn({ node: b.id }, `health_check_period${b.id} is set but health_check_user is empty: node ${b.id} is not health checked`);
      this.health.set(b.id, checker);
    }
  }

  /**
   * Starts every checker. Resolves after the first primary discovery, or after a few seconds if
   * some node is slow to answer (the round then finishes in the background).
   */
  async start(): Promise<void> {
    for (const h of this.health.values()) h.start();
    const first = this.replication.start();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([first, new Promise<void>((r) => (timer = setTimeout(r, FIRST_DISCOVERY_WAIT_MS)))]);
    clearTimeout(timer);
  }

  stop(): void {
    for (const h of this.health.values()) h.stop();
    this.replication.stop();
  }

  /**
   * PGPOOL DETACH NODE: the node goes down at once and stays down while its checks pass; a new
   * primary discovery runs (a detached node's claim to be the primary does not count).
   */
  detach(nodeId: number): void {
    const node = this.store.view.node(nodeId);
    if (!node) return;
    this.store.detach(nodeId);
    this.log.warn({ node: nodeId, status: node.status }, `node ${nodeId} detached by an administrator: no new statements go to it until it is attached`);
    this.replication.kick();
  }

  /**
   * PGPOOL ATTACH NODE: the node may come back. It is up at once if its last health check passed
   * (or it is not health checked, as nothing else would bring it back); a check runs now either way.
   */
  attach(nodeId: number): void {
    const store = this.store;
    if (!store.view.node(nodeId)) return;
    const wasDetached = store.isDetached(nodeId);
    store.attach(nodeId);
    const h = this.health.get(nodeId);
    const status = this.pgStatus(nodeId);
    if (store.view.node(nodeId)?.status === 'down' && status !== 'down') {
      store.set(store.view.withNode(nodeId, { status: 'up' }));
      this.log.warn({ node: nodeId, wasDetached }, `node ${nodeId} attached by an administrator: node is up`);
    } else this.log.warn({ node: nodeId, wasDetached }, `node ${nodeId} attached by an administrator: it comes up when its health check passes`);
    this.replication.kick();
    if (h?.enabled) void h.checkNow();
  }

  /** The node's health check counters; undefined for an unknown node. */
  healthStats(nodeId: number): HealthStats | undefined {
    return this.health.get(nodeId)?.stats;
  }

  /** SHOW pool_nodes' pg_status from the last health check: unknown when the node is not checked. */
  pgStatus(nodeId: number): 'up' | 'down' | 'unknown' {
    const h = this.health.get(nodeId);
    if (!h?.enabled || h.stats.lastResult === null) return 'unknown';
    return h.stats.lastResult ? 'up' : 'down';
  }

  /**
   * SHOW pool_nodes' pg_role from the last pg_is_in_recovery() probe: unknown when sr_check_period
   * is 0 (as Pgpool-II), the probe failed, or pg_status is down.
   */
  pgRole(nodeId: number): ProbedRole {
    if (this.srPeriod <= 0 || this.pgStatus(nodeId) === 'down') return 'unknown';
    return this.replication.roles.get(nodeId) ?? 'unknown';
  }

  /** Resolves when no check is in progress (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.all([...this.health.values()].map((h) => h.settled()));
    await this.replication.settled();
  }
}
