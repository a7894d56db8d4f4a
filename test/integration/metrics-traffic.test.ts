// pgrouter's own traffic metrics against real servers: per-node query latency histograms, the
// wait for a session slot and for a backend connection, routing decisions by reason, and bytes
// in and out, each checked against the workload the test drove through pgrouter.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';
import { freePort } from '../../rig/system.ts';
import type { Cluster } from '../../rig/cluster.ts';

let c: Cluster;
let p: ProxyHandle;
let base: string;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

before(async () => {
  c = await getCluster();
  const port = await freePort();
  // Reads to the replica only; one session slot, so a second client waits for it; only nextval and
  // setval count as writing functions (so pg_sleep may run on the replica).
  p = await startProxy(c, {
    conf: {
      metrics_port: port, metrics_listen_addresses: '127.0.0.1', backend_weight0: 0, backend_weight1: 1, num_init_children: 1,
      write_function_list: 'nextval,setval',
    },
  });
  await p.waitForLog(/metrics, probes and status page listening/);
  base = `http://127.0.0.1:${port}`;
});

after(async () => {
  await p.stop();
});

/** One sample line of the Prometheus text format. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

async function scrape(): Promise<Sample[]> {
  return parseText(await (await fetch(`${base}/metrics`)).text());
}

/** The value of the one sample named `name` whose labels include `labels` (0 when absent). */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(hits.length <= 1, `${name} ${JSON.stringify(labels)} matches ${hits.length} samples`);
  return hits[0]?.value ?? 0;
}

/** A histogram's series for `labels`: cumulative buckets by le, sum and count. */
function histogram(samples: Sample[], name: string, labels: Record<string, string>) {
  const match = (s: Sample): boolean => Object.entries(labels).every(([k, v]) => s.labels[k] === v);
  const buckets = samples.filter((s) => s.name === `${name}_bucket` && match(s)).map((s) => [s.labels['le']!, s.value] as const);
  return { buckets, sum: value(samples, `${name}_sum`, labels), count: value(samples, `${name}_count`, labels) };
}

async function client(): Promise<pg.Client> {
  const cl = new pg.Client({ connectionString: p.url(c.users.superuser.name, c.users.superuser.password) });
  cl.on('error', () => undefined); // errors also reject the pending call; an idle client must not throw
  await cl.connect();
  return cl;
}

test('query latency per node: one observation per client request, buckets cumulative up to +Inf', async () => {
  const before = await scrape();
  const cl = await client();
  const reads = 25;
  const writes = 10;
  try {
    await cl.query('CREATE TEMP TABLE IF NOT EXISTS lat_t (x int)');
    for (let i = 0; i < reads; i++) await cl.query('SELECT pg_sleep(0.002)');
    for (let i = 0; i < writes; i++) await cl.query('INSERT INTO lat_t VALUES ($1)', [i]);
  } finally {
    await cl.end();
  }
  const after = await scrape();
  const name = 'pgrouter_query_duration_seconds';
  const r0 = histogram(before, name, { node: '1' });
  const r1 = histogram(after, name, { node: '1' });
  const p1 = histogram(after, name, { node: '0' });
  const p0 = histogram(before, name, { node: '0' });
  // The replica ran exactly the reads; the primary the CREATE and the INSERTs (and nothing else from this client).
  assert.equal(r1.count - r0.count, reads, 'one latency observation per read on the replica');
  assert.equal(p1.count - p0.count, writes + 1, 'one per statement on the primary');
  // Each read slept 2 ms on the server, so the summed latency is at least that.
  assert.ok(r1.sum - r0.sum >= reads * 0.002, `replica latency sum grew by ${r1.sum - r0.sum} s`);
  for (const h of [r1, p1]) {
    assert.equal(h.buckets.at(-1)![0], '+Inf');
    assert.equal(h.buckets.at(-1)![1], h.count, '+Inf bucket equals the count');
    for (let i = 1; i < h.buckets.length; i++) assert.ok(h.buckets[i]![1] >= h.buckets[i - 1]![1], 'cumulative buckets');
  }
  // No read took under 2 ms: the buckets up to 1 ms did not grow for the replica.
  const le1ms = (h: typeof r1): number => h.buckets.find(([le]) => le === '0.001')?.[1] ?? 0;
  assert.equal(le1ms(r1) - le1ms(r0), 0, 'the 2 ms sleeps are above the 1 ms bucket');
});

