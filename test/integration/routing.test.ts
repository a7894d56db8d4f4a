// Where each statement runs, proved from the server side: every probe returns the port of the
// server that executed it (current_setting('port') is stable, so it never forces the primary).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';
import { sql, waitForReplication, type Cluster } from '../../rig/cluster.ts';
import { RawConn, frame, queryMessage, startupPacket, terminateMessage } from './raw-client.ts';

let c: Cluster;
const proxies: ProxyHandle[] = [];

before(async () => {
  c = await getCluster();
  await sql(c, c.primary, `DROP VIEW IF EXISTS route_v2; DROP TABLE IF EXISTS route_t; CREATE TABLE route_t (id int primary key, v text);
    INSERT INTO route_t SELECT g, 'v' || g FROM generate_series(1, 10) g;
    CREATE SEQUENCE IF NOT EXISTS route_seq;
    CREATE OR REPLACE FUNCTION route_stable() RETURNS text LANGUAGE sql STABLE AS $$ SELECT current_setting('port') $$;
    GRANT ALL ON route_t, route_seq TO PUBLIC;
    CREATE OR REPLACE FUNCTION route_vol() RETURNS int LANGUAGE sql VOLATILE AS $$ SELECT 1 $$;
    CREATE OR REPLACE FUNCTION route_imm(int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT $1 $$;
    CREATE OR REPLACE FUNCTION route_pipe_a() RETURNS int LANGUAGE sql STABLE AS $$ SELECT 1 $$;
    CREATE OR REPLACE FUNCTION route_pipe_b() RETURNS int LANGUAGE sql VOLATILE AS $$ SELECT 2 $$;
    CREATE OR REPLACE FUNCTION route_flip() RETURNS int LANGUAGE sql STABLE AS $$ SELECT 1 $$;
    CREATE OR REPLACE FUNCTION route_dup() RETURNS int LANGUAGE sql STABLE AS $$ SELECT 1 $$;
    CREATE SCHEMA IF NOT EXISTS route_s;
    CREATE OR REPLACE FUNCTION route_s.route_dup() RETURNS int LANGUAGE sql VOLATILE AS $$ SELECT 2 $$;
    CREATE OR REPLACE FUNCTION route_s.route_stable2() RETURNS int LANGUAGE sql STABLE AS $$ SELECT 3 $$;
    DROP TABLE IF EXISTS route_unlogged, route_t2, route_t3;
    CREATE UNLOGGED TABLE route_unlogged (id int); INSERT INTO route_unlogged VALUES (1);
    CREATE TABLE route_t2 (id int); CREATE TABLE route_t3 (id int);
    CREATE VIEW route_v2 AS SELECT * FROM route_t2;
    CREATE OR REPLACE FUNCTION route_writer() RETURNS int LANGUAGE sql VOLATILE AS $$ INSERT INTO route_t3 VALUES (1) RETURNING 1 $$;
    GRANT ALL ON route_unlogged, route_t2, route_t3, route_v2 TO PUBLIC;
    GRANT USAGE ON SCHEMA route_s TO PUBLIC;`);
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
  [`SELECT ${P}, route_stable()`, 'replica'], // STABLE in pg_proc
  [`SELECT ${P}, route_vol()`, 'primary'], // VOLATILE in pg_proc
  [`SELECT ${P}, route_imm(1), public.route_stable()`, 'replica'],
  [`SELECT ${P} FROM route_unlogged`, 'primary'],
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
    // Pgpool-II counts it as a write; it went to every node, the replica too, and writes no data.
    assert.equal(await where(cl, `SELECT ${P}`), 'replica', 'SET LOCAL inside a transaction is no write');
    await cl.query('COMMIT');
  } finally {
    await cl.end();
  }
});

