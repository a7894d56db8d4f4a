// Real PostgreSQL clients through a real pgrouter in front of the rig: psql, pgbench,
// node-postgres, postgres.js, COPY, LISTEN/NOTIFY, large results, pipelines, cancel, terminate.
// Where it helps, the same thing is done on a direct connection to the primary and compared.
// Two pgrouters: one with load_balance_mode off (all on the primary), one load balancing with
// backend_weight0 = 0 (every balanceable read on the replica); protocol-level tests use both.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import postgres from 'postgres';
import { sql as rigSql, waitForReplication } from '../../rig/cluster.ts';
import type { Cluster } from '../../rig/cluster.ts';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';
import {
  copyStreams,
  cstring,
  dataRowValues,
  errorField,
  RawClient,
  rssBytes,
  run,
  sendCancelRequest,
  waitUntil,
  type RawMessage,
  type RunResult,
} from './clients-helpers.ts';

const PSQL = '/usr/bin/psql';
const PGBENCH = '/usr/bin/pgbench';
/** Unique per run, so tables never collide with another file or an earlier run. */
const TAG = `clients_${process.pid}`;

let c: Cluster;
/** load_balance_mode off: every statement goes to the primary, so backend state can be inspected there. */
let proxy: ProxyHandle;
/** Load balancing on, primary weight 0: balanceable reads all go to the replica. */
let lbProxy: ProxyHandle;
let tmp: string;

before(async () => {
  c = await getCluster();
  [proxy, lbProxy] = await Promise.all([
    startProxy(c, { conf: { load_balance_mode: 'off' } }),
    startProxy(c, { conf: { load_balance_mode: 'on', backend_weight0: 0, backend_weight1: 1 } }),
  ]);
  tmp = mkdtempSync(path.join(os.tmpdir(), 'pgrouter-clients-'));
});

