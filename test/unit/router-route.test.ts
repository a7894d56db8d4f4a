// The routing gate's catalog-dependent rules (pg_proc volatility, unlogged tables, dml_adaptive's
// written tables) and the dml_adaptive_object_relationship_list syntax, on parsed statements.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { classify } from '../../src/router/classify.ts';
import { loadParser } from '../../src/router/parse-tree.ts';
import { mayChangeCatalogFacts } from '../../src/router/catalog-cache.ts';
import {
  NEEDS_CATALOG_LOOKUP,
  compileFunctionList,
  needsVolatility,
  parseDmlRelationships,
  primaryReason,
  readOnlyTransactionReason,
  type CatalogView,
  type RouteSettings,
  type SessionRouteState,
} from '../../src/router/route.ts';

before(async () => {
  await loadParser();
});

function settings(o: Partial<RouteSettings> = {}): RouteSettings {
  return {
    loadBalance: true,
    allowSqlComments: false,
    writeFunctions: [],
    readOnlyFunctions: [],
    primaryPatterns: [],
    disableLbOnWrite: 'transaction',
    dmlDependents: new Map(),
    checkUnloggedTable: true,
    relcacheSize: 256,
    relcacheExpire: 0,
    relcacheQueryTarget: 'primary',
    statementLevel: false,
    readOnlyTransactions: true,
    delayThresholdBytes: 0,
    delayThresholdMs: 0,
    preferLowerDelayStandby: false,
    traceAll: false,
    replicaRetryMs: 30_000,
    redirects: { appName: [], database: [], user: [] },
    ...o,
  };
}

const IDLE: SessionRouteState = { inTransaction: false, writing: false, pinned: false, tempTables: new Set(), written: new Set() };

/**
 * A catalog that knows the given facts and nothing else; "any unlogged table" is unlogged[''] if
 * given, else whether one of the named tables is unlogged (unknown when none is named).
 */
function catalog(volatile: Record<string, boolean>, unlogged: Record<string, boolean>): CatalogView {
  const names = Object.keys(unlogged).filter((k) => k !== '');
  const any = unlogged[''] ?? (names.length > 0 ? names.some((k) => unlogged[k]) : undefined);
  return { volatile: (n) => volatile[n], unlogged: (n) => unlogged[n], anyUnlogged: () => any };
}

const gate = (sql: string, cat: CatalogView, s = settings(), st = IDLE): string | null => primaryReason(classify(sql), sql, st, s, cat);

test('functions: built-ins are known, other names wait for pg_proc, and its answer decides', () => {
  const none = catalog({}, { t: false });
  assert.equal(gate('SELECT now(), lower(v) FROM t', none), null);
  assert.equal(gate('SELECT random()', none), NEEDS_CATALOG_LOOKUP, 'not a non-volatile built-in: asked of pg_proc');
  assert.equal(gate('SELECT f(1) FROM t', none), NEEDS_CATALOG_LOOKUP);
  assert.equal(gate('SELECT f(1) FROM t', catalog({ f: true }, { t: false })), 'write function f');
  assert.equal(gate('SELECT f(1) FROM t', catalog({ f: false }, { t: false })), null);
  assert.equal(gate('SELECT s.f(1)', catalog({ 's.f': true }, {})), 'write function s.f');
  // A known writer decides even while another name is unknown.
  assert.equal(gate('SELECT g(), f()', catalog({ f: true }, {})), 'write function f');
  // With either list set, pg_proc is never asked.
  assert.equal(gate('SELECT f()', catalog({}, {}), settings({ writeFunctions: compileFunctionList(['nextval']) })), null);
  assert.equal(gate('SELECT f()', catalog({}, {}), settings({ readOnlyFunctions: compileFunctionList(['f']) })), null);
  assert.equal(needsVolatility('now', settings()), false);
  assert.equal(needsVolatility('pg_catalog.now', settings()), false);
  assert.equal(needsVolatility('public.now', settings()), true);
  assert.equal(needsVolatility('my_func', settings()), true);
});

test('unlogged tables: looked up unless check_unlogged_table is off; other rules answer first', () => {
  const none = catalog({}, {});
  assert.equal(gate('SELECT * FROM t', none), NEEDS_CATALOG_LOOKUP);
  assert.equal(gate('SELECT * FROM t JOIN u ON true', catalog({}, { t: false, u: true })), 'unlogged table u');
  assert.equal(gate('SELECT * FROM s.t', catalog({}, { 's.t': true })), 'unlogged table s.t');
  assert.equal(gate('SELECT * FROM t', catalog({}, { t: false })), null);
  assert.equal(gate('SELECT * FROM t', none, settings({ checkUnloggedTable: false })), null);
  // A database known to have no unlogged table: its relations are not asked about.
  assert.equal(gate('SELECT * FROM t JOIN u ON true', catalog({}, { '': false })), null);
  assert.equal(gate('SELECT * FROM t', catalog({}, { '': true })), NEEDS_CATALOG_LOOKUP);
  // Decided without the catalog: system catalogs, temporary tables, a writing transaction.
  assert.equal(gate('SELECT * FROM pg_class', none), 'system catalog pg_class');
  assert.equal(gate('SELECT * FROM tt', none, settings(), { ...IDLE, tempTables: new Set(['tt']) }), 'temporary table tt');
  assert.equal(gate('SELECT * FROM t', none, settings(), { ...IDLE, inTransaction: true, writing: true }), 'in writing transaction');
});

