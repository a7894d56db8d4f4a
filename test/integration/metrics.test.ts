// pgrouter's /metrics scraped by a real Prometheus (Debian's prometheus, started here on a
// loopback port): select counts rise on the replica, node status follows a stopped replica; the
// Grafana dashboard and the alert rules use only metrics pgrouter exports (checked against this
// live scrape, and with promtool); /healthz and /readyz, also during a SIGTERM drain.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { parse as parseYaml } from 'yaml';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';
import { freePort } from '../../rig/system.ts';
import { startNode, stopNode, waitForStreaming, type Cluster } from '../../rig/cluster.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let c: Cluster;
let p: ProxyHandle;
let metricsPort: number;
let prom: { port: number; proc: ChildProcess; dir: string; output: string[] } | undefined;
const proxies: ProxyHandle[] = [];

async function proxy(conf: Record<string, string | number | boolean>): Promise<{ p: ProxyHandle; port: number }> {
  const port = await freePort();
  const h = await startProxy(c, { conf: { metrics_port: port, metrics_listen_addresses: '127.0.0.1', ...conf } });
  proxies.push(h);
  // The HTTP listener opens right after the PostgreSQL port.
  await h.waitForLog(/metrics, probes and status page listening/);
  return { p: h, port };
}

/** Starts Prometheus scraping 127.0.0.1:<target> every second. */
async function startPrometheus(target: number): Promise<NonNullable<typeof prom>> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrouter-prom-'));
  const port = await freePort();
  writeFileSync(
    path.join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: pgrouter\n    static_configs:\n      - targets: ['127.0.0.1:${target}']\n`,
  );
  const proc = spawn(PROMETHEUS, [
    `--config.file=${path.join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  proc.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
  proc.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/-/ready`)).ok) break;
    } catch {
      // not listening yet
    }
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`prometheus did not start:\n${output.join('')}`);
    await sleep(100);
  }
  return { port, proc, dir, output };
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function promQuery(expr: string): Promise<Sample[]> {
  const r = await fetch(`http://127.0.0.1:${prom!.port}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await r.json()) as { status: string; error?: string; data?: { result: Sample[] } };
  if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
  return body.data!.result;
}

/** Polls a PromQL query until `ok` holds on its samples. */
async function promUntil(expr: string, ok: (s: Sample[]) => boolean, timeoutMs: number): Promise<Sample[]> {
  const deadline = Date.now() + timeoutMs;
  let last: Sample[] = [];
  for (;;) {
    last = await promQuery(expr);
    if (ok(last)) return last;
    if (Date.now() > deadline) throw new Error(`${expr}: condition not met within ${timeoutMs} ms; last ${JSON.stringify(last)}`);
    await sleep(250);
  }
}

const valueAt = (s: Sample[], port: number): number | undefined => {
  const x = s.find((v) => v.metric['port'] === String(port));
  return x ? Number(x.value[1]) : undefined;
};

before(async () => {
  c = await getCluster();
  const su = c.users.superuser.name;
  ({ p, port: metricsPort } = await proxy({
    backend_weight0: 0,
    backend_weight1: 1,
    backend_application_name1: 'replica',
    health_check_period: 1,
    health_check_timeout: 5,
    health_check_user: su,
    health_check_max_retries: 0,
    sr_check_period: 1,
    sr_check_user: su,
    connect_timeout: 2000,
  }));
  prom = await startPrometheus(metricsPort);
});

after(async () => {
  if (prom) {
    prom.proc.kill('SIGTERM');
    await new Promise((r) => (prom!.proc.exitCode !== null ? r(null) : prom!.proc.once('exit', r)));
    rmSync(prom.dir, { recursive: true, force: true });
  }
  for (const h of proxies) await h.stop();
});

async function reads(n: number): Promise<void> {
  const cl = new pg.Client({ connectionString: p.url(c.users.superuser.name, c.users.superuser.password) });
  cl.on('error', () => undefined); // errors also reject the pending call; an idle client must not throw
  await cl.connect();
  try {
    for (let i = 0; i < n; i++) {
      const r = await cl.query("SELECT current_setting('port') AS port");
      assert.equal(Number(r.rows[0].port), c.replica.port, 'reads go to the replica (backend_weight0 = 0)');
    }
  } finally {
    await cl.end();
  }
}

test('Prometheus scrapes pgrouter: select_cnt rises on the replica, both nodes up, a stopped replica turns to 0', async () => {
  await promUntil('up{job="pgrouter"}', (s) => s[0]?.value[1] === '1', 15_000);
  const before0 = await promUntil('pgpool2_pool_nodes_select_cnt', (s) => valueAt(s, c.replica.port) !== undefined, 10_000);
  const v0 = valueAt(before0, c.replica.port)!;
  await reads(50);
  const after0 = await promUntil('pgpool2_pool_nodes_select_cnt', (s) => (valueAt(s, c.replica.port) ?? 0) >= v0 + 50, 10_000);
  assert.equal(after0.find((s) => s.metric['port'] === String(c.replica.port))?.metric['role'], 'standby');
  assert.ok((valueAt(after0, c.primary.port) ?? -1) >= 0, 'the primary has its series too');

  const status = await promUntil('pgpool2_pool_nodes_status', (s) => s.length === 2 && s.every((x) => x.value[1] === '1'), 10_000);
  assert.deepEqual(status.map((s) => s.metric['role']).sort(), ['primary', 'standby']);
  assert.deepEqual(Object.keys(status[0]!.metric).sort(), ['__name__', 'hostname', 'instance', 'job', 'port', 'role']);
  await promUntil('pgpool2_pool_nodes_pg_role', (s) => valueAt(s, c.primary.port) === 1 && valueAt(s, c.replica.port) === 0, 10_000);
  await promUntil('pgpool2_pool_nodes_replication_delay_bytes', (s) => valueAt(s, c.replica.port) !== undefined, 10_000);

  let stopped = false;
  try {
    await stopNode(c, c.replica, 'immediate');
    stopped = true;
    const t0 = Date.now();
    await promUntil(`pgpool2_pool_nodes_status{port="${c.replica.port}"}`, (s) => s[0]?.value[1] === '0', 15_000);
    console.log(`# Prometheus saw the replica's status series turn to 0 ${Date.now() - t0} ms after it stopped`);
    const primary = await promQuery(`pgpool2_pool_nodes_status{port="${c.primary.port}"}`);
    assert.equal(primary[0]?.value[1], '1', 'the primary stays up');
  } finally {
    if (stopped) await startNode(c, c.replica);
    await waitForStreaming(c);
  }
  await promUntil(`pgpool2_pool_nodes_status{port="${c.replica.port}"}`, (s) => s[0]?.value[1] === '1', 15_000);
});

/** Metric names an expression uses: identifiers outside label matchers, strings and grouping clauses, not called. */
export function metricNames(expr: string): string[] {
  const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'inf', 'nan', 'le']);
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const out = new Set<string>();
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = stripped.slice(m.index! + m[0].length).trimStart();
    if (after.startsWith('(') || KEYWORDS.has(m[0].toLowerCase()) || /^\d/.test(m[0])) continue;
    // Units in numbers such as 1e-9 or 16 * 1024 are not names.
    if (/^e\d*$/i.test(m[0]) && /\d$/.test(stripped.slice(0, m.index))) continue;
    out.add(m[0]);
  }
  return [...out];
}

