// Health checks, replication lag and primary discovery against real servers: a replica that stops
// and comes back, a replica whose replay is paused, a promotion (with two primaries for a while)
// on a cluster of this test's own, and a backend whose host name does not resolve.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';
import { serverUser } from '../../rig/system.ts';
import {
  sql, startCluster, startNode, stopCluster, stopNode, waitForReplication, waitForStreaming, type Cluster,
} from '../../rig/cluster.ts';

let c: Cluster;
const proxies: ProxyHandle[] = [];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

before(async () => {
  c = await getCluster();
});

after(async () => {
  for (const p of proxies) await p.stop();
});

/** Checks every second as the rig superuser; the primary has weight 0, so reads go to the replica. */
function checkConf(cl: Cluster): Record<string, string | number> {
  return {
    backend_weight0: 0,
    backend_weight1: 1,
    backend_application_name1: 'replica',
    health_check_period: 1,
    health_check_timeout: 5,
    health_check_user: cl.users.superuser.name,
    health_check_max_retries: 0,
    sr_check_period: 1,
    sr_check_user: cl.users.superuser.name,
    connect_timeout: 2000,
  };
}

async function proxy(cl: Cluster, conf: Record<string, string | number> = {}): Promise<ProxyHandle> {
  const p = await startProxy(cl, { conf: { ...checkConf(cl), ...conf } });
  proxies.push(p);
  return p;
}

async function connect(p: ProxyHandle, cl: Cluster): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: p.url(cl.users.superuser.name, cl.users.superuser.password) });
  client.on('error', () => undefined); // errors also reject the pending call; an idle client must not throw
  await client.connect();
  return client;
}

/** One short session: runs `text` and returns its first value. */
async function once(p: ProxyHandle, cl: Cluster, text: string): Promise<string> {
  const client = await connect(p, cl);
  try {
    return String(Object.values((await client.query(text)).rows[0] as object)[0]);
  } finally {
    await client.end();
  }
}

async function nodes(p: ProxyHandle, cl: Cluster): Promise<Record<string, string>[]> {
  const client = await connect(p, cl);
  try {
    return (await client.query('SHOW pool_nodes')).rows as Record<string, string>[];
  } finally {
    await client.end();
  }
}

/** Polls SHOW pool_nodes until `ok` holds; resolves with the milliseconds it took. */
async function until(p: ProxyHandle, cl: Cluster, ok: (rows: Record<string, string>[]) => boolean, timeoutMs: number, what: string): Promise<number> {
  const t0 = Date.now();
  let last: Record<string, string>[] = [];
  for (;;) {
    try {
      last = await nodes(p, cl);
      if (ok(last)) return Date.now() - t0;
    } catch {
      // no primary for a moment: sessions are refused, try again
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what} not seen within ${timeoutMs} ms: ${JSON.stringify(last)}`);
    await sleep(50);
  }
}

const PORT = "SELECT current_setting('port')";

test('a stopped replica is marked down within a health check period, reads go to the primary; it comes back by itself', async () => {
  const p = await proxy(c);
  assert.equal(await once(p, c, PORT), String(c.replica.port));
  let stopped = false;
  try {
    await stopNode(c, c.replica, 'immediate');
    stopped = true;
    const down = await until(p, c, (r) => r[1]?.status === 'down', 4000, 'replica down');
    console.log(`# replica marked down ${down} ms after it stopped (health_check_period 1 s)`);
    assert.ok(down <= 2500, `down after ${down} ms`);
    // New sessions read from the primary, without an error.
    for (let i = 0; i < 10; i++) assert.equal(await once(p, c, PORT), String(c.primary.port));
    const [n0, n1] = await nodes(p, c);
    assert.deepEqual([n0!.status, n1!.status, n1!.pg_status, n1!.load_balance_node], ['up', 'down', 'down', 'false']);

    const t0 = Date.now();
    await startNode(c, c.replica);
    stopped = false;
    const up = await until(p, c, (r) => r[1]?.status === 'up', 5000, 'replica up');
    console.log(`# replica marked up ${up} ms after pg_ctl start returned (${Date.now() - t0} ms incl. polling)`);
    await waitForStreaming(c);
    assert.equal(await once(p, c, PORT), String(c.replica.port), 'reads go to the replica again');
    const client = await connect(p, c);
    try {
      const h = (await client.query('SHOW pool_health_check_stats')).rows as Record<string, string>[];
      assert.ok(Number(h[1]!.fail_count) >= 1);
      assert.match(h[1]!.last_failed_health_check!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
      assert.ok(Number(h[1]!.success_count) >= 2);
    } finally {
      await client.end();
    }
    assert.ok(p.logs.some((l) => /health check failed on node 1: node is down/.test(l)));
    assert.ok(p.logs.some((l) => /health check passed on node 1: node is up again/.test(l)));
  } finally {
    if (stopped) await startNode(c, c.replica);
    await waitForStreaming(c);
  }
});

