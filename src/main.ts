// Assembles a running pgrouter from a loaded configuration: pool_passwd, pool_hba.conf, TLS,
// the cluster view, the pool, admission, listeners and the maintenance tick; and takes it
// apart again (drain on SIGTERM, immediate stop on SIGINT).

import { readFileSync, existsSync, watch, type FSWatcher } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import tls from 'node:tls';
import type net from 'node:net';
import type { Logger } from 'pino';
import type { Config } from './config/load.ts';
import { TransactionPool } from './pool/transaction-pool.ts';
import { PoolPasswd, findPoolKeyFile, readPoolKey } from './auth/pool-passwd.ts';
import { mergeEnvUsers, passwordsPreEncrypted, scanEnvUsers, type SecretLookup } from './auth/env-users.ts';
import { HbaFile } from './client/hba.ts';
import { Admission } from './client/admission.ts';
import { CancelRegistry } from './client/cancel-registry.ts';
import type { ProxyContext, SessionSettings } from './client/context.ts';
import { Listeners } from './client/listener.ts';
import { Session } from './client/session.ts';
import { ClusterStore, ClusterView, UNKNOWN_LAG, type ClusterNode } from './pool/cluster.ts';
import { NodeStats } from './pool/node-stats.ts';
import { Pool, type PoolOptions } from './pool/pool.ts';
import { compileFunctionList, compileQueryPatterns, parseDmlRelationships, parseRedirectList, type RouteSettings } from './router/route.ts';
import { loadParser } from './router/parse-tree.ts';
import { planReload } from './config/reload.ts';
import { ConfigError } from './config/parse.ts';
import { ClusterMonitor } from './health/monitor.ts';
import { Admin } from './admin/admin.ts';
import { pgrouterVersion } from './admin/version.ts';
import { listenAddresses, type MetricsServer } from './metrics/http-server.ts';
import { startProxyMetrics } from './metrics/proxy-endpoint.ts';
import type { ProxySource } from './metrics/proxy-source.ts';
import { configureBusyPoll } from './util/busy-poll.ts';
import { cgroupCpuLimit } from './util/cgroup-cpu.ts';

export interface StartOptions {
  readonly log: Logger;
  /** Pgpool-II's -k: the AES key file for pool_passwd. */
  readonly keyFile?: string | undefined;
  readonly env?: NodeJS.ProcessEnv;
  /** Loads the configuration again (SIGHUP, PGPOOL RELOAD, watch_config_files). */
  readonly reloadConfig?: (() => Config) | undefined;
}

function list(v: string | readonly string[]): string[] {
  return (typeof v === 'string' ? v.split(',') : [...v]).map((s) => s.trim()).filter((s) => s !== '');
}

function sessionSettings(c: Config): SessionSettings {
  const s = c.settings;
  return {
    authenticationTimeout: s.authentication_timeout,
    clientIdleLimit: s.client_idle_limit,
    allowClearTextFrontendAuth: s.allow_clear_text_frontend_auth,
    connectTimeoutMs: s.connect_timeout > 0 ? s.connect_timeout : 10000,
    poolMode: s.pool_mode as 'session' | 'transaction',
    transactionPoolSize: s.transaction_pool_size,
    transactionPipelineDepth: s.transaction_pipeline_depth,
    transactionUnnamedStatementCache: s.transaction_unnamed_statement_cache,
    transactionDeferBegin: s.transaction_defer_begin,
  };
}

function routeSettings(c: Config): RouteSettings {
  const s = c.settings;
  return {
    loadBalance: s.load_balance_mode,
    allowSqlComments: s.allow_sql_comments,
    writeFunctions: compileFunctionList(s.write_function_list),
    readOnlyFunctions: compileFunctionList(s.read_only_function_list),
    primaryPatterns: compileQueryPatterns(s.primary_routing_query_pattern_list),
    disableLbOnWrite: s.disable_load_balance_on_write,
    dmlDependents: parseDmlRelationships(s.dml_adaptive_object_relationship_list),
    checkUnloggedTable: s.check_unlogged_table,
    relcacheSize: s.relcache_size,
    relcacheExpire: s.relcache_expire,
    relcacheQueryTarget: s.relcache_query_target,
    statementLevel: s.statement_level_load_balance,
    readOnlyTransactions: s.transaction_read_only_load_balance,
    delayThresholdBytes: s.delay_threshold,
    delayThresholdMs: s.delay_threshold_by_time,
    preferLowerDelayStandby: s.prefer_lower_delay_standby,
    traceAll: s.notice_per_node_statement,
    replicaRetryMs: s.replica_retry_interval * 1000,
    redirects: {
      appName: parseRedirectList(s.app_name_redirect_preference_list),
      database: parseRedirectList(s.database_redirect_preference_list),
      user: parseRedirectList(s.user_redirect_preference_list),
    },
  };
}

