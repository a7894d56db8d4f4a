// One /metrics scrape, the same in both modes: count it, read a snapshot of the SHOW results
// (from pgrouter's Admin or a real Pgpool-II), map it, time it, and serialize it with the
// long-lived registries (process metrics, pgrouter_*). Scrapes run one at a time.

import { Registry } from 'prom-client';
import { ExporterSelfMetrics, mapSnapshot, type PgpoolSnapshot } from './pgpool-metrics.ts';

export interface ScraperOptions {
  /** Reads one snapshot (never rejects: a failure is up=false or an Error per namespace). */
  readonly read: () => Promise<PgpoolSnapshot>;
  /** Registries served beside the snapshot's families. */
  readonly registries: readonly Registry[];
  /** Called after each read, before serializing (to update families derived from it). */
  readonly afterRead?: (s: PgpoolSnapshot) => void;
  /** Told the problems of a scrape (pgpool2_exporter logs them). */
  readonly onProblems?: (problems: readonly string[]) => void;
}

export class Scraper {
  private readonly self = new ExporterSelfMetrics();
  private queue: Promise<unknown> = Promise.resolve();
  private last: { snapshot: PgpoolSnapshot; at: number } | undefined;

  constructor(private readonly o: ScraperOptions) {}

  /** Runs `fn` after every scrape already queued. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** A scrape: the Prometheus text of every family. */
  metrics(): Promise<string> {
    return this.serial(async () => {
      this.self.begin();
      const t0 = performance.now();
      const snapshot = await this.o.read();
      this.last = { snapshot, at: Date.now() };
      const mapped = mapSnapshot(snapshot);
      this.o.afterRead?.(snapshot);
      if (mapped.problems.length > 0) this.o.onProblems?.(mapped.problems);
      this.self.end(snapshot.up, (performance.now() - t0) / 1000, mapped.failed.length > 0);
      return Registry.merge([mapped.registry, this.self.registry, ...this.o.registries]).metrics();
    });
  }

  /** A snapshot no older than `maxAgeMs` (the status page's polls reuse the last scrape's). */
  snapshot(maxAgeMs: number): Promise<PgpoolSnapshot> {
    return this.serial(async () => {
      if (this.last && Date.now() - this.last.at <= maxAgeMs) return this.last.snapshot;
      const snapshot = await this.o.read();
      this.last = { snapshot, at: Date.now() };
      return snapshot;
    });
  }
}

/** Content type of the Prometheus text format. */
export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
