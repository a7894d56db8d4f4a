// The classifier: Pgpool-II's PRIMARY / BOTH / EITHER rules on a corpus of statements, and the
// fast path checked against the full parse of PostgreSQL's grammar.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { classify, classifyFast } from '../../src/router/classify.ts';
import { classifyByParse, loadParser } from '../../src/router/parse-tree.ts';

before(async () => {
  await loadParser();
});

const CASES: Array<[string, 'primary' | 'all' | 'either', string?]> = [
  ['SELECT 1', 'either'],
  ['select abalance from pgbench_accounts where aid = 5;', 'either'],
  ['SELECT * FROM t WHERE a = $1 AND b = 2', 'either'],
  ['SELECT * FROM t FOR UPDATE', 'primary'],
  ['SELECT * FROM t FOR SHARE', 'primary'],
  ['SELECT * FROM t FOR NO KEY UPDATE', 'primary'],
  ['SELECT * FROM t FOR KEY SHARE', 'primary'],
  ['SELECT * FROM (SELECT * FROM t FOR UPDATE) s', 'primary'],
  ['SELECT * INTO t2 FROM t', 'primary'],
  ['WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x', 'primary'],
  ['WITH x AS (SELECT 1) SELECT * FROM x', 'either'],
  ['INSERT INTO t VALUES (1)', 'primary'],
  ['UPDATE t SET a = 1', 'primary'],
  ['DELETE FROM t', 'primary'],
  ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE', 'primary'],
  ['TRUNCATE t', 'primary'],
  ['CREATE TABLE x (a int)', 'primary'],
  ['DROP TABLE x', 'primary'],
  ['VACUUM t', 'primary'],
  ['ANALYZE t', 'primary'],
  ['LISTEN ch', 'primary'],
  ['UNLISTEN *', 'primary'],
  ["NOTIFY ch, 'x'", 'primary'],
  ['DECLARE c CURSOR FOR SELECT 1', 'primary'],
  ['FETCH 1 FROM c', 'primary'],
  ['CALL p()', 'primary'],
  ['DO $$BEGIN END$$', 'primary'],
  ["PREPARE TRANSACTION 'x'", 'primary'],
  ["COMMIT PREPARED 'x'", 'primary'],
  ["ROLLBACK PREPARED 'x'", 'primary'],
  ['COPY t FROM STDIN', 'primary'],
  ['COPY t TO STDOUT', 'either'],
  ['COPY (SELECT * FROM t) TO STDOUT', 'either'],
  ['LOCK t IN ACCESS SHARE MODE', 'all'],
  ['LOCK t IN ROW EXCLUSIVE MODE', 'primary'],
  ['LOCK t', 'primary'],
  ['SET search_path = x', 'all'],
  ['SET LOCAL work_mem = 1000', 'all'],
  ['RESET ALL', 'all'],
  ['SET transaction_read_only = off', 'primary'],
  ['SET transaction_read_only = false', 'primary'],
  ["SET transaction_read_only = 'f'", 'primary'],
  ['SET transaction_read_only = 0', 'primary'],
  ['SET transaction_read_only = on', 'all'],
  ['SET TRANSACTION READ WRITE', 'primary'],
  ['SET TRANSACTION READ ONLY', 'all'],
  ['SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE', 'primary'],
  ['SET TRANSACTION ISOLATION LEVEL SERIALIZABLE', 'primary'],
  ['SET default_transaction_isolation = serializable', 'primary'],
  ['DISCARD ALL', 'all'],
  ['DEALLOCATE ALL', 'all'],
  ['DEALLOCATE p', 'primary'],
  ['BEGIN', 'all'],
  ['START TRANSACTION', 'all'],
  ['BEGIN READ WRITE', 'all'],
  ['COMMIT', 'all'],
  ['ROLLBACK', 'all'],
  ['END', 'all'],
  ['ABORT', 'all'],
  ['SAVEPOINT a', 'all'],
  ['RELEASE a', 'all'],
  ['ROLLBACK TO a', 'all'],
  ['SHOW search_path', 'either'],
  ['PREPARE p AS SELECT 1', 'either'],
  ['PREPARE p AS INSERT INTO t VALUES (1)', 'primary'],
  ['EXECUTE p', 'primary'],
  ['EXPLAIN SELECT 1', 'either'],
  ['EXPLAIN ANALYZE SELECT 1', 'primary'],
  ['EXPLAIN DELETE FROM t', 'primary'],
  ['SELECT 1; SELECT 2', 'primary'],
  ['selec 1', 'primary'],
  ['', 'either'],
  ['VALUES (1)', 'primary'],
  ['TABLE t', 'either'],
  ['SELECT nextval(\'s\')', 'either'], // the function rule is applied by the router, not here
];