test('dml_adaptive: reads of a table written in the transaction, or of a listed dependent, go to the primary', () => {
  const cat = catalog({ f: false }, { t: false, u: false, v: false });
  const s = settings({ disableLbOnWrite: 'dml_adaptive' });
  const inTx: SessionRouteState = { ...IDLE, inTransaction: true, written: new Set(['t', 'f()']) };
  assert.equal(gate('SELECT * FROM t', cat, s, inTx), 'dml_adaptive: t was written in this transaction');
  assert.equal(gate('SELECT * FROM public.t', cat, s, inTx), 'dml_adaptive: public.t was written in this transaction');
  assert.equal(gate('SELECT * FROM u', cat, s, inTx), null);
  assert.equal(gate('SELECT f() FROM u', cat, s, inTx), 'dml_adaptive: f() depends on a table written in this transaction');
  assert.equal(gate('SELECT * FROM t', cat, s, { ...inTx, inTransaction: false }), null, 'outside a transaction the set does not apply');
});

test('dml_adaptive_object_relationship_list syntax', () => {
  assert.deepEqual(
    [...parseDmlRelationships(' Table_1:table_2, public.table_1:"View_X" ,func_x():table_y,f ( ):g()')],
    [
      ['table_1', ['table_2', 'View_X']],
      ['func_x()', ['table_y']],
      ['f()', ['g()']],
    ],
  );
  assert.equal(parseDmlRelationships('').size, 0);
  assert.throws(() => parseDmlRelationships('table_1'), /expected object:dependent/);
  assert.throws(() => parseDmlRelationships('a:'), /expected object:dependent/);
});

test('DDL through pgrouter that may change volatility or persistence empties the catalog cache; other DDL does not', () => {
  for (const sql of [
    'CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$',
    'ALTER FUNCTION f() VOLATILE',
    'DROP FUNCTION f()',
    'ALTER TABLE t SET UNLOGGED',
    'CREATE UNLOGGED TABLE u (a int)',
    'CREATE TABLE n AS SELECT 1',
    'DROP TABLE t',
    'ALTER TABLE t RENAME TO t2',
    'CREATE SCHEMA s',
  ])
    assert.equal(mayChangeCatalogFacts(classify(sql)), true, sql);
  for (const sql of ['TRUNCATE t', 'CREATE INDEX ON t (a)', 'REFRESH MATERIALIZED VIEW m', 'GRANT SELECT ON t TO PUBLIC', 'CREATE TEMP TABLE x (a int)', 'SELECT 1', 'INSERT INTO t VALUES (1)'])
    assert.equal(mayChangeCatalogFacts(classify(sql)), false, sql);
  assert.deepEqual(classify('INSERT INTO t VALUES (f(1))').functions, ['f'], 'a DML statement names its functions (dml_adaptive)');
});

test('a READ ONLY transaction leaves the standby only for what a standby refuses, or the pattern list', () => {
  const ro = (sql: string, cat: CatalogView, s = settings()): string | null => readOnlyTransactionReason(classify(sql), sql, s, cat);
  const cat = catalog({ f: true, random: true }, { u: true, t: false });
  assert.equal(ro('SELECT pg_current_wal_lsn()', cat), 'pg_current_wal_lsn cannot run on a standby');
  assert.equal(ro('SELECT pg_catalog.txid_current()', cat), 'pg_catalog.txid_current cannot run on a standby');
  assert.equal(ro('SELECT * FROM u', cat), 'unlogged table u');
  assert.equal(ro('SELECT * FROM u', cat, settings({ checkUnloggedTable: false })), null);
  // Write functions and volatile built-ins run on a standby like anywhere (nothing can write).
  assert.equal(ro('SELECT random(), f(1), pg_is_in_recovery() FROM t', cat), null);
  // Not looked up yet: counts as logged, nothing waits.
  assert.equal(ro('SELECT * FROM v', catalog({}, {})), null);
  const patterns = settings({ primaryPatterns: [/fresh_orders/i] });
  assert.equal(ro('SELECT * FROM fresh_orders', catalog({}, { '': false }), patterns), 'primary_routing_query_pattern_list');
});
