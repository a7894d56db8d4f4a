// A raw-socket PostgreSQL protocol client for integration tests: builds startup-phase packets
// and frontend messages byte by byte (valid or not), reads single-byte SSL/GSS answers and
// framed backend messages, decodes ErrorResponse fields and tells when the server closed.

import { createHash } from 'node:crypto';
import net from 'node:net';

/** A backend message: type letter and body (after the 4-byte length). */
export interface RawMessage {
  readonly type: string;
  readonly body: Buffer;
}

/** ErrorResponse / NoticeResponse fields by their one-letter code (S, C, M, D, H...). */
export type ErrorFields = Record<string, string>;

export const PROTOCOL_3_0 = 196608;
export const SSL_REQUEST = 80877103;
export const GSSENC_REQUEST = 80877104;
export const CANCEL_REQUEST = 80877102;

/** A StartupMessage (or any startup-phase packet) with the given version code and parameters. */
export function startupPacket(params: Record<string, string>, version = PROTOCOL_3_0): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(params)) parts.push(Buffer.from(`${k}\0${v}\0`));
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(version, 4);
  return Buffer.concat([head, body]);
}

/** An 8-byte request packet (SSLRequest, GSSENCRequest) or a 16-byte CancelRequest. */
export function requestPacket(code: number, pid?: number, secret?: number): Buffer {
  const b = Buffer.alloc(pid === undefined ? 8 : 16);
  b.writeInt32BE(b.length, 0);
  b.writeInt32BE(code, 4);
  if (pid !== undefined) {
    b.writeInt32BE(pid, 8);
    b.writeInt32BE(secret ?? 0, 12);
  }
  return b;
}

/** A typed frontend message; `length` overrides the length field (for malformed frames). */
export function frame(type: string | number, body: Buffer | string = Buffer.alloc(0), length?: number): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const head = Buffer.alloc(5);
  head[0] = typeof type === 'number' ? type : type.charCodeAt(0);
  head.writeInt32BE(length ?? 4 + b.length, 1);
  return Buffer.concat([head, b]);
}

export const queryMessage = (sql: string): Buffer => frame('Q', `${sql}\0`);
export const terminateMessage = (): Buffer => frame('X');
export const passwordMessage = (pw: string): Buffer => frame('p', `${pw}\0`);

/** Decodes the fields of an ErrorResponse or NoticeResponse body. */
export function errorFields(body: Buffer): ErrorFields {
  const out: ErrorFields = {};
  let at = 0;
  while (at < body.length && body[at] !== 0) {
    const code = String.fromCharCode(body[at]!);
    const end = body.indexOf(0, at + 1);
    if (end < 0) break;
    out[code] = body.toString('utf8', at + 1, end);
    at = end + 1;
  }
  return out;
}

/** One raw connection with a receive buffer. Never throws on socket errors: it records them. */
export class RawConn {
  readonly sock: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  closed = false;
  error: Error | undefined;
  /** Resolves when the socket has closed (for any reason). */
  readonly closedPromise: Promise<void>;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.poke();
    });
    sock.on('error', (e) => {
      this.error = e;
    });
    this.closedPromise = new Promise((resolve) =>
      sock.once('close', () => {
        this.closed = true;
        this.poke();
        resolve();
      }),
    );
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Connects over TCP (`port`, host 127.0.0.1) or a Unix socket path; rejects if that fails. */
  static connect(where: number | { path: string } | { host: string; port: number }): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const opts: net.NetConnectOpts =
        typeof where === 'number' ? { host: '127.0.0.1', port: where } : 'path' in where ? { path: where.path } : where;
      const s = net.connect(opts);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new RawConn(s));
      });
      s.once('error', reject);
    });
  }

  write(b: Buffer): void {
    if (!this.sock.destroyed && this.sock.writable) this.sock.write(b);
  }

  /** Bytes received and not yet consumed. */
  get pending(): Buffer {
    return this.buf;
  }

  private async waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (this.closed) return cond();
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return true;
  }

  /** Reads one raw byte (the answer to SSLRequest/GSSENCRequest); undefined on close/timeout. */
  async readByte(timeoutMs = 5000): Promise<string | undefined> {
    if (!(await this.waitFor(() => this.buf.length >= 1, timeoutMs))) return undefined;
    const b = this.buf[0]!;
    this.buf = this.buf.subarray(1);
    return String.fromCharCode(b);
  }

  /** Reads one framed backend message; undefined when the socket closed or the timeout passed first. */
  async readMessage(timeoutMs = 5000): Promise<RawMessage | undefined> {
    const complete = (): boolean => this.buf.length >= 5 && this.buf.length >= 1 + this.buf.readInt32BE(1);
    if (!(await this.waitFor(complete, timeoutMs))) return undefined;
    const len = this.buf.readInt32BE(1);
    const msg = { type: String.fromCharCode(this.buf[0]!), body: Buffer.from(this.buf.subarray(5, 1 + len)) };
    this.buf = this.buf.subarray(1 + len);
    return msg;
  }

  /** Reads messages until one of type `type` (returned with everything before it) or close/timeout. */
  async readUntil(type: string, timeoutMs = 5000): Promise<{ found: RawMessage | undefined; seen: RawMessage[] }> {
    const seen: RawMessage[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.readMessage(Math.max(1, deadline - Date.now()));
      if (m === undefined) return { found: undefined, seen };
      seen.push(m);
      if (m.type === type) return { found: m, seen };
    }
  }

  /** Reads whole messages until the server closes (or timeout); returns them and whether it closed. */
  async drain(timeoutMs = 5000): Promise<{ messages: RawMessage[]; closed: boolean }> {
    const messages: RawMessage[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.readMessage(Math.max(1, deadline - Date.now()));
      if (m === undefined) return { messages, closed: this.closed };
      messages.push(m);
    }
  }

  /** Resolves true if the socket closes within the timeout. */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    if (this.closed) return true;
    let t: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((r) => (t = setTimeout(() => r(false), timeoutMs)));
    const r = await Promise.race([this.closedPromise.then(() => true as const), timedOut]);
    clearTimeout(t);
    return r;
  }

  /** Half-closes our side (FIN). */
  end(): void {
    if (!this.sock.destroyed) this.sock.end();
  }

  destroy(): void {
    this.sock.destroy();
  }
}

