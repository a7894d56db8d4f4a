// transaction_defer_begin in session pooling (the default pool_mode): a plain BEGIN is answered
// by pgrouter and reaches the server in front of the transaction's first statement. Proved from
// the server side: the transaction starts at that statement (now() = its statement_timestamp()),
// it runs where routing sends it, COMMIT keeps and ROLLBACK drops its rows, and the client sees
// PostgreSQL's own replies.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import postgres from 'postgres';
import { sql, waitForReplication, type Cluster, type RigNode } from '../../rig/cluster.ts';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';
import { copyStreams, cstring, dataRowValues, RawClient } from './clients-helpers.ts';

const T = `sdb_${process.pid}`;
let c: Cluster;
/** Session pooling, load balancing with every read on the replica (weight 0 on the primary), BEGIN deferred (the default). */
let on: ProxyHandle;
/** The same with transaction_defer_begin = off. */
let off: ProxyHandle;
/** disable_load_balance_on_write = always: after any write, the session's reads go to the primary. */
let always: ProxyHandle;
const open = new Set<pg.Client>();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

before(async () => {
  c = await getCluster();
  await sql(c, c.primary, `DROP TABLE IF EXISTS ${T}; CREATE TABLE ${T} (who text, n int); GRANT ALL ON ${T} TO PUBLIC;`);
  await waitForReplication(c);
  const lb = { backend_weight0: 0, backend_weight1: 1 };
  [on, off, always] = await Promise.all([
    startProxy(c, { conf: lb }),
    startProxy(c, { conf: { ...lb, transaction_defer_begin: 'off' } }),
    startProxy(c, { conf: { ...lb, disable_load_balance_on_write: 'always' } }),
  ]);
});

after(async () => {
  for (const cl of open) await cl.end().catch(() => undefined);
  for (const p of [on, off, always]) await p?.stop().catch(() => undefined);
  await sql(c, c.primary, `DROP TABLE IF EXISTS ${T}`).catch(() => undefined);
});

async function connect(p: ProxyHandle): Promise<pg.Client> {
  const su = c.users.superuser;
  const cl = new pg.Client({ connectionString: p.url(su.name, su.password) });
  cl.on('error', () => undefined);
  await cl.connect();
  open.add(cl);
  return cl;
}

async function close(...cls: pg.Client[]): Promise<void> {
  for (const cl of cls) {
    open.delete(cl);
    await cl.end().catch(() => undefined);
  }
}

async function row<R>(cl: pg.Client, q: string | pg.QueryConfig, values?: unknown[]): Promise<R> {
  const r = typeof q === 'string' ? await cl.query(q, values) : await cl.query(q);
  return r.rows[0] as R;
}

async function rows(n: RigNode, who: string): Promise<string> {
  return sql(c, n, `SELECT coalesce(string_agg(n::text, ',' ORDER BY n), '') FROM ${T} WHERE who = '${who}'`);
}

/** The node a `port` column came from. */
function nodeOf(port: number): 'primary' | 'replica' {
  if (port === c.primary.port) return 'primary';
  if (port === c.replica.port) return 'replica';
  throw new Error(`unexpected port ${port}`);
}

const PROBE = "SELECT current_setting('port')::int AS port, (extract(epoch FROM statement_timestamp() - now()) * 1000)::float8 AS ms";

