// `pgrouter exporter` in front of a real Pgpool-II (Debian's pgpool2, started here in front of the
// rig, as the `postgres` user when we are root): it serves pgpool2_exporter's metrics with the same
// names and label sets as pgrouter's own /metrics for the same cluster, never logs the password,
// and survives a Pgpool-II restart.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';
import { freePort, serverUser } from '../../rig/system.ts';
import type { Cluster } from '../../rig/cluster.ts';

const PGPOOL = '/usr/sbin/pgpool';
const BIN = fileURLToPath(new URL('../../bin/pgrouter.mjs', import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let c: Cluster;
let pgpool: { port: number; dir: string; proc: ChildProcess | undefined; output: string[] };
let exporter: { proc: ChildProcess; port: number; logs: string[] };
let router: ProxyHandle;
let routerMetrics: number;
const clients: pg.Client[] = [];

/** pgpool.conf: streaming replication, health and SR checks every second, SCRAM from clients. */
function pgpoolConf(port: number, pcpPort: number, dir: string): string {
  const su = c.users.superuser;
  return `backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = ${port}
socket_dir = '${dir}'
pcp_listen_addresses = ''
pcp_port = ${pcpPort}
pcp_socket_dir = '${dir}'
backend_hostname0 = '${c.primary.host}'
backend_port0 = ${c.primary.port}
backend_weight0 = 0
backend_flag0 = 'ALWAYS_PRIMARY|DISALLOW_TO_FAILOVER'
backend_hostname1 = '${c.replica.host}'
backend_port1 = ${c.replica.port}
backend_weight1 = 1
backend_flag1 = 'DISALLOW_TO_FAILOVER'
backend_application_name1 = 'replica'
failover_on_backend_error = off
sr_check_period = 1
sr_check_user = '${su.name}'
sr_check_password = '${su.password}'
health_check_period = 1
health_check_user = '${su.name}'
health_check_password = '${su.password}'
load_balance_mode = on
num_init_children = 4
max_pool = 2
enable_pool_hba = on
pool_passwd = 'pool_passwd'
pid_file_name = '${dir}/pgpool.pid'
logdir = '${dir}'
log_min_messages = warning
`;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new pg.Client({ host: '127.0.0.1', port, user: c.users.superuser.name, password: c.users.superuser.password, database: c.database });
    s.on('error', () => undefined); // errors also reject the pending call; an idle client must not throw
    s.connect().then(
      () => s.end().then(() => resolve(true)),
      () => resolve(false),
    );
  });
}

/** Starts pgpool -n (as the server user when root: Pgpool-II refuses nothing, but this is how it runs on Kubernetes). */
async function startPgpool(): Promise<void> {
  const u = serverUser();
  const proc = spawn(PGPOOL, ['-n', '-D', '-f', path.join(pgpool.dir, 'pgpool.conf'), '-F', path.join(pgpool.dir, 'pcp.conf'), '-a', path.join(pgpool.dir, 'pool_hba.conf')], {
    cwd: pgpool.dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    ...(u ? { uid: u.uid, gid: u.gid } : {}),
  });
  for (const s of [proc.stdout!, proc.stderr!]) s.on('data', (d: Buffer) => pgpool.output.push(d.toString()));
  pgpool.proc = proc;
  const deadline = Date.now() + 30_000;
  while (!(await canConnect(pgpool.port))) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`pgpool did not start:\n${pgpool.output.join('')}`);
    await sleep(200);
  }
}