test('classification follows Pgpool-II rules', () => {
  for (const [sql, want] of CASES) assert.equal(classify(sql).target, want, sql);
});

test('facts the router needs: functions, relations, temp tables, transaction control', () => {
  assert.deepEqual(classify("SELECT nextval('s'), public.f(1)").functions, ['nextval', 'public.f']);
  assert.deepEqual(classify('SELECT * FROM pg_catalog.pg_class c JOIN t ON true').relations, ['pg_catalog.pg_class', 't']);
  assert.deepEqual(classify('CREATE TEMP TABLE tt (a int)').createsTemp, ['tt']);
  assert.deepEqual(classify('DROP TABLE tt, public.x').drops, ['tt', 'public.x']);
  assert.equal(classify('BEGIN ISOLATION LEVEL SERIALIZABLE').pinsTransaction, true);
  assert.equal(classify('BEGIN').pinsTransaction, false);
  assert.equal(classify('COMMIT').tx, 'end');
  assert.equal(classify('/* c */ SELECT 1').leadingComment, true);
  assert.equal(classify('PREPARE q AS SELECT 1').prepare, 'q');
  assert.equal(classify('EXECUTE q').execute, 'q');
  assert.equal(classify('INSERT INTO t VALUES (1)').kind, 'insert');
});

test('relations written, for dml_adaptive: null when the statement may write what pgrouter cannot name', () => {
  const WRITES: Array<[string, string[] | null]> = [
    ['SELECT * FROM t', []],
    ['BEGIN', []],
    ['SET LOCAL work_mem = 1000', []],
    ['SAVEPOINT a', []],
    ['INSERT INTO t VALUES (1)', ['t']],
    ['INSERT INTO s.t SELECT * FROM u', ['s.t']],
    ['UPDATE t SET a = 1 FROM u WHERE t.id = u.id', ['t']],
    ['DELETE FROM t', ['t']],
    ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE', ['t']],
    ['WITH x AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM x', ['b', 'a']],
    ['WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x', ['t']],
    ['SELECT * FROM t, u FOR UPDATE', ['t', 'u']],
    ['SELECT * INTO t2 FROM t', ['t2']],
    ['TRUNCATE a, s.b', ['a', 's.b']],
    ['COPY t FROM STDIN', ['t']],
    ['LOCK t, u IN EXCLUSIVE MODE', ['t', 'u']],
    ['LOCK t IN ACCESS SHARE MODE', []],
    ['ALTER TABLE t ADD c int', ['t']],
    ['CREATE INDEX ON t (a)', ['t']],
    ['CREATE TABLE n (a int)', ['n']],
    ['CREATE TABLE n AS SELECT 1', ['n']],
    ['VALUES (1)', []],
    ["NOTIFY ch, 'x'", []],
    ['PREPARE p AS INSERT INTO t VALUES (1)', []],
    ['DEALLOCATE p', []],
    ['SET transaction_read_only = off', []],
    ['DO $$BEGIN END$$', null],
    ['CALL p()', null],
    ['EXECUTE p', null],
    ['DROP TABLE t', null],
    ['CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$', null],
    // A multi-statement string writes what its statements write.
    ['INSERT INTO t VALUES (1); SELECT 1', ['t']],
    ['INSERT INTO t VALUES (1); DO $$BEGIN END$$', null],
    ['selec 1', null],
  ];
  for (const [sql, want] of WRITES) assert.deepEqual(classify(sql).writes, want, sql);
});

