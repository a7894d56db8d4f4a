// The benchmark's workloads: pgbench option sets, each run against every target in turn.

/** One pgbench workload. */
export interface Workload {
  /** Name used by --workloads and in the tables. */
  readonly id: string;
  readonly title: string;
  readonly clients: number;
  /** pgbench options that define the workload (besides -c, -j, -T and the connection). */
  readonly args: readonly string[];
  /** -C: a new connection per transaction (latency then includes connecting). */
  readonly connectPerTransaction: boolean;
  /** Writes (TPC-B-like): the harness resets pgbench_history and vacuums before each run, as pgbench would without -n. */
  readonly writes: boolean;
  /** The rig user pgbench logs in as: the superuser (SCRAM) unless this says `trust` (the rig's trust_user, no password). */
  readonly user?: 'trust';
}

/** Every workload, in run order. */
export const WORKLOADS: readonly Workload[] = [
  { id: 'select-simple', title: 'select-only, -M simple, 16 clients', clients: 16, args: ['-S', '-M', 'simple'], connectPerTransaction: false, writes: false },
  { id: 'select-extended', title: 'select-only, -M extended, 16 clients', clients: 16, args: ['-S', '-M', 'extended'], connectPerTransaction: false, writes: false },
  { id: 'select-prepared', title: 'select-only, -M prepared, 16 clients', clients: 16, args: ['-S', '-M', 'prepared'], connectPerTransaction: false, writes: false },
  { id: 'select-connect', title: 'select-only, new connection per transaction (-C), 8 clients', clients: 8, args: ['-S', '-C', '-M', 'simple'], connectPerTransaction: true, writes: false },
  {
    id: 'select-connect-trust',
    title: 'select-only, new connection per transaction (-C), 8 clients, as a user without a password (trust)',
    clients: 8,
    args: ['-S', '-C', '-M', 'simple'],
    connectPerTransaction: true,
    writes: false,
    user: 'trust',
  },
  { id: 'tpcb-simple', title: 'TPC-B-like (default script), -M simple, 16 clients', clients: 16, args: ['-M', 'simple'], connectPerTransaction: false, writes: true },
  { id: 'select-200', title: 'select-only, -M simple, 200 clients', clients: 200, args: ['-S', '-M', 'simple'], connectPerTransaction: false, writes: false },
];

/** pgbench threads for every workload. */
export const PGBENCH_THREADS = 2;
