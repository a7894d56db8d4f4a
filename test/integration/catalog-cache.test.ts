// The catalog cache against the rig's real primary: the lookup query's answers (pg_proc
// volatility, unlogged tables, schema-qualified names, awkward names), expiry, the size bound,
// one lookup for names several sessions want at once, and a failed lookup.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { getCluster } from '../harness/cluster.ts';
import { sql, type Cluster } from '../../rig/cluster.ts';
import { ANY_RELATION, CatalogCache, catalogQueryText, freshFacts, type CatalogQuery } from '../../src/router/catalog-cache.ts';

let c: Cluster;
let db: pg.Client;
let queries: string[] = [];

/** Runs a lookup query on the real primary, as text values ('t' / 'f'), and records it. */
const run: CatalogQuery = async (text) => {
  queries.push(text);
  const r = await db.query({ text, rowMode: 'array', types: { getTypeParser: () => (v: string) => v } });
  return r.rows as string[][];
};

before(async () => {
  c = await getCluster();
  await sql(c, c.primary, `CREATE SCHEMA IF NOT EXISTS cc_s;
    CREATE OR REPLACE FUNCTION cc_vol() RETURNS int LANGUAGE sql VOLATILE AS $$ SELECT 1 $$;
    CREATE OR REPLACE FUNCTION cc_stable() RETURNS int LANGUAGE sql STABLE AS $$ SELECT 1 $$;
    CREATE OR REPLACE FUNCTION cc_s.cc_stable() RETURNS int LANGUAGE sql VOLATILE AS $$ SELECT 1 $$;
    DROP TABLE IF EXISTS cc_unlogged, cc_logged, cc_s.cc_logged;
    CREATE UNLOGGED TABLE cc_unlogged (a int); CREATE TABLE cc_logged (a int); CREATE UNLOGGED TABLE cc_s.cc_logged (a int);`);
  db = new pg.Client({ host: c.primary.host, port: c.primary.port, user: c.users.superuser.name, password: c.users.superuser.password, database: c.database });
  db.on('error', () => undefined);
  await db.connect();
});

after(async () => {
  await db.end();
});

test('pg_proc and pg_class answers, per schema when qualified, in any schema when not', async () => {
  const cache = new CatalogCache();
  const d = cache.database('app');
  const into = freshFacts();
  queries = [];
  await cache.lookUp(
    d,
    {
      volatile: ['cc_vol', 'cc_stable', 'public.cc_stable', 'cc_s.cc_stable', 'nextval', 'pg_catalog.now', 'cc_missing', "o'dd\\name"],
      unlogged: ['cc_unlogged', 'cc_logged', 'public.cc_logged', 'cc_s.cc_logged', 'cc_missing', ANY_RELATION],
    },
    run,
    into,
  );
  assert.equal(queries.length, 1, 'one query for the whole statement');
  assert.equal(into.error, undefined);
  assert.deepEqual(Object.fromEntries(into.volatile), {
    cc_vol: true,
    cc_stable: true, // cc_s.cc_stable is volatile: an unqualified name takes the safe side
    'public.cc_stable': false,
    'cc_s.cc_stable': true,
    nextval: true,
    'pg_catalog.now': false,
    cc_missing: false,
    "o'dd\\name": false,
  });
  assert.deepEqual(Object.fromEntries(into.unlogged), {
    cc_unlogged: true,
    cc_logged: true, // cc_s.cc_logged is unlogged
    'public.cc_logged': false,
    'cc_s.cc_logged': true,
    cc_missing: false,
    [ANY_RELATION]: true,
  });
  assert.equal(d.anyUnlogged?.value, true, 'kept at hand for the per-statement check');
  assert.equal(cache.get(d, 'volatile', 'cc_vol'), true, 'cached');
  assert.equal(cache.get(d, 'unlogged', 'public.cc_logged'), false, 'cached');
  assert.equal(cache.get(cache.database('other'), 'volatile', 'cc_vol'), undefined, 'per database');
  assert.match(catalogQueryText([['volatile', "a'b"]]), /proname = E'a''b'/);
});

