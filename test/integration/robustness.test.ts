// Robustness of a real pgrouter process: a seeded fuzz of malformed, truncated and oversized
// frames over raw sockets; protocol version, GSSENC and SSL negotiation (TLS with a self-signed
// certificate, psql and node-postgres); SIGTERM drain, SIGINT, and configuration errors.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { sql } from '../../rig/cluster.ts';
import type { Cluster } from '../../rig/cluster.ts';
import { freePort } from '../../rig/system.ts';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle, type ProxyOptions } from '../harness/proxy.ts';
import {
  CANCEL_REQUEST,
  GSSENC_REQUEST,
  PROTOCOL_3_0,
  RawConn,
  SSL_REQUEST,
  errorFields,
  frame,
  passwordMessage,
  queryMessage,
  rawLogin,
  rawQuery,
  requestPacket,
  startupPacket,
  type RawMessage,
} from './raw-client.ts';

const md5Hex = (s: string | Buffer): string => createHash('md5').update(s).digest('hex');
const BIN = fileURLToPath(new URL('../../bin/pgrouter.mjs', import.meta.url));
const PKG = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string };

let c: Cluster;
const proxies: ProxyHandle[] = [];
const clients = new Set<pg.Client>();
let tmp = '';

before(async () => {
  c = await getCluster();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'pgrouter-robust-'));
  await sql(c, c.primary, 'DROP TABLE IF EXISTS drain_t; CREATE TABLE drain_t (v int); GRANT ALL ON drain_t TO PUBLIC');
});

after(async () => {
  for (const cl of clients) await cl.end().catch(() => undefined);
  for (const p of proxies) await p.stop('SIGKILL').catch(() => undefined);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function proxy(o: ProxyOptions = {}): Promise<ProxyHandle> {
  const p = await startProxy(c, o);
  proxies.push(p);
  return p;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Opened {
  client: pg.Client;
  events: Array<{ at: number; err: Error & { code?: string } }>;
  ended: Promise<number>;
}

function newClient(p: ProxyHandle, user: string, password: string, extra: pg.ClientConfig = {}): Opened {
  const client = new pg.Client({
    host: p.host,
    port: p.port,
    user,
    password,
    database: c.database,
    connectionTimeoutMillis: 10_000,
    ...extra,
  });
  const events: Opened['events'] = [];
  client.on('error', (err: Error & { code?: string }) => events.push({ at: Date.now(), err }));
  const ended = new Promise<number>((resolve) => client.once('end', () => resolve(Date.now())));
  clients.add(client);
  return { client, events, ended };
}

async function connect(p: ProxyHandle, user: string, password: string, extra: pg.ClientConfig = {}): Promise<Opened> {
  const o = newClient(p, user, password, extra);
  await o.client.connect();
  return o;
}

async function leave(o: Opened): Promise<void> {
  await o.client.end().catch(() => undefined);
  clients.delete(o.client);
}

async function one(client: pg.Client, q: string): Promise<string | null> {
  const r = await client.query({ text: q, rowMode: 'array' });
  const v = (r.rows[0] as unknown[] | undefined)?.[0];
  return v === null || v === undefined ? null : String(v);
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 20_000): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(t);
      resolve({ code, out: out.trim(), err: err.trim() });
    });
  });
}

function psql(p: ProxyHandle, user: string, password: string, sslmode: string, commands: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  Object.assign(env, { PGPASSWORD: password, PGPASSFILE: '/dev/null', PGCONNECT_TIMEOUT: '10', LC_ALL: 'C' });
  const args = ['-X', '-A', '-t', '-w', `host=${p.host} port=${p.port} user=${user} dbname=${c.database} sslmode=${sslmode}`];
  for (const cmd of commands) args.push('-c', cmd);
  return run(path.join(c.binDir, 'psql'), args, env);
}

/** Resolves with the exit code if the process exits within `ms`, else 'running'. */
function exitWithin(p: ProxyHandle, ms: number): Promise<number | null | 'running'> {
  if (p.proc.exitCode !== null || p.proc.signalCode !== null) return Promise.resolve(p.proc.exitCode);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve('running'), ms);
    p.proc.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Fuzz

/** mulberry32: a small, fixed-seed PRNG so that every run sends the same bytes. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FRONTEND_TYPES = new Set('BCdcfDEHFPpQSX'.split('').map((ch) => ch.charCodeAt(0)));
const SMALL_TYPES = 'CDEHScfX';

type Expect =
  /** Must receive an ErrorResponse with one of these codes. */
  | { kind: 'fatal'; codes: readonly string[] }
  /** Either such an ErrorResponse or a clean close. */
  | { kind: 'fatal-or-close'; codes: readonly string[] }
  /** Anything the backend says is fine, but nothing from pgrouter's own internal error path. */
  | { kind: 'any-backend' };

interface FuzzCase {
  name: string;
  /** Log in as trust_user first (a valid session), then send `chunks`. */
  login: boolean;
  /** Pieces written one after the other (to exercise frames split across reads). */
  chunks: Buffer[];
  frames: number;
  expect: Expect;
}