test('a session open across a replica restart (fast shutdown) reads from the primary meanwhile, and from the replica again once it is back', async () => {
  const p = await proxy(c);
  const client = new pg.Client({ connectionString: p.url(c.users.superuser.name, c.users.superuser.password) });
  const errors: Error[] = [];
  client.on('error', (e) => errors.push(e));
  await client.connect();
  // A named statement: parsed once, then only bound, on whichever connection it was parsed on.
  const port = async (): Promise<number> =>
    (await client.query<{ p: number }>({ name: 'where_am_i', text: 'SELECT inet_server_port() AS p' })).rows[0]!.p;
  let stopped = false;
  try {
    assert.equal(await port(), c.replica.port);
    await stopNode(c, c.replica, 'fast'); // its backends send FATAL 57P01, then close
    stopped = true;
    await p.waitForLog(/backend connection closed during the session/, 5000);
    assert.equal(await port(), c.primary.port, 'while the replica is down, the read goes to the primary');
    await until(p, c, (r) => r[1]?.status === 'down', 5000, 'replica down');
    await startNode(c, c.replica);
    stopped = false;
    await until(p, c, (r) => r[1]?.status === 'up', 10_000, 'replica up');
    await waitForStreaming(c);
    assert.equal(await port(), c.replica.port, 'the same session reads from the replica again, its statement parsed there anew');
    assert.deepEqual(errors, [], 'the session saw no error');
  } finally {
    await client.end().catch(() => undefined);
    if (stopped) await startNode(c, c.replica);
    await waitForStreaming(c);
  }
});

test('DISALLOW_TO_FAILOVER keeps a failing node up and says so', async () => {
  const p = await proxy(c, { backend_flag1: 'DISALLOW_TO_FAILOVER' });
  let stopped = false;
  try {
    await stopNode(c, c.replica, 'immediate');
    stopped = true;
    await p.waitForLog(/health check failed on node 1 but failover is disallowed for the node/, 5000);
    const [, n1] = await nodes(p, c);
    assert.equal(n1!.status, 'up');
  } finally {
    if (stopped) await startNode(c, c.replica);
    await waitForStreaming(c);
  }
});

