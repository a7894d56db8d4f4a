// pool_mode = transaction, the unnamed-statement cache (transaction_unnamed_statement_cache): an
// unnamed statement seen twice on a shared connection is kept there under a name of pgrouter's,
// and later autocommit requests with the same text skip the server's parse. The client sees the
// same replies as on a direct connection, message for message; a cached statement made stale by
// ALTER TABLE is closed and the request sent again without the client seeing an error; with the
// setting off, every unnamed Parse goes to the server.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import type { Cluster } from '../../rig/cluster.ts';
import { getCluster } from '../harness/cluster.ts';
import { frame, queryMessage, rawLogin, rawQuery, type RawConn } from './raw-client.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';
import { freePort } from '../../rig/system.ts';

let c: Cluster;
let p: ProxyHandle;
let metricsPort: number;

before(async () => {
  c = await getCluster();
  // One lane: pg_prepared_statements (per backend) then shows what that lane holds.
  metricsPort = await freePort();
  p = await startProxy(c, {
    conf: { pool_mode: 'transaction', load_balance_mode: 'off', transaction_pool_size: 1, metrics_port: metricsPort, metrics_listen_addresses: '127.0.0.1' },
  });
});

after(async () => {
  await p?.stop('SIGKILL');
});

function client(port: number): pg.Client {
  const u = c.users.superuser;
  const cl = new pg.Client({ host: '127.0.0.1', port, user: u.name, password: u.password, database: c.database });
  cl.on('error', () => undefined);
  return cl;
}

/** How many server-side statements of the one lane have this text. */
async function onLane(cl: pg.Client, text: string): Promise<number> {
  const r = await cl.query<{ n: string }>({ text: 'SELECT count(*) AS n FROM pg_prepared_statements WHERE statement = $1', values: [text] });
  return Number(r.rows[0]!.n);
}

const cstr = (...parts: string[]): string => parts.map((x) => `${x}\0`).join('');
/** Parse of the unnamed statement with one untyped parameter; Bind of one text parameter; Describe portal; Execute; Sync. */
const extendedRequest = (sql: string, param: string): Buffer =>
  Buffer.concat([
    frame('P', `${cstr('', sql)}\0\0`),
    frame('B', Buffer.concat([Buffer.from(cstr('', '')), Buffer.from([0, 0, 0, 1]), int32(Buffer.byteLength(param)), Buffer.from(param), Buffer.from([0, 0])])),
    frame('D', `P${cstr('')}`),
    frame('E', `${cstr('')}\0\0\0\0`),
    frame('S'),
  ]);

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

/** Message types of one reply up to ReadyForQuery, and the first error's SQLSTATE. */
async function reply(conn: RawConn): Promise<{ types: string; code?: string }> {
  let types = '';
  let code: string | undefined;
  for (;;) {
    const m = await conn.readMessage(10_000);
    assert.ok(m, `reply ended early after "${types}"`);
    types += m.type;
    if (m.type === 'E' && code === undefined) code = /C([0-9A-Z]{5})\0/.exec(m.body.toString('latin1'))?.[1];
    if (m.type === 'Z') return code === undefined ? { types } : { types, code };
  }
}

test('a repeated unnamed statement is kept on the lane from its second use, and answers as on a direct connection', async () => {
  const text = 'SELECT $1::int + 7 AS v';
  const cl = client(p.port);
  await cl.connect();
  try {
    assert.equal(await onLane(cl, text), 0);
    assert.equal((await cl.query<{ v: number }>({ text, values: [1] })).rows[0]!.v, 8);
    assert.equal(await onLane(cl, text), 0, 'seen once: not kept yet');
    for (let i = 2; i <= 6; i++) assert.equal((await cl.query<{ v: number }>({ text, values: [i] })).rows[0]!.v, i + 7);
    assert.equal(await onLane(cl, text), 1, 'kept once, and reused');
  } finally {
    await cl.end();
  }
  // Another client with the same text uses the same server-side statement.
  const other = client(p.port);
  await other.connect();
  try {
    assert.equal((await other.query<{ v: number }>({ text, values: [100] })).rows[0]!.v, 107);
    assert.equal(await onLane(other, text), 1);
  } finally {
    await other.end();
  }
});

test('replies to a cached unnamed statement match a direct connection message for message', async () => {
  const sql = 'SELECT $1::text AS t';
  const u = c.users.md5;
  const direct = (await rawLogin(c.primary.port, u.name, c.database, u.password)).conn;
  const proxied = (await rawLogin(p.port, u.name, c.database, u.password)).conn;
  try {
    direct.write(extendedRequest(sql, 'x'));
    const want = await reply(direct);
    assert.equal(want.types, '12TDCZ');
    for (let i = 0; i < 4; i++) {
      proxied.write(extendedRequest(sql, `x${i}`));
      assert.deepEqual(await reply(proxied), want, `request ${i + 1}`);
    }
  } finally {
    direct.destroy();
    proxied.destroy();
  }
});