function poolOptions(c: Config): PoolOptions {
  const s = c.settings;
  return {
    connectTimeoutMs: s.connect_timeout > 0 ? s.connect_timeout : 10000,
    ssl: s.ssl,
    connectionCache: s.connection_cache,
    resetQueries: [...s.reset_query_list].map((q) => q.trim()).filter(Boolean),
    maxIdlePerNode: Math.max(1, s.num_init_children * s.max_pool),
    connectionLifeTime: s.connection_life_time,
  };
}

function clusterNodes(c: Config): ClusterNode[] {
  return c.backends.map((b) => ({
    id: b.id,
    host: b.hostname,
    port: b.port,
    unix: b.hostname.startsWith('/'),
    weight: b.weight,
    alwaysPrimary: b.flag.alwaysPrimary,
    disallowToFailover: b.flag.disallowToFailover,
    applicationName: b.applicationName,
    status: 'up' as const,
    lag: UNKNOWN_LAG,
    lastStatusChange: new Date(),
  }));
}

/** A running proxy. */
export class Proxy {
  private readonly listeners = new Listeners();
  private readonly sessions = new Set<Session>();
  /** Bytes of client sessions already ended. */
  private readonly closedClientBytes = { received: 0, sent: 0 };
  private readonly tickTimer: NodeJS.Timeout;
  private draining = false;
  private readonly pool: Pool;
  private readonly lanes: TransactionPool;
  private readonly admission: Admission;
  private readonly cancels = new CancelRegistry();
  private passwd: SecretLookup | undefined;
  private hba: HbaFile | undefined;
  private tlsContext: tls.SecureContext | undefined;
  readonly cluster: ClusterStore;
  readonly stats = new NodeStats();
  private settings: SessionSettings;
  private routing: RouteSettings;
  readonly ctx: ProxyContext;
  /** Health, streaming-replication and primary-discovery checks. */
  monitor: ClusterMonitor;
  /** SHOW pool_* and PGPOOL SHOW. */
  private readonly admin: Admin;
  readonly startedAt = new Date();
  /** The metrics / probes / status page listener (metrics_port); undefined if it could not bind. */
  private metricsServer: MetricsServer | undefined;

  private constructor(
    private config: Config,
    private readonly o: StartOptions,
  ) {
    this.pool = new Pool(poolOptions(config), o.log, this.stats);
    this.admission = new Admission(this.admissionLimits(config));
    this.cluster = new ClusterStore(ClusterView.fromNodes(clusterNodes(config)));
    this.settings = sessionSettings(config);
    this.routing = routeSettings(config);
    this.applyBusyPoll(config);
    this.loadSecrets(config);
    const self = this;
    this.lanes = new TransactionPool(this.pool, o.log, () => ({
      size: self.settings.transactionPoolSize,
      depth: self.settings.transactionPipelineDepth,
    }));
    this.ctx = {
      log: o.log,
      pool: this.pool,
      lanes: this.lanes,
      admission: this.admission,
      cancels: this.cancels,
      settings: () => self.settings,
      routeSettings: () => self.routing,
      cluster: () => self.cluster.view,
      stats: this.stats,
      passwd: () => self.passwd,
      hba: () => self.hba,
      tls: () => self.tlsContext,
      draining: () => self.draining,
      backendFailed: (nodeId, why) => self.backendFailed(nodeId, why),
      sessionEnded: (s) => {
        if (self.sessions.delete(s as Session)) {
          const b = (s as Session).bytes();
          self.closedClientBytes.received += b.received;
          self.closedClientBytes.sent += b.sent;
        }
        self.admin.sessionEnded(s as Session);
      },
    };
    this.monitor = new ClusterMonitor({
      config,
      store: this.cluster,
      log: o.log,
      passwd: () => self.passwd,
      keys: { keyFile: o.keyFile, env: o.env ?? process.env },
    });
    this.admin = new Admin({
      config: () => self.config,
      cluster: () => self.cluster.view,
      stats: this.stats,
      // A getter: a reload replaces the monitor.
      get health() {
        return self.monitor;
      },
      sessions: () => self.sessions,
      connections: () => self.pool.connections(),
      startedAt: this.startedAt,
      reload: o.reloadConfig ? () => void self.reloadNow() : undefined,
    });
    this.ctx.admin = (sql, session) => self.admin.handle(sql, session);
    this.tickTimer = setInterval(() => this.tick(), 1000);
    this.tickTimer.unref();
  }

