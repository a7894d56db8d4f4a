// Client authentication through a real pgrouter in front of the rig: every method right and
// wrong, mirrored (no pool_hba) and pool_hba mode, with node-postgres and psql over TCP; plain,
// TEXT, md5, AES (real pg_enc) and SCRAM-verifier pool_passwd entries; and no secret in any log.

import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { sql } from '../../rig/cluster.ts';
import type { Cluster } from '../../rig/cluster.ts';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle, type ProxyOptions } from '../harness/proxy.ts';
import { md5PasswordHash } from '../../src/auth/md5.ts';
import { rawLogin, RawConn, startupPacket, errorFields } from './raw-client.ts';

let c: Cluster;
/** Every proxy started here, kept (with its logs) for the final secret scan. */
const proxies: ProxyHandle[] = [];
/** Every error text a client saw (pg message/detail/hint, psql stderr), for the secret scan. */
const clientTexts: string[] = [];
/** Secrets that must never show up in a log line or client-visible error. */
const secrets = new Set<string>();
const POOL_KEY = 'pgrouter-auth-test-pool-key-9f3e';
let scramVerifier = '';
let aesEntries: Record<string, string> = {};
let keyDir = '';
let keyFile = '';
let otherKeyFile = '';

const WRONG = (pw: string): string => `${pw}-wrong`;

before(async () => {
  c = await getCluster();
  for (const u of Object.values(c.users)) {
    secrets.add(u.password);
    secrets.add(WRONG(u.password));
    secrets.add(md5PasswordHash(u.password, u.name));
    secrets.add(md5PasswordHash(u.password, u.name).slice(3));
  }
  scramVerifier = await sql(c, c.primary, `SELECT rolpassword FROM pg_authid WHERE rolname = '${c.users.scram.name}'`);
  assert.match(scramVerifier, /^SCRAM-SHA-256\$\d+:[^$]+\$[^:]+:.+$/);
  secrets.add(scramVerifier);
  for (const part of scramVerifier.replace(/^SCRAM-SHA-256\$\d+:/, '').split(/[$:]/)) secrets.add(part);

  // AES entries made by the real pg_enc (Debian's pgpool2 package), as an operator would.
  keyDir = mkdtempSync(path.join(os.tmpdir(), 'pgrouter-auth-key-'));
  keyFile = path.join(keyDir, 'pgpoolkey');
  otherKeyFile = path.join(keyDir, 'otherkey');
  writeFileSync(keyFile, `${POOL_KEY}\n`, { mode: 0o600 });
  writeFileSync(otherKeyFile, 'some-other-key\n', { mode: 0o600 });
  secrets.add(POOL_KEY);
  const conf = path.join(keyDir, 'pgpool.conf');
  writeFileSync(conf, "pool_passwd = 'pool_passwd'\n");
  for (const u of [c.users.scram, c.users.md5, c.users.password]) {
    execFileSync('/usr/sbin/pg_enc', ['-k', keyFile, '-m', '-f', conf, '-u', u.name, u.password], { stdio: 'pipe' });
  }
  aesEntries = {};
  for (const line of readFileSync(path.join(keyDir, 'pool_passwd'), 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) aesEntries[line.slice(0, i)] = line.slice(i + 1);
  }
  for (const u of [c.users.scram, c.users.md5, c.users.password]) {
    const e = aesEntries[u.name] ?? '';
    assert.match(e, /^AES[A-Za-z0-9+/=]+$/, `pg_enc wrote an AES entry for ${u.name}`);
    secrets.add(e);
    secrets.add(e.slice(3));
  }
});

after(async () => {
  for (const p of proxies) await p.stop('SIGKILL').catch(() => undefined);
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
});

async function proxy(o: ProxyOptions): Promise<ProxyHandle> {
  const p = await startProxy(c, o);
  proxies.push(p);
  return p;
}

type PgOutcome = { ok: true; user: string } | { ok: false; code: string | undefined; message: string; detail?: string; hint?: string };

