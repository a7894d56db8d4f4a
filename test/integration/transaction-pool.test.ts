// pool_mode = transaction end to end, through real pgrouters in front of the rig: pgbench in all
// three protocol modes and TPC-B, node-postgres and postgres.js clients sharing a few backend
// connections, explicit transactions, session-state pinning, named prepared statements with
// colliding names, errors mid-pipeline, a slow statement, a client dropping mid-transaction,
// psql \copy and SHOW pool_nodes. Server-side facts (inet_server_port(), pg_backend_pid(),
// pg_stat_activity, pg_stat_database) prove where things ran; the monitoring connections go
// straight to the nodes.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import postgres from 'postgres';
import { sql, waitForReplication } from '../../rig/cluster.ts';
import { freePort } from '../../rig/system.ts';
import type { Cluster, RigNode } from '../../rig/cluster.ts';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { copyStreams, cstring, dataRowValues, errorField, RawClient, run, waitUntil, type RawMessage } from './clients-helpers.ts';

const PSQL = '/usr/bin/psql';
const PGBENCH = '/usr/bin/pgbench';
/** Unique per run: tables and the pgbench database never collide with another file or run. */
const TAG = `txp_${process.pid}`;
/** A pgbench database of our own (scale 1), so pg_stat_database and balances are ours alone. */
const BENCH_DB = `txp_bench_${process.pid}`;
/**
 * How long the slow statement has been running before the fast client starts: requests that
 * arrive while it is young may legitimately queue behind it; later ones must avoid it.
 */
const SLOW_GRACE_MS = 500;

/** pgpool.conf of every pgrouter here, before each one's own changes. */
const BASE = {
  pool_mode: 'transaction',
  load_balance_mode: 'on',
  backend_weight0: 1,
  backend_weight1: 1,
  num_init_children: 64,
} as const;

let c: Cluster;
/** Transaction mode, load balancing on, weights 1:1, default transaction_pool_size (4). */
let tx: ProxyHandle;
/** Transaction mode, transaction_pool_size = 2. */
let tx2: ProxyHandle;
/** Transaction mode, transaction_pool_size = 1, load balancing off (everything on one primary connection), md5 for clients. */
let tx1: ProxyHandle;
/** Transaction mode, backend_weight0 = 0: every balanceable read on the replica. */
let txr: ProxyHandle;
let tmp: string;
const open = new Set<pg.Client>();

const T = {
  iso: `${TAG}_iso`,
  pin: `${TAG}_pin`,
  err: `${TAG}_err`,
  disc: `${TAG}_disc`,
  copy: `${TAG}_copy`,
  copyLoad: `${TAG}_copyload`,
  begin: `${TAG}_begin`,
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

before(async () => {
  c = await getCluster();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'pgrouter-txp-'));
  await sql(c, c.primary, [
    `CREATE TABLE ${T.iso} (who text, i int)`,
    `CREATE TABLE ${T.pin} (v int)`,
    `CREATE TABLE ${T.err} (v int)`,
    `CREATE TABLE ${T.disc} (v text)`,
    `CREATE TABLE ${T.copyLoad} (k int, i int)`,
    `CREATE TABLE ${T.begin} (who text, v int)`,
    ...Object.values(T).filter((t) => t !== T.copy).map((t) => `GRANT ALL ON ${t} TO PUBLIC`),
  ].join('; '));
  await sql(c, c.primary, `CREATE DATABASE ${BENCH_DB}`);
  const su = c.users.superuser;
  const init = await run(PGBENCH, ['-i', '-s', '1', '-q', '-h', c.primary.socketDir, '-p', String(c.primary.port), '-U', su.name, BENCH_DB]);
  assert.equal(init.code, 0, init.stderr);
  await waitForReplication(c);
  [tx, tx2, tx1, txr] = await Promise.all([
    startProxy(c, { conf: { ...BASE } }),
    startProxy(c, { conf: { ...BASE, transaction_pool_size: 2 } }),
    startProxy(c, {
      conf: { ...BASE, load_balance_mode: 'off', transaction_pool_size: 1 },
      hba: ['host all all 127.0.0.1/32 md5', 'local all all trust'].join('\n') + '\n',
    }),
    startProxy(c, { conf: { ...BASE, backend_weight0: 0, backend_weight1: 1 } }),
  ]);
});

after(async () => {
  for (const cl of open) await cl.end().catch(() => undefined);
  await Promise.all([tx, tx2, tx1, txr].map((p) => p?.stop('SIGKILL').catch(() => undefined)));
  if (c) {
    await sql(c, c.primary, `DROP TABLE IF EXISTS ${Object.values(T).join(', ')}`).catch(() => undefined);
    await sql(c, c.primary, `DROP DATABASE IF EXISTS ${BENCH_DB} WITH (FORCE)`).catch(() => undefined);
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Helpers

type User = keyof Cluster['users'];

/** A connected node-postgres client through `p` (errors outside a query are swallowed). */
async function connect(p: ProxyHandle, o: { user?: User; database?: string } = {}): Promise<pg.Client> {
  const u = c.users[o.user ?? 'superuser'];
  const cl = new pg.Client({
    host: p.host,
    port: p.port,
    user: u.name,
    password: u.password,
    database: o.database ?? c.database,
    connectionTimeoutMillis: 10_000,
    query_timeout: 20_000,
  });
  cl.on('error', () => undefined);
  open.add(cl);
  await cl.connect();
  return cl;
}

/** `n` connected clients; if any fails to connect, the others are closed and the error thrown. */
async function connectMany(p: ProxyHandle, n: number): Promise<pg.Client[]> {
  const settled = await Promise.allSettled(Array.from({ length: n }, () => connect(p)));
  const ok = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await close(...ok);
    throw failed.reason;
  }
  return ok;
}

async function close(...cls: pg.Client[]): Promise<void> {
  await Promise.all(cls.map(async (cl) => {
    await cl.end().catch(() => undefined);
    open.delete(cl);
  }));
}

/** The first row of a query. */
async function row<R extends Record<string, unknown>>(cl: pg.Client, text: string, values?: unknown[]): Promise<R> {
  const r = await cl.query<R>(text, values);
  const first = r.rows[0];
  assert.ok(first, `no row from ${text}`);
  return first;
}

/** The superuser's SQL directly on a node (Unix socket), bypassing pgrouter. */
const direct = (n: RigNode, q: string, database = c.database): Promise<string> => sql(c, n, q, { database });

/** Asserts `p` rejects with SQLSTATE `code`. */
async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: Error & { code?: string }) => {
    assert.equal(e.code, code, `expected SQLSTATE ${code}, got ${e.code}: ${e.message}`);
    return true;
  });
}