  private admissionLimits(c: Config) {
    const s = c.settings;
    return {
      maxSessions: s.num_init_children,
      reservedConnections: s.reserved_connections,
      maxWaiting: Math.max(1, s.listen_backlog_multiplier * s.num_init_children),
    };
  }

  /** Reads pool_passwd, pool_hba.conf and the TLS files named by the configuration (all or nothing). */
  private loadSecrets(c: Config): void {
    const loaded = this.readSecrets(c);
    this.passwd = loaded.passwd;
    this.hba = loaded.hba;
    this.tlsContext = loaded.tls;
  }

  private readSecrets(c: Config): { passwd: SecretLookup | undefined; hba: HbaFile | undefined; tls: tls.SecureContext | undefined } {
    const s = c.settings;
    const log = this.o.log;
    const env = this.o.env ?? process.env;
    const keyFile = findPoolKeyFile({ keyFile: this.o.keyFile, env });
    // <X>_USERNAME / <X>_PASSWORD pairs (pgpool2_on_k8s); the notes name variables, never values.
    const fromEnv = scanEnvUsers(env);
    for (const note of fromEnv.notes) log.warn(note);
    let file: PoolPasswd | undefined;
    let passwd: SecretLookup | undefined;
    if (s.pool_passwd !== '') {
      if (existsSync(s.pool_passwd)) {
        file = PoolPasswd.load(s.pool_passwd, keyFile);
        log.info({ file: s.pool_passwd, users: file.size }, 'pool_passwd loaded');
      } else if (fromEnv.users.size === 0) {
        log.warn({ file: s.pool_passwd }, 'pool_passwd file not found: only trust authentication will work');
      } else log.info({ file: s.pool_passwd }, 'pool_passwd file not found: using the users from the environment only');
    }
    if (fromEnv.users.size > 0) {
      const preEncrypted = passwordsPreEncrypted(env);
      const aesKey = preEncrypted && keyFile !== undefined ? readPoolKey(keyFile) : undefined;
      passwd = mergeEnvUsers(file, fromEnv.users, { preEncrypted, aesKey });
      log.info({ users: fromEnv.users.size, preEncrypted }, 'users from <X>_USERNAME/<X>_PASSWORD environment variables');
    } else passwd = file;
    const hba = s.enable_pool_hba ? HbaFile.load(s.pool_hba_file) : undefined;
    let context: tls.SecureContext | undefined;
    if (s.ssl) {
      if (!s.ssl_cert || !s.ssl_key) throw new Error('ssl is on but ssl_cert or ssl_key is not set');
      context = tls.createSecureContext({ cert: readFileSync(s.ssl_cert), key: readFileSync(s.ssl_key) });
    }
    return { passwd, hba, tls: context };
  }

  private reloading: Promise<unknown> = Promise.resolve();
  private watchers: FSWatcher[] = [];

  /** Reloads with the configured loader, one reload at a time (SIGHUP, PGPOOL RELOAD, file changes). */
  reloadNow(): Promise<unknown> {
    const load = this.o.reloadConfig;
    if (!load) return Promise.resolve();
    this.reloading = this.reloading.then(() => this.reload(load));
    return this.reloading;
  }

  /** watch_config_files: reload when the config file, pool_passwd or pool_hba.conf changes. */
  private watchFiles(): void {
    const s = this.config.settings;
    if (!s.watch_config_files || !this.o.reloadConfig) return;
    // Watch the directories: a Kubernetes ConfigMap or Secret update swaps a symlink, which a
    // watch on the file itself would not see.
    const files = [this.config.file, s.pool_passwd, s.enable_pool_hba ? s.pool_hba_file : ''].filter((f): f is string => !!f);
    const dirs = new Set(files.map((f) => dirname(resolvePath(f))));
    let timer: NodeJS.Timeout | undefined;
    for (const dir of dirs) {
      try {
        const w = watch(dir, () => {
          clearTimeout(timer);
          timer = setTimeout(() => {
            this.o.log.info({ dir }, 'configuration files changed: reloading');
            void this.reloadNow();
          }, 300);
          timer.unref();
        });
        w.unref();
        this.watchers.push(w);
      } catch (e) {
        this.o.log.warn({ dir, err: (e as Error).message }, 'cannot watch configuration directory');
      }
    }
  }

