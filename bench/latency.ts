// Added latency at one client: p50 of `SELECT 1` round trips over a raw protocol connection,
// straight to the primary and through pgrouter, in alternating blocks; the difference is what
// the proxy hop adds. Run alone with `npx tsx bench/latency.ts [--queries N]` or from run.ts.

import { pathToFileURL } from 'node:url';
import { startCluster, stopCluster, type Cluster } from '../rig/cluster.ts';
import { percentile } from './lib/pgbench.ts';
import type { QuietResult } from './lib/cpu.ts';
import { queryMessage, WireClient } from './lib/wire.ts';
import { startPgrouter } from './targets/pgrouter.ts';

/** Latency figures of one path, in microseconds. */
export interface PathLatency {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly mean: number;
  readonly n: number;
}

/** The result of measureLatency. */
export interface LatencyResult {
  readonly direct: PathLatency;
  readonly pgrouter: PathLatency;
  /** pgrouter p50 minus direct p50, µs. */
  readonly addedP50: number;
  readonly queries: number;
  readonly blockSize: number;
  readonly user: string;
}

const BLOCK = 1000;

function summarize(v: number[]): PathLatency {
  const s = Float64Array.from(v).sort();
  return {
    p50: percentile(s, 50)!,
    p90: percentile(s, 90)!,
    p99: percentile(s, 99)!,
    mean: v.reduce((a, b) => a + b, 0) / v.length,
    n: v.length,
  };
}

async function block(c: WireClient, q: Buffer, n: number, out: number[] | undefined): Promise<void> {
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await c.request(q);
    out?.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
}

/**
 * `queries` SELECT 1 round trips on each path (after a 1000-query warm-up each), in alternating
 * blocks of 1000 so drift in machine load hits both paths alike. Uses the rig's trust user so no
 * password exchange is involved; the client is the same minimal one on both paths.
 */
export async function measureLatency(c: Cluster, pgrouterPort: number, queries: number): Promise<LatencyResult> {
  const user = c.users.trust.name;
  const direct = await WireClient.connect({ port: c.primary.port, user, database: c.database });
  const proxied = await WireClient.connect({ port: pgrouterPort, user, database: c.database });
  const q = queryMessage('SELECT 1');
  const d: number[] = [];
  const p: number[] = [];
  try {
    await block(direct, q, BLOCK, undefined);
    await block(proxied, q, BLOCK, undefined);
    for (let done = 0; done < queries; done += BLOCK) {
      const n = Math.min(BLOCK, queries - done);
      await block(direct, q, n, d);
      await block(proxied, q, n, p);
    }
  } finally {
    direct.close();
    proxied.close();
  }
  const ds = summarize(d);
  const ps = summarize(p);
  return { direct: ds, pgrouter: ps, addedP50: ps.p50 - ds.p50, queries, blockSize: BLOCK, user };
}

/** Markdown lines for the report. */
export function latencyMarkdown(r: LatencyResult, quiet?: QuietResult): string[] {
  const row = (name: string, x: PathLatency): string =>
    `| ${name} | ${x.p50.toFixed(1)} | ${x.p90.toFixed(1)} | ${x.p99.toFixed(1)} | ${x.mean.toFixed(1)} | ${x.n} |`;
  return [
    `One client, \`SELECT 1\` in the simple protocol over a raw socket (user \`${r.user}\`, trust), ` +
      `${r.queries} round trips per path in alternating blocks of ${r.blockSize}, after a ${r.blockSize}-query warm-up each.` +
      (quiet === undefined
        ? ''
        : quiet.quiet
          ? ` It started once the machine had settled after the throughput runs: ${(quiet.waitedMs / 1000).toFixed(0)} s of waiting, until the whole machine kept ${quiet.busyCores.toFixed(2)} cores busy over one second.`
          : ` The machine had not settled after ${(quiet.waitedMs / 1000).toFixed(0)} s (${quiet.busyCores.toFixed(2)} cores still busy over the last second), so this ran on a busy machine.`),
    '',
    '| path | p50 µs | p90 µs | p99 µs | mean µs | round trips |',
    '|---|---:|---:|---:|---:|---:|',
    row('direct', r.direct),
    row('pgrouter', r.pgrouter),
    '',
    `**Added latency (p50, pgrouter − direct): ${r.addedP50.toFixed(1)} µs** (target: under 60 µs).`,
  ];
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--queries');
  const queries = i > 0 ? Number(process.argv[i + 1]) : 20_000;
  if (!Number.isInteger(queries) || queries < 100) throw new Error('--queries needs an integer ≥ 100');
  const c = await startCluster({});
  try {
    const t = await startPgrouter(c);
    try {
      const r = await measureLatency(c, t.port, queries);
      process.stdout.write(latencyMarkdown(r).join('\n') + '\n');
    } finally {
      await t.stop();
    }
  } finally {
    await stopCluster(c);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`latency: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