const MALFORMED = ['08P01', '0A000', '28000', '28P01'] as const;

function makeCases(seed: number, n: number, users: { trust: string; scram: string; db: string }): FuzzCase[] {
  const rnd = prng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const bytes = (k: number): Buffer => Buffer.from(Array.from({ length: k }, () => int(0, 255)));
  const unknownType = (): number => {
    for (;;) {
      const t = int(0, 255);
      if (!FRONTEND_TYPES.has(t)) return t;
    }
  };
  const split = (b: Buffer): Buffer[] => {
    const parts: Buffer[] = [];
    let at = 0;
    while (at < b.length) {
      const k = Math.min(b.length - at, int(1, Math.max(1, Math.ceil(b.length / int(1, 4)))));
      parts.push(b.subarray(at, at + k));
      at += k;
    }
    return parts;
  };
  const len32 = (v: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v | 0, 0);
    return b;
  };
  const cases: FuzzCase[] = [];
  const kinds = 14;
  for (let i = 0; i < n; i++) {
    const kind = i % kinds;
    switch (kind) {
      case 0: {
        // Random bytes as the first packet.
        const b = bytes(int(1, 300));
        cases.push({ name: 'random-bytes', login: false, chunks: split(b), frames: 1, expect: { kind: 'fatal-or-close', codes: MALFORMED } });
        break;
      }
      case 1: {
        // A valid StartupMessage, then garbage that starts with an unknown message type.
        const g = Buffer.concat([Buffer.from([unknownType()]), bytes(int(0, 200))]);
        const b = Buffer.concat([startupPacket({ user: users.trust, database: users.db }), g]);
        cases.push({ name: 'startup-then-garbage', login: false, chunks: split(b), frames: 2, expect: { kind: 'fatal-or-close', codes: ['08P01'] } });
        break;
      }
      case 2: {
        const b = Buffer.concat([len32(int(10_001, 0x7fffffff)), bytes(int(0, 60))]);
        cases.push({ name: 'huge-startup-length', login: false, chunks: split(b), frames: 1, expect: { kind: 'fatal', codes: ['08P01'] } });
        break;
      }
      case 3: {
        const b = Buffer.concat([len32(-int(1, 0x7fffffff)), bytes(int(0, 60))]);
        cases.push({ name: 'negative-startup-length', login: false, chunks: split(b), frames: 1, expect: { kind: 'fatal', codes: ['08P01'] } });
        break;
      }
      case 4: {
        const b = Buffer.concat([len32(int(0, 7)), bytes(int(0, 20))]);
        cases.push({ name: 'short-startup-length', login: false, chunks: split(b), frames: 1, expect: { kind: 'fatal', codes: ['08P01'] } });
        break;
      }
      case 5: {
        // After login: a few valid queries, then an unknown message type.
        const parts: Buffer[] = [];
        const k = int(5, 50);
        for (let j = 0; j < k; j++) parts.push(queryMessage(`SELECT ${j}`));
        parts.push(frame(unknownType(), bytes(int(0, 100))));
        cases.push({ name: 'unknown-type-after-login', login: true, chunks: split(Buffer.concat(parts)), frames: k + 1, expect: { kind: 'fatal', codes: ['08P01'] } });
        break;
      }
      case 6: {
        // After login: a length over the limit of its type, or negative.
        const parts: Buffer[] = [];
        const k = int(5, 40);
        for (let j = 0; j < k; j++) parts.push(queryMessage(`SELECT ${j}`));
        const pick = int(0, 2);
        const t = pick === 0 ? SMALL_TYPES[int(0, SMALL_TYPES.length - 1)]! : pick === 1 ? 'Q' : 'P';
        const len = pick === 0 ? int(10_001, 0x7fffffff) : pick === 1 ? int(0x40000000, 0x7fffffff) : -int(1, 1000);
        parts.push(Buffer.concat([Buffer.from(t), len32(len), bytes(int(0, 40))]));
        cases.push({ name: 'bad-length-after-login', login: true, chunks: split(Buffer.concat(parts)), frames: k + 1, expect: { kind: 'fatal', codes: ['08P01'] } });
        break;
      }
      case 7: {
        // A truncated message followed by close, before or after login.
        const login = rnd() < 0.5;
        const whole = login ? queryMessage(`SELECT '${'x'.repeat(int(10, 500))}'`) : startupPacket({ user: users.trust, database: users.db });
        const cut = whole.subarray(0, int(1, whole.length - 1));
        cases.push({ name: 'truncated-then-close', login, chunks: split(cut), frames: 1, expect: { kind: 'fatal-or-close', codes: [] } });
        break;
      }
      case 8: {
        let major = int(0, 0xffff);
        if (major === 3 || major === 1234) major = 2;
        const v = (major << 16) | int(0, 0xffff);
        const b = startupPacket({ user: users.trust, database: users.db }, v);
        cases.push({ name: 'bad-protocol-version', login: false, chunks: split(b), frames: 1, expect: { kind: 'fatal', codes: ['0A000'] } });
        break;
      }
      case 9: {
        // Protocol 3.0 with a broken parameter list (no terminator, or garbage after it).
        const body = rnd() < 0.5 ? Buffer.from(`user\0${users.trust}\0database`) : Buffer.concat([Buffer.from(`user\0${users.trust}\0\0`), bytes(int(1, 30))]);
        const b = Buffer.concat([len32(8 + body.length), len32(PROTOCOL_3_0), body]);
        cases.push({ name: 'bad-startup-layout', login: false, chunks: split(b), frames: 1, expect: { kind: 'fatal', codes: ['08P01'] } });
        break;
      }
      case 10: {
        // SCRAM requested; the client answers with garbage (a 'p' with junk, or another type).
        const parts: Buffer[] = [startupPacket({ user: users.scram, database: users.db })];
        const k = int(1, 8);
        for (let j = 0; j < k; j++) parts.push(frame(rnd() < 0.7 ? 'p' : unknownType(), bytes(int(0, 80))));
        cases.push({ name: 'scram-garbage', login: false, chunks: split(Buffer.concat(parts)), frames: k + 1, expect: { kind: 'fatal-or-close', codes: MALFORMED } });
        break;
      }
      case 11: {
        const b = requestPacket(CANCEL_REQUEST, int(0, 0x7fffffff), int(0, 0x7fffffff));
        cases.push({ name: 'random-cancel', login: false, chunks: [b], frames: 1, expect: { kind: 'fatal-or-close', codes: [] } });
        break;
      }
      case 12: {
        // SSLRequest (ssl is off: 'N'), then random bytes as the startup packet.
        const b = Buffer.concat([requestPacket(SSL_REQUEST), bytes(int(1, 200))]);
        cases.push({ name: 'ssl-then-garbage', login: false, chunks: [b.subarray(0, 8), b.subarray(8)], frames: 2, expect: { kind: 'fatal-or-close', codes: MALFORMED } });
        break;
      }
      case 13: {
        // After login: known extended-protocol types with random bodies, then Sync (the backend judges).
        const parts: Buffer[] = [];
        const k = int(5, 60);
        for (let j = 0; j < k; j++) parts.push(frame('BPDECHdcf'[int(0, 8)]!, bytes(int(0, 60))));
        parts.push(frame('S'));
        cases.push({ name: 'garbage-bodies-after-login', login: true, chunks: split(Buffer.concat(parts)), frames: k + 1, expect: { kind: 'any-backend' } });
        break;
      }
    }
  }
  return cases;
}

