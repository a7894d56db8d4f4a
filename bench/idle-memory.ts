// Resident memory of pgrouter holding many idle client connections. In session mode (the
// default) every admitted session leases a backend connection for its whole life, so the
// primary's max_connections bounds how many can be authenticated and the rest wait in the
// admission queue. With --transaction (pool_mode = transaction) every one of them is an
// authenticated session, and they share a few backend connections.
// Run alone with `npx tsx bench/idle-memory.ts [--transaction] [--sessions N] [--total N]` or from run.ts.

import net from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { sql, startCluster, stopCluster, type Cluster } from '../rig/cluster.ts';
import { treeMemoryKb } from './lib/rss.ts';
import { startupMessage } from './lib/wire.ts';
import { startPgrouter } from './targets/pgrouter.ts';

/** The result of measureIdleMemory; memory in kB (pgrouter's process tree, VmRSS). */
export interface IdleMemoryResult {
  readonly sessions: number;
  readonly queued: number;
  readonly baseKb: number;
  readonly afterSessionsKb: number;
  readonly afterAllKb: number;
  readonly hwmKb: number;
  /** Queued sockets still open when measured (should equal `queued`). */
  readonly queuedOpen: number;
  readonly conf: Record<string, number>;
  /** session: each authenticated session holds a backend connection; transaction: they share a few. */
  readonly poolMode: 'session' | 'transaction';
  /** Backend connections pgrouter held to the primary with every session open (pg_stat_activity). */
  readonly backends: number;
  /** The primary's max_connections. */
  readonly maxConnections: number;
  readonly notes: string[];
}

const GC_PRELOAD = fileURLToPath(new URL('./lib/gc-on-signal.mjs', import.meta.url));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` over 0..n-1 with at most `width` in flight. */
async function inBatches(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
}

/** Opens a TCP connection and sends a StartupMessage; the socket then waits for a slot. */
function queuedClient(port: number, c: Cluster): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.write(startupMessage({ user: c.users.superuser.name, database: c.database }));
      s.removeListener('error', reject);
      s.on('error', () => undefined);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** The pgpool.conf overrides for this measurement. */
export function idleConf(sessions: number, total: number): Record<string, number> {
  return {
    num_init_children: sessions,
    // Room in the admission queue for everyone else (Pgpool-II: listen_backlog_multiplier × num_init_children).
    listen_backlog_multiplier: Math.ceil(Math.max(1, total - sessions) / sessions) + 1,
    // Queued clients have not authenticated; they must not be timed out while we measure.
    authentication_timeout: 0,
    max_pool: 1,
  };
}

/**
 * Starts its own pgrouter (num_init_children = `sessions`), measures its RSS idle, after
 * `sessions` authenticated idle clients (node-postgres, SCRAM, one SELECT 1 each), and after
 * `total - sessions` more clients that connected and sent a StartupMessage and wait in the
 * admission queue. The primary needs max_connections > `sessions`.
 */
export async function measureIdleMemory(
  c: Cluster,
  sessions: number,
  total: number,
  poolMode: 'session' | 'transaction' = 'session',
): Promise<IdleMemoryResult> {
  if (sessions < 1) throw new Error('idle-memory needs at least one authenticated session');
  const conf = idleConf(sessions, total);
  const maxConnections = Number(await sql(c, c.primary, 'SHOW max_connections', { database: 'postgres' }));
  if (poolMode === 'session' && maxConnections <= sessions + 5)
    throw new Error(`the primary's max_connections (${maxConnections}) is too small for ${sessions} sessions`);
  const t = await startPgrouter(c, { conf, poolMode, nodeArgs: ['--expose-gc', '--import', GC_PRELOAD] });
  const clients: pg.Client[] = [];
  const sockets: net.Socket[] = [];
  const notes: string[] = [];
  const pid = t.pid!;
  // Let sockets settle, force a full GC in pgrouter, then read RSS.
  const settle = async (): Promise<number> => {
    await sleep(2000);
    process.kill(pid, 'SIGUSR2');
    await sleep(1000);
    return treeMemoryKb(pid).rssKb;
  };
  try {
    const connect = async (): Promise<pg.Client> => {
      const cl = new pg.Client({ host: '127.0.0.1', port: t.port, user: c.users.superuser.name, password: c.users.superuser.password, database: c.database });
      cl.on('error', () => undefined);
      await cl.connect();
      await cl.query('SELECT 1');
      return cl;
    };
    // Warm the code paths once, so the baseline is a proxy that has served a session.
    await (await connect()).end();
    const baseKb = await settle();
    await inBatches(sessions, 16, async () => {
      clients.push(await connect());
    });
    const afterSessionsKb = await settle();
    const backends = Number(
      await sql(c, c.primary, `SELECT count(*) FROM pg_stat_activity WHERE datname = '${c.database}' AND usename = '${c.users.superuser.name}'`, {
        database: 'postgres',
      }),
    );
    let refused = 0;
    await inBatches(total - sessions, 100, async () => {
      try {
        sockets.push(await queuedClient(t.port, c));
      } catch {
        refused++;
      }
    });
    if (refused > 0) notes.push(`${refused} queued connections could not be opened`);
    const afterAllKb = await settle();
    const queuedOpen = sockets.filter((s) => !s.destroyed && s.readable).length;
    const { hwmKb } = treeMemoryKb(pid);
    return { sessions, queued: total - sessions, baseKb, afterSessionsKb, afterAllKb, hwmKb, queuedOpen, conf, poolMode, backends, maxConnections, notes };
  } finally {
    for (const s of sockets) s.destroy();
    await Promise.all(clients.map((cl) => cl.end().catch(() => undefined)));
    await t.stop();
  }
}

