// Where each statement runs, proved from the server side: every probe returns the port of the
// server that executed it (current_setting('port') is stable, so it never forces the primary).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';
import { sql, waitForReplication, type Cluster } from '../../rig/cluster.ts';

let c: Cluster;
const proxies: ProxyHandle[] = [];

before(async () => {
  c = await getCluster();
  await sql(c, c.primary, `DROP TABLE IF EXISTS route_t; CREATE TABLE route_t (id int primary key, v text);
    INSERT INTO route_t SELECT g, 'v' || g FROM generate_series(1, 10) g;
    CREATE SEQUENCE IF NOT EXISTS route_seq;
    CREATE OR REPLACE FUNCTION route_stable() RETURNS text LANGUAGE sql STABLE AS $$ SELECT current_setting('port') $$;
    GRANT ALL ON route_t, route_seq TO PUBLIC;`);
  await waitForReplication(c);
});

after(async () => {
  for (const p of proxies) await p.stop();
});

async function proxy(conf: Record<string, string | number | boolean> = {}): Promise<ProxyHandle> {
  // Weight 0 on the primary: every balanceable read must go to the replica.
  const p = await startProxy(c, { conf: { backend_weight0: 0, backend_weight1: 1, ...conf } });
  proxies.push(p);
  return p;
}

async function client(p: ProxyHandle): Promise<pg.Client> {
  const cl = new pg.Client({ connectionString: p.url(c.users.superuser.name, c.users.superuser.password) });
  cl.on('error', () => undefined); // errors also reject the pending call; an idle client must not throw
  await cl.connect();
  return cl;
}

/** Runs a statement whose first column is a port; says which node ran it. */
async function where(cl: pg.Client, text: string): Promise<'primary' | 'replica'> {
  const r = await cl.query(text);
  const rows = Array.isArray(r) ? r.at(-1)!.rows : r.rows;
  const port = Number(Object.values(rows[0] as object)[0]);
  if (port === c.primary.port) return 'primary';
  if (port === c.replica.port) return 'replica';
  throw new Error(`unexpected port ${port} for ${text}`);
}

const P = "current_setting('port')";
/** Statements outside a transaction and where they must run. */
const AUTOCOMMIT: Array<[string, 'primary' | 'replica']> = [
  [`SELECT ${P}`, 'replica'],
  [`select ${P} from route_t where id = 1`, 'replica'],
  [`SELECT ${P} FROM route_t FOR UPDATE`, 'primary'],
  [`SELECT ${P} FROM route_t FOR SHARE`, 'primary'],
  [`SELECT ${P} FROM route_t FOR NO KEY UPDATE`, 'primary'],
  [`SELECT ${P} FROM route_t FOR KEY SHARE`, 'primary'],
  [`SELECT ${P}, nextval('route_seq')`, 'primary'],
  [`SELECT ${P}, random()`, 'primary'],
  [`SELECT ${P}, now()`, 'replica'],
  [`SELECT ${P}, route_stable()`, 'primary'], // user functions count as volatile without a pg_proc lookup
  [`SELECT ${P} FROM pg_catalog.pg_class LIMIT 1`, 'primary'],
  [`SELECT ${P} FROM pg_stat_activity LIMIT 1`, 'primary'],
  [`WITH x AS (SELECT 1) SELECT ${P} FROM x`, 'replica'],
  [`WITH x AS (UPDATE route_t SET v = v WHERE id = 1 RETURNING 1) SELECT ${P} FROM x`, 'primary'],
  [`/* hint */ SELECT ${P}`, 'primary'],
  [`-- hint\nSELECT ${P}`, 'primary'],
  [`SELECT ${P}; SELECT ${P}`, 'primary'],
  [`INSERT INTO route_t VALUES (1000 + floor(random() * 1000000)::int, 'x') ON CONFLICT DO NOTHING RETURNING ${P}`, 'primary'],
  [`UPDATE route_t SET v = v WHERE id = 2 RETURNING ${P}`, 'primary'],
  [`WITH d AS (DELETE FROM route_t WHERE id < 0 RETURNING 1) SELECT ${P}`, 'primary'],
  [`SHOW port`, 'replica'],
  [`VALUES (${P})`, 'primary'],
  [`SELECT ${P} FROM (SELECT * FROM route_t FOR UPDATE) s LIMIT 1`, 'primary'],
];

