// The pgrouter targets: bin/pgrouter.mjs with a generated pgpool.conf (primary + replica, load
// balancing on) and a pool_passwd, started the way test/harness/proxy.ts starts it. `pgrouter`
// leaves pool_mode at its default (session); `pgrouter-txn` is the same setup plus
// pool_mode = 'transaction' (transaction_pool_size and transaction_pipeline_depth at their
// defaults unless the conf overrides say otherwise).

import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cluster } from '../../rig/cluster.ts';
import { freePort } from '../../rig/system.ts';
import { findSetting, resolveName } from '../../src/config/settings.ts';
import { daemonDir, startDaemon, waitListening } from '../lib/proc.ts';
import { redact, type Target } from './target.ts';

const BIN = fileURLToPath(new URL('../../bin/pgrouter.mjs', import.meta.url));

type ConfValue = string | number | boolean;

/** pgrouter's pooling mode: session (`pgrouter` target) or transaction (`pgrouter-txn`). */
export type PoolMode = 'session' | 'transaction';

function quote(v: ConfValue): string {
  return `'${String(v).replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/**
 * Parameters the harness sets itself and a `--pgrouter-conf` override may not change: where
 * pgrouter listens, its pool_passwd, the backends, and pool_mode (which is what tells the
 * `pgrouter` and `pgrouter-txn` targets apart).
 */
const HARNESS_OWNED = /^(listen_addresses|port|unix_socket_directories|pool_passwd|pool_mode|backend_hostname\d*|backend_port\d*)$/;

/**
 * Parses `key=value,key=value` (the `--pgrouter-conf` flag). A comma only separates entries
 * when what follows it looks like `name=`, so a list value can keep its commas
 * (`read_only_function_list=f1,f2`). Names are checked against pgrouter's parameter table, so a
 * typo fails here instead of as a target that does not start.
 */
export function parsePgrouterConf(text: string, into: Record<string, string> = {}): Record<string, string> {
  for (const item of text.split(/,(?=\s*[A-Za-z_][A-Za-z0-9_]*\s*=)/)) {
    if (item.trim() === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`--pgrouter-conf: "${item}" is not key=value`);
    const key = item.slice(0, eq).trim().toLowerCase();
    const value = item.slice(eq + 1).trim();
    const r = resolveName(key);
    if (!r.def) throw new Error(`--pgrouter-conf: "${key}" is not a pgrouter parameter (${r.reason})`);
    if (HARNESS_OWNED.test(r.key))
      throw new Error(`--pgrouter-conf: ${r.key} is set by the harness${r.key === 'pool_mode' ? ' (choose the target instead: pgrouter is session mode, pgrouter-txn transaction mode)' : ''}`);
    into[r.key] = value;
  }
  return into;
}

/** The pgpool.conf the benchmark gives pgrouter; `overrides` wins, then `poolMode` (when given). */
export function pgrouterConf(c: Cluster, port: number, dir: string, overrides: Record<string, ConfValue> = {}, poolMode?: PoolMode): string {
  const conf: Record<string, ConfValue> = {
    listen_addresses: '127.0.0.1',
    port,
    unix_socket_directories: dir,
    backend_hostname0: c.primary.host,
    backend_port0: c.primary.port,
    backend_weight0: 1,
    backend_flag0: 'ALWAYS_PRIMARY',
    backend_hostname1: c.replica.host,
    backend_port1: c.replica.port,
    backend_weight1: 1,
    load_balance_mode: 'on',
    connection_cache: 'on',
    num_init_children: 256,
    pool_passwd: 'pool_passwd',
    log_min_messages: 'warning',
    ...overrides,
    ...(poolMode ? { pool_mode: poolMode } : {}),
  };
  return Object.entries(conf).map(([k, v]) => `${k} = ${quote(v)}`).join('\n') + '\n';
}

/** "name value" from the conf, or "name value (default)" from pgrouter's parameter table. */
function setting(conf: Record<string, ConfValue>, name: string): string {
  if (conf[name] !== undefined) return `${name} ${String(conf[name])}`;
  const def = findSetting(name);
  return def ? `${name} ${String(def.default)} (default)` : `${name} (not a parameter of this tree)`;
}

/** The report's one line on a pgrouter target: pooling mode and the settings that matter here. */
export function pgrouterSummary(overrides: Record<string, ConfValue> = {}, poolMode?: PoolMode): string {
  const conf: Record<string, ConfValue> = { load_balance_mode: 'on', connection_cache: 'on', num_init_children: 256, ...overrides };
  const mode =
    poolMode === 'transaction'
      ? `pool_mode transaction (${setting(conf, 'transaction_pool_size')}, ${setting(conf, 'transaction_pipeline_depth')})`
      : `pool_mode ${poolMode ?? 'session (default)'}`;
  const shown = ['load_balance_mode', 'connection_cache', 'num_init_children', 'transaction_pool_size', 'transaction_pipeline_depth'];
  const extra = Object.entries(overrides).filter(([k]) => !shown.includes(k));
  return (
    `pgrouter (this tree), ${mode}, primary + replica, load_balance_mode ${String(conf.load_balance_mode)}, ` +
    `connection_cache ${String(conf.connection_cache)}, num_init_children ${String(conf.num_init_children)}` +
    (extra.length > 0 ? `; also set: ${extra.map(([k, v]) => `${k} = ${String(v)}`).join(', ')}` : '')
  );
}

/**
 * Starts pgrouter on a free port. `opts.nodeArgs` go before the script (e.g. --cpu-prof);
 * `opts.conf` overrides pgpool.conf lines; `opts.poolMode: 'transaction'` makes it the
 * `pgrouter-txn` target (pool_mode = 'transaction'); without it pool_mode is left out (session).
 */
export async function startPgrouter(
  c: Cluster,
  opts: { conf?: Record<string, ConfValue>; nodeArgs?: string[]; poolMode?: PoolMode } = {},
): Promise<Target> {
  const dir = await daemonDir('pgrouter-bench-');
  const port = await freePort();
  const txn = opts.poolMode === 'transaction';
  const confText = pgrouterConf(c, port, dir, opts.conf, opts.poolMode);
  const u = c.users;
  const passwd = `${u.superuser.name}:${u.superuser.password}\n${u.scram.name}:${u.scram.password}\n`;
  await writeFile(path.join(dir, 'pgpool.conf'), confText);
  await writeFile(path.join(dir, 'pool_passwd'), passwd, { mode: 0o600 });
  const args = [...(opts.nodeArgs ?? []), BIN, '-f', path.join(dir, 'pgpool.conf')];
  const d = startDaemon(txn ? 'pgrouter-txn' : 'pgrouter', process.execPath, args, { cwd: dir, asServerUser: false });
  await waitListening(d, port);
  return {
    name: txn ? 'pgrouter-txn' : 'pgrouter',
    port,
    summary: pgrouterSummary(opts.conf, opts.poolMode),
    command: `node ${[...(opts.nodeArgs ?? []), 'bin/pgrouter.mjs', '-f', 'pgpool.conf'].join(' ')}`,
    files: [
      { name: 'pgpool.conf', text: confText.split(dir).join('<tmpdir>') },
      { name: 'pool_passwd', text: redact(c, passwd) },
    ],
    pid: d.proc.pid,
    tail: () => d.output.slice(-20).join('\n'),
    alive: () => !d.exited(),
    stop: async () => {
      await d.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