/** Grafana's variables, replaced by values any Prometheus accepts. */
function grafanaToPromQL(expr: string): string {
  return expr.replace(/\$\{?(\w+)\}?/g, (_, v: string) => (v.startsWith('__') ? '1m' : '.*'));
}

test('the Grafana dashboard and the alert rules use only metrics pgrouter exports, and are valid PromQL', async () => {
  // Wait until Prometheus has every family of a scrape (histograms included).
  await promUntil('pgrouter_health_check_duration_seconds_count', (s) => s.length >= 1, 10_000);
  const names = new Set(
    ((await (await fetch(`http://127.0.0.1:${prom!.port}/api/v1/label/__name__/values`)).json()) as { data: string[] }).data,
  );
  const scrape = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const exported = new Set([...scrape.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/gm)].map((m) => m[1]!));
  // `up` is Prometheus' own series of each target, the one thing a scrape-failure alert needs.
  exported.add('up');

  const dashboard = JSON.parse(readFileSync(path.join(ROOT, 'deploy/grafana/pgrouter-dashboard.json'), 'utf8')) as {
    panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
    templating: { list: Array<{ name: string; definition?: string }> };
  };
  const exprs: Array<[string, string]> = [];
  for (const panel of dashboard.panels) for (const t of panel.targets ?? []) exprs.push([`panel "${panel.title}"`, t.expr]);
  const rules = parseYaml(readFileSync(path.join(ROOT, 'deploy/prometheus/pgrouter-rules.yaml'), 'utf8')) as {
    groups: Array<{ rules: Array<{ alert: string; expr: string }> }>;
  };
  for (const g of rules.groups) for (const r of g.rules) exprs.push([`alert ${r.alert}`, r.expr]);
  assert.ok(exprs.length >= 25, `${exprs.length} expressions`);
  for (const v of dashboard.templating.list)
    if (v.definition) {
      const m = /label_values\((\w+)/.exec(v.definition);
      assert.ok(m && exported.has(m[1]!), `variable ${v.name} reads ${m?.[1]}`);
    }
  for (const [where, expr] of exprs) {
    const used = metricNames(expr);
    assert.ok(used.length > 0, `${where}: no metric found in ${expr}`);
    for (const n of used) {
      assert.ok(exported.has(n), `${where} uses ${n}, which pgrouter does not export`);
      assert.ok(names.has(n) || n === 'up', `${where}: Prometheus has no ${n} from the scrape`);
    }
    // Prometheus itself parses and evaluates it.
    await promQuery(grafanaToPromQL(expr));
  }
  const check = execFileSync(PROMTOOL, ['check', 'rules', path.join(ROOT, 'deploy/prometheus/pgrouter-rules.yaml')], { encoding: 'utf8' });
  assert.match(check, /SUCCESS: 7 rules found/);
});