const mb = (kb: number): string => (kb / 1024).toFixed(1);

/** Markdown lines for the report. */
export function idleMemoryMarkdown(r: IdleMemoryResult): string[] {
  const total = r.sessions + r.queued;
  const perSession = (r.afterSessionsKb - r.baseKb) / r.sessions;
  const perQueued = r.queued > 0 ? (r.afterAllKb - r.afterSessionsKb) / r.queued : 0;
  const projected = r.baseKb + total * perSession;
  const shared = r.poolMode === 'transaction';
  const holding = shared ? `sharing ${r.backends} backend connection${r.backends === 1 ? '' : 's'}` : 'each holding its backend connection';
  const verdict = shared
    ? r.queued === 0
      ? `**${total} authenticated idle sessions: ${mb(r.afterAllKb)} MB** of pgrouter RSS (target: under 300 MB for 5,000), ` +
        `over ${r.backends} PostgreSQL backend connection${r.backends === 1 ? '' : 's'} (pool_mode = transaction).`
      : `**${total} idle connections held open: ${mb(r.afterAllKb)} MB** of pgrouter RSS (target: under 300 MB for 5,000); ${r.sessions} authenticated (pool_mode = transaction).`
    : `**${total} idle connections held open: ${mb(r.afterAllKb)} MB** of pgrouter RSS (target: under 300 MB for 5,000), but only ${r.sessions} of them ` +
      'are authenticated sessions. Each authenticated session holds its own backend connection in session mode, so ' +
      `${total} authenticated sessions would need ${total} PostgreSQL backends (this rig's primary has max_connections = ${r.maxConnections}); ` +
      `the rest wait in the admission queue before authenticating. Projected from the measured per-session cost, ${total} authenticated idle ` +
      `sessions would take about ${mb(projected)} MB of pgrouter's RSS (${projected / 1024 < 300 ? 'under' : 'over'} the target), ` +
      `plus the ${total} PostgreSQL backends.`;
  return [
    `pgrouter with \`pool_mode = ${r.poolMode}\`, ${Object.entries(r.conf).map(([k, v]) => `\`${k} = ${v}\``).join(', ')}; ` +
      'RSS = VmRSS of its process tree from /proc/<pid>/status, read 2 s after each step and 1 s after a forced full GC ' +
      '(pgrouter started with `node --expose-gc --import bench/lib/gc-on-signal.mjs`, which runs gc() on SIGUSR2).',
    '',
    '| step | connections | pgrouter RSS MB | per connection kB |',
    '|---|---:|---:|---:|',
    `| idle, after one warm-up session | 0 | ${mb(r.baseKb)} | |`,
    `| + authenticated idle sessions (node-postgres, SCRAM, ${holding}) | ${r.sessions} | ${mb(r.afterSessionsKb)} | ${perSession.toFixed(1)} |`,
    ...(r.queued > 0
      ? [`| + clients waiting in the admission queue (connected, StartupMessage sent, not yet authenticated) | ${total} | ${mb(r.afterAllKb)} | ${perQueued.toFixed(1)} |`]
      : []),
    '',
    `Peak (VmHWM): ${mb(r.hwmKb)} MB. Queued sockets still open at the end: ${r.queuedOpen} of ${r.queued}.`,
    '',
    verdict,
    ...r.notes.map((n) => `Note: ${n}.`),
  ];
}

async function main(): Promise<void> {
  const arg = (name: string, dflt: number): number => {
    const i = process.argv.indexOf(name);
    const v = i > 0 ? Number(process.argv[i + 1]) : dflt;
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} needs a positive integer`);
    return v;
  };
  const poolMode = process.argv.includes('--transaction') ? 'transaction' : 'session';
  const sessions = arg('--sessions', poolMode === 'transaction' ? 5000 : 1000);
  const total = arg('--total', 5000);
  const c = await startCluster({ maxConnections: poolMode === 'transaction' ? 200 : sessions + 100 });
  try {
    const r = await measureIdleMemory(c, sessions, total, poolMode);
    process.stdout.write(idleMemoryMarkdown(r).join('\n') + '\n');
  } finally {
    await stopCluster(c);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`idle-memory: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