test('a transaction that starts before the replica is open reads there: the BEGIN reaches it (deferred or not), READ WRITE stays on the primary', async () => {
  const p = await proxy();
  /** Port and transaction start of a read: two reads of one transaction on one server share now(). */
  const probe = async (cl: pg.Client): Promise<[string, string]> => {
    const r = await cl.query<{ port: string; ts: string }>(`SELECT ${P} AS port, now()::text AS ts`);
    const port = Number(r.rows[0]!.port);
    return [port === c.primary.port ? 'primary' : port === c.replica.port ? 'replica' : String(port), r.rows[0]!.ts];
  };
  for (const begin of ['BEGIN', 'BEGIN ISOLATION LEVEL REPEATABLE READ']) {
    // Each client is a new session: its first statement is the BEGIN, before any replica connection.
    const cl = await client(p);
    try {
      await cl.query(begin);
      const [n1, t1] = await probe(cl);
      await new Promise((r) => setTimeout(r, 20));
      const [n2, t2] = await probe(cl);
      assert.deepEqual([n1, n2], ['replica', 'replica'], begin);
      assert.equal(t2, t1, `${begin}: both reads ran in one transaction on the replica`);
      await cl.query('COMMIT');
      const [n3, t3] = await probe(cl);
      assert.equal(n3, 'replica');
      assert.notEqual(t3, t1, `${begin}: the replica's transaction ended with the COMMIT`);
    } finally {
      await cl.end();
    }
  }
  const cl = await client(p);
  try {
    await cl.query('BEGIN READ WRITE');
    assert.equal((await probe(cl))[0], 'primary', 'BEGIN READ WRITE keeps the transaction on the primary');
    await cl.query('COMMIT');
  } finally {
    await cl.end();
  }
});

test('a BEGIN in the extended protocol is answered here and its transaction reads from the replica (psycopg 3 and pgJDBC shapes)', async () => {
  const p = await proxy();
  const app = 'route_ext_begin';
  const raw = await RawConn.connect(p.port);
  raw.write(startupPacket({ user: c.users.trust.name, database: c.database, application_name: app }));
  assert.ok((await raw.readUntil('Z')).found, 'session ready');
  /** Sends a Sync-ended batch; returns the types of its replies, the first DataRow's first column and the ReadyForQuery status. */
  const run = async (batch: Buffer): Promise<{ types: string; value: string | undefined; status: string }> => {
    raw.write(batch);
    const { found, seen } = await raw.readUntil('Z');
    assert.ok(found, 'batch answered');
    const row = seen.find((m) => m.type === 'D');
    return { types: seen.map((m) => m.type).join(''), value: row ? dataRow(row.body)[0] : undefined, status: String.fromCharCode(found.body[0]!) };
  };
  const node = (v: string | undefined): string => (Number(v) === c.primary.port ? 'primary' : Number(v) === c.replica.port ? 'replica' : String(v));
  try {
    // psycopg 3: BEGIN as a batch of its own (Parse, Bind, Describe portal, Execute, Sync).
    const psycopgBegin = Buffer.concat([
      frame('P', Buffer.concat([cstr(''), cstr('BEGIN'), int16(0)])),
      frame('B', Buffer.concat([cstr(''), cstr(''), int16(0), int16(0), int16(1), int16(0)])),
      frame('D', Buffer.concat([Buffer.from('P'), cstr('')])),
      frame('E', Buffer.concat([cstr(''), int32(0)])),
      frame('S'),
    ]);
    assert.deepEqual(await run(psycopgBegin), { types: '12nCZ', value: undefined, status: 'T' }, 'what a server answers that BEGIN');
    const r1 = await run(extendedQuery(`SELECT ${P}`));
    assert.equal(node(r1.value), 'replica');
    assert.equal(r1.status, 'T');
    assert.equal(node((await run(extendedQuery(`SELECT ${P}`))).value), 'replica');
    assert.equal((await run(extendedQuery('COMMIT'))).status, 'I');
    // The replica's part of the transaction ended with it (it got no COMMIT from the client).
    await waitFor(async () => (await sql(c, c.replica, `SELECT string_agg(state, ',') FROM pg_stat_activity WHERE application_name = '${app}'`)) === 'idle');
    // pgJDBC: BEGIN in front of the transaction's first statement, in one batch.
    const select = extendedQuery(`SELECT ${P}`);
    const jdbc = Buffer.concat([extendedQuery('BEGIN').subarray(0, -5), select]);
    const r2 = await run(jdbc);
    assert.equal(r2.types, '12C12DCZ', "BEGIN's replies, then the SELECT's");
    assert.equal(node(r2.value), 'replica');
    assert.equal(r2.status, 'T');
    assert.equal((await run(extendedQuery('ROLLBACK'))).status, 'I');
    await waitFor(async () => (await sql(c, c.replica, `SELECT string_agg(state, ',') FROM pg_stat_activity WHERE application_name = '${app}'`)) === 'idle');
  } finally {
    raw.write(terminateMessage());
    raw.end();
    await raw.waitClosed(5000);
  }
});

