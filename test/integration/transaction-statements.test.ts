// pool_mode = transaction, the edges of shared connections: a lane keeps a bounded number of
// server-side prepared statements (one client prepares 700 named statements; the lane closes the
// oldest past 512, and binding an old name again re-parses it, so every one still answers), and
// a replica that dies while reads are in flight on its lane fails those reads only: every
// session goes on, and later reads run on the primary; and a cancel reaches only the statement
// of the client that sent it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { sql, startNode, stopNode, waitForStreaming, type Cluster } from '../../rig/cluster.ts';
import { getCluster } from '../harness/cluster.ts';
import { freePort } from '../../rig/system.ts';
import { frame, queryMessage, rawLogin, type RawConn } from './raw-client.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';

let c: Cluster;
let p: ProxyHandle;
let metricsPort: number;

before(async () => {
  c = await getCluster();
  metricsPort = await freePort();
  p = await startProxy(c, {
    conf: { pool_mode: 'transaction', load_balance_mode: 'off', transaction_pool_size: 1, metrics_port: metricsPort, metrics_listen_addresses: '127.0.0.1' },
  });
});

after(async () => {
  await p?.stop('SIGKILL');
});

test('700 named statements on one lane: the oldest are closed on the server and re-parsed when used again', async () => {
  const u = c.users.superuser;
  const cl = new pg.Client({ host: p.host, port: p.port, user: u.name, password: u.password, database: c.database });
  cl.on('error', () => undefined);
  await cl.connect();
  try {
    const run = async (i: number): Promise<number> =>
      (await cl.query<{ v: number }>({ name: `s${i}`, text: `SELECT $1::int + ${i} AS v`, values: [1000] })).rows[0]!.v;
    for (let i = 0; i < 700; i++) assert.equal(await run(i), 1000 + i);
    // The lane holds at most 512 of them (pg_prepared_statements is per backend: the one lane).
    const held = await cl.query<{ n: string }>("SELECT count(*) AS n FROM pg_prepared_statements WHERE name LIKE 'pgrouter_%'");
    const n = Number(held.rows[0]!.n);
    assert.ok(n > 0 && n <= 512, `server-side statements on the lane: ${n}`);
    // The first ones were closed on the server; node-postgres binds them by name again.
    for (let i = 0; i < 700; i += 7) assert.equal(await run(i), 1000 + i);
    // Each request on the lane was timed once: pgrouter_query_duration_seconds counts them.
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const count = Number(/^pgrouter_query_duration_seconds_count\{node="0"\} (\d+)/m.exec(text)?.[1]);
    assert.ok(count >= 801, `pgrouter_query_duration_seconds_count{node="0"} = ${count}`);
    // The statements closed to stay under the limit are counted.
    const evicted = Number(/^pgrouter_server_statements_total\{node="0",event="evicted"\} (\d+)/m.exec(text)?.[1]);
    assert.ok(evicted >= 188, `pgrouter_server_statements_total{event="evicted"} = ${evicted}`);
  } finally {
    await cl.end();
  }
});

