// Proves the test rig itself: a real primary and a streaming replica, the rig users logging in
// over TCP with the auth method each is meant to exercise, and replica stop/start.

import assert from 'node:assert/strict';
import net from 'node:net';
import { before, describe, test } from 'node:test';
import pg from 'pg';
import {
  clusterFromDescription,
  describeCluster,
  sql,
  startNode,
  stopNode,
  waitForReplication,
  waitForStreaming,
} from '../../rig/cluster.ts';
import type { Cluster, RigNode, RigUser } from '../../rig/cluster.ts';
import { getCluster } from '../harness/cluster.ts';

let c: Cluster;
before(async () => {
  c = await getCluster();
});

/** Logs in with the pg package over TCP and returns current_user; always closes the client. */
async function loginAs(n: RigNode, user: string, password: string): Promise<string> {
  const client = new pg.Client({
    host: n.host,
    port: n.port,
    user,
    password,
    database: c.database,
    connectionTimeoutMillis: 10_000,
  });
  try {
    await client.connect();
    const r = await client.query<{ u: string }>('SELECT current_user AS u');
    return r.rows[0]?.u ?? '';
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Sends a bare StartupMessage and returns the code of the server's first AuthenticationRequest
 * (0 ok, 3 cleartext, 5 MD5, 10 SASL): the method PostgreSQL itself chose for this user.
 */
function authRequestCode(n: RigNode, user: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(n.port, n.host);
    const params = Buffer.from(`user\0${user}\0database\0${c.database}\0\0`);
    const startup = Buffer.alloc(8 + params.length);
    startup.writeInt32BE(startup.length, 0);
    startup.writeInt32BE(196608, 4); // protocol 3.0
    params.copy(startup, 8);
    let buf = Buffer.alloc(0);
    sock.setTimeout(10_000, () => sock.destroy(new Error('timeout waiting for AuthenticationRequest')));
    sock.on('error', reject);
    sock.on('connect', () => sock.write(startup));
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 9) return;
      const type = String.fromCharCode(buf[0] ?? 0);
      sock.destroy();
      if (type === 'R') resolve(buf.readInt32BE(5));
      else reject(new Error(`expected AuthenticationRequest, got message '${type}'`));
    });
  });
}

/** Asserts a failed login with SQLSTATE 28P01 (invalid_password). */
async function assertWrongPassword(n: RigNode, u: RigUser): Promise<void> {
  await assert.rejects(loginAs(n, u.name, `${u.password}-wrong`), (e: unknown) => {
    assert.equal((e as { code?: unknown }).code, '28P01', `${u.name}: ${String(e)}`);
    return true;
  });
}

const AUTH_CODE: Record<RigUser['method'], number> = { trust: 0, password: 3, md5: 5, 'scram-sha-256': 10 };

