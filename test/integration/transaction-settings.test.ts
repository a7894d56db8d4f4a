// pool_mode = transaction and session settings: a session-level SET or RESET is kept by the
// session and set on each shared connection before the session's request runs there, so that
// clients which SET on connecting (pgJDBC sends `SET extra_float_digits = 3` and
// `SET application_name`) share connections instead of each pinning one. Each session sees its
// own values, on the primary and on the replica; a failed SET changes nothing; RESET and RESET ALL
// undo; a SET inside a transaction or a multi-statement string still pins, and leaks nowhere; a
// new session is told the login's parameters, not what another session SET.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { sql as rigSql, type Cluster } from '../../rig/cluster.ts';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';
import { errorFields, queryMessage, rawLogin, rawQuery, type RawConn } from './raw-client.ts';

let c: Cluster;
let p: ProxyHandle;

before(async () => {
  c = await getCluster();
  // One lane per node: every session of the test shares it unless it is pinned. Primary weight 0:
  // balanced reads go to the replica's lane.
  p = await startProxy(c, {
    conf: {
      pool_mode: 'transaction',
      transaction_pool_size: 1,
      load_balance_mode: 'on',
      backend_weight0: 0,
      backend_weight1: 1,
      health_check_period: 0,
    },
  });
});

after(async () => {
  await p?.stop('SIGKILL');
});

const sessions: RawConn[] = [];
async function session(extra: Record<string, string> = {}): Promise<RawConn> {
  const u = c.users.md5;
  const { conn } = await rawLogin(p.port, u.name, c.database, u.password, extra);
  sessions.push(conn);
  return conn;
}

/** The first value of a query's only row; fails on an error, or a status other than `status`. */
async function one(conn: RawConn, q: string, status = 'I'): Promise<string | null> {
  const r = await rawQuery(conn, q);
  assert.deepEqual(r.errors, [], `${q}: ${JSON.stringify(r.errors)}`);
  assert.equal(r.txStatus, status, q);
  return r.rows[0]?.[0] ?? null;
}

/** current_setting(name) on the replica (a stable function: balanced) and on the primary (random() is volatile: primary). */
async function seen(conn: RawConn, name: string): Promise<{ replica: string | null; primary: string | null }> {
  const onReplica = await rawQuery(conn, `SELECT current_setting('${name}'), inet_server_port()`);
  const onPrimary = await rawQuery(conn, `SELECT current_setting('${name}'), inet_server_port(), random()`);
  assert.deepEqual([onReplica.errors, onPrimary.errors], [[], []]);
  assert.deepEqual([onReplica.rows[0]?.[1], onPrimary.rows[0]?.[1]], [String(c.replica.port), String(c.primary.port)], 'where the reads ran');
  return { replica: onReplica.rows[0]?.[0] ?? null, primary: onPrimary.rows[0]?.[0] ?? null };
}

/** Client backends of md5_user on a node (the test's sessions are the only ones). */
async function backends(node: 'primary' | 'replica'): Promise<number> {
  const q = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'md5_user' AND backend_type = 'client backend'";
  return Number(await rigSql(c, node === 'primary' ? c.primary : c.replica, q));
}

test.afterEach(async () => {
  for (const s of sessions.splice(0)) s.end();
});

test('sessions that SET as pgJDBC does share the one lane of each node, and each sees its own values there', async () => {
  const a = await session();
  const b = await session();
  for (const s of [a, b]) {
    await one(s, 'SET extra_float_digits = 3');
    await one(s, "SET application_name = 'PostgreSQL JDBC Driver'");
  }
  await one(a, "SET work_mem = '5MB'");
  await one(b, "SET work_mem = '6MB'");
  await one(b, 'SET search_path = pg_catalog, public;');
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(await seen(a, 'work_mem'), { replica: '5MB', primary: '5MB' });
    assert.deepEqual(await seen(b, 'work_mem'), { replica: '6MB', primary: '6MB' });
    assert.deepEqual(await seen(a, 'search_path'), { replica: '"$user", public', primary: '"$user", public' });
    assert.deepEqual(await seen(b, 'search_path'), { replica: 'pg_catalog, public', primary: 'pg_catalog, public' });
    assert.deepEqual(await seen(a, 'extra_float_digits'), { replica: '3', primary: '3' });
  }
  // Neither session is pinned: one backend per node serves both (each pinned session would have one of its own).
  assert.deepEqual([await backends('primary'), await backends('replica')], [1, 1]);
  // A session that never SET anything gets the defaults on the same lanes.
  const d = await session();
  assert.deepEqual(await seen(d, 'work_mem'), { replica: '4MB', primary: '4MB' });
  assert.deepEqual(await seen(d, 'extra_float_digits'), { replica: '1', primary: '1' });
});

