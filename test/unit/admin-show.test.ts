// Unit tests of pgrouter's SHOW / PGPOOL SHOW replies, decoded from the bytes the dispatcher
// sends: command matching, column lists, row values from a cluster view, counters and health
// statistics, settings formatting and password masking, errors, and the client slot table.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Admin } from '../../src/admin/admin.ts';
import { fixed6, minutesSeconds, timestamp } from '../../src/admin/format.ts';
import { SlotTable } from '../../src/admin/slots.ts';
import type { AdminSession, AdminSources } from '../../src/admin/sources.ts';
import { loadConfig, type Config } from '../../src/config/load.ts';
import { HealthStats } from '../../src/health/health-stats.ts';
import { ClusterView, UNKNOWN_LAG, type ClusterNode } from '../../src/pool/cluster.ts';
import { NodeStats } from '../../src/pool/node-stats.ts';
import type { ConnectionInfo } from '../../src/pool/pool.ts';
import { Framer } from '../../src/protocol/framer.ts';
import { decodeErrorFields } from '../../src/protocol/error-response.ts';
import { TxStatus } from '../../src/protocol/codes.ts';

interface Decoded {
  columns: { name: string; typeOid: number }[];
  rows: string[][];
  tag: string;
  error?: { code: string; message: string; severity: string };
}

/** Decodes a reply: RowDescription, DataRows, CommandComplete, or an ErrorResponse. */
function decode(buf: Buffer): Decoded {
  const out: Decoded = { columns: [], rows: [], tag: '' };
  new Framer(() => 0x3fffffff).feed(buf, (type, b, start, end) => {
    if (type === 0x54) {
      const n = b.readInt16BE(start + 5);
      let at = start + 7;
      for (let i = 0; i < n; i++) {
        const stop = b.indexOf(0, at);
        const name = b.toString('utf8', at, stop);
        at = stop + 1;
        assert.equal(b.readInt16BE(at + 4), i, 'attnum is the column index');
        out.columns.push({ name, typeOid: b.readInt32BE(at + 6) });
        at += 18;
      }
    } else if (type === 0x44) {
      const n = b.readInt16BE(start + 5);
      const row: string[] = [];
      let at = start + 7;
      for (let i = 0; i < n; i++) {
        const len = b.readInt32BE(at);
        assert.ok(len >= 0, 'no NULLs: empty strings');
        row.push(b.toString('utf8', at + 4, at + 4 + len));
        at += 4 + len;
      }
      out.rows.push(row);
    } else if (type === 0x43) out.tag = b.toString('utf8', start + 5, end - 1);
    else if (type === 0x45) out.error = decodeErrorFields(b, start, end);
    else assert.fail(`unexpected message type ${type}`);
  });
  return out;
}

function node(id: number, patch: Partial<ClusterNode> = {}): ClusterNode {
  return {
    id,
    host: `db${id}.example`,
    port: 5432 + id,
    unix: false,
    weight: 1,
    alwaysPrimary: false,
    disallowToFailover: false,
    applicationName: `app${id}`,
    status: 'up',
    lag: UNKNOWN_LAG,
    lastStatusChange: new Date(2026, 0, 2, 3, 4, 5),
    ...patch,
  };
}

function config(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    env: {},
    overrides: {
      backend_hostname0: 'db0.example',
      backend_port0: '5432',
      backend_hostname1: 'db1.example',
      backend_port1: '5433',
      backend_weight1: '3',
      backend_flag1: 'DISALLOW_TO_FAILOVER',
      health_check_period: '10',
      health_check_period1: '5s',
      health_check_user: 'hc',
      health_check_password: 'hc-secret',
      sr_check_password: 'sr-secret',
      num_init_children: '4',
      max_pool: '2',
      ...overrides,
    },
  });
}

interface Fixture {
  src: AdminSources;
  admin: Admin;
  sessions: Set<AdminSession>;
  conns: ConnectionInfo[];
  health: Map<number, HealthStats>;
  stats: NodeStats;
  setView(v: ClusterView): void;
}

