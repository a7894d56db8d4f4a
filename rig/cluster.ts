// The test rig: a real PostgreSQL primary plus a streaming hot-standby replica on loopback, in a
// throw-away directory, run as an ordinary OS user. Every test, the demo and the benchmark use it.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { appendFile, chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findPgBinDir, freePort, serverUser } from './system.ts';

/** A login role the rig creates, with the pg_hba.conf method PostgreSQL will demand over TCP. */
export interface RigUser {
  name: string;
  password: string;
  method: 'trust' | 'md5' | 'password' | 'scram-sha-256';
}

/** One PostgreSQL server of the rig. */
export interface RigNode {
  name: 'primary' | 'replica';
  /** Always 127.0.0.1: the servers listen on loopback only. */
  host: string;
  port: number;
  dataDir: string;
  /** unix_socket_directories of this node (psql and `sql()` connect here). */
  socketDir: string;
  /** pg_ctl -l log file (the server's stderr). */
  logFile: string;
}

/** A running rig. Plain data: survives describeCluster/clusterFromDescription. */
export interface Cluster {
  dir: string;
  binDir: string;
  primary: RigNode;
  replica: RigNode;
  users: { superuser: RigUser; trust: RigUser; md5: RigUser; password: RigUser; scram: RigUser };
  /** Application database (`app`), owned by the superuser, public schema open to PUBLIC. */
  database: string;
}

const USERS: Cluster['users'] = {
  superuser: { name: 'postgres', password: 'postgres_pw', method: 'scram-sha-256' },
  trust: { name: 'trust_user', password: 'trust_pw', method: 'trust' },
  md5: { name: 'md5_user', password: 'md5_pw', method: 'md5' },
  password: { name: 'password_user', password: 'password_pw', method: 'password' },
  scram: { name: 'scram_user', password: 'scram_pw', method: 'scram-sha-256' },
};
const DATABASE = 'app';
const LOOPBACK = '127.0.0.1';
const POLL_MS = 25;
const DEFAULT_WAIT_MS = 30_000;

type ServerUser = ReturnType<typeof serverUser>;
let cachedServerUser: { value: ServerUser } | undefined;
/** serverUser(), looked up once per process. */
function serverAccount(): ServerUser {
  cachedServerUser ??= { value: serverUser() };
  return cachedServerUser.value;
}

/** Child environment: no PG* variables leaking in from the caller, C locale, HOME = rig dir. */
function childEnv(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  env['HOME'] = dir;
  env['LC_ALL'] = 'C';
  env['LANG'] = 'C';
  return env;
}

interface RunOptions {
  dir: string;
  /** Run as the server user (initdb, pg_ctl, pg_basebackup) rather than as ourselves. */
  asServer: boolean;
  input?: string;
}

/** Spawns `file args`, resolving with stdout; rejects with an Error carrying stderr. */
function run(file: string, args: string[], o: RunOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const user = o.asServer ? serverAccount() : undefined;
    const child = spawn(file, args, {
      cwd: o.dir,
      env: childEnv(o.dir),
      stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
    });
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve(out);
      else {
        const what = `${path.basename(file)} exited with ${code ?? signal}`;
        const detail = err.trim() || out.trim();
        reject(Object.assign(new Error(detail ? `${what}: ${detail}` : what), { stderr: err, exitCode: code }));
      }
    });
    if (o.input !== undefined) child.stdin?.end(o.input);
  });
}

/** Last lines of a node's server log, for error messages. */
async function logTail(n: RigNode, lines = 25): Promise<string> {
  try {
    const text = await readFile(n.logFile, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no server log)';
  }
}

/** Rethrows `e` with the node's log tail appended. */
async function withLog(n: RigNode, what: string, e: unknown): Promise<never> {
  const msg = e instanceof Error ? e.message : String(e);
  throw new Error(`${what} failed: ${msg}\n--- tail of ${n.logFile} ---\n${await logTail(n)}`);
}

/** A postgresql.conf string literal. */
function confString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true, or throws `describe()` after timeoutMs. */
async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, describe: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(await describe());
    await sleep(POLL_MS);
  }
}

/** psql as the superuser over the node's unix socket; extra args before the connection options. */
function psql(c: Cluster, n: RigNode, args: string[], opts?: { user?: string; database?: string; input?: string }): Promise<string> {
  const full = [
    '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1',
    '-h', n.socketDir, '-p', String(n.port),
    '-U', opts?.user ?? c.users.superuser.name,
    '-d', opts?.database ?? c.database,
    ...args,
  ];
  return run(path.join(c.binDir, 'psql'), full, {
    dir: c.dir,
    asServer: false,
    ...(opts?.input !== undefined ? { input: opts.input } : {}),
  });
}

