// Helpers for clients.test.ts: running psql/pgbench as child processes, a tiny raw protocol 3.0
// client (md5 or cleartext auth) for byte-level pipelines, CancelRequest, and pg-copy-streams.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { serialize } from 'pg-protocol';
import type pg from 'pg';

/** Result of a child process run by {@link run}. */
export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Options of {@link run}. */
export interface RunOptions {
  env?: Record<string, string>;
  input?: string;
  /** Send `signal` (default SIGKILL) after this many ms. */
  killAfterMs?: number;
  signal?: NodeJS.Signals;
  /** Called once with the child, e.g. to signal it when something happens. */
  onSpawn?: (child: ReturnType<typeof spawn>) => void;
}

/** The environment for psql/pgbench: no PG* variables from outside, C locale, no psqlrc. */
export function clientEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  env['LC_ALL'] = 'C';
  env['LANG'] = 'C';
  env['PGCONNECT_TIMEOUT'] = '10';
  return { ...env, ...extra };
}

/** Spawns `file args`, collects stdout/stderr; never rejects on a non-zero exit. */
export function run(file: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: clientEnv(o.env),
      stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = o.killAfterMs === undefined ? undefined : setTimeout(() => child.kill(o.signal ?? 'SIGKILL'), o.killAfterMs);
    // A safety net so a hung client never hangs the test file.
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
    if (o.input !== undefined) child.stdin?.end(o.input);
    o.onSpawn?.(child);
  });
}

/** One backend message as the raw client sees it. */
export interface RawMessage {
  /** Type byte as a character ('Z', 'E', 'D'...). */
  type: string;
  body: Buffer;
}

/** The SQLSTATE (field 'C') of an ErrorResponse/NoticeResponse body, or the field `f`. */
export function errorField(body: Buffer, f = 'C'): string | undefined {
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const code = String.fromCharCode(body[i]!);
    const end = body.indexOf(0, i + 1);
    if (code === f) return body.toString('utf8', i + 1, end);
    i = end + 1;
  }
  return undefined;
}

/** Column values (text) of a DataRow body. */
export function dataRowValues(body: Buffer): Array<string | null> {
  const n = body.readInt16BE(0);
  const out: Array<string | null> = [];
  let p = 2;
  for (let k = 0; k < n; k++) {
    const len = body.readInt32BE(p);
    p += 4;
    if (len < 0) out.push(null);
    else {
      out.push(body.toString('utf8', p, p + len));
      p += len;
    }
  }
  return out;
}

/** The NUL-terminated string at the start of a body (CommandComplete's tag). */
export function cstring(body: Buffer): string {
  const end = body.indexOf(0);
  return body.toString('utf8', 0, end < 0 ? body.length : end);
}

/**
 * A minimal protocol 3.0 client over a raw socket: StartupMessage, md5 or cleartext password,
 * then byte-exact messages in and parsed messages out. For pipelines pg/postgres.js cannot make.
 */