function fixture(cfg = config(), view = new ClusterView([node(0), node(1, { weight: 3 })], 0)): Fixture {
  const sessions = new Set<AdminSession>();
  const conns: ConnectionInfo[] = [];
  const health = new Map<number, HealthStats>([[0, new HealthStats()], [1, new HealthStats()]]);
  const stats = new NodeStats();
  let current = view;
  const src: AdminSources = {
    config: () => cfg,
    cluster: () => current,
    stats,
    health: {
      healthStats: (id) => health.get(id),
      pgStatus: (id) => (health.get(id)?.lastResult === null ? 'unknown' : health.get(id)?.lastResult ? 'up' : 'down'),
      pgRole: (id) => (id === 0 ? 'primary' : 'standby'),
    },
    sessions: () => sessions,
    connections: () => conns,
    startedAt: new Date(2026, 0, 1, 0, 0, 0),
  };
  return { src, admin: new Admin(src), sessions, conns, health, stats, setView: (v) => (current = v) };
}

const ME = { user: 'alice', database: 'app', loadBalanceNode: 1 };

function run(f: Fixture, sql: string): Decoded {
  const reply = f.admin.handle(sql, ME);
  assert.ok(reply, `${sql} is answered`);
  return decode(reply);
}

function asObjects(d: Decoded): Record<string, string>[] {
  return d.rows.map((r) => Object.fromEntries(d.columns.map((c, i) => [c.name, r[i]!])));
}

test('command matching: case, spaces, semicolon; unknown SHOW pool_xxx and other SQL are not answered', () => {
  const f = fixture();
  for (const sql of ['SHOW pool_version', 'show POOL_VERSION;', '  Show   pool_version  ;  ', 'SHOW pool_version\n'])
    assert.equal(run(f, sql).rows[0]?.[0]?.startsWith('4.7.0 (pgrouter '), true, sql);
  for (const sql of ['SHOW pool_nosuch', 'SHOW pool_version extra', 'SHOW port', 'SELECT 1', 'PGPOOL FOO'])
    assert.equal(f.admin.handle(sql, ME), undefined, sql);
});

test('every result set: type OID 0 columns, SELECT n, columns in Pgpool-II 4.7 order', () => {
  const f = fixture();
  const expect: Record<string, number> = {
    pool_nodes: 14, pool_backend_stats: 14, pool_health_check_stats: 20, pool_processes: 8, pool_pools: 21,
    pool_status: 3, pool_version: 1, pool_cache: 9,
  };
  for (const [name, n] of Object.entries(expect)) {
    const d = run(f, `SHOW ${name}`);
    assert.equal(d.columns.length, n, name);
    for (const c of d.columns) assert.equal(c.typeOid, 0, `${name}.${c.name}`);
    assert.equal(d.tag, `SELECT ${d.rows.length}`, name);
    for (const r of d.rows) assert.equal(r.length, n);
  }
  assert.deepEqual(run(f, 'SHOW pool_nodes').columns.map((c) => c.name), [
    'node_id', 'hostname', 'port', 'status', 'pg_status', 'lb_weight', 'role', 'pg_role', 'select_cnt',
    'load_balance_node', 'replication_delay', 'replication_state', 'replication_sync_state', 'last_status_change',
  ]);
});

test('SHOW pool_nodes values: weights, roles, this session\'s load-balance node, lag, status changes', () => {
  const f = fixture();
  f.setView(new ClusterView([
    node(0),
    node(1, { weight: 3, status: 'down', lag: { bytes: 4096, seconds: 0.25, state: 'streaming', syncState: 'async' } }),
  ], 0));
  f.stats.statement(1, 'select');
  f.stats.statement(1, 'select');
  f.health.get(0)!.record(true, 0, 3, new Date());
  f.health.get(1)!.record(false, 0, 3, new Date());
  const [n0, n1] = asObjects(run(f, 'SHOW pool_nodes'));
  assert.deepEqual(n0, {
    node_id: '0', hostname: 'db0.example', port: '5432', status: 'up', pg_status: 'up', lb_weight: '0.250000',
    role: 'primary', pg_role: 'primary', select_cnt: '0', load_balance_node: 'false', replication_delay: '0',
    replication_state: '', replication_sync_state: '', last_status_change: '2026-01-02 03:04:05',
  });
  assert.deepEqual([n1!.status, n1!.pg_status, n1!.lb_weight, n1!.role, n1!.select_cnt, n1!.load_balance_node],
    ['down', 'down', '0.750000', 'standby', '2', 'true']);
  assert.deepEqual([n1!.replication_delay, n1!.replication_state, n1!.replication_sync_state], ['4096', 'streaming', 'async']);
  // No primary known: every node is a standby.
  f.setView(new ClusterView([node(0), node(1)], -1));
  assert.deepEqual(asObjects(run(f, 'SHOW pool_nodes')).map((r) => r.role), ['standby', 'standby']);
});

