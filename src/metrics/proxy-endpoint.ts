// Starts pgrouter's own HTTP listener (metrics_port): pgpool2_* from its Admin, pgrouter_* from
// its state, Node's process metrics, /healthz, /readyz and the status page.

import { collectDefaultMetrics, Registry } from 'prom-client';
import type { Logger } from 'pino';
import { MetricsServer, type Readiness } from './http-server.ts';
import { ProxyMetrics, proxySnapshot, type ProxySource } from './proxy-source.ts';
import { Scraper } from './scraper.ts';

let processRegistry: Registry | undefined;

/** Node's process and runtime metrics (process_*, nodejs_*), collected once per process. */
export function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** /readyz for pgrouter: not draining, and a primary is known and not down. */
export function proxyReadiness(src: ProxySource): Readiness {
  if (src.draining()) return { ready: false, reason: 'draining (SIGTERM)' };
  const view = src.cluster();
  const primary = view.primary;
  if (!primary) return { ready: false, reason: 'no primary node is known' };
  if (primary.status === 'down') return { ready: false, reason: `primary node ${primary.id} is down` };
  return { ready: true, reason: `ready: primary is node ${primary.id}` };
}

export interface ProxyMetricsOptions {
  readonly addresses: readonly string[];
  readonly port: number;
  readonly log: Logger;
  readonly version: string;
}

/** The in-process scraper (exported for tests that serve it themselves). */
export function proxyScraper(src: ProxySource, version: string, log?: Logger): Scraper {
  const own = new ProxyMetrics(version, src);
  return new Scraper({
    read: () => Promise.resolve(proxySnapshot(src)),
    registries: [own.registry, processMetrics()],
    afterRead: (s) => own.update(src, s.results.get('pool_processes')),
    onProblems: (p) => log?.debug({ problems: p }, 'metrics: SHOW results with problems'),
  });
}

/** Listens; rejects when the port cannot be bound. */
export function startProxyMetrics(src: ProxySource, o: ProxyMetricsOptions): Promise<MetricsServer> {
  return MetricsServer.listen(o.addresses, o.port, {
    scraper: proxyScraper(src, o.version, o.log),
    mode: 'pgrouter',
    readiness: () => proxyReadiness(src),
    onError: (e) => o.log.warn({ err: e.message }, 'metrics scrape failed'),
  });
}
