// Gives integration tests the rig: the shared cluster started by test/run.ts (via the
// PGROUTER_TEST_CLUSTER env var), or else a private one for this process, removed at exit.

import { clusterFromDescription, startCluster, stopClusterSync } from '../../rig/cluster.ts';
import type { Cluster } from '../../rig/cluster.ts';

/** Env var test/run.ts sets to describeCluster() of the shared cluster. */
export const CLUSTER_ENV = 'PGROUTER_TEST_CLUSTER';

let pending: Promise<Cluster> | undefined;

/** Starts the private cluster and arranges for it to die with the process. */
async function startPrivate(): Promise<Cluster> {
  const verbose = process.env['PGROUTER_RIG_LOG'] === '1';
  const c = await startCluster({
    pgbenchScale: 1,
    ...(verbose ? { log: (line: string) => process.stderr.write(line + '\n') } : {}),
  });
  // 'exit' handlers must be synchronous; this one does not depend on node:test's after() hooks
  // having run (or on the test having passed).
  process.on('exit', () => stopClusterSync(c));
  // Signals skip 'exit' unless we turn them into an exit.
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.once(sig, () => process.exit(code));
  }
  return c;
}

/**
 * The rig cluster for this test process: parsed from PGROUTER_TEST_CLUSTER when `npm test` runs
 * us, otherwise started on first call (once per process, pgbenchScale 1) so a single file also
 * runs on its own with `npx tsx --test test/integration/x.test.ts`.
 */
export function getCluster(): Promise<Cluster> {
  if (pending === undefined) {
    const shared = process.env[CLUSTER_ENV];
    pending = shared ? Promise.resolve(clusterFromDescription(shared)) : startPrivate();
  }
  return pending;
}