test('/metrics content, /healthz and /readyz; a scrape costs little', async () => {
  const base = `http://127.0.0.1:${metricsPort}`;
  const r = await fetch(`${base}/metrics`);
  assert.equal(r.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const text = await r.text();
  // pgpool2_exporter's help texts and types, verbatim.
  for (const line of [
    '# HELP pgpool2_pool_nodes_status Backend node Status (1 for up or waiting, 0 for down or unused)',
    '# TYPE pgpool2_pool_nodes_select_cnt counter',
    '# HELP pgpool2_pool_backend_stats_fatal_cnt Fatal message counts returned from backend)',
    '# TYPE pgpool2_pool_health_check_stats_total_count gauge',
    '# HELP pgpool2_frontend_total Number of total child processed',
    '# HELP pgpool2_up Whether the Pgpool-II server is up (1 for yes, 0 for no).',
    '# TYPE pgpool2_scrapes_total counter',
    '# TYPE pgrouter_health_check_duration_seconds histogram',
    '# TYPE process_resident_memory_bytes gauge',
  ])
    assert.ok(text.includes(line), line);
  assert.match(text, /^pgpool2_up 1$/m);
  assert.match(text, /^pgpool2_last_scrape_error 0$/m);
  assert.match(text, /^pgrouter_client_connections_max 32$/m);

  const health = await fetch(`${base}/healthz`);
  assert.equal(health.status, 200);
  const ready = await fetch(`${base}/readyz`);
  assert.equal(ready.status, 200);
  assert.match(await ready.text(), /ready: primary is node 0/);
  assert.equal((await fetch(`${base}/nothing-here`)).status, 404);

  // Scrape time over 30 scrapes with 20 sessions open, and pgrouter's RSS.
  const clients = await Promise.all(
    Array.from({ length: 20 }, async () => {
      const cl = new pg.Client({ connectionString: p.url(c.users.superuser.name, c.users.superuser.password) });
      cl.on('error', () => undefined); // errors also reject the pending call; an idle client must not throw
      await cl.connect();
      await cl.query('SELECT 1');
      return cl;
    }),
  );
  try {
    const times: number[] = [];
    let bytes = 0;
    for (let i = 0; i < 30; i++) {
      const t0 = performance.now();
      bytes = (await (await fetch(`${base}/metrics`)).text()).length;
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const rss = Number(/^process_resident_memory_bytes (\S+)$/m.exec(await (await fetch(`${base}/metrics`)).text())?.[1]);
    console.log(`# /metrics with 20 sessions: median ${times[15]!.toFixed(1)} ms, max ${times[29]!.toFixed(1)} ms, ${bytes} bytes; pgrouter RSS ${(rss / 2 ** 20).toFixed(1)} MiB`);
    assert.ok(times[15]! < 250, `median scrape ${times[15]} ms`);
  } finally {
    await Promise.all(clients.map((cl) => cl.end()));
  }
});

test('/readyz answers 503 during a SIGTERM drain while /healthz stays 200', async () => {
  const { p: d, port } = await proxy({ drain_timeout: 20 });
  const base = `http://127.0.0.1:${port}`;
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  const cl = new pg.Client({ connectionString: d.url(c.users.superuser.name, c.users.superuser.password) });
  cl.on('error', () => {});
  await cl.connect();
  await cl.query('BEGIN');
  d.proc.kill('SIGTERM');
  await d.waitForLog(/draining/);
  const r = await fetch(`${base}/readyz`);
  assert.equal(r.status, 503);
  assert.match(await r.text(), /draining/);
  assert.equal((await fetch(`${base}/healthz`)).status, 200, 'alive while draining');
  const exited = new Promise<number | null>((r) => (d.proc.exitCode !== null ? r(d.proc.exitCode) : d.proc.once('exit', (code) => r(code))));
  await cl.query('COMMIT').catch(() => undefined);
  await cl.end().catch(() => undefined);
  // The session ended, so the drain is over and pgrouter exits by itself.
  assert.equal(await exited, 0);
});