// An immediate shutdown ends the replica's backends with a WARNING; a fast one (pg_ctl's
// default, and what operators use) with a FATAL 57P01 each, which no client must see.
for (const mode of ['immediate', 'fast'] as const)
test(`the replica dies (${mode} shutdown) under 8 clients reading through shared lanes: in-flight reads get 08006, no session ends, later reads succeed`, async () => {
  const rp = await startProxy(c, { conf: { pool_mode: 'transaction', load_balance_mode: 'on', health_check_period: 0 } });
  const u = c.users.superuser;
  const clients: pg.Client[] = [];
  let stopped = false;
  try {
    for (let i = 0; i < 8; i++) {
      const cl = new pg.Client({ host: rp.host, port: rp.port, user: u.name, password: u.password, database: c.database });
      cl.on('error', () => undefined);
      await cl.connect();
      clients.push(cl);
    }
    const codes = new Map<string, number>();
    let ok = 0;
    let sawReplica = false;
    let running = true;
    const loops = clients.map(async (cl, k) => {
      while (running) {
        try {
          const r = await cl.query<{ v: number; port: number }>('SELECT $1::int AS v, inet_server_port() AS port', [k]);
          assert.equal(r.rows[0]!.v, k);
          if (r.rows[0]!.port === c.replica.port) sawReplica = true;
          ok++;
        } catch (e) {
          const code = (e as { code?: string }).code ?? String(e);
          codes.set(code, (codes.get(code) ?? 0) + 1);
        }
      }
    });
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(sawReplica, 'reads reached the replica before it was stopped');
    await stopNode(c, c.replica, mode);
    stopped = true;
    await new Promise((r) => setTimeout(r, 1500));
    const before = ok;
    await new Promise((r) => setTimeout(r, 1000));
    running = false;
    await Promise.all(loops);
    assert.ok(ok > before + 50, `reads went on after the replica stopped (${ok - before} in the last second)`);
    for (const code of codes.keys()) assert.equal(code, '08006', `only connection-failure errors: ${[...codes].join(', ')}`);
    // Every session is still there and reads from the primary.
    for (const cl of clients) {
      const r = await cl.query<{ port: number }>('SELECT inet_server_port() AS port');
      assert.equal(r.rows[0]!.port, c.primary.port);
    }
  } finally {
    for (const cl of clients) await cl.end().catch(() => undefined);
    await rp.stop('SIGKILL');
    if (stopped) {
      await startNode(c, c.replica);
      await waitForStreaming(c);
    }
  }
});

test('a read running on a replica lane whose backend is terminated gets 08006 naming the server\'s reason, and the session goes on', async () => {
  const rp = await startProxy(c, { conf: { pool_mode: 'transaction', load_balance_mode: 'on', backend_weight0: 0, backend_weight1: 1 } });
  const u = c.users.superuser;
  const cl = new pg.Client({ host: rp.host, port: rp.port, user: u.name, password: u.password, database: c.database });
  const outside: Error[] = [];
  cl.on('error', (e) => outside.push(e));
  await cl.connect();
  try {
    // The table's catalog facts are cached first: a statement seen before they are goes to the primary.
    for (let i = 0; i < 3; i++) await cl.query('SELECT 1 FROM pgbench_accounts LIMIT 1');
    const running = cl.query('SELECT count(*) FROM pgbench_accounts a CROSS JOIN pgbench_accounts b');
    let pid = '';
    for (let i = 0; i < 100 && pid === ''; i++) {
      await new Promise((r) => setTimeout(r, 50));
      pid = await sql(c, c.replica, "SELECT pid FROM pg_stat_activity WHERE query LIKE '%CROSS JOIN pgbench_accounts b' AND backend_type = 'client backend' AND pid <> pg_backend_pid()");
    }
    assert.notEqual(pid, '', 'the read runs on the replica');
    await sql(c, c.replica, `SELECT pg_terminate_backend(${pid})`);
    await assert.rejects(running, (e: Error & { code?: string; detail?: string }) =>
      e.code === '08006' && /terminating connection due to administrator command \(SQLSTATE 57P01\)/.test(e.detail ?? ''));
    assert.equal((await cl.query('SELECT 41 + 1 AS v')).rows[0]!.v, 42, 'the session goes on');
    assert.deepEqual(outside, [], 'no error outside the statement');
  } finally {
    await cl.end().catch(() => undefined);
    await rp.stop('SIGKILL');
  }
});