describe('rig cluster', () => {
  test('primary is not in recovery, replica is, and the replica streams from the primary', async () => {
    assert.equal(await sql(c, c.primary, 'SELECT pg_is_in_recovery()'), 'f');
    assert.equal(await sql(c, c.replica, 'SELECT pg_is_in_recovery()'), 't');
    assert.equal(
      await sql(c, c.primary, "SELECT state FROM pg_stat_replication WHERE application_name = 'replica'"),
      'streaming',
    );
    assert.notEqual(c.primary.port, c.replica.port);
    assert.equal(c.primary.host, '127.0.0.1');
  });

  test('a row written on the primary is on the replica after waitForReplication', async () => {
    const table = `rig_repl_${process.pid}_${Date.now()}`;
    const value = Math.floor(Math.random() * 1e9);
    await sql(c, c.primary, `CREATE TABLE ${table} (v int); INSERT INTO ${table} VALUES (${value})`);
    try {
      await waitForReplication(c);
      assert.equal(await sql(c, c.replica, `SELECT v FROM ${table}`), String(value));
      await assert.rejects(sql(c, c.replica, `INSERT INTO ${table} VALUES (1)`), /read-only transaction/);
    } finally {
      await sql(c, c.primary, `DROP TABLE ${table}`);
    }
  });

  test('sql() rejects with psql stderr on a bad query', async () => {
    await assert.rejects(sql(c, c.primary, 'SELECT * FROM no_such_table_here'), /no_such_table_here/);
  });

  test('every rig user logs in over TCP with its method, on both nodes', async () => {
    for (const u of Object.values(c.users)) {
      for (const n of [c.primary, c.replica]) {
        assert.equal(await authRequestCode(n, u.name), AUTH_CODE[u.method], `${u.name} on ${n.name}`);
        assert.equal(await loginAs(n, u.name, u.password), u.name, `${u.name} on ${n.name}`);
      }
    }
  });

  test('passwords are stored as the method needs (md5 hash for md5_user, SCRAM otherwise)', async () => {
    const rows = await sql(c, c.primary, 'SELECT rolname, left(rolpassword, 14) FROM pg_authid WHERE rolpassword IS NOT NULL ORDER BY 1');
    const stored = new Map(rows.split('\n').map((l) => l.split('|') as [string, string]));
    assert.match(stored.get(c.users.md5.name) ?? '', /^md5/);
    for (const u of [c.users.superuser, c.users.password, c.users.scram, c.users.trust]) {
      assert.equal(stored.get(u.name), 'SCRAM-SHA-256$', u.name);
    }
  });

  test('a wrong password fails with 28P01; trust_user needs none', async () => {
    for (const u of [c.users.superuser, c.users.md5, c.users.password, c.users.scram]) {
      await assertWrongPassword(c.primary, u);
    }
    assert.equal(await loginAs(c.primary, c.users.trust.name, 'anything'), c.users.trust.name);
  });

  test('users are plain logins; app is owned by postgres and open to PUBLIC; scram_user is pg_monitor', async () => {
    const names = [c.users.trust, c.users.md5, c.users.password, c.users.scram].map((u) => `'${u.name}'`).join(',');
    assert.equal(
      await sql(c, c.primary, `SELECT count(*) FROM pg_roles WHERE rolname IN (${names}) AND rolcanlogin AND NOT rolsuper`),
      '4',
    );
    assert.equal(await sql(c, c.primary, `SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '${c.database}'`), 'postgres');
    assert.equal(await sql(c, c.primary, "SELECT pg_has_role('scram_user', 'pg_monitor', 'member')"), 't');
    const table = `rig_public_${process.pid}`;
    await sql(c, c.primary, `CREATE TABLE ${table} (x int); DROP TABLE ${table}`, { user: c.users.md5.name });
    assert.equal(await sql(c, c.primary, 'SELECT count(*) > 0 FROM pgbench_branches', { user: c.users.trust.name }), 't');
  });

  test('describeCluster round-trips and clusterFromDescription rejects junk', () => {
    assert.deepEqual(clusterFromDescription(describeCluster(c)), c);
    assert.throws(() => clusterFromDescription('{"dir": 1}'), /not a cluster description/);
  });

  test('stopNode/startNode of the replica: it goes away, comes back and streams again', async () => {
    await stopNode(c, c.replica);
    await assert.rejects(sql(c, c.replica, 'SELECT 1'));
    await stopNode(c, c.replica); // already stopped: fine
    await startNode(c, c.replica);
    await waitForStreaming(c);
    assert.equal(await sql(c, c.replica, 'SELECT pg_is_in_recovery()'), 't');
    const table = `rig_restart_${process.pid}`;
    await sql(c, c.primary, `CREATE TABLE ${table} AS SELECT 42 AS v`);
    try {
      await waitForReplication(c);
      assert.equal(await sql(c, c.replica, `SELECT v FROM ${table}`), '42');
    } finally {
      await sql(c, c.primary, `DROP TABLE ${table}`);
    }
  });
});