test('replication_delay in seconds when delay_threshold_by_time is set', () => {
  const f = fixture(config({ delay_threshold_by_time: '100' }));
  f.setView(new ClusterView([node(0), node(1, { lag: { bytes: 10, seconds: 0.000568, state: '', syncState: '' } }), node(2, { lag: { bytes: 1, seconds: 3.5, state: '', syncState: '' } })], 0));
  assert.deepEqual(asObjects(run(f, 'SHOW pool_nodes')).map((r) => r.replication_delay), ['0', '0.000568 second', '3.500000 seconds']);
});

test('SHOW pool_backend_stats and pool_health_check_stats', () => {
  const f = fixture();
  f.stats.statement(0, 'insert');
  f.stats.statement(0, 'ddl');
  f.stats.serverError(0, 'ERROR');
  f.stats.serverError(0, 'FATAL');
  const [b0] = asObjects(run(f, 'SHOW pool_backend_stats'));
  assert.deepEqual(b0, {
    node_id: '0', hostname: 'db0.example', port: '5432', status: 'up', role: 'primary', select_cnt: '0', insert_cnt: '1',
    update_cnt: '0', delete_cnt: '0', ddl_cnt: '1', other_cnt: '0', panic_cnt: '0', fatal_cnt: '1', error_cnt: '1',
  });
  const at = new Date(2026, 4, 6, 7, 8, 9);
  const h = f.health.get(1)!;
  h.record(true, 0, 10, at);
  h.record(false, 2, 30, at);
  h.record(true, 1, 20, at);
  const [h0, h1] = asObjects(run(f, 'SHOW pool_health_check_stats'));
  assert.deepEqual([h0!.total_count, h0!.average_duration, h0!.last_health_check], ['0', '0.000000', '']);
  assert.deepEqual(h1, {
    node_id: '1', hostname: 'db1.example', port: '5433', status: 'up', role: 'standby', last_status_change: '2026-01-02 03:04:05',
    total_count: '3', success_count: '2', fail_count: '1', skip_count: '0', retry_count: '3', average_retry_count: '1.000000',
    max_retry_count: '2', max_duration: '30', min_duration: '10', average_duration: '20.000000',
    last_health_check: '2026-05-06 07:08:09', last_successful_health_check: '2026-05-06 07:08:09', last_skip_health_check: '',
    last_failed_health_check: '2026-05-06 07:08:09',
  });
});