test('replication lag: paused replay shows up as byte delay past delay_threshold, and goes away', async () => {
  await sql(c, c.primary, 'DROP TABLE IF EXISTS lag_t; CREATE TABLE lag_t (id int, pad text)');
  await waitForReplication(c);
  const threshold = 64 * 1024;
  const p = await proxy(c, { delay_threshold: threshold });
  await until(p, c, (r) => r[1]?.replication_state === 'streaming', 5000, 'streaming');
  let paused = false;
  try {
    await sql(c, c.replica, 'SELECT pg_wal_replay_pause()');
    paused = true;
    const writer = await connect(p, c);
    let took = 0;
    try {
      const t0 = Date.now();
      for (;;) {
        await writer.query("INSERT INTO lag_t SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g");
        const r = await nodes(p, c);
        if (Number(r[1]!.replication_delay) > threshold) break;
        if (Date.now() - t0 > 10_000) throw new Error(`lag never passed ${threshold}: ${JSON.stringify(r)}`);
        await sleep(100);
      }
      took = Date.now() - t0;
    } finally {
      await writer.end();
    }
    const [n0, n1] = await nodes(p, c);
    const reported = Number(n1!.replication_delay);
    // What the servers say now (replay is paused, the primary only moves on): at least as much.
    const replay = await sql(c, c.replica, 'SELECT pg_last_wal_replay_lsn()', { database: 'postgres' });
    const actual = Number(await sql(c, c.primary, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '${replay}')`, { database: 'postgres' }));
    console.log(`# byte lag ${reported} reported (${actual} on the servers) ${took} ms after writes began`);
    assert.equal(n0!.replication_delay, '0');
    assert.ok(reported > threshold && reported <= actual, `reported ${reported}, actual ${actual}`);

    await sql(c, c.replica, 'SELECT pg_wal_replay_resume()');
    paused = false;
    const back = await until(p, c, (r) => Number(r[1]!.replication_delay) < threshold, 5000, 'lag gone');
    console.log(`# lag back under delay_threshold ${back} ms after pg_wal_replay_resume()`);
  } finally {
    if (paused) await sql(c, c.replica, 'SELECT pg_wal_replay_resume()');
    await sql(c, c.primary, 'DROP TABLE IF EXISTS lag_t');
  }
});

test('a backend whose host name does not resolve is marked down; sessions work', async () => {
  // No configured retries: failed lookups still get two more tries a second apart, so the first
  // failed lookup does not mark the node down (Pgpool-II's pain on Kubernetes).
  const p = await proxy(c, { backend_hostname1: 'no-such-host.invalid', health_check_max_retries: 0, health_check_retry_delay: 1 });
  const t0 = Date.now();
  await sleep(500);
  assert.equal((await nodes(p, c))[1]!.status, 'up', 'still up while retries remain');
  await until(p, c, (r) => r[1]?.status === 'down', 8000, 'unresolvable node down');
  const down = Date.now() - t0;
  assert.ok(down >= 1500, `down after ${down} ms: the lookup retries must come first`);
  console.log(`# unresolvable node down ${down} ms after start (2 lookup retries, 1 s apart)`);
  // Attempts at start, +1 s, +2 s: the proxy started (and checked once) a little before t0.
  assert.ok(down >= 1000, `down after ${down} ms, before the retries were spent`);
  for (let i = 0; i < 5; i++) assert.equal(await once(p, c, PORT), String(c.primary.port));
  const client = await connect(p, c);
  try {
    const [, h] = (await client.query('SHOW pool_health_check_stats')).rows as Record<string, string>[];
    assert.equal(h!.hostname, 'no-such-host.invalid');
    assert.ok(Number(h!.fail_count) >= 1);
    assert.equal(h!.max_retry_count, '2');
  } finally {
    await client.end();
  }
  assert.ok(p.logs.some((l) => /could not translate host name \\"no-such-host.invalid\\"/.test(l)), 'the log names the lookup failure');
});

/** `pg_ctl promote -w` on a node, as the server user (the way rig/cluster.ts runs pg_ctl). */
function promote(cl: Cluster, dataDir: string): Promise<void> {
  const user = serverUser();
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(cl.binDir, 'pg_ctl'), ['promote', '-w', '-t', '30', '-D', dataDir], {
      cwd: cl.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`pg_ctl promote exited ${code}: ${err}`))));
  });
}

