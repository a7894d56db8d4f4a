// Pgpool-II's SHOW commands through pgrouter: exact column names and order (Pgpool-II 4.7, see
// pgpool-compat.md §1), all-text type-OID-0 columns, `SELECT n` tags, and values checked against
// the real nodes (ports, roles, streaming state, select counts, backend pids).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';
import { sql, waitForReplication, type Cluster } from '../../rig/cluster.ts';

let c: Cluster;
let p: ProxyHandle;

const COLUMNS = {
  pool_nodes: ['node_id', 'hostname', 'port', 'status', 'pg_status', 'lb_weight', 'role', 'pg_role', 'select_cnt',
    'load_balance_node', 'replication_delay', 'replication_state', 'replication_sync_state', 'last_status_change'],
  pool_backend_stats: ['node_id', 'hostname', 'port', 'status', 'role', 'select_cnt', 'insert_cnt', 'update_cnt',
    'delete_cnt', 'ddl_cnt', 'other_cnt', 'panic_cnt', 'fatal_cnt', 'error_cnt'],
  pool_health_check_stats: ['node_id', 'hostname', 'port', 'status', 'role', 'last_status_change', 'total_count',
    'success_count', 'fail_count', 'skip_count', 'retry_count', 'average_retry_count', 'max_retry_count',
    'max_duration', 'min_duration', 'average_duration', 'last_health_check', 'last_successful_health_check',
    'last_skip_health_check', 'last_failed_health_check'],
  pool_processes: ['pool_pid', 'start_time', 'client_connection_count', 'database', 'username',
    'backend_connection_time', 'pool_counter', 'status'],
  pool_pools: ['pool_pid', 'start_time', 'client_connection_count', 'pool_id', 'backend_id', 'database', 'username',
    'backend_connection_time', 'client_connection_time', 'client_disconnection_time', 'client_idle_duration',
    'majorversion', 'minorversion', 'pool_counter', 'pool_backendpid', 'pool_connected', 'status',
    'load_balance_node', 'client_host', 'client_port', 'statement'],
  pool_status: ['item', 'value', 'description'],
  pool_version: ['pool_version'],
  pool_cache: ['num_cache_hits', 'num_selects', 'cache_hit_ratio', 'num_hash_entries', 'used_hash_entries',
    'num_cache_entries', 'used_cache_entries_size', 'free_cache_entries_size', 'fragment_cache_entries_size'],
} as const;

const TIMESTAMP = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/;
const NUM_INIT_CHILDREN = 8;
const MAX_POOL = 2;