test('the fast path agrees with the full parse wherever it answers', () => {
  const corpus = [
    'BEGIN', 'begin;', 'BEGIN WORK', 'START TRANSACTION', 'COMMIT', 'commit work', 'END', 'END TRANSACTION', 'ROLLBACK', 'ABORT',
    'SELECT abalance FROM pgbench_accounts WHERE aid = 42;', 'select * from t', 'SELECT a, b FROM s.t WHERE a = $1 AND b <> 3',
    "SELECT a FROM t WHERE b = 'x'", 'select "a" from t', 'select a from t where b = 1 or c = 2', 'select for from t',
    'select a from t where b = 1 for update', 'select a from t limit 1', 'select a from pg_class', 'START TRANSACTION WORK',
    "select a from t where b = 'it''s'", 'select a from t where b = -1', 'select * from t;;', 'select a from t where select = 1',
    // pgbench's TPC-B writes and other constant-only single-table DML.
    'UPDATE pgbench_accounts SET abalance = abalance + -4390 WHERE aid = 12762;',
    'UPDATE pgbench_tellers SET tbalance = tbalance + 17 WHERE tid = 3;',
    'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 12762, -4390, CURRENT_TIMESTAMP);',
    "update s.t set a = 1, b = 'x' where c = $1 and d <> 2", 'delete from t where id = 3', 'DELETE FROM s.t',
    'insert into t values (1, null)', "INSERT INTO t (a) VALUES ('x');",
    // Shapes the DML fast path must leave to the parse.
    'UPDATE t SET a = f(1)', 'UPDATE t SET a = 1 RETURNING a', 'DELETE FROM t USING u WHERE t.id = u.id',
    'INSERT INTO t SELECT 1', 'UPDATE ONLY t SET a = 1', 'UPDATE t SET a = 1; DELETE FROM u', 'update t set a = (select 1)',
    'INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING', 'UPDATE t x SET a = 1', 'insert into t values (1), (2)',
  ];
  let answered = 0;
  for (const sql of corpus) {
    const f = classifyFast(sql);
    if (!f) continue;
    answered++;
    const p = classifyByParse(sql);
    assert.equal(f.target, p.target, sql);
    assert.equal(f.kind, p.kind, sql);
    assert.equal(f.tx, p.tx, sql);
    assert.deepEqual(f.functions, p.functions, sql);
    assert.deepEqual(f.relations, p.relations, sql);
    assert.deepEqual(f.writes, p.writes, sql);
    assert.equal(f.reason, p.reason, sql);
    assert.equal(f.pinsTransaction, p.pinsTransaction, sql);
    assert.deepEqual([f.createsTemp, f.drops], [p.createsTemp, p.drops], sql);
  }
  assert.ok(answered >= 22, `fast path answered ${answered}`);
  for (const sql of ['UPDATE pgbench_accounts SET abalance = abalance + -4390 WHERE aid = 12762;', 'delete from t where id = 3', 'insert into t values (1, null)'])
    assert.equal(classifyFast(sql)?.target, 'primary', `the fast path answers ${sql}`);
  for (const sql of ['UPDATE t SET a = f(1)', 'UPDATE t SET a = 1 RETURNING a', 'UPDATE t SET a = 1; DELETE FROM u', 'INSERT INTO t SELECT 1'])
    assert.equal(classifyFast(sql), undefined, `the parse answers ${sql}`);
  assert.equal(classifyFast('select for from t'), undefined);
  assert.equal(classifyFast('select a from t where b = 1 for update'), undefined);
});

test('what transaction pooling needs to run a READ ONLY transaction on a standby: read-only BEGINs, local set_config calls, cursors WITH HOLD', () => {
  const readOnly: Array<[string, boolean]> = [
    ['BEGIN READ ONLY', true],
    ['START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY', true],
    ['begin transaction read only, isolation level read committed', true],
    ['SET TRANSACTION READ ONLY', true],
    ['SET transaction_read_only = on', true],
    ['SET transaction_read_only TO off', false],
    ['BEGIN', false],
    ['BEGIN READ WRITE', false],
    ['BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY', false],
    ['SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY', false],
    ['SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY', false],
    ['SELECT 1', false],
  ];
  for (const [sql, want] of readOnly) assert.equal(classify(sql).readOnly, want, sql);
  const local: Array<[string, number]> = [
    ["SELECT set_config('a', $1, true)", 1],
    ["SELECT pg_catalog.set_config('a', 'b', true), set_config('c', 'd', true)", 2],
    ["SELECT set_config('a', 'b', false)", 0],
    ["SELECT set_config('a', 'b', $1)", 0],
    ["SELECT myschema.set_config('a', 'b', true)", 0],
    ["SELECT set_config('a', 'b', true), set_config('c', 'd', false)", 1],
  ];
  for (const [sql, want] of local) assert.equal(classify(sql).localSetConfig, want, sql);
  assert.equal(classify('DECLARE c CURSOR WITH HOLD FOR SELECT 1').reason, 'DECLARECURSOR WITH HOLD');
  assert.equal(classify('DECLARE c NO SCROLL CURSOR FOR SELECT 1').reason, 'DECLARECURSOR');
  assert.equal(classify('LISTEN ch').reason, 'LISTEN');
});