interface FuzzOutcome {
  fuzz: FuzzCase;
  errors: Array<Record<string, string>>;
  closedByServer: boolean;
  closed: boolean;
  loginFailed?: string;
}

function parseAll(buf: Buffer): RawMessage[] {
  const out: RawMessage[] = [];
  let at = 0;
  // The 'N' answer to an SSLRequest is a single byte.
  if (buf[0] === 0x4e && (buf.length === 1 || buf[1] !== 0)) at = 1;
  while (buf.length - at >= 5) {
    const len = buf.readInt32BE(at + 1);
    if (len < 4 || at + 1 + len > buf.length) break;
    out.push({ type: String.fromCharCode(buf[at]!), body: buf.subarray(at + 5, at + 1 + len) });
    at += 1 + len;
  }
  return out;
}

async function runCase(port: number, f: FuzzCase): Promise<FuzzOutcome> {
  const conn = await RawConn.connect(port);
  const received: Buffer[] = [];
  try {
    if (f.login) {
      try {
        await rawLogin(conn, 'trust_user', 'app');
      } catch (e) {
        return { fuzz: f, errors: [], closedByServer: true, closed: true, loginFailed: (e as Error).message };
      }
    }
    conn.sock.on('data', (d: Buffer) => received.push(d));
    const before = conn.pending;
    if (before.length > 0) received.push(Buffer.from(before));
    for (const ch of f.chunks) {
      conn.write(ch);
      if (f.chunks.length > 1) await new Promise((r) => setImmediate(r));
    }
    // Cases that must be answered get longer (a loaded machine); the others are ended sooner.
    let closedByServer = await conn.waitClosed(f.expect.kind === 'fatal' ? 2000 : 500);
    if (!closedByServer) {
      conn.end();
      await conn.waitClosed(3000);
    }
    const errors = parseAll(Buffer.concat(received))
      .filter((m) => m.type === 'E')
      .map((m) => errorFields(m.body));
    return { fuzz: f, errors, closedByServer, closed: conn.closed };
  } finally {
    conn.destroy();
  }
}

