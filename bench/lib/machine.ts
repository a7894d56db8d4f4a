// Facts about the machine and the software under test, for the report: cores, memory, CPU model,
// load, and the versions of pgrouter, Pgpool-II, PgBouncer, PostgreSQL, pgbench and Node.

import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql, type Cluster } from '../../rig/cluster.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The machine the run was on. */
export interface MachineInfo {
  readonly cores: number;
  readonly memory: string;
  readonly cpu: string;
  readonly kernel: string;
  readonly node: string;
}

/** First non-empty line a command prints on stdout or stderr (pgpool --version uses stderr). */
function firstLine(file: string, args: string[]): string {
  const r = spawnSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const line = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').map((l) => l.trim()).find((l) => l !== '');
  return line ?? (r.error ? r.error.message : 'not available');
}

export function machineInfo(): MachineInfo {
  let memory = `${Math.round(os.totalmem() / 2 ** 30)} GiB`;
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    const kb = Number(/^MemTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1]);
    if (kb > 0) memory = `${(kb / 2 ** 20).toFixed(1)} GiB (MemTotal ${kb} kB)`;
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu;
  } catch {
    // not Linux: keep os.* values
  }
  return { cores: Number(firstLine('nproc', [])) || os.cpus().length, memory, cpu, kernel: `${os.type()} ${os.release()}`, node: process.version };
}

/** /proc/loadavg's three load averages. */
export function loadAverage(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(' ');
}

/** pgrouter's version from package.json, with the git commit and whether src/ has uncommitted changes. */
export function pgrouterVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  let commit = '';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'bin'], { cwd: ROOT, encoding: 'utf8' }).trim();
    if (dirty) commit += ', with uncommitted changes in src/ or bin/';
  } catch {
    commit = 'no git';
  }
  return `${pkg.version} (commit ${commit})`;
}

/** Versions of everything in the run. */
export async function versions(c: Cluster, bins: { pgpool?: string; pgbouncer?: string }): Promise<Record<string, string>> {
  return {
    pgrouter: pgrouterVersion(),
    'Pgpool-II': bins.pgpool ? firstLine(bins.pgpool, ['--version']) : 'not installed',
    PgBouncer: bins.pgbouncer ? firstLine(bins.pgbouncer, ['-V']) : 'not installed',
    PostgreSQL: await sql(c, c.primary, 'SELECT version()', { database: 'postgres' }).catch((e: Error) => e.message),
    pgbench: firstLine(path.join(c.binDir, 'pgbench'), ['--version']),
    Node: process.version,
  };
}
