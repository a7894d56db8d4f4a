// A minimal PostgreSQL protocol 3.0 client for measurements: trust authentication, simple
// Query round trips, nothing else. Small and allocation-light, so it adds little of its own.

import net from 'node:net';

/** Builds a Query ('Q') message. */
export function queryMessage(sqlText: string): Buffer {
  const body = Buffer.from(`${sqlText}\0`, 'utf8');
  const m = Buffer.alloc(5 + body.length);
  m[0] = 0x51;
  m.writeInt32BE(4 + body.length, 1);
  body.copy(m, 5);
  return m;
}

/** Builds a StartupMessage for protocol 3.0. */
export function startupMessage(params: Record<string, string>): Buffer {
  const body = Buffer.from(Object.entries(params).map(([k, v]) => `${k}\0${v}\0`).join('') + '\0', 'utf8');
  const m = Buffer.alloc(8 + body.length);
  m.writeInt32BE(8 + body.length, 0);
  m.writeInt32BE(196608, 4);
  body.copy(m, 8);
  return m;
}

const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);

/** One connection that waits for ReadyForQuery after each request. */
export class WireClient {
  private pending: Buffer | null = null;
  private done: ((err?: Error) => void) | null = null;
  /** ErrorResponse seen since the last ReadyForQuery. */
  private error: string | undefined;

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', (e) => this.finish(e));
    sock.on('close', () => this.finish(new Error(this.error ?? 'server closed the connection')));
  }

  /** Connects and completes startup; the server must accept without a password (trust). */
  static async connect(o: { host?: string; port: number; user: string; database: string; timeoutMs?: number }): Promise<WireClient> {
    const sock = net.connect({ host: o.host ?? '127.0.0.1', port: o.port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const c = new WireClient(sock);
    const timer = setTimeout(() => c.finish(new Error('startup timed out')), o.timeoutMs ?? 10_000);
    try {
      await c.request(startupMessage({ user: o.user, database: o.database }));
    } finally {
      clearTimeout(timer);
    }
    return c;
  }

  /** Writes `msg` and resolves at the next ReadyForQuery; rejects on ErrorResponse or a password request. */
  request(msg: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.done = (err) => (err ? reject(err) : resolve());
      this.sock.write(msg);
    });
  }

  private finish(err?: Error): void {
    const d = this.done;
    this.done = null;
    d?.(err);
  }

  private onData(chunk: Buffer): void {
    let b = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    let off = 0;
    while (b.length - off >= 5) {
      const type = b[off]!;
      const len = b.readInt32BE(off + 1);
      if (b.length - off < 1 + len) break;
      if (type === 0x52 /* R */ && b.readInt32BE(off + 5) !== 0) {
        this.finish(new Error(`server asks for authentication (code ${b.readInt32BE(off + 5)}); use a trust user`));
        this.sock.destroy();
        return;
      }
      if (type === 0x45 /* E */) this.error = errorText(b.subarray(off + 5, off + 1 + len));
      else if (type === 0x5a /* Z */) {
        const e = this.error;
        this.error = undefined;
        this.finish(e === undefined ? undefined : new Error(e));
      }
      off += 1 + len;
    }
    if (off < b.length) this.pending = b.subarray(off);
  }

  close(): void {
    if (!this.sock.destroyed) this.sock.end(TERMINATE);
  }
}

/** The severity and message of an ErrorResponse body. */
function errorText(body: Buffer): string {
  const fields: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const code = String.fromCharCode(body[i]!);
    const end = body.indexOf(0, i + 1);
    fields[code] = body.toString('utf8', i + 1, end);
    i = end + 1;
  }
  return `${fields['S'] ?? 'ERROR'}: ${fields['M'] ?? 'unknown error'}`;
}