describe('fuzz: malformed, truncated and oversized input', () => {
  for (const mode of ['session', 'transaction']) {
    test(`pool_mode ${mode}: hundreds of raw connections with thousands of bad frames: each gets a FATAL 08P01/0A000/28000/28P01 or is closed; the proxy lives on`, async () => {
      const p = await proxy({ conf: { num_init_children: 16, pool_mode: mode } });
      const cases = makeCases(0x5eed2024, 336, { trust: c.users.trust.name, scram: c.users.scram.name, db: c.database });
      const frames = cases.reduce((n, f) => n + f.frames, 0);
      assert.ok(cases.length >= 300 && frames >= 2000, `${cases.length} connections, ${frames} frames`);

      const outcomes: FuzzOutcome[] = [];
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < cases.length) {
          const f = cases[next++]!;
          outcomes.push(await runCase(p.port, f));
        }
      };
      await Promise.all(Array.from({ length: 12 }, worker));

      const problems: string[] = [];
      for (const o of outcomes) {
        const f = o.fuzz;
        const codes = o.errors.map((e) => e['C'] ?? '?');
        const what = `${f.name}: errors ${JSON.stringify(o.errors.map((e) => `${e['C']} ${e['M']}`))}`;
        if (o.loginFailed) problems.push(`${f.name}: login failed: ${o.loginFailed}`);
        if (!o.closed) problems.push(`${what}: connection still open after our FIN`);
        if (o.errors.some((e) => /internal error in pgrouter/.test(e['M'] ?? ''))) problems.push(`${what}: internal error`);
        if (f.expect.kind === 'fatal') {
          if (!codes.some((x) => f.expect.kind !== 'any-backend' && f.expect.codes.includes(x))) problems.push(`${what}: expected FATAL ${f.expect.codes.join('/')}`);
          if (!o.closedByServer) problems.push(`${what}: not closed by pgrouter after the FATAL`);
        }
        if (f.expect.kind !== 'any-backend') {
          const allowed = f.expect.codes;
          const bad = codes.filter((x) => !allowed.includes(x));
          if (bad.length > 0) problems.push(`${what}: unexpected codes ${bad.join(',')}`);
          for (const e of o.errors) if (e['S'] !== 'FATAL') problems.push(`${what}: severity ${e['S']}`);
        }
      }
      // The proxy lives, holds no leaked slot (all 16 sessions at once) and serves normal clients.
      assert.equal(p.proc.exitCode, null, 'pgrouter is alive');
      const many = await Promise.all(Array.from({ length: 16 }, () => connect(p, c.users.scram.name, c.users.scram.password)));
      assert.deepEqual(await Promise.all(many.map((o) => one(o.client, 'SELECT 1'))), Array(16).fill('1'));
      await Promise.all(many.map(leave));
      const r = await psql(p, c.users.md5.name, c.users.md5.password, 'disable', ['SELECT current_user']);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out, c.users.md5.name);
      const bad = p.logs.filter((l) => /"level":"(error|fatal)"/.test(l));
      for (const l of bad.slice(0, 3)) problems.push(`pgrouter logged: ${l.slice(0, 300)}`);
      if (bad.length > 3) problems.push(`... and ${bad.length - 3} more error/fatal log lines`);
      // Every category was exercised (each connection of a 'fatal' category was checked above).
      const names = new Set(outcomes.map((o) => o.fuzz.name));
      assert.equal(names.size, 14, [...names].join(', '));
      // Grouped by kind, with a count, so that one bug does not hide another.
      const grouped = new Map<string, number>();
      for (const pr of problems) {
        const key = pr.replace(/\d{5,}/g, 'N');
        grouped.set(key, (grouped.get(key) ?? 0) + 1);
      }
      assert.deepEqual([...grouped].map(([k, n]) => `${n}× ${k}`), [], `${problems.length} problems in ${outcomes.length} connections`);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Protocol negotiation

describe('protocol negotiation', () => {
  let p: ProxyHandle;
  before(async () => {
    p = await proxy();
  });

  for (const [label, version] of [
    ['2.0', 2 << 16],
    ['4.0', 4 << 16],
    ['1234.5681', (1234 << 16) | 5681], // 5678-5680 are Cancel, SSL and GSSENC
  ] as const) {
    test(`protocol ${label}: FATAL 0A000 "unsupported frontend protocol", then closed`, async () => {
      const conn = await RawConn.connect(p.port);
      conn.write(startupPacket({ user: c.users.trust.name, database: c.database }, version));
      const m = await conn.readMessage(5000);
      assert.equal(m?.type, 'E');
      const f = errorFields(m!.body);
      assert.equal(f['S'], 'FATAL');
      assert.equal(f['C'], '0A000');
      assert.match(f['M'] ?? '', new RegExp(`unsupported frontend protocol ${label.replace('.', '\\.')}`));
      assert.equal(await conn.waitClosed(3000), true);
    });
  }

  test('protocol 3.2 with a _pq_ option: NegotiateProtocolVersion (3.0, option listed), then the login completes', async () => {
    const conn = await RawConn.connect(p.port);
    conn.write(startupPacket({ user: c.users.trust.name, database: c.database, '_pq_.fancy': 'on' }, (3 << 16) | 2));
    const { found, seen } = await conn.readUntil('Z', 10_000);
    assert.ok(found, `login completed: ${seen.map((m) => m.type).join('')}`);
    const v = seen.find((m) => m.type === 'v');
    assert.ok(v, 'NegotiateProtocolVersion sent');
    assert.equal(v.body.readInt32BE(0), 0, 'newest minor version supported: 0');
    assert.equal(v.body.readInt32BE(4), 1, 'one unrecognized option');
    assert.equal(v.body.toString('utf8', 8, v.body.length - 1), '_pq_.fancy');
    const r = await rawQuery(conn, 'SELECT 7');
    assert.deepEqual(r.rows, [['7']]);
    conn.destroy();
  });

  test('a login and a query sent three bytes per read: each piece kept across reads is intact', async () => {
    // Client sockets read into a buffer that the next read reuses; a partial startup packet,
    // password message or query must survive the reads that complete it.
    const conn = await RawConn.connect(p.port);
    conn.sock.setNoDelay(true);
    const trickle = async (b: Buffer): Promise<void> => {
      for (let i = 0; i < b.length; i += 3) {
        conn.write(b.subarray(i, i + 3));
        await new Promise((r) => setTimeout(r, 3));
      }
    };
    await trickle(startupPacket({ user: c.users.md5.name, database: c.database, application_name: 'trickle' }));
    const ask = await conn.readMessage(10_000);
    assert.equal(ask?.type, 'R');
    assert.equal(ask!.body.readInt32BE(0), 5, 'MD5 password requested');
    const salt = ask!.body.subarray(4, 8);
    const inner = md5Hex(c.users.md5.password + c.users.md5.name);
    await trickle(passwordMessage(`md5${md5Hex(Buffer.concat([Buffer.from(inner), salt]))}`));
    const { found } = await conn.readUntil('Z', 10_000);
    assert.ok(found, 'login completed');
    await trickle(queryMessage("SELECT current_user, current_setting('application_name'), repeat('x', 40)"));
    const { seen } = await conn.readUntil('Z', 10_000);
    const row = seen.find((m) => m.type === 'D');
    assert.ok(row, `a row: ${seen.map((m) => m.type).join('')}`);
    const text = row.body.toString('latin1');
    assert.ok(text.includes(c.users.md5.name) && text.includes('trickle') && text.includes('x'.repeat(40)), text);
    conn.destroy();
  });

  test('GSSENCRequest is refused with N; a normal startup on the same socket then works', async () => {
    const conn = await RawConn.connect(p.port);
    conn.write(requestPacket(GSSENC_REQUEST));
    assert.equal(await conn.readByte(5000), 'N');
    const login = await rawLogin(conn, c.users.trust.name, c.database);
    assert.deepEqual(login.authCodes, [0]);
    assert.equal(login.txStatus, 'I');
    assert.deepEqual((await rawQuery(conn, 'SELECT 1')).rows, [['1']]);
    conn.destroy();
  });

  test('SSLRequest with ssl off is refused with N; a normal md5 login on the same socket then works', async () => {
    const conn = await RawConn.connect(p.port);
    conn.write(requestPacket(SSL_REQUEST));
    assert.equal(await conn.readByte(5000), 'N');
    const login = await rawLogin(conn, c.users.md5.name, c.database, c.users.md5.password);
    assert.deepEqual(login.authCodes, [5, 0]);
    assert.deepEqual((await rawQuery(conn, 'SELECT current_user')).rows, [[c.users.md5.name]]);
    conn.destroy();
  });

  test('SSLRequest and startup packet in one write, ssl off: N, then the login goes on from the same bytes', async () => {
    const conn = await RawConn.connect(p.port);
    conn.write(Buffer.concat([requestPacket(SSL_REQUEST), startupPacket({ user: c.users.trust.name, database: c.database })]));
    assert.equal(await conn.readByte(5000), 'N');
    let ready: string | undefined;
    for (let m = await conn.readMessage(5000); m !== undefined; m = await conn.readMessage(5000)) {
      assert.notEqual(m.type, 'E', m.type === 'E' ? JSON.stringify(errorFields(m.body)) : '');
      if (m.type === 'Z') {
        ready = String.fromCharCode(m.body[0]!);
        break;
      }
    }
    assert.equal(ready, 'I', 'ReadyForQuery after the pipelined startup packet');
    assert.deepEqual((await rawQuery(conn, 'SELECT current_user')).rows, [[c.users.trust.name]]);
    conn.destroy();
  });

  test('a second SSLRequest or GSSENCRequest gets the FATAL PostgreSQL sends, after the first one\'s N', async () => {
    /** N or S, then what a second request of the same kind gets. */
    const twice = async (port: number, code: number): Promise<string> => {
      const conn = await RawConn.connect(port);
      conn.write(requestPacket(code));
      const answer = await conn.readByte(5000);
      conn.write(requestPacket(code));
      const m = await conn.readMessage(5000);
      const f = m?.type === 'E' ? errorFields(m.body) : {};
      const closed = await conn.waitClosed(5000);
      conn.destroy();
      return `${answer} ${m?.type} ${f['S']} ${f['C']} ${f['M']} closed=${closed}`;
    };
    // The rig's PostgreSQL has ssl off, so its answers are the reference.
    const direct = await twice(c.primary.port, SSL_REQUEST);
    assert.equal(await twice(p.port, SSL_REQUEST), direct);
    assert.equal(direct, 'N E FATAL 0A000 unsupported frontend protocol 1234.5679: server supports 3.0 to 3.0 closed=true');
    // It would offer GSS encryption ('G'), so for GSS the reference is the same message's form.
    assert.equal(await twice(p.port, GSSENC_REQUEST), 'N E FATAL 0A000 unsupported frontend protocol 1234.5680: server supports 3.0 to 3.0 closed=true');
    // Either order of the two kinds is fine, as in PostgreSQL: SSL refused, then GSS refused, then a login.
    const conn = await RawConn.connect(p.port);
    conn.write(requestPacket(SSL_REQUEST));
    assert.equal(await conn.readByte(5000), 'N');
    conn.write(requestPacket(GSSENC_REQUEST));
    assert.equal(await conn.readByte(5000), 'N');
    const login = await rawLogin(conn, c.users.trust.name, c.database);
    assert.equal(login.txStatus, 'I');
    conn.destroy();
  });
});

describe('TLS (ssl = on, self-signed certificate)', () => {
  let p: ProxyHandle;
  before(async () => {
    const key = path.join(tmp, 'server.key');
    const cert = path.join(tmp, 'server.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', cert], { stdio: 'pipe' });
    p = await proxy({
      conf: { ssl: 'on', ssl_cert: cert, ssl_key: key },
      hba: [
        'hostssl all all 127.0.0.1/32 scram-sha-256',
        `hostnossl all ${c.users.trust.name} 127.0.0.1/32 trust`,
        'hostnossl all all 127.0.0.1/32 reject',
      ].join('\n') + '\n',
    });
  });

  test('psql sslmode=require: \\conninfo reports an SSL connection; SCRAM over TLS works', async () => {
    for (const u of [c.users.scram, c.users.superuser]) {
      const r = await psql(p, u.name, u.password, 'require', ['\\conninfo', 'SELECT current_user']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /SSL connection \(protocol: TLSv1\.[23]/);
      assert.match(r.out, new RegExp(`\\n${u.name}$`));
    }
  });

  test('psql sslmode=disable still works (hostnossl line); a hostssl-only user is rejected without TLS', async () => {
    const ok = await psql(p, c.users.trust.name, 'x', 'disable', ['\\conninfo', 'SELECT current_user']);
    assert.equal(ok.code, 0, ok.err);
    assert.doesNotMatch(ok.out, /SSL connection/);
    assert.match(ok.out, /trust_user$/);
    const no = await psql(p, c.users.scram.name, c.users.scram.password, 'disable', ['SELECT 1']);
    assert.notEqual(no.code, 0);
    assert.match(no.err, /pool_hba\.conf rejects connection for user "scram_user"/);
  });

  test('node-postgres with ssl { rejectUnauthorized: false } gets an encrypted session; without ssl it works in the clear', async () => {
    const s = await connect(p, c.users.scram.name, c.users.scram.password, { ssl: { rejectUnauthorized: false } });
    const stream = (s.client as unknown as { connection: { stream: TLSSocket } }).connection.stream;
    assert.equal(stream.encrypted, true, 'TLS socket');
    assert.match(stream.getProtocol() ?? '', /^TLSv1\.[23]$/);
    assert.equal(await one(s.client, 'SELECT current_user'), c.users.scram.name);
    await leave(s);
    const plain = await connect(p, c.users.trust.name, 'x');
    const ps = (plain.client as unknown as { connection: { stream: { encrypted?: boolean } } }).connection.stream;
    assert.notEqual(ps.encrypted, true);
    assert.equal(await one(plain.client, 'SELECT 1'), '1');
    await leave(plain);
  });
});

// ---------------------------------------------------------------------------------------------
// Signals

describe('signals', () => {
  /** Waits up to `ms` for a first error event; returns its SQLSTATE (or the message) or 'none'. */
  async function firstError(o: Opened, ms: number): Promise<string> {
    const deadline = Date.now() + ms;
    while (o.events.length === 0 && Date.now() < deadline) await sleep(25);
    const e = o.events[0]?.err;
    return e === undefined ? 'none' : (e.code ?? e.message);
  }

  /** How a new connection attempt fares: 'refused', 'closed-unserved', or 'served'. */
  async function newConnection(p: ProxyHandle): Promise<string> {
    const probe = await RawConn.connect(p.port).catch((e: NodeJS.ErrnoException) => e);
    if (!(probe instanceof RawConn)) return probe.code === 'ECONNREFUSED' ? 'refused' : `error ${probe.code}`;
    probe.write(startupPacket({ user: c.users.trust.name, database: c.database }));
    const m = await probe.readMessage(1500);
    probe.destroy();
    if (m === undefined) return probe.closed ? 'closed-unserved' : 'no-answer';
    return m.type === 'E' ? `refused-with ${errorFields(m.body)['C']}` : 'served';
  }

  // Each test records what it observes and compares everything at once, so that one failure
  // does not hide the rest of the picture.
  for (const [mode, v] of [['session', 0], ['transaction', 10]] as const)
    test(`pool_mode ${mode}: SIGTERM drains: idle session gets 57P01 at once, new connections are refused, a transaction may COMMIT and then gets 57P01, exit 0`, async () => {
      const p = await proxy({ conf: { drain_timeout: 10, pool_mode: mode } });
      try {
        const idle = await connect(p, c.users.trust.name, 'x');
        await one(idle.client, 'SELECT 1');
        const tx = await connect(p, c.users.scram.name, c.users.scram.password);
        await tx.client.query('BEGIN');
        await tx.client.query('INSERT INTO drain_t VALUES ($1)', [v + 1]);
        p.proc.kill('SIGTERM');
        await sleep(200);
        const seen: Record<string, unknown> = {};
        seen['idle session within 2 s'] = await firstError(idle, 2000);
        const conn = await newConnection(p);
        seen['new connection after SIGTERM'] = conn === 'refused' || conn === 'closed-unserved' || conn.startsWith('refused-with') ? 'not served' : conn;
        seen['transaction session before COMMIT'] = tx.events.length === 0 ? 'untouched' : (tx.events[0]?.err.code ?? 'closed');
        const commit = await settledWithin(
          (async () => {
            await tx.client.query('INSERT INTO drain_t VALUES ($1)', [v + 2]);
            await tx.client.query('COMMIT');
          })(),
          3000,
        );
        seen['COMMIT'] = commit.state === 'ok' ? 'ok' : commit.state === 'err' ? `error: ${(commit.err as Error).message}` : 'hung';
        seen['transaction session after COMMIT, within 2 s'] = await firstError(tx, 2000);
        seen['exit within 3 s'] = await exitWithin(p, 3000);
        seen['rows committed'] = await sql(c, c.primary, `SELECT count(*) FROM drain_t WHERE v IN (${v + 1}, ${v + 2})`);
        assert.deepEqual(seen, {
          'idle session within 2 s': '57P01',
          'new connection after SIGTERM': 'not served',
          'transaction session before COMMIT': 'untouched',
          COMMIT: 'ok',
          'transaction session after COMMIT, within 2 s': '57P01',
          'exit within 3 s': 0,
          'rows committed': '2',
        });
      } finally {
        if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
      }
    });

  test('SIGTERM with drain_timeout 2: a transaction left open is ended after ~2 s and the process exits 0', async () => {
    const p = await proxy({ conf: { drain_timeout: 2 } });
    try {
      const tx = await connect(p, c.users.scram.name, c.users.scram.password);
      await tx.client.query('BEGIN');
      await tx.client.query('INSERT INTO drain_t VALUES (99)');
      const t0 = Date.now();
      p.proc.kill('SIGTERM');
      const code = await exitWithin(p, 4500);
      const took = Date.now() - t0;
      const seen: Record<string, unknown> = {
        'exit within 4.5 s': code,
        'not before drain_timeout': took >= 1500,
        'client session ended': (await Promise.race([tx.ended.then(() => true), sleep(1000).then(() => false)])) || tx.events.length > 0,
        'open transaction committed rows': await sql(c, c.primary, 'SELECT count(*) FROM drain_t WHERE v = 99'),
      };
      assert.deepEqual(seen, {
        'exit within 4.5 s': 0,
        'not before drain_timeout': true,
        'client session ended': true,
        'open transaction committed rows': '0',
      }, `took ${took} ms`);
    } finally {
      if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
    }
  });

  test('SIGTERM: a client waiting for a slot (num_init_children 1) is refused with 57P01/57P03, not an internal error', async () => {
    const p = await proxy({ conf: { num_init_children: 1, drain_timeout: 5 } });
    try {
      const a = await connect(p, c.users.trust.name, 'x');
      await one(a.client, 'SELECT 1');
      const b = newClient(p, c.users.trust.name, 'x');
      const bIn = b.client.connect();
      assert.equal((await settledWithin(bIn, 500)).state, 'pending', 'the second client waits for the slot');
      p.proc.kill('SIGTERM');
      const r = await settledWithin(bIn, 3000);
      const seen: Record<string, unknown> = {
        'waiting client within 3 s': r.state === 'err' ? ((r.err as { code?: string }).code ?? (r.err as Error).message) : r.state,
        'connected idle client within 3 s': await firstError(a, 100),
      };
      const wanted = ['57P01', '57P03'].includes(String(seen['waiting client within 3 s'])) ? seen['waiting client within 3 s'] : '57P01 or 57P03';
      assert.deepEqual(seen, { 'waiting client within 3 s': wanted, 'connected idle client within 3 s': '57P01' });
    } finally {
      if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
    }
  });

  test('SIGINT with a client connected: exits promptly (0) and the client is disconnected', async () => {
    const p = await proxy();
    try {
      const o = await connect(p, c.users.trust.name, 'x');
      await one(o.client, 'SELECT 1');
      p.proc.kill('SIGINT');
      const seen: Record<string, unknown> = {
        'exit within 2 s': await exitWithin(p, 2000),
        'client can still query': await settledOk(o.client),
      };
      assert.deepEqual(seen, { 'exit within 2 s': 0, 'client can still query': false });
    } finally {
      if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
    }
  });

  test('SIGINT with no client: exits promptly (0)', async () => {
    const p = await proxy();
    try {
      p.proc.kill('SIGINT');
      assert.equal(await exitWithin(p, 2000), 0);
    } finally {
      if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
    }
  });
});

/** Resolves with how a promise settled within `ms`. */
async function settledWithin<T>(pr: Promise<T>, ms: number): Promise<{ state: 'pending' } | { state: 'ok'; value: T } | { state: 'err'; err: unknown }> {
  let t: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    pr.then((value) => ({ state: 'ok' as const, value }), (err: unknown) => ({ state: 'err' as const, err })),
    new Promise<{ state: 'pending' }>((resolve) => (t = setTimeout(() => resolve({ state: 'pending' }), ms))),
  ]);
  clearTimeout(t);
  return r;
}