test('autocommit statements go where Pgpool-II sends them', async () => {
  const p = await proxy();
  const cl = await client(p);
  try {
    for (const [text, want] of AUTOCOMMIT) assert.equal(await where(cl, text), want, text);
  } finally {
    await cl.end();
  }
});

test('SELECT INTO runs on the primary', async () => {
  const p = await proxy();
  const cl = await client(p);
  try {
    await cl.query('DROP TABLE IF EXISTS route_into');
    await cl.query(`SELECT ${P} AS port INTO route_into`);
    // Read it on the primary itself: outside a transaction a read through pgrouter may reach the
    // replica before it has replayed the new table (as with Pgpool-II).
    assert.equal(Number(await sql(c, c.primary, 'SELECT port FROM route_into')), c.primary.port);
    await cl.query('DROP TABLE route_into');
  } finally {
    await cl.end();
  }
});

test('inside a transaction: reads follow the BEGIN, and after a write they go to the primary', async () => {
  const p = await proxy();
  const cl = await client(p);
  try {
    assert.equal(await where(cl, `SELECT ${P}`), 'replica'); // opens the replica connection
    await cl.query('BEGIN');
    assert.equal(await where(cl, `SELECT ${P}`), 'replica');
    assert.equal(await where(cl, `UPDATE route_t SET v = v WHERE id = 3 RETURNING ${P}`), 'primary');
    assert.equal(await where(cl, `SELECT ${P}`), 'primary', 'read after write in the same transaction');
    await cl.query('COMMIT');
    assert.equal(await where(cl, `SELECT ${P}`), 'replica', 'after COMMIT reads are balanced again');
    await cl.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
    assert.equal(await where(cl, `SELECT ${P}`), 'primary', 'SERIALIZABLE pins the transaction');
    await cl.query('COMMIT');
    await cl.query('BEGIN READ WRITE');
    assert.equal(await where(cl, `SELECT ${P}`), 'primary', 'READ WRITE pins the transaction');
    await cl.query('ROLLBACK');
    await cl.query('BEGIN');
    await cl.query('SET LOCAL work_mem = 4096');
    assert.equal(await where(cl, `SELECT ${P}`), 'primary', 'SET inside a transaction counts as a write (Pgpool-II)');
    await cl.query('COMMIT');
  } finally {
    await cl.end();
  }
});

test('a transaction that starts before the replica is open stays on the primary', async () => {
  const p = await proxy();
  const cl = await client(p);
  try {
    await cl.query('BEGIN');
    assert.equal(await where(cl, `SELECT ${P}`), 'primary');
    await cl.query('COMMIT');
    assert.equal(await where(cl, `SELECT ${P}`), 'replica');
  } finally {
    await cl.end();
  }
});

test('disable_load_balance_on_write: off, transaction, trans_transaction, always', async () => {
  const expect: Record<string, [string, string, string, string]> = {
    // read in tx after write, read after commit, read in the next tx, read outside tx after an autocommit write
    off: ['replica', 'replica', 'replica', 'replica'],
    transaction: ['primary', 'replica', 'replica', 'replica'],
    trans_transaction: ['primary', 'replica', 'primary', 'replica'],
    always: ['primary', 'primary', 'primary', 'primary'],
  };
  for (const [mode, want] of Object.entries(expect)) {
    const p = await proxy({ disable_load_balance_on_write: mode });
    const cl = await client(p);
    try {
      await where(cl, `SELECT ${P}`);
      await cl.query('BEGIN');
      await where(cl, `SELECT ${P}`);
      await cl.query('UPDATE route_t SET v = v WHERE id = 4');
      const got = [await where(cl, `SELECT ${P}`)];
      await cl.query('COMMIT');
      got.push(await where(cl, `SELECT ${P}`));
      await cl.query('BEGIN');
      got.push(await where(cl, `SELECT ${P}`));
      await cl.query('COMMIT');
      await cl.query('UPDATE route_t SET v = v WHERE id = 4');
      got.push(await where(cl, `SELECT ${P}`));
      assert.deepEqual(got, want, `disable_load_balance_on_write = ${mode}`);
    } finally {
      await cl.end();
    }
  }
});

