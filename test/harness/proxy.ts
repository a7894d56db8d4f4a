// Starts a real pgrouter process (bin/pgrouter.mjs) in front of the rig cluster for a test,
// with a generated pgpool.conf and pool_passwd in a temp dir; stops it with a chosen signal.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cluster } from '../../rig/cluster.ts';
import { freePort } from '../../rig/system.ts';
import { md5PasswordHash } from '../../src/auth/md5.ts';

const BIN = fileURLToPath(new URL('../../bin/pgrouter.mjs', import.meta.url));

export interface ProxyHandle {
  readonly host: string;
  readonly port: number;
  /** Directory holding pgrouter's Unix socket `.s.PGSQL.<port>`. */
  readonly socketDir: string;
  readonly dir: string;
  readonly proc: ChildProcess;
  /** stdout+stderr lines so far. */
  readonly logs: string[];
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Resolves with the first log line (already seen or future) matching `re`. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  /** A libpq URL through the proxy. */
  url(user: string, password?: string, database?: string): string;
}

export interface ProxyOptions {
  /** Extra or overriding pgpool.conf lines (values written quoted). */
  conf?: Record<string, string | number | boolean>;
  /** Contents of pool_passwd; default: every rig user (md5 entry for md5_user, plain text for others). */
  poolPasswd?: string;
  /** Contents of pool_hba.conf; sets enable_pool_hba = on. */
  hba?: string;
  env?: Record<string, string>;
  /** Include the replica as backend 1 (default true). */
  replica?: boolean;
  args?: string[];
}

export function defaultPoolPasswd(c: Cluster): string {
  const u = c.users;
  return [
    `${u.superuser.name}:${u.superuser.password}`,
    `${u.md5.name}:${md5PasswordHash(u.md5.password, u.md5.name)}`,
    `${u.password.name}:TEXT${u.password.password}`,
    `${u.scram.name}:${u.scram.password}`,
  ].join('\n') + '\n';
}

function quote(v: string | number | boolean): string {
  return `'${String(v).replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

export async function startProxy(c: Cluster, o: ProxyOptions = {}): Promise<ProxyHandle> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrouter-test-'));
  const port = await freePort();
  const conf: Record<string, string | number | boolean> = {
    listen_addresses: '127.0.0.1',
    port,
    unix_socket_directories: dir,
    backend_hostname0: c.primary.host,
    backend_port0: c.primary.port,
    backend_flag0: 'ALWAYS_PRIMARY',
    pool_passwd: 'pool_passwd',
    num_init_children: 32,
    ...(o.replica === false ? {} : { backend_hostname1: c.replica.host, backend_port1: c.replica.port }),
    ...(o.hba !== undefined ? { enable_pool_hba: 'on', pool_hba_file: 'pool_hba.conf' } : {}),
    ...o.conf,
  };
  writeFileSync(
    path.join(dir, 'pgpool.conf'),
    Object.entries(conf)
      .map(([k, v]) => `${k} = ${quote(v)}`)
      .join('\n') + '\n',
  );
  writeFileSync(path.join(dir, 'pool_passwd'), o.poolPasswd ?? defaultPoolPasswd(c), { mode: 0o600 });
  if (o.hba !== undefined) writeFileSync(path.join(dir, 'pool_hba.conf'), o.hba);
  const proc = spawn(process.execPath, [BIN, '-f', path.join(dir, 'pgpool.conf'), ...(o.args ?? [])], {
    cwd: dir,
    env: { ...process.env, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const watchers: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  const onLine = (line: string): void => {
    logs.push(line);
    if (process.env['PGROUTER_TEST_LOG'] === '1') process.stderr.write(`[pgrouter] ${line}\n`);
    for (const w of [...watchers])
      if (w.re.test(line)) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve(line);
      }
  };
  for (const stream of [proc.stdout!, proc.stderr!]) {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      const parts = (partial + d).split('\n');
      partial = parts.pop() ?? '';
      parts.forEach(onLine);
    });
  }
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  let alive = true;
  void exited.then(() => (alive = false));
  // Ready when the TCP port accepts a connection.
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (!alive) throw new Error(`pgrouter exited before listening:\n${logs.join('\n')}`);
    if (await canConnect(port)) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`pgrouter did not listen within 20 s:\n${logs.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const handle: ProxyHandle = {
    host: '127.0.0.1',
    port,
    socketDir: dir,
    dir,
    proc,
    logs,
    async stop(signal: NodeJS.Signals = 'SIGINT') {
      if (alive) proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      const code = await exited;
      clearTimeout(t);
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
    waitForLog(re, timeoutMs = 10_000) {
      const seen = logs.find((l) => re.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = { re, resolve };
        watchers.push(w);
        setTimeout(() => {
          const i = watchers.indexOf(w);
          if (i >= 0) {
            watchers.splice(i, 1);
            reject(new Error(`no log line matching ${re} within ${timeoutMs} ms`));
          }
        }, timeoutMs).unref();
      });
    },
    url(user, password, database = c.database) {
      const auth = password === undefined ? encodeURIComponent(user) : `${encodeURIComponent(user)}:${encodeURIComponent(password)}`;
      return `postgresql://${auth}@127.0.0.1:${port}/${database}`;
    },
  };
  return handle;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