test('a SET that fails changes nothing, also when requests behind it were already sent', async () => {
  const a = await session();
  const b = await session();
  await one(a, "SET work_mem = '5MB'");
  const r = await rawQuery(a, "SET work_mem = 'lots'");
  assert.equal(r.errors[0]?.['C'], '22023');
  assert.deepEqual(await seen(a, 'work_mem'), { replica: '5MB', primary: '5MB' });
  // Pipelined: a failing SET, a read, a SET that succeeds, a read, in one write.
  a.write(Buffer.concat([queryMessage("SET work_mem = 'lots'"), queryMessage('SHOW work_mem'), queryMessage("SET work_mem = '2MB'"), queryMessage('SHOW work_mem')]));
  const replies: Array<{ error?: string | undefined; value?: string }> = [];
  while (replies.length < 4) {
    const m = await a.readMessage(10_000);
    assert.ok(m !== undefined, 'a reply');
    if (m.type === 'E') replies.push({ error: errorFields(m.body)['C'] });
    else if (m.type === 'D') replies.push({ value: m.body.toString('utf8', 6, 6 + m.body.readInt32BE(2)) });
    else if (m.type === 'C' && m.body.toString('utf8').startsWith('SET')) replies.push({});
  }
  while ((await a.readMessage(100)) !== undefined);
  assert.deepEqual(replies, [{ error: '22023' }, { value: '5MB' }, {}, { value: '2MB' }]);
  assert.deepEqual(await seen(b, 'work_mem'), { replica: '4MB', primary: '4MB' });
  assert.deepEqual(await seen(a, 'work_mem'), { replica: '2MB', primary: '2MB' });
});

test('RESET, SET ... TO DEFAULT and RESET ALL undo what the session set', async () => {
  const a = await session();
  await one(a, "SET work_mem = '5MB'");
  await one(a, "SET maintenance_work_mem = '70MB'");
  await one(a, "SET statement_timeout = '9s'");
  await one(a, 'RESET work_mem');
  await one(a, 'SET statement_timeout TO DEFAULT');
  assert.deepEqual(await seen(a, 'work_mem'), { replica: '4MB', primary: '4MB' });
  assert.deepEqual(await seen(a, 'statement_timeout'), { replica: '0', primary: '0' });
  assert.deepEqual(await seen(a, 'maintenance_work_mem'), { replica: '70MB', primary: '70MB' });
  await one(a, 'RESET ALL');
  assert.deepEqual(await seen(a, 'maintenance_work_mem'), { replica: '64MB', primary: '64MB' });
});

test('a SET inside a transaction, or in a multi-statement string, pins the session and reaches no other', async () => {
  const a = await session();
  const b = await session();
  await one(a, 'BEGIN', 'T');
  await one(a, "SET work_mem = '9MB'", 'T');
  await one(a, 'COMMIT');
  assert.equal(await one(a, 'SHOW work_mem'), '9MB');
  assert.deepEqual(await seen(b, 'work_mem'), { replica: '4MB', primary: '4MB' });
  const m = await session();
  const r = await rawQuery(m, "SET work_mem = '7MB'; SELECT 1");
  assert.deepEqual(r.errors, []);
  assert.equal(await one(m, 'SHOW work_mem'), '7MB');
  for (let i = 0; i < 3; i++) assert.deepEqual(await seen(b, 'work_mem'), { replica: '4MB', primary: '4MB' });
  // Two pinned sessions, each on a primary backend of its own, beside the shared lane.
  assert.equal(await backends('primary'), 3);
});

