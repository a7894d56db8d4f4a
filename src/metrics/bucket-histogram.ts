// A prom-client Histogram whose counts are kept elsewhere: per-query figures are counted in
// BucketCounts (no allocation, no label hashing on the hot path) and read only when a scrape
// asks, then formatted by prom-client like any other histogram.

import { Histogram, type Registry } from 'prom-client';
import type { BucketCounts } from '../util/bucket-counts.ts';

/** One labelled series of the histogram and the counts behind it. */
export interface BucketSeries {
  readonly labels: Record<string, string>;
  readonly counts: BucketCounts;
}

interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName: string;
}

/** What prom-client's Registry reads of a metric when it serializes it. */
interface Serialized {
  name: string;
  help: string;
  type: 'histogram';
  values: Sample[];
  aggregator: 'sum';
}

/** Registers, in `registry`, a histogram `name` that reads `series()` at each scrape. */
export function bucketHistogram(registry: Registry, name: string, help: string, labelNames: readonly string[], series: () => readonly BucketSeries[]): Histogram {
  const h = new Histogram({ name, help, labelNames: [...labelNames], registers: [] });
  const read = async (): Promise<Serialized> => {
    const values: Sample[] = [];
    for (const s of series()) {
      const cum = s.counts.cumulative();
      const bounds = s.counts.bounds;
      for (let i = 0; i < cum.length; i++)
        values.push({ metricName: `${name}_bucket`, labels: { ...s.labels, le: i < bounds.length ? bounds[i]! : '+Inf' }, value: cum[i]! });
      values.push({ metricName: `${name}_sum`, labels: { ...s.labels }, value: s.counts.sum });
      values.push({ metricName: `${name}_count`, labels: { ...s.labels }, value: s.counts.count });
    }
    return { name, help, type: 'histogram', values, aggregator: 'sum' };
  };
  // The Registry serializes through getForPromString when a metric has one, else through get().
  Object.assign(h, { get: read, getForPromString: read });
  registry.registerMetric(h);
  return h;
}