/**
 * Runs one SQL string with `psql -XAtq -v ON_ERROR_STOP=1` over the node's unix socket (trust),
 * as the superuser unless `opts.user`, in the `app` database unless `opts.database`.
 * Resolves with trimmed stdout (unaligned, tuples only); rejects with psql's stderr.
 */
export async function sql(c: Cluster, n: RigNode, query: string, opts?: { user?: string; database?: string }): Promise<string> {
  return (await psql(c, n, ['-c', query], opts)).trim();
}

/**
 * Resolves once the replica has replayed all WAL the primary had when called. Forces a WAL
 * flush first: with synchronous_commit=off recent commits may sit unflushed for up to
 * wal_writer_delay, and the walsender only ships flushed WAL. The flush comes from committing a
 * transaction that wrote WAL (a logical message) with synchronous_commit=on; an xid alone is
 * not enough, PostgreSQL commits WAL-less transactions asynchronously.
 */
export async function waitForReplication(c: Cluster, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
  const out = await psql(c, c.primary, [
    '-c', 'SET synchronous_commit = on',
    '-c', "SELECT pg_logical_emit_message(true, 'pgrouter-rig', 'sync')",
    '-c', 'SELECT pg_current_wal_flush_lsn()',
  ], { database: 'postgres' });
  const target = out.trim().split('\n').pop()?.trim() ?? '';
  if (!/^[0-9A-F]+\/[0-9A-F]+$/i.test(target)) throw new Error(`waitForReplication: unexpected LSN ${JSON.stringify(target)}`);
  let last = '';
  await waitUntil(
    async () => {
      const row = await sql(c, c.replica, `SELECT pg_last_wal_replay_lsn(), pg_last_wal_replay_lsn() >= '${target}'::pg_lsn`, { database: 'postgres' });
      const [lsn, done] = row.split('|');
      last = lsn ?? '';
      return done === 't';
    },
    timeoutMs,
    async () => `waitForReplication: replica replayed ${last || '?'} but primary was at ${target} after ${timeoutMs} ms\n` +
      `--- tail of ${c.replica.logFile} ---\n${await logTail(c.replica)}`,
  );
}

/**
 * Resolves once the primary's pg_stat_replication shows the replica (application_name
 * `replica`) as `streaming` and the replica answers pg_is_in_recovery() = true.
 */
export async function waitForStreaming(c: Cluster, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
  await waitUntil(
    async () =>
      (await sql(c, c.primary, "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'replica' AND state = 'streaming'", { database: 'postgres' })) === '1' &&
      (await sql(c, c.replica, 'SELECT pg_is_in_recovery()', { database: 'postgres' })) === 't',
    timeoutMs,
    async () => `replica not streaming after ${timeoutMs} ms\n--- tail of ${c.replica.logFile} ---\n${await logTail(c.replica)}` +
      `\n--- tail of ${c.primary.logFile} ---\n${await logTail(c.primary)}`,
  );
}

function pgCtl(c: Cluster, args: string[]): Promise<string> {
  return run(path.join(c.binDir, 'pg_ctl'), args, { dir: c.dir, asServer: true });
}

/** Starts a node with `pg_ctl start -w`; port and socket dir come from its config files. */
export async function startNode(c: Cluster, n: RigNode): Promise<void> {
  try {
    await pgCtl(c, ['start', '-w', '-t', '60', '-D', n.dataDir, '-l', n.logFile]);
  } catch (e) {
    await withLog(n, `starting ${n.name} (port ${n.port})`, e);
  }
}

/** Stops a node with `pg_ctl stop -w -m <mode>` (default fast); a stopped node is left alone. */
export async function stopNode(c: Cluster, n: RigNode, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  if (!existsSync(path.join(n.dataDir, 'postmaster.pid'))) return;
  try {
    await pgCtl(c, ['stop', '-w', '-t', '60', '-m', mode, '-D', n.dataDir]);
  } catch (e) {
    // Raced with the server going away by itself: that is "already stopped".
    if (!existsSync(path.join(n.dataDir, 'postmaster.pid'))) return;
    await withLog(n, `stopping ${n.name}`, e);
  }
}

/** Hands `p` (not recursive) to the server user (no-op when we are not root). */
async function giveToServer(p: string): Promise<void> {
  const user = serverAccount();
  if (!user) return;
  await chown(p, user.uid, user.gid);
}

/** Makes the rig dir: opts.dir (created, must be empty) or a fresh mkdtemp under os.tmpdir(). */
async function makeRigDir(dir: string | undefined): Promise<string> {
  let d: string;
  if (dir === undefined) d = await mkdtemp(path.join(os.tmpdir(), 'pgrouter-rig-'));
  else {
    d = path.resolve(dir);
    await mkdir(d, { recursive: true });
    if ((await readdir(d)).length > 0) throw new Error(`rig dir ${d} is not empty`);
  }
  await chmod(d, 0o755);
  await giveToServer(d);
  return d;
}