/** SIGINT: Pgpool-II's fast shutdown; the whole process group (its children) goes. */
async function stopPgpool(): Promise<void> {
  const proc = pgpool.proc;
  if (!proc || proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  try {
    process.kill(-proc.pid!, 'SIGINT');
  } catch {
    // gone
  }
  const t = setTimeout(() => {
    try {
      process.kill(-proc.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  }, 15_000);
  await exited;
  clearTimeout(t);
  pgpool.proc = undefined;
}

async function scrape(port: number, p = '/metrics'): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${port}${p}`);
  assert.equal(r.status, 200);
  return r.text();
}

/** pgpool2_* families: name → label names, and the label sets of the per-node families. */
function families(text: string): Map<string, { labels: string; sets: Set<string> }> {
  const out = new Map<string, { labels: string; sets: Set<string> }>();
  for (const m of text.matchAll(/^(pgpool2_[a-z0-9_]+)(?:\{([^}]*)\})? \S+$/gm)) {
    const pairs = [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!] as const).sort();
    const f = out.get(m[1]!) ?? { labels: pairs.map((x) => x[0]).join(','), sets: new Set<string>() };
    f.sets.add(JSON.stringify(pairs));
    out.set(m[1]!, f);
  }
  return out;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what} not seen within ${timeoutMs} ms`);
    await sleep(200);
  }
}

before(async () => {
  c = await getCluster();
  const su = c.users.superuser;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrouter-pgpool-'));
  const port = await freePort();
  let pcpPort = await freePort();
  while (pcpPort === port) pcpPort = await freePort();
  pgpool = { port, dir, proc: undefined, output: [] };
  const files: Array<[string, string, number]> = [
    ['pgpool.conf', pgpoolConf(port, pcpPort, dir), 0o644],
    ['pool_hba.conf', 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n', 0o644],
    ['pool_passwd', `${su.name}:TEXT${su.password}\n`, 0o600],
    ['pcp.conf', 'pcpadmin:0123456789abcdef0123456789abcdef\n', 0o600],
  ];
  const u = serverUser();
  if (u) chownSync(dir, u.uid, u.gid);
  for (const [name, text, mode] of files) {
    writeFileSync(path.join(dir, name), text, { mode });
    if (u) chownSync(path.join(dir, name), u.uid, u.gid);
  }
  await startPgpool();

  const ePort = await freePort();
  const proc = spawn(process.execPath, [BIN, 'exporter', `--web.listen-address=127.0.0.1:${ePort}`], {
    env: {
      ...process.env,
      DATA_SOURCE_URI: `127.0.0.1:${port}/postgres?sslmode=disable`,
      DATA_SOURCE_USER: su.name,
      DATA_SOURCE_PASS: su.password,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  for (const s of [proc.stdout!, proc.stderr!]) s.on('data', (d: Buffer) => logs.push(...d.toString().split('\n').filter(Boolean)));
  exporter = { proc, port: ePort, logs };
  await until('the exporter listening', async () => ((await fetch(`http://127.0.0.1:${ePort}/healthz`)).ok ? true : undefined), 20_000);

  // pgrouter in front of the same cluster, configured alike.
  routerMetrics = await freePort();
  router = await startProxy(c, {
    conf: {
      metrics_port: routerMetrics,
      metrics_listen_addresses: '127.0.0.1',
      backend_weight0: 0,
      backend_weight1: 1,
      backend_application_name1: 'replica',
      health_check_period: 1,
      health_check_user: su.name,
      sr_check_period: 1,
      sr_check_user: su.name,
      num_init_children: 4,
      max_pool: 2,
    },
  });
  await router.waitForLog(/metrics, probes and status page listening/);
  // One idle session through each, so the per-session families exist on both sides.
  for (const port of [pgpool.port, router.port]) {
    const cl = new pg.Client({ host: '127.0.0.1', port, user: su.name, password: su.password, database: c.database });
    cl.on('error', () => {}); // the Pgpool-II restart below ends it
    await cl.connect();
    await cl.query('SELECT 1');
    clients.push(cl);
  }
});

after(async () => {
  for (const cl of clients) await cl.end().catch(() => undefined);
  if (exporter) {
    exporter.proc.kill('SIGTERM');
    if (exporter.proc.exitCode === null) await new Promise((r) => exporter.proc.once('exit', r));
  }
  await router?.stop();
  await stopPgpool();
  if (pgpool) rmSync(pgpool.dir, { recursive: true, force: true });
});

test('the exporter serves the same pgpool2_* names and label sets for Pgpool-II as pgrouter serves for itself', async () => {
  // Both have run a health check and an SR check (pg_status, pg_role, replication delay known).
  const ex = await until('Pgpool-II pg_role known', async () => {
    const t = await scrape(exporter.port);
    return /^pgpool2_pool_nodes_pg_role\{[^}]*role="standby"[^}]*\} 0$/m.test(t) ? t : undefined;
  }, 20_000);
  const own = await until('pgrouter pg_role known', async () => {
    const t = await scrape(routerMetrics);
    return /^pgpool2_pool_nodes_pg_role\{[^}]*role="standby"[^}]*\} 0$/m.test(t) ? t : undefined;
  }, 20_000);
  assert.match(ex, /^pgpool2_up 1$/m);
  assert.match(ex, /^pgpool2_version\{version="4\.3\.5"\} 1$/m, "Debian 12's Pgpool-II");
  assert.match(ex, /^pgpool2_last_scrape_error 0$/m);
  const a = families(ex);
  const b = families(own);
  // pgrouter knows both lag figures; Pgpool-II 4.3 prints only bytes (seconds need 4.4's delay_threshold_by_time).
  const onlyOwn = ['pgpool2_pool_nodes_replication_delay_seconds'];
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].filter((n) => !onlyOwn.includes(n)).sort());
  for (const [name, f] of a) {
    assert.equal(f.labels, b.get(name)!.labels, `${name}: label names`);
    // Per-node families: the very same hostname/port/role sets.
    if (f.labels === 'hostname,port,role') assert.deepEqual([...f.sets].sort(), [...b.get(name)!.sets].sort(), name);
  }
  assert.equal(a.get('pgpool2_pool_nodes_status')!.sets.size, 2);
  // HELP and TYPE lines are the same too.
  const meta = (t: string): string[] => t.split('\n').filter((l) => /^# (HELP|TYPE) pgpool2_/.test(l) && !onlyOwn.some((n) => l.includes(`${n} `))).sort();
  assert.deepEqual(meta(ex), meta(own));
  // Pgpool-II counted the SELECT sent to the replica.
  assert.match(ex, new RegExp(`^pgpool2_pool_nodes_select_cnt\\{hostname="${c.replica.host}",port="${c.replica.port}",role="standby"\\} [1-9]`, 'm'));
  const status = await (await fetch(`http://127.0.0.1:${exporter.port}/status.json`)).json() as { mode: string; nodes: unknown[] };
  assert.equal(status.mode, 'exporter');
  assert.equal(status.nodes.length, 2);
});