  /**
   * SIGHUP / PGPOOL RELOAD: loads the configuration again through `load` and applies what may
   * change without a restart. New sessions see the new settings; no connection is dropped. A
   * configuration with errors changes nothing. Returns what was applied and what needs a restart.
   */
  async reload(load: () => Config): Promise<{ applied: readonly string[]; needRestart: readonly string[] } | { error: string }> {
    const log = this.o.log;
    let plan;
    let secrets;
    try {
      plan = planReload(this.config, load());
      secrets = this.readSecrets(plan.config);
    } catch (e) {
      const msg = e instanceof ConfigError ? e.problems.map((p) => `${p.file}:${p.line}: ${p.message}`).join('; ') : (e as Error).message;
      log.error({ err: msg }, 'reload failed: configuration not changed');
      return { error: msg };
    }
    const c = plan.config;
    this.config = c;
    this.passwd = secrets.passwd;
    this.hba = secrets.hba;
    this.tlsContext = secrets.tls;
    this.settings = sessionSettings(c);
    this.routing = routeSettings(c);
    this.applyBusyPoll(c);
    this.pool.reconfigure(poolOptions(c));
    this.admission.reconfigure(this.admissionLimits(c));
    // Nodes: new weights/flags apply to new sessions; new backends join as up; status and lag are kept.
    const view = this.cluster.view;
    const nodes = clusterNodes(c).map((n) => {
      const old = view.node(n.id);
      return old ? { ...n, status: old.status, lag: old.lag, lastStatusChange: old.lastStatusChange } : n;
    });
    const flagged = nodes.find((n) => n.alwaysPrimary);
    this.cluster.set(new ClusterView(nodes, flagged ? flagged.id : view.primaryId));
    if (plan.applied.some((a) => /^(health_check|sr_check|backend_|delay_threshold|connect_timeout)/.test(a))) {
      this.monitor.stop();
      this.monitor = new ClusterMonitor({
        config: c,
        store: this.cluster,
        log,
        passwd: () => this.passwd,
        keys: { keyFile: this.o.keyFile, env: this.o.env ?? process.env },
      });
      await this.monitor.start();
    }
    log.info({ applied: plan.applied, needRestart: plan.needRestart }, 'configuration reloaded');
    for (const name of plan.needRestart) log.warn({ parameter: name }, `parameter "${name}" changed but needs a restart; the running value is kept`);
    return { applied: plan.applied, needRestart: plan.needRestart };
  }

  /** failover_on_backend_error: a socket error on a backend takes its node out of routing at once. */
  private backendFailed(nodeId: number, why: string): void {
    if (!this.config.settings.failover_on_backend_error) return;
    const view = this.cluster.view;
    const node = view.node(nodeId);
    if (!node || node.status === 'down') return;
    if (node.disallowToFailover) {
      this.o.log.warn({ node: nodeId, why }, `backend error on node ${nodeId} but failover is disallowed for the node`);
      return;
    }
    // Without a health check nothing would ever bring the node back: keep it, as a down node
    // that cannot rejoin by itself is exactly what hurts on Kubernetes.
    const hc = this.config.backends.find((b) => b.id === nodeId)?.healthCheck;
    if (!hc || hc.period <= 0) {
      this.o.log.warn({ node: nodeId, why }, `backend error on node ${nodeId}; not marked down because its health check is off`);
      return;
    }
    this.o.log.warn({ node: nodeId, why }, `node ${nodeId} marked down after a backend error (failover_on_backend_error)`);
    this.cluster.set(view.withNode(nodeId, { status: 'down' }));
  }

  /** busy_poll_us, off under a container CPU limit of less than 2 CPUs (spinning would use the quota up and get throttled). */
  private applyBusyPoll(c: Config): void {
    const s = c.settings;
    const limit = cgroupCpuLimit();
    const off = s.busy_poll_us > 0 && limit !== undefined && limit < 2;
    if (off) this.o.log.info({ cpuLimit: limit }, 'busy_poll_us is not applied: the container CPU limit is under 2 CPUs');
    configureBusyPoll(off ? 0 : s.busy_poll_us, s.busy_poll_max_clients);
  }