test('routing decisions are counted by node and reason category', async () => {
  const before = await scrape();
  const cl = await client();
  try {
    await cl.query('CREATE TEMP SEQUENCE IF NOT EXISTS route_seq');
    for (let i = 0; i < 7; i++) await cl.query('SELECT 1');
    for (let i = 0; i < 3; i++) await cl.query("SELECT nextval('route_seq')");
    await cl.query('SET application_name = x');
    await cl.query('BEGIN');
    await cl.query('CREATE TEMP TABLE IF NOT EXISTS route_t (x int)');
    await cl.query('INSERT INTO route_t VALUES (1)');
    await cl.query('SELECT 2'); // in a writing transaction
    await cl.query('COMMIT');
    // Extended protocol: a parameterised read goes to the replica as one decision.
    for (let i = 0; i < 4; i++) await cl.query('SELECT $1::int', [i]);
  } finally {
    await cl.end();
  }
  const after = await scrape();
  const d = (node: string, reason: string): number =>
    value(after, 'pgrouter_routing_decisions_total', { node, reason }) - value(before, 'pgrouter_routing_decisions_total', { node, reason });
  assert.equal(d('1', 'load_balance'), 7 + 4, 'balanced reads on the replica (simple and extended)');
  assert.equal(d('0', 'write_function'), 3, 'nextval keeps the statement on the primary');
  assert.equal(d('0', 'writing_transaction'), 1, 'a read after a write in the same transaction');
  assert.ok(d('0', 'write') >= 3, 'CREATE SEQUENCE, CREATE TABLE and INSERT are writes');
  // SET, BEGIN and COMMIT go to every node the session has open: the primary and, by then, the replica.
  assert.equal(d('0', 'session_command'), 3);
  assert.equal(d('1', 'session_command'), 3);
  const reasons = new Set(after.filter((s) => s.name === 'pgrouter_routing_decisions_total').map((s) => s.labels['reason']));
  assert.ok(!reasons.has('other'), `no decision fell into "other": ${[...reasons].join(', ')}`);
});

test('bytes in and out, for clients and per backend node, cover what the workload sent and received', async () => {
  const before = await scrape();
  const cl = await client();
  const big = 'x'.repeat(200_000);
  try {
    // 200 kB up to the primary and back, and a 300 kB reply from the replica.
    await cl.query('CREATE TEMP TABLE IF NOT EXISTS bytes_t (t text)');
    await cl.query('INSERT INTO bytes_t VALUES ($1)', [big]);
    const r = await cl.query("SELECT repeat('y', 300000) AS t");
    assert.equal(r.rows[0].t.length, 300_000);
  } finally {
    await cl.end();
  }
  await sleep(100); // the session's end is counted once its socket closes
  const after = await scrape();
  const grew = (name: string, labels: Record<string, string>): number => value(after, name, labels) - value(before, name, labels);
  assert.ok(grew('pgrouter_client_bytes_total', { direction: 'in' }) >= 200_000, 'the INSERT parameter came from the client');
  assert.ok(grew('pgrouter_client_bytes_total', { direction: 'out' }) >= 300_000, 'the replica reply went to the client');
  assert.ok(grew('pgrouter_backend_bytes_total', { node: '0', direction: 'out' }) >= 200_000, 'the INSERT went to the primary');
  assert.ok(grew('pgrouter_backend_bytes_total', { node: '1', direction: 'in' }) >= 300_000, 'the reply came from the replica');
  assert.ok(grew('pgrouter_backend_bytes_total', { node: '1', direction: 'out' }) < 100_000, 'the INSERT did not go to the replica');
});

test('pool wait: a session queued for the one num_init_children slot is counted with its wait; backend connection waits per node', async () => {
  const before = await scrape();
  const first = await client();
  const second = client(); // waits: the one slot is taken
  await sleep(400);
  await first.end();
  const cl = await second;
  await cl.query('SELECT 1');
  await cl.end();
  const after = await scrape();
  const w0 = histogram(before, 'pgrouter_pool_wait_seconds', {});
  const w1 = histogram(after, 'pgrouter_pool_wait_seconds', {});
  assert.equal(w1.count - w0.count, 2, 'both sessions were admitted, one observation each');
  assert.ok(w1.sum - w0.sum >= 0.3, `the second session waited about 400 ms (sum grew ${(w1.sum - w0.sum).toFixed(3)} s)`);
  const zero = (h: typeof w1): number => h.buckets[0]![1];
  assert.equal(zero(w1) - zero(w0), 1, 'the first session did not wait');
  const b0 = histogram(before, 'pgrouter_backend_connection_wait_seconds', { node: '0' });
  const b1 = histogram(after, 'pgrouter_backend_connection_wait_seconds', { node: '0' });
  assert.equal(b1.count - b0.count, 2, 'each session leased one primary connection');
});