describe('a deferred BEGIN in session pooling', () => {
  test('the transaction starts at its first statement, on the node routing chose; with the setting off, at the BEGIN', async () => {
    for (const [p, deferred] of [[on, true], [off, false]] as const) {
      const a = await connect(p);
      try {
        // A read first, so that the session has its replica connection when the BEGIN comes.
        assert.equal(nodeOf((await row<{ port: number }>(a, PROBE)).port), 'replica');
        await a.query('BEGIN');
        await sleep(300);
        const read = await row<{ port: number; ms: number }>(a, PROBE);
        assert.equal(nodeOf(read.port), 'replica', 'a read at the start of a transaction is balanced, as without deferring');
        if (deferred) assert.ok(read.ms < 100, `the replica's transaction began ${read.ms} ms before its first statement`);
        else assert.ok(read.ms >= 290, `with the setting off the replica's transaction began only ${read.ms} ms before the statement`);
        const write = await row<{ port: number; ms: number }>(a, `INSERT INTO ${T} VALUES ('where-${deferred}', 1) RETURNING current_setting('port')::int AS port, (extract(epoch FROM statement_timestamp() - now()) * 1000)::float8 AS ms`);
        assert.equal(nodeOf(write.port), 'primary');
        // The primary got a BEGIN of its own when the first statement went to the replica (ROLLBACK below proves the INSERT was inside it).
        if (deferred) assert.ok(write.ms < 100, `the primary's transaction began ${write.ms} ms before the INSERT`);
        else assert.ok(write.ms >= 290, `with the setting off the primary's transaction began only ${write.ms} ms before the INSERT`);
        await a.query('ROLLBACK');
        assert.equal(await rows(c.primary, `where-${deferred}`), '', 'ROLLBACK dropped the row');
      } finally {
        await close(a);
      }
    }
  });

  test('a BEGIN with options is deferred too and goes out as written; READ WRITE is sent at once', async () => {
    const a = await connect(on);
    try {
      // The session's first statement: no replica connection yet.
      await a.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await sleep(300);
      const r = await row<{ port: number; ms: number; iso: string }>(
        a,
        "SELECT current_setting('port')::int AS port, (extract(epoch FROM statement_timestamp() - now()) * 1000)::float8 AS ms, current_setting('transaction_isolation') AS iso",
      );
      assert.equal(nodeOf(r.port), 'replica');
      assert.ok(r.ms < 100, `the transaction began ${r.ms} ms before its first statement`);
      assert.equal(r.iso, 'repeatable read', 'the BEGIN went out with its options');
      await a.query('COMMIT');
      // START TRANSACTION READ ONLY: answered with its own tag, and a write in it fails as in PostgreSQL.
      assert.equal((await a.query('START TRANSACTION READ ONLY')).command, 'START');
      await assert.rejects(a.query(`INSERT INTO ${T} VALUES ('ro', 1)`), (e: { code?: string }) => e.code === '25006');
      await a.query('ROLLBACK');
      assert.equal(await rows(c.primary, 'ro'), '');
      // READ WRITE keeps the transaction on the primary, where it begins at once.
      await a.query('BEGIN READ WRITE');
      await sleep(300);
      const w = await row<{ port: number; ms: number }>(a, PROBE);
      assert.equal(nodeOf(w.port), 'primary');
      assert.ok(w.ms >= 290, `the READ WRITE transaction began only ${w.ms} ms before the statement`);
      await a.query('COMMIT');
    } finally {
      await close(a);
    }
  });

  test('the exact replies: BEGIN / START TRANSACTION with status T, then COMMIT, END, ROLLBACK and ABORT, as PostgreSQL sends them', async () => {
    const md5 = c.users.md5;
    const raw = await RawClient.connect({ host: on.host, port: on.port, user: md5.name, password: md5.password, database: c.database });
    const ref = await RawClient.connect({ host: c.primary.host, port: c.primary.port, user: md5.name, password: md5.password, database: c.database });
    try {
      const sequences = [['BEGIN', 'COMMIT'], ['start transaction;', 'SELECT 1', 'END'], ['begin work', 'rollback'], ['BEGIN TRANSACTION', 'SELECT 1/0', 'SELECT 1', 'ABORT']];
      for (const qs of sequences) {
        const seen: string[] = [];
        for (const rc of [ref, raw]) {
          const lines: string[] = [];
          for (const q of qs) {
            rc.write(serialize.query(q));
            const ms = await rc.untilReady();
            lines.push(ms.map((m) => (m.type === 'C' ? `C:${cstring(m.body)}` : m.type === 'Z' ? `Z:${String.fromCharCode(m.body[0]!)}` : m.type)).join(' '));
          }
          seen.push(lines.join(' | '));
        }
        assert.equal(seen[1], seen[0], `${qs.join(' / ')}: pgrouter's replies differ from PostgreSQL's`);
      }
    } finally {
      raw.terminate();
      ref.terminate();
    }
  });

  test('COMMIT, END, ROLLBACK or ABORT right after a deferred BEGIN are answered by pgrouter: neither node sees the transaction', async () => {
    const su = c.users.superuser;
    for (const [p, answered] of [[on, true], [off, false]] as const) {
      // Each session's backends, by their application_name (a cached one keeps it too).
      const app = `sdb-end-${process.pid}-${answered ? 'on' : 'off'}`;
      const lastQuery = (n: RigNode): Promise<string> => sql(c, n, `SELECT query FROM pg_stat_activity WHERE application_name = '${app}'`);
      const cl = new pg.Client({ connectionString: p.url(su.name, su.password), application_name: app });
      cl.on('error', () => undefined);
      await cl.connect();
      open.add(cl);
      try {
        // One statement on each node first, so that the session has a connection to both.
        await cl.query(`INSERT INTO ${T} VALUES ('end-test', 1)`);
        assert.equal(nodeOf((await row<{ port: number }>(cl, 'SELECT inet_server_port() AS port')).port), 'replica');
        const [onPrimary, onReplica] = [await lastQuery(c.primary), await lastQuery(c.replica)];
        const tags: string[] = [];
        for (const [begin, end] of [['BEGIN', 'COMMIT'], ['BEGIN', 'END'], ['START TRANSACTION', 'ROLLBACK'], ['begin', 'abort']]) {
          await cl.query(begin!);
          tags.push((await cl.query(end!)).command);
        }
        assert.deepEqual(tags, ['COMMIT', 'COMMIT', 'ROLLBACK', 'ROLLBACK']);
        if (answered) {
          assert.equal(await lastQuery(c.primary), onPrimary, 'the primary ran nothing since');
          assert.equal(await lastQuery(c.replica), onReplica, 'the replica ran nothing since');
        } else assert.equal(await lastQuery(c.primary), 'abort', 'with the setting off, every statement reaches the primary');
        assert.equal((await row<{ v: number }>(cl, 'SELECT 2 AS v')).v, 2, 'the session goes on');
      } finally {
        await close(cl);
        await sql(c, c.primary, `DELETE FROM ${T} WHERE who = 'end-test'`);
      }
    }
  });

  test('BEGIN and the first statement in one write (pipelined): answered in order, and the statement runs inside the transaction', async () => {
    const md5 = c.users.md5;
    const raw = await RawClient.connect({ host: on.host, port: on.port, user: md5.name, password: md5.password, database: c.database });
    try {
      raw.write(Buffer.concat([serialize.query('BEGIN'), serialize.query(`INSERT INTO ${T} VALUES ('piped', 1)`), serialize.query('ROLLBACK')]));
      const tags: string[] = [];
      for (let i = 0; i < 3; i++) {
        const ms = await raw.untilReady();
        tags.push(ms.map((m) => (m.type === 'C' ? cstring(m.body) : m.type === 'Z' ? `Z${String.fromCharCode(m.body[0]!)}` : m.type)).join(' '));
      }
      assert.deepEqual(tags, ['BEGIN ZT', 'INSERT 0 1 ZT', 'ROLLBACK ZI']);
      assert.equal(await rows(c.primary, 'piped'), '');
    } finally {
      raw.terminate();
    }
  });

  test('the first statement fails: the transaction is aborted as in PostgreSQL, and ROLLBACK ends it', async () => {
    const a = await connect(on);
    try {
      await a.query('BEGIN');
      await assert.rejects(a.query('SELECT 1/0'), (e: { code?: string }) => e.code === '22012');
      await assert.rejects(a.query('SELECT 1'), (e: { code?: string }) => e.code === '25P02');
      await a.query('ROLLBACK');
      const r = await row<{ fresh: boolean }>(a, 'SELECT now() = statement_timestamp() AS fresh');
      assert.equal(r.fresh, true, 'autocommit again after ROLLBACK');
    } finally {
      await close(a);
    }
  });

  test('first statements of every shape: extended protocol, a multi-statement string, COPY FROM STDIN; COMMIT keeps them, ROLLBACK drops them', { timeout: 30_000 }, async () => {
    for (const [end, who] of [['COMMIT', 'kept'], ['ROLLBACK', 'dropped']] as const) {
      const a = await connect(on);
      try {
        await a.query('BEGIN');
        await a.query(`INSERT INTO ${T} VALUES ($1, $2)`, [`${who}-ext`, 1]);
        await a.query(end);
        await a.query('BEGIN');
        await a.query(`INSERT INTO ${T} VALUES ('${who}-multi', 1); INSERT INTO ${T} VALUES ('${who}-multi', 2)`);
        await a.query(end);
        await a.query('BEGIN');
        await pipeline(Readable.from([`${who}-copy\t1\n${who}-copy\t2\n${who}-copy\t3\n`]), a.query(copyStreams.from(`COPY ${T} FROM STDIN`)));
        const inside = await row<{ n: number }>(a, `SELECT count(*)::int AS n FROM ${T} WHERE who = '${who}-copy'`);
        assert.equal(inside.n, 3, 'the copied rows are visible inside the transaction');
        await a.query(end);
        assert.equal((await row<{ v: number }>(a, 'SELECT 5 AS v')).v, 5, 'the session goes on after COPY');
      } finally {
        await close(a);
      }
      const kept = end === 'COMMIT';
      assert.deepEqual(
        [await rows(c.primary, `${who}-ext`), await rows(c.primary, `${who}-multi`), await rows(c.primary, `${who}-copy`)],
        kept ? ['1', '1,2', '1,2,3'] : ['', '', ''],
        `after ${end}`,
      );
    }
  });

  test('a prepared statement parsed on the replica, run first in a transaction on the primary: parsed there behind the BEGIN, replies exact', async () => {
    // disable_load_balance_on_write = always: after the INSERT the session reads from the primary,
    // where the statement was never parsed, so pgrouter parses it there with the deferred BEGIN.
    const md5 = c.users.md5;
    const raw = await RawClient.connect({ host: always.host, port: always.port, user: md5.name, password: md5.password, database: c.database });
    const types = (ms: Array<{ type: string }>): string => ms.map((m) => m.type).join(' ');
    const values = (ms: Array<{ type: string; body: Buffer }>): Array<Array<string | null>> => ms.filter((m) => m.type === 'D').map((m) => dataRowValues(m.body));
    try {
      raw.write(serialize.parse({ name: 'sdb_probe', text: `${PROBE}, $1::int AS v` }), serialize.bind({ statement: 'sdb_probe', values: ['1'] }), serialize.execute({}), serialize.sync());
      const first = await raw.untilReady();
      assert.equal(types(first), '1 2 D C Z');
      assert.equal(nodeOf(Number(values(first)[0]![0])), 'replica', 'the statement was parsed on the replica');
      raw.write(serialize.query(`INSERT INTO ${T} VALUES ('always', 0)`));
      await raw.untilReady();
      raw.write(serialize.query('BEGIN'));
      assert.equal(types(await raw.untilReady()), 'C Z');
      await sleep(300);
      raw.write(serialize.bind({ statement: 'sdb_probe', values: ['2'] }), serialize.execute({}), serialize.sync());
      const inTx = await raw.untilReady();
      assert.equal(types(inTx), '2 D C Z', 'the client sees only its own replies: no ParseComplete of pgrouter\'s, no BEGIN');
      const [port, ms, v] = values(inTx)[0]!;
      assert.deepEqual([nodeOf(Number(port)), v], ['primary', '2']);
      assert.ok(Number(ms) < 100, `the transaction began ${ms} ms before its first statement`);
      assert.equal(String.fromCharCode(inTx.at(-1)!.body[0]!), 'T');
      raw.write(serialize.query(`INSERT INTO ${T} VALUES ('always', 1)`));
      await raw.untilReady();
      raw.write(serialize.query('ROLLBACK'));
      await raw.untilReady();
      assert.equal(await rows(c.primary, 'always'), '0', 'ROLLBACK dropped the row written inside the transaction only');
    } finally {
      raw.terminate();
    }
  });

  test('postgres.js transactions (sql.begin) and through it: committed and rolled back as asked', async () => {
    const su = c.users.superuser;
    const js = postgres({ host: on.host, port: on.port, user: su.name, password: su.password, database: c.database, max: 3, onnotice: () => undefined });
    try {
      await js.begin(async (q) => {
        await q`INSERT INTO ${q(T)} VALUES ('js-commit', 1)`;
        await q`INSERT INTO ${q(T)} VALUES ('js-commit', 2)`;
      });
      await assert.rejects(js.begin(async (q) => {
        await q`INSERT INTO ${q(T)} VALUES ('js-rollback', 1)`;
        throw new Error('roll it back');
      }), /roll it back/);
      assert.equal(await rows(c.primary, 'js-commit'), '1,2');
      assert.equal(await rows(c.primary, 'js-rollback'), '');
    } finally {
      await js.end();
    }
  });

  test('SIGTERM drain waits for a transaction whose BEGIN is still deferred, then ends the session', async () => {
    const p = await startProxy(c, { conf: { backend_weight0: 0, backend_weight1: 1, drain_timeout: 20 } });
    const a = await connect(p);
    try {
      await a.query('BEGIN');
      const exited = p.stop('SIGTERM');
      await sleep(300);
      await a.query(`INSERT INTO ${T} VALUES ('drain', 1)`);
      await a.query('COMMIT');
      assert.equal(await rows(c.primary, 'drain'), '1', 'the transaction ran to its COMMIT during the drain');
      await exited;
    } finally {
      await close(a);
      await p.stop('SIGKILL').catch(() => undefined);
    }
  });
});
