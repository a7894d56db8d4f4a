// What the harness needs from a benchmark target (direct PostgreSQL, pgrouter, Pgpool-II,
// PgBouncer): where to connect, how it was configured, how to stop it.

import type { Cluster } from '../../rig/cluster.ts';

/** Targets, in the order every workload runs them. */
export const TARGET_NAMES = ['direct', 'pgrouter', 'pgpool', 'pgbouncer'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

/** A configuration file as recorded in RESULTS.md (secrets already redacted). */
export interface RecordedFile {
  readonly name: string;
  readonly text: string;
}

/** A running target. */
export interface Target {
  readonly name: TargetName;
  readonly port: number;
  /** One line on what it is and how it routes (for the report). */
  readonly summary: string;
  /** The command line that started it (empty for direct). */
  readonly command: string;
  readonly files: readonly RecordedFile[];
  /** Process id whose tree is the target (for RSS); undefined for direct. */
  readonly pid: number | undefined;
  /** Last lines of its own output, for diagnosing a failed run. */
  tail(): string;
  /** False once its process has exited (always true for direct). */
  alive(): boolean;
  stop(): Promise<void>;
}

/** Starts one target in front of the rig. Throws an Error saying why it cannot. */
export type TargetStarter = (c: Cluster) => Promise<Target>;

/** Replaces the rig's passwords in text meant for RESULTS.md. */
export function redact(c: Cluster, text: string): string {
  let out = text;
  for (const u of Object.values(c.users)) out = out.split(u.password).join('<password>');
  return out.replace(/SCRAM-SHA-256\$[^"\s]+/g, 'SCRAM-SHA-256$<verifier from pg_authid>');
}