/** pgbench through `p` against the pgbench database; checks exit 0, no failed transaction, no aborted client. */
async function pgbench(p: ProxyHandle, args: string[]): Promise<{ processed: number; out: string }> {
  const su = c.users.superuser;
  const r = await run(PGBENCH, ['-n', '-h', p.host, '-p', String(p.port), '-U', su.name, ...args, BENCH_DB], {
    env: { PGPASSWORD: su.password },
  });
  const out = r.stdout + r.stderr;
  assert.equal(r.code, 0, `pgbench ${args.join(' ')} exited ${r.code ?? r.signal}:\n${out}`);
  assert.doesNotMatch(out, /aborted/i, out);
  assert.match(out, /number of failed transactions: 0 \(/, out);
  const m = /number of transactions actually processed: (\d+)/.exec(out);
  assert.ok(m, out);
  return { processed: Number(m[1]), out };
}

/** psql as the superuser through `p`. */
function psql(p: ProxyHandle, args: string[]): ReturnType<typeof run> {
  const su = c.users.superuser;
  return run(PSQL, ['-X', '-h', p.host, '-p', String(p.port), '-U', su.name, '-d', c.database, ...args], {
    env: { PGPASSWORD: su.password },
  });
}

/** Committed transactions of the pgbench database on a node. */
async function benchXacts(n: RigNode): Promise<number> {
  return Number(await direct(n, `SELECT xact_commit FROM pg_stat_database WHERE datname = '${BENCH_DB}'`, 'postgres'));
}

/** Client backends on a node connected as the superuser to the pgbench database (the monitor itself is in `postgres`). */
async function benchConnections(n: RigNode): Promise<number> {
  return Number(await direct(n,
    `SELECT count(*) FROM pg_stat_activity WHERE datname = '${BENCH_DB}' AND usename = '${c.users.superuser.name}' ` +
    `AND backend_type = 'client backend' AND pid <> pg_backend_pid()`, 'postgres'));
}

/** The same backends as {@link benchConnections}, one line each, for failure messages. */
function benchConnectionDetail(n: RigNode): Promise<string> {
  return direct(n,
    `SELECT pid, backend_start::time(0), state, left(query, 60) FROM pg_stat_activity WHERE datname = '${BENCH_DB}' ` +
    `AND usename = '${c.users.superuser.name}' AND backend_type = 'client backend' AND pid <> pg_backend_pid() ORDER BY backend_start`, 'postgres');
}

/** Background load: `n` clients through `p` running `step(client, k, i)` until stop() is awaited. */
function backgroundLoad(p: ProxyHandle, n: number, step: (cl: pg.Client, k: number, i: number) => Promise<void>): { stop(): Promise<{ count: number; errors: unknown[] }> } {
  let running = true;
  let count = 0;
  const errors: unknown[] = [];
  const done = (async () => {
    const cls = await connectMany(p, n);
    try {
      await Promise.all(cls.map(async (cl, k) => {
        for (let i = 0; running; i++) {
          try {
            await step(cl, k, i);
            count++;
          } catch (e) {
            errors.push(e);
            return;
          }
        }
      }));
    } finally {
      await close(...cls);
    }
  })();
  return {
    async stop() {
      // Let it get going first, so it overlaps whatever it was meant to overlap.
      while (running && count < n && errors.length === 0) await sleep(10);
      running = false;
      await done;
      return { count, errors };
    },
  };
}

/** The two shapes the client tests run through: the default pool, and everything on one primary connection. */
const VIAS: ReadonlyArray<readonly [string, () => ProxyHandle]> = [
  ['[transaction_pool_size 4, balanced]', () => tx],
  ['[one shared primary connection]', () => tx1],
];

const pbe = (text: string): Buffer[] => [serialize.parse({ text }), serialize.bind({}), serialize.execute({})];
const types = (ms: RawMessage[]): string => ms.map((m) => m.type).join('');

// ---------------------------------------------------------------------------------------------
describe('pgbench select-only', () => {
  for (const mode of ['simple', 'extended', 'prepared'] as const) {
    test(`-S -M ${mode}, 48 clients: no failures, reads reach both nodes`, async () => {
      // A pgrouter of its own: stopping it ends its backends, which flushes their statistics
      // to pg_stat_database at once (an idle backend waits up to 10 s). Each client's reads go
      // to its session's load-balance node, drawn at random: with 16 clients, 2 or fewer on one
      // node (under the 15% floor) happened in about 0.4% of runs, and did in CI; with 48, 7 or
      // fewer happens about once in a million.
      const p = await startProxy(c, { conf: { ...BASE } });
      const [p0, r0] = await Promise.all([benchXacts(c.primary), benchXacts(c.replica)]);
      let processed: number;
      try {
        ({ processed } = await pgbench(p, ['-S', '-M', mode, '-c', '48', '-j', '2', '-t', '100']));
      } finally {
        await p.stop('SIGKILL');
      }
      assert.equal(processed, 48 * 100);
      await waitUntil(async () => (await benchConnections(c.primary)) + (await benchConnections(c.replica)) === 0,
        "pgrouter's backends to end", 10_000);
      const [dp, dr] = [(await benchXacts(c.primary)) - p0, (await benchXacts(c.replica)) - r0];
      assert.ok(dp + dr >= processed, `commits counted: primary +${dp}, replica +${dr}, pgbench ${processed}`);
      assert.ok(dp >= processed * 0.15 && dr >= processed * 0.15,
        `reads balanced over both nodes (weights 1:1): primary +${dp}, replica +${dr} of ${processed}`);
    });
  }

  test('-S -M prepared, 16 clients on a single shared connection (transaction_pool_size = 1): same statement names, no failures', async () => {
    const { processed } = await pgbench(tx1, ['-S', '-M', 'prepared', '-c', '16', '-j', '2', '-t', '200']);
    assert.equal(processed, 16 * 200);
  });

  test('at most transaction_pool_size (2) backend connections per node while 16 clients run', async () => {
    const bench = pgbench(tx2, ['-S', '-M', 'extended', '-c', '16', '-j', '2', '-t', '500']);
    let finished = false;
    void bench.then(() => (finished = true), () => (finished = true));
    const samples: Array<[number, number]> = [];
    let overDetail = '';
    while (!finished) {
      const sample = await Promise.all([benchConnections(c.primary), benchConnections(c.replica)]);
      samples.push(sample);
      if (overDetail === '' && (sample[0] > 2 || sample[1] > 2)) {
        const [dp, dr] = await Promise.all([benchConnectionDetail(c.primary), benchConnectionDetail(c.replica)]);
        overDetail = `\nprimary backends (pid|backend_start|state|last query):\n${dp}\nreplica backends:\n${dr}`;
      }
      await sleep(20);
    }
    const { processed } = await bench;
    assert.equal(processed, 16 * 500);
    const maxP = Math.max(0, ...samples.map((s) => s[0]));
    const maxR = Math.max(0, ...samples.map((s) => s[1]));
    assert.ok(samples.length >= 3, `only ${samples.length} samples taken while pgbench ran`);
    assert.ok(maxP >= 1, `the monitor saw pgrouter's connections to the primary: ${JSON.stringify(samples)}`);
    assert.ok(maxP <= 2, `connections to the primary: max ${maxP} > transaction_pool_size 2; samples ${JSON.stringify(samples)}${overDetail}`);
    assert.ok(maxR <= 2, `connections to the replica: max ${maxR} > transaction_pool_size 2; samples ${JSON.stringify(samples)}${overDetail}`);
  });
});

// ---------------------------------------------------------------------------------------------
describe('pgbench TPC-B', () => {
  const balances = async (): Promise<number[]> =>
    (await direct(c.primary,
      'SELECT (SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts), (SELECT coalesce(sum(tbalance), 0) FROM pgbench_tellers), ' +
      '(SELECT coalesce(sum(bbalance), 0) FROM pgbench_branches), (SELECT coalesce(sum(delta), 0) FROM pgbench_history), ' +
      '(SELECT count(*) FROM pgbench_history)', BENCH_DB)).split('|').map(Number);

  for (const mode of ['simple', 'prepared'] as const) {
    test(`default script -M ${mode}, 8 clients: every transaction commits whole`, async () => {
      const [a0, t0, b0, d0, n0] = await balances();
      const { processed } = await pgbench(tx, ['-M', mode, '-c', '8', '-j', '2', '-t', '200']);
      assert.equal(processed, 8 * 200);
      const [a1, t1, b1, d1, n1] = await balances();
      assert.equal(n1! - n0!, 8 * 200, 'one history row per transaction');
      assert.equal(a1! - a0!, d1! - d0!, 'sum(abalance) moved by sum(delta)');
      assert.equal(t1! - t0!, d1! - d0!, 'sum(tbalance) moved by sum(delta)');
      assert.equal(b1! - b0!, d1! - d0!, 'sum(bbalance) moved by sum(delta)');
      // Nothing left open behind.
      assert.equal(await direct(c.primary, `SELECT count(*) FROM pg_stat_activity WHERE datname = '${BENCH_DB}' AND state LIKE 'idle in transaction%'`, 'postgres'), '0');
    });
  }
});

// ---------------------------------------------------------------------------------------------
describe('routing and sharing', () => {
  test('reads are balanced as in Pgpool-II: each session keeps its node; with statement_level_load_balance each statement is chosen', async () => {
    const cls = await connectMany(tx, 40);
    const lvl = await startProxy(c, { conf: { ...BASE, statement_level_load_balance: 'on' } });
    const one = await connect(lvl);
    try {
      const ports = await Promise.all(cls.map(async (cl) => (await row<{ port: number }>(cl, 'SELECT inet_server_port() AS port')).port));
      assert.deepEqual(new Set(ports), new Set([c.primary.port, c.replica.port]), `ports: ${ports.join(',')}`);
      // statement_level_load_balance off (the default): a session's reads stay on its node.
      for (const [i, cl] of cls.slice(0, 5).entries()) {
        const again: number[] = [];
        for (let k = 0; k < 10; k++) again.push((await row<{ port: number }>(cl, 'SELECT inet_server_port() AS port')).port);
        assert.deepEqual(new Set(again), new Set([ports[i]]), `session ${i}: ${again.join(',')}`);
      }
      const mine: number[] = [];
      for (let i = 0; i < 40; i++) mine.push((await row<{ port: number }>(one, 'SELECT inet_server_port() AS port')).port);
      assert.deepEqual(new Set(mine), new Set([c.primary.port, c.replica.port]), `one client's ports: ${mine.join(',')}`);
    } finally {
      await close(...cls, one);
      await lvl.stop('SIGKILL');
    }
  });

  test('weights: primary weight 0 sends every read to the replica, writes and explicit transactions to the primary', async () => {
    const cl = await connect(txr);
    try {
      for (let i = 0; i < 20; i++) {
        const r = i % 2 === 0
          ? await row<{ port: number }>(cl, 'SELECT inet_server_port() AS port')
          : await row<{ port: number }>(cl, 'SELECT inet_server_port() AS port, $1::int AS i', [i]);
        assert.equal(r.port, c.replica.port, `read ${i}`);
      }
      const w = await row<{ port: number }>(cl, `INSERT INTO ${T.pin} VALUES (1) RETURNING inet_server_port() AS port`);
      assert.equal(w.port, c.primary.port, 'a write goes to the primary');
      await cl.query('BEGIN');
      const inTx = await row<{ port: number }>(cl, 'SELECT inet_server_port() AS port');
      await cl.query('COMMIT');
      assert.equal(inTx.port, c.primary.port, 'an explicit transaction runs on the primary');
    } finally {
      await close(cl);
    }
  });

  test('transaction_pool_size = 1: ten clients share one backend connection and each gets exactly its own replies', async () => {
    const cls = await connectMany(tx1, 10);
    try {
      const pids = new Set<number>();
      await Promise.all(cls.map(async (cl, k) => {
        for (let i = 0; i < 20; i++) {
          const v = k * 1000 + i;
          const r = i % 2 === 0
            ? await row<{ pid: number; v: number; port: number }>(cl, `SELECT pg_backend_pid() AS pid, ${v} AS v, inet_server_port() AS port`)
            : await row<{ pid: number; v: number; port: number }>(cl, 'SELECT pg_backend_pid() AS pid, $1::int AS v, inet_server_port() AS port', [v]);
          assert.equal(r.v, v, `client ${k} statement ${i} got someone else's reply`);
          assert.equal(r.port, c.primary.port);
          pids.add(r.pid);
        }
      }));
      assert.equal(pids.size, 1, `backends used: ${[...pids].join(',')}`);
      const held = await direct(c.primary,
        `SELECT count(*) FROM pg_stat_activity WHERE datname = '${c.database}' AND usename = '${c.users.superuser.name}' ` +
        `AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND pid = ${[...pids][0]!}`);
      assert.equal(held, '1', 'the shared connection is a real backend of the primary');
    } finally {
      await close(...cls);
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('READ ONLY transactions (transaction_read_only_load_balance)', () => {
  /** Where a transaction ran: its server's port, and whether that server is a standby. */
  const WHERE = 'SELECT inet_server_port() AS port, pg_is_in_recovery() AS standby, pg_backend_pid() AS pid';
  type Where = { port: number; standby: boolean; pid: number };

  test('BEGIN READ ONLY, START TRANSACTION ... READ ONLY and BEGIN; SET TRANSACTION READ ONLY run on the load-balance replica, each statement on one backend; other transactions on the primary', async () => {
    const cl = await connect(txr);
    try {
      const shapes: Array<{ begin: string[]; standby: boolean }> = [
        { begin: ['BEGIN READ ONLY'], standby: true },
        { begin: ['START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY'], standby: true },
        { begin: ['BEGIN', 'SET TRANSACTION READ ONLY'], standby: true },
        { begin: ['BEGIN', 'SET transaction_read_only = on'], standby: true },
        { begin: ['BEGIN'], standby: false },
        { begin: ['BEGIN READ WRITE'], standby: false },
        // A standby has no SERIALIZABLE: such a transaction stays on the primary.
        { begin: ['BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY'], standby: false },
        { begin: ['BEGIN READ ONLY', 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE'], standby: false },
      ];
      for (const { begin, standby } of shapes) {
        for (const b of begin) await cl.query(b);
        const first = await row<Where>(cl, WHERE);
        const second = await row<Where>(cl, WHERE);
        const ro = await row<{ ro: string }>(cl, "SELECT current_setting('transaction_read_only') AS ro");
        await cl.query('COMMIT');
        const what = begin.join('; ');
        assert.equal(first.standby, standby, `${what}: ran on ${first.port}`);
        assert.equal(first.port, standby ? c.replica.port : c.primary.port, what);
        assert.equal(second.pid, first.pid, `${what}: both statements on one backend`);
        if (standby) assert.equal(ro.ro, 'on', what);
      }
      const w = await row<{ port: number }>(cl, `INSERT INTO ${T.pin} VALUES (2) RETURNING inet_server_port() AS port`);
      assert.equal(w.port, c.primary.port, 'a write after them goes to the primary');
      // READ WRITE again before its first statement: a transaction that may write, on the primary.
      await cl.query('BEGIN READ ONLY');
      await cl.query('SET transaction_read_only = off');
      const again = await row<{ port: number }>(cl, `INSERT INTO ${T.pin} VALUES (8) RETURNING inet_server_port() AS port`);
      await cl.query('COMMIT');
      assert.equal(again.port, c.primary.port);
    } finally {
      await close(cl);
    }
  });

  test('a READ ONLY transaction whose first statement a standby refuses (pg_current_wal_lsn()) runs on the primary', async () => {
    // A standby answers pg_current_wal_lsn() with "recovery is in progress".
    const cl = await connect(txr);
    try {
      for (const values of [undefined, [1]]) {
        const how = values ? 'extended protocol' : 'simple protocol';
        await cl.query('BEGIN READ ONLY');
        const first = await row<{ port: number; ok: boolean }>(
          cl,
          `SELECT inet_server_port() AS port, pg_current_wal_lsn() IS NOT NULL${values ? ' AND $1::int = 1' : ''} AS ok`,
          values,
        );
        const next = await row<Where>(cl, WHERE);
        const ro = await row<{ ro: string }>(cl, "SELECT current_setting('transaction_read_only') AS ro");
        await cl.query('COMMIT');
        assert.deepEqual([first.port, first.ok], [c.primary.port, true], how);
        assert.deepEqual([next.port, ro.ro], [c.primary.port, 'on'], `${how}: the rest of the transaction there too, still READ ONLY`);
      }
      await cl.query('BEGIN READ ONLY');
      const other = await row<Where>(cl, WHERE);
      await cl.query('COMMIT');
      assert.equal(other.port, c.replica.port, 'other READ ONLY transactions still on the replica');
    } finally {
      await close(cl);
    }
  });

  test('the extended protocol (a prepared BEGIN READ ONLY) and transaction_defer_begin = off: on the replica too', async () => {
    const off = await startProxy(c, { conf: { ...BASE, backend_weight0: 0, backend_weight1: 1, transaction_defer_begin: 'off' } });
    const a = await connect(txr);
    const b = await connect(off);
    try {
      for (const [name, cl] of [['deferred', a], ['not deferred', b]] as const) {
        await cl.query({ name: 'ro_begin', text: 'BEGIN READ ONLY' });
        const r = await row<Where>(cl, WHERE);
        await cl.query({ name: 'ro_commit', text: 'COMMIT' });
        assert.equal(r.port, c.replica.port, `${name}: ran on ${r.port}`);
        await cl.query('BEGIN READ ONLY');
        const q = await row<Where>(cl, WHERE);
        await cl.query('COMMIT');
        assert.equal(q.port, c.replica.port, `${name}, simple protocol: ran on ${q.port}`);
      }
    } finally {
      await close(a, b);
      await off.stop('SIGKILL');
    }
  });

  test('a write in it fails as it would on the primary (25006); set_config(..., true) and a cursor without HOLD work there; the session writes afterwards', async () => {
    const cl = await connect(txr);
    try {
      await cl.query('BEGIN READ ONLY');
      await rejectsWith(cl.query(`INSERT INTO ${T.pin} VALUES (3)`), '25006');
      await cl.query('ROLLBACK');
      await cl.query('BEGIN READ ONLY');
      const cfg = await row<{ v: string; port: number }>(cl, "SELECT set_config('application_name', 'txp_ro', true) AS v, inet_server_port() AS port");
      assert.equal(cfg.v, 'txp_ro');
      assert.equal(cfg.port, c.replica.port);
      await cl.query('DECLARE txp_cur CURSOR FOR SELECT g FROM generate_series(1, 5) g');
      const fetched = await cl.query<{ g: number }>('FETCH 3 FROM txp_cur');
      assert.deepEqual(fetched.rows.map((x) => x.g), [1, 2, 3]);
      assert.equal((await row<{ port: number }>(cl, 'SELECT inet_server_port() AS port')).port, c.replica.port, 'still on the replica');
      await cl.query('COMMIT');
      assert.notEqual((await row<{ v: string }>(cl, "SELECT current_setting('application_name') AS v")).v, 'txp_ro', 'the local setting ended with the transaction');
      const w = await row<{ port: number }>(cl, `INSERT INTO ${T.pin} VALUES (4) RETURNING inet_server_port() AS port`);
      assert.equal(w.port, c.primary.port);
    } finally {
      await close(cl);
    }
  });

  test('a statement that would leave session state on the standby fails the transaction with 0A000, and the session is not stuck there', async () => {
    const cl = await connect(txr);
    try {
      const pinning = [
        'PREPARE txp_ro_p AS SELECT 1',
        "SELECT set_config('application_name', 'txp_ro2', false)",
        'SET statement_timeout = 12345',
        'SELECT pg_advisory_lock(424242)',
        'DECLARE txp_hold CURSOR WITH HOLD FOR SELECT 1',
      ];
      for (const stmt of pinning) {
        await cl.query('BEGIN READ ONLY');
        assert.equal((await row<{ port: number }>(cl, 'SELECT inet_server_port() AS port')).port, c.replica.port);
        await assert.rejects(cl.query(stmt), (e: Error & { code?: string; hint?: string }) => {
          assert.equal(e.code, '0A000', `${stmt}: ${e.code} ${e.message}`);
          assert.match(e.message, /READ ONLY transaction on a standby/);
          assert.match(e.hint ?? '', /transaction_read_only_load_balance/);
          return true;
        });
        // As after any error in a transaction block: aborted until it ends.
        await rejectsWith(cl.query('SELECT 1'), '25P02');
        await cl.query('ROLLBACK');
        const w = await row<{ port: number }>(cl, `INSERT INTO ${T.pin} VALUES (5) RETURNING inet_server_port() AS port`);
        assert.equal(w.port, c.primary.port, `${stmt}: the session still writes on the primary`);
      }
      // Nothing of them was left anywhere: the name is free, the setting and the lock are not there.
      await cl.query('PREPARE txp_ro_p AS SELECT 2 AS v');
      assert.equal((await row<{ v: number }>(cl, 'EXECUTE txp_ro_p')).v, 2);
      assert.equal((await direct(c.replica, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 424242")).trim(), '0');
      assert.equal((await direct(c.replica, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'txp_ro2'")).trim(), '0');
    } finally {
      await close(cl);
    }
  });

  test('the same in the extended protocol, a batch ended by Sync or by Flush: the error where the batch began, then the aborted state until ROLLBACK', async () => {
    const md5 = c.users.md5;
    const rc = await RawClient.connect({ host: txr.host, port: txr.port, user: md5.name, password: md5.password, database: c.database });
    const status = (ms: RawMessage[]): string => String.fromCharCode(ms[ms.length - 1]!.body[0]!);
    try {
      for (const end of ['sync', 'flush'] as const) {
        rc.write(serialize.query('BEGIN READ ONLY'));
        assert.equal(status(await rc.untilReady()), 'T');
        rc.write(serialize.query('SELECT inet_server_port()'));
        const port = await rc.untilReady();
        assert.deepEqual(dataRowValues(port.find((m) => m.type === 'D')!.body), [String(c.replica.port)], end);
        rc.write(...pbe('SELECT pg_advisory_lock(434343)'), end === 'sync' ? serialize.sync() : serialize.flush());
        if (end === 'flush') {
          const e = await rc.next();
          assert.equal(e.type, 'E', `${end}: ${e.type}`);
          assert.equal(errorField(e.body), '0A000');
          rc.write(serialize.sync());
        }
        const got = await rc.untilReady();
        if (end === 'sync') {
          assert.equal(types(got), 'EZ', `${end}: the error alone, where the batch began`);
          assert.equal(errorField(got[0]!.body), '0A000');
        } else assert.equal(types(got), 'Z', end);
        assert.equal(status(got), 'E', `${end}: the transaction is aborted`);
        rc.write(serialize.query('ROLLBACK'));
        assert.equal(status(await rc.untilReady()), 'I');
        rc.write(serialize.query(`INSERT INTO ${T.pin} VALUES (12) RETURNING inet_server_port()`));
        const w = await rc.untilReady();
        assert.deepEqual(dataRowValues(w.find((m) => m.type === 'D')!.body), [String(c.primary.port)], `${end}: the session writes on the primary`);
      }
      assert.equal((await direct(c.replica, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 434343")).trim(), '0');
    } finally {
      rc.terminate();
    }
  });

  test('the standby ends the transaction\'s backend: the session goes on (08006, then 25P02 until ROLLBACK; or 08006 at COMMIT), in both protocols', async () => {
    const cl = await connect(txr);
    const kill = async (pid: number): Promise<void> => {
      await direct(c.replica, `SELECT pg_terminate_backend(${pid})`);
      await sleep(300);
    };
    try {
      // Told at the next statement, aborted until the client ends the transaction.
      await cl.query('BEGIN READ ONLY');
      const first = await row<Where>(cl, WHERE);
      assert.equal(first.port, c.replica.port);
      await kill(first.pid);
      await assert.rejects(cl.query('SELECT 1'), (e: Error & { code?: string }) => {
        assert.equal(e.code, '08006', e.message);
        assert.match(e.message, /READ ONLY transaction/);
        return true;
      });
      await rejectsWith(cl.query('SELECT 2'), '25P02');
      await rejectsWith(cl.query({ text: 'SELECT $1::int', values: [3] }), '25P02');
      const rb = await cl.query({ text: 'ROLLBACK', queryMode: 'extended' } as pg.QueryConfig);
      assert.equal(rb.command, 'ROLLBACK');
      const after = await row<{ port: number }>(cl, 'SELECT inet_server_port() AS port');
      assert.equal(after.port, c.replica.port, 'later reads still go to the replica');
      // Never told before its COMMIT: the COMMIT fails, and the transaction is over.
      await cl.query('BEGIN READ ONLY');
      const second = await row<Where>(cl, WHERE);
      await kill(second.pid);
      await rejectsWith(cl.query('COMMIT'), '08006');
      assert.equal((await row<{ v: number }>(cl, 'SELECT 7 AS v')).v, 7, 'the session is out of the transaction');
      const w = await row<{ port: number }>(cl, `INSERT INTO ${T.pin} VALUES (6) RETURNING inet_server_port() AS port`);
      assert.equal(w.port, c.primary.port);
    } finally {
      await close(cl);
    }
  });

  test('disable_load_balance_on_write: trans_transaction after a write in a transaction, and always after any write, keep READ ONLY transactions on the primary', async () => {
    const trans = await startProxy(c, { conf: { ...BASE, backend_weight0: 0, backend_weight1: 1, disable_load_balance_on_write: 'trans_transaction' } });
    const always = await startProxy(c, { conf: { ...BASE, backend_weight0: 0, backend_weight1: 1, disable_load_balance_on_write: 'always' } });
    const a = await connect(trans);
    const b = await connect(always);
    const roPort = async (cl: pg.Client): Promise<number> => {
      await cl.query('BEGIN READ ONLY');
      const r = await row<{ port: number }>(cl, 'SELECT inet_server_port() AS port');
      await cl.query('COMMIT');
      return r.port;
    };
    try {
      // trans_transaction: an autocommit write does not count, one in a transaction does.
      assert.equal(await roPort(a), c.replica.port, 'trans_transaction, before any write');
      await a.query(`INSERT INTO ${T.pin} VALUES (9)`);
      assert.equal(await roPort(a), c.replica.port, 'trans_transaction, after an autocommit write');
      await a.query('BEGIN');
      await a.query(`INSERT INTO ${T.pin} VALUES (10)`);
      await a.query('COMMIT');
      assert.equal(await roPort(a), c.primary.port, 'trans_transaction, after a write in a transaction');
      assert.equal((await row<{ port: number }>(a, 'SELECT inet_server_port() AS port')).port, c.replica.port, 'its autocommit reads are still balanced');
      // always: any write.
      assert.equal(await roPort(b), c.replica.port, 'always, before any write');
      await b.query(`INSERT INTO ${T.pin} VALUES (11)`);
      assert.equal(await roPort(b), c.primary.port, 'always, after an autocommit write');
    } finally {
      await close(a, b);
      await trans.stop('SIGKILL');
      await always.stop('SIGKILL');
    }
  });

  test('transaction_read_only_load_balance = off, and a replica that cannot be reached: the transaction runs on the primary, without an error', async () => {
    const off = await startProxy(c, { conf: { ...BASE, backend_weight0: 0, backend_weight1: 1, transaction_read_only_load_balance: 'off' } });
    const dead = await startProxy(c, { conf: { ...BASE, backend_weight0: 0, backend_weight1: 1, backend_port1: await freePort() } });
    const a = await connect(off);
    const b = await connect(dead);
    try {
      for (const [name, cl] of [['off', a], ['replica unreachable', b]] as const) {
        await cl.query('BEGIN READ ONLY');
        const r = await row<Where>(cl, WHERE);
        await cl.query('COMMIT');
        assert.equal(r.port, c.primary.port, `${name}: ran on ${r.port}`);
      }
      // (The first read of a function pgrouter has not looked up yet goes to the primary.)
      const reads: number[] = [];
      for (let i = 0; i < 3; i++) reads.push((await row<{ port: number }>(a, 'SELECT inet_server_port() AS port')).port);
      assert.equal(reads[2], c.replica.port, `off: an autocommit read is still balanced (${reads.join(', ')})`);
    } finally {
      await close(a, b);
      await off.stop('SIGKILL');
      await dead.stop('SIGKILL');
    }
  });
});

describe('Terminate', () => {
  test('a read, a write and Terminate in one write: both are answered in order, then the connection closes cleanly', async () => {
    // txr balances every read to the replica, so the INSERT waits for the read's lane to finish.
    const md5 = c.users.md5;
    const rc = await RawClient.connect({ host: txr.host, port: txr.port, user: md5.name, password: md5.password, database: c.database });
    const rows = rc.countDataRows();
    rc.write(
      serialize.query(`SELECT repeat('x', 100) FROM generate_series(1, 20000)`),
      serialize.query(`INSERT INTO ${T.iso} VALUES ('terminate', 1)`),
      serialize.end(),
    );
    const tags = [...(await rc.untilReady()), ...(await rc.untilReady())].filter((m) => m.type === 'C').map((m) => cstring(m.body));
    await waitUntil(() => rc.closed, 'pgrouter to close after Terminate', 5000);
    assert.equal(rows(), 20000);
    assert.deepEqual(tags, ['SELECT 20000', 'INSERT 0 1']);
    assert.equal(rc.socketError, undefined, `no reset: ${rc.socketError?.message}`);
    assert.equal(await direct(c.primary, `SELECT count(*) FROM ${T.iso} WHERE who = 'terminate'`), '1');
  });
});

describe('explicit transactions', () => {
  test('BEGIN ... ROLLBACK on one client is invisible to and untouched by other clients meanwhile', async () => {
    const a = await connect(tx);
    const bs = await connectMany(tx, 3);
    try {
      await a.query('BEGIN');
      await a.query(`INSERT INTO ${T.iso} VALUES ('A', 0)`);
      const first = await row<{ pid: number; port: number }>(a, 'SELECT pg_backend_pid() AS pid, inet_server_port() AS port');
      assert.equal(first.port, c.primary.port, 'the transaction runs on the primary');
      const pidA = first.pid;
      const aLoop = (async () => {
        for (let k = 1; k <= 10; k++) {
          await a.query(`INSERT INTO ${T.iso} VALUES ('A', $1)`, [k]);
          const r = await row<{ pid: number; port: number; n: number; fresh: boolean }>(a,
            `SELECT pg_backend_pid() AS pid, inet_server_port() AS port, count(*)::int AS n, now() = statement_timestamp() AS fresh FROM ${T.iso} WHERE who = 'A'`);
          assert.deepEqual([r.pid, r.port, r.n, r.fresh], [pidA, c.primary.port, k + 1, false], `A's statement ${k} inside its transaction`);
          await sleep(5);
        }
      })();
      const bLoops = bs.map(async (b, j) => {
        for (let i = 0; i < 50; i++) {
          const w = await row<{ pid: number; a: number }>(b,
            `INSERT INTO ${T.iso} VALUES ('B', $1) RETURNING pg_backend_pid() AS pid, (SELECT count(*) FROM ${T.iso} WHERE who = 'A')::int AS a`,
            [j * 100 + i]);
          assert.notEqual(w.pid, pidA, `B${j}'s INSERT ${i} ran inside A's transaction`);
          assert.equal(w.a, 0, `B${j}'s INSERT ${i} saw A's uncommitted rows`);
          const s = await row<{ a: number; pid: number }>(b,
            `SELECT count(*) FILTER (WHERE who = 'A')::int AS a, pg_backend_pid() AS pid FROM ${T.iso}`);
          assert.equal(s.a, 0, `B${j}'s SELECT ${i} saw A's uncommitted rows`);
          assert.notEqual(s.pid, pidA, `B${j}'s SELECT ${i} ran inside A's transaction`);
        }
      });
      await Promise.all([aLoop, ...bLoops]);
      await a.query('ROLLBACK');
      assert.equal(await direct(c.primary, `SELECT count(*) FROM ${T.iso} WHERE who = 'A'`), '0', "A's rows are gone");
      assert.equal(await direct(c.primary, `SELECT count(*) FROM ${T.iso} WHERE who = 'B'`), '150', "all of B's rows are there");
      // After ROLLBACK A is an autocommit client again: a fresh transaction per statement.
      const r = await row<{ fresh: boolean; x: string | null }>(a, 'SELECT now() = statement_timestamp() AS fresh, txid_current_if_assigned()::text AS x');
      assert.deepEqual([r.fresh, r.x], [true, null]);
    } finally {
      await close(a, ...bs);
    }
  });

  test('COMMIT of a transaction makes its rows visible; a failed transaction block is rolled back on ROLLBACK', async () => {
    const a = await connect(tx);
    try {
      await a.query('BEGIN');
      await a.query(`INSERT INTO ${T.iso} VALUES ('C', 1)`);
      await a.query(`INSERT INTO ${T.iso} VALUES ('C', 2)`);
      await a.query('COMMIT');
      assert.equal(await direct(c.primary, `SELECT count(*) FROM ${T.iso} WHERE who = 'C'`), '2');
      await a.query('BEGIN');
      await a.query(`INSERT INTO ${T.iso} VALUES ('D', 1)`);
      await rejectsWith(a.query('SELECT 1/0'), '22012');
      await rejectsWith(a.query('SELECT 1'), '25P02');
      await a.query('ROLLBACK');
      assert.equal(await direct(c.primary, `SELECT count(*) FROM ${T.iso} WHERE who = 'D'`), '0');
      assert.equal((await row<{ v: number }>(a, 'SELECT 7 AS v')).v, 7);
    } finally {
      await close(a);
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('a deferred BEGIN (transaction_defer_begin)', () => {
  /** The same as `tx1` (one shared primary connection) with transaction_defer_begin off. */
  let off: ProxyHandle;
  before(async () => {
    off = await startProxy(c, { conf: { ...BASE, load_balance_mode: 'off', transaction_pool_size: 1, transaction_defer_begin: 'off' } });
  });
  after(async () => {
    await off?.stop('SIGKILL').catch(() => undefined);
  });

  /** How long after the transaction began (now()) the statement after a 300 ms pause started. */
  async function gapAfterBegin(p: ProxyHandle, begin = 'BEGIN'): Promise<number> {
    const a = await connect(p);
    try {
      await a.query(begin);
      await sleep(300);
      const r = await row<{ ms: number; port: number }>(a,
        'SELECT (extract(epoch FROM statement_timestamp() - now()) * 1000)::float8 AS ms, inet_server_port() AS port');
      await a.query('COMMIT');
      assert.equal(r.port, c.primary.port, 'the transaction runs on the primary');
      return r.ms;
    } finally {
      await close(a);
    }
  }

  test('the BEGIN reaches the server with the first statement: the transaction starts then; with the setting off, at the BEGIN', async () => {
    const deferred = await gapAfterBegin(tx);
    assert.ok(deferred < 100, `transaction began ${deferred} ms before its first statement`);
    const sent = await gapAfterBegin(off);
    assert.ok(sent >= 290, `with transaction_defer_begin = off the transaction began only ${sent} ms before its first statement`);
  });

  test('a BEGIN with options is deferred too and goes out as written (isolation level, READ ONLY)', async () => {
    assert.ok((await gapAfterBegin(tx, 'BEGIN ISOLATION LEVEL REPEATABLE READ')) < 100, 'BEGIN ISOLATION LEVEL deferred');
    assert.ok((await gapAfterBegin(off, 'BEGIN ISOLATION LEVEL REPEATABLE READ')) >= 290, 'sent at once with the setting off');
    const a = await connect(tx);
    try {
      assert.equal((await a.query('START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY')).command, 'START');
      const r = await row<{ iso: string; ro: string }>(a, "SELECT current_setting('transaction_isolation') AS iso, current_setting('transaction_read_only') AS ro");
      assert.deepEqual(r, { iso: 'serializable', ro: 'on' }, 'the options reached the server');
      await assert.rejects(a.query(`INSERT INTO ${T.begin} VALUES ('ro', 1)`), (e: { code?: string }) => e.code === '25006');
      await a.query('ROLLBACK');
      // The session goes on, on shared connections.
      assert.equal((await row<{ v: number }>(a, 'SELECT 3 AS v')).v, 3);
    } finally {
      await close(a);
    }
  });

  test('a client between BEGIN and its first statement holds no server connection: on a pool of one, another client runs meanwhile', async () => {
    for (const [p, deferred] of [[tx1, true], [off, false]] as const) {
      const a = await connect(p, { user: 'md5' });
      const b = await connect(p, { user: 'md5' });
      try {
        await a.query('BEGIN');
        const raced = await Promise.race([b.query('SELECT 1 AS v').then(() => 'ran'), sleep(1000).then(() => 'waited')]);
        assert.equal(raced, deferred ? 'ran' : 'waited', deferred ? 'B waited for A\'s idle BEGIN' : 'with the setting off B ran inside a held connection');
        await a.query(`INSERT INTO ${T.begin} VALUES ('hold', 1)`);
        await a.query('ROLLBACK');
        assert.equal((await row<{ v: number }>(b, 'SELECT 2 AS v')).v, 2);
      } finally {
        await close(a, b);
      }
    }
    assert.equal(await direct(c.primary, `SELECT count(*) FROM ${T.begin} WHERE who = 'hold'`), '0');
  });

  test('the exact replies: BEGIN / START TRANSACTION answered with status T; COMMIT, END, ROLLBACK and ABORT right after, with status I', async () => {
    const md5 = c.users.md5;
    const raw = await RawClient.connect({ host: tx1.host, port: tx1.port, user: md5.name, password: md5.password, database: c.database });
    const ref = await RawClient.connect({ host: c.primary.host, port: c.primary.port, user: md5.name, password: md5.password, database: c.database });
    try {
      const pairs = [['BEGIN', 'COMMIT'], ['start transaction;', 'END'], ['begin work', 'rollback'], ['BEGIN TRANSACTION', 'ABORT']];
      for (const [open, end] of pairs) {
        const seen: string[] = [];
        for (const rc of [ref, raw]) {
          const lines: string[] = [];
          for (const q of [open!, end!]) {
            rc.write(serialize.query(q));
            const ms = await rc.untilReady();
            lines.push(ms.map((m) => (m.type === 'C' ? `C:${cstring(m.body)}` : m.type === 'Z' ? `Z:${String.fromCharCode(m.body[0]!)}` : m.type)).join(' '));
          }
          seen.push(lines.join(' | '));
        }
        assert.equal(seen[1], seen[0], `${open} / ${end}: pgrouter's replies differ from PostgreSQL's`);
      }
    } finally {
      raw.terminate();
      ref.terminate();
    }
  });

  test('the first statement after BEGIN fails: the transaction is aborted as in PostgreSQL, and ROLLBACK ends it', async () => {
    const a = await connect(tx);
    try {
      await a.query('BEGIN');
      await rejectsWith(a.query('SELECT 1/0'), '22012');
      await rejectsWith(a.query('SELECT 1'), '25P02');
      await a.query('ROLLBACK');
      const r = await row<{ fresh: boolean; x: string | null }>(a, 'SELECT now() = statement_timestamp() AS fresh, txid_current_if_assigned()::text AS x');
      assert.deepEqual([r.fresh, r.x], [true, null], 'autocommit again after ROLLBACK');
    } finally {
      await close(a);
    }
  });

  test('first statements of every shape: extended protocol, a multi-statement string, COPY FROM STDIN; COMMIT keeps them, ROLLBACK drops them', async () => {
    for (const [end, who] of [['COMMIT', 'kept'], ['ROLLBACK', 'dropped']] as const) {
      const a = await connect(tx);
      try {
        await a.query('BEGIN');
        await a.query(`INSERT INTO ${T.begin} VALUES ($1, $2)`, [`${who}-ext`, 1]);
        await a.query(end);
        await a.query('BEGIN');
        await a.query(`INSERT INTO ${T.begin} VALUES ('${who}-multi', 1); INSERT INTO ${T.begin} VALUES ('${who}-multi', 2)`);
        await a.query(end);
        await a.query('BEGIN');
        await pipeline(Readable.from([`${who}-copy\t1\n${who}-copy\t2\n${who}-copy\t3\n`]), a.query(copyStreams.from(`COPY ${T.begin} FROM STDIN`)));
        const inside = await row<{ n: number }>(a, `SELECT count(*)::int AS n FROM ${T.begin} WHERE who = '${who}-copy'`);
        assert.equal(inside.n, 3, 'the copied rows are visible inside the transaction');
        await a.query(end);
        assert.equal((await row<{ v: number }>(a, 'SELECT 5 AS v')).v, 5, 'the session goes on after COPY');
      } finally {
        await close(a);
      }
      const counts = await direct(c.primary, `SELECT string_agg(who || '=' || n, ',' ORDER BY who) FROM (SELECT who, count(*) AS n FROM ${T.begin} WHERE who LIKE '${who}-%' GROUP BY who) s`);
      assert.equal(counts, end === 'COMMIT' ? `${who}-copy=3,${who}-ext=1,${who}-multi=2` : '', `after ${end}`);
    }
  });

  test('postgres.js transactions (sql.begin) through it: committed and rolled back as asked', async () => {
    const su = c.users.superuser;
    const js = postgres({ host: tx.host, port: tx.port, user: su.name, password: su.password, database: c.database, max: 2, onnotice: () => undefined });
    try {
      await js.begin(async (q) => {
        await q`INSERT INTO ${q(T.begin)} VALUES ('js-commit', 1)`;
        await q`INSERT INTO ${q(T.begin)} VALUES ('js-commit', 2)`;
      });
      await assert.rejects(js.begin(async (q) => {
        await q`INSERT INTO ${q(T.begin)} VALUES ('js-rollback', 1)`;
        throw new Error('roll it back');
      }), /roll it back/);
      assert.equal(await direct(c.primary, `SELECT string_agg(who || '=' || n, ',' ORDER BY who) FROM (SELECT who, count(*) AS n FROM ${T.begin} WHERE who LIKE 'js-%' GROUP BY who) s`), 'js-commit=2');
    } finally {
      await js.end();
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('pinning on session state', () => {
  test('SET statement_timeout / application_name: the client has its settings on every lane it uses; nobody else ever sees them', async () => {
    const a = await connect(tx);
    const others = await connectMany(tx, 8);
    try {
      await a.query("SET statement_timeout = '12345ms'");
      await a.query("SET application_name = 'pinned_a'");
      const aLoop = (async () => {
        for (let i = 0; i < 30; i++) {
          assert.equal((await row<{ statement_timeout: string }>(a, 'SHOW statement_timeout')).statement_timeout, '12345ms', `A's SHOW ${i}`);
          if (i % 5 === 0) {
            const r = await row<{ app: string; st: string }>(a,
              i % 2 === 0
                ? "SELECT current_setting('application_name') AS app, current_setting('statement_timeout') AS st"
                : `INSERT INTO ${T.pin} VALUES (${i}) RETURNING current_setting('application_name') AS app, current_setting('statement_timeout') AS st`);
            assert.deepEqual([r.app, r.st], ['pinned_a', '12345ms'], `A's settings at ${i}`);
          }
        }
      })();
      const seen: string[] = [];
      const oLoops = others.map(async (o) => {
        for (let i = 0; i < 30; i++) {
          const st = (await row<{ statement_timeout: string }>(o, 'SHOW statement_timeout')).statement_timeout;
          const r = await row<{ app: string; pid: number; port: number }>(o,
            i % 2 === 0
              ? "SELECT current_setting('application_name') AS app, pg_backend_pid() AS pid, inet_server_port() AS port"
              : `INSERT INTO ${T.pin} VALUES (${i}) RETURNING current_setting('application_name') AS app, pg_backend_pid() AS pid, inet_server_port() AS port`);
          seen.push(`${st}|${r.app}`);
          assert.notEqual(st, '12345ms', `another client saw A's statement_timeout (statement ${i})`);
          assert.notEqual(r.app, 'pinned_a', `another client saw A's application_name (statement ${i})`);
        }
      });
      await Promise.all([aLoop, ...oLoops]);
      assert.equal(seen.length, 8 * 30);
    } finally {
      await close(a, ...others);
    }
    // After A is gone its settings do not leak to anyone either (a lane keeps them until the next
    // session to use it sets its own).
    const later = await connectMany(tx, 10);
    try {
      await Promise.all(later.map(async (cl) => {
        for (let i = 0; i < 5; i++) {
          assert.notEqual((await row<{ statement_timeout: string }>(cl, 'SHOW statement_timeout')).statement_timeout, '12345ms');
          assert.notEqual((await row<{ app: string }>(cl, `INSERT INTO ${T.pin} VALUES (0) RETURNING current_setting('application_name') AS app`)).app, 'pinned_a');
        }
      }));
    } finally {
      await close(...later);
    }
  });

  test('many more sessions than transaction_pool_size pin at the same moment: each gets a connection of its own, none waits forever', { timeout: 60_000 }, async () => {
    // A pinned lane leaves its group, which makes room: the group must open lanes for the
    // sessions still waiting (before, past a few times the pool size, some waited for good).
    const cls = await connectMany(tx2, 24);
    try {
      const pids = await Promise.all(cls.map(async (cl, k) => {
        await cl.query(`LISTEN txp_many_${k}`);
        return (await row<{ pid: number }>(cl, 'SELECT pg_backend_pid() AS pid')).pid;
      }));
      assert.equal(new Set(pids).size, 24, 'one backend per pinned session');
      // And unpinned sessions are still served beside them.
      const other = await connect(tx2);
      try {
        assert.equal((await row<{ v: number }>(other, 'SELECT 5 AS v')).v, 5);
      } finally {
        await close(other);
      }
    } finally {
      await close(...cls);
    }
  });

  test('CREATE TEMP TABLE: the temp table stays usable by its creator across statements, and exists for nobody else', async () => {
    const t = await connect(tx);
    const tt = `txp_tmp_${process.pid}`;
    const load = backgroundLoad(tx, 6, async (cl, k, i) => {
      const r = await row<{ v: number }>(cl, 'SELECT $1::int AS v', [k * 1000 + i]);
      assert.equal(r.v, k * 1000 + i);
      if (i % 10 === 0) await rejectsWith(cl.query(`SELECT count(*) FROM pg_temp.${tt}`), '42P01');
    });
    try {
      await t.query(`CREATE TEMP TABLE ${tt} (v int)`);
      for (let i = 1; i <= 10; i++) {
        if (i % 2 === 0) await t.query(`INSERT INTO ${tt} VALUES ($1)`, [i]);
        else await t.query(`INSERT INTO ${tt} VALUES (${i})`);
        await sleep(5);
      }
      const r = await row<{ n: number; s: number; port: number }>(t, `SELECT count(*)::int AS n, sum(v)::int AS s, inet_server_port() AS port FROM ${tt}`);
      assert.deepEqual([r.n, r.s, r.port], [10, 55, c.primary.port]);
      const r2 = await row<{ n: number }>(t, `SELECT count(*)::int AS n FROM ${tt} WHERE v > $1`, [5]);
      assert.equal(r2.n, 5);
    } finally {
      const { count, errors } = await load.stop();
      await close(t);
      assert.deepEqual(errors, []);
      assert.ok(count > 0);
    }
  });

  test('session advisory lock: held across statements by its owner and unlocked by it', async () => {
    const key = 7_000_000 + (process.pid % 1_000_000);
    const a = await connect(tx);
    const b = await connect(tx);
    const load = backgroundLoad(tx, 4, async (cl, k, i) => {
      assert.equal((await row<{ v: number }>(cl, `SELECT ${k * 1000 + i} AS v`)).v, k * 1000 + i);
    });
    try {
      assert.equal((await row<{ l: string }>(a, `SELECT pg_advisory_lock(${key})::text AS l`)).l, '');
      for (let i = 0; i < 10; i++) {
        assert.equal((await row<{ ok: boolean }>(b, `SELECT pg_try_advisory_lock(${key} + 1 + ${i}) AND pg_advisory_unlock(${key} + 1 + ${i}) AS ok`)).ok, true);
        await sleep(5);
      }
      // Held by A's session, so B cannot take it.
      assert.equal((await row<{ got: boolean }>(b, `SELECT pg_try_advisory_lock(${key}) AS got`)).got, false);
      const held = await direct(c.primary, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = ${key} AND granted`);
      assert.equal(held, '1', 'the lock is held on the primary');
      assert.equal((await row<{ u: boolean }>(a, `SELECT pg_advisory_unlock(${key}) AS u`)).u, true, 'A unlocks its own lock (same backend session)');
      assert.equal((await row<{ got: boolean }>(b, `SELECT pg_try_advisory_lock(${key}) AS got`)).got, true);
      assert.equal((await row<{ u: boolean }>(b, `SELECT pg_advisory_unlock(${key}) AS u`)).u, true);
    } finally {
      const { errors } = await load.stop();
      await close(a, b);
      assert.deepEqual(errors, []);
    }
  });

  test('SQL PREPARE / EXECUTE / DEALLOCATE work for their client only', async () => {
    const a = await connect(tx);
    const b = await connect(tx);
    const load = backgroundLoad(tx, 4, async (cl, k, i) => {
      assert.equal((await row<{ v: number }>(cl, 'SELECT $1::int AS v', [k * 1000 + i])).v, k * 1000 + i);
    });
    try {
      await a.query('PREPARE txp_stmt (int) AS SELECT $1 * 7 AS v');
      for (let i = 0; i < 10; i++) {
        assert.equal((await row<{ v: number }>(a, `EXECUTE txp_stmt(${i})`)).v, i * 7);
        await sleep(5);
      }
      await rejectsWith(b.query('EXECUTE txp_stmt(1)'), '26000');
      await a.query('DEALLOCATE txp_stmt');
      await rejectsWith(a.query('EXECUTE txp_stmt(1)'), '26000');
    } finally {
      const { errors } = await load.stop();
      await close(a, b);
      assert.deepEqual(errors, []);
    }
  });

  test('set_config(..., false) pins: the setting persists for its client only', async () => {
    const a = await connect(tx);
    const others = await connectMany(tx, 4);
    try {
      assert.equal((await row<{ v: string }>(a, "SELECT set_config('application_name', 'txp_cfg', false) AS v")).v, 'txp_cfg');
      await Promise.all([
        (async () => {
          for (let i = 0; i < 15; i++) assert.equal((await row<{ v: string }>(a, "SELECT current_setting('application_name') AS v")).v, 'txp_cfg');
        })(),
        ...others.map(async (o) => {
          for (let i = 0; i < 15; i++) assert.notEqual((await row<{ v: string }>(o, "SELECT current_setting('application_name') AS v")).v, 'txp_cfg');
        }),
      ]);
    } finally {
      await close(a, ...others);
    }
  });

  test('SET SESSION CHARACTERISTICS (pgJDBC\'s setTransactionIsolation) and SET default_transaction_* are kept like other SETs: on every connection their client uses, for it alone', async () => {
    const forms = [
      ['SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ', 'default_transaction_isolation', 'repeatable read'],
      ['SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY', 'default_transaction_read_only', 'on'],
      ["SET default_transaction_isolation = 'read uncommitted'", 'default_transaction_isolation', 'read uncommitted'],
      ['SET default_transaction_deferrable = on', 'default_transaction_deferrable', 'on'],
    ] as const;
    for (const [stmt, name, value] of forms) {
      // One shared backend connection, which both clients take turns on (the setting is set and
      // taken off again each time): a pinned client would have one of its own.
      const a = await connect(tx1);
      const b = await connect(tx1);
      try {
        await a.query(stmt);
        for (let i = 0; i < 3; i++) {
          const ra = await row<{ v: string; pid: number }>(a, `SELECT current_setting('${name}') AS v, pg_backend_pid() AS pid`);
          const rb = await row<{ v: string; pid: number }>(b, `SELECT current_setting('${name}') AS v, pg_backend_pid() AS pid`);
          assert.equal(ra.v, value, `${stmt}: its client's setting (${i})`);
          assert.notEqual(rb.v, value, `${stmt}: seen by another client (${i})`);
          assert.equal(ra.pid, rb.pid, `${stmt}: the client was given a connection of its own`);
        }
        // The client's own transactions start with the default (a deferred BEGIN goes out after it).
        if (name === 'default_transaction_isolation') {
          await a.query('BEGIN');
          assert.equal((await row<{ transaction_isolation: string }>(a, 'SHOW transaction_isolation')).transaction_isolation, value, stmt);
          await a.query('COMMIT');
        }
      } finally {
        await close(a, b);
      }
    }
    // Reads stay balanced (primary weight 0: to the replica), where the setting is too, in
    // autocommit and in a READ ONLY transaction.
    const r = await connect(txr);
    try {
      await r.query('SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      const got = await row<{ port: number; v: string }>(r, "SELECT inet_server_port() AS port, current_setting('default_transaction_isolation') AS v");
      assert.deepEqual([got.port, got.v], [c.replica.port, 'repeatable read']);
      await r.query('BEGIN READ ONLY');
      const tx = await row<{ port: number; v: string }>(r, "SELECT inet_server_port() AS port, current_setting('transaction_isolation') AS v");
      await r.query('COMMIT');
      assert.deepEqual([tx.port, tx.v], [c.replica.port, 'repeatable read']);
    } finally {
      await close(r);
    }
  });

  test('SET SESSION CHARACTERISTICS with SERIALIZABLE or several options pins: the defaults are its client\'s only', async () => {
    const forms = [
      ['SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE', 'default_transaction_isolation', 'serializable'],
      ['SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY', 'default_transaction_isolation', 'repeatable read'],
    ] as const;
    for (const [stmt, name, value] of forms) {
      // One shared backend connection: whatever the statement leaves there, the other client would see.
      const a = await connect(tx1);
      const b = await connect(tx1);
      try {
        await a.query(stmt);
        assert.equal((await row<{ v: string }>(a, `SELECT current_setting('${name}') AS v`)).v, value, stmt);
        for (let i = 0; i < 3; i++) assert.notEqual((await row<{ v: string }>(b, `SELECT current_setting('${name}') AS v`)).v, value, `${stmt}: seen by another client`);
      } finally {
        await close(a, b);
      }
    }
    const c2 = await connect(tx1);
    try {
      assert.equal((await row<{ v: string }>(c2, "SELECT current_setting('default_transaction_isolation') AS v")).v, 'read committed', 'left on the shared connection');
    } finally {
      await close(c2);
    }
  });

  test('LISTEN: notifications reach the listening client, and only it', async () => {
    const chan = `txp_chan_${process.pid}`;
    const l = await connect(tx);
    const m = await connect(tx);
    const n = await connect(tx);
    const got: Array<{ channel: string; payload: string | undefined }> = [];
    const stray: unknown[] = [];
    l.on('notification', (msg) => got.push({ channel: msg.channel, payload: msg.payload }));
    m.on('notification', (msg) => stray.push(msg));
    try {
      await l.query(`LISTEN ${chan}`);
      // Traffic on the shared connections in between.
      for (let i = 0; i < 10; i++) assert.equal((await row<{ v: number }>(m, 'SELECT $1::int AS v', [i])).v, i);
      await n.query(`NOTIFY ${chan}, 'one'`);
      await waitUntil(() => got.length >= 1, 'the first notification', 5_000);
      await direct(c.primary, `NOTIFY ${chan}, 'two'`);
      await waitUntil(() => got.length >= 2, 'the second notification', 5_000);
      assert.deepEqual(got, [{ channel: chan, payload: 'one' }, { channel: chan, payload: 'two' }]);
      assert.equal((await row<{ v: number }>(l, 'SELECT 5 AS v')).v, 5, 'the listener still answers');
      await l.query(`UNLISTEN ${chan}`);
      await n.query(`NOTIFY ${chan}, 'three'`);
      await sleep(200);
      assert.equal(got.length, 2, 'nothing after UNLISTEN');
      assert.deepEqual(stray, [], 'a client that did not LISTEN got a notification');
    } finally {
      await close(l, m, n);
    }
  });

  test('SET LOCAL inside a transaction does not pin: afterwards the client reads from its load-balance node again and the setting is gone', async () => {
    // Primary weight 0: an unpinned session reads from the replica, a pinned one from the primary.
    const cl = await connect(txr);
    try {
      await cl.query('BEGIN');
      await cl.query("SET LOCAL statement_timeout = '7777ms'");
      assert.equal((await row<{ statement_timeout: string }>(cl, 'SHOW statement_timeout')).statement_timeout, '7777ms');
      await cl.query('COMMIT');
      assert.notEqual((await row<{ statement_timeout: string }>(cl, 'SHOW statement_timeout')).statement_timeout, '7777ms');
      const ports = new Set<number>();
      for (let i = 0; i < 10; i++) ports.add((await row<{ port: number }>(cl, 'SELECT inet_server_port() AS port')).port);
      assert.deepEqual(ports, new Set([c.replica.port]), 'reads still balanced (to the replica) after SET LOCAL');
      // A session SET does not pin it either: the session keeps the setting, and its reads stay
      // balanced, on lanes given the setting first.
      await cl.query("SET statement_timeout = '7777ms'");
      const r = await row<{ port: number; st: string }>(cl, "SELECT inet_server_port() AS port, current_setting('statement_timeout') AS st");
      assert.deepEqual([r.port, r.st], [c.replica.port, '7777ms']);
    } finally {
      await close(cl);
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('protocol-level prepared statements', () => {
  for (const [where, via] of VIAS)
  test(`20 node-postgres clients use the same statement name "q" for different texts, 20 times each ${where}`, async () => {
    const cls = await connectMany(via(), 20);
    try {
      await Promise.all(cls.map(async (cl, k) => {
        for (let i = 0; i < 20; i++) {
          if (k % 2 === 0) {
            const r = await cl.query<{ v: number }>({ name: 'q', text: `SELECT $1::int + ${k} AS v`, values: [i] });
            assert.deepEqual(r.rows, [{ v: i + k }], `client ${k} run ${i}`);
          } else {
            const r = await cl.query<{ v: string; tag: string }>({ name: 'q', text: `SELECT ($1::int + ${k})::text AS v, 'k${k}' AS tag`, values: [i] });
            assert.deepEqual(r.rows, [{ v: String(i + k), tag: `k${k}` }], `client ${k} run ${i}`);
          }
        }
      }));
    } finally {
      await close(...cls);
    }
  });

  test('postgres.js (prepared, pipelined) with 4 instances of 2 connections, 60 concurrent queries each', async () => {
    const su = c.users.superuser;
    const url = `postgresql://${su.name}:${su.password}@${tx.host}:${tx.port}/${c.database}`;
    const sqls = [0, 1, 2, 3].map(() => postgres(url, { max: 2, onnotice: () => undefined, connect_timeout: 10 }));
    try {
      await Promise.all(sqls.map(async (s, k) => {
        const rs = await Promise.all(Array.from({ length: 60 }, (_, i) =>
          s.unsafe(`SELECT $1::int * ${k + 2} AS v, $2::text AS t`, [i, `c${k}`], { prepare: true })));
        rs.forEach((r, i) => assert.deepEqual([...r], [{ v: i * (k + 2), t: `c${k}` }], `instance ${k} query ${i}`));
        // The same texts again (now already prepared), mixed with tagged queries.
        const again = await Promise.all(Array.from({ length: 30 }, (_, i) =>
          i % 2 === 0
            ? s.unsafe(`SELECT $1::int * ${k + 2} AS v, $2::text AS t`, [i, `c${k}`], { prepare: true })
            : s`SELECT ${i}::int * ${k + 2}::int AS v, ${`c${k}`}::text AS t`));
        again.forEach((r, i) => assert.deepEqual([...r], [{ v: i * (k + 2), t: `c${k}` }], `instance ${k} second round ${i}`));
      }));
      // A postgres.js transaction (BEGIN, pipelined statements, rolled back).
      const s0 = sqls[0]!;
      await assert.rejects(s0.begin(async (t) => {
        await t`INSERT INTO ${s0(T.iso)} VALUES ('PJ', 1)`;
        const rows = await t<Array<{ n: number }>>`SELECT count(*)::int AS n FROM ${s0(T.iso)} WHERE who = 'PJ'`;
        assert.equal(rows[0]?.n, 1);
        throw new Error('roll back');
      }), /roll back/);
      assert.equal(await direct(c.primary, `SELECT count(*) FROM ${T.iso} WHERE who = 'PJ'`), '0');
    } finally {
      await Promise.all(sqls.map((s) => s.end({ timeout: 5 })));
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('errors', () => {
  for (const [where, via] of VIAS)
  test(`10 clients, every third statement divides by zero: errors are their own, every other result is right ${where}`, async () => {
    await sql(c, c.primary, `TRUNCATE ${T.err}`);
    const cls = await connectMany(via(), 10);
    try {
      let errors = 0;
      await Promise.all(cls.map(async (cl, k) => {
        for (let i = 0; i < 30; i++) {
          const v = k * 1000 + i;
          if (i % 3 === 0) {
            await rejectsWith(i % 2 === 0 ? cl.query('SELECT 1/0') : cl.query('SELECT 1/$1::int', [0]), '22012');
            errors++;
          } else {
            const r = i % 2 === 0
              ? await row<{ v: number }>(cl, `SELECT ${v} AS v`)
              : await row<{ v: number }>(cl, `INSERT INTO ${T.err} VALUES ($1) RETURNING v`, [v]);
            assert.equal(r.v, v, `client ${k} statement ${i}`);
          }
        }
      }));
      assert.equal(errors, 10 * 10);
      // The odd non-error statements were INSERTs: i ≡ 1, 5, 7, 11, ... (i % 3 ≠ 0, i odd).
      const expected = cls.length * Array.from({ length: 30 }, (_, i) => i).filter((i) => i % 3 !== 0 && i % 2 === 1).length;
      assert.equal(await direct(c.primary, `SELECT count(*) FROM ${T.err}`), String(expected));
    } finally {
      await close(...cls);
    }
  });

  test('an error mid-pipeline (good, 1/0, good, one Sync) on one client does not disturb another client on the same connection', async () => {
    const md5 = c.users.md5;
    const raw = await RawClient.connect({ host: tx1.host, port: tx1.port, user: md5.name, password: md5.password, database: c.database });
    const ref = await RawClient.connect({ host: c.primary.host, port: c.primary.port, user: md5.name, password: md5.password, database: c.database });
    const y = await connect(tx1);
    try {
      let stop = false;
      const yLoop = (async () => {
        let i = 0;
        for (; !stop || i < 20; i++) {
          const r = await row<{ v: number; w: string }>(y, 'SELECT $1::int AS v, $2::text AS w', [i, `y${i}`]);
          assert.deepEqual([r.v, r.w], [i, `y${i}`]);
        }
        return i;
      })();
      const script = (): Buffer[] => [...pbe('SELECT 1 AS a'), ...pbe('SELECT 1/0 AS b'), ...pbe('SELECT 3 AS c'), serialize.sync()];
      const twoSyncs = (round: number): Buffer[] => [...pbe('SELECT 1/0 AS b'), serialize.sync(), ...pbe(`SELECT ${round} AS r`), serialize.sync()];
      // What PostgreSQL itself answers (1/0 is folded, so it fails at Bind).
      ref.write(...script());
      const want = await ref.untilReady();
      assert.equal(types(want), '12DC1EZ');
      ref.write(...twoSyncs(0));
      const want2 = [types(await ref.untilReady()), types(await ref.untilReady())];
      assert.deepEqual(want2, ['1EZ', '12DCZ']);
      for (let round = 0; round < 20; round++) {
        raw.write(...script());
        const got = await raw.untilReady();
        assert.equal(types(got), types(want), `round ${round}`);
        assert.deepEqual(dataRowValues(got.find((m) => m.type === 'D')!.body), ['1']);
        assert.equal(errorField(got.find((m) => m.type === 'E')!.body), '22012');
        assert.equal(String.fromCharCode(got[got.length - 1]!.body[0]!), 'I', 'idle after Sync: the implicit transaction ended');
        // Two Syncs in one write: the error of the first does not skip the second.
        raw.write(...twoSyncs(round));
        const e = await raw.untilReady();
        assert.equal(types(e), want2[0]);
        assert.equal(errorField(e.find((m) => m.type === 'E')!.body), '22012');
        const ok = await raw.untilReady();
        assert.equal(types(ok), want2[1]);
        assert.deepEqual(dataRowValues(ok.find((m) => m.type === 'D')!.body), [String(round)]);
      }
      stop = true;
      const n = await yLoop;
      assert.ok(n >= 20);
    } finally {
      raw.terminate();
      ref.terminate();
      await close(y);
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('a slow statement', () => {
  test('pg_sleep(3) on one client does not hold up another client for its duration', async () => {
    const a = await connect(tx);
    const b = await connect(tx);
    try {
      // Warm up b and the pool, so its statements do not pay a connection setup.
      for (let i = 0; i < 5; i++) await b.query('SELECT pg_sleep(0)');
      const t0 = Date.now();
      const slow = a.query<{ port: number }>('SELECT pg_sleep(3), inet_server_port() AS port').then((r) => ({ r, ms: Date.now() - t0 }));
      await waitUntil(async () =>
        (await direct(c.primary, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(3), inet_server_port() AS port'")) !== '0',
      'the pg_sleep running on the primary', 5_000);
      await sleep(SLOW_GRACE_MS);
      const times: number[] = [];
      for (let i = 0; i < 20; i++) {
        const s = Date.now();
        const r = await row<{ port: number; i: number }>(b, `SELECT pg_sleep(0), inet_server_port() AS port, ${i} AS i`);
        times.push(Date.now() - s);
        assert.deepEqual([r.port, r.i], [c.primary.port, i], 'the fast statements run on the primary too (pg_sleep is volatile)');
      }
      const bDone = Date.now() - t0;
      const { r, ms } = await slow;
      assert.equal(r.rows[0]?.port, c.primary.port);
      assert.ok(ms >= 3000, `the slow statement took ${ms} ms`);
      assert.ok(times.every((t) => t < 2000), `fast statements' times (ms): ${times.join(',')}`);
      assert.ok(bDone < ms, `B finished at ${bDone} ms, after the slow statement (${ms} ms)`);
    } finally {
      await close(a, b);
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('a client gone mid-transaction', () => {
  /** Later clients of tx1 (one shared connection) run outside any transaction and see no ghost rows. */
  async function checkClean(label: string): Promise<void> {
    const cls = await connectMany(tx1, 5);
    try {
      await Promise.all(cls.map(async (cl, k) => {
        const r = await row<{ notx: boolean; fresh: boolean; ghosts: number }>(cl,
          `SELECT txid_current_if_assigned() IS NULL AS notx, now() = statement_timestamp() AS fresh, ` +
          `(SELECT count(*) FROM ${T.disc} WHERE v LIKE 'ghost%')::int AS ghosts`);
        assert.deepEqual([r.notx, r.fresh, r.ghosts], [true, true, 0], `${label}: client ${k}`);
        await cl.query(`INSERT INTO ${T.disc} VALUES ('after ${label}')`);
        // Were this still the abandoned transaction, COMMIT would make its row appear (checked below).
        await cl.query('COMMIT');
      }));
    } finally {
      await close(...cls);
    }
    assert.equal(await direct(c.primary, `SELECT count(*) FROM ${T.disc} WHERE v = 'after ${label}'`), '5');
    assert.equal(await direct(c.primary, `SELECT count(*) FROM ${T.disc} WHERE v LIKE 'ghost%'`), '0');
  }

  test('node-postgres socket destroyed after BEGIN; INSERT: the row never appears, the connection is reused cleanly', async () => {
    const g = await connect(tx1);
    await g.query('BEGIN');
    await g.query(`INSERT INTO ${T.disc} VALUES ('ghost')`);
    const { pid } = await row<{ pid: number }>(g, 'SELECT pg_backend_pid() AS pid');
    assert.equal(await direct(c.primary, `SELECT state FROM pg_stat_activity WHERE pid = ${pid}`), 'idle in transaction');
    (g as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    open.delete(g);
    await waitUntil(async () => (await direct(c.primary, `SELECT count(*) FROM pg_stat_activity WHERE pid = ${pid} AND state LIKE 'idle in transaction%'`)) === '0',
      'the abandoned transaction to end', 5_000);
    await checkClean('pg');
  });

  test('raw client sends BEGIN; INSERT and drops the socket at once: the row never appears', async () => {
    const md5 = c.users.md5;
    for (let i = 0; i < 3; i++) {
      const rc = await RawClient.connect({ host: tx1.host, port: tx1.port, user: md5.name, password: md5.password, database: c.database });
      rc.write(serialize.query(`BEGIN; INSERT INTO ${T.disc} VALUES ('ghost raw ${i}')`), serialize.query('SELECT pg_sleep(0.2)'));
      if (i === 1) await rc.next(); // once after the first reply has started coming back
      rc.destroy();
    }
    await sleep(500);
    await waitUntil(async () => (await direct(c.primary, `SELECT count(*) FROM pg_stat_activity WHERE datname = '${c.database}' AND state LIKE 'idle in transaction%'`)) === '0',
      'no transaction left open', 5_000);
    await checkClean('raw');
  });
});

// ---------------------------------------------------------------------------------------------
describe('COPY', () => {
  test('psql \\copy FROM a file and \\copy TO a file through a transaction-mode pgrouter, with other clients running meanwhile', async () => {
    const src = path.join(tmp, 'in.tsv');
    const lines: string[] = [];
    for (let i = 1; i <= 50_000; i++) lines.push(`${i}\tname ${i} é ✓ \\t tab\t${i % 7 === 0 ? '\\N' : `{"k": ${i}}`}`);
    writeFileSync(src, lines.join('\n') + '\n');
    const load = backgroundLoad(tx, 4, async (cl, k, i) => {
      const r = await row<{ k: number; i: number }>(cl, `INSERT INTO ${T.copyLoad} VALUES ($1, $2) RETURNING k, i`, [k, i]);
      assert.deepEqual([r.k, r.i], [k, i]);
    });
    let inResult;
    try {
      inResult = await psql(tx, [
        '-v', 'ON_ERROR_STOP=1',
        '-c', `CREATE TABLE ${T.copy} (id int, name text, doc jsonb)`,
        '-c', `GRANT ALL ON ${T.copy} TO PUBLIC`,
        '-c', `\\copy ${T.copy} FROM '${src}'`,
      ]);
    } finally {
      const { count, errors } = await load.stop();
      assert.deepEqual(errors, [], 'the clients running beside COPY FROM');
      assert.ok(count > 0);
    }
    assert.equal(inResult.code, 0, inResult.stderr);
    assert.match(inResult.stdout, /COPY 50000/);
    assert.equal(await direct(c.primary, `SELECT count(*) FROM ${T.copy}`), '50000');
    await waitForReplication(c);
    const dst = path.join(tmp, 'out.tsv');
    const dst2 = path.join(tmp, 'out2.tsv');
    const load2 = backgroundLoad(tx, 4, async (cl, k, i) => {
      assert.equal((await row<{ v: number }>(cl, 'SELECT $1::int AS v', [k * 100000 + i])).v, k * 100000 + i);
    });
    let outResult;
    try {
      outResult = await psql(tx, ['-v', 'ON_ERROR_STOP=1',
        '-c', `\\copy ${T.copy} TO '${dst}'`,
        '-c', `\\copy (SELECT * FROM ${T.copy} ORDER BY id) TO '${dst2}'`]);
    } finally {
      const { errors } = await load2.stop();
      assert.deepEqual(errors, [], 'the clients running beside COPY TO');
    }
    assert.equal(outResult.code, 0, outResult.stderr);
    const want = readFileSync(src, 'utf8');
    assert.equal(readFileSync(dst, 'utf8'), want);
    assert.equal(readFileSync(dst2, 'utf8'), want);
    // A COPY that fails leaves the session usable.
    const bad = path.join(tmp, 'bad.tsv');
    writeFileSync(bad, '1\tok\t{}\nnot-a-number\tbad\t{}\n');
    const r = await psql(tx, ['-At', '-c', `\\copy ${T.copy} FROM '${bad}'`, '-c', `SELECT count(*) FROM ${T.copy} WHERE name = 'ok'`]);
    assert.match(r.stderr, /invalid input syntax for type integer/);
    assert.equal(r.stdout.trim(), '0');
  });

  test('Terminate in the middle of COPY FROM STDIN: nothing is copied, and the next client gets a clean connection (session and transaction pooling)', async () => {
    const session = await startProxy(c, { conf: { load_balance_mode: 'off', num_init_children: 4 } });
    const md5 = c.users.md5;
    const table = `${TAG}_copyterm`;
    await sql(c, c.primary, `CREATE TABLE ${table} (v int); GRANT ALL ON ${table} TO PUBLIC`);
    try {
      for (const [name, p] of [['session', session], ['transaction, one connection', tx1]] as const) {
        const rc = await RawClient.connect({ host: p.host, port: p.port, user: md5.name, password: md5.password, database: c.database });
        rc.write(serialize.query(`COPY ${table} FROM STDIN`));
        assert.equal((await rc.next()).type, 'G', `${name}: CopyInResponse`);
        // CopyData, then Terminate: PostgreSQL ends such a session (directly: an 08P01 error, then it closes).
        rc.write(serialize.copyData(Buffer.from('1\n2\n')), Buffer.from([0x58, 0, 0, 0, 4]));
        const closed = await Promise.race([
          new Promise<boolean>((r) => rc.sock.once('close', () => r(true))),
          sleep(10_000).then(() => false),
        ]);
        rc.destroy();
        assert.ok(closed, `${name}: the session was not ended`);
        // The client after it: a connection in no COPY and no transaction, whatever it was given.
        const next = await connect(p);
        try {
          const r = await row<{ n: number; st: string }>(next, `SELECT count(*)::int AS n, current_setting('transaction_isolation') AS st FROM ${table}`);
          assert.equal(r.n, 0, `${name}: rows of the abandoned COPY were kept`);
          await next.query(`INSERT INTO ${table} VALUES (7)`);
          assert.equal((await row<{ n: number }>(next, `SELECT count(*)::int AS n FROM ${table}`)).n, 1, name);
          await next.query(`DELETE FROM ${table}`);
        } finally {
          await close(next);
        }
        await waitUntil(
          async () => (await sql(c, c.primary, `SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY ${table}%' AND state <> 'idle'`)) === '0',
          `${name}: the backend left in COPY to end`,
        );
      }
    } finally {
      await session.stop();
      await sql(c, c.primary, `DROP TABLE ${table}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('admin', () => {
  test('SHOW pool_nodes answers with both nodes through a transaction-mode pgrouter', async () => {
    const cl = await connect(tx);
    try {
      const r = await cl.query<Record<string, string>>('SHOW pool_nodes');
      assert.equal(r.rows.length, 2, JSON.stringify(r.rows));
      const [n0, n1] = r.rows as [Record<string, string>, Record<string, string>];
      assert.deepEqual([n0.node_id, n0.hostname, n0.port, n0.status, n0.role], ['0', c.primary.host, String(c.primary.port), 'up', 'primary']);
      assert.deepEqual([n1.node_id, n1.hostname, n1.port, n1.status, n1.role], ['1', c.replica.host, String(c.replica.port), 'up', 'standby']);
      const v = await cl.query<Record<string, string>>('SHOW pool_version');
      assert.equal(v.rows.length, 1);
      // Ordinary statements still work on the same client afterwards.
      assert.equal((await row<{ v: number }>(cl, 'SELECT $1::int AS v', [3])).v, 3);
    } finally {
      await close(cl);
    }
  });
});