test('the primary restarts (fast shutdown) under sessions holding nothing: their statements meanwhile get 08006 errors, no session ends, and they write again once it is back', async () => {
  const rp = await startProxy(c, { conf: { pool_mode: 'transaction', load_balance_mode: 'off', connect_timeout: 2000 } });
  const u = c.users.superuser;
  const clients: pg.Client[] = [];
  const outside: Error[] = [];
  let stopped = false;
  try {
    for (let i = 0; i < 3; i++) {
      const cl = new pg.Client({ host: rp.host, port: rp.port, user: u.name, password: u.password, database: c.database });
      cl.on('error', (e) => outside.push(e));
      await cl.connect();
      clients.push(cl);
    }
    await clients[0]!.query('CREATE TABLE IF NOT EXISTS txn_restart (v int)');
    for (const [i, cl] of clients.entries()) await cl.query('INSERT INTO txn_restart VALUES ($1)', [i]);
    await stopNode(c, c.primary, 'fast');
    stopped = true;
    for (const cl of clients) {
      await assert.rejects(cl.query('INSERT INTO txn_restart VALUES (-1)'), (e: Error & { code?: string }) => e.code === '08006');
      await assert.rejects(cl.query('SELECT 1'), (e: Error & { code?: string }) => e.code === '08006', 'a read too (no balancing here)');
    }
    await startNode(c, c.primary);
    stopped = false;
    for (const [i, cl] of clients.entries()) await cl.query('INSERT INTO txn_restart VALUES ($1)', [10 + i]);
    const r = await clients[1]!.query<{ v: number }>('SELECT v FROM txn_restart ORDER BY v');
    assert.deepEqual(r.rows.map((x) => x.v), [0, 1, 2, 10, 11, 12], 'every session wrote before and after, nothing while it was down');
    assert.deepEqual(outside, [], 'no session was ended');
    await clients[0]!.query('DROP TABLE txn_restart');
  } finally {
    for (const cl of clients) await cl.end().catch(() => undefined);
    await rp.stop('SIGKILL');
    if (stopped) await startNode(c, c.primary);
    await waitForStreaming(c);
  }
});

test('a balanced read for a primary that cannot be reached goes to the replica (no health check has said it is down yet)', async () => {
  // The session's load-balance node is the primary (its application_name says so); health checks are off.
  const rp = await startProxy(c, {
    conf: { pool_mode: 'transaction', load_balance_mode: 'on', app_name_redirect_preference_list: 'to_primary:primary', connect_timeout: 2000 },
  });
  const u = c.users.superuser;
  const cl = new pg.Client({ host: rp.host, port: rp.port, user: u.name, password: u.password, database: c.database, application_name: 'to_primary' });
  const outside: Error[] = [];
  cl.on('error', (e) => outside.push(e));
  await cl.connect();
  const port = async (): Promise<number> => (await cl.query<{ p: number }>('SELECT inet_server_port() AS p')).rows[0]!.p;
  let stopped = false;
  try {
    assert.equal(await port(), c.primary.port, 'reads go to the primary while it is up');
    await stopNode(c, c.primary, 'fast');
    stopped = true;
    assert.equal(await port(), c.replica.port, 'the read went to the replica');
    assert.equal((await cl.query<{ v: number }>({ text: 'SELECT $1::int AS v', values: [7] })).rows[0]!.v, 7, 'an extended-protocol read too');
    await assert.rejects(cl.query('CREATE TEMP TABLE t_nowhere (v int)'), (e: Error & { code?: string }) => e.code === '08006', 'a write fails alone');
    await startNode(c, c.primary);
    stopped = false;
    assert.equal(await port(), c.primary.port, 'reads go back to the primary');
    assert.deepEqual(outside, [], 'the session was not ended');
  } finally {
    await cl.end().catch(() => undefined);
    await rp.stop('SIGKILL');
    if (stopped) await startNode(c, c.primary);
    await waitForStreaming(c);
  }
});