test('SHOW pool_processes / pool_pools: slots, held and cached connections', () => {
  const f = fixture();
  const s = { pid: 4242, user: 'alice', database: 'app', startedAt: Date.now() - 5000, lastActivity: Date.now() - 3000 };
  f.sessions.add(s);
  f.sessions.add({ pid: 0, user: 'bob', database: 'app', startedAt: Date.now(), lastActivity: Date.now() }); // still authenticating
  const conn = (id: number, nodeId: number, holder: unknown, patch: Partial<ConnectionInfo> = {}): ConnectionInfo => ({
    id, nodeId, user: 'alice', database: 'app', pid: 1000 + id, leases: 2, createdAt: Date.now() - 60_000, lastUsedAt: Date.now(),
    state: holder ? 'leased' : 'idle', txStatus: TxStatus.Idle, busy: false, holder, ...patch,
  });
  f.conns.push(conn(1, 0, s, { txStatus: TxStatus.InTransaction }), conn(2, 1, s), conn(3, 0, null, { user: 'carol' }));
  const procs = asObjects(run(f, 'SHOW pool_processes'));
  assert.equal(procs.length, 4, 'num_init_children rows');
  assert.deepEqual([procs[0]!.pool_pid, procs[0]!.username, procs[0]!.database, procs[0]!.pool_counter, procs[0]!.status, procs[0]!.client_connection_count],
    ['4242', 'alice', 'app', '2', 'Idle in transaction', '1']);
  for (const r of procs.slice(1)) assert.deepEqual([r.pool_pid, r.username, r.status], [String(process.pid), '', 'Wait for connection']);

  const pools = asObjects(run(f, 'SHOW pool_pools'));
  assert.equal(pools.length, 4 * 2 * 2, 'num_init_children × max_pool × backends');
  const mine = pools.filter((r) => r.pool_pid === '4242' && r.pool_connected === '1');
  assert.deepEqual(mine.map((r) => [r.pool_id, r.backend_id, r.pool_backendpid, r.load_balance_node]), [['0', '0', '1001', '0'], ['0', '1', '1002', '1']]);
  assert.match(mine[0]!.client_idle_duration!, /^[34]$/);
  const cached = pools.filter((r) => r.username === 'carol');
  assert.equal(cached.length, 1);
  assert.deepEqual([cached[0]!.pool_connected, cached[0]!.backend_id, cached[0]!.status, cached[0]!.majorversion], ['0', '0', 'Wait for connection', '3']);
  assert.notEqual(cached[0]!.pool_pid, '4242', 'an idle connection sits in a free slot');
  const empty = pools.find((r) => r.username === '')!;
  assert.deepEqual([empty.pool_backendpid, empty.pool_counter, empty.majorversion, empty.backend_connection_time], ['0', '0', '0', '']);

  // The session leaves: its slot is free and remembers it.
  f.sessions.delete(s);
  f.admin.sessionEnded(s);
  const after = asObjects(run(f, 'SHOW pool_processes'));
  assert.deepEqual([after[0]!.username, after[0]!.client_connection_count, after[0]!.pool_pid], ['', '1', String(process.pid)]);
});

test('client_idle_duration counts down to client_idle_limit', () => {
  const f = fixture(config({ client_idle_limit: '70' }));
  const s = { pid: 7, user: 'a', database: 'd', startedAt: Date.now(), lastActivity: Date.now() - 10_500 };
  f.sessions.add(s);
  const row = asObjects(run(f, 'SHOW pool_pools')).find((r) => r.pool_pid === '7')!;
  assert.equal(row.client_idle_duration, '10 (1:00 before client disconnected)');
});

test('SHOW pool_status: every setting, then per-backend rows; passwords masked', () => {
  const f = fixture();
  const rows = asObjects(run(f, 'SHOW pool_status'));
  const byItem = new Map(rows.map((r) => [r.item, r.value]));
  assert.equal(rows[0]!.item, 'backend_clustering_mode');
  assert.equal(byItem.get('health_check_password'), '*****');
  assert.equal(byItem.get('sr_check_password'), '*****');
  assert.equal(byItem.get('health_check_password1'), '*****');
  assert.ok(!rows.some((r) => /secret/.test(r.value!)), 'no password in clear');
  assert.equal(byItem.get('health_check_period'), '10s');
  assert.equal(byItem.get('health_check_period1'), '5s');
  assert.equal(byItem.get('backend_flag1'), 'DISALLOW_TO_FAILOVER');
  assert.equal(byItem.get('backend_weight1'), '3');
  assert.equal(byItem.get('backend_status1'), 'up');
  assert.equal(byItem.get('standby_delay1'), '0');
  const items = rows.map((r) => r.item);
  assert.ok(items.indexOf('backend_hostname0') > items.indexOf('drain_timeout'), 'per-backend rows trail');
  assert.ok(items.indexOf('backend_hostname0') < items.indexOf('backend_hostname1'));
  for (const r of rows) assert.notEqual(r.description, '', r.item);
});