test('ALTER TABLE makes a cached statement stale: the request is sent again and the client sees the new columns, not an error', async () => {
  const cl = client(p.port);
  await cl.connect();
  const text = 'SELECT * FROM unnamed_cache_t WHERE a = $1';
  try {
    await cl.query('DROP TABLE IF EXISTS unnamed_cache_t');
    await cl.query('CREATE TABLE unnamed_cache_t (a int)');
    await cl.query('INSERT INTO unnamed_cache_t VALUES (1)');
    for (let i = 0; i < 3; i++) assert.deepEqual((await cl.query({ text, values: [1] })).rows, [{ a: 1 }]);
    assert.equal(await onLane(cl, text), 1);
    await cl.query('ALTER TABLE unnamed_cache_t ADD COLUMN b int DEFAULT 5');
    // Cached `SELECT *` now has another result type; the server refuses the old statement (0A000).
    const r = await cl.query({ text, values: [1] });
    assert.deepEqual(r.fields.map((f) => f.name), ['a', 'b']);
    assert.deepEqual(r.rows, [{ a: 1, b: 5 }]);
    // The stale one was closed; using the text again keeps a fresh one.
    for (let i = 0; i < 2; i++) assert.deepEqual((await cl.query({ text, values: [1] })).rows, [{ a: 1, b: 5 }]);
    assert.equal(await onLane(cl, text), 1);
  } finally {
    await cl.query('DROP TABLE IF EXISTS unnamed_cache_t').catch(() => undefined);
    await cl.end();
  }
});

test('two pipelined requests on a stale statement: the first gets 0A000 (a later request was in flight), the second is sent again, the session goes on', async () => {
  const u = c.users.md5;
  const { conn } = await rawLogin(p.port, u.name, c.database, u.password);
  const sql = 'SELECT * FROM unnamed_cache_p WHERE a = $1';
  try {
    for (const q of ['DROP TABLE IF EXISTS unnamed_cache_p', 'CREATE TABLE unnamed_cache_p (a int)', 'INSERT INTO unnamed_cache_p VALUES (1)'])
      assert.deepEqual((await rawQuery(conn, q)).errors, []);
    for (let i = 0; i < 3; i++) {
      conn.write(extendedRequest(sql, '1'));
      assert.deepEqual(await reply(conn), { types: '12TDCZ' });
    }
    assert.deepEqual((await rawQuery(conn, 'ALTER TABLE unnamed_cache_p ADD COLUMN b int')).errors, []);
    conn.write(Buffer.concat([extendedRequest(sql, '1'), extendedRequest(sql, '1')]));
    assert.deepEqual(await reply(conn), { types: '1EZ', code: '0A000' });
    assert.deepEqual(await reply(conn), { types: '12TDCZ' });
    conn.write(extendedRequest(sql, '1'));
    assert.deepEqual(await reply(conn), { types: '12TDCZ' });
    conn.write(queryMessage('DROP TABLE unnamed_cache_p'));
    assert.equal((await reply(conn)).types, 'CZ');
  } finally {
    conn.destroy();
  }
});

test('a kept statement whose request fails after its Parse (division by zero) is closed on the server, not left behind', async () => {
  const text = 'SELECT 10 / $1::int AS v';
  const cl = client(p.port);
  await cl.connect();
  try {
    for (let i = 0; i < 10; i++) await assert.rejects(cl.query({ text, values: [0] }), (e: Error & { code?: string }) => e.code === '22012');
    assert.equal((await cl.query<{ v: number }>({ text, values: [5] })).rows[0]!.v, 2);
    assert.ok((await onLane(cl, text)) <= 1, `statements with this text on the lane: ${await onLane(cl, text)}`);
  } finally {
    await cl.end();
  }
});

test('inside a transaction the unnamed statement goes to the server as sent (nothing is kept)', async () => {
  const text = 'SELECT $1::int * 3 AS v';
  const cl = client(p.port);
  await cl.connect();
  try {
    await cl.query('BEGIN');
    for (let i = 1; i <= 4; i++) assert.equal((await cl.query<{ v: number }>({ text, values: [i] })).rows[0]!.v, i * 3);
    assert.equal(await onLane(cl, text), 0);
    await cl.query('COMMIT');
  } finally {
    await cl.end();
  }
});

test('pgrouter_server_statements_total counts what the tests above did on the lane: hits, parses, stale statements sent again or passed on', async () => {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const count = (event: string): number => Number(new RegExp(`^pgrouter_server_statements_total\\{node="0",event="${event}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
  // Stale: the ALTER TABLE test's request and the second pipelined one were sent again; the first pipelined one got the error.
  assert.equal(count('stale_retried'), 2);
  assert.equal(count('stale_error'), 1);
  // Every cached use above was a hit (4 in the first test alone), each statement kept a parse.
  assert.ok(count('hit') >= 10, `hit = ${count('hit')}`);
  assert.ok(count('parsed') >= 4, `parsed = ${count('parsed')}`);
});

test('transaction_unnamed_statement_cache = off: every unnamed Parse goes to the server', async () => {
  const off = await startProxy(c, {
    conf: { pool_mode: 'transaction', load_balance_mode: 'off', transaction_pool_size: 1, transaction_unnamed_statement_cache: 'off' },
  });
  const cl = client(off.port);
  await cl.connect();
  const text = 'SELECT $1::int - 1 AS v';
  try {
    for (let i = 1; i <= 5; i++) assert.equal((await cl.query<{ v: number }>({ text, values: [i] })).rows[0]!.v, i - 1);
    assert.equal(await onLane(cl, text), 0);
  } finally {
    await cl.end();
    await off.stop('SIGKILL');
  }
});