test('promotion: new sessions write to the promoted replica; two primaries means no writes anywhere', async () => {
  const own = await startCluster();
  try {
    // No ALWAYS_PRIMARY: the primary is whichever node says it is not in recovery.
    const p = await proxy(own, { backend_flag0: 'ALLOW_TO_FAILOVER', backend_weight0: 1 });
    await sql(own, own.primary, 'CREATE TABLE acked (id int primary key, port int); GRANT ALL ON acked TO PUBLIC');
    const rows0 = await nodes(p, own);
    assert.deepEqual(rows0.map((r) => r.role), ['primary', 'standby']);

    // A client loop writing through pgrouter throughout, one new session per write.
    const acked: Array<{ id: number; port: number; at: number }> = [];
    let writing = true;
    let nextId = 1;
    const loop = (async () => {
      while (writing) {
        const id = nextId++;
        try {
          const port = Number(await once(p, own, `INSERT INTO acked VALUES (${id}, current_setting('port')::int) RETURNING port`));
          acked.push({ id, port, at: Date.now() });
        } catch {
          await sleep(50);
        }
      }
    })();
    await sleep(500);
    await stopNode(own, own.primary, 'fast');
    const t0 = Date.now();
    await promote(own, own.replica.dataDir);
    const promoted = Date.now();
    const followed = await until(p, own, (r) => r[1]?.role === 'primary' && r[0]?.status === 'down', 5000, 'node 1 primary');
    // Writes landing on the new primary.
    const deadline = Date.now() + 5000;
    while (!acked.some((a) => a.port === own.replica.port) && Date.now() < deadline) await sleep(50);
    const firstNew = acked.find((a) => a.port === own.replica.port);
    assert.ok(firstNew, 'a write reached the promoted replica');
    console.log(`# promotion: pg_ctl promote took ${promoted - t0} ms; pgrouter saw node 1 as primary ${followed} ms later; first write on it ${firstNew.at - promoted} ms after promote`);
    assert.ok(firstNew.at - promoted < 4000, 'within a few check periods');
    await sleep(300);
    writing = false;
    await loop;
    // Every acknowledged write is on the new primary.
    const present = new Set((await sql(own, own.replica, 'SELECT id FROM acked')).split('\n').filter(Boolean).map(Number));
    const missing = acked.filter((a) => !present.has(a.id));
    assert.deepEqual(missing, [], `${acked.length} acknowledged writes, missing on the new primary`);
    assert.ok(acked.some((a) => a.port === own.primary.port), 'some writes went to the old primary before');

    // The old primary comes back as a primary too: nobody gets writes until one goes away.
    // Sessions still start (read-only), so SHOW tells what pgrouter and the servers think.
    const claims = (): number => p.logs.filter((l) => /all claim to be the primary/.test(l)).length;
    await startNode(own, own.primary);
    await p.waitForLog(/nodes 0, 1 all claim to be the primary/, 5000);
    const split = Date.now();
    const refused = (e: pg.DatabaseError): boolean => e.code === '25006' && /no primary node is known/.test(e.message);
    await assert.rejects(once(p, own, 'INSERT INTO acked VALUES (-1, 0)'), refused);
    const during = await until(p, own, (r) => r.every((n) => n.status === 'up' && n.pg_role === 'primary'), 3000, 'both nodes up, both say primary');
    const window = await nodes(p, own);
    // pgrouter believes neither is the primary; each server answers pg_is_in_recovery() = false.
    assert.deepEqual(window.map((r) => [r.status, r.role, r.pg_status, r.pg_role]), [['up', 'standby', 'up', 'primary'], ['up', 'standby', 'up', 'primary']]);
    console.log(`# two primaries: SHOW pool_nodes answered during the split (${during} ms after the claims were logged)`);
    await sleep(2200);
    await assert.rejects(once(p, own, 'INSERT INTO acked VALUES (-1, 0)'), refused);
    assert.ok(claims() >= 3, `logged at every check (${claims()} times in ${Date.now() - split} ms)`);
    assert.ok(p.logs.some((l) => /"level":"error".*all claim to be the primary/.test(l)), 'at error level');
    assert.equal(await sql(own, own.primary, 'SELECT count(*) FROM acked WHERE id = -1'), '0');
    assert.equal(await sql(own, own.replica, 'SELECT count(*) FROM acked WHERE id = -1'), '0');
    await stopNode(own, own.primary, 'immediate');
    const resolved = Date.now();
    let port = '';
    while (port === '' && Date.now() - resolved < 5000) {
      port = await once(p, own, "INSERT INTO acked VALUES (-2, 0) ON CONFLICT DO NOTHING RETURNING current_setting('port')").catch(() => '');
      if (port === '') await sleep(50);
    }
    console.log(`# two primaries: writes resumed on node 1 ${Date.now() - resolved} ms after the old primary stopped again`);
    assert.equal(port, String(own.replica.port));
  } finally {
    await stopCluster(own);
  }
});

test('failover_on_backend_error: a session that loses its replica takes the node out at once and the session goes on with the primary', async () => {
  // A long health-check period, so only the backend error can mark the node down quickly.
  const p = await proxy(c, { health_check_period: 30, failover_on_backend_error: 'on' });
  const client = await connect(p, c);
  try {
    assert.equal(Number((await client.query(PORT)).rows[0].current_setting), c.replica.port);
    await stopNode(c, c.replica, 'immediate');
    // The replica's connection dies under the session: that statement fails, the session lives.
    await client.query(PORT).catch(() => undefined);
    await until(p, c, (r) => r[1]?.status === 'down', 5000, 'replica marked down by the backend error');
    assert.equal(Number((await client.query(PORT)).rows[0].current_setting), c.primary.port, 'reads go to the primary');
  } finally {
    await client.end().catch(() => undefined);
    await startNode(c, c.replica);
    await waitForStreaming(c);
  }
});

