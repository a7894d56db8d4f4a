// How busy the machine was with work that is not the benchmark's: CPU time of the whole machine
// (/proc/stat) minus that of the benchmark's own process trees (this process and its reaped
// pgbench children, the rig's postmasters and their backends, the target), over a run.

import { readFileSync } from 'node:fs';
import { processTree } from './rss.ts';

/** Jiffies per second; Linux reports /proc times in USER_HZ, 100 on every common build. */
const HZ = 100;

/** A point-in-time reading. */
export interface CpuSnapshot {
  readonly at: number;
  /** Non-idle jiffies of the whole machine. */
  readonly busy: number;
  /** Jiffies of our trees (incl. children already reaped). */
  readonly ours: number;
}

function machineBusy(): number {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
}

/** User and system jiffies of one process (with `reaped`, its waited-for children's too). */
function procTimes(pid: number, reaped: boolean): { user: number; system: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    // f[0] is field 3 (state): utime = field 14 → f[11], stime f[12], cutime f[13], cstime f[14]
    return { user: (f[11] ?? 0) + (reaped ? (f[13] ?? 0) : 0), system: (f[12] ?? 0) + (reaped ? (f[14] ?? 0) : 0) };
  } catch {
    return { user: 0, system: 0 };
  }
}

/** User and system CPU seconds of the trees under `roots` so far (their reaped children included). */
export function treeCpuSplit(roots: readonly number[]): { user: number; system: number } {
  let user = 0;
  let system = 0;
  const seen = new Set<number>();
  for (const r of roots)
    for (const p of processTree(r)) {
      if (seen.has(p)) continue;
      seen.add(p);
      const t = procTimes(p, true);
      user += t.user;
      system += t.system;
    }
  return { user: user / HZ, system: system / HZ };
}

/**
 * Reads the machine's busy time and the CPU time of the trees under `roots`. Each process counts
 * its own time plus that of its children it has already waited for (cutime), so backends and
 * pgbench runs that ended in between are not lost.
 */
export function cpuSnapshot(roots: readonly number[]): CpuSnapshot {
  const t = treeCpuSplit(roots);
  return { at: Date.now(), busy: machineBusy(), ours: Math.round((t.user + t.system) * HZ) };
}

/** Average number of cores busy with other work between two snapshots (≥ 0). */
export function foreignCores(a: CpuSnapshot, b: CpuSnapshot): number {
  const seconds = (b.at - a.at) / 1000;
  if (seconds <= 0) return 0;
  return Math.max(0, (b.busy - a.busy - (b.ours - a.ours)) / HZ / seconds);
}

/** The postmaster pid of a data directory (first line of postmaster.pid), if running. */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(`${dataDir}/postmaster.pid`, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds of this process's children that have been waited for (pgbench runs, once they exit). */
export function reapedChildrenSeconds(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    return ((f[13] ?? 0) + (f[14] ?? 0)) / HZ;
  } catch {
    return 0;
  }
}

/** What waitForQuiet saw. */
export interface QuietResult {
  /** How long it waited, ms. */
  readonly waitedMs: number;
  /** Cores the whole machine kept busy in the last one-second window. */
  readonly busyCores: number;
  /** False when it gave up at maxMs with the machine still busier than `cores`. */
  readonly quiet: boolean;
}

/**
 * Waits until the whole machine (every process, the benchmark's own included) keeps fewer than
 * `cores` cores busy over a one-second window, or until `maxMs` have passed. The latency
 * measurement uses it: right after the throughput workloads the servers are still vacuuming,
 * checkpointing and reaping hundreds of connections, and a lone client's round trips would measure
 * that.
 */
export async function waitForQuiet(cores: number, maxMs: number): Promise<QuietResult> {
  const t0 = Date.now();
  for (;;) {
    const a = { at: Date.now(), busy: machineBusy() };
    await new Promise((r) => setTimeout(r, 1000));
    const b = { at: Date.now(), busy: machineBusy() };
    const busyCores = (b.busy - a.busy) / HZ / ((b.at - a.at) / 1000);
    const waitedMs = b.at - t0;
    if (busyCores < cores) return { waitedMs, busyCores, quiet: true };
    if (waitedMs >= maxMs) return { waitedMs, busyCores, quiet: false };
  }
}
