// The SHOW rows → pgpool2_exporter metrics mapping, on result sets in Pgpool-II's own shapes:
// status words, counters vs gauges, help texts, duplicate label sets (exporter issue 16), the
// "0.1 second" replication delay (issue 42), nan, version gating, frontend/backend aggregates;
// the SHOW reply decoder (Pgpool-II 4.3.5's doubled RowDescription); DSN parsing and masking.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import * as w from '../../src/protocol/writer.ts';
import { mapSnapshot, parseNumber, parseReplicationDelay, statusValue, ExporterSelfMetrics, type ShowNamespace } from '../../src/metrics/pgpool-metrics.ts';
import { ShowCollector, ShowError, decodeShowReply, type ShowResult } from '../../src/metrics/show-result.ts';
import { statusData } from '../../src/metrics/status-data.ts';
import { parseListenAddress } from '../../src/metrics/http-server.ts';
import { dataSourceFromEnv, parseDsn } from '../../src/exporter/dsn.ts';
import { POOL_BACKEND_STATS_COLUMNS, POOL_NODES_COLUMNS } from '../../src/admin/show-nodes.ts';
import { POOL_POOLS_COLUMNS, POOL_PROCESSES_COLUMNS } from '../../src/admin/show-processes.ts';

function result(columns: readonly string[], rows: Array<Record<string, string>>): ShowResult {
  return { columns, rows: rows.map((r) => columns.map((c) => r[c] ?? '')) };
}

const node = (id: number, o: Record<string, string>): Record<string, string> => ({
  node_id: String(id), hostname: `pg-${id}`, port: '5432', status: 'up', pg_status: 'up', lb_weight: '0.500000',
  role: id === 0 ? 'primary' : 'standby', pg_role: id === 0 ? 'primary' : 'standby', select_cnt: '7',
  load_balance_node: 'false', replication_delay: '0', ...o,
});

async function text(results: Array<[ShowNamespace, ShowResult | Error]>, version = '4.7.0 (mitsukakeboshi)'): Promise<string> {
  return mapSnapshot({ up: true, version, results: new Map(results) }).registry.metrics();
}

