// Per-node health check counters and timings, in the shape of Pgpool-II's
// SHOW pool_health_check_stats (counts, retries, durations in ms, last check timestamps).

/** One node's health check history since start. */
export class HealthStats {
  total = 0;
  success = 0;
  fail = 0;
  /** Pgpool-II skips checks of nodes already down; pgrouter checks them (to bring them back), so this stays 0. */
  skip = 0;
  /** Retries made, over all checks. */
  retry = 0;
  maxRetry = 0;
  maxDurationMs = 0;
  minDurationMs = 0;
  totalDurationMs = 0;
  lastCheck: Date | null = null;
  lastSuccess: Date | null = null;
  lastSkip: Date | null = null;
  lastFailure: Date | null = null;
  /** Outcome of the latest check: true passed, false failed, null none yet. */
  lastResult: boolean | null = null;

  /** Records one finished check (its retries included). */
  record(ok: boolean, retries: number, durationMs: number, at: Date): void {
    this.total++;
    if (ok) {
      this.success++;
      this.lastSuccess = at;
    } else {
      this.fail++;
      this.lastFailure = at;
    }
    this.retry += retries;
    this.maxRetry = Math.max(this.maxRetry, retries);
    const d = Math.round(durationMs);
    this.maxDurationMs = Math.max(this.maxDurationMs, d);
    this.minDurationMs = this.total - this.skip === 1 ? d : Math.min(this.minDurationMs, d);
    this.totalDurationMs += d;
    this.lastCheck = at;
    this.lastResult = ok;
  }

  /** Checks that actually ran (Pgpool-II's averages divide by this). */
  get ran(): number {
    return this.total - this.skip;
  }

  get averageRetry(): number {
    return this.ran > 0 ? this.retry / this.ran : 0;
  }

  get averageDurationMs(): number {
    return this.ran > 0 ? this.totalDurationMs / this.ran : 0;
  }
}
