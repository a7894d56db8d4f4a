// Admission of client sessions: at most num_init_children at once, the excess waiting in a
// bounded queue (first come, first served); past the queue, or when reserved_connections is
// set, refused at once with SQLSTATE 53300 as Pgpool-II does.

import { ProxyError } from '../errors/proxy-error.ts';
import { SqlState } from '../errors/sqlstate.ts';
import { BucketCounts, QUERY_SECONDS_BUCKETS } from '../util/bucket-counts.ts';

export interface AdmissionLimits {
  /** Concurrent sessions (Pgpool-II's num_init_children). */
  readonly maxSessions: number;
  /** With reserved_connections ≥ 1, no queue: clients over the limit are refused at once. */
  readonly reservedConnections: number;
  /** How many may wait for a slot (listen_backlog_multiplier × num_init_children). */
  readonly maxWaiting: number;
}

/** A granted slot; release it exactly once. */
export type Release = () => void;

export class Admission {
  private active = 0;
  private readonly waiting: Array<{ grant: (r: Release) => void; deny: (e: Error) => void; since: number }> = [];
  /** Seconds each admitted session waited for its slot (0 when one was free). */
  readonly wait = new BucketCounts(QUERY_SECONDS_BUCKETS);

  constructor(private limits: AdmissionLimits) {}

  reconfigure(limits: AdmissionLimits): void {
    this.limits = limits;
    this.pump();
  }

  /** Sessions holding a slot. */
  get inUse(): number {
    return this.active;
  }

  /** Sessions waiting for one. */
  get queued(): number {
    return this.waiting.length;
  }

  /** A slot at once if one is free and nobody is waiting, else null (then call acquire). */
  tryAcquire(): Release | null {
    const cap = Math.max(1, this.limits.maxSessions - this.limits.reservedConnections);
    if (this.active < cap && this.waiting.length === 0) {
      this.wait.observe(0);
      return this.grant();
    }
    return null;
  }

  /** Resolves with a slot, waiting if need be; rejects with 53300 when refused. `signal` aborts a wait. */
  acquire(signal?: AbortSignal): Promise<Release> {
    const now = this.tryAcquire();
    if (now !== null) return Promise.resolve(now);
    if (this.limits.reservedConnections > 0 || this.waiting.length >= this.limits.maxWaiting)
      return Promise.reject(tooMany());
    return new Promise((grant, deny) => {
      const entry = { grant, deny, since: performance.now() };
      this.waiting.push(entry);
      signal?.addEventListener('abort', () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        deny(new Error('client went away while waiting for a slot'));
      });
    });
  }

  private grant(): Release {
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.pump();
    };
  }

  private pump(): void {
    const cap = Math.max(1, this.limits.maxSessions - this.limits.reservedConnections);
    while (this.active < cap && this.waiting.length > 0) {
      const next = this.waiting.shift()!;
      this.wait.observe((performance.now() - next.since) / 1000);
      next.grant(this.grant());
    }
  }

  /** Refuses everyone still waiting (shutdown): 57P03, as PostgreSQL answers while shutting down. */
  refuseWaiting(e?: Error): void {
    const err =
      e instanceof ProxyError ? e : new ProxyError(SqlState.CANNOT_CONNECT_NOW, 'pgrouter is shutting down', 'FATAL', e?.message);
    for (const w of this.waiting.splice(0)) w.deny(err);
  }
}

function tooMany(): ProxyError {
  return new ProxyError(SqlState.TOO_MANY_CONNECTIONS, 'Sorry, too many clients already', 'FATAL');
}