test("a new session is told the parameters of the lane's login, not what another session SET there", async () => {
  const a = await session();
  await one(a, "SET TimeZone = 'Asia/Tokyo'");
  await one(a, "SET DateStyle = 'German'");
  assert.equal(await one(a, 'SELECT current_setting(\'TimeZone\') || (random() * 0)::int::text'), 'Asia/Tokyo0');
  const u = c.users.md5;
  const fresh = await rawLogin(p.port, u.name, c.database, u.password);
  sessions.push(fresh.conn);
  const direct = await rawLogin(c.primary.port, u.name, c.database, u.password);
  direct.conn.end();
  for (const k of ['TimeZone', 'DateStyle', 'client_encoding', 'integer_datetimes'])
    assert.equal(fresh.parameters.get(k), direct.parameters.get(k), k);
  assert.equal(await one(fresh.conn, 'SELECT current_setting(\'TimeZone\') || (random() * 0)::int::text'), `${direct.parameters.get('TimeZone')}0`);
});

test('DISCARD ALL from a session holding nothing is done by pgrouter: settings and prepared statements go, no backend is pinned', async () => {
  const u = c.users.md5;
  const viaProxy = new pg.Client({ host: p.host, port: p.port, user: u.name, password: u.password, database: c.database });
  const direct = new pg.Client({ host: c.primary.host, port: c.primary.port, user: u.name, password: u.password, database: c.database });
  const other = await session();
  try {
    const outcomes: Array<string | undefined> = [];
    for (const cl of [direct, viaProxy]) {
      await cl.connect();
      await cl.query("SET work_mem = '5MB'");
      await cl.query({ name: 'q', text: 'SELECT $1::int AS v', values: [1] });
      const r = await cl.query('DISCARD ALL');
      assert.equal(r.command, 'DISCARD');
      assert.equal((await cl.query('SHOW work_mem')).rows[0].work_mem, '4MB');
      // node-postgres thinks "q" is still prepared and only binds it: the server no longer has it.
      outcomes.push(await cl.query({ name: 'q', text: 'SELECT $1::int AS v', values: [2] }).then(() => 'ran', (e: { code?: string }) => e.code));
      assert.equal((await cl.query({ name: 'q2', text: 'SELECT $1::int AS v', values: [3] })).rows[0].v, 3);
    }
    assert.deepEqual(outcomes, ['26000', '26000']);
    assert.deepEqual(await seen(other, 'work_mem'), { replica: '4MB', primary: '4MB' });
    // Not pinned: its reads are still balanced to the replica (a pinned session reads on its primary backend).
    assert.equal(Number((await viaProxy.query('SELECT inet_server_port() AS port')).rows[0].port), c.replica.port);
    // DISCARD ALL in a transaction is PostgreSQL's error, as directly.
    await viaProxy.query('BEGIN');
    await assert.rejects(viaProxy.query('DISCARD ALL'), (e: { code?: string }) => e.code === '25001');
    await viaProxy.query('ROLLBACK');
  } finally {
    await Promise.all([viaProxy.end(), direct.end()]);
  }
});

test('12 clients with settings of their own, concurrently over 2 lanes per node: every statement runs with its own client\'s settings', async () => {
  const sp = await startProxy(c, {
    conf: { pool_mode: 'transaction', transaction_pool_size: 2, load_balance_mode: 'on', backend_weight0: 1, backend_weight1: 1, statement_level_load_balance: 'on', health_check_period: 0 },
  });
  const u = c.users.md5;
  const clients = Array.from({ length: 12 }, () => new pg.Client({ host: sp.host, port: sp.port, user: u.name, password: u.password, database: c.database }));
  try {
    await Promise.all(clients.map((cl) => cl.connect()));
    const wrong: string[] = [];
    await Promise.all(
      clients.map(async (cl, k) => {
        // Clients 0-3 never SET anything; the others do, and 8-11 change their minds half way.
        let want = '4MB';
        for (let i = 0; i < 40; i++) {
          if (k >= 4 && i === 0) {
            await cl.query(`SET work_mem = '${k + 1}MB'`);
            want = `${k + 1}MB`;
          }
          if (k >= 8 && i === 20) {
            await cl.query(i % 2 === 0 ? 'RESET work_mem' : 'RESET ALL');
            want = '4MB';
          }
          // Each client waits for its answer; the 12 clients' statements interleave on the lanes.
          const q = i % 3 === 0 ? "SELECT current_setting('work_mem') AS v, random() AS r" : "SELECT current_setting('work_mem') AS v";
          const v = (await cl.query(q)).rows[0].v as string;
          if (v !== want) wrong.push(`client ${k} statement ${i}: ${v}, not ${want}`);
        }
      }),
    );
    assert.deepEqual(wrong, []);
  } finally {
    await Promise.all(clients.map((cl) => cl.end().catch(() => undefined)));
    await sp.stop();
  }
});