  /** Starts listening. */
  static async start(config: Config, o: StartOptions): Promise<Proxy> {
    await loadParser();
    const p = new Proxy(config, o);
    p.watchFiles();
    const s = config.settings;
    // Health checks start now; the first primary discovery is awaited (a few seconds at most).
    await p.monitor.start();
    await p.listeners.open(
      {
        addresses: list(s.listen_addresses),
        port: s.port,
        socketDirs: list(s.unix_socket_directories),
        backlog: Math.max(511, s.listen_backlog_multiplier * s.num_init_children),
      },
      (sock, local) => p.accept(sock, local),
    );
    o.log.info(
      { addresses: p.listeners.addresses(), backends: config.backends.map((b) => `${b.hostname}:${b.port}`), primary: p.cluster.view.primaryId },
      'listening',
    );
    await p.startMetrics();
    return p;
  }

  /** The HTTP listener; a port that cannot be bound is logged and pgrouter serves without it. */
  private async startMetrics(): Promise<void> {
    const s = this.config.settings;
    try {
      this.metricsServer = await startProxyMetrics(this.metricsSource(), {
        addresses: listenAddresses(s.metrics_listen_addresses),
        port: s.metrics_port,
        log: this.o.log,
        version: pgrouterVersion(),
      });
      this.o.log.info({ addresses: this.metricsServer.addresses() }, 'metrics, probes and status page listening');
    } catch (e) {
      this.o.log.warn({ port: s.metrics_port, err: (e as Error).message }, 'metrics listener could not start: /metrics, /healthz and /readyz are not served');
    }
  }

  /** What the metrics read of this proxy (read-only views). */
  private metricsSource(): ProxySource {
    const self = this;
    return {
      admin: this.ctx.admin,
      cluster: () => self.cluster.view,
      healthStats: (id) => self.monitor.healthStats(id),
      connections: () => self.pool.connections(),
      sessionCount: () => self.sessions.size,
      queued: () => self.admission.queued,
      maxSessions: () => self.config.settings.num_init_children,
      draining: () => self.draining,
      stats: this.stats,
      admissionWait: () => self.admission.wait,
      backendBytes: () => self.pool.byteTotals(),
      clientBytes: () => {
        const t = { ...self.closedClientBytes };
        for (const s of self.sessions) {
          const b = s.bytes();
          t.received += b.received;
          t.sent += b.sent;
        }
        return t;
      },
    };
  }

  /** True once SIGTERM (or SIGINT) has started taking the proxy down. */
  get isDraining(): boolean {
    return this.draining;
  }

  /** The metrics listener's bound addresses (empty when it is not running). */
  get metricsAddresses(): net.AddressInfo[] {
    return this.metricsServer?.addresses() ?? [];
  }

  private accept(sock: net.Socket, local: boolean): void {
    if (this.draining) {
      sock.destroy();
      return;
    }
    this.sessions.add(new Session(sock, this.ctx, local));
  }

  private tick(): void {
    const now = Date.now();
    // Every session: one may have its own client_idle_limit (PGPOOL SET).
    const idle = this.settings.clientIdleLimit;
    for (const s of this.sessions) s.tick(now, idle);
    this.pool.tick(now);
  }

  /** Number of client sessions open. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * SIGTERM: stop accepting, end each session at its next point outside a transaction, and
   * after `timeoutSec` end whatever is left. Resolves when every session is gone.
   */
  async drain(timeoutSec: number): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.o.log.info({ sessions: this.sessions.size, timeout: timeoutSec }, 'draining');
    await this.listeners.close();
    this.admission.refuseWaiting(new Error('shutting down'));
    for (const s of [...this.sessions]) s.drainIfIdle();
    const deadline = Date.now() + timeoutSec * 1000;
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await this.stop();
  }

  /** SIGINT: close everything now. */
  async stop(): Promise<void> {
    this.draining = true;
    clearInterval(this.tickTimer);
    for (const w of this.watchers.splice(0)) w.close();
    this.monitor.stop();
    await this.listeners.close();
    for (const s of [...this.sessions]) s.shutdown();
    this.lanes.closeAll();
    this.pool.closeAll();
    await this.metricsServer?.close();
    this.o.log.info('stopped');
  }
}
