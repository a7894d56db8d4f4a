// A JDBC application through each target: 100 pgJDBC connections (jdbc/JdbcLoad.java), each
// running pgbench's select-only statement for a few seconds. pgJDBC sends two SETs on connecting
// (extra_float_digits, application_name), so this is the workload where transaction pooling must
// keep session settings without a backend per client. Prints, per target and round, the queries
// per second and how many backend connections the target held on each node halfway through.
//
//   npx tsx bench/jdbc-sessions.ts [--targets direct,pgrouter,pgrouter-txn,pgbouncer] [--clients 100] [--seconds 10] [--rounds 2]
//
// Needs Debian's libpostgresql-jdbc-java and a JDK (default-jdk-headless), as the tests do.

import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startCluster, stopCluster, type Cluster } from '../rig/cluster.ts';
import { startDirect } from './targets/direct.ts';
import { startPgbouncer } from './targets/pgbouncer.ts';
import { startPgrouter } from './targets/pgrouter.ts';
import type { Target } from './targets/target.ts';
import { flag } from './lib/options.ts';

const JAR = '/usr/share/java/postgresql.jar';
const LOAD = fileURLToPath(new URL('./jdbc/JdbcLoad.java', import.meta.url));

const names = flag('targets', 'direct,pgrouter,pgrouter-txn,pgbouncer').split(',');
const clients = Number(flag('clients', '100'));
const seconds = Number(flag('seconds', '10'));
const rounds = Number(flag('rounds', '2'));

/** The pid of the process listening on `port` (ss -tlnp). */
function listenerPid(port: number): number | undefined {
  const out = execFileSync('ss', ['-tlnpH', `( sport = :${port} )`], { encoding: 'utf8' });
  const m = /pid=(\d+),/.exec(out);
  return m ? Number(m[1]) : undefined;
}

/** Established TCP connections from process `pid` to `port`. */
function connectionsTo(pid: number, port: number): number {
  const out = execFileSync('ss', ['-tnpH', 'state', 'established', `( dport = :${port} )`], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(`pid=${pid},`)).length;
}

/** One run of JdbcLoad; calls `mid` halfway through. */
function load(c: Cluster, port: number, mid: () => void): Promise<{ qps: number; errors: number }> {
  const u = c.users.superuser;
  return new Promise((resolve, reject) => {
    const child = spawn('java', ['-cp', JAR, LOAD, String(port), u.name, u.password, c.database, String(clients), String(seconds)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (d.includes('MID')) mid();
    });
    child.once('error', reject);
    child.once('close', (code) => {
      const m = /queries (\d+) errors (\d+)/.exec(out);
      if (code !== 0 || !m) reject(new Error(`JdbcLoad exited with ${code}: ${out}`));
      else resolve({ qps: Number(m[1]) / seconds, errors: Number(m[2]) });
    });
  });
}

const c = await startCluster({ pgbenchScale: 10, maxConnections: 1200 });
const targets: Target[] = [];
try {
  for (const n of names) {
    if (n === 'direct') targets.push(await startDirect(c));
    else if (n === 'pgrouter') targets.push(await startPgrouter(c));
    else if (n === 'pgrouter-txn') targets.push(await startPgrouter(c, { poolMode: 'transaction' }));
    else if (n === 'pgbouncer') targets.push(await startPgbouncer(c));
    else throw new Error(`unknown target ${n}`);
  }
  console.log(`${clients} pgJDBC connections, ${seconds} s per run`);
  console.log('| target | round | queries/s | errors | backend connections (primary + replica) |');
  console.log('|---|---:|---:|---:|---|');
  for (let r = 1; r <= rounds; r++)
    for (const t of targets) {
      const pid = t.name === 'direct' ? undefined : listenerPid(t.port);
      let held = t.name === 'direct' ? `${clients} + 0` : '?';
      const res = await load(c, t.port, () => {
        if (pid !== undefined) held = `${connectionsTo(pid, c.primary.port)} + ${connectionsTo(pid, c.replica.port)}`;
      });
      console.log(`| ${t.name} | ${r} | ${res.qps.toFixed(0)} | ${res.errors} | ${held} |`);
    }
} finally {
  for (const t of targets) await t.stop();
  await stopCluster(c);
}