/** Logs in with node-postgres over TCP and runs SELECT current_user. */
async function viaPg(p: ProxyHandle, user: string, password: string, database?: string): Promise<PgOutcome> {
  const client = new pg.Client({
    host: p.host,
    port: p.port,
    user,
    password,
    database: database ?? c.database,
    connectionTimeoutMillis: 10_000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const r = await client.query<{ u: string }>('SELECT current_user AS u');
    return { ok: true, user: r.rows[0]?.u ?? '' };
  } catch (e) {
    const err = e as { code?: string; message: string; detail?: string; hint?: string };
    clientTexts.push([err.message, err.detail ?? '', err.hint ?? ''].join(' | '));
    return {
      ok: false,
      code: err.code,
      message: err.message,
      ...(err.detail !== undefined ? { detail: err.detail } : {}),
      ...(err.hint !== undefined ? { hint: err.hint } : {}),
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Runs psql (the rig's libpq) over TCP with PGPASSWORD; never prompts. */
function viaPsql(
  p: ProxyHandle,
  user: string,
  password: string,
  database?: string,
): Promise<{ code: number | null; out: string; err: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  Object.assign(env, { PGPASSWORD: password, PGPASSFILE: '/dev/null', PGCONNECT_TIMEOUT: '10', LC_ALL: 'C', LANG: 'C' });
  return new Promise((resolve, reject) => {
    const child = spawn(
      path.join(c.binDir, 'psql'),
      ['-X', '-A', '-t', '-w', '-h', p.host, '-p', String(p.port), '-U', user, '-d', database ?? c.database, '-c', 'SELECT current_user'],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(t);
      if (err) clientTexts.push(err);
      resolve({ code, out: out.trim(), err: err.trim() });
    });
  });
}

/** Both clients log in as `user` and see current_user = user. */
async function assertLogin(p: ProxyHandle, user: string, password: string, database?: string): Promise<void> {
  const r = await viaPg(p, user, password, database);
  assert.deepEqual(r, { ok: true, user }, `pg login as ${user}`);
  const q = await viaPsql(p, user, password, database);
  assert.equal(q.code, 0, `psql login as ${user}: ${q.err}`);
  assert.equal(q.out, user, `psql current_user for ${user}`);
}

/** Both clients are refused with `code` (pg) and a message matching `message` (pg and psql). */
async function assertRefused(
  p: ProxyHandle,
  user: string,
  password: string,
  code: string,
  message: RegExp,
  database?: string,
): Promise<PgOutcome> {
  const r = await viaPg(p, user, password, database);
  assert.equal(r.ok, false, `pg login as ${user} must fail`);
  if (r.ok) throw new Error('unreachable');
  assert.equal(r.code, code, `pg error code for ${user}: ${r.message}`);
  assert.match(r.message, message, `pg error message for ${user}`);
  const q = await viaPsql(p, user, password, database);
  assert.notEqual(q.code, 0, `psql login as ${user} must fail`);
  assert.match(q.err, /FATAL/, `psql stderr for ${user}`);
  assert.match(q.err, message, `psql stderr for ${user}`);
  return r;
}

const failedFor = (user: string): RegExp => new RegExp(`password authentication failed for user "${user}"`);

/** The first authentication request code pgrouter sends for a bare StartupMessage. */
async function firstAuthCode(p: ProxyHandle, user: string): Promise<number> {
  const conn = await RawConn.connect(p.port);
  try {
    conn.write(startupPacket({ user, database: c.database }));
    const m = await conn.readMessage(10_000);
    assert.ok(m, `no answer to the StartupMessage of ${user}`);
    if (m.type === 'E') throw new Error(`startup of ${user} refused: ${JSON.stringify(errorFields(m.body))}`);
    assert.equal(m.type, 'R', `first message for ${user}`);
    return m.body.readInt32BE(0);
  } finally {
    conn.destroy();
  }
}

describe('mirrored mode (no pool_hba): the client is asked what the backend asked pgrouter', () => {
  let p: ProxyHandle;
  before(async () => {
    const u = c.users;
    p = await proxy({
      // Debug logging on purpose: the secret scan at the end covers the chattiest level too.
      args: ['-d'],
      poolPasswd: [
        `${u.superuser.name}:${u.superuser.password}`,
        `${u.md5.name}:${md5PasswordHash(u.md5.password, u.md5.name)}`,
        `${u.password.name}:TEXT${u.password.password}`,
        `${u.scram.name}:${u.scram.password}`,
      ].join('\n') + '\n',
    });
  });

  test('the first authentication request mirrors the backend method (trust 0, md5 5, password 3, SCRAM 10)', async () => {
    assert.equal(await firstAuthCode(p, c.users.trust.name), 0);
    assert.equal(await firstAuthCode(p, c.users.md5.name), 5);
    assert.equal(await firstAuthCode(p, c.users.password.name), 3);
    assert.equal(await firstAuthCode(p, c.users.scram.name), 10);
    assert.equal(await firstAuthCode(p, c.users.superuser.name), 10);
  });

  test('trust_user (backend trust, no pool_passwd entry): logs in whatever password is given', async () => {
    await assertLogin(p, c.users.trust.name, c.users.trust.password);
    await assertLogin(p, c.users.trust.name, WRONG(c.users.trust.password));
    const r = await rawLogin(p.port, c.users.trust.name, c.database);
    assert.deepEqual(r.authCodes, [0], 'trust asks for no password');
    r.conn.destroy();
  });

  test('md5_user with an md5 entry: right password logs in, wrong one gets 28P01', async () => {
    const u = c.users.md5;
    await assertLogin(p, u.name, u.password);
    await assertRefused(p, u.name, WRONG(u.password), '28P01', failedFor(u.name));
  });

  test('password_user with a TEXT entry (cleartext): right logs in, wrong gets 28P01', async () => {
    const u = c.users.password;
    await assertLogin(p, u.name, u.password);
    await assertRefused(p, u.name, WRONG(u.password), '28P01', failedFor(u.name));
  });

  test('scram_user with a plain entry (SCRAM-SHA-256): right logs in, wrong gets 28P01', async () => {
    const u = c.users.scram;
    await assertLogin(p, u.name, u.password);
    await assertRefused(p, u.name, WRONG(u.password), '28P01', failedFor(u.name));
  });

  test('postgres (superuser, SCRAM backend) with a plain entry: right logs in, wrong gets 28P01', async () => {
    const u = c.users.superuser;
    await assertLogin(p, u.name, u.password);
    await assertRefused(p, u.name, WRONG(u.password), '28P01', failedFor(u.name));
  });

  test('a wrong password never costs the proxy: a good login right after still works', async () => {
    for (let i = 0; i < 5; i++) await viaPg(p, c.users.scram.name, WRONG(c.users.scram.password));
    assert.deepEqual(await viaPg(p, c.users.scram.name, c.users.scram.password), { ok: true, user: c.users.scram.name });
  });
});

describe('mirrored mode with other kinds of entries', () => {
  let p: ProxyHandle;
  before(async () => {
    const u = c.users;
    p = await proxy({
      poolPasswd: [
        `${u.md5.name}:${u.md5.password}`, // plain entry for an md5 backend
        `${u.password.name}:${u.password.password}`, // plain (no TEXT prefix) for a cleartext backend
        `${u.scram.name}:${scramVerifier}`, // the verifier copied from pg_authid
        // postgres is missing on purpose
      ].join('\n') + '\n',
    });
  });

  test('md5_user with a plain entry: right logs in, wrong gets 28P01', async () => {
    const u = c.users.md5;
    await assertLogin(p, u.name, u.password);
    await assertRefused(p, u.name, WRONG(u.password), '28P01', failedFor(u.name));
  });

  test('password_user with a plain entry: right logs in, wrong gets 28P01', async () => {
    const u = c.users.password;
    await assertLogin(p, u.name, u.password);
    await assertRefused(p, u.name, WRONG(u.password), '28P01', failedFor(u.name));
  });

  test('a user missing from pool_passwd (postgres, SCRAM backend) gets 28P01 even with the right password', async () => {
    const u = c.users.superuser;
    await assertRefused(p, u.name, u.password, '28P01', /password authentication failed for user "postgres"/);
  });

  test('scram_user with a SCRAM-SHA-256$ verifier entry: SCRAM pass-through logs in with no plaintext anywhere; wrong gets 28P01', async () => {
    // pgrouter checks the client's SCRAM proof against the verifier, recovers its ClientKey and
    // answers the backend (which stores the same verifier) with it: no password in pool_passwd.
    const u = c.users.scram;
    await assertLogin(p, u.name, u.password);
    const r = await assertRefused(p, u.name, WRONG(u.password), '28P01', failedFor(u.name));
    if (!r.ok) {
      const text = `${r.message} ${r.detail ?? ''} ${r.hint ?? ''}`;
      assert.ok(!text.includes(scramVerifier) && !text.includes(u.password), 'no secret in the error');
    }
  });
});

describe('AES entries made by pg_enc', () => {
  test('with the key file given by -k: scram_user, md5_user and password_user log in; wrong passwords get 28P01', async () => {
    const p = await proxy({ poolPasswd: Object.entries(aesEntries).map(([k, v]) => `${k}:${v}`).join('\n') + '\n', args: ['-k', keyFile] });
    for (const u of [c.users.scram, c.users.md5, c.users.password]) {
      await assertLogin(p, u.name, u.password);
      await assertRefused(p, u.name, WRONG(u.password), '28P01', failedFor(u.name));
    }
  });

  test('with the key file named by PGPOOLKEYFILE: scram_user logs in', async () => {
    const p = await proxy({
      poolPasswd: `${c.users.scram.name}:${aesEntries[c.users.scram.name]}\n`,
      env: { PGPOOLKEYFILE: keyFile },
    });
    await assertLogin(p, c.users.scram.name, c.users.scram.password);
  });

  for (const [what, env, args] of [
    ['without any key file', { PGPOOLKEYFILE: '' }, []],
    ['with the wrong key file', {}, ['-k', otherKeyFile]],
  ] as const) {
    test(`${what}: the right password fails cleanly with 28P01 and the error shows no secret`, async () => {
      const p = await proxy({
        poolPasswd: Object.entries(aesEntries).map(([k, v]) => `${k}:${v}`).join('\n') + '\n',
        env: { ...env, HOME: keyDir }, // keyDir has no .pgpoolkey: nothing to fall back on
        args: [...args],
      });
      for (const u of [c.users.scram, c.users.md5, c.users.password]) {
        const r = await assertRefused(p, u.name, u.password, '28P01', new RegExp(u.name + '|pool_passwd|decrypt'));
        if (r.ok) continue;
        const text = `${r.message} ${r.detail ?? ''} ${r.hint ?? ''}`;
        for (const s of [u.password, aesEntries[u.name] ?? '?', (aesEntries[u.name] ?? '?').slice(3), POOL_KEY])
          assert.ok(!text.includes(s), `error for ${u.name} must not contain a secret: ${text}`);
      }
      assert.equal(p.proc.exitCode, null, 'pgrouter still runs');
    });
  }
});

describe('pool_hba mode: the hba line decides the client method', () => {
  const u = (): Cluster['users'] => c.users;
  let p: ProxyHandle;
  before(async () => {
    const users = u();
    p = await proxy({
      poolPasswd: [
        `${users.trust.name}:${users.trust.password}`,
        `${users.md5.name}:${md5PasswordHash(users.md5.password, users.md5.name)}`,
        `${users.password.name}:TEXT${users.password.password}`,
        `${users.scram.name}:${users.scram.password}`,
        `${users.superuser.name}:${users.superuser.password}`,
      ].join('\n') + '\n',
      hba: [
        '# TYPE DATABASE USER ADDRESS METHOD',
        `host ${c.database} ${users.trust.name} 127.0.0.1/32 trust`,
        `host ${c.database} ${users.md5.name} 127.0.0.1/32 md5`,
        `host ${c.database} ${users.password.name} 127.0.0.1/32 password`,
        `host ${c.database} ${users.scram.name} 127.0.0.1/32 scram-sha-256`,
        `host all ${users.superuser.name} 127.0.0.1/32 reject`,
        'local all all trust',
      ].join('\n') + '\n',
    });
  });

  test('the first authentication request follows the hba line', async () => {
    assert.equal(await firstAuthCode(p, u().trust.name), 0);
    assert.equal(await firstAuthCode(p, u().md5.name), 5);
    assert.equal(await firstAuthCode(p, u().password.name), 3);
    assert.equal(await firstAuthCode(p, u().scram.name), 10);
  });

  test('trust: logs in with any password', async () => {
    await assertLogin(p, u().trust.name, u().trust.password);
    await assertLogin(p, u().trust.name, WRONG(u().trust.password));
  });

  for (const key of ['md5', 'password', 'scram'] as const) {
    test(`${key}: right password logs in, wrong gets 28P01`, async () => {
      const user = u()[key];
      await assertLogin(p, user.name, user.password);
      await assertRefused(p, user.name, WRONG(user.password), '28P01', failedFor(user.name));
    });
  }

  test('reject: 28000 for the right password', async () => {
    await assertRefused(p, u().superuser.name, u().superuser.password, '28000', /pool_hba\.conf rejects connection for user "postgres"/);
  });

  test('no matching line: 28000 "no pool_hba.conf entry"', async () => {
    await assertRefused(
      p,
      u().scram.name,
      u().scram.password,
      '28000',
      /no pool_hba\.conf entry for host "127\.0\.0\.1", user "scram_user", database "postgres"/,
      'postgres',
    );
  });
});

describe('pool_hba mode: frontend and backend methods differ', () => {
  let p: ProxyHandle;
  before(async () => {
    const users = c.users;
    p = await proxy({
      poolPasswd: [
        `${users.md5.name}:${md5PasswordHash(users.md5.password, users.md5.name)}`,
        `${users.password.name}:TEXT${users.password.password}`,
        `${users.scram.name}:${users.scram.password}`,
        `${users.superuser.name}:${users.superuser.password}`,
        // trust_user missing on purpose
      ].join('\n') + '\n',
      hba: [
        `host all ${users.scram.name} 127.0.0.1/32 md5`, // md5 to the client, SCRAM to the backend
        `host all ${users.password.name} 127.0.0.1/32 trust`, // no password from the client, cleartext to the backend
        `host all ${users.md5.name} 127.0.0.1/32 scram-sha-256`, // SCRAM with only an md5 entry: impossible
        `host all ${users.superuser.name} 127.0.0.1/32 password`, // cleartext to the client, SCRAM to the backend
        `host all ${users.trust.name} 127.0.0.1/32 md5`, // md5 for a user pool_passwd does not know
      ].join('\n') + '\n',
    });
  });

  test('md5 to the client, SCRAM to the backend (plain entry): right logs in, wrong gets 28P01', async () => {
    await assertLogin(p, c.users.scram.name, c.users.scram.password);
    await assertRefused(p, c.users.scram.name, WRONG(c.users.scram.password), '28P01', failedFor(c.users.scram.name));
  });

  test('trust to the client, cleartext to the backend from a TEXT entry: logs in', async () => {
    await assertLogin(p, c.users.password.name, 'whatever');
  });

  test('cleartext to the client, SCRAM to the backend: right logs in, wrong gets 28P01', async () => {
    await assertLogin(p, c.users.superuser.name, c.users.superuser.password);
    await assertRefused(p, c.users.superuser.name, WRONG(c.users.superuser.password), '28P01', failedFor(c.users.superuser.name));
  });

  test('SCRAM demanded with only an md5 entry: 28P01 even for the right password', async () => {
    await assertRefused(p, c.users.md5.name, c.users.md5.password, '28P01', failedFor(c.users.md5.name));
  });

  test('md5 demanded for a user missing from pool_passwd: 28P01', async () => {
    await assertRefused(p, c.users.trust.name, c.users.trust.password, '28P01', failedFor(c.users.trust.name));
  });
});

describe('pool_hba mode with a SCRAM verifier entry and with AES entries', () => {
  test('verifier: password method checks the cleartext against the verifier; scram-sha-256 logs in by SCRAM pass-through', async () => {
    const s = c.users.scram;
    const p = await proxy({
      poolPasswd: `${s.name}:${scramVerifier}\n`,
      hba: [`host postgres ${s.name} 127.0.0.1/32 password`, `host ${c.database} ${s.name} 127.0.0.1/32 scram-sha-256`].join('\n') + '\n',
    });
    await assertLogin(p, s.name, s.password, 'postgres');
    await assertRefused(p, s.name, WRONG(s.password), '28P01', failedFor(s.name), 'postgres');
    // scram-sha-256 with a verifier: SCRAM pass-through (the client's ClientKey answers the backend).
    await assertLogin(p, s.name, s.password);
    await assertRefused(p, s.name, WRONG(s.password), '28P01', failedFor(s.name));
  });

  test('AES entries with -k under scram-sha-256 and md5 lines: log in; wrong gets 28P01', async () => {
    const p = await proxy({
      poolPasswd: Object.entries(aesEntries).map(([k, v]) => `${k}:${v}`).join('\n') + '\n',
      args: ['-k', keyFile],
      hba: [
        `host all ${c.users.scram.name} 127.0.0.1/32 scram-sha-256`,
        `host all ${c.users.md5.name} 127.0.0.1/32 md5`,
        `host all ${c.users.password.name} 127.0.0.1/32 scram-sha-256`,
      ].join('\n') + '\n',
    });
    for (const user of [c.users.scram, c.users.md5, c.users.password]) {
      await assertLogin(p, user.name, user.password);
      await assertRefused(p, user.name, WRONG(user.password), '28P01', failedFor(user.name));
    }
  });
});

describe('secrets', () => {
  test('no password, md5 hash, AES entry, pool key or SCRAM verifier appears in any pgrouter log line or client-visible error', async () => {
    // Let the last log lines of every proxy arrive.
    await new Promise((r) => setTimeout(r, 200));
    const lines = proxies.flatMap((p) => p.logs);
    assert.ok(lines.length > 20, `expected pgrouter logs, got ${lines.length} lines`);
    assert.ok(lines.some((l) => l.includes('"level":"debug"')), 'the debug-level proxy logged at debug level');
    const leaks: string[] = [];
    for (const s of secrets) {
      if (s.length < 6) continue;
      for (const l of lines) if (l.includes(s)) leaks.push(`log has ${JSON.stringify(s)}: ${l}`);
      for (const t of clientTexts) if (t.includes(s)) leaks.push(`client error has ${JSON.stringify(s)}: ${t}`);
    }
    assert.deepEqual(leaks, []);
    assert.ok(clientTexts.length > 20, 'client errors were collected');
  });
});