after(async () => {
  await Promise.all([proxy?.stop(), lbProxy?.stop()]);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Through which pgrouter. */
type Via = 'proxy' | 'lb';
/** Through a pgrouter, or directly to the primary. */
type Target = Via | 'direct';
const VIAS: readonly Via[] = ['proxy', 'lb'];
const label = (v: Via): string => (v === 'proxy' ? '[primary only]' : '[load-balanced]');
const handle = (v: Via): ProxyHandle => (v === 'proxy' ? proxy : lbProxy);

function hostPort(t: Target): { host: string; port: number } {
  return t === 'direct' ? { host: c.primary.host, port: c.primary.port } : { host: handle(t).host, port: handle(t).port };
}

/** The superuser's URL for postgres.js. */
function superUrl(t: Target): string {
  const su = c.users.superuser;
  const { host, port } = hostPort(t);
  return `postgresql://${su.name}:${su.password}@${host}:${port}/${c.database}`;
}

/** node-postgres config as the superuser, through the proxy or directly to the primary. */
function pgConfig(t: Target = 'proxy', user: 'superuser' | 'md5' | 'scram' = 'superuser'): pg.ClientConfig {
  const u = c.users[user];
  return { ...hostPort(t), user: u.name, password: u.password, database: c.database, connectionTimeoutMillis: 10_000 };
}

/** A connected node-postgres client; 'error' events (FATALs) are recorded, not thrown. */
async function pgClient(t: Target = 'proxy', user: 'superuser' | 'md5' | 'scram' = 'superuser'): Promise<pg.Client & { errors: Error[] }> {
  const client = Object.assign(new pg.Client(pgConfig(t, user)), { errors: [] as Error[] });
  client.on('error', (e) => client.errors.push(e));
  await client.connect();
  return client;
}

/** Runs `fn` with a fresh client and always ends it. */
async function withClient<T>(fn: (cl: pg.Client) => Promise<T>, t: Target = 'proxy'): Promise<T> {
  const cl = await pgClient(t);
  try {
    return await fn(cl);
  } finally {
    await cl.end().catch(() => undefined);
  }
}

/** psql as the superuser over TCP to the proxy or the primary. */
function psql(t: Target, args: string[], o: Parameters<typeof run>[2] = {}): Promise<RunResult> {
  const { host, port } = hostPort(t);
  return run(PSQL, ['-X', '-h', host, '-p', String(port), '-U', c.users.superuser.name, '-d', c.database, ...args], {
    ...o,
    env: { PGPASSWORD: c.users.superuser.password, ...o.env },
  });
}

/** The superuser's SQL on the primary over its Unix socket (the rig's psql), bypassing the proxy. */
const onPrimary = (q: string): Promise<string> => rigSql(c, c.primary, q);

/** Resolves once the primary or the replica shows a backend running exactly `query`. */
function waitForActive(query: string): Promise<void> {
  const lit = `'${query.replace(/'/g, "''")}'`;
  const q = `SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = ${lit}`;
  return waitUntil(
    async () => (await Promise.all([rigSql(c, c.primary, q), rigSql(c, c.replica, q)])).some((n) => n !== '0'),
    `a backend running ${query}`,
  );
}

function rawConfig(t: Target): { host: string; port: number; user: string; password: string; database: string } {
  return { ...hostPort(t), user: c.users.md5.name, password: c.users.md5.password, database: c.database };
}

/** Asserts `p` rejects with SQLSTATE `code` and returns the error. */
async function rejectsWith(p: Promise<unknown>, code: string): Promise<Error & { code?: string }> {
  let err: (Error & { code?: string }) | undefined;
  await assert.rejects(p, (e: Error & { code?: string }) => {
    err = e;
    assert.equal(e.code, code, `expected SQLSTATE ${code}, got ${e.code}: ${e.message}`);
    return true;
  });
  return err!;
}

// ---------------------------------------------------------------------------------------------
describe('psql', () => {
  test('-c queries give the same output as a direct connection', async () => {
    const q = "SELECT 1 + 1 AS two, 'héllo ✓' AS s, current_database(), current_user";
    const [viaProxy, direct] = await Promise.all([psql('proxy', ['-At', '-c', q]), psql('direct', ['-At', '-c', q])]);
    assert.equal(viaProxy.code, 0, viaProxy.stderr);
    assert.equal(viaProxy.stdout, '2|héllo ✓|app|postgres\n');
    assert.equal(viaProxy.stdout, direct.stdout);
    // Aligned output with a header too, and several -c in one run.
    const many = ['-c', 'SELECT aid, bid FROM pgbench_accounts ORDER BY aid LIMIT 3', '-c', 'SELECT count(*) FROM pgbench_branches'];
    const [p2, d2] = await Promise.all([psql('proxy', many), psql('direct', many)]);
    assert.equal(p2.code, 0, p2.stderr);
    assert.match(p2.stdout, /\(3 rows\)/);
    assert.equal(p2.stdout, d2.stdout);
  });

  test('a multi-statement string runs every statement', async () => {
    const q = `CREATE TEMP TABLE ${TAG}_m(a int); INSERT INTO ${TAG}_m VALUES (1), (2), (39); SELECT sum(a) FROM ${TAG}_m`;
    const [r, d] = await Promise.all([psql('proxy', ['-At', '-c', q]), psql('direct', ['-At', '-c', q])]);
    assert.equal(r.code, 0, r.stderr);
    // psql 15 shows the result of every statement of the string.
    assert.equal(r.stdout, 'CREATE TABLE\nINSERT 0 3\n42\n');
    assert.equal(r.stdout, d.stdout);
  });

  test('a multi-statement string failing in the middle stops there, as directly', async () => {
    const q = `SELECT 'first'; SELECT 1/0; SELECT 'never'`;
    const [r, d] = await Promise.all([psql('proxy', ['-At', '-c', q]), psql('direct', ['-At', '-c', q])]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, 'first\n');
    assert.match(r.stderr, /ERROR: {2}division by zero/);
    assert.deepEqual([r.stdout, r.stderr], [d.stdout, d.stderr]);
  });

  test('\\copy FROM a file and \\copy TO a file round trip byte for byte', async () => {
    const table = `${TAG}_copy`;
    const src = path.join(tmp, 'in.tsv');
    const dst = path.join(tmp, 'out.tsv');
    const lines: string[] = [];
    for (let i = 1; i <= 5000; i++) lines.push(`${i}\tname ${i} é ✓ \\t tab\t${i % 7 === 0 ? '\\N' : `{"k": ${i}}`}`);
    writeFileSync(src, lines.join('\n') + '\n');
    const r = await psql('proxy', [
      '-v', 'ON_ERROR_STOP=1',
      '-c', `CREATE TABLE ${table} (id int, name text, doc jsonb)`,
      '-c', `\\copy ${table} FROM '${src}'`,
      '-c', `\\copy ${table} TO '${dst}'`,
      '-c', `DROP TABLE ${table}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /COPY 5000/);
    assert.equal(readFileSync(dst, 'utf8'), readFileSync(src, 'utf8'));
  });

  test('\\lo_import / \\lo_export (libpq fast-path FunctionCall) round trip', async () => {
    const src = path.join(tmp, 'lo.bin');
    const dst = path.join(tmp, 'lo.out');
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
    writeFileSync(src, data);
    const imp = await psql('proxy', ['-v', 'ON_ERROR_STOP=1', '-c', `\\lo_import '${src}'`]);
    assert.equal(imp.code, 0, imp.stderr);
    const m = /lo_import (\d+)/.exec(imp.stdout);
    assert.ok(m, imp.stdout);
    const exp = await psql('proxy', ['-v', 'ON_ERROR_STOP=1', '-c', `\\lo_export ${m[1]} '${dst}'`, '-c', `\\lo_unlink ${m[1]}`]);
    assert.equal(exp.code, 0, exp.stderr);
    assert.ok(readFileSync(dst).equals(data), 'exported large object equals the imported file');
    assert.equal(await onPrimary(`SELECT count(*) FROM pg_largeobject_metadata WHERE oid = ${m[1]}`), '0');
  });

  test('sslmode=require is refused the same way as by the (non-SSL) primary', async () => {
    const [p, d] = await Promise.all([
      psql('proxy', ['-c', 'SELECT 1'], { env: { PGSSLMODE: 'require' } }),
      psql('direct', ['-c', 'SELECT 1'], { env: { PGSSLMODE: 'require' } }),
    ]);
    assert.equal(p.code, 2);
    assert.match(p.stderr, /server does not support SSL, but SSL was required/);
    assert.equal(p.stderr.replace(String(proxy.port), 'PORT'), d.stderr.replace(String(c.primary.port), 'PORT'));
  });

  test('\\watch repeats the query until psql is stopped', async () => {
    const r = await psql('proxy', ['-At', '-f', '-'], { input: "SELECT 'tick' \\watch 0.2\n", killAfterMs: 1100, signal: 'SIGTERM' });
    const ticks = r.stdout.split('\n').filter((l) => l === 'tick').length;
    assert.ok(ticks >= 3, `expected several outputs, got ${ticks}: ${JSON.stringify(r.stdout)} stderr ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /ERROR|FATAL|server closed/);
  });

  test('a NOTICE is shown on stderr', async () => {
    const r = await psql('proxy', ['-At', '-c', "DO $$BEGIN RAISE NOTICE 'hello'; END$$"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /NOTICE: {2}hello/);
  });

  test('an error is relayed with its SQLSTATE, exactly as on a direct connection', async () => {
    const args = ['-v', 'VERBOSITY=verbose', '-c', `SELECT * FROM ${TAG}_no_such_table`];
    const [p, d] = await Promise.all([psql('proxy', args), psql('direct', args)]);
    assert.equal(p.code, 1);
    assert.match(p.stderr, new RegExp(`ERROR: {2}42P01: relation "${TAG}_no_such_table" does not exist`));
    assert.equal(p.stderr, d.stderr);
  });
});

// ---------------------------------------------------------------------------------------------
describe('pgbench', () => {
  /** pgbench through the proxy; returns processed transactions after checking for failures. */
  async function pgbench(v: Via, args: string[]): Promise<{ processed: number; out: string }> {
    const r = await run(
      PGBENCH,
      ['-n', '-h', handle(v).host, '-p', String(handle(v).port), '-U', c.users.superuser.name, ...args, c.database],
      { env: { PGPASSWORD: c.users.superuser.password } },
    );
    const out = r.stdout + r.stderr;
    assert.equal(r.code, 0, out);
    assert.match(out, /number of failed transactions: 0 \(/, out);
    const m = /number of transactions actually processed: (\d+)/.exec(out);
    assert.ok(m, out);
    return { processed: Number(m[1]), out };
  }

  for (const v of VIAS) {
    for (const mode of ['simple', 'extended', 'prepared'] as const) {
      test(`select-only in -M ${mode} ${label(v)}`, async () => {
        const { processed } = await pgbench(v, ['-S', '-M', mode, '-c', '4', '-j', '2', '-t', '300']);
        assert.equal(processed, 1200);
      });
    }
  }

  for (const v of VIAS)
  test(`libpq pipeline mode (\\startpipeline ... \\endpipeline, one Sync per pipeline) ${label(v)}`, async () => {
    const script = path.join(tmp, 'pipeline.sql');
    writeFileSync(script, [
      '\\set aid random(1, 100000)',
      '\\startpipeline',
      'SELECT abalance FROM pgbench_accounts WHERE aid = :aid;',
      'SELECT :aid + 1;',
      'SELECT count(*) FROM pgbench_branches;',
      '\\endpipeline',
      '',
    ].join('\n'));
    for (const mode of ['extended', 'prepared']) {
      const { processed } = await pgbench(v, ['-M', mode, '-f', script, '-c', '2', '-j', '2', '-t', '250']);
      assert.equal(processed, 500);
    }
  });

  for (const v of VIAS)
  test(`select-only with a new connection per transaction (-C) ${label(v)}`, async () => {
    const { processed } = await pgbench(v, ['-S', '-C', '-M', 'extended', '-c', '4', '-j', '2', '-t', '25']);
    assert.equal(processed, 100);
  });

  for (const v of VIAS)
  test(`default TPC-B-like script ${label(v)}`, async () => {
    const before = Number(await onPrimary('SELECT count(*) FROM pgbench_history'));
    const n = v === 'proxy' ? 100 : 50;
    const { processed } = await pgbench(v, ['-c', '4', '-j', '2', '-t', String(n)]);
    assert.equal(processed, 4 * n);
    const afterCount = Number(await onPrimary('SELECT count(*) FROM pgbench_history'));
    assert.equal(afterCount - before, 4 * n, 'every transaction committed on the primary');
  });
});

// ---------------------------------------------------------------------------------------------
describe('node-postgres', () => {
  test('the two pgrouters route reads as configured (primary only / replica)', async () => {
    const port = async (t: Target): Promise<number> => withClient(async (cl) => (await cl.query<{ p: number }>('SELECT inet_server_port() AS p')).rows[0]!.p, t);
    assert.equal(await port('proxy'), c.primary.port);
    assert.equal(await port('lb'), c.replica.port);
  });

  for (const v of VIAS)
  test(`parameterised queries ${label(v)}`, async () => {
    await withClient(async (cl) => {
      const r = await cl.query<{ s: number; t: string }>('SELECT $1::int + $2::int AS s, $3::text AS t', [40, 2, 'x']);
      assert.deepEqual(r.rows, [{ s: 42, t: 'x' }]);
      const acc = await cl.query<{ aid: number; bid: number }>('SELECT aid, bid FROM pgbench_accounts WHERE aid = ANY($1) ORDER BY aid', [[1, 50000, 100000]]);
      assert.deepEqual(acc.rows, [{ aid: 1, bid: 1 }, { aid: 50000, bid: 1 }, { aid: 100000, bid: 1 }]);
    }, v);
  });

  for (const v of VIAS)
  test(`named prepared statements reused ${label(v)}`, async () => {
    await withClient(async (cl) => {
      for (let i = 0; i < 20; i++) {
        const r = await cl.query<{ v: number }>({ name: 'clients_double', text: 'SELECT $1::int * 2 AS v', values: [i] });
        assert.equal(r.rows[0]?.v, i * 2);
      }
      if (v === 'proxy') {
        // (Load-balanced, the catalog query goes to the primary, the statement maybe not.)
        const ps = await cl.query<{ n: string }>("SELECT count(*) AS n FROM pg_prepared_statements WHERE name = 'clients_double'");
        assert.equal(ps.rows[0]?.n, '1', 'parsed once, reused on the same backend');
      }
    }, v);
  });

  for (const v of VIAS)
  test(`types round trip as on a direct connection ${label(v)}`, async () => {
    const text = "SELECT $1::int AS i, $2::text AS t, $3::bytea AS b, $4::json AS j, $5::text AS n, $6::timestamptz AS ts, $7::int8 AS big, $8::numeric AS num, $9::int[] AS arr, $10::bool AS f";
    const values = [
      -2147483648,
      'ünïcödé ✓ 日本語 🐘',
      Buffer.from([0, 1, 2, 255, 0x5c, 0x27]),
      { a: [1, 'two', null], b: { c: true } },
      null,
      new Date('2024-02-29T12:34:56.789Z'),
      '9223372036854775807',
      '12345678901234567890.0123456789',
      [1, 2, 3],
      false,
    ];
    const [viaProxy, direct] = await Promise.all([
      withClient((cl) => cl.query(text, values), v),
      withClient((cl) => cl.query(text, values), 'direct'),
    ]);
    const row = viaProxy.rows[0] as Record<string, unknown>;
    assert.equal(row['i'], -2147483648);
    assert.equal(row['t'], 'ünïcödé ✓ 日本語 🐘');
    assert.deepEqual(row['b'], Buffer.from([0, 1, 2, 255, 0x5c, 0x27]));
    assert.deepEqual(row['j'], { a: [1, 'two', null], b: { c: true } });
    assert.equal(row['n'], null);
    assert.equal((row['ts'] as Date).toISOString(), '2024-02-29T12:34:56.789Z');
    assert.equal(row['big'], '9223372036854775807');
    assert.equal(row['num'], '12345678901234567890.0123456789');
    assert.deepEqual(row['arr'], [1, 2, 3]);
    assert.equal(row['f'], false);
    assert.deepEqual(viaProxy.rows, direct.rows);
    assert.deepEqual(viaProxy.fields.map((f) => [f.name, f.dataTypeID]), direct.fields.map((f) => [f.name, f.dataTypeID]));
  });

  test('a transaction with ROLLBACK leaves nothing behind', async () => {
    const table = `${TAG}_tx`;
    await withClient(async (cl) => {
      await cl.query(`CREATE TABLE ${table} (id int)`);
      try {
        await cl.query('BEGIN');
        await cl.query(`INSERT INTO ${table} SELECT generate_series(1, 10)`);
        const inside = await cl.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
        assert.equal(inside.rows[0]?.n, '10');
        await rejectsWith(cl.query('SELECT 1/0'), '22012');
        await rejectsWith(cl.query('SELECT 1'), '25P02'); // in failed transaction block
        await cl.query('ROLLBACK');
        const r = await cl.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
        assert.equal(r.rows[0]?.n, '0');
        assert.equal(await onPrimary(`SELECT count(*) FROM ${table}`), '0');
        // And a committed one is seen by another connection.
        await cl.query('BEGIN');
        await cl.query(`INSERT INTO ${table} VALUES (7)`);
        await cl.query('COMMIT');
        assert.equal(await onPrimary(`SELECT sum(id) FROM ${table}`), '7');
      } finally {
        await cl.query(`DROP TABLE ${table}`);
      }
    });
  });

  for (const v of VIAS)
  test(`large parameters and query texts (messages spanning many reads) ${label(v)}`, async () => {
    await withClient(async (cl) => {
      const big = 'é'.repeat(10_000_000); // 20 MB of UTF-8 in one Bind
      const r = await cl.query<{ n: number; h: string }>('SELECT length($1::text) AS n, md5($1::text) AS h', [big]);
      assert.equal(r.rows[0]?.n, 10_000_000);
      const h = createHash('md5').update(big).digest('hex');
      assert.equal(r.rows[0]?.h, h);
      const lit = 'y'.repeat(2_000_000); // a 2 MB simple Query
      const q = await cl.query<{ n: number }>(`SELECT length('${lit}') AS n`);
      assert.equal(q.rows[0]?.n, 2_000_000);
    }, v);
  });

  for (const v of VIAS)
  test(`empty query and a multi-result simple query ${label(v)}`, async () => {
    await withClient(async (cl) => {
      const empty = await cl.query('');
      assert.equal(empty.rows.length, 0);
      const multi = (await cl.query("SELECT 1 AS a; SELECT 'b' AS b, 2 AS c")) as unknown as pg.QueryResult[];
      assert.equal(multi.length, 2);
      assert.deepEqual(multi[0]?.rows, [{ a: 1 }]);
      assert.deepEqual(multi[1]?.rows, [{ b: 'b', c: 2 }]);
    }, v);
  });

  test('session state does not leak to the next client of a reused backend', async () => {
    const table = `${TAG}_leak`;
    await onPrimary(`CREATE TABLE ${table} (id int)`);
    try {
      const a = await pgClient();
      const pidA = (await a.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await a.query({ name: 'clients_reuse', text: 'SELECT $1::int AS v', values: [1] });
      await a.query('PREPARE clients_sqlprep AS SELECT 1');
      await a.query('SET search_path = pg_catalog');
      await a.query("SET statement_timeout = '123s'");
      await a.query(`CREATE TEMP TABLE ${TAG}_tmp (x int)`);
      await a.query(`LISTEN ${TAG}_leakch`);
      await a.query('SELECT pg_advisory_lock(4242)');
      await a.query('BEGIN');
      await a.query(`INSERT INTO public.${table} VALUES (1)`);
      await a.end(); // leaves with the transaction open
      // Wait until pgrouter has reset the connection and parked it.
      await waitUntil(
        async () => (await onPrimary(`SELECT state || ':' || query FROM pg_stat_activity WHERE pid = ${pidA}`)) === 'idle:DISCARD ALL',
        'the released backend to be reset with DISCARD ALL',
        5000,
      );
      const b = await pgClient();
      const notes: string[] = [];
      b.on('notification', (n) => notes.push(n.payload ?? ''));
      try {
        const pidB = (await b.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
        assert.equal(pidB, pidA, 'connection_cache: the second client gets the cached backend');
        // A named statement with the same name must parse again (42P05 if it survived).
        const v = await b.query<{ v: number }>({ name: 'clients_reuse', text: 'SELECT $1::int + 1 AS v', values: [1] });
        assert.equal(v.rows[0]?.v, 2);
        const st = await b.query<Record<string, string | null>>(
          `SELECT current_setting('search_path') AS sp, current_setting('statement_timeout') AS st,
                  to_regclass('${TAG}_tmp')::text AS tmp, (SELECT count(*) FROM pg_listening_channels())::text AS ch,
                  (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())::text AS locks,
                  (SELECT count(*) FROM pg_prepared_statements WHERE name = 'clients_sqlprep')::text AS ps,
                  (SELECT count(*) FROM public.${table})::text AS rows`,
        );
        assert.deepEqual(st.rows[0], { sp: '"$user", public', st: '0', tmp: null, ch: '0', locks: '0', ps: '0', rows: '0' });
        await onPrimary(`NOTIFY ${TAG}_leakch, 'not for b'`);
        await b.query('SELECT 1');
        await new Promise((r) => setTimeout(r, 100));
        assert.deepEqual(notes, []);
      } finally {
        await b.end();
      }
    } finally {
      await onPrimary(`DROP TABLE ${table}`);
    }
  });

  test('startup ParameterStatus on a reused backend is what a direct connection reports', async () => {
    const a = await RawClient.connect({ ...rawConfig('proxy'), params: { application_name: 'clients_a' } });
    a.write(serialize.query('SELECT pg_backend_pid()'));
    const pidA = dataRowValues((await a.untilReady()).find((m) => m.type === 'D')!.body)[0];
    a.write(serialize.query("SET DateStyle = 'German, DMY'; SET TimeZone = 'Asia/Tokyo'; SET IntervalStyle = 'iso_8601'; SET application_name = 'changed'"));
    await a.untilReady();
    a.terminate();
    await waitUntil(
      async () => (await onPrimary(`SELECT state || ':' || query FROM pg_stat_activity WHERE pid = ${pidA}`)) === 'idle:DISCARD ALL',
      'the released backend to be reset',
      5000,
    );
    const b = await RawClient.connect({ ...rawConfig('proxy'), params: { application_name: 'clients_b' } });
    const d = await RawClient.connect({ ...rawConfig('direct'), params: { application_name: 'clients_b' } });
    try {
      b.write(serialize.query("SELECT pg_backend_pid(), current_setting('application_name'), current_setting('DateStyle')"));
      const row = dataRowValues((await b.untilReady()).find((m) => m.type === 'D')!.body);
      assert.equal(row[0], pidA, 'the cached backend was reused');
      assert.deepEqual(row.slice(1), ['clients_b', 'ISO, MDY']);
      assert.equal(b.parameters.get('application_name'), 'clients_b');
      assert.deepEqual(Object.fromEntries([...b.parameters].sort()), Object.fromEntries([...d.parameters].sort()));
    } finally {
      b.terminate();
      d.terminate();
    }
  });

  for (const v of VIAS)
  test(`a pg.Pool of 5 runs 200 concurrent queries ${label(v)}`, async () => {
    const pool = new pg.Pool({ ...pgConfig(v), max: 5 });
    try {
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => pool.query<{ v: number; pid: number }>('SELECT $1::int AS v, pg_backend_pid() AS pid', [i])),
      );
      results.forEach((r, i) => assert.equal(r.rows[0]?.v, i));
      const pids = new Set(results.map((r) => r.rows[0]?.pid));
      assert.ok(pids.size >= 2 && pids.size <= 5, `backends used: ${pids.size}`);
    } finally {
      await pool.end();
    }
  });
});

// ---------------------------------------------------------------------------------------------
for (const v of VIAS)
describe(`postgres.js ${label(v)}`, () => {
  let sql: postgres.Sql;
  before(() => {
    sql = postgres(superUrl(v), { max: 1, onnotice: () => undefined });
  });
  after(async () => {
    await sql?.end({ timeout: 5 });
  });

  test('tagged templates (prepared statements)', async () => {
    for (let i = 0; i < 5; i++) {
      const rows = await sql<Array<{ s: number; t: string }>>`SELECT ${i}::int + 1 AS s, ${'ü' + i}::text AS t`;
      assert.deepEqual([...rows], [{ s: i + 1, t: 'ü' + i }]);
    }
    if (v === 'lb') return; // the catalog query would go to the primary, the statement maybe not
    const ps = await sql<Array<{ n: string }>>`SELECT count(*)::text AS n FROM pg_prepared_statements WHERE statement LIKE '%::int + 1 AS s,%' AND statement NOT LIKE '%pg_prepared_statements%'`;
    assert.equal(ps[0]?.n, '1', 'the statement was prepared once and reused');
  });

  test('pipelining: 100 queries in flight at once on one connection', async () => {
    const all = await Promise.all(Array.from({ length: 100 }, (_, i) => sql<Array<{ v: number; pid: number }>>`SELECT ${i}::int AS v, pg_backend_pid() AS pid`));
    all.forEach((rows, i) => assert.equal(rows[0]?.v, i));
    assert.equal(new Set(all.map((r) => r[0]?.pid)).size, 1);
  });

  test('sql.begin with several statements commits; a throwing one rolls back', async () => {
    const table = `${TAG}_pjs_${v}`;
    await sql.unsafe(`CREATE TABLE ${table} (id int, v text)`);
    try {
      const res = await sql.begin(async (tx) => {
        await tx`INSERT INTO ${tx(table)} VALUES (1, 'a')`;
        await tx`INSERT INTO ${tx(table)} VALUES (2, 'b')`;
        const [row] = await tx<Array<{ n: number }>>`SELECT count(*)::int AS n FROM ${tx(table)}`;
        return row?.n;
      });
      assert.equal(res, 2);
      await assert.rejects(
        sql.begin(async (tx) => {
          await tx`INSERT INTO ${tx(table)} VALUES (3, 'c')`;
          await tx`SELECT 1/0`;
        }),
        (e: Error & { code?: string }) => e.code === '22012',
      );
      assert.equal(await onPrimary(`SELECT string_agg(v, ',' ORDER BY id) FROM ${table}`), 'a,b');
    } finally {
      await sql.unsafe(`DROP TABLE ${table}`);
    }
  });

  test('.simple() multi-statement and sql.unsafe', async () => {
    const multi = (await sql`SELECT 1 AS a; SELECT 'two' AS b`.simple()) as unknown as Array<Array<Record<string, unknown>>>;
    assert.equal(multi.length, 2);
    assert.deepEqual([...multi[0]!], [{ a: 1 }]);
    assert.deepEqual([...multi[1]!], [{ b: 'two' }]);
    const u = await sql.unsafe<Array<{ x: number }>>('SELECT $1::int * 3 AS x', [5]);
    assert.deepEqual([...u], [{ x: 15 }]);
    const u2 = await sql.unsafe('SELECT 10 AS y');
    assert.deepEqual([...u2], [{ y: 10 }]);
  });

  test('Describe + Flush: describe-first statements and cursors', async () => {
    // A new statement with parameters is sent as Parse/Describe/Flush, Bind/Execute/Sync later.
    const d = await sql`SELECT ${7}::int AS a, ${'b'}::text AS b`.describe();
    assert.deepEqual(d.types, [23, 25]);
    assert.deepEqual(d.columns.map((col) => col.name), ['a', 'b']);
    // Cursors use Execute with a row limit followed by Flush (PortalSuspended between batches).
    let batches = 0;
    let total = 0;
    let sum = 0;
    await sql<Array<{ aid: number }>>`SELECT aid FROM pgbench_accounts WHERE aid <= ${1000} ORDER BY aid`.cursor(100, (rows) => {
      batches++;
      total += rows.length;
      for (const r of rows) sum += r.aid;
    });
    assert.equal(batches, 10);
    assert.equal(total, 1000);
    assert.equal(sum, (1000 * 1001) / 2);
    const after = await sql<Array<{ ok: number }>>`SELECT 1 AS ok`;
    assert.equal(after[0]?.ok, 1);
  });
});

// ---------------------------------------------------------------------------------------------
describe('COPY with pg-copy-streams', () => {
  test('COPY FROM STDIN 100k rows, then count', async () => {
    const table = `${TAG}_cin`;
    await withClient(async (cl) => {
      await cl.query(`CREATE TABLE ${table} (id int, name text)`);
      try {
        const N = 100_000;
        function* chunks(): Generator<string> {
          for (let i = 1; i <= N; i += 1000) {
            let s = '';
            for (let k = i; k < i + 1000; k++) s += `${k}\trow ${k}\n`;
            yield s;
          }
        }
        await pipeline(Readable.from(chunks()), cl.query(copyStreams.from(`COPY ${table} FROM STDIN`)));
        const r = await cl.query<{ n: string; s: string }>(`SELECT count(*) AS n, sum(id) AS s FROM ${table}`);
        assert.deepEqual(r.rows[0], { n: String(N), s: String((N * (N + 1)) / 2) });
      } finally {
        await cl.query(`DROP TABLE ${table}`);
      }
    });
  });

  /** The whole output of a COPY TO STDOUT. */
  async function copyOut(t: Target, text: string): Promise<Buffer> {
    return withClient(async (cl) => {
      const parts: Buffer[] = [];
      await pipeline(
        cl.query(copyStreams.to(text)),
        new Writable({
          write(chunk: Buffer, _enc, cb) {
            parts.push(chunk);
            cb();
          },
        }),
      );
      return Buffer.concat(parts);
    }, t);
  }

  for (const v of VIAS)
  test(`COPY TO STDOUT is byte for byte the same as directly on the primary ${label(v)}`, async () => {
    // A balanced COPY TO may run on the replica: let it catch up with the pgbench writes first.
    if (v === 'lb') await waitForReplication(c);
    for (const q of [
      'COPY (SELECT * FROM pgbench_accounts ORDER BY aid) TO STDOUT',
      'COPY (SELECT * FROM pgbench_accounts ORDER BY aid) TO STDOUT (FORMAT binary)',
      "COPY (SELECT g, repeat('é', g % 50), NULL::text FROM generate_series(1, 20000) g) TO STDOUT (FORMAT csv, HEADER)",
    ]) {
      const [viaProxy, direct] = await Promise.all([copyOut(v, q), copyOut('direct', q)]);
      assert.ok(viaProxy.length > 100_000, `${q}: ${viaProxy.length} bytes`);
      assert.ok(viaProxy.equals(direct), `${q}: ${viaProxy.length} bytes via proxy vs ${direct.length} direct`);
    }
  });

  test('COPY FROM aborted by the client (CopyFail) is rolled back, the connection stays usable', async () => {
    const table = `${TAG}_cfail`;
    await withClient(async (cl) => {
      await cl.query(`CREATE TABLE ${table} (id int)`);
      try {
        const stream = cl.query(copyStreams.from(`COPY ${table} FROM STDIN`));
        const failed = new Promise<Error & { code?: string }>((resolve) => stream.on('error', resolve));
        stream.write('1\n2\n');
        await new Promise((r) => setTimeout(r, 100));
        stream.destroy(new Error('client gave up'));
        const err = await failed;
        assert.equal(err.code, '57014', err.message);
        assert.match(err.message, /COPY from stdin failed: client gave up/);
        const r = await cl.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
        assert.equal(r.rows[0]?.n, '0');
      } finally {
        await cl.query(`DROP TABLE ${table}`);
      }
    });
  });

  test('COPY FROM with a bad row relays the error and the connection stays usable', async () => {
    const table = `${TAG}_cbad`;
    const attempt = async (t: Target): Promise<{ code: string | undefined; message: string; after: unknown }> =>
      withClient(async (cl) => {
        await cl.query(`CREATE TABLE IF NOT EXISTS ${table} (id int, name text)`);
        let err: (Error & { code?: string }) | undefined;
        try {
          await pipeline(Readable.from(['1\tok\n', '2\tok\n', 'three\tbad\n', '4\tok\n']), cl.query(copyStreams.from(`COPY ${table} FROM STDIN`)));
        } catch (e) {
          err = e as Error & { code?: string };
        }
        const after = (await cl.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0];
        return { code: err?.code, message: err?.message ?? '(no error)', after };
      }, t);
    try {
      const viaProxy = await attempt('proxy');
      assert.equal(viaProxy.code, '22P02', viaProxy.message);
      assert.match(viaProxy.message, /invalid input syntax for type integer: "three"/);
      assert.deepEqual(viaProxy.after, { n: '0' });
      const direct = await attempt('direct');
      assert.deepEqual(viaProxy, direct);
    } finally {
      await onPrimary(`DROP TABLE IF EXISTS ${table}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('LISTEN/NOTIFY', () => {
  for (const v of VIAS)
  test(`notifications through the proxy and from a direct connection reach a proxied listener ${label(v)}`, async () => {
    const listener = await pgClient(v);
    const notifier = await pgClient(v);
    const got: Array<{ channel: string; payload: string | undefined; processId: number }> = [];
    listener.on('notification', (n) => got.push({ channel: n.channel, payload: n.payload, processId: n.processId }));
    try {
      await listener.query(`LISTEN ${TAG}_ch`);
      await notifier.query(`NOTIFY ${TAG}_ch, 'through the proxy ✓'`);
      await waitUntil(() => got.length >= 1, 'the first notification', 5000);
      assert.equal(got[0]?.channel, `${TAG}_ch`);
      assert.equal(got[0]?.payload, 'through the proxy ✓');
      await onPrimary(`SELECT pg_notify('${TAG}_ch', 'direct to the primary')`);
      await waitUntil(() => got.length >= 2, 'the notification sent on the primary', 5000);
      assert.equal(got[1]?.payload, 'direct to the primary');
      // A notification arrives while idle (no query running) and another one mid-transaction is held until commit.
      await notifier.query('BEGIN');
      await notifier.query(`NOTIFY ${TAG}_ch, 'after commit'`);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(got.length, 2);
      await notifier.query('COMMIT');
      await waitUntil(() => got.length >= 3, 'the committed notification', 5000);
      assert.equal(got[2]?.payload, 'after commit');
    } finally {
      await listener.end();
      await notifier.end();
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('large result', () => {
  for (const v of VIAS)
  test(`100k rows × 1000 bytes (≈100 MB) through the proxy ${label(v)}`, async () => {
    await withClient(async (cl) => {
      const t0 = Date.now();
      let rows = 0;
      let bytes = 0;
      let bad = 0;
      const q = new pg.Query<{ r: string }>("SELECT repeat('x', 1000) AS r FROM generate_series(1, 100000)");
      q.on('row', (row: { r: string }) => {
        rows++;
        bytes += row.r.length;
        if (row.r.length !== 1000) bad++;
      });
      await new Promise<void>((resolve, reject) => {
        q.on('end', () => resolve());
        q.on('error', reject);
        void cl.query(q);
      });
      const ms = Date.now() - t0;
      console.log(`# large result: ${rows} rows, ${(bytes / 1e6).toFixed(1)} MB of text in ${ms} ms through pgrouter ${label(v)}`);
      assert.equal(rows, 100_000);
      assert.equal(bytes, 100_000_000);
      assert.equal(bad, 0);
      const after = await cl.query<{ ok: number }>('SELECT 1 AS ok');
      assert.equal(after.rows[0]?.ok, 1);
    }, v);
  });

  test('a client that stops reading does not make pgrouter buffer the result', async () => {
    const rc = await RawClient.connect(rawConfig('proxy'));
    try {
      let rows = 0;
      rc.skip = (m) => (m.type === 'D' ? (rows++, true) : false);
      const rss0 = rssBytes(proxy.proc.pid!);
      rc.sock.pause();
      rc.write(serialize.query("SELECT repeat('x', 1000) FROM generate_series(1, 200000)")); // ≈200 MB
      await new Promise((r) => setTimeout(r, 1500));
      const rss1 = rssBytes(proxy.proc.pid!);
      rc.sock.resume();
      const msgs = await rc.untilReady(30_000);
      assert.equal(rows, 200_000);
      assert.equal(cstring(msgs.find((m) => m.type === 'C')!.body), 'SELECT 200000');
      const grew = (rss1 - rss0) / 1e6;
      console.log(`# pgrouter RSS grew ${grew.toFixed(1)} MB while the client was not reading`);
      assert.ok(grew < 64, `pgrouter buffered ${grew.toFixed(1)} MB for a paused client`);
    } finally {
      rc.terminate();
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('errors mid-pipeline (raw protocol)', () => {
  /** Parse/Bind/Execute of a one-column query, unnamed statement and portal. */
  const pbe = (text: string): Buffer[] => [serialize.parse({ text }), serialize.bind({}), serialize.execute({})];

  /** Sends good, failing, good, Sync and returns the replies up to ReadyForQuery, then checks a follow-up. */
  async function scenario(t: Target, inBlock: boolean): Promise<{ types: string; status: string; msgs: RawMessage[]; extra: RawMessage[]; follow: string }> {
    const rc = await RawClient.connect(rawConfig(t));
    try {
      if (inBlock) {
        rc.write(serialize.query('BEGIN'));
        await rc.untilReady();
      }
      rc.write(...pbe('SELECT 1 AS a'), ...pbe('SELECT 1/0 AS b'), ...pbe('SELECT 3 AS c'), serialize.sync());
      const msgs = await rc.untilReady();
      const extra = await rc.drain(150);
      const z = msgs[msgs.length - 1]!;
      if (inBlock) {
        rc.write(serialize.query('ROLLBACK'));
        await rc.untilReady();
      }
      // A new Sync-ed extended query works.
      rc.write(...pbe("SELECT 'again' AS d"), serialize.sync());
      const follow = (await rc.untilReady()).filter((m) => m.type === 'D').map((m) => dataRowValues(m.body)[0]).join(',');
      return { types: msgs.map((m) => m.type).join(''), status: String.fromCharCode(z.body[0]!), msgs, extra, follow };
    } finally {
      rc.terminate();
    }
  }

  for (const inBlock of [false, true]) {
    for (const v of VIAS)
    test(`good, division by zero, good, Sync${inBlock ? ' inside BEGIN' : ''} ${label(v)}`, async () => {
      const p = await scenario(v, inBlock);
      const first = p.msgs.find((m) => m.type === 'D');
      assert.ok(first, `first result delivered: ${p.types}`);
      assert.deepEqual(dataRowValues(first.body), ['1']);
      assert.equal(cstring(p.msgs.find((m) => m.type === 'C')!.body), 'SELECT 1');
      const errs = p.msgs.filter((m) => m.type === 'E');
      assert.equal(errs.length, 1, p.types);
      assert.equal(errorField(errs[0]!.body), '22012');
      const afterError = p.types.slice(p.types.indexOf('E') + 1);
      assert.equal(afterError, 'Z', `third statement skipped, then one ReadyForQuery: ${p.types}`);
      assert.equal(p.types.split('').filter((x) => x === 'Z').length, 1);
      assert.equal(p.status, inBlock ? 'E' : 'I');
      assert.deepEqual(p.extra, [], 'nothing after ReadyForQuery');
      assert.equal(p.follow, 'again');
      const d = await scenario('direct', inBlock);
      assert.equal(p.types, d.types);
      assert.equal(p.status, d.status);
    });
  }
});

// ---------------------------------------------------------------------------------------------
describe('cancel', () => {
  for (const v of VIAS)
  test(`node-postgres cancel → 57014, and the connection still works ${label(v)}`, async () => {
    const cl = await pgClient(v);
    try {
      const sleeping = cl.query('SELECT pg_sleep(30)');
      const settled = sleeping.then(() => undefined, () => undefined);
      await waitForActive('SELECT pg_sleep(30)');
      const t0 = Date.now();
      const canceller = new pg.Client(pgConfig(v)) as unknown as { cancel(client: pg.Client, query: unknown): void };
      canceller.cancel(cl, (cl as unknown as { activeQuery: unknown }).activeQuery);
      const err = await rejectsWith(sleeping, '57014');
      await settled;
      assert.match(err.message, /canceling statement due to user request/);
      assert.ok(Date.now() - t0 < 5000, `cancelled after ${Date.now() - t0} ms`);
      const r = await cl.query<{ ok: number }>('SELECT 1 AS ok');
      assert.equal(r.rows[0]?.ok, 1);
    } finally {
      await cl.end();
    }
  });

  for (const v of VIAS)
  test(`postgres.js query.cancel() → 57014 ${label(v)}`, async () => {
    const sql = postgres(superUrl(v), { max: 1 });
    try {
      const q = sql`SELECT pg_sleep(30)`;
      const done = q.then(
        () => undefined,
        (e: Error & { code?: string }) => e,
      );
      await waitForActive('SELECT pg_sleep(30)');
      const t0 = Date.now();
      await q.cancel();
      const err = await done;
      assert.equal(err?.code, '57014', String(err));
      assert.ok(Date.now() - t0 < 5000);
      const [row] = await sql<Array<{ ok: number }>>`SELECT 1 AS ok`;
      assert.equal(row?.ok, 1);
    } finally {
      await sql.end({ timeout: 5 });
    }
  });

  for (const v of VIAS)
  test(`postgres.js cursor query.cancel() → 57014, as directly ${label(v)}`, async () => {
    // A cursor is Execute(rows) + Flush: no Sync while the statement runs.
    const attempt = async (url: string): Promise<{ outcome: unknown; ms: number }> => {
      const sql = postgres(url, { max: 1 });
      try {
        const q = sql`SELECT pg_sleep(2.1)`;
        const outcome = q.cursor(1, () => undefined).then(
          () => 'completed',
          (e: Error & { code?: string }) => e.code,
        );
        await waitForActive('SELECT pg_sleep(2.1)');
        const t0 = Date.now();
        await q.cancel();
        return { outcome: await outcome, ms: Date.now() - t0 };
      } finally {
        await sql.end({ timeout: 5 });
      }
    };
    const direct = await attempt(superUrl('direct'));
    assert.equal(direct.outcome, '57014');
    const viaProxy = await attempt(superUrl(v));
    assert.equal(viaProxy.outcome, '57014', `through pgrouter: ${String(viaProxy.outcome)} after ${viaProxy.ms} ms`);
  });

  for (const v of VIAS)
  test(`psql cancels on SIGINT ${label(v)}`, async () => {
    let t0 = 0;
    const r = await psql(v, ['-c', 'SELECT pg_sleep(30)'], {
      onSpawn: (child) => {
        void waitForActive('SELECT pg_sleep(30)').then(() => {
          t0 = Date.now();
          child.kill('SIGINT');
        });
      },
    });
    assert.match(r.stderr, /canceling statement due to user request/);
    assert.ok(t0 > 0 && Date.now() - t0 < 5000, `psql ended ${Date.now() - t0} ms after SIGINT`);
  });

  for (const v of VIAS)
  test(`cancel of an extended-protocol Execute sent with Flush (no Sync yet), as directly ${label(v)}`, async () => {
    // postgres.js cursors and drivers that describe first do this: Execute + Flush, Sync later.
    const attempt = async (t: Target): Promise<{ ms: number; types: string; code: string | undefined }> => {
      const rc = await RawClient.connect(rawConfig(t));
      try {
        rc.write(serialize.parse({ text: 'SELECT pg_sleep(2.1)' }), serialize.bind({}), serialize.execute({}), serialize.flush());
        await waitForActive('SELECT pg_sleep(2.1)');
        const t0 = Date.now();
        await sendCancelRequest(hostPort(t).host, hostPort(t).port, rc.pid, rc.secret);
        const msgs: RawMessage[] = [];
        for (;;) {
          const m = await rc.next(10_000);
          msgs.push(m);
          if (m.type === 'E' || m.type === 'C') break;
        }
        const ms = Date.now() - t0;
        rc.write(serialize.sync());
        msgs.push(...(await rc.untilReady()));
        const e = msgs.find((m) => m.type === 'E');
        return { ms, types: msgs.map((m) => m.type).join(''), code: e ? errorField(e.body) : undefined };
      } finally {
        rc.terminate();
      }
    };
    const direct = await attempt('direct');
    assert.equal(direct.code, '57014', `direct: ${direct.types}`);
    const viaProxy = await attempt(v);
    assert.equal(viaProxy.code, '57014', `through pgrouter the statement was not cancelled (${viaProxy.types} after ${viaProxy.ms} ms)`);
    assert.ok(viaProxy.ms < 2000, `cancelled after ${viaProxy.ms} ms`);
    assert.equal(viaProxy.types, direct.types);
  });

  test('node-postgres cancel of a long read running on the replica [load-balanced]', async () => {
    const text = 'SELECT count(*) FROM generate_series(1, 20000000000::int8)';
    const cl = await pgClient('lb');
    try {
      const running = cl.query(text);
      const settled = running.then(() => undefined, () => undefined);
      const lit = `'${text.replace(/'/g, "''")}'`;
      await waitUntil(
        async () => (await rigSql(c, c.replica, `SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = ${lit}`)) !== '0',
        'the read to run on the replica',
      );
      const t0 = Date.now();
      const keys = cl as unknown as { processID: number; secretKey: number };
      await sendCancelRequest(lbProxy.host, lbProxy.port, keys.processID, keys.secretKey);
      await rejectsWith(running, '57014');
      await settled;
      assert.ok(Date.now() - t0 < 5000, `cancelled after ${Date.now() - t0} ms`);
      assert.equal((await cl.query<{ ok: number }>('SELECT 1 AS ok')).rows[0]?.ok, 1);
    } finally {
      await cl.end();
    }
  });

  test('a CancelRequest with a wrong secret or pid cancels nothing', async () => {
    const cl = await pgClient();
    try {
      const keys = cl as unknown as { processID: number; secretKey: number };
      const real = await cl.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      assert.notEqual(keys.processID, real.rows[0]?.pid, 'pgrouter hands out its own BackendKeyData');
      const q = cl.query<{ ok: string }>("SELECT pg_sleep(1.5), 'finished' AS ok");
      await waitForActive("SELECT pg_sleep(1.5), 'finished' AS ok");
      await sendCancelRequest(proxy.host, proxy.port, keys.processID, keys.secretKey ^ 0x5a5a5a5a);
      await sendCancelRequest(proxy.host, proxy.port, keys.processID + 1, keys.secretKey);
      // Sending the backend's own pid to pgrouter must not work either.
      await sendCancelRequest(proxy.host, proxy.port, real.rows[0]!.pid, keys.secretKey);
      const r = await q;
      assert.equal(r.rows[0]?.ok, 'finished');
      // And the right one does (raw CancelRequest with pgrouter's key).
      const q2 = cl.query('SELECT pg_sleep(30)');
      const settled = q2.then(() => undefined, () => undefined);
      await waitForActive('SELECT pg_sleep(30)');
      await sendCancelRequest(proxy.host, proxy.port, keys.processID, keys.secretKey);
      await rejectsWith(q2, '57014');
      await settled;
    } finally {
      await cl.end();
    }
  });

  for (const mode of ['session', 'transaction'] as const)
  test(`a CancelRequest's connection closes only once the server has taken the cancel (${mode} pooling)`, async () => {
    // PostgreSQL signals the backend twice (its pid, then its process group) and then closes the
    // cancel connection; libpq's PQcancel returns at that close. A client told earlier could send
    // its next statement before the second signal and see that statement cancelled (psycopg did,
    // on a loaded machine). A stopped postmaster holds the server's side of the cancel here.
    const own = mode === 'session' ? proxy : await startProxy(c, { conf: { load_balance_mode: 'off', pool_mode: 'transaction' } });
    const su = c.users.superuser;
    const cl = new pg.Client({ host: own.host, port: own.port, user: su.name, password: su.password, database: c.database });
    await cl.connect();
    const postmaster = Number(readFileSync(path.join(c.primary.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    try {
      const keys = cl as unknown as { processID: number; secretKey: number };
      const text = `SELECT pg_sleep(30), '${mode}'`;
      const q = cl.query(text);
      const settled = q.then(() => undefined, () => undefined);
      await waitForActive(text);
      process.kill(postmaster, 'SIGSTOP');
      let resumedAt = 0;
      let closed: Promise<number> | undefined;
      try {
        closed = sendCancelRequest(own.host, own.port, keys.processID, keys.secretKey).then(() => Date.now());
        const early = await Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 700))]);
        assert.equal(early, false, 'pgrouter closed the cancel connection while the server had not yet taken the cancel');
      } finally {
        resumedAt = Date.now();
        process.kill(postmaster, 'SIGCONT');
      }
      const closedAt = await closed;
      assert.ok(closedAt >= resumedAt, 'closed after the server went on');
      await rejectsWith(q, '57014');
      await settled;
      assert.equal((await cl.query<{ ok: number }>('SELECT 1 AS ok')).rows[0]?.ok, 1);
    } finally {
      process.kill(postmaster, 'SIGCONT');
      await cl.end().catch(() => undefined);
      if (own !== proxy) await own.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('terminate', () => {
  /** Backends of md5_user on the primary (ours: no other test uses that role). */
  const md5Backends = async (): Promise<number> =>
    Number(await onPrimary(`SELECT count(*) FROM pg_stat_activity WHERE usename = '${c.users.md5.name}'`));

  test('Terminate then close: the next client works and no backend leaks', async () => {
    // Earlier tests' md5_user backends may be cached idle (connection_cache keeps them).
    const before = await md5Backends();
    for (let i = 0; i < 5; i++) {
      const rc = await RawClient.connect(rawConfig('proxy'));
      rc.write(serialize.query(`SELECT ${i}`));
      const msgs = await rc.untilReady();
      assert.deepEqual(dataRowValues(msgs.find((m) => m.type === 'D')!.body), [String(i)]);
      rc.terminate();
      await waitUntil(() => rc.closed, 'pgrouter to close after Terminate', 5000);
    }
    const cl = await pgClient('proxy', 'md5');
    try {
      assert.equal((await cl.query<{ u: string }>('SELECT current_user AS u')).rows[0]?.u, c.users.md5.name);
    } finally {
      await cl.end();
    }
    // Sequential sessions reuse a cached connection (or close theirs): never one per session.
    await waitUntil(async () => (await md5Backends()) <= before + 1, `md5_user backends to settle at ≤ ${before + 1}`, 5000);
  });

  test('a query and Terminate in one write: every row arrives, then the connection closes cleanly', async () => {
    const rc = await RawClient.connect(rawConfig('proxy'));
    const rows = rc.countDataRows();
    // About 2 MB of rows: the replies are still being written when Terminate is read.
    rc.write(serialize.query('SELECT repeat(\'x\', 100) FROM generate_series(1, 20000)'), serialize.end());
    const msgs = await rc.untilReady();
    await waitUntil(() => rc.closed, 'pgrouter to close after Terminate', 5000);
    assert.equal(rows(), 20000);
    assert.ok(msgs.some((m) => m.type === 'C'), 'CommandComplete');
    assert.equal(rc.socketError, undefined, `no reset: ${rc.socketError?.message}`);
  });

  test('a client destroyed mid-query: the proxy stays up, the next client works', async () => {
    const cl = await pgClient('proxy', 'md5');
    const q = cl.query('SELECT pg_sleep(2)').then(() => undefined, (e: Error) => e);
    await waitForActive('SELECT pg_sleep(2)');
    (cl as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    assert.ok((await q) instanceof Error);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(proxy.proc.exitCode, null, 'pgrouter still running');
    await withClient(async (next) => {
      const r = await next.query<{ ok: number }>('SELECT 1 AS ok');
      assert.equal(r.rows[0]?.ok, 1);
    });
    // The abandoned backend is not handed to anyone: once its pg_sleep ends it goes away.
    await waitUntil(async () => (await onPrimary("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(2)'")) === '0',
      'the abandoned backend to go', 6000);
  });

  test('pg_terminate_backend(pg_backend_pid()) gives the client FATAL 57P01, as directly', async () => {
    const attempt = async (t: Target): Promise<{ code: string | undefined; severity: string | undefined; message: string }> => {
      const cl = await pgClient(t);
      try {
        await cl.query('SELECT pg_terminate_backend(pg_backend_pid())');
        return { code: undefined, severity: undefined, message: '(no error)' };
      } catch (e) {
        const err = e as Error & { code?: string; severity?: string };
        return { code: err.code, severity: err.severity, message: err.message };
      } finally {
        await cl.end().catch(() => undefined);
      }
    };
    const viaProxy = await attempt('proxy');
    assert.equal(viaProxy.code, '57P01', viaProxy.message);
    assert.equal(viaProxy.severity, 'FATAL');
    assert.deepEqual(viaProxy, await attempt('direct'));
    assert.equal(proxy.proc.exitCode, null);
    await withClient(async (next) => {
      const r = await next.query<{ ok: number }>('SELECT 1 AS ok');
      assert.equal(r.rows[0]?.ok, 1);
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe('client_idle_limit (own proxy, 1 s)', () => {
  let idleProxy: ProxyHandle;
  before(async () => {
    idleProxy = await startProxy(c, { conf: { client_idle_limit: 1, load_balance_mode: 'off' } });
  });
  after(async () => {
    await idleProxy?.stop();
  });
  const cfg = (): { host: string; port: number; user: string; password: string; database: string } => ({
    ...rawConfig('proxy'),
    port: idleProxy.port,
  });

  test('an idle client is disconnected (the setting is in force)', async () => {
    const rc = await RawClient.connect(cfg());
    try {
      const m = await rc.next(5000);
      assert.equal(m.type, 'E');
      assert.equal(errorField(m.body), '57P05');
    } finally {
      rc.destroy();
    }
  });

  test('a statement running longer than the limit is not cut off, with Sync or with Flush', async () => {
    for (const end of ['sync', 'flush'] as const) {
      const rc = await RawClient.connect(cfg());
      try {
        rc.write(serialize.parse({ text: "SELECT pg_sleep(2.2), 'survived' AS s" }), serialize.bind({}), serialize.execute({}),
          end === 'sync' ? serialize.sync() : serialize.flush());
        const msgs: RawMessage[] = [];
        for (;;) {
          const m = await rc.next(10_000).catch((e: Error) => ({ type: '!', body: Buffer.from(e.message) }));
          msgs.push(m);
          if (m.type === 'C' || m.type === 'E' || m.type === '!') break;
        }
        const e = msgs.find((m) => m.type === 'E');
        assert.ok(!e, `${end}: ${e ? `${errorField(e.body)} ${errorField(e.body, 'M')}` : ''} during a running statement`);
        const row = msgs.find((m) => m.type === 'D');
        assert.ok(row, `${end}: ${msgs.map((m) => m.type).join('')}`);
        assert.deepEqual(dataRowValues(row.body), ['', 'survived']);
      } finally {
        rc.destroy();
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('Unix socket', () => {
  test('psql -h <socketDir> reaches pgrouter through .s.PGSQL.<port>', async () => {
    assert.ok(existsSync(path.join(proxy.socketDir, `.s.PGSQL.${proxy.port}`)));
    const r = await run(
      PSQL,
      ['-X', '-At', '-h', proxy.socketDir, '-p', String(proxy.port), '-U', c.users.superuser.name, '-d', c.database,
        '-c', "SELECT 'via unix socket', count(*) FROM pgbench_branches"],
      { env: { PGPASSWORD: c.users.superuser.password } },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'via unix socket|1\n');
  });
});