test('SET state reaches a replica that joins the session late', async () => {
  const p = await proxy();
  const cl = await client(p);
  try {
    await cl.query('SET search_path = pg_catalog, public');
    await cl.query("SET application_name = 'late-join'");
    const r = await cl.query(`SELECT ${P} AS port, current_setting('search_path') AS sp, current_setting('application_name') AS app`);
    assert.equal(Number(r.rows[0].port), c.replica.port);
    assert.equal(r.rows[0].sp, 'pg_catalog, public');
    assert.equal(r.rows[0].app, 'late-join');
  } finally {
    await cl.end();
  }
});

test('temporary tables are read on the primary', async () => {
  const p = await proxy();
  const cl = await client(p);
  try {
    await cl.query(`CREATE TEMP TABLE route_tmp AS SELECT 1 AS a`);
    assert.equal(await where(cl, `SELECT ${P} FROM route_tmp`), 'primary');
    await cl.query('DROP TABLE route_tmp');
  } finally {
    await cl.end();
  }
});

test('write_function_list and read_only_function_list', async () => {
  const p = await proxy({ write_function_list: 'nextval,setval', read_only_function_list: '' });
  const cl = await client(p);
  try {
    assert.equal(await where(cl, `SELECT ${P}, random()`), 'replica', 'random is not in write_function_list');
    assert.equal(await where(cl, `SELECT ${P}, nextval('route_seq')`), 'primary');
  } finally {
    await cl.end();
  }
  const p2 = await proxy({ read_only_function_list: 'current_setting,route_stable' });
  const cl2 = await client(p2);
  try {
    assert.equal(await where(cl2, `SELECT ${P}, route_stable()`), 'replica');
    assert.equal(await where(cl2, `SELECT ${P}, now()`), 'primary', 'now is not in read_only_function_list');
  } finally {
    await cl2.end();
  }
});

test('load_balance_mode off and primary_routing_query_pattern_list send reads to the primary', async () => {
  const p = await proxy({ load_balance_mode: 'off' });
  const cl = await client(p);
  assert.equal(await where(cl, `SELECT ${P}`), 'primary');
  await cl.end();
  const p2 = await proxy({ primary_routing_query_pattern_list: '.*route_t.*' });
  const cl2 = await client(p2);
  assert.equal(await where(cl2, `SELECT ${P} FROM route_t LIMIT 1`), 'primary');
  assert.equal(await where(cl2, `SELECT ${P}`), 'replica');
  await cl2.end();
});

test('extended protocol: reads balanced, named statements re-parsed on the primary inside a writing transaction', async () => {
  const p = await proxy();
  const cl = await client(p);
  try {
    const q = { name: 'route_named', text: `SELECT ${P} AS port, $1::int AS x`, values: [1] };
    assert.equal(Number((await cl.query(q)).rows[0].port), c.replica.port);
    assert.equal(Number((await cl.query(q)).rows[0].port), c.replica.port, 'reused named statement');
    await cl.query('BEGIN');
    await cl.query('UPDATE route_t SET v = v WHERE id = 5');
    const r = await cl.query(q);
    assert.equal(Number(r.rows[0].port), c.primary.port, 'named statement in a writing transaction');
    assert.equal(r.rows[0].x, 1);
    await cl.query('COMMIT');
    assert.equal(Number((await cl.query({ text: `SELECT ${P} AS port FROM route_t WHERE id = $1`, values: [1] })).rows[0].port), c.replica.port);
    assert.equal(
      Number((await cl.query({ text: `UPDATE route_t SET v = v WHERE id = $1 RETURNING ${P} AS port`, values: [1] })).rows[0].port),
      c.primary.port,
    );
  } finally {
    await cl.end();
  }
});

