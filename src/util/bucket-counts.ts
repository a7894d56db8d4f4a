// Histogram counts cheap enough for the per-query path: a fixed set of upper bounds, one counter
// per bucket, a sum and a count, and no allocation per observation. src/metrics turns them into a
// Prometheus histogram at scrape time.

export class BucketCounts {
  /** Observations per bucket (not cumulative): counts[i] holds bounds[i-1] < v <= bounds[i]; the last is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  /** `bounds` ascending, in the unit the observations use. */
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }

  /** Cumulative counts per bound, then +Inf (the shape of Prometheus' `_bucket` series). */
  cumulative(): number[] {
    const out: number[] = [];
    let acc = 0;
    for (const c of this.counts) out.push((acc += c));
    return out;
  }
}

/** Seconds: a loopback query takes ~0.1 ms; a slow one seconds. */
export const QUERY_SECONDS_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