test('PGPOOL SHOW: one value, arrays, groups, ALL, unknown', () => {
  const f = fixture();
  assert.deepEqual(run(f, 'PGPOOL SHOW health_check_period'), { columns: [{ name: 'health_check_period', typeOid: 0 }], rows: [['10s']], tag: 'SELECT 1' });
  assert.deepEqual(run(f, 'pgpool show Health_Check_Period1;').rows, [['5s']]);
  assert.deepEqual(run(f, 'PGPOOL SHOW health_check_password').rows, [['*****']]);
  assert.deepEqual(run(f, 'PGPOOL SHOW load_balance_mode').rows, [['on']]);
  assert.deepEqual(run(f, 'PGPOOL SHOW num_init_children').rows, [['4']]);
  assert.deepEqual(run(f, 'PGPOOL SHOW connect_timeout').rows, [['10s']]);
  // An old name answers for the new one.
  assert.deepEqual(run(f, 'PGPOOL SHOW fail_over_on_backend_error').columns.map((c) => c.name), ['failover_on_backend_error']);
  const hosts = run(f, 'PGPOOL SHOW backend_hostname');
  assert.deepEqual(hosts.columns.map((c) => c.name), ['item', 'value', 'description']);
  assert.deepEqual(hosts.rows.map((r) => r.slice(0, 2)), [['backend_hostname0', 'db0.example'], ['backend_hostname1', 'db1.example']]);
  const group = run(f, 'PGPOOL SHOW health_check').rows.map((r) => r[0]);
  assert.deepEqual(group.slice(0, 3), ['health_check_period', 'health_check_period0', 'health_check_period1']);
  assert.ok(run(f, 'PGPOOL SHOW backend').rows.every((r) => r[0]!.startsWith('backend_')));
  assert.ok(run(f, 'PGPOOL SHOW watchdog').rows.some((r) => r[0] === 'use_watchdog'));
  assert.ok(run(f, 'PGPOOL SHOW heartbeat').rows.every((r) => r[0]!.includes('heartbeat')));
  const all = run(f, 'PGPOOL SHOW ALL').rows;
  assert.ok(all.length > 150);
  assert.ok(all.some((r) => r[0] === 'wd_lifecheck_password' && r[1] === '*****'));
  assert.ok(!all.some((r) => /secret/.test(r[1]!)));
  const err = run(f, 'PGPOOL SHOW nope');
  assert.deepEqual(err.error, { severity: 'ERROR', code: 'XX000', message: 'config variable "nope" not found' });
  assert.equal(run(f, 'PGPOOL SET client_idle_limit = 10').error?.code, '0A000');
});

test('slot table: lowest free slot, counts, sessions that came and went between SHOWs', () => {
  const t = new SlotTable(() => 3);
  const a = { pid: 1, user: 'a', database: 'd', startedAt: 0, lastActivity: 0 };
  const b = { pid: 2, user: 'b', database: 'd', startedAt: 0, lastActivity: 0 };
  const c = { pid: 3, user: 'c', database: 'd', startedAt: 0, lastActivity: 0 };
  let slots = t.sync([a, b]);
  assert.deepEqual(slots.map((s) => s.session?.pid ?? null), [1, 2, null]);
  t.ended(a);
  t.ended(c); // never seen by a SHOW: still counted on the lowest free slot
  slots = t.sync([b]);
  assert.deepEqual(slots.map((s) => [s.session?.pid ?? null, s.served]), [[null, 2], [2, 1], [null, 0]]);
  assert.ok(slots[0]!.lastDisconnect instanceof Date);
  slots = t.sync([b, c, a, { ...a, pid: 9 }]);
  assert.equal(slots.length, 4, 'grows past num_init_children rather than drop a session');
  t.ended({ pid: 0, user: '', database: '', startedAt: 0, lastActivity: 0 }); // never ready: ignored
});

test('formats: %F %T, %f, M:SS', () => {
  assert.equal(timestamp(new Date(2026, 11, 1, 9, 5, 7)), '2026-12-01 09:05:07');
  assert.equal(timestamp(null), '');
  assert.equal(fixed6(0.5), '0.500000');
  assert.equal(minutesSeconds(125), '2:05');
  assert.equal(minutesSeconds(-3), '0:00');
});
