// Renders a benchmark run as Markdown: the summary table, the full workload × target table,
// the issue-6 targets (for each pgrouter target: session and transaction pooling), the machine
// and versions, the exact commands and configurations.

import { PGROUTER_TARGETS, TARGET_LABELS, type Target, type TargetName } from '../targets/target.ts';
import type { MachineInfo } from './machine.ts';
import type { BenchOptions } from './options.ts';
import type { PgbenchResult } from './pgbench.ts';
import type { Workload } from './workloads.ts';

/** One workload × target measurement (the fastest round when there were several). */
export interface Cell {
  readonly workload: Workload;
  readonly target: TargetName;
  readonly result: PgbenchResult | undefined;
  /** Index of `result` in `rounds`. */
  readonly chosen: number;
  readonly rounds: readonly PgbenchResult[];
  /** Why there is no result (the target could not start or died). */
  readonly unavailable?: string;
  /** 1-minute load average right after each measured round. */
  readonly loads: readonly string[];
  /** Cores' worth of CPU used by processes outside the benchmark during each measured round. */
  readonly foreign: readonly number[];
  /** Share of the run's transactions (pg_stat_database) that the replica served, per round. */
  readonly replicaShare: readonly number[];
  /** CPU pgbench itself used during each measured round, in cores (absent in older results). */
  readonly pgbenchCores?: readonly number[];
}

/** Everything the report shows. */
export interface RunReport {
  readonly date: Date;
  readonly durationS: number;
  readonly options: BenchOptions;
  readonly argv: readonly string[];
  readonly machine: MachineInfo;
  readonly versions: Record<string, string>;
  readonly loadStart: string;
  readonly loadEnd: string;
  readonly foreign: string;
  readonly targets: readonly Target[];
  readonly unavailable: Partial<Record<TargetName, string>>;
  readonly cells: readonly Cell[];
  /** Workload id → the pgbench line (port shown as <port>). */
  readonly commands: ReadonlyMap<string, string>;
  readonly latency?: readonly string[];
  readonly idleMemory?: readonly string[];
  readonly notes: readonly string[];
}

const fmt = (n: number | undefined, digits: number): string => (n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(digits));