test('every classification has the same fields in the same order (one hidden class for the router to read)', () => {
  const shape = Object.keys(classify('SELECT 1')).join(',');
  const texts = [
    ...CASES.map(([sql]) => sql),
    'select abalance from pgbench_accounts where aid = 5;', // fast path
    'BEGIN',
    '-- a comment\nSELECT 2',
    "PREPARE p AS SELECT 1",
    'EXECUTE p',
    'DEALLOCATE p',
  ];
  for (const sql of texts) assert.equal(Object.keys(classify(sql)).join(','), shape, sql);
  for (const sql of texts) assert.equal(Object.keys(classifyByParse(sql)).join(','), shape, sql);
});

test('session-level SET and RESET say what they set; SET LOCAL, roles and transaction settings do not', () => {
  const cases: Array<[string, { name: string; reset: boolean } | undefined]> = [
    ['SET extra_float_digits = 3', { name: 'extra_float_digits', reset: false }],
    ["SET application_name = 'PostgreSQL JDBC Driver'", { name: 'application_name', reset: false }],
    ['set SESSION Search_Path to a, b', { name: 'search_path', reset: false }],
    ["SET TIME ZONE 'UTC'", { name: 'timezone', reset: false }],
    ['SET work_mem TO DEFAULT', { name: 'work_mem', reset: true }],
    ['RESET work_mem', { name: 'work_mem', reset: true }],
    ['RESET ALL', { name: '', reset: true }],
    ['SET LOCAL work_mem = 1000', undefined],
    ['SET ROLE postgres', undefined],
    ['SET SESSION AUTHORIZATION postgres', undefined],
    ['RESET ROLE', undefined],
    ['SET transaction_read_only = on', undefined],
    ['SET default_transaction_read_only = on', { name: 'default_transaction_read_only', reset: false }],
    ["SET default_transaction_isolation = 'repeatable read'", { name: 'default_transaction_isolation', reset: false }],
    ['RESET default_transaction_isolation', { name: 'default_transaction_isolation', reset: true }],
    ['SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ', { name: 'default_transaction_isolation', reset: false }],
    ['SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY', { name: 'default_transaction_read_only', reset: false }],
    ['SET SESSION CHARACTERISTICS AS TRANSACTION NOT DEFERRABLE', { name: 'default_transaction_deferrable', reset: false }],
    // Several options set several parameters: not one setting (the session is pinned instead).
    ['SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY', undefined],
    // Kept on the primary, and pinning, as before.
    ['SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE', undefined],
    ['SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE', undefined],
    ['SET default_transaction_isolation = serializable', undefined],
    ['SET default_transaction_read_only = off', undefined],
    ['SET TRANSACTION READ ONLY', undefined],
    ['SET work_mem FROM CURRENT', undefined],
    ['SHOW work_mem', undefined],
    ['DISCARD ALL', undefined],
  ];
  for (const [sql, want] of cases) assert.deepEqual(classifyByParse(sql).setting, want, sql);
});

test('a multi-statement string keeps each statement classified', () => {
  const c = classifyByParse("SET work_mem = '7MB'; SELECT 1");
  assert.equal(c.reason, 'multi-statement query');
  assert.deepEqual(c.parts?.map((p) => [p.target, p.setting?.name]), [['all', 'work_mem'], ['either', undefined]]);
  assert.equal(classifyByParse('SELECT 1').parts, undefined);
});