async function settledOk(client: pg.Client): Promise<boolean> {
  try {
    await Promise.race([client.query('SELECT 1'), sleep(2000).then(() => Promise.reject(new Error('timeout')))]);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Configuration errors and the command line

describe('configuration errors and the command line', () => {
  let port = 0;
  let good = '';
  let bad = '';
  let syntax = '';
  before(async () => {
    port = await freePort();
    const base = [
      "listen_addresses = '127.0.0.1'",
      `port = ${port}`,
      `unix_socket_directories = '${tmp}'`,
      "backend_hostname0 = '127.0.0.1'",
      `backend_port0 = ${c.primary.port}`,
    ];
    const dirGood = path.join(tmp, 'good');
    const dirBad = path.join(tmp, 'bad');
    const dirSyntax = path.join(tmp, 'syntax');
    for (const d of [dirGood, dirBad, dirSyntax]) execFileSync('mkdir', ['-p', d]);
    good = path.join(dirGood, 'pgpool.conf');
    bad = path.join(dirBad, 'pgpool.conf');
    syntax = path.join(dirSyntax, 'pgpool.conf');
    writeFileSync(good, [...base, 'num_init_children = 4'].join('\n') + '\n');
    writeFileSync(bad, [...base, 'num_init_chidren = 4', "max_pool = 'lots'"].join('\n') + '\n');
    writeFileSync(syntax, [...base, "listen_backlog_multiplier = '2", 'num_init_children = 4'].join('\n') + '\n');
  });

  test('a misspelled parameter: pgrouter exits non-zero with "pgpool.conf:<line>:" and the name on stderr, never listening', async () => {
    const r = await run(process.execPath, [BIN, '-f', bad], process.env, 15_000);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /pgpool\.conf:6: .*num_init_chidren/);
    assert.match(r.err, /pgpool\.conf:7: .*max_pool/);
    const probe = await RawConn.connect(port).catch((e: NodeJS.ErrnoException) => e);
    assert.ok(!(probe instanceof RawConn), 'nothing listens on the configured port');
  });

  test('a malformed line (unterminated quote): exits non-zero naming the file and line', async () => {
    const r = await run(process.execPath, [BIN, '-f', syntax], process.env, 15_000);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /pgpool\.conf:6: /);
  });

  test('check-config: exit 0 for a good file, 1 and the same problems for a bad one', async () => {
    const ok = await run(process.execPath, [BIN, 'check-config', '-f', good]);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /configuration OK/);
    const ko = await run(process.execPath, [BIN, 'check-config', '-f', bad]);
    assert.equal(ko.code, 1);
    const problems = (s: string): string[] => s.split('\n').filter((l) => /pgpool\.conf:\d+:/.test(l)).map((l) => l.trim()).sort();
    const runErr = (await run(process.execPath, [BIN, '-f', bad], process.env, 15_000)).err;
    assert.ok(problems(`${ko.out}\n${ko.err}`).length >= 2);
    assert.deepEqual(problems(`${ko.out}\n${ko.err}`), problems(runErr));
  });

  test('--help and --version (and -h, -v)', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await run(process.execPath, [BIN, flag]);
      assert.equal(r.code, 0);
      assert.match(r.out, /Usage:/);
      assert.match(r.out, /check-config/);
    }
    for (const flag of ['--version', '-v']) {
      const r = await run(process.execPath, [BIN, flag]);
      assert.equal(r.code, 0);
      assert.equal(r.out, `pgrouter ${PKG.version}`);
    }
  });
});