/** A session as `user` (default the superuser); errors reject the waiting call. */
async function connectAs(p: ProxyHandle, cl: Cluster, user = cl.users.superuser): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: p.url(user.name, user.password) });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function rejectsWith(q: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(q, (e: pg.DatabaseError) => {
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

test('PGPOOL DETACH / ATTACH NODE: admin users only; a detached replica stays down while its checks pass, until attached', async () => {
  const p = await proxy(c, { pgrouter_admin_users: `someone_else, ${c.users.superuser.name}` });
  const admin = await connect(p, c);
  const other = await connectAs(p, c, c.users.md5);
  try {
    await rejectsWith(other.query('PGPOOL DETACH NODE 1'), '42501', /is not in pgrouter_admin_users/);
    await rejectsWith(other.query('PGPOOL ATTACH NODE 1'), '42501');
    await rejectsWith(admin.query('PGPOOL DETACH NODE 2'), '22023', /out of range/);
    await rejectsWith(admin.query('PGPOOL DETACH NODE one'), '22023');
    assert.deepEqual((await nodes(p, c)).map((r) => r.status), ['up', 'up'], 'refused commands changed nothing');
    assert.equal(Number((await admin.query(PORT)).rows[0].current_setting), c.replica.port, 'reads on the replica (primary weight 0)');

    assert.equal((await admin.query('pgpool detach node 1;')).command, 'DETACH');
    // The session that was reading there moves on to the primary; so do new sessions.
    assert.equal(Number((await admin.query(PORT)).rows[0].current_setting), c.primary.port);
    assert.equal(Number((await other.query(PORT)).rows[0].current_setting), c.primary.port);
    for (let i = 0; i < 5; i++) assert.equal(await once(p, c, PORT), String(c.primary.port));
    // pool_nodes: down, although the server answers (pg_status) and says it is a standby (pg_role).
    await until(p, c, (r) => r[1]?.status === 'down' && r[1]?.pg_status === 'up' && r[1]?.pg_role === 'standby', 3000, 'detached node shown down');
    const before = Number((await admin.query('SHOW pool_health_check_stats')).rows[1].success_count);
    await sleep(2500);
    const [, n1] = await nodes(p, c);
    assert.equal(n1!.status, 'down', 'passing health checks do not bring a detached node back');
    const after = Number((await admin.query('SHOW pool_health_check_stats')).rows[1].success_count);
    assert.ok(after >= before + 2, `health checks go on (${before} → ${after} successes)`);
    assert.equal(await once(p, c, PORT), String(c.primary.port));

    const t0 = Date.now();
    assert.equal((await admin.query('PGPOOL ATTACH NODE 1')).command, 'ATTACH');
    const up = await until(p, c, (r) => r[1]?.status === 'up', 3000, 'attached node up');
    console.log(`# attached replica up ${up} ms after PGPOOL ATTACH NODE (${Date.now() - t0} ms incl. polling)`);
    assert.ok(up < 1000, `up after ${up} ms`);
    assert.equal(await once(p, c, PORT), String(c.replica.port), 'reads go to the replica again');
    assert.ok(p.logs.some((l) => /node 1 detached by an administrator/.test(l)));
    assert.ok(p.logs.some((l) => /node 1 attached by an administrator/.test(l)));
  } finally {
    await other.end().catch(() => undefined);
    await admin.end().catch(() => undefined);
  }
});

test('detaching the primary: its sessions end, new sessions log in read-only on the replica, writes get 25006 and never reach it; ATTACH restores writes', async () => {
  await sql(c, c.primary, 'DROP TABLE IF EXISTS ro_t; DROP SEQUENCE IF EXISTS ro_seq; CREATE TABLE ro_t (id int); CREATE SEQUENCE ro_seq; GRANT ALL ON ro_t, ro_seq TO PUBLIC');
  await waitForReplication(c);
  const p = await proxy(c, { pgrouter_admin_users: c.users.superuser.name });
  const writer = await connect(p, c);
  const admin = await connect(p, c);
  let detached = false;
  try {
    await writer.query('INSERT INTO ro_t VALUES (1)');
    await waitForReplication(c); // the read-only session reads it on the replica
    assert.equal((await admin.query('PGPOOL DETACH NODE 0')).command, 'DETACH');
    detached = true;
    // Sessions writing to node 0 end (the one that asked too, after its reply), as Pgpool-II's children do at a failover.
    await rejectsWith(writer.query('SELECT 1'), '57P01', /node 0.*detached by an administrator/);

    // A new session still logs in (on the replica), and SHOW works.
    const ro = await connect(p, c);
    try {
      const rows = (await ro.query('SHOW pool_nodes')).rows as Record<string, string>[];
      assert.deepEqual(rows.map((r) => [r.status, r.role]), [['down', 'primary'], ['up', 'standby']]);
      assert.equal(Number((await ro.query(PORT)).rows[0].current_setting), c.replica.port);
      assert.equal((await ro.query('SHOW default_transaction_read_only')).rows[0].default_transaction_read_only, 'on');
      // Writes: simple and extended protocol, in and out of a transaction, and read-only escapes.
      await rejectsWith(ro.query('INSERT INTO ro_t VALUES (2)'), '25006', /^cannot execute INSERT.*the primary node 0 is down, so pgrouter accepts no writes$/);
      // pgrouter's own refusal (a standby would say "cannot execute ... in a read-only transaction").
      const ours = /so pgrouter accepts no writes$/;
      await rejectsWith(ro.query('INSERT INTO ro_t VALUES ($1)', [3]), '25006', ours);
      await rejectsWith(ro.query('CREATE TABLE ro_new (id int)'), '25006', ours);
      await rejectsWith(ro.query('SET default_transaction_read_only = off'), '25006', ours);
      await rejectsWith(ro.query('BEGIN READ WRITE'), '25006', ours);
      await ro.query('BEGIN');
      assert.equal(Number((await ro.query('SELECT count(*) FROM ro_t')).rows[0].count), 1);
      await rejectsWith(ro.query('UPDATE ro_t SET id = 4'), '25006', ours);
      await ro.query('ROLLBACK');
      // set_config could switch read-only off from inside a SELECT: refused too.
      await rejectsWith(ro.query("SELECT set_config('default_transaction_read_only', 'off', false)"), '25006', ours);
      // Any other write the classifier cannot see runs read-only: the server itself refuses it.
      await rejectsWith(ro.query("SELECT nextval('ro_seq')"), '25006', /^cannot execute nextval\(\) in a read-only transaction$/);
      assert.equal(Number((await ro.query('SELECT count(*) FROM ro_t')).rows[0].count), 1, 'the session goes on');
      assert.equal((await ro.query('PGPOOL SHOW port')).rows[0].port, String(p.port));
      assert.equal(await sql(c, c.primary, 'SELECT string_agg(id::text, \',\') FROM ro_t'), '1', 'no write reached the primary');
      assert.ok(!/ro_new/.test(await sql(c, c.replica, "SELECT coalesce(to_regclass('ro_new')::text, '')")));

      const admin2 = await connect(p, c);
      try {
        assert.equal((await admin2.query('PGPOOL ATTACH NODE 0')).command, 'ATTACH');
        detached = false;
      } finally {
        await admin2.end();
      }
      // Node 0's last check passed: up at once.
      assert.equal((await nodes(p, c))[0]!.status, 'up');
      // The read-only session is told to reconnect at its next write; new sessions write.
      await rejectsWith(ro.query('INSERT INTO ro_t VALUES (5)'), '57P01', /node 0 is the primary now/);
      assert.equal(await once(p, c, "INSERT INTO ro_t VALUES (6) RETURNING current_setting('port')"), String(c.primary.port));
      assert.equal(await sql(c, c.primary, 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM ro_t'), '1,6');
    } finally {
      await ro.end().catch(() => undefined);
    }
  } finally {
    if (detached) await (await connect(p, c)).query('PGPOOL ATTACH NODE 0').catch(() => undefined);
    await writer.end().catch(() => undefined);
    await admin.end().catch(() => undefined);
    await sql(c, c.primary, 'DROP TABLE IF EXISTS ro_t; DROP SEQUENCE IF EXISTS ro_seq');
  }
});

test('primary outage: clients still log in (on the replica) for SHOW pool_nodes and reads; writes get 25006', async () => {
  const p = await proxy(c);
  let stopped = false;
  try {
    await stopNode(c, c.primary, 'fast');
    stopped = true;
    await until(p, c, (r) => r[0]?.status === 'down', 4000, 'primary down');
    const cl = await connect(p, c);
    try {
      const rows = (await cl.query('SHOW pool_nodes')).rows as Record<string, string>[];
      assert.deepEqual(rows.map((r) => [r.status, r.pg_status]), [['down', 'down'], ['up', 'up']]);
      assert.equal(rows[1]!.pg_role, 'standby');
      assert.equal(Number((await cl.query(PORT)).rows[0].current_setting), c.replica.port);
      await rejectsWith(cl.query('CREATE TABLE outage_t (id int)'), '25006', /the primary node 0 is down/);
      assert.equal(Number((await cl.query('SELECT 41 + 1 AS v')).rows[0].v), 42);
    } finally {
      await cl.end();
    }
    assert.ok(p.logs.some((l) => /session runs read-only on node 1/.test(l)));
  } finally {
    if (stopped) await startNode(c, c.primary);
    await waitForStreaming(c);
  }
});