test('the exporter survives a Pgpool-II restart and never logs the password', async () => {
  await stopPgpool();
  const down = await scrape(exporter.port);
  assert.match(down, /^pgpool2_up 0$/m);
  assert.match(down, /^pgpool2_last_scrape_error 1$/m);
  assert.doesNotMatch(down, /^pgpool2_pool_nodes_status/m, 'no stale node series while Pgpool-II is down');
  assert.equal((await fetch(`http://127.0.0.1:${exporter.port}/readyz`)).status, 503);
  assert.equal((await fetch(`http://127.0.0.1:${exporter.port}/healthz`)).status, 200);

  await startPgpool();
  const up = await until('pgpool2_up 1 after the restart', async () => {
    const t = await scrape(exporter.port);
    return /^pgpool2_up 1$/m.test(t) ? t : undefined;
  }, 20_000);
  assert.match(up, /^pgpool2_pool_nodes_status\{/m);
  assert.equal((await fetch(`http://127.0.0.1:${exporter.port}/readyz`)).status, 200);
  const scrapes = Number(/^pgpool2_scrapes_total (\d+)$/m.exec(up)?.[1]);
  assert.ok(scrapes >= 3, `${scrapes} scrapes counted`);

  const logs = exporter.logs.join('\n');
  assert.ok(logs.includes('MASKED_PASSWORD'), 'the data source is logged, masked');
  assert.ok(!logs.includes(c.users.superuser.password), 'no password in the logs');
});