test('weights: 1:0 never touches the replica, 1:3 splits sessions within bounds', async () => {
  const p = await startProxy(c, { conf: { backend_weight0: 1, backend_weight1: 0 } });
  proxies.push(p);
  for (let i = 0; i < 30; i++) {
    const cl = await client(p);
    assert.equal(await where(cl, `SELECT ${P}`), 'primary');
    await cl.end();
  }
  const p2 = await startProxy(c, { conf: { backend_weight0: 1, backend_weight1: 3 } });
  proxies.push(p2);
  const n = 400;
  let replica = 0;
  for (let i = 0; i < n; i++) {
    const cl = await client(p2);
    if ((await where(cl, `SELECT ${P}`)) === 'replica') replica++;
    await cl.end();
  }
  // Expected 300 of 400; 5 standard deviations (sqrt(400*.75*.25) ≈ 8.7) either side.
  assert.ok(Math.abs(replica - 300) < 44, `replica sessions ${replica} of ${n}`);
});

test('statement_level_load_balance spreads the reads of one session', async () => {
  const p = await startProxy(c, { conf: { backend_weight0: 1, backend_weight1: 1, statement_level_load_balance: 'on' } });
  proxies.push(p);
  const cl = await client(p);
  const seen = new Set<string>();
  for (let i = 0; i < 60; i++) seen.add(await where(cl, `SELECT ${P}`));
  await cl.end();
  assert.deepEqual([...seen].sort(), ['primary', 'replica']);
});

test('SET pgrouter.trace_routing = on names the node and the reason of each decision', async () => {
  const p = await proxy();
  const cl = await client(p);
  const notices: string[] = [];
  cl.on('notice', (n) => notices.push(n.message ?? ''));
  try {
    await cl.query('SET pgrouter.trace_routing = on');
    await cl.query(`SELECT ${P}`);
    await cl.query(`SELECT ${P}, nextval('route_seq')`);
    await cl.query('BEGIN');
    await cl.query('UPDATE route_t SET v = v WHERE id = 6');
    await cl.query(`SELECT ${P}`);
    await cl.query('COMMIT');
    await cl.query('SET pgrouter.trace_routing = off');
    await cl.query(`SELECT ${P}`);
    assert.ok(notices.some((n) => /node 1 \(replica\): read$/.test(n)), notices.join('\n'));
    assert.ok(notices.some((n) => /node 0 \(primary\): write function nextval/.test(n)), notices.join('\n'));
    assert.ok(notices.some((n) => /node 0 \(primary\): in writing transaction/.test(n)), notices.join('\n'));
    const afterOff = notices.length;
    await cl.query(`SELECT ${P}`);
    assert.equal(notices.length, afterOff, 'no notices once tracing is off');
  } finally {
    await cl.end();
  }
});

test('redirect preference lists: application_name, then database, then user', async () => {
  const p = await startProxy(c, {
    conf: {
      backend_weight0: 1,
      backend_weight1: 1,
      app_name_redirect_preference_list: 'to_primary:primary,to_replica:1,half_.*:standby(0.5)',
      database_redirect_preference_list: 'app:primary',
      user_redirect_preference_list: 'postgres:standby',
    },
  });
  proxies.push(p);
  async function landing(app: string): Promise<Set<string>> {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const cl = new pg.Client({ connectionString: p.url(c.users.superuser.name, c.users.superuser.password), application_name: app });
      cl.on('error', () => undefined); // errors also reject the pending call; an idle client must not throw
      await cl.connect();
      seen.add(await where(cl, `SELECT ${P}`));
      await cl.end();
    }
    return seen;
  }
  assert.deepEqual([...(await landing('to_primary'))], ['primary']);
  assert.deepEqual([...(await landing('to_replica'))], ['replica']);
  assert.deepEqual([...(await landing('half_split'))].sort(), ['primary', 'replica']);
  // No application rule matches: the database rule (app → primary) wins over the user rule.
  assert.deepEqual([...(await landing('other'))], ['primary']);
});