/** Two distinct free loopback ports. */
async function twoPorts(): Promise<[number, number]> {
  const a = await freePort();
  for (;;) {
    const b = await freePort();
    if (b !== a) return [a, b];
  }
}

function pgHbaConf(): string {
  const lines = ['# pgrouter test rig', 'local all all trust'];
  for (const net of ['127.0.0.1/32', '::1/128']) {
    lines.push(
      `host replication all ${net} trust`,
      `host all ${USERS.trust.name} ${net} trust`,
      `host all ${USERS.md5.name} ${net} md5`,
      `host all ${USERS.password.name} ${net} password`,
      `host all all ${net} scram-sha-256`,
    );
  }
  return lines.join('\n') + '\n';
}

function postgresqlConf(n: RigNode, maxConnections: number): string {
  return [
    '',
    '# --- pgrouter test rig ---',
    `listen_addresses = ${confString(LOOPBACK)}`,
    `port = ${n.port}`,
    `unix_socket_directories = ${confString(n.socketDir)}`,
    'fsync = off',
    'synchronous_commit = off',
    'full_page_writes = off',
    `max_connections = ${maxConnections}`,
    'shared_buffers = 128MB',
    'wal_level = replica',
    'max_wal_senders = 5',
    'hot_standby = on',
    'hot_standby_feedback = on',
    'wal_keep_size = 256MB',
    'log_min_messages = warning',
    'ssl = off',
    '',
  ].join('\n');
}

/** Roles and the app database. Stdin script, so CREATE DATABASE runs outside a transaction. */
function setupScript(): string {
  const q = (s: string): string => `'${s.replace(/'/g, "''")}'`;
  const u = USERS;
  return [
    `ALTER ROLE ${u.superuser.name} PASSWORD ${q(u.superuser.password)};`,
    `CREATE ROLE ${u.trust.name} LOGIN PASSWORD ${q(u.trust.password)};`,
    // Stored as an md5 hash, so that hba `md5` really sends an MD5 challenge (not SCRAM).
    "SET password_encryption = 'md5';",
    `CREATE ROLE ${u.md5.name} LOGIN PASSWORD ${q(u.md5.password)};`,
    'RESET password_encryption;',
    `CREATE ROLE ${u.password.name} LOGIN PASSWORD ${q(u.password.password)};`,
    `CREATE ROLE ${u.scram.name} LOGIN PASSWORD ${q(u.scram.password)};`,
    `GRANT pg_monitor TO ${u.scram.name};`,
    `CREATE DATABASE ${DATABASE} OWNER ${u.superuser.name};`,
    `\\connect ${DATABASE}`,
    // PostgreSQL 15 no longer lets PUBLIC create in schema public.
    'GRANT ALL ON SCHEMA public TO PUBLIC;',
    '',
  ].join('\n');
}

/**
 * Builds and starts the rig: initdb a primary, configure it, create the rig users and the `app`
 * database (optionally pgbench-initialised at `pgbenchScale`), pg_basebackup a replica from it and
 * wait until the replica streams. On failure, everything started is stopped and the dir removed.
 * `opts.dir`: use this directory (created if absent, must be empty) instead of a fresh temp dir.
 */