before(async () => {
  c = await getCluster();
  await sql(c, c.primary, 'DROP TABLE IF EXISTS show_t; CREATE TABLE show_t (id int); GRANT ALL ON show_t TO PUBLIC');
  await waitForReplication(c);
  p = await startProxy(c, {
    conf: {
      // Weight 0 on the primary: every balanceable read goes to the replica.
      backend_weight0: 0,
      backend_weight1: 1,
      backend_application_name1: 'replica',
      health_check_period: 1,
      health_check_user: c.users.superuser.name,
      sr_check_period: 1,
      sr_check_user: c.users.superuser.name,
      sr_check_password: c.users.superuser.password,
      num_init_children: NUM_INIT_CHILDREN,
      max_pool: MAX_POOL,
    },
  });
  // Wait for the first streaming-replication round to see the replica streaming.
  const cl = await client();
  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = await cl.query('SHOW pool_nodes');
      if (r.rows[1]?.replication_state === 'streaming' && r.rows[1]?.pg_role === 'standby') break;
      if (Date.now() > deadline) throw new Error(`replica never reported streaming: ${JSON.stringify(r.rows)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  } finally {
    await cl.end();
  }
});

after(async () => {
  await p?.stop();
});

async function client(): Promise<pg.Client> {
  const cl = new pg.Client({ connectionString: p.url(c.users.superuser.name, c.users.superuser.password) });
  cl.on('error', () => undefined); // errors also reject the pending call; an idle client must not throw
  await cl.connect();
  return cl;
}

/** Runs a SHOW, checks the wire shape (type OID 0 text columns, SELECT n) and returns its rows. */
async function show(cl: pg.Client, text: string, columns: readonly string[]): Promise<Record<string, string>[]> {
  const r = await cl.query(text);
  assert.deepEqual(r.fields.map((f) => f.name), columns, `columns of ${text}`);
  for (const f of r.fields) assert.equal(f.dataTypeID, 0, `type OID of ${f.name}`);
  assert.equal(r.command, 'SELECT');
  assert.equal(r.rowCount, r.rows.length);
  for (const row of r.rows) for (const v of Object.values(row)) assert.equal(typeof v, 'string');
  return r.rows as Record<string, string>[];
}

async function runsOn(cl: pg.Client, text: string): Promise<'primary' | 'replica'> {
  const port = Number(Object.values((await cl.query(text)).rows[0] as object)[0]);
  if (port === c.primary.port) return 'primary';
  if (port === c.replica.port) return 'replica';
  throw new Error(`unexpected port ${port}`);
}

test('SHOW pool_nodes: columns and the nodes as they are', async () => {
  const cl = await client();
  try {
    const rows = await show(cl, 'SHOW pool_nodes', COLUMNS.pool_nodes);
    assert.equal(rows.length, 2);
    const [n0, n1] = rows as [Record<string, string>, Record<string, string>];
    assert.deepEqual([n0.node_id, n0.hostname, n0.port], ['0', c.primary.host, String(c.primary.port)]);
    assert.deepEqual([n1.node_id, n1.hostname, n1.port], ['1', c.replica.host, String(c.replica.port)]);
    assert.deepEqual([n0.status, n1.status], ['up', 'up']);
    assert.deepEqual([n0.pg_status, n1.pg_status], ['up', 'up']);
    assert.deepEqual([n0.lb_weight, n1.lb_weight], ['0.000000', '1.000000']);
    assert.deepEqual([n0.role, n1.role], ['primary', 'standby']);
    assert.deepEqual([n0.pg_role, n1.pg_role], ['primary', 'standby']);
    // With weight 0 on the primary this session's load-balance node is the replica.
    assert.deepEqual([n0.load_balance_node, n1.load_balance_node], ['false', 'true']);
    assert.equal(n0.replication_delay, '0');
    assert.match(n1.replication_delay!, /^\d+$/);
    assert.deepEqual([n0.replication_state, n0.replication_sync_state], ['', '']);
    assert.equal(n1.replication_state, 'streaming');
    // Cross-check with the primary's own view of the standby.
    const [state, sync] = (await sql(c, c.primary, "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = 'replica'")).split('|');
    assert.deepEqual([n1.replication_state, n1.replication_sync_state], [state, sync]);
    assert.match(n0.last_status_change!, TIMESTAMP);
    assert.match(n1.last_status_change!, TIMESTAMP);
    // Case-insensitive, trailing semicolon.
    const again = await show(cl, '  show POOL_NODES ; ', COLUMNS.pool_nodes);
    assert.equal(again.length, 2);
  } finally {
    await cl.end();
  }
});

test('select_cnt grows on the node the read went to', async () => {
  const cl = await client();
  try {
    const before = await show(cl, 'SHOW pool_nodes', COLUMNS.pool_nodes);
    const reads = 3;
    for (let i = 0; i < reads; i++) assert.equal(await runsOn(cl, "SELECT current_setting('port')"), 'replica');
    const after = await show(cl, 'SHOW pool_nodes', COLUMNS.pool_nodes);
    assert.equal(Number(after[1]!.select_cnt) - Number(before[1]!.select_cnt), reads);
    assert.equal(after[0]!.select_cnt, before[0]!.select_cnt, 'the primary ran none of them');
    const stats = await show(cl, 'SHOW pool_backend_stats', COLUMNS.pool_backend_stats);
    assert.equal(stats[1]!.select_cnt, after[1]!.select_cnt, 'pool_backend_stats agrees with pool_nodes');
  } finally {
    await cl.end();
  }
});

test('SHOW pool_backend_stats counts statements by kind on each node', async () => {
  const cl = await client();
  try {
    const before = await show(cl, 'SHOW pool_backend_stats', COLUMNS.pool_backend_stats);
    assert.deepEqual(before.map((r) => [r.node_id, r.hostname, r.port, r.status, r.role]), [
      ['0', c.primary.host, String(c.primary.port), 'up', 'primary'],
      ['1', c.replica.host, String(c.replica.port), 'up', 'standby'],
    ]);
    await cl.query('INSERT INTO show_t VALUES (1)');
    await cl.query('UPDATE show_t SET id = 2');
    await cl.query('DELETE FROM show_t');
    await assert.rejects(cl.query('SELECT * FROM show_no_such_table FOR UPDATE'));
    const after = await show(cl, 'SHOW pool_backend_stats', COLUMNS.pool_backend_stats);
    const d = (k: string): number => Number(after[0]![k]) - Number(before[0]![k]);
    assert.deepEqual([d('insert_cnt'), d('update_cnt'), d('delete_cnt'), d('error_cnt')], [1, 1, 1, 1]);
    assert.equal(after[1]!.insert_cnt, before[1]!.insert_cnt);
  } finally {
    await cl.end();
  }
});

test('SHOW pool_health_check_stats: checks ran and passed on both nodes', async () => {
  const cl = await client();
  try {
    const rows = await show(cl, 'SHOW pool_health_check_stats', COLUMNS.pool_health_check_stats);
    assert.equal(rows.length, 2);
    for (const [i, r] of rows.entries()) {
      assert.equal(r.node_id, String(i));
      assert.equal(r.port, String(i === 0 ? c.primary.port : c.replica.port));
      assert.ok(Number(r.total_count) >= 1, `node ${i} total_count ${r.total_count}`);
      assert.equal(r.success_count, r.total_count);
      assert.deepEqual([r.fail_count, r.skip_count, r.retry_count, r.max_retry_count], ['0', '0', '0', '0']);
      assert.equal(r.average_retry_count, '0.000000');
      assert.match(r.average_duration!, /^\d+\.\d{6}$/);
      assert.ok(Number(r.max_duration) >= Number(r.min_duration));
      assert.match(r.last_health_check!, TIMESTAMP);
      assert.equal(r.last_successful_health_check, r.last_health_check);
      assert.deepEqual([r.last_skip_health_check, r.last_failed_health_check], ['', '']);
    }
  } finally {
    await cl.end();
  }
});

test('SHOW pool_processes and pool_pools describe client slots and backend connections', async () => {
  const cl = await client();
  const other = await client();
  const begun = await client();
  try {
    // A read opens this session's replica connection too.
    assert.equal(await runsOn(cl, "SELECT current_setting('port')"), 'replica');
    await other.query('BEGIN');
    await other.query('INSERT INTO show_t VALUES (7)');
    // A BEGIN with nothing after it yet: pgrouter answered it, no server has seen it.
    await begun.query('BEGIN');
    const procs = await show(cl, 'SHOW pool_processes', COLUMNS.pool_processes);
    assert.equal(procs.length, NUM_INIT_CHILDREN);
    const pid = (cl as unknown as { processID: number }).processID;
    const otherPid = (other as unknown as { processID: number }).processID;
    const mine = procs.find((r) => r.pool_pid === String(pid));
    assert.ok(mine, `a row with pool_pid ${pid}: ${JSON.stringify(procs)}`);
    assert.deepEqual([mine.database, mine.username, mine.status], [c.database, c.users.superuser.name, 'Idle']);
    assert.match(mine.start_time!, TIMESTAMP);
    assert.match(mine.backend_connection_time!, TIMESTAMP);
    assert.ok(Number(mine.pool_counter) >= 1);
    assert.ok(Number(mine.client_connection_count) >= 1);
    const theirs = procs.find((r) => r.pool_pid === String(otherPid));
    assert.equal(theirs?.status, 'Idle in transaction');
    const begunPid = (begun as unknown as { processID: number }).processID;
    assert.equal(procs.find((r) => r.pool_pid === String(begunPid))?.status, 'Idle in transaction', 'a deferred BEGIN is a transaction too');
    const free = procs.filter((r) => r.username === '');
    assert.equal(free.length, NUM_INIT_CHILDREN - 3);
    for (const r of free) assert.equal(r.status, 'Wait for connection');

    const pools = await show(cl, 'SHOW pool_pools', COLUMNS.pool_pools);
    assert.ok(pools.length >= NUM_INIT_CHILDREN * MAX_POOL * 2, `${pools.length} rows`);
    const myRows = pools.filter((r) => r.pool_pid === String(pid) && r.pool_connected === '1');
    assert.deepEqual(myRows.map((r) => [r.pool_id, r.backend_id]).sort(), [['0', '0'], ['0', '1']]);
    for (const r of myRows) {
      assert.deepEqual([r.database, r.username, r.majorversion, r.minorversion], [c.database, c.users.superuser.name, '3', '0']);
      const node = r.backend_id === '0' ? c.primary : c.replica;
      // pool_backendpid is a real backend process of that node, serving this user and database.
      assert.equal(await sql(c, node, `SELECT usename || '/' || datname FROM pg_stat_activity WHERE pid = ${Number(r.pool_backendpid)}`, { database: 'postgres' }),
        `${c.users.superuser.name}/${c.database}`);
      assert.match(r.client_connection_time!, TIMESTAMP);
      assert.match(r.client_idle_duration!, /^\d+$/);
    }
    assert.deepEqual(myRows.map((r) => [r.backend_id, r.load_balance_node]).sort(), [['0', '0'], ['1', '1']]);
  } finally {
    await other.query('ROLLBACK').catch(() => undefined);
    await other.end();
    await begun.query('ROLLBACK').catch(() => undefined);
    await begun.end();
    await cl.end();
  }
});

test('SHOW pool_status lists every setting, passwords masked', async () => {
  const cl = await client();
  try {
    const rows = await show(cl, 'SHOW pool_status', COLUMNS.pool_status);
    const byItem = new Map(rows.map((r) => [r.item!, r]));
    assert.equal(rows[0]!.item, 'backend_clustering_mode');
    assert.equal(byItem.get('port')?.value, String(p.port));
    assert.equal(byItem.get('num_init_children')?.value, String(NUM_INIT_CHILDREN));
    assert.equal(byItem.get('sr_check_password')?.value, '*****');
    assert.equal(byItem.get('health_check_password')?.value, '*****');
    assert.equal(byItem.get('backend_hostname1')?.value, c.replica.host);
    assert.equal(byItem.get('backend_port1')?.value, String(c.replica.port));
    assert.equal(byItem.get('backend_status1')?.value, 'up');
    assert.equal(byItem.get('backend_flag0')?.value, 'ALLOW_TO_FAILOVER|ALWAYS_PRIMARY');
    assert.equal(byItem.get('health_check_period0')?.value, '1s');
    for (const r of rows) assert.ok(r.description !== '', `description of ${r.item}`);
    assert.ok(!rows.some((r) => r.value === c.users.superuser.password), 'no password in clear');
    assert.ok(rows.length > 150, `${rows.length} rows`);
  } finally {
    await cl.end();
  }
});

test('SHOW pool_version and pool_cache', async () => {
  const cl = await client();
  try {
    const [v] = await show(cl, 'SHOW pool_version;', COLUMNS.pool_version);
    // pgpool2_exporter's pattern, and a 4.7 version so it reads every 4.2+ SHOW.
    assert.match(v!.pool_version!, /^((\d+)(\.\d+)(\.\d+)?) \(pgrouter \d+\.\d+\.\d+.*\)$/);
    assert.ok(v!.pool_version!.startsWith('4.7.'));
    const cache = await show(cl, 'SHOW pool_cache', COLUMNS.pool_cache);
    assert.deepEqual(Object.values(cache[0]!), ['0', '0', '0.00', '0', '0', '0', '0', '0', '0']);
  } finally {
    await cl.end();
  }
});

test('PGPOOL SHOW: one parameter, arrays, groups, ALL, unknown names', async () => {
  const cl = await client();
  try {
    assert.deepEqual(await show(cl, 'PGPOOL SHOW port', ['port']), [{ port: String(p.port) }]);
    assert.deepEqual(await show(cl, 'pgpool show HEALTH_CHECK_PERIOD;', ['health_check_period']), [{ health_check_period: '1s' }]);
    assert.deepEqual(await show(cl, 'PGPOOL SHOW backend_hostname1', ['backend_hostname1']), [{ backend_hostname1: c.replica.host }]);
    assert.deepEqual(await show(cl, 'PGPOOL SHOW sr_check_password', ['sr_check_password']), [{ sr_check_password: '*****' }]);
    assert.deepEqual(await show(cl, 'PGPOOL SHOW load_balance_mode', ['load_balance_mode']), [{ load_balance_mode: 'on' }]);
    const hosts = await show(cl, 'PGPOOL SHOW backend_hostname', COLUMNS.pool_status);
    assert.deepEqual(hosts.map((r) => [r.item, r.value]), [['backend_hostname0', c.primary.host], ['backend_hostname1', c.replica.host]]);
    const hc = await show(cl, 'PGPOOL SHOW health_check', COLUMNS.pool_status);
    const items = hc.map((r) => r.item);
    assert.ok(items.indexOf('health_check_period') < items.indexOf('health_check_period0'), 'index-free value first');
    assert.equal(hc.find((r) => r.item === 'health_check_password0')?.value, '*****');
    const all = await show(cl, 'PGPOOL SHOW ALL', COLUMNS.pool_status);
    assert.ok(all.length > 150);
    assert.equal(all.find((r) => r.item === 'sr_check_user')?.value, c.users.superuser.name);
    assert.ok(!all.some((r) => r.value === c.users.superuser.password), 'no password in clear');
    await assert.rejects(cl.query('PGPOOL SHOW no_such_param'), (e: pg.DatabaseError) => {
      assert.equal(e.code, 'XX000');
      assert.equal(e.message, 'config variable "no_such_param" not found');
      return true;
    });
    // The session goes on after the error.
    assert.equal(await runsOn(cl, "SELECT current_setting('port')"), 'replica');
  } finally {
    await cl.end();
  }
});

test('an unknown SHOW pool_xxx goes to the backend, as with Pgpool-II', async () => {
  const cl = await client();
  try {
    await assert.rejects(cl.query('SHOW pool_no_such_thing'), (e: pg.DatabaseError) => {
      assert.equal(e.code, '42704');
      return true;
    });
  } finally {
    await cl.end();
  }
});

test('replication_delay in seconds with delay_threshold_by_time', async () => {
  const q = await startProxy(c, {
    conf: {
      backend_application_name1: 'replica',
      sr_check_period: 1,
      sr_check_user: c.users.superuser.name,
      delay_threshold_by_time: 1000,
    },
  });
  const cl = new pg.Client({ connectionString: q.url(c.users.superuser.name, c.users.superuser.password) });
  cl.on('error', () => undefined); // errors also reject the pending call; an idle client must not throw
  await cl.connect();
  try {
    const rows = await show(cl, 'SHOW pool_nodes', COLUMNS.pool_nodes);
    assert.equal(rows[0]!.replication_delay, '0');
    assert.match(rows[1]!.replication_delay!, /^\d+\.\d{6} seconds?$/);
    // Health checks are off (health_check_period 0): pg_status is unknown.
    assert.deepEqual(rows.map((r) => r.pg_status), ['unknown', 'unknown']);
  } finally {
    await cl.end();
    await q.stop();
  }
});

test('PGPOOL SET / RESET: a session-settable parameter changes for that session only, with Pgpool-II\'s tags', async () => {
  const cl = await client();
  const other = await client();
  try {
    const set = await cl.query('PGPOOL SET client_idle_limit = 10');
    assert.equal(set.command, 'SET');
    assert.deepEqual(await show(cl, 'PGPOOL SHOW client_idle_limit', ['client_idle_limit']), [{ client_idle_limit: '10s' }]);
    assert.deepEqual(await show(other, 'PGPOOL SHOW client_idle_limit', ['client_idle_limit']), [{ client_idle_limit: '0' }], 'other sessions keep the configured value');
    // TO, quoted values and other spellings.
    assert.equal((await cl.query("pgpool set LOG_STATEMENT to 'on';")).command, 'SET');
    assert.deepEqual(await show(cl, 'PGPOOL SHOW log_statement', ['log_statement']), [{ log_statement: 'on' }]);
    assert.equal((await cl.query('PGPOOL SET client_min_messages TO debug')).command, 'SET');
    assert.deepEqual(await show(cl, 'PGPOOL SHOW client_min_messages', ['client_min_messages']), [{ client_min_messages: 'debug2' }]);
    // PGPOOL SHOW ALL and SHOW pool_status show the session's values too.
    const all = await show(cl, 'PGPOOL SHOW ALL', COLUMNS.pool_status);
    assert.equal(all.find((r) => r.item === 'client_idle_limit')?.value, '10s');
    const status = await show(cl, 'SHOW pool_status', COLUMNS.pool_status);
    assert.equal(status.find((r) => r.item === 'log_statement')?.value, 'on');

    const reset = await cl.query('PGPOOL RESET client_idle_limit');
    assert.equal(reset.command, 'SET', 'PGPOOL RESET <param> answers SET, as Pgpool-II');
    assert.deepEqual(await show(cl, 'PGPOOL SHOW client_idle_limit', ['client_idle_limit']), [{ client_idle_limit: '0' }]);
    assert.deepEqual(await show(cl, 'PGPOOL SHOW log_statement', ['log_statement']), [{ log_statement: 'on' }], 'only that one was reset');
    const resetAll = await cl.query('PGPOOL RESET ALL');
    assert.equal(resetAll.command, 'RESET');
    assert.deepEqual(await show(cl, 'PGPOOL SHOW log_statement', ['log_statement']), [{ log_statement: 'off' }]);
    assert.deepEqual(await show(cl, 'PGPOOL SHOW client_min_messages', ['client_min_messages']), [{ client_min_messages: 'notice' }]);
    // SET ... TO DEFAULT is a reset as well.
    await cl.query('PGPOOL SET log_statement = on');
    await cl.query('PGPOOL SET log_statement TO DEFAULT');
    assert.deepEqual(await show(cl, 'PGPOOL SHOW log_statement', ['log_statement']), [{ log_statement: 'off' }]);
  } finally {
    await other.end();
    await cl.end();
  }
});

test('PGPOOL SET: parameters that are not session-settable, unknown names and bad values are errors; the session goes on', async () => {
  const cl = await client();
  try {
    const fails = async (text: string, code: string, message: RegExp): Promise<void> => {
      await assert.rejects(cl.query(text), (e: pg.DatabaseError) => {
        assert.equal(e.code, code, text);
        assert.match(e.message, message, text);
        return true;
      });
      // Nothing changed, and the session still routes normally.
      assert.equal(await runsOn(cl, "SELECT current_setting('port')"), 'replica', `after ${text}`);
    };
    await fails('PGPOOL SET port = 10000', '55P02', /^parameter "port" cannot be changed now$/);
    await fails('PGPOOL SET statement_level_load_balance = on', '55P02', /statement_level_load_balance/);
    await fails('PGPOOL SET backend_weight1 = 3', '55P02', /backend_weight1/);
    await fails('PGPOOL RESET load_balance_mode', '55P02', /load_balance_mode/);
    await fails('PGPOOL SET no_such_param = 1', '42704', /^unrecognized configuration parameter "no_such_param"$/);
    await fails('PGPOOL RESET no_such_param', '42704', /no_such_param/);
    await fails("PGPOOL SET client_idle_limit = 'soon'", '22023', /^invalid value for parameter "client_idle_limit"/);
    await fails('PGPOOL SET client_idle_limit = -5', '22023', /client_idle_limit/);
    await fails('PGPOOL SET log_statement = maybe', '22023', /log_statement/);
    await fails('PGPOOL SET log_backend_messages = loud', '22023', /log_backend_messages/);
    await fails('PGPOOL SET client_idle_limit', '42601', /syntax error/);
    assert.deepEqual(await show(cl, 'PGPOOL SHOW client_idle_limit', ['client_idle_limit']), [{ client_idle_limit: '0' }]);
    assert.deepEqual(await show(cl, 'PGPOOL SHOW port', ['port']), [{ port: String(p.port) }]);
  } finally {
    await cl.end();
  }
});

test('PGPOOL SET takes effect: allow_sql_comments balances a commented read, notice_per_node_statement traces, client_idle_limit disconnects', async () => {
  const cl = await client();
  const other = await client();
  try {
    const commented = "/* report */ SELECT current_setting('port')";
    assert.equal(await runsOn(cl, commented), 'primary', 'a leading comment keeps the read on the primary (allow_sql_comments off)');
    await cl.query('PGPOOL SET allow_sql_comments = on');
    assert.equal(await runsOn(cl, commented), 'replica');
    assert.equal(await runsOn(other, commented), 'primary', 'not in other sessions');
    await cl.query('PGPOOL RESET allow_sql_comments');
    assert.equal(await runsOn(cl, commented), 'primary');

    const notices: string[] = [];
    cl.on('notice', (n) => notices.push(n.message ?? ''));
    await cl.query('SELECT 1');
    assert.equal(notices.length, 0);
    await cl.query('PGPOOL SET notice_per_node_statement = on');
    await cl.query("SELECT current_setting('port')");
    assert.equal(notices.length, 1, JSON.stringify(notices));
    assert.match(notices[0]!, /^pgrouter: sent to node 1 \(replica\)/);

    // client_idle_limit 1 s: this session is cut while idle, the other one (configured 0) is not.
    await cl.query('PGPOOL SET client_idle_limit = 1');
    const ended = new Promise<string>((resolve) => cl.once('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message)));
    const t0 = Date.now();
    const code = await Promise.race([ended, new Promise<string>((r) => setTimeout(() => r('still connected'), 5000))]);
    assert.equal(code, '57P05', 'idle-session timeout');
    const idleFor = Date.now() - t0;
    assert.ok(idleFor >= 900 && idleFor < 3500, `cut after ${idleFor} ms`);
    assert.equal(await runsOn(other, "SELECT current_setting('port')"), 'replica', 'the other session lives');
  } finally {
    await other.end();
    await cl.end().catch(() => undefined);
  }
});

test('pool_nodes pg_role is each node\'s own pg_is_in_recovery() answer, even where pgrouter\'s belief (role) differs', async () => {
  // ALWAYS_PRIMARY on the replica: pgrouter believes node 1 is the primary; pg_role must still
  // tell what the servers answer.
  const q = await startProxy(c, {
    conf: {
      backend_flag0: 'ALLOW_TO_FAILOVER',
      backend_flag1: 'ALWAYS_PRIMARY',
      health_check_period: 1,
      health_check_user: c.users.superuser.name,
      sr_check_period: 1,
      sr_check_user: c.users.superuser.name,
    },
  });
  const cl = new pg.Client({ connectionString: q.url(c.users.superuser.name, c.users.superuser.password) });
  cl.on('error', () => undefined);
  try {
    await cl.connect();
    const real = await Promise.all([c.primary, c.replica].map((n) => sql(c, n, 'SELECT pg_is_in_recovery()', { database: 'postgres' })));
    assert.deepEqual(real, ['f', 't']);
    let rows: Record<string, string>[] = [];
    const deadline = Date.now() + 5000;
    do {
      rows = await show(cl, 'SHOW pool_nodes', COLUMNS.pool_nodes);
      if (rows.every((r) => r.pg_role !== 'unknown')) break;
      await new Promise((r) => setTimeout(r, 100));
    } while (Date.now() < deadline);
    assert.deepEqual(rows.map((r) => r.role), ['standby', 'primary'], 'pgrouter\'s belief (ALWAYS_PRIMARY)');
    assert.deepEqual(rows.map((r) => r.pg_role), real.map((v) => (v === 'f' ? 'primary' : 'standby')), 'the servers\' answer');
    assert.deepEqual(rows.map((r) => r.pg_status), ['up', 'up']);
  } finally {
    await cl.end().catch(() => undefined);
    await q.stop();
  }
});