function tpsText(n: number | undefined): string {
  return n === undefined ? '—' : n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

function ratio(cell: Cell | undefined, direct: Cell | undefined): number | undefined {
  const t = cell?.result?.ok ? cell.result.tps : undefined;
  const d = direct?.result?.ok ? direct.result.tps : undefined;
  return t !== undefined && d !== undefined && d > 0 ? t / d : undefined;
}

function failedText(r: PgbenchResult): string {
  const parts: string[] = [];
  parts.push(String(r.failed ?? '—'));
  if (r.abortedClients > 0) parts.push(`${r.abortedClients} clients aborted`);
  if (!r.ok && r.abortedClients === 0) parts.push(`pgbench exit ${r.exitCode}`);
  return parts.join(', ');
}

function find(cells: readonly Cell[], w: string, t: TargetName): Cell | undefined {
  return cells.find((c) => c.workload.id === w && c.target === t);
}

const label = (t: TargetName): string => TARGET_LABELS[t];

/** issue 6's per-workload goals for pgrouter (ratio to direct), applied to each pgrouter target. */
const GOALS: Record<string, number> = {
  'select-simple': 0.85,
  'select-extended': 0.85,
  'select-prepared': 0.8,
  'select-connect': 10,
  'select-connect-trust': 10,
  'tpcb-simple': 0.85,
  'select-200': 0.8,
};

function goalsTable(r: RunReport, workloads: readonly Workload[], pgrouters: readonly TargetName[]): string[] {
  const out = [
    '| workload | pgrouter pool_mode | × direct | goal | vs PgBouncer | vs Pgpool-II (goal ≥ 2x) | met? |',
    '|---|---|---:|---:|---:|---:|---|',
  ];
  for (const w of workloads)
    for (const name of pgrouters) {
      const d = find(r.cells, w.id, 'direct');
      const p = find(r.cells, w.id, name);
      const rr = ratio(p, d);
      const pgb = find(r.cells, w.id, 'pgbouncer');
      const pgp = find(r.cells, w.id, 'pgpool');
      const pt = p?.result?.ok ? p.result.tps : undefined;
      const vsB = pt !== undefined && pgb?.result?.ok && pgb.result.tps ? pt / pgb.result.tps : undefined;
      const vsP = pt !== undefined && pgp?.result?.ok && pgp.result.tps ? pt / pgp.result.tps : undefined;
      const goal = GOALS[w.id];
      const misses: string[] = [];
      if (rr === undefined) misses.push(p?.result && !p.result.ok ? 'failed' : 'no result');
      else if (goal !== undefined && rr < goal) misses.push(`${fmt(goal - rr, 2)}x short of ${goal}x`);
      if (vsB !== undefined && vsB <= 1) misses.push(`${fmt((1 - vsB) * 100, 0)}% behind PgBouncer`);
      if (vsP !== undefined && vsP < 2) misses.push(`only ${fmt(vsP, 2)}x Pgpool-II`);
      if (w.id === 'select-200' && p?.result && ((p.result.failed ?? 0) > 0 || p.result.abortedClients > 0)) misses.push('failures');
      const bText = vsB !== undefined ? `${fmt(vsB, 2)}x` : pgb?.result && !pgb.result.ok ? 'PgBouncer failed' : '—';
      out.push(`| ${w.id} | ${name === 'pgrouter-txn' ? 'transaction (`pgrouter-txn`)' : 'session (`pgrouter`)'} | ${fmt(rr, 2)} | ${goal ?? '—'} | ${bText} | ${vsP !== undefined ? `${fmt(vsP, 2)}x` : '—'} | ${misses.length ? `no: ${misses.join('; ')}` : 'yes'} |`);
    }
  return out;
}

/** The Markdown document. */
export function renderReport(r: RunReport): string {
  const o = r.options;
  const workloads = [...new Map(r.cells.map((c) => [c.workload.id, c.workload])).values()];
  const targetNames = o.targets;
  const L: string[] = [];
  L.push('# pgrouter benchmark results', '');
  L.push(
    `Recorded ${r.date.toISOString().replace(/\.\d+Z$/, 'Z')} by \`npm run bench${r.argv.length ? ` -- ${r.argv.join(' ')}` : ''}\` ` +
      `(${Math.round(r.durationS / 60)} min). Each workload ran against ${targetNames.map(label).join(', ')} in turn, ` +
      `${o.warmup} s warm-up then ${o.seconds} s measured per target${o.rounds > 1 ? `, ${o.rounds} rounds interleaved in time (the fastest round of each target is shown: interference only slows a run down; all rounds are in the raw table)` : ''}. ` +
      'Rig: PostgreSQL primary + streaming replica on loopback (`rig/cluster.ts`), pgbench scale 10, fsync off.',
    '',
  );
  const overrides = Object.entries(o.pgrouterConf ?? {});
  if (overrides.length > 0)
    L.push(
      `pgrouter configuration overrides (\`--pgrouter-conf\`), applied to ${PGROUTER_TARGETS.filter((t) => targetNames.includes(t)).map((t) => `\`${t}\``).join(' and ') || 'the pgrouter targets'}` +
        `${o.parts.includes('latency') ? ' and to the latency part\'s pgrouter' : ''}${o.parts.includes('idle-memory') ? ' (not to the idle-memory part, which configures its own pgrouter)' : ''}: ` +
        `${overrides.map(([k, v]) => `\`${k} = ${v}\``).join(', ')}. Each target's full pgpool.conf is under "Exact commands".`,
      '',
    );
  L.push('## Machine', '');
  L.push(`- ${r.machine.cores} cores (nproc), ${r.machine.cpu}; memory ${r.machine.memory}; ${r.machine.kernel}`);
  L.push(`- load average (1/5/15 min) at start ${r.loadStart}, at end ${r.loadEnd}. ${r.foreign}`);
  const foreign = r.cells.flatMap((c) => [...c.foreign]).sort((a, b) => a - b);
  if (foreign.length > 0)
    L.push(
      `- other work on the machine during the measured runs (CPU outside this benchmark's processes, see the raw table): ` +
        `min ${fmt(foreign[0], 2)}, median ${fmt(foreign[Math.floor(foreign.length / 2)], 2)}, max ${fmt(foreign[foreign.length - 1], 2)} cores of ${r.machine.cores}`,
    );
  L.push('- pgbench runs on the same cores as the servers and the proxy: every figure includes that contention.', '');
  L.push('## Versions', '');
  for (const [k, v] of Object.entries(r.versions)) L.push(`- ${k}: ${v}`);
  L.push('');
  if (Object.keys(r.unavailable).length > 0) {
    L.push('## Targets that did not run', '');
    for (const [k, v] of Object.entries(r.unavailable)) L.push(`- **${label(k as TargetName)}**: ${v.split('\n').slice(0, 6).join(' / ')}`);
    L.push('');
  }
  if (r.cells.length > 0) {
    L.push('## Summary: TPS (ratio to direct)', '');
    L.push(`| workload | ${targetNames.map(label).join(' | ')} |`, `|---|${targetNames.map(() => '---:').join('|')}|`);
    for (const w of workloads) {
      const d = find(r.cells, w.id, 'direct');
      const row = targetNames.map((t) => {
        const c = find(r.cells, w.id, t);
        if (!c) return '—';
        if (!c.result) return 'n/a';
        if (!c.result.ok) return 'failed';
        const x = ratio(c, d);
        return `${tpsText(c.result.tps)}${t !== 'direct' && x !== undefined ? ` (${fmt(x, 2)}x)` : ''}`;
      });
      L.push(`| ${w.id} | ${row.join(' | ')} |`);
    }
    L.push('');
    L.push('## Results', '');
    L.push('| workload | target | TPS | mean ms | p99 ms | failed | × direct | on replica |', '|---|---|---:|---:|---:|---|---:|---:|');
    for (const w of workloads) {
      const d = find(r.cells, w.id, 'direct');
      for (const t of targetNames) {
        const c = find(r.cells, w.id, t);
        if (!c) continue;
        if (!c.result) {
          L.push(`| ${w.id} | ${label(t)} | n/a | | | | | |`);
          continue;
        }
        const res = c.result;
        // A failed run's latencies describe only the part before clients aborted: shown in the raw table only.
        L.push(`| ${w.id} | ${label(t)} | ${res.ok ? tpsText(res.tps) : `failed (${tpsText(res.tps)} before aborting)`} | ${res.ok ? fmt(res.meanMs, 3) : '—'} | ${res.ok ? fmt(res.p99Ms, 3) : '—'} | ${failedText(res)} | ${fmt(ratio(c, d), 2)} | ${c.replicaShare[c.chosen] !== undefined ? `${fmt(c.replicaShare[c.chosen]! * 100, 0)}%` : '—'} |`);
      }
    }
    L.push('');
    const failures = r.cells.filter((c) => c.result && !c.result.ok);
    if (failures.length > 0) {
      L.push('Failed runs:', '');
      for (const c of failures) L.push(`- ${c.workload.id} × ${label(c.target)}: ${c.result!.errors.join(' / ') || c.result!.outputTail || `exit ${c.result!.exitCode}`}`);
      L.push('');
    }
    L.push('Workloads:', '');
    for (const w of workloads) L.push(`- **${w.id}**: ${w.title}${w.writes ? ' (writes go to the primary; before each target the harness truncates pgbench_history and vacuums pgbench_branches and pgbench_tellers directly on the primary, as pgbench does without -n)' : ''}`);
    L.push('');
    L.push('### How latency was measured', '');
    L.push(
      '- **TPS**, **mean** and **failed** are pgbench\'s own figures (`tps = …`, `latency average = …`, `number of failed transactions`). ' +
        'For `-C` pgbench\'s TPS and mean include connecting and authenticating (SCRAM) per transaction.',
      '- **p99** (nearest rank) comes from pgbench\'s per-transaction log (`-l --log-prefix`), written during the measured run itself. ' +
        'To keep the logging cost negligible the log is sampled (`--sampling-rate`), at a rate picked from the warm-up TPS so that about ' +
        '50,000 transactions are logged (≈3,300 lines/s at 15 s, ~100 kB/s of buffered writes by pgbench); the rate per run is in the raw table. ' +
        'For `-C` every transaction is logged and the latency is the gap between a client\'s consecutive transaction ends, because the logged ' +
        'transaction time excludes the connection; that gap is connect + authenticate + query + disconnect, the same span as pgbench\'s mean.',
      '- The ratio is TPS of the target ÷ TPS of direct for the same workload in the same run.',
      '- "on replica" is the replica\'s share of the transactions the two nodes counted during the run (see the raw table).',
      '',
    );
    if (r.notes.length > 0) {
      L.push('## Notes', '');
      for (const n of r.notes) L.push(`- ${n}`);
      L.push('');
    }
    const pgrouters = PGROUTER_TARGETS.filter((t) => targetNames.includes(t));
    if (pgrouters.length > 0 && targetNames.includes('direct')) {
      L.push('## pgrouter against the issue-6 targets', '');
      if (pgrouters.length > 1) L.push('Each goal is checked for both pgrouter targets: session pooling (`pgrouter`) and transaction pooling (`pgrouter-txn`).', '');
      L.push(...goalsTable(r, workloads, pgrouters), '');
    }
  }
  if (r.latency) L.push('## Added latency at one client', '', ...r.latency, '');
  if (r.idleMemory) L.push('## Idle connections and pgrouter memory', '', ...r.idleMemory, '');
  if (r.cells.length > 0) {
    L.push('## Exact commands', '');
    L.push(
      'pgbench (`PGPASSWORD` set, `-p` = the target\'s port below; the measured run adds `-l --log-prefix=<tmpdir>/tx [--sampling-rate=R]`, ' +
        `the warm-up is the same line with \`-T ${o.warmup}\`):`,
      '',
      '```',
    );
    for (const w of workloads) L.push(r.commands.get(w.id) ?? '');
    L.push('```', '');
    for (const t of r.targets) {
      L.push(`### ${label(t.name) === t.name ? t.name : `${label(t.name)}: \`${t.name}\``} (port ${t.port})`, '', t.summary, '');
      if (t.command) L.push('```', t.command, '```', '');
      for (const f of t.files) L.push(`\`${f.name}\`:`, '', '```', f.text.trimEnd(), '```', '');
    }
    L.push('## Raw runs', '');
    L.push(
      '"pgbench CPU" is the CPU the load generator itself used (it shares the cores with everything else). "other CPU" is the CPU time the machine spent outside this benchmark\'s processes during the measured run (whole-machine busy time ' +
        'from /proc/stat minus that of this process, its pgbench children, the rig\'s postmasters with their backends, and the target), in cores. ' +
        '"replica share" is the replica\'s part of the transactions both nodes counted in pg_stat_database (xact_commit + xact_rollback of `app`) ' +
        'over the measured run. It is approximate (a few points): backends publish their counters about once a second, and an idle one ' +
        'publishes its last second up to 10 s later, so a little of the previous run can land in the next one\'s window.',
      '',
    );
    L.push('| workload | target | round | TPS | mean ms | p50 ms | p99 ms | latency samples | sampling rate | transactions | replica share | pgbench CPU (cores) | other CPU (cores) | load (1 min) after |', '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const c of r.cells)
      c.rounds.forEach((x, i) =>
        L.push(`| ${c.workload.id} | ${label(c.target)} | ${i + 1}${r.options.rounds > 1 && i === c.chosen ? ' (shown)' : ''} | ${x.ok ? tpsText(x.tps) : `failed (${tpsText(x.tps)})`} | ${fmt(x.meanMs, 3)} | ${fmt(x.p50Ms, 3)} | ${fmt(x.p99Ms, 3)} | ${x.samples} | ${x.samplingRate.toPrecision(3)} | ${x.processed ?? '—'} | ${c.replicaShare[i] !== undefined ? `${fmt(c.replicaShare[i]! * 100, 0)}%` : '—'} | ${fmt(c.pgbenchCores?.[i], 2)} | ${fmt(c.foreign[i], 2)} | ${c.loads[i] ?? ''} |`),
      );
    L.push('');
  }
  return L.join('\n');
}