export async function startCluster(opts?: {
  dir?: string;
  pgbenchScale?: number;
  log?: (line: string) => void;
  maxConnections?: number;
}): Promise<Cluster> {
  const t0 = Date.now();
  const log = (line: string): void => opts?.log?.(`rig: ${line} (+${Date.now() - t0} ms)`);
  const binDir = findPgBinDir();
  serverAccount(); // fail early, before making anything, if there is no one to run the servers as
  const dir = await makeRigDir(opts?.dir);
  let c: Cluster | undefined;
  try {
    const [pPort, rPort] = await twoPorts();
    const node = (name: RigNode['name'], port: number): RigNode => ({
      name,
      host: LOOPBACK,
      port,
      dataDir: path.join(dir, name),
      socketDir: path.join(dir, `${name}-socket`),
      logFile: path.join(dir, `${name}.log`),
    });
    c = { dir, binDir, primary: node('primary', pPort), replica: node('replica', rPort), users: USERS, database: DATABASE };
    const cl = c;
    for (const n of [cl.primary, cl.replica]) {
      await mkdir(n.socketDir, { mode: 0o755 });
      await giveToServer(n.socketDir);
    }
    log(`dir ${dir}, primary port ${pPort}, replica port ${rPort}, binaries ${binDir}`);

    await run(path.join(binDir, 'initdb'), [
      '-D', cl.primary.dataDir, '-A', 'trust', '-U', USERS.superuser.name,
      '--no-sync', '-E', 'UTF8', '--locale=C', '--no-instructions',
    ], { dir, asServer: true });
    log('initdb done');
    // Appending/overwriting existing files keeps their owner (server user) and 0600 mode.
    await appendFile(path.join(cl.primary.dataDir, 'postgresql.conf'), postgresqlConf(cl.primary, opts?.maxConnections ?? 300));
    await writeFile(path.join(cl.primary.dataDir, 'pg_hba.conf'), pgHbaConf());
    await startNode(cl, cl.primary);
    log('primary started');

    await psql(cl, cl.primary, ['-f', '-'], { database: 'postgres', input: setupScript() });
    if (opts?.pgbenchScale !== undefined) {
      await run(path.join(binDir, 'pgbench'), [
        '-i', '-s', String(opts.pgbenchScale), '-q',
        '-h', cl.primary.socketDir, '-p', String(cl.primary.port), '-U', USERS.superuser.name, DATABASE,
      ], { dir, asServer: false });
      await sql(cl, cl.primary,
        'GRANT SELECT, UPDATE, INSERT ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO PUBLIC');
      log(`pgbench -i -s ${opts.pgbenchScale} done`);
    }
    log('users and database created');

    // -R writes standby.signal and primary_conninfo (with our application_name) into
    // postgresql.auto.conf; -c fast avoids waiting for a spread checkpoint.
    try {
      await run(path.join(binDir, 'pg_basebackup'), [
        '-d', `host=${LOOPBACK} port=${cl.primary.port} user=${USERS.superuser.name} application_name=replica`,
        '-D', cl.replica.dataDir, '-X', 'stream', '-R', '--no-sync', '-c', 'fast',
      ], { dir, asServer: true });
    } catch (e) {
      await withLog(cl.primary, 'pg_basebackup', e);
    }
    log('pg_basebackup done');
    // postgresql.conf was copied from the primary; auto.conf settings win over it.
    await appendFile(path.join(cl.replica.dataDir, 'postgresql.auto.conf'),
      `port = ${cl.replica.port}\nunix_socket_directories = ${confString(cl.replica.socketDir)}\n`);
    await startNode(cl, cl.replica);
    log('replica started');
    await waitForStreaming(cl);
    log(`replica streaming; cluster up in ${Date.now() - t0} ms`);
    return cl;
  } catch (e) {
    if (c) {
      for (const n of [c.replica, c.primary]) await stopNode(c, n, 'immediate').catch(() => undefined);
    }
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}

/** Stops both nodes (`-m immediate`, already-stopped is fine) and removes the dir unless keepDir. */
export async function stopCluster(c: Cluster, opts?: { keepDir?: boolean }): Promise<void> {
  const errors: unknown[] = [];
  for (const n of [c.replica, c.primary]) await stopNode(c, n, 'immediate').catch((e: unknown) => errors.push(e));
  if (errors.length > 0) throw errors[0];
  if (!opts?.keepDir) await rm(c.dir, { recursive: true, force: true });
}

/**
 * Synchronous stopCluster for `process.on('exit')` hooks, where no promise can run: pg_ctl stop
 * -m immediate for each running node, then removes the dir. Never throws.
 */
export function stopClusterSync(c: Cluster): void {
  const user = serverAccount();
  for (const n of [c.replica, c.primary]) {
    if (!existsSync(path.join(n.dataDir, 'postmaster.pid'))) continue;
    try {
      execFileSync(path.join(c.binDir, 'pg_ctl'), ['stop', '-w', '-t', '30', '-m', 'immediate', '-D', n.dataDir], {
        cwd: c.dir,
        env: childEnv(c.dir),
        stdio: 'ignore',
        ...(user ? { uid: user.uid, gid: user.gid } : {}),
      });
    } catch {
      // best effort: we are exiting
    }
  }
  try {
    rmSync(c.dir, { recursive: true, force: true });
  } catch {
    // best effort
  }
}

/** JSON form of a cluster, for handing to child processes (env var, argv). */
export function describeCluster(c: Cluster): string {
  return JSON.stringify(c);
}

/** Parses describeCluster output; throws if it does not look like a rig. */
export function clusterFromDescription(s: string): Cluster {
  const c = JSON.parse(s) as Cluster;
  const okNode = (n: unknown): boolean =>
    typeof n === 'object' && n !== null &&
    typeof (n as RigNode).port === 'number' && typeof (n as RigNode).host === 'string' &&
    typeof (n as RigNode).socketDir === 'string' && typeof (n as RigNode).dataDir === 'string';
  if (typeof c !== 'object' || c === null || typeof c.dir !== 'string' || typeof c.binDir !== 'string' ||
      !okNode(c.primary) || !okNode(c.replica) || typeof c.users?.superuser?.name !== 'string' ||
      typeof c.database !== 'string') {
    throw new Error('clusterFromDescription: not a cluster description');
  }
  return c;
}
