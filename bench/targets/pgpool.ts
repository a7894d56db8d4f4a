// The Pgpool-II target: Debian's pgpool2 (/usr/sbin/pgpool) with the minimal Kubernetes settings
// of pgpool2_on_k8s (primary + replica, no failover, no health or SR checks), load balancing and
// connection_cache on, SCRAM from clients via pool_hba and a TEXT pool_passwd entry.

import { createHash } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Cluster } from '../../rig/cluster.ts';
import { freePort } from '../../rig/system.ts';
import { daemonDir, giveToServerUser, startDaemon, waitListening } from '../lib/proc.ts';
import { redact, type Target } from './target.ts';

/** Where Debian's pgpool2 package puts the binary. */
export const PGPOOL_BIN = '/usr/sbin/pgpool';

/** Enough child processes for the 200-client workload (each child serves one client at a time). */
const NUM_INIT_CHILDREN = 210;

/** pgpool.conf for the benchmark. */
export function pgpoolConf(c: Cluster, port: number, pcpPort: number, dir: string): string {
  return `# Pgpool-II 4.3 for pgrouter's benchmark: the minimal Kubernetes settings (pgpool2_on_k8s)
backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = ${port}
socket_dir = '${dir}'
pcp_listen_addresses = ''
pcp_port = ${pcpPort}
pcp_socket_dir = '${dir}'
backend_hostname0 = '${c.primary.host}'
backend_port0 = ${c.primary.port}
backend_weight0 = 1
backend_flag0 = 'ALWAYS_PRIMARY|DISALLOW_TO_FAILOVER'
backend_hostname1 = '${c.replica.host}'
backend_port1 = ${c.replica.port}
backend_weight1 = 1
backend_flag1 = 'DISALLOW_TO_FAILOVER'
failover_on_backend_error = off
sr_check_period = 0
health_check_period = 0
load_balance_mode = on
connection_cache = on
num_init_children = ${NUM_INIT_CHILDREN}
max_pool = 1
enable_pool_hba = on
pool_passwd = 'pool_passwd'
pid_file_name = '${dir}/pgpool.pid'
logdir = '${dir}'
log_min_messages = warning
`;
}

/** Starts pgpool -n as the server user (it is run as `postgres` in the Kubernetes image too). */
export async function startPgpool(c: Cluster): Promise<Target> {
  const dir = await daemonDir('pgpool-bench-');
  const port = await freePort();
  let pcpPort = await freePort();
  while (pcpPort === port) pcpPort = await freePort();
  const files: Array<{ name: string; text: string; mode?: number }> = [
    { name: 'pgpool.conf', text: pgpoolConf(c, port, pcpPort, dir) },
    { name: 'pool_hba.conf', text: `local all all trust\nhost all ${c.users.trust.name} 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n` },
    // TEXT entry: Pgpool-II needs the clear password to do SCRAM with both the client and the backend.
    { name: 'pool_passwd', text: `${c.users.superuser.name}:TEXT${c.users.superuser.password}\n`, mode: 0o600 },
    { name: 'pcp.conf', text: `pcpadmin:${createHash('md5').update('pcp-bench').digest('hex')}\n`, mode: 0o600 },
  ];
  for (const f of files) {
    const p = path.join(dir, f.name);
    await writeFile(p, f.text, { mode: f.mode ?? 0o644 });
    await giveToServerUser(p);
  }
  const args = ['-n', '-f', path.join(dir, 'pgpool.conf'), '-F', path.join(dir, 'pcp.conf'), '-a', path.join(dir, 'pool_hba.conf')];
  const d = startDaemon('pgpool', PGPOOL_BIN, args, { cwd: dir, asServerUser: true });
  await waitListening(d, port, 30_000);
  return {
    name: 'pgpool',
    port,
    summary: `Pgpool-II (Debian pgpool2), streaming_replication, primary + replica, load_balance_mode on, connection_cache on, num_init_children ${NUM_INIT_CHILDREN}, max_pool 1`,
    command: 'pgpool -n -f pgpool.conf -F pcp.conf -a pool_hba.conf',
    files: files.map((f) => ({
      name: f.name,
      text: redact(c, f.text.split(dir).join('<tmpdir>')).replace(/^pcpadmin:[0-9a-f]{32}$/m, 'pcpadmin:<md5 of a throw-away password>'),
    })),
    pid: d.proc.pid,
    tail: () => d.output.slice(-20).join('\n'),
    alive: () => !d.exited(),
    stop: async () => {
      await d.stop(15_000, 'SIGINT'); // SIGINT: Pgpool-II's fast shutdown (SIGTERM is smart)
      await rm(dir, { recursive: true, force: true });
    },
  };
}