test('a database without unlogged tables is known as such', async () => {
  const other = new pg.Client({ host: c.primary.host, port: c.primary.port, user: c.users.superuser.name, password: c.users.superuser.password, database: 'postgres' });
  other.on('error', () => undefined);
  await other.connect();
  try {
    const cache = new CatalogCache();
    const d = cache.database('postgres');
    const into = freshFacts();
    const runOther: CatalogQuery = async (text) =>
      (await other.query({ text, rowMode: 'array', types: { getTypeParser: () => (v: string) => v } })).rows as string[][];
    await cache.lookUp(d, { volatile: [], unlogged: [ANY_RELATION] }, runOther, into);
    assert.equal(into.unlogged.get(ANY_RELATION), false);
    assert.equal(cache.view(d, () => null).anyUnlogged(), false);
    cache.forget(d);
    assert.equal(cache.view(d, () => null).anyUnlogged(), undefined, 'forgotten with the rest');
  } finally {
    await other.end();
  }
});

test('entries expire after relcache_expire; relcache_size bounds them, oldest out first; 0 keeps none', async () => {
  let now = 1_000_000;
  const cache = new CatalogCache(() => now);
  cache.configure(2, 10);
  const d = cache.database('app');
  await cache.lookUp(d, { volatile: ['cc_vol'], unlogged: [] }, run, freshFacts());
  now += 9_999;
  assert.equal(cache.get(d, 'volatile', 'cc_vol'), true);
  now += 2;
  assert.equal(cache.get(d, 'volatile', 'cc_vol'), undefined, 'expired after 10 s');
  assert.equal(cache.entries, 0);
  await cache.lookUp(d, { volatile: ['cc_vol', 'cc_stable'], unlogged: ['cc_unlogged'] }, run, freshFacts());
  assert.equal(cache.entries, 2);
  assert.equal(cache.get(d, 'volatile', 'cc_vol'), undefined, 'the oldest entry made room');
  assert.equal(cache.get(d, 'unlogged', 'cc_unlogged'), true);
  cache.forget(d);
  assert.equal(cache.entries, 0, 'forget empties the database');
  cache.configure(0, 0);
  const into = freshFacts();
  await cache.lookUp(d, { volatile: ['cc_vol'], unlogged: [] }, run, into);
  assert.equal(into.volatile.get('cc_vol'), true, 'the waiting statement still gets its answer');
  assert.equal(cache.entries, 0, 'relcache_size 0 caches nothing');
});

test('names another session is looking up are waited for, not looked up twice', async () => {
  const cache = new CatalogCache();
  const d = cache.database('app');
  queries = [];
  const a = freshFacts();
  const b = freshFacts();
  await Promise.all([
    cache.lookUp(d, { volatile: ['cc_vol', 'cc_stable'], unlogged: [] }, run, a),
    cache.lookUp(d, { volatile: ['cc_vol'], unlogged: ['cc_logged'] }, run, b),
  ]);
  assert.equal(queries.length, 2);
  assert.equal(queries.filter((q) => q.includes("'cc_vol'")).length, 1, 'cc_vol asked once');
  assert.equal(b.volatile.get('cc_vol'), true);
  assert.equal(b.unlogged.get('cc_logged'), true);
});

test('a failed lookup answers "volatile" and "unlogged" to the waiting statement and caches nothing', async () => {
  const cache = new CatalogCache();
  const d = cache.database('app');
  const into = freshFacts();
  // A real failure: the server rejects the query (a broken text in place of the lookup's).
  await cache.lookUp(d, { volatile: ['cc_stable'], unlogged: ['cc_logged'] }, (text) => run(text.replace('SELECT', 'SELEC')), into);
  assert.match(into.error ?? '', /syntax error/);
  assert.equal(into.volatile.get('cc_stable'), true);
  assert.equal(into.unlogged.get('cc_logged'), true);
  assert.equal(cache.entries, 0);
  assert.equal(d.inflight.size, 0);
});