/** Polls `cond` every 50 ms for up to 5 s. */
async function waitFor(cond: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${cond.toString()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('disable_load_balance_on_write: off, transaction, trans_transaction, always, dml_adaptive', async () => {
  const expect: Record<string, [string, string, string, string]> = {
    // read in tx after write, read after commit, read in the next tx, read outside tx after an autocommit write
    off: ['replica', 'replica', 'replica', 'replica'],
    transaction: ['primary', 'replica', 'replica', 'replica'],
    trans_transaction: ['primary', 'replica', 'primary', 'replica'],
    always: ['primary', 'primary', 'primary', 'primary'],
    // The probe reads no table: dml_adaptive sends it to the primary only after a write of a table it reads.
    dml_adaptive: ['replica', 'replica', 'replica', 'replica'],
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

test('SET, RESET, SAVEPOINT and a weak LOCK are no writes: later reads still balance', async () => {
  // pgJDBC sends these two SETs on every connect; under `always` they used to keep the whole
  // session's reads on the primary.
  for (const mode of ['transaction', 'always']) {
    const p = await proxy({ disable_load_balance_on_write: mode });
    const cl = await client(p);
    try {
      await cl.query('SET extra_float_digits = 3');
      await cl.query("SET application_name = 'PostgreSQL JDBC Driver'");
      await cl.query('RESET application_name');
      const got = [await where(cl, `SELECT ${P}`)];
      await cl.query('BEGIN');
      await cl.query('SAVEPOINT s1');
      await cl.query('LOCK TABLE route_t IN ACCESS SHARE MODE');
      got.push(await where(cl, `SELECT ${P}`));
      await cl.query('RELEASE SAVEPOINT s1');
      await cl.query('COMMIT');
      got.push(await where(cl, `SELECT ${P}`));
      assert.deepEqual(got, ['replica', 'replica', 'replica'], `disable_load_balance_on_write = ${mode}`);
    } finally {
      await cl.end();
    }
  }
});

test('transaction pooling: disable_load_balance_on_write = always keeps reads on the primary after the first write, and a SET is no write', async () => {
  const p = await proxy({ pool_mode: 'transaction', disable_load_balance_on_write: 'always' });
  const cl = await client(p);
  try {
    await cl.query('SET extra_float_digits = 3');
    const got = [await where(cl, `SELECT ${P}`)];
    await cl.query('UPDATE route_t SET v = v WHERE id = 4');
    got.push(await where(cl, `SELECT ${P}`), await where(cl, `SELECT ${P}`));
    assert.deepEqual(got, ['replica', 'primary', 'primary']);
  } finally {
    await cl.end();
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

test('a replica joining late gets the latest value of each setting, in the order they last changed', async () => {
  const p = await proxy();
  const cl = await client(p);
  try {
    // A client that sets application_name per request, over simple and extended protocol: the
    // replay keeps one SET per setting, so what the replica receives is the latest of each.
    await cl.query("SET search_path = 'x'");
    for (let i = 0; i < 40; i++) await cl.query(`SET application_name = 'req-${i}'`);
    await cl.query({ name: 'set_app', text: "SET application_name = 'req-last'" });
    await cl.query('SET statement_timeout = 1000');
    await cl.query('RESET statement_timeout');
    await cl.query('SET search_path = pg_catalog, public');
    await cl.query('SET SESSION "work_mem" = \'8MB\'');
    const r = await cl.query(
      `SELECT ${P} AS port, current_setting('search_path') AS sp, current_setting('application_name') AS app, current_setting('statement_timeout') AS st, current_setting('work_mem') AS wm`,
    );
    assert.equal(Number(r.rows[0].port), c.replica.port, 'the first read opens the replica connection');
    assert.deepEqual(
      { sp: r.rows[0].sp, app: r.rows[0].app, st: r.rows[0].st, wm: r.rows[0].wm },
      { sp: 'pg_catalog, public', app: 'req-last', st: '0', wm: '8MB' },
    );
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

test('weights: 1:0 never touches the replica, 1:3 splits 2,000 sessions within bounds', async (t) => {
  const p = await startProxy(c, { conf: { backend_weight0: 1, backend_weight1: 0 } });
  proxies.push(p);
  for (let i = 0; i < 30; i++) {
    const cl = await client(p);
    assert.equal(await where(cl, `SELECT ${P}`), 'primary');
    await cl.end();
  }
  const p2 = await startProxy(c, { conf: { backend_weight0: 1, backend_weight1: 3 } });
  proxies.push(p2);
  // Sessions are cheap through the proxy's pool; the client side is kept cheap too: raw protocol
  // sessions of the trust user (no SCRAM exchange per connect), two at a time.
  const n = 2000;
  const workers = 2;
  const landed = { primary: 0, replica: 0 };
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (let i = 0; i < n / workers; i++) {
        const raw = await rawSession(p2);
        raw.write(queryMessage(`SELECT ${P}`));
        const { found, seen } = await raw.readUntil('Z');
        assert.ok(found, 'query answered');
        const row = seen.find((m) => m.type === 'D');
        assert.ok(row, 'a row');
        const port = Number(dataRow(row.body)[0]);
        assert.ok(port === c.primary.port || port === c.replica.port, `port ${port}`);
        landed[port === c.primary.port ? 'primary' : 'replica']++;
        raw.write(terminateMessage());
        raw.end();
        await raw.waitClosed(5000);
      }
    }),
  );
  assert.equal(landed.primary + landed.replica, n);
  t.diagnostic(`1:3 weighting: ${landed.replica} of ${n} sessions on the replica`);
  // Binomial(2000, 0.75): mean 1500, standard deviation sqrt(2000 * 0.75 * 0.25) ≈ 19.4. Five
  // deviations either side (false alarm about 6e-7); a 1:1 or 1:2 weighting lands far outside.
  assert.ok(Math.abs(landed.replica - 1500) < 97, `replica sessions ${landed.replica} of ${n}`);
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

/** Opens a raw protocol session through the proxy as the rig's trust user (no password exchange). */
async function rawSession(p: ProxyHandle): Promise<RawConn> {
  const raw = await RawConn.connect(p.port);
  raw.write(startupPacket({ user: c.users.trust.name, database: c.database }));
  const { found } = await raw.readUntil('Z');
  assert.ok(found, 'session ready');
  return raw;
}

const cstr = (s: string): Buffer => Buffer.from(`${s}\0`);
const int16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
/** Parse, Bind, Execute and Sync of an unnamed statement without parameters. */
function extendedQuery(text: string): Buffer {
  return Buffer.concat([
    frame('P', Buffer.concat([cstr(''), cstr(text), int16(0)])),
    frame('B', Buffer.concat([cstr(''), cstr(''), int16(0), int16(0), int16(0)])),
    frame('E', Buffer.concat([cstr(''), int32(0)])),
    frame('S'),
  ]);
}
/** The text columns of a DataRow body. */
function dataRow(body: Buffer): string[] {
  const out: string[] = [];
  let at = 2;
  for (let i = 0; i < body.readInt16BE(0); i++) {
    const len = body.readInt32BE(at);
    at += 4;
    out.push(len < 0 ? '' : body.toString('utf8', at, at + len));
    at += Math.max(0, len);
  }
  return out;
}

test('function volatility comes from pg_proc: VOLATILE user functions are writes, others are balanced', async () => {
  const p = await proxy();
  const cl = await client(p);
  const notices: string[] = [];
  cl.on('notice', (n) => notices.push(n.message ?? ''));
  try {
    await cl.query('SET pgrouter.trace_routing = on');
    assert.equal(await where(cl, `SELECT ${P}, route_vol()`), 'primary');
    assert.ok(notices.some((n) => /node 0 \(primary\): write function route_vol$/.test(n)), notices.join('\n'));
    assert.equal(await where(cl, `SELECT ${P}, route_vol()`), 'primary', 'cached answer');
    assert.equal(await where(cl, `SELECT ${P}, route_stable()`), 'replica');
    assert.equal(await where(cl, `SELECT ${P}, route_imm(2)`), 'replica');
    // An unqualified name counts as volatile if any schema has a volatile overload; a qualified one looks in its schema.
    assert.equal(await where(cl, `SELECT ${P}, route_dup()`), 'primary');
    assert.equal(await where(cl, `SELECT ${P}, public.route_dup()`), 'replica');
    assert.equal(await where(cl, `SELECT ${P}, route_s.route_dup()`), 'primary');
    assert.equal(await where(cl, `SELECT ${P}, route_s.route_stable2()`), 'replica');
    // Built-ins are decided without a lookup, as before.
    assert.equal(await where(cl, `SELECT ${P}, random()`), 'primary');
    // Extended protocol: the batch waits for the lookup too.
    assert.equal(Number((await cl.query({ text: `SELECT ${P} AS port, route_pipe_b() AS x, $1::int AS y`, values: [1] })).rows[0].port), c.primary.port);
    assert.equal(Number((await cl.query({ name: 'vol_named', text: `SELECT ${P} AS port, route_pipe_a() AS x`, values: [] })).rows[0].port), c.replica.port);
    // A volatile function in a transaction makes it a writing one (disable_load_balance_on_write = transaction).
    await cl.query('BEGIN');
    assert.equal(await where(cl, `SELECT ${P}, route_stable()`), 'replica');
    assert.equal(await where(cl, `SELECT ${P}, route_vol()`), 'primary');
    assert.equal(await where(cl, `SELECT ${P}`), 'primary', 'after a write function, the transaction stays on the primary');
    await cl.query('COMMIT');
  } finally {
    await cl.end();
  }
  // With a function list set, pg_proc is not asked: a VOLATILE function outside write_function_list is balanced.
  const p2 = await proxy({ write_function_list: 'nextval' });
  const cl2 = await client(p2);
  try {
    assert.equal(await where(cl2, `SELECT ${P}, route_vol()`), 'replica');
  } finally {
    await cl2.end();
  }
});

test('unlogged tables are read on the primary (check_unlogged_table)', async () => {
  const p = await proxy();
  const cl = await client(p);
  const notices: string[] = [];
  cl.on('notice', (n) => notices.push(n.message ?? ''));
  try {
    await cl.query('SET pgrouter.trace_routing = on');
    assert.equal(await where(cl, `SELECT ${P} FROM route_unlogged`), 'primary');
    assert.ok(notices.some((n) => /node 0 \(primary\): unlogged table route_unlogged$/.test(n)), notices.join('\n'));
    assert.equal(await where(cl, `SELECT ${P} FROM public.route_unlogged`), 'primary');
    assert.equal(await where(cl, `SELECT ${P} FROM route_t JOIN route_unlogged ON route_t.id = route_unlogged.id`), 'primary');
    assert.equal(await where(cl, `SELECT ${P} FROM route_t LIMIT 1`), 'replica');
    assert.equal(Number((await cl.query({ text: `SELECT ${P} AS port FROM route_unlogged WHERE id = $1`, values: [1] })).rows[0].port), c.primary.port);
  } finally {
    await cl.end();
  }
  // Off: the read is balanced, and the replica refuses it (which proves where it went).
  const p2 = await proxy({ check_unlogged_table: 'off' });
  const cl2 = await client(p2);
  try {
    await assert.rejects(cl2.query(`SELECT ${P} FROM route_unlogged`), /cannot access temporary or unlogged relations during recovery/);
  } finally {
    await cl2.end();
  }
});

test('catalog lookups are cached for relcache_expire seconds; DDL through pgrouter forgets them', async () => {
  await sql(c, c.primary, 'ALTER FUNCTION route_flip() STABLE');
  const p = await proxy({ relcache_expire: 2 });
  const cl = await client(p);
  try {
    assert.equal(await where(cl, `SELECT ${P}, route_flip()`), 'replica');
    const t0 = Date.now();
    // Behind pgrouter's back: the cached answer stands until it expires.
    await sql(c, c.primary, 'ALTER FUNCTION route_flip() VOLATILE');
    assert.equal(await where(cl, `SELECT ${P}, route_flip()`), 'replica', 'cached (stale) answer within relcache_expire');
    assert.ok(Date.now() - t0 < 1500, 'the cached read ran within the expiry time');
    // The cache reads a clock refreshed every 200 ms, so an entry may outlive its expiry by that
    // much (more when timers run late on a loaded machine): look again well after it.
    await new Promise((r) => setTimeout(r, 2600 - (Date.now() - t0)));
    assert.equal(await where(cl, `SELECT ${P}, route_flip()`), 'primary', 'looked up again after relcache_expire');
    // Through pgrouter: DDL forgets the cached facts at once.
    await cl.query('ALTER FUNCTION route_flip() STABLE');
    assert.equal(await where(cl, `SELECT ${P}, route_flip()`), 'replica', 'DDL through pgrouter forgets the cache');
  } finally {
    await cl.end();
    await sql(c, c.primary, 'ALTER FUNCTION route_flip() STABLE');
  }
});

test('a statement waiting for a catalog lookup holds the requests pipelined behind it, in order', async () => {
  const p = await proxy();
  const raw = await rawSession(p);
  try {
    // Query (lookup: STABLE), Query (no lookup), Parse/Bind/Execute/Sync (lookup: VOLATILE), Query, in one write.
    raw.write(
      Buffer.concat([
        queryMessage(`SELECT ${P}, 'q1', route_pipe_a()`),
        queryMessage(`SELECT ${P}, 'q2'`),
        extendedQuery(`SELECT ${P}, 'q3', route_pipe_b()`),
        queryMessage(`SELECT ${P}, 'q4', route_imm(4)`),
      ]),
    );
    const rows: string[][] = [];
    for (let i = 0; i < 4; i++) {
      const { found, seen } = await raw.readUntil('Z', 15_000);
      assert.ok(found, `reply ${i + 1} complete`);
      assert.equal(seen.find((m) => m.type === 'E'), undefined, `no error in reply ${i + 1}`);
      rows.push(...seen.filter((m) => m.type === 'D').map((m) => dataRow(m.body)));
    }
    const port = (n: 'primary' | 'replica'): string => String(c[n].port);
    assert.deepEqual(
      rows.map((r) => [r[0], r[1]]),
      [
        [port('replica'), 'q1'],
        [port('replica'), 'q2'],
        [port('primary'), 'q3'],
        [port('replica'), 'q4'],
      ],
    );
  } finally {
    raw.write(terminateMessage());
    raw.end();
  }
});

test('a failed catalog lookup sends the statement to the primary', async () => {
  // One more connection allowed (earlier tests' proxies may keep some in their pools): the
  // session's own primary connection takes it, so the lookup's connection is refused.
  const open = Number(await sql(c, c.primary, `SELECT count(*) FROM pg_stat_activity WHERE usename = '${c.users.trust.name}'`));
  await sql(c, c.primary, `ALTER ROLE ${c.users.trust.name} CONNECTION LIMIT ${open + 1}`);
  const p = await proxy();
  try {
    const cl = new pg.Client({ connectionString: p.url(c.users.trust.name) });
    cl.on('error', () => undefined);
    await cl.connect();
    const notices: string[] = [];
    cl.on('notice', (n) => notices.push(n.message ?? ''));
    try {
      await cl.query('SET pgrouter.trace_routing = on');
      assert.equal(await where(cl, `SELECT ${P}`), 'replica', 'plain reads are still balanced');
      assert.equal(await where(cl, `SELECT ${P}, route_stable()`), 'primary', 'unknown volatility counts as a write');
      assert.ok(notices.some((n) => /node 0 \(primary\): write function route_stable \(catalog lookup failed\)$/.test(n)), notices.join('\n'));
      await p.waitForLog(/catalog lookup failed/);
      assert.equal(await where(cl, `SELECT ${P} FROM route_t LIMIT 1`), 'primary', 'unknown persistence goes to the primary');
    } finally {
      await cl.end();
    }
  } finally {
    await sql(c, c.primary, `ALTER ROLE ${c.users.trust.name} CONNECTION LIMIT -1`);
  }
});

test('dml_adaptive: after a write in a transaction, reads of that table and its dependents go to the primary', async () => {
  const p = await proxy({
    disable_load_balance_on_write: 'dml_adaptive',
    dml_adaptive_object_relationship_list: 'route_t2:route_v2,route_writer():route_t3',
  });
  const cl = await client(p);
  const notices: string[] = [];
  cl.on('notice', (n) => notices.push(n.message ?? ''));
  const T = `${P} FROM route_t LIMIT 1`;
  const count = (rel: string): string => `SELECT ${P}, (SELECT count(*) FROM ${rel})`;
  try {
    await cl.query('SET pgrouter.trace_routing = on');
    assert.equal(await where(cl, `SELECT ${T}`), 'replica'); // opens the replica connection
    await cl.query('BEGIN');
    assert.equal(await where(cl, count('route_t2')), 'replica', 'before the write');
    assert.equal(await where(cl, `INSERT INTO route_t2 VALUES (1) RETURNING ${P}`), 'primary');
    assert.equal(await where(cl, `SELECT ${T}`), 'replica', 'a table not written still balances');
    assert.equal(await where(cl, count('route_t2')), 'primary', 'the written table');
    assert.ok(notices.some((n) => /node 0 \(primary\): dml_adaptive: route_t2 was written in this transaction$/.test(n)), notices.join('\n'));
    assert.equal(await where(cl, count('public.route_t2')), 'primary', 'the written table, schema-qualified');
    assert.equal(await where(cl, count('route_v2')), 'primary', 'a dependent listed in dml_adaptive_object_relationship_list');
    assert.equal(await where(cl, count('route_t3')), 'replica', 'route_t3 is not written yet');
    assert.equal(await where(cl, `SELECT ${P}, route_writer()`), 'primary', 'write function');
    assert.equal(await where(cl, count('route_t3')), 'primary', 'route_writer() writes route_t3');
    await cl.query('SAVEPOINT s1');
    await cl.query('SET LOCAL work_mem = 4096');
    assert.equal(await where(cl, `SELECT ${T}`), 'replica', 'SET and SAVEPOINT write no table');
    await cl.query('COMMIT');
    assert.equal(await where(cl, count('route_t2')), 'replica', 'the state resets at transaction end');
    await cl.query('BEGIN');
    assert.equal(await where(cl, count('route_t2')), 'replica', 'a new transaction starts clean');
    await cl.query('ROLLBACK');
    // A write whose tables pgrouter cannot name makes the whole transaction a writing one.
    await cl.query('BEGIN');
    assert.equal(await where(cl, `SELECT ${T}`), 'replica');
    await cl.query('DO $$ BEGIN INSERT INTO route_t2 VALUES (2); END $$');
    assert.equal(await where(cl, `SELECT ${T}`), 'primary', 'after DO');
    await cl.query('COMMIT');
    // Extended protocol: a named INSERT bound again counts as a write each time it runs.
    const ins = { name: 'dml_ins', text: 'INSERT INTO route_t2 VALUES ($1)', values: [3] };
    await cl.query(ins);
    await cl.query('BEGIN');
    assert.equal(await where(cl, `SELECT ${T}`), 'replica');
    await cl.query(ins);
    const sel = await cl.query({ name: 'dml_sel', text: `SELECT ${P} AS port, (SELECT count(*) FROM route_t2) AS n, $1::int AS x`, values: [1] });
    assert.equal(Number(sel.rows[0].port), c.primary.port, 'named read of the table the named INSERT wrote');
    const other = await cl.query({ name: 'dml_t', text: `SELECT ${P} AS port FROM route_t WHERE id = $1`, values: [1] });
    assert.equal(Number(other.rows[0].port), c.replica.port, 'named read of another table');
    await cl.query('COMMIT');
  } finally {
    await cl.end();
  }
});

test('disable_load_balance_on_write = transaction: a named write bound again inside a transaction sends later reads to the primary', async () => {
  const p = await proxy();
  const cl = await client(p);
  try {
    const upd = { name: 'tx_upd', text: 'UPDATE route_t SET v = v WHERE id = $1', values: [7] };
    await cl.query(upd); // parsed here, outside any transaction
    assert.equal(await where(cl, `SELECT ${P}`), 'replica');
    await cl.query('BEGIN');
    assert.equal(await where(cl, `SELECT ${P}`), 'replica');
    await cl.query(upd); // Bind and Execute only
    assert.equal(await where(cl, `SELECT ${P}`), 'primary', 'read after the named UPDATE');
    await cl.query('COMMIT');
  } finally {
    await cl.end();
  }
});

test('relcache_query_target = load_balance_node runs the lookups on the session\'s load-balance node', async () => {
  const trust = c.users.trust.name;
  const count = async (n: typeof c.primary): Promise<number> =>
    Number(await sql(c, n, `SELECT count(*) FROM pg_stat_activity WHERE usename = '${trust}'`));
  // Connections of the trust user: more on the primary than on the replica, then a limit that
  // leaves the primary no room beyond a session's own connection, and the replica room for one more.
  const extra: pg.Client[] = [];
  let onPrimary = await count(c.primary);
  const onReplica = await count(c.replica);
  while (onPrimary <= onReplica) {
    const x = new pg.Client({ host: c.primary.host, port: c.primary.port, user: trust, database: c.database });
    x.on('error', () => undefined);
    await x.connect();
    extra.push(x);
    onPrimary++;
  }
  await sql(c, c.primary, `ALTER ROLE ${trust} CONNECTION LIMIT ${onPrimary + 1}`);
  await waitForReplication(c);
  try {
    for (const [target, want] of [
      ['load_balance_node', 'replica'],
      ['primary', 'primary'], // the lookup's connection to the primary is refused: unknown, so the primary
    ] as const) {
      const p = await startProxy(c, { conf: { backend_weight0: 0, backend_weight1: 1, relcache_query_target: target } });
      try {
        const cl = new pg.Client({ connectionString: p.url(trust) });
        cl.on('error', () => undefined);
        await cl.connect();
        try {
          assert.equal(await where(cl, `SELECT ${P}`), 'replica');
          assert.equal(await where(cl, `SELECT ${P}, route_pipe_a()`), want, `relcache_query_target = ${target}`);
        } finally {
          await cl.end();
        }
      } finally {
        await p.stop();
      }
      // The stopped proxy's connections are gone before the next one connects.
      for (let i = 0; i < 100 && (await count(c.primary)) > onPrimary; i++) await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await sql(c, c.primary, `ALTER ROLE ${trust} CONNECTION LIMIT -1`);
    for (const x of extra) await x.end();
  }
});
