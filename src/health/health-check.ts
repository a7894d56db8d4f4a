// The health check of one node: every health_check_period seconds, resolve its host name and open
// (then close) a connection as health_check_user, retrying health_check_max_retries times. A final
// failure marks the node down in the cluster view at once (unless DISALLOW_TO_FAILOVER); a later
// success marks it up again by itself, which Pgpool-II leaves to pcp_attach_node. A node an
// operator detached keeps being checked (for the stats) but stays down until it is attached.

import type { Logger } from 'pino';
import type { PoolSecret } from '../auth/pool-passwd.ts';
import type { HealthCheckConfig } from '../config/load.ts';
import type { ClusterStore } from '../pool/cluster.ts';
import { CheckConnection, LookupError, resolveNode, withDeadline } from './check-connection.ts';
import { HealthStats } from './health-stats.ts';

export interface HealthCheckOptions {
  readonly nodeId: number;
  readonly config: HealthCheckConfig;
  readonly store: ClusterStore;
  /** The health_check_user's password, looked up at each check (pool_passwd may be reloaded). */
  readonly secret: () => PoolSecret | undefined;
  readonly ssl: boolean;
  readonly log: Logger;
  /** Told after this checker changed the node's status. */
  readonly onStatusChange: (nodeId: number) => void;
}

const sleep = (ms: number): Promise<void> =>
  new Promise((r) => {
    setTimeout(r, ms).unref();
  });

/** Default database when health_check_database is empty (Pgpool-II's code default). */
const DEFAULT_DATABASE = 'postgres';

export class HealthChecker {
  readonly stats = new HealthStats();
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;
  /** In a run of failures where DISALLOW_TO_FAILOVER kept the node up (logged once per run). */
  private failingKeptUp = false;
  private running: Promise<void> | null = null;

  constructor(private readonly o: HealthCheckOptions) {}

  /** The check is configured: period > 0 and a user to connect as. */
  get enabled(): boolean {
    return this.o.config.period > 0 && this.o.config.user !== '';
  }

  /** Starts the periodic check; the first one runs at once. */
  start(): void {
    if (!this.enabled || !this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const t0 = Date.now();
      this.running = this.check().finally(() => {
        this.running = null;
        // A steady cadence: the next check starts one period after this one started.
        this.schedule(Math.max(0, this.o.config.period * 1000 - (Date.now() - t0)));
      });
    }, ms);
    this.timer.unref();
  }

  /** One check with its retries; applies the outcome to the cluster view. */
  async check(): Promise<void> {
    const { nodeId, config, store, log } = this.o;
    const node = store.view.node(nodeId);
    if (!node) return;
    const started = Date.now();
    // A node already down gets one attempt per period: retries only delay its return.
    let attempts = node.status === 'down' ? 1 : config.maxRetries + 1;
    let lookupFailures = 0;
    let retries = 0;
    let error: Error | undefined;
    for (let i = 0; i < attempts && !this.stopped; i++) {
      if (i > 0) {
        retries++;
        log.info({ node: nodeId, round: i }, `health check retrying on node ${nodeId} (round:${i})`);
        await sleep(config.retryDelay * 1000);
        if (this.stopped) return;
      }
      try {
        await this.attempt();
        error = undefined;
        break;
      } catch (e) {
        error = e as Error;
        log.debug({ node: nodeId, err: error.message }, `health check attempt failed on node ${nodeId}`);
        // One failed DNS lookup (a Kubernetes Service's record flapping) must not take a node
        // out: lookups get up to two more tries, a second apart, whatever health_check_max_retries says.
        if (error instanceof LookupError && node.status !== 'down' && ++lookupFailures <= 2 && i + 1 >= attempts) attempts++;
      }
    }
    if (this.stopped) return;
    this.stats.record(error === undefined, retries, Date.now() - started, new Date());
    this.apply(error);
  }

  /** Resolves the host, connects and authenticates as health_check_user, disconnects. */
  private async attempt(): Promise<void> {
    const { nodeId, config, store } = this.o;
    const node = store.view.node(nodeId);
    if (!node) return;
    const connectTimeoutMs = config.connectTimeout > 0 ? config.connectTimeout : config.timeout > 0 ? config.timeout * 1000 : 10_000;
    const run = async (): Promise<CheckConnection> => {
      await resolveNode(node);
      return CheckConnection.open({
        node,
        user: config.user,
        database: config.database !== '' ? config.database : DEFAULT_DATABASE,
        secret: this.o.secret(),
        connectTimeoutMs,
        ssl: this.o.ssl,
      });
    };
    const conn = await withDeadline(run(), config.timeout * 1000, 'health check', (late) => late.close());
    conn.close();
  }

  private apply(error: Error | undefined): void {
    const { nodeId, store, log } = this.o;
    const node = store.view.node(nodeId);
    if (!node) return;
    // Detached by an operator: down whatever the check says, until PGPOOL ATTACH NODE.
    if (store.isDetached(nodeId)) return;
    if (error === undefined) {
      if (this.failingKeptUp) log.info({ node: nodeId }, `health check passes again on node ${nodeId}`);
      this.failingKeptUp = false;
      if (node.status === 'down') {
        store.set(store.view.withNode(nodeId, { status: 'up' }));
        log.info({ node: nodeId }, `health check passed on node ${nodeId}: node is up again`);
        this.o.onStatusChange(nodeId);
      }
      return;
    }
    if (node.disallowToFailover) {
      if (!this.failingKeptUp)
        log.warn(
          { node: nodeId, err: error.message },
          `health check failed on node ${nodeId} but failover is disallowed for the node`,
        );
      this.failingKeptUp = true;
      return;
    }
    if (node.status !== 'down') {
      store.set(store.view.withNode(nodeId, { status: 'down' }));
      log.warn({ node: nodeId, err: error.message }, `health check failed on node ${nodeId}: node is down`);
      this.o.onStatusChange(nodeId);
    }
  }

  /** Runs a check now (PGPOOL ATTACH NODE) unless one is running; the periodic cadence goes on. */
  checkNow(): Promise<void> {
    if (!this.running) this.running = this.check().finally(() => (this.running = null));
    return this.running;
  }

  /** Resolves when a check in progress (if any) has finished. */
  async settled(): Promise<void> {
    await this.running;
  }
}
