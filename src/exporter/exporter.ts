// `pgrouter exporter`: a drop-in for pgpool2_exporter in front of a real Pgpool-II. Each scrape
// pings with SHOW POOL_VERSION (reconnecting once when the connection is gone, so a Pgpool-II
// restart costs one scrape at most), then reads every SHOW namespace and maps it with the same
// code as pgrouter's own /metrics. Unlike pgpool2_exporter it serves from the start, with
// pgpool2_up 0, while Pgpool-II cannot be reached.

import type { Logger } from 'pino';
import { MetricsServer, parseListenAddress, type Readiness } from '../metrics/http-server.ts';
import { SHOW_NAMESPACES, parseVersion, type PgpoolSnapshot, type ShowNamespace } from '../metrics/pgpool-metrics.ts';
import { processMetrics } from '../metrics/proxy-endpoint.ts';
import { Scraper } from '../metrics/scraper.ts';
import type { ShowResult } from '../metrics/show-result.ts';
import type { DataSource } from './dsn.ts';
import { PgpoolConnection } from './pgpool-client.ts';

export interface ExporterOptions {
  readonly connectTimeoutMs?: number;
  readonly queryTimeoutMs?: number;
}

/** Reads snapshots from one Pgpool-II over one connection. */
export class PgpoolExporter {
  private conn: PgpoolConnection | undefined;
  private version: string | undefined;
  private lastUp = false;
  private lastError = 'not connected yet';
  private readonly connectTimeoutMs: number;
  private readonly queryTimeoutMs: number;

  constructor(
    private readonly ds: DataSource,
    private readonly log: Logger,
    o: ExporterOptions = {},
  ) {
    this.connectTimeoutMs = o.connectTimeoutMs ?? 5000;
    this.queryTimeoutMs = o.queryTimeoutMs ?? 10_000;
  }

  private async showVersion(c: PgpoolConnection): Promise<void> {
    const r = await c.query('SHOW POOL_VERSION;', this.queryTimeoutMs);
    const v = r.columns[0] === 'pool_version' ? r.rows[0]?.[0] : undefined;
    if (v === undefined) throw new Error('SHOW POOL_VERSION did not return a pool_version (is this a Pgpool-II?)');
    if (v !== this.version) {
      if (!parseVersion(v)) this.log.warn({ version: v }, 'cannot parse the Pgpool-II version');
      this.log.info({ version: v }, 'Pgpool-II version');
    }
    this.version = v;
  }

  /** pgpool2_exporter's ping: SHOW POOL_VERSION on the open connection, else on a new one. */
  async ping(): Promise<boolean> {
    if (this.conn?.usable) {
      try {
        await this.showVersion(this.conn);
        return this.setUp(true);
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'error pinging Pgpool-II; reconnecting');
        this.conn.close();
        this.conn = undefined;
      }
    }
    this.conn?.close();
    this.conn = undefined;
    try {
      const c = await PgpoolConnection.open(this.ds, this.connectTimeoutMs);
      try {
        await this.showVersion(c);
      } catch (e) {
        c.close();
        throw e;
      }
      this.conn = c;
      this.log.info({ dataSource: this.ds.describe() }, 'connected to Pgpool-II');
      return this.setUp(true);
    } catch (e) {
      const msg = (e as Error).message;
      if (this.lastUp || msg !== this.lastError) this.log.error({ dataSource: this.ds.describe(), err: msg }, 'cannot connect to Pgpool-II');
      this.lastError = msg;
      return this.setUp(false);
    }
  }

  private setUp(up: boolean): boolean {
    this.lastUp = up;
    if (up) this.lastError = '';
    return up;
  }

  /** One scrape's reads. Never rejects. */
  async snapshot(): Promise<PgpoolSnapshot> {
    const results = new Map<ShowNamespace, ShowResult | Error>();
    const up = await this.ping();
    if (up)
      for (const ns of SHOW_NAMESPACES) {
        const c = this.conn;
        if (!c) {
          results.set(ns, new Error('connection to Pgpool-II lost'));
          continue;
        }
        try {
          results.set(ns, await c.query(`SHOW ${ns};`, this.queryTimeoutMs));
        } catch (e) {
          results.set(ns, e as Error);
          this.log.info({ namespace: ns, err: (e as Error).message }, 'SHOW failed');
        }
      }
    return { up, version: this.version, results };
  }

  /** /readyz: the last ping reached Pgpool-II. */
  readiness(): Readiness {
    return this.lastUp
      ? { ready: true, reason: `ready: Pgpool-II ${this.version ?? ''} answers`.trimEnd() }
      : { ready: false, reason: `Pgpool-II cannot be reached: ${this.lastError}` };
  }

  close(): void {
    this.conn?.close();
    this.conn = undefined;
  }
}

export interface RunExporterOptions {
  readonly dataSource: DataSource;
  /** `--web.listen-address`, default `:9719`. */
  readonly listenAddress: string;
  /** `--web.telemetry-path`, default `/metrics`. */
  readonly telemetryPath: string;
  readonly log: Logger;
}

/** A running exporter: its HTTP listener and Pgpool-II connection. */
export interface RunningExporter {
  readonly server: MetricsServer;
  readonly exporter: PgpoolExporter;
  stop(): Promise<void>;
}

/** Starts serving; the first connection attempt runs in the background (retried on every scrape). */
export async function runExporter(o: RunExporterOptions): Promise<RunningExporter> {
  const { host, port } = parseListenAddress(o.listenAddress);
  const path = o.telemetryPath.startsWith('/') ? o.telemetryPath : `/${o.telemetryPath}`;
  const exporter = new PgpoolExporter(o.dataSource, o.log);
  const scraper = new Scraper({
    read: () => exporter.snapshot(),
    registries: [processMetrics()],
    onProblems: (p) => o.log.info({ problems: p }, 'error parsing SHOW results'),
  });
  const server = await MetricsServer.listen([host], port, {
    scraper,
    mode: 'exporter',
    metricsPath: path,
    readiness: () => exporter.readiness(),
    onError: (e) => o.log.warn({ err: e.message }, 'scrape failed'),
  });
  o.log.info({ addresses: server.addresses(), path, dataSource: o.dataSource.describe() }, 'pgrouter exporter listening');
  void scraper.snapshot(0);
  return {
    server,
    exporter,
    async stop() {
      await server.close();
      exporter.close();
    },
  };
}
