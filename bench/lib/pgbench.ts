// Runs pgbench against one target and turns its report and per-transaction logs into numbers:
// TPS, mean latency (pgbench's own), p50/p99 latency (computed from `-l` logs), failures.

import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql, type Cluster } from '../../rig/cluster.ts';
import { PGBENCH_THREADS, type Workload } from './workloads.ts';

/** What one pgbench run gave. Numbers are undefined when pgbench did not print them. */
export interface PgbenchResult {
  /** The command line, with the port and without the password (PGPASSWORD is used). */
  readonly command: string;
  readonly exitCode: number | null;
  readonly tps: number | undefined;
  /** pgbench's "latency average" (for -C it includes connecting, like the TPS figure). */
  readonly meanMs: number | undefined;
  readonly p50Ms: number | undefined;
  readonly p99Ms: number | undefined;
  /** Latency samples the percentiles came from. */
  readonly samples: number;
  readonly samplingRate: number;
  readonly processed: number | undefined;
  /** pgbench's "number of failed transactions" (serialization/deadlock failures). */
  readonly failed: number | undefined;
  /** Clients that pgbench reported as aborted (an error ended them). */
  readonly abortedClients: number;
  /** First distinct error lines pgbench printed. */
  readonly errors: readonly string[];
  /** Last lines of pgbench's output when the run was not ok and printed no error line. */
  readonly outputTail: string;
  /** True when the run finished with every client alive and a TPS figure. */
  readonly ok: boolean;
}

/** The pgbench command line (without the binary) for a workload against `port`. */
export function pgbenchArgs(c: Cluster, w: Workload, port: number, seconds: number): string[] {
  return [
    '-n', // no vacuum/truncate through the target; the harness does it directly (writes only)
    '-h', '127.0.0.1', '-p', String(port), '-U', w.user === 'trust' ? c.users.trust.name : c.users.superuser.name,
    ...w.args,
    '-c', String(w.clients), '-j', String(PGBENCH_THREADS), '-T', String(seconds),
    c.database,
  ];
}

function num(text: string, re: RegExp): number | undefined {
  const m = re.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: Float64Array, p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1];
}

/**
 * Transaction latencies (µs) from pgbench -l files. Without -C: the logged `time` field. With -C
 * the logged time excludes connecting, so the latency is the gap between a client's consecutive
 * transaction ends (connect + authenticate + query + disconnect), the same thing pgbench's
 * "latency average" measures for -C; each client's first transaction has no gap and is dropped.
 */
export async function readLatencies(dir: string, connectPerTransaction: boolean): Promise<Float64Array> {
  const values: number[] = [];
  const ends = new Map<string, number[]>();
  for (const f of await readdir(dir)) {
    const text = await readFile(path.join(dir, f), 'utf8');
    for (const line of text.split('\n')) {
      // client_id transaction_no time script_no time_epoch time_us [...]
      const fields = line.split(' ');
      if (fields.length < 6) continue;
      const time = Number(fields[2]);
      if (!Number.isFinite(time)) continue; // "failed" / "skipped"
      if (!connectPerTransaction) values.push(time);
      else {
        const end = Number(fields[4]) * 1e6 + Number(fields[5]);
        const key = `${f}:${fields[0]}`;
        const list = ends.get(key);
        if (list) list.push(end);
        else ends.set(key, [end]);
      }
    }
  }
  for (const list of ends.values()) {
    list.sort((a, b) => a - b);
    for (let i = 1; i < list.length; i++) values.push(list[i]! - list[i - 1]!);
  }
  return Float64Array.from(values).sort();
}

/** The first few distinct error lines pgbench printed, normalised (no prefixes, no client numbers). */
function errorLines(text: string): string[] {
  const seen = new Set<string>();
  // stdout and stderr interleave mid-line: split on every "pgbench: " as well as on newlines.
  for (const piece of text.split(/\n|pgbench: /)) {
    if (!/error|FATAL|ERROR|abort/.test(piece)) continue;
    const clean = piece.replace(/^error: /, '').replace(/client \d+/g, 'client N').replace(/\s+/g, ' ').trim();
    if (clean) seen.add(clean);
    if (seen.size >= 4) break;
  }
  return [...seen];
}

/**
 * Runs one pgbench. With `samplingRate` > 0 it also writes per-transaction logs (-l
 * --sampling-rate) to a temp dir and computes p50/p99 from them. Never throws for a pgbench
 * failure: the result says what happened. A run that outlives its duration by 90 s is killed.
 */
export async function runPgbench(c: Cluster, w: Workload, port: number, seconds: number, samplingRate: number): Promise<PgbenchResult> {
  const args = pgbenchArgs(c, w, port, seconds);
  const logDir = samplingRate > 0 ? await mkdtemp(path.join(os.tmpdir(), 'pgbench-log-')) : undefined;
  const logArgs = logDir ? ['-l', `--log-prefix=${path.join(logDir, 'tx')}`, ...(samplingRate < 1 ? [`--sampling-rate=${samplingRate}`] : [])] : [];
  const full = [...logArgs, ...args];
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  env['PGPASSWORD'] = c.users.superuser.password;
  const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const p = spawn(path.join(c.binDir, 'pgbench'), full, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => {
      // -C with a failing target can print one line per attempt: keep the output bounded.
      if (out.length < 1_000_000) out += d;
    });
    const killer = setTimeout(() => p.kill('SIGKILL'), (seconds + 90) * 1000);
    p.once('error', (e) => {
      clearTimeout(killer);
      resolve({ code: null, out: out + `\nerror: ${e.message}` });
    });
    p.once('close', (code) => {
      clearTimeout(killer);
      resolve({ code, out });
    });
  });
  let lat: Float64Array = new Float64Array(0);
  if (logDir) {
    try {
      lat = await readLatencies(logDir, w.connectPerTransaction);
    } finally {
      await rm(logDir, { recursive: true, force: true });
    }
  }
  const tps = num(out, /^tps = ([\d.]+)/m);
  const abortedClients = (out.match(/client \d+ aborted/g) ?? []).length;
  const processed = num(out, /number of transactions actually processed: (\d+)/);
  const ok = code === 0 && tps !== undefined && abortedClients === 0 && (processed ?? 0) > 0;
  const errors = errorLines(out);
  return {
    command: `pgbench ${args.join(' ')}`,
    exitCode: code,
    tps,
    meanMs: num(out, /^latency average = ([\d.]+) ms/m),
    p50Ms: lat.length ? percentile(lat, 50)! / 1000 : undefined,
    p99Ms: lat.length ? percentile(lat, 99)! / 1000 : undefined,
    samples: lat.length,
    samplingRate,
    processed,
    failed: num(out, /number of failed transactions: (\d+)/),
    abortedClients,
    errors,
    outputTail: ok || errors.length > 0 ? '' : out.trim().split('\n').slice(-4).join(' / '),
    ok,
  };
}

/** What pgbench without -n does before a TPC-B run, done directly on the primary (not through the target). */
export async function resetTpcb(c: Cluster): Promise<void> {
  await sql(c, c.primary, 'VACUUM pgbench_branches');
  await sql(c, c.primary, 'VACUUM pgbench_tellers');
  await sql(c, c.primary, 'TRUNCATE pgbench_history');
}
