// The pgrouter target: bin/pgrouter.mjs with a generated pgpool.conf (primary + replica, load
// balancing on) and a pool_passwd, started the way test/harness/proxy.ts starts it.

import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cluster } from '../../rig/cluster.ts';
import { freePort } from '../../rig/system.ts';
import { daemonDir, startDaemon, waitListening } from '../lib/proc.ts';
import { redact, type Target } from './target.ts';

const BIN = fileURLToPath(new URL('../../bin/pgrouter.mjs', import.meta.url));

type ConfValue = string | number | boolean;

function quote(v: ConfValue): string {
  return `'${String(v).replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** The pgpool.conf the benchmark gives pgrouter; `overrides` wins. */
export function pgrouterConf(c: Cluster, port: number, dir: string, overrides: Record<string, ConfValue> = {}): string {
  const conf: Record<string, ConfValue> = {
    listen_addresses: '127.0.0.1',
    port,
    unix_socket_directories: dir,
    backend_hostname0: c.primary.host,
    backend_port0: c.primary.port,
    backend_weight0: 1,
    backend_flag0: 'ALWAYS_PRIMARY',
    backend_hostname1: c.replica.host,
    backend_port1: c.replica.port,
    backend_weight1: 1,
    load_balance_mode: 'on',
    connection_cache: 'on',
    num_init_children: 256,
    pool_passwd: 'pool_passwd',
    log_min_messages: 'warning',
    ...overrides,
  };
  return Object.entries(conf).map(([k, v]) => `${k} = ${quote(v)}`).join('\n') + '\n';
}

/**
 * Starts pgrouter on a free port. `opts.nodeArgs` go before the script (e.g. --cpu-prof);
 * `opts.conf` overrides pgpool.conf lines.
 */
export async function startPgrouter(c: Cluster, opts: { conf?: Record<string, ConfValue>; nodeArgs?: string[] } = {}): Promise<Target> {
  const dir = await daemonDir('pgrouter-bench-');
  const port = await freePort();
  const confText = pgrouterConf(c, port, dir, opts.conf);
  const u = c.users;
  const passwd = `${u.superuser.name}:${u.superuser.password}\n${u.scram.name}:${u.scram.password}\n`;
  await writeFile(path.join(dir, 'pgpool.conf'), confText);
  await writeFile(path.join(dir, 'pool_passwd'), passwd, { mode: 0o600 });
  const args = [...(opts.nodeArgs ?? []), BIN, '-f', path.join(dir, 'pgpool.conf')];
  const d = startDaemon('pgrouter', process.execPath, args, { cwd: dir, asServerUser: false });
  await waitListening(d, port);
  return {
    name: 'pgrouter',
    port,
    summary: 'pgrouter (this tree), primary + replica, load_balance_mode on, connection_cache on, num_init_children 256',
    command: `node ${[...(opts.nodeArgs ?? []), 'bin/pgrouter.mjs', '-f', 'pgpool.conf'].join(' ')}`,
    files: [
      { name: 'pgpool.conf', text: confText.split(dir).join('<tmpdir>') },
      { name: 'pool_passwd', text: redact(c, passwd) },
    ],
    pid: d.proc.pid,
    tail: () => d.output.slice(-20).join('\n'),
    alive: () => !d.exited(),
    stop: async () => {
      await d.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
