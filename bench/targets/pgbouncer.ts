// The PgBouncer target: Debian's pgbouncer 1.18 in transaction mode in front of the primary
// only (PgBouncer does not split reads), SCRAM with the verifier copied from pg_authid; the
// rig's trust user logs in without a password (auth_type hba), as it does on the servers.

import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sql, type Cluster } from '../../rig/cluster.ts';
import { freePort } from '../../rig/system.ts';
import { daemonDir, giveToServerUser, startDaemon, waitListening } from '../lib/proc.ts';
import { redact, type Target } from './target.ts';

/** Where Debian's pgbouncer package puts the binary. */
export const PGBOUNCER_BIN = '/usr/sbin/pgbouncer';

/** pgbouncer.ini for the benchmark. */
export function pgbouncerIni(c: Cluster, port: number, dir: string): string {
  return `;; PgBouncer 1.18 for pgrouter's benchmark: transaction pooling in front of the primary
[databases]
${c.database} = host=${c.primary.host} port=${c.primary.port} dbname=${c.database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir = ${dir}
auth_type = hba
auth_hba_file = ${dir}/hba.conf
auth_file = ${dir}/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
;; pgJDBC sends this startup parameter, which PgBouncer refuses unless told to ignore it.
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
`;
}

/** Starts pgbouncer as the server user (it refuses to run as root). */
export async function startPgbouncer(c: Cluster): Promise<Target> {
  const su = c.users.superuser;
  // The verifier lets PgBouncer check the client and then log in to the server with the client's SCRAM keys.
  const verifier = await sql(c, c.primary, `SELECT rolpassword FROM pg_authid WHERE rolname = '${su.name}'`, { database: 'postgres' });
  if (!verifier.startsWith('SCRAM-SHA-256$')) throw new Error(`${su.name} has no SCRAM verifier in pg_authid`);
  const dir = await daemonDir('pgbouncer-bench-');
  const port = await freePort();
  const files: Array<{ name: string; text: string; mode?: number }> = [
    { name: 'pgbouncer.ini', text: pgbouncerIni(c, port, dir) },
    { name: 'hba.conf', text: `host all ${c.users.trust.name} 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n` },
    { name: 'userlist.txt', text: `"${su.name}" "${verifier}"\n"${c.users.trust.name}" ""\n`, mode: 0o600 },
  ];
  for (const f of files) {
    const p = path.join(dir, f.name);
    await writeFile(p, f.text, { mode: f.mode ?? 0o644 });
    await giveToServerUser(p);
  }
  const d = startDaemon('pgbouncer', PGBOUNCER_BIN, [path.join(dir, 'pgbouncer.ini')], { cwd: dir, asServerUser: true });
  await waitListening(d, port);
  return {
    name: 'pgbouncer',
    port,
    summary: 'PgBouncer (Debian pgbouncer), pool_mode transaction, primary only, default_pool_size 20',
    command: 'pgbouncer pgbouncer.ini',
    files: files.map((f) => ({ name: f.name, text: redact(c, f.text.split(dir).join('<tmpdir>')) })),
    pid: d.proc.pid,
    tail: () => d.output.slice(-20).join('\n'),
    alive: () => !d.exited(),
    stop: async () => {
      await d.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