test('a statement parsed on the replica, bound in the rest of a Flush-ended batch inside a transaction on the primary: the Parse pgrouter adds is invisible', async () => {
  // Reads go to the replica (primary weight 0); the transaction runs on the primary.
  const rp = await startProxy(c, { conf: { pool_mode: 'transaction', load_balance_mode: 'on', backend_weight0: 0, backend_weight1: 1 } });
  const u = c.users.md5;
  const { conn } = await rawLogin(rp.port, u.name, c.database, u.password);
  const cstr = (...p: string[]): string => p.map((x) => `${x}\0`).join('');
  const parse = (name: string, sql: string): Buffer => frame('P', `${cstr(name, sql)}\0\0`);
  const bind = (name: string): Buffer => frame('B', `${cstr('', name)}\0\0\0\0\0\0`);
  const execute = frame('E', `${cstr('')}\0\0\0\0`);
  const types = async (c2: RawConn, until: string): Promise<string> => {
    let out = '';
    for (;;) {
      const m = await c2.readMessage(10_000);
      assert.ok(m, `reply ended early after "${out}"`);
      out += m.type;
      if (m.type === until) return out;
    }
  };
  try {
    conn.write(Buffer.concat([parse('s1', 'SELECT inet_server_port()'), frame('S')]));
    assert.equal(await types(conn, 'Z'), '1Z');
    conn.write(Buffer.concat([bind('s1'), execute, frame('S')]));
    const onReplica = await types(conn, 'Z');
    assert.equal(onReplica, '2DCZ');
    conn.write(queryMessage('BEGIN'));
    assert.equal(await types(conn, 'Z'), 'CZ');
    // First part of the batch, ended by Flush: a new statement, answered at once.
    conn.write(Buffer.concat([parse('s2', 'SELECT 2'), frame('H')]));
    assert.equal(await types(conn, '1'), '1');
    // The rest: s1 was never parsed on the primary's lane; pgrouter parses it there first.
    conn.write(Buffer.concat([bind('s1'), execute, bind('s2'), execute, frame('S')]));
    assert.equal(await types(conn, 'Z'), '2DC2DCZ');
    conn.write(queryMessage('COMMIT'));
    assert.equal(await types(conn, 'Z'), 'CZ');
  } finally {
    conn.destroy();
    await rp.stop('SIGKILL');
  }
});

test("cancel in transaction pooling: a client's cancel stops its own statement, never another client's on the same lane", async () => {
  const cp = await startProxy(c, { conf: { pool_mode: 'transaction', load_balance_mode: 'off', transaction_pool_size: 1 } });
  const u = c.users.superuser;
  const cfg = { host: cp.host, port: cp.port, user: u.name, password: u.password, database: c.database };
  const a = new pg.Client(cfg);
  const b = new pg.Client(cfg);
  a.on('error', () => undefined);
  b.on('error', () => undefined);
  await a.connect();
  await b.connect();
  type Cancels = { cancel(client: pg.Client, query: unknown): void };
  const cancel = (cl: pg.Client): void => {
    const canceller = new pg.Client(cfg) as unknown as Cancels;
    canceller.cancel(cl, (cl as unknown as { activeQuery: unknown }).activeQuery);
  };
  try {
    // A sleeps on the only lane; B is idle: B's cancel must not reach A's statement.
    const t0 = Date.now();
    const sleeping = a.query('SELECT pg_sleep(2) AS slept');
    await new Promise((r) => setTimeout(r, 300));
    cancel(b);
    const r = await sleeping;
    assert.equal(r.rows.length, 1, "A's statement ran to the end");
    assert.ok(Date.now() - t0 >= 1900, `A slept ${Date.now() - t0} ms`);
    // A's own cancel stops it at once; both clients go on.
    const long = a.query('SELECT pg_sleep(30)');
    await new Promise((r2) => setTimeout(r2, 300));
    const t1 = Date.now();
    cancel(a);
    await assert.rejects(long, (e: Error & { code?: string }) => e.code === '57014');
    assert.ok(Date.now() - t1 < 5000, `cancelled after ${Date.now() - t1} ms`);
    assert.equal((await a.query<{ v: number }>('SELECT 1 AS v')).rows[0]!.v, 1);
    assert.equal((await b.query<{ v: number }>('SELECT 2 AS v')).rows[0]!.v, 2);
  } finally {
    await a.end().catch(() => undefined);
    await b.end().catch(() => undefined);
    await cp.stop('SIGKILL');
  }
});