export class RawClient {
  private buf: Buffer = Buffer.alloc(0);
  private readonly queue: RawMessage[] = [];
  private waiter: (() => void) | null = null;
  closed = false;
  /** When set, messages it returns true for are not queued (counting a huge result without keeping it). */
  skip: ((m: RawMessage) => boolean) | null = null;
  pid = 0;
  secret = 0;
  /** ParameterStatus values received during startup. */
  readonly parameters = new Map<string, string>();

  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      while (this.buf.length >= 5) {
        const len = this.buf.readInt32BE(1);
        if (this.buf.length < 1 + len) break;
        const m = { type: String.fromCharCode(this.buf[0]!), body: this.buf.subarray(5, 1 + len) };
        if (!this.skip?.(m)) this.queue.push({ type: m.type, body: Buffer.from(m.body) });
        this.buf = this.buf.subarray(1 + len);
      }
      this.wake();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
    sock.on('error', (e) => (this.socketError = e));
  }

  /** The socket's error, if it had one (a reset shows here). */
  socketError: Error | undefined;

  /** From now on DataRows are counted instead of queued; returns the count so far. */
  countDataRows(): () => number {
    let rows = 0;
    this.skip = (m) => {
      if (m.type !== 'D') return false;
      rows++;
      return true;
    };
    return () => rows;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Connects and authenticates (trust, cleartext or md5); resolves after the first ReadyForQuery. */
  static async connect(o: {
    host: string;
    port: number;
    user: string;
    password: string;
    database: string;
    /** Extra StartupMessage parameters (application_name, options...). */
    params?: Record<string, string>;
  }): Promise<RawClient> {
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: o.host, port: o.port });
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
    const rc = new RawClient(sock);
    sock.write(serialize.startup({ ...o.params, user: o.user, database: o.database }));
    for (;;) {
      const m = await rc.next();
      if (m.type === 'R') {
        const code = m.body.readInt32BE(0);
        if (code === 3) sock.write(serialize.password(o.password));
        else if (code === 5) {
          const inner = createHash('md5').update(o.password + o.user).digest('hex');
          const outer = createHash('md5').update(Buffer.concat([Buffer.from(inner), m.body.subarray(4, 8)])).digest('hex');
          sock.write(serialize.password('md5' + outer));
        } else if (code !== 0) throw new Error(`RawClient: unsupported authentication request ${code}`);
      } else if (m.type === 'S') {
        const k = cstring(m.body);
        rc.parameters.set(k, cstring(m.body.subarray(Buffer.byteLength(k) + 1)));
      } else if (m.type === 'K') {
        rc.pid = m.body.readInt32BE(0);
        rc.secret = m.body.readInt32BE(4);
      } else if (m.type === 'E') throw new Error(`RawClient: startup failed: ${errorField(m.body, 'M')}`);
      else if (m.type === 'Z') return rc;
    }
  }

  /** Writes the messages in one go (one TCP segment where it fits). */
  write(...bufs: Buffer[]): void {
    this.sock.write(Buffer.concat(bufs));
  }

  /** The next message; rejects if none arrives within timeoutMs or the socket closes first. */
  async next(timeoutMs = 10_000): Promise<RawMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.queue.shift();
      if (m) return m;
      if (this.closed) throw new Error('RawClient: connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('RawClient: timeout waiting for a message');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** Messages up to and including the next ReadyForQuery. */
  async untilReady(timeoutMs = 10_000): Promise<RawMessage[]> {
    const out: RawMessage[] = [];
    for (;;) {
      const m = await this.next(timeoutMs);
      out.push(m);
      if (m.type === 'Z') return out;
    }
  }

  /** Messages that arrive within `ms` (to prove nothing more comes). */
  async drain(ms: number): Promise<RawMessage[]> {
    await new Promise((r) => setTimeout(r, ms));
    return this.queue.splice(0);
  }

  /** Sends Terminate and closes. */
  terminate(): void {
    this.sock.end(serialize.end());
  }

  /** Drops the connection without Terminate. */
  destroy(): void {
    this.sock.destroy();
  }
}

/** Sends a CancelRequest (pid, secret) to host:port and waits for the server to close it. */
export function sendCancelRequest(host: string, port: number, pid: number, secret: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    s.once('connect', () => s.write(serialize.cancel(pid, secret)));
    s.once('error', reject);
    s.once('close', () => resolve());
    s.setTimeout(5000, () => s.destroy());
  });
}

/** A pg-copy-streams stream as pg.Client.query accepts it. */
type CopyStream<S> = S & pg.Submittable;

/** pg-copy-streams has no type declarations; this is the part we use. */
export const copyStreams = createRequire(import.meta.url)('pg-copy-streams') as {
  from(text: string): CopyStream<Writable>;
  to(text: string): CopyStream<Readable>;
};

/** Resident set size of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Polls `check` every 25 ms until it is true; throws `what` after timeoutMs. */
export async function waitUntil(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