test('pool_nodes: status words, labels, counter/gauge types and help texts as pgpool2_exporter', async () => {
  const nodes = result(POOL_NODES_COLUMNS, [
    node(0, {}),
    node(1, { status: 'waiting', replication_delay: '1024' }),
    node(2, { hostname: 'pg-2', status: 'down', pg_status: 'down', pg_role: 'unknown' }),
    node(3, { hostname: 'pg-3', status: 'quarantine' }),
  ]);
  const t = await text([['pool_nodes', nodes]]);
  assert.match(t, /^# HELP pgpool2_pool_nodes_status Backend node Status \(1 for up or waiting, 0 for down or unused\)$/m);
  assert.match(t, /^# TYPE pgpool2_pool_nodes_select_cnt counter$/m);
  assert.match(t, /^# TYPE pgpool2_pool_nodes_replication_delay gauge$/m);
  assert.match(t, /^pgpool2_pool_nodes_status\{hostname="pg-0",port="5432",role="primary"\} 1$/m);
  assert.match(t, /^pgpool2_pool_nodes_status\{hostname="pg-1",port="5432",role="standby"\} 1$/m, 'waiting counts as up');
  assert.match(t, /^pgpool2_pool_nodes_status\{hostname="pg-2",port="5432",role="standby"\} 0$/m);
  assert.match(t, /^pgpool2_pool_nodes_status\{hostname="pg-3",port="5432",role="standby"\} 0$/m, 'quarantine counts as down');
  assert.match(t, /^pgpool2_pool_nodes_replication_delay\{hostname="pg-1",port="5432",role="standby"\} 1024$/m);
  assert.match(t, /^pgpool2_pool_nodes_replication_delay_bytes\{hostname="pg-1",port="5432",role="standby"\} 1024$/m);
  assert.match(t, /^pgpool2_pool_nodes_pg_status\{hostname="pg-2",port="5432",role="standby"\} 0$/m);
  assert.match(t, /^pgpool2_pool_nodes_pg_role\{hostname="pg-0",port="5432",role="primary"\} 1$/m);
  assert.match(t, /^pgpool2_pool_nodes_pg_role\{hostname="pg-2",port="5432",role="standby"\} -1$/m);
  assert.match(t, /^pgpool2_pool_nodes_lb_weight\{hostname="pg-0",port="5432",role="primary"\} 0.5$/m);
  assert.match(t, /^pgpool2_version\{version="4.7.0"\} 1$/m);
  assert.doesNotMatch(t, /load_balance_node/);
});

test('two rows with the same hostname/port/role: the second is dropped, the scrape goes on (exporter issue 16)', () => {
  const nodes = result(POOL_NODES_COLUMNS, [node(0, {}), node(1, { hostname: 'pg-0', role: 'primary' })]);
  const m = mapSnapshot({ up: true, version: '4.3.5', results: new Map([['pool_nodes', nodes]]) });
  assert.ok(m.problems.some((p) => /pgpool2_pool_nodes_status: a second row with the same labels/.test(p)));
  assert.deepEqual(m.failed, []);
});

test('replication delay printed in seconds is exported as _seconds, never a parse error (exporter issue 42)', async () => {
  const nodes = result(POOL_NODES_COLUMNS, [node(0, {}), node(1, { replication_delay: '0.000568 second' }), node(2, { hostname: 'pg-2', replication_delay: '3.250000 seconds' })]);
  const m = mapSnapshot({ up: true, version: '4.4.0', results: new Map([['pool_nodes', nodes]]) });
  const t = await m.registry.metrics();
  assert.deepEqual(m.problems, []);
  assert.match(t, /^pgpool2_pool_nodes_replication_delay_seconds\{hostname="pg-1",port="5432",role="standby"\} 0.000568$/m);
  assert.match(t, /^pgpool2_pool_nodes_replication_delay_seconds\{hostname="pg-2",port="5432",role="standby"\} 3.25$/m);
  assert.doesNotMatch(t, /^pgpool2_pool_nodes_replication_delay\{hostname="pg-1"/m, 'the original metric stays in bytes only');
  assert.deepEqual(parseReplicationDelay('12'), { bytes: 12 });
  assert.deepEqual(parseReplicationDelay('1.5 seconds'), { seconds: 1.5 });
  assert.deepEqual(parseReplicationDelay(''), {});
});

test('numbers: Go ParseFloat rules, nan and -nan accepted, empty and text rejected', () => {
  assert.equal(parseNumber('0.500000'), 0.5);
  assert.ok(Number.isNaN(parseNumber('-nan')!));
  assert.ok(Number.isNaN(parseNumber('nan')!));
  assert.equal(parseNumber(''), undefined);
  assert.equal(parseNumber('12 seconds'), undefined);
  assert.equal(parseNumber('1e3'), 1000);
  assert.deepEqual(['up', 'waiting', 'true', 'down', 'unused', 'false', 'quarantine', ''].map(statusValue), [1, 1, 1, 0, 0, 0, 0, 0]);
});

test('backend and health check stats are skipped before Pgpool-II 4.2; a failed SHOW marks the scrape', async () => {
  const stats = result(POOL_BACKEND_STATS_COLUMNS, [{ node_id: '0', hostname: 'pg-0', port: '5432', status: 'up', role: 'primary', select_cnt: '1', insert_cnt: '2', update_cnt: '0', delete_cnt: '0', ddl_cnt: '0', other_cnt: '0', panic_cnt: '0', fatal_cnt: '0', error_cnt: '3' }]);
  assert.doesNotMatch(await text([['pool_backend_stats', stats]], '4.1.9 (karasukiboshi)'), /pgpool2_pool_backend_stats/);
  const t = await text([['pool_backend_stats', stats]], '4.2.0');
  assert.match(t, /^# TYPE pgpool2_pool_backend_stats_error_cnt counter$/m);
  assert.match(t, /^# HELP pgpool2_pool_backend_stats_fatal_cnt Fatal message counts returned from backend\)$/m, 'the exporter\'s typo, kept');
  assert.match(t, /^pgpool2_pool_backend_stats_insert_cnt\{hostname="pg-0",port="5432",role="primary"\} 2$/m);
  const m = mapSnapshot({ up: true, version: '4.3.5', results: new Map<ShowNamespace, ShowResult | Error>([['pool_cache', new Error('boom')]]) });
  assert.deepEqual(m.failed, ['pool_cache']);
  assert.doesNotMatch(await m.registry.metrics(), /pgpool2_pool_cache/);
});

test('health check averages of nan are exported as NaN (no check ran yet)', async () => {
  const cols = ['node_id', 'hostname', 'port', 'status', 'role', 'total_count', 'average_duration'];
  const t = await text([['pool_health_check_stats', result(cols, [{ node_id: '0', hostname: 'h', port: '1', status: 'up', role: 'primary', total_count: '0', average_duration: '-nan' }])]]);
  // prom-client writes NaN as `Nan`; Prometheus parses it case-insensitively.
  assert.match(t, /^pgpool2_pool_health_check_stats_average_duration\{hostname="h",port="1",role="primary"\} Nan$/m);
  assert.match(t, /^# HELP pgpool2_pool_health_check_stats_average_duration Average health check duration in Millie seconds$/m);
});

test('pool_processes and pool_pools: frontend_* and backend_* as pgpool2_exporter counts them', async () => {
  const procs = result(POOL_PROCESSES_COLUMNS, [
    { pool_pid: '10', database: 'app', username: 'alice' },
    { pool_pid: '11', database: 'app', username: 'alice' },
    { pool_pid: '12', database: 'other', username: 'bob' },
    { pool_pid: '13' },
  ]);
  const pools = result(POOL_POOLS_COLUMNS, [
    { pool_pid: '10', pool_id: '0', backend_id: '0', database: 'app', username: 'alice' },
    { pool_pid: '10', pool_id: '0', backend_id: '1', database: 'app', username: 'alice' },
    { pool_pid: '10', pool_id: '1', backend_id: '0' },
    { pool_pid: '10', pool_id: '1', backend_id: '1' },
    { pool_pid: '13', pool_id: '0', backend_id: '0' },
    { pool_pid: '13', pool_id: '0', backend_id: '1' },
  ]);
  const t = await text([['pool_processes', procs], ['pool_pools', pools]]);
  assert.match(t, /^pgpool2_frontend_total 4$/m);
  assert.match(t, /^pgpool2_frontend_used\{username="alice",database="app"\} 2$/m);
  assert.match(t, /^pgpool2_frontend_used\{username="bob",database="other"\} 1$/m);
  assert.match(t, /^pgpool2_frontend_used_ratio 0.75$/m);
  assert.match(t, /^pgpool2_backend_total 6$/m);
  assert.match(t, /^pgpool2_backend_used 2$/m);
  assert.match(t, /^pgpool2_backend_by_process_total\{pool_pid="10"\} 4$/m);
  assert.match(t, /^pgpool2_backend_by_process_used_ratio\{pool_pid="10"\} 0.5$/m);
  assert.match(t, /^pgpool2_backend_by_process_used\{pool_pid="10",pool_id="0",backend_id="1",username="alice",database="app"\} 1$/m);
  assert.doesNotMatch(t, /pool_pid="13"/, 'processes without a used backend have no per-process series');
});

test('exporter self metrics: a down Pgpool-II exports up 0, error 1 and no SHOW family', async () => {
  const self = new ExporterSelfMetrics();
  self.begin();
  const m = mapSnapshot({ up: false, results: new Map() });
  self.end(false, 0.01, false);
  const t = await Registry.merge([m.registry, self.registry]).metrics();
  assert.match(t, /^pgpool2_up 0$/m);
  assert.match(t, /^pgpool2_last_scrape_error 1$/m);
  assert.match(t, /^pgpool2_scrapes_total 1$/m);
  assert.doesNotMatch(t, /pgpool2_pool_/);
});

test('SHOW replies decode by column name; a doubled RowDescription (Pgpool-II 4.3.5) changes nothing; errors throw', () => {
  const reply = Buffer.concat([w.rowDescription(['pool_version']), w.rowDescription(['pool_version']), w.dataRow(['4.3.5 (tamahomeboshi)']), w.commandComplete('SELECT 1'), w.readyForQuery(0x49)]);
  const c = new ShowCollector();
  // Any chunking.
  for (let i = 0; i < reply.length; i += 7) c.feed(reply.subarray(i, i + 7));
  assert.equal(c.done, true);
  assert.deepEqual(c.result(), { columns: ['pool_version'], rows: [['4.3.5 (tamahomeboshi)']] });
  const err = Buffer.concat([w.errorResponse({ severity: 'ERROR', code: '42704', message: 'unrecognized configuration parameter "pool_nodes"' })]);
  assert.throws(() => decodeShowReply(err), ShowError);
});

test('status.json: nodes with lag and statement totals, the pool\'s use', () => {
  const nodes = result([...POOL_NODES_COLUMNS, 'replication_delay_bytes', 'replication_delay_seconds'], [
    { ...node(0, {}), replication_delay_bytes: '0', replication_delay_seconds: '0' },
    { ...node(1, { replication_delay: '2048' }), replication_delay_bytes: '2048', replication_delay_seconds: '' },
  ]);
  const s = statusData({ up: true, version: '4.7.0', results: new Map([['pool_nodes', nodes]]) }, 'pgrouter', 5);
  assert.equal(s.nodes.length, 2);
  assert.equal(s.nodes[1]!.lagBytes, 2048);
  assert.equal(s.nodes[1]!.lagSeconds, null);
  assert.equal(s.nodes[1]!.statements, 7, 'SELECTs when pool_backend_stats is missing');
  assert.equal(s.pool.clientsTotal, null);
});

test('DATA_SOURCE_NAME and DATA_SOURCE_USER/PASS/URI, as pgpool2_exporter reads them; the password never printed', () => {
  const a = parseDsn('postgresql://mon%40x:s3cr%2Ft@pgpool:9999/postgres?sslmode=disable');
  assert.deepEqual([a.user, a.password, a.host, a.port, a.database, a.sslmode], ['mon@x', 's3cr/t', 'pgpool', 9999, 'postgres', 'disable']);
  assert.equal(a.describe(), 'postgresql://mon%40x:MASKED_PASSWORD@pgpool:9999/postgres?sslmode=disable');
  const b = parseDsn("host=/run/pgpool port=9999 user=postgres password='it\\'s' dbname=postgres");
  assert.equal(b.host, '/run/pgpool');
  assert.equal(b.password, "it's");
  assert.ok(!b.describe().includes("it's"));
  const e = dataSourceFromEnv({ DATA_SOURCE_URI: 'localhost:9999/postgres?sslmode=disable', DATA_SOURCE_USER: 'postgres', DATA_SOURCE_PASS: 'p@ss word' });
  assert.deepEqual([e.user, e.password, e.port, e.sslmode], ['postgres', 'p@ss word', 9999, 'disable']);
  assert.equal(dataSourceFromEnv({ DATA_SOURCE_NAME: 'postgres://u:x@h:1/d', DATA_SOURCE_URI: 'other:2/e' }).host, 'h', 'DATA_SOURCE_NAME wins');
  assert.throws(() => dataSourceFromEnv({}), /DATA_SOURCE_NAME/);
  assert.throws(() => parseDsn('postgresql://u:topsecret@h:notaport/d'), (err: Error) => !err.message.includes('topsecret'));
});

test('--web.listen-address forms', () => {
  assert.deepEqual(parseListenAddress(':9719'), { host: '*', port: 9719 });
  assert.deepEqual(parseListenAddress('127.0.0.1:9100'), { host: '127.0.0.1', port: 9100 });
  assert.deepEqual(parseListenAddress('[::1]:9719'), { host: '::1', port: 9719 });
  assert.throws(() => parseListenAddress('9719'));
});
