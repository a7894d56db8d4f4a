// What the harness needs from a benchmark target (direct PostgreSQL, pgrouter in session and in
// transaction pooling mode, Pgpool-II, PgBouncer): where to connect, how it was configured, how
// to stop it.

import type { Cluster } from '../../rig/cluster.ts';

/** Targets, in the order every workload runs them. */
export const TARGET_NAMES = ['direct', 'pgrouter', 'pgrouter-txn', 'pgpool', 'pgbouncer'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

/** The pgrouter targets: `pgrouter` (pool_mode session, the default) and `pgrouter-txn` (pool_mode transaction). */
export const PGROUTER_TARGETS = ['pgrouter', 'pgrouter-txn'] as const satisfies readonly TargetName[];

/** How the report names each target (the `--only` name where that is clear enough). */
export const TARGET_LABELS: Record<TargetName, string> = {
  direct: 'direct',
  pgrouter: 'pgrouter',
  'pgrouter-txn': 'pgrouter (transaction pooling)',
  pgpool: 'pgpool',
  pgbouncer: 'pgbouncer',
};

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
