// The bare Node relay (bench/floor/relay.ts) as a running target: started on a free port in front
// of the rig's primary, for bench/cpu-cost.ts and bench/latency-floor.ts.

import { fileURLToPath } from 'node:url';
import type { Cluster } from '../../rig/cluster.ts';
import { freePort } from '../../rig/system.ts';
import { startDaemon, waitListening } from '../lib/proc.ts';

const RELAY = fileURLToPath(new URL('../floor/relay.ts', import.meta.url));
/** The repository root, where tsx resolves. */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface RunningRelay {
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

export async function startRelay(c: Cluster): Promise<RunningRelay> {
  const port = await freePort();
  const d = startDaemon('relay', process.execPath, ['--import', 'tsx', RELAY, String(port), String(c.primary.port)], { cwd: ROOT, asServerUser: false });
  await waitListening(d, port);
  return { port, pid: d.proc.pid!, stop: () => d.stop() };
}