/** What a raw login learned. */
export interface RawLogin {
  readonly conn: RawConn;
  /** Authentication request codes seen, in order (0 = AuthenticationOk). */
  readonly authCodes: number[];
  /** ReadyForQuery status letter ('I', 'T', 'E'). */
  readonly txStatus: string;
  readonly parameters: Map<string, string>;
}

/** Thrown by rawLogin when the server sends an ErrorResponse. */
export class RawServerError extends Error {
  constructor(readonly fields: ErrorFields) {
    super(`${fields['S'] ?? '?'} ${fields['C'] ?? '?'}: ${fields['M'] ?? ''}`);
    this.name = 'RawServerError';
  }
}

const md5hex = (s: string | Buffer): string => createHash('md5').update(s).digest('hex');

/**
 * Logs in with a StartupMessage, answering cleartext and md5 requests with `password`
 * (SCRAM is left to real clients). Resolves at ReadyForQuery; rejects with RawServerError.
 */
export async function rawLogin(
  where: number | { path: string } | RawConn,
  user: string,
  database: string,
  password?: string,
  extra: Record<string, string> = {},
): Promise<RawLogin> {
  const conn = where instanceof RawConn ? where : await RawConn.connect(where);
  conn.write(startupPacket({ user, database, ...extra }));
  const authCodes: number[] = [];
  const parameters = new Map<string, string>();
  for (;;) {
    const m = await conn.readMessage(10_000);
    if (m === undefined) {
      conn.destroy();
      throw new Error(`rawLogin(${user}): connection ${conn.closed ? 'closed' : 'timed out'} during login`);
    }
    if (m.type === 'E') {
      conn.destroy();
      throw new RawServerError(errorFields(m.body));
    }
    if (m.type === 'R') {
      const code = m.body.readInt32BE(0);
      authCodes.push(code);
      if (code === 3) conn.write(passwordMessage(password ?? ''));
      else if (code === 5) {
        const salt = m.body.subarray(4, 8);
        const inner = md5hex(`${password ?? ''}${user}`);
        conn.write(passwordMessage(`md5${md5hex(Buffer.concat([Buffer.from(inner), salt]))}`));
      } else if (code !== 0) {
        conn.destroy();
        throw new Error(`rawLogin(${user}): unsupported authentication request ${code}`);
      }
    } else if (m.type === 'S') {
      const parts = m.body.toString('utf8').split('\0');
      parameters.set(parts[0] ?? '', parts[1] ?? '');
    } else if (m.type === 'Z') {
      return { conn, authCodes, txStatus: String.fromCharCode(m.body[0]!), parameters };
    }
  }
}

/** Result of a simple query on a raw connection. */
export interface RawResult {
  /** DataRow values (text; null for SQL NULL). */
  readonly rows: Array<Array<string | null>>;
  readonly errors: ErrorFields[];
  readonly notices: ErrorFields[];
  /** ReadyForQuery status letter after the query, or undefined if the connection closed first. */
  readonly txStatus: string | undefined;
}

/** Runs a simple Query and collects rows, errors and the final transaction status. */
export async function rawQuery(conn: RawConn, sql: string, timeoutMs = 10_000): Promise<RawResult> {
  conn.write(queryMessage(sql));
  const rows: Array<Array<string | null>> = [];
  const errors: ErrorFields[] = [];
  const notices: ErrorFields[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await conn.readMessage(Math.max(1, deadline - Date.now()));
    if (m === undefined) return { rows, errors, notices, txStatus: undefined };
    if (m.type === 'D') {
      const n = m.body.readInt16BE(0);
      const row: Array<string | null> = [];
      let at = 2;
      for (let i = 0; i < n; i++) {
        const len = m.body.readInt32BE(at);
        at += 4;
        if (len < 0) row.push(null);
        else {
          row.push(m.body.toString('utf8', at, at + len));
          at += len;
        }
      }
      rows.push(row);
    } else if (m.type === 'E') errors.push(errorFields(m.body));
    else if (m.type === 'N') notices.push(errorFields(m.body));
    else if (m.type === 'Z') return { rows, errors, notices, txStatus: String.fromCharCode(m.body[0]!) };
  }
}
