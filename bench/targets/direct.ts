// The baseline target: pgbench straight to the rig's primary, no proxy in between.

import type { Cluster } from '../../rig/cluster.ts';
import type { Target } from './target.ts';

/** The primary itself. */
export async function startDirect(c: Cluster): Promise<Target> {
  return {
    name: 'direct',
    port: c.primary.port,
    summary: `the rig's primary, PostgreSQL on 127.0.0.1:${c.primary.port} (max_connections from the rig)`,
    command: '',
    files: [],
    pid: undefined,
    tail: () => '',
    alive: () => true,
    stop: async () => undefined,
  };
}
