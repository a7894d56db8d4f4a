// `npm run bench`: the side-by-side benchmark. Starts the rig (primary + replica, pgbench scale
// 10), then direct, pgrouter (session pooling), pgrouter-txn (pool_mode = transaction), Pgpool-II
// and PgBouncer; runs each pgbench workload against every
// target in turn; measures added latency and idle-connection memory; prints the report and, with
// --write, saves it to bench/RESULTS.md. Installs nothing: says what is missing and carries on.

import { readdirSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { sql, startCluster, stopCluster, stopClusterSync, type Cluster } from '../rig/cluster.ts';
import { idleMemoryMarkdown, measureIdleMemory } from './idle-memory.ts';
import { latencyMarkdown, measureLatency } from './latency.ts';
import { cpuSnapshot, foreignCores, postmasterPid, reapedChildrenSeconds, waitForQuiet } from './lib/cpu.ts';
import { loadAverage, machineInfo, versions } from './lib/machine.ts';
import { parseOptions, USAGE } from './lib/options.ts';
import { pgbenchArgs, resetTpcb, runPgbench, type PgbenchResult } from './lib/pgbench.ts';
import { checkPrerequisites } from './lib/prereq.ts';
import { killAllDaemonsSync } from './lib/proc.ts';
import { renderReport, type Cell } from './lib/report.ts';
import { WORKLOADS, type Workload } from './lib/workloads.ts';
import { startDirect } from './targets/direct.ts';
import { startPgbouncer } from './targets/pgbouncer.ts';
import { startPgpool } from './targets/pgpool.ts';
import { startPgrouter } from './targets/pgrouter.ts';
import { PGROUTER_TARGETS, TARGET_LABELS, type Target, type TargetName, type TargetStarter } from './targets/target.ts';

const RESULTS = fileURLToPath(new URL('./RESULTS.md', import.meta.url));
/** The raw numbers behind RESULTS.md. */
const RESULTS_JSON = fileURLToPath(new URL('./results.json', import.meta.url));
/** Room for every target's cached connections at once, the 200-client run and the idle-memory sessions. */
const MAX_CONNECTIONS = 1200;
/** About this many transactions are logged per measured run (see the sampling-rate note in the report). */
const LOGGED_TRANSACTIONS = 50_000;

/** How each target starts; `pgrouterConf` (--pgrouter-conf) goes to both pgrouter targets. */
function starters(pgrouterConf: Record<string, string>): Record<TargetName, TargetStarter> {
  return {
    direct: startDirect,
    pgrouter: (c) => startPgrouter(c, { conf: pgrouterConf }),
    'pgrouter-txn': (c) => startPgrouter(c, { conf: pgrouterConf, poolMode: 'transaction' }),
    pgpool: startPgpool,
    pgbouncer: startPgbouncer,
  };
}

const say = (line: string): void => void process.stderr.write(`bench: ${line}\n`);
const firstLines = (e: unknown, n = 8): string => (e instanceof Error ? e.message : String(e)).split('\n').slice(0, n).join('\n');

/** Other PostgreSQL servers on the machine (other sessions' rigs), for the report's honesty line. */
function foreignServers(c: Cluster): string {
  let others = 0;
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      const i = cmd.indexOf('-D');
      if (/\/postgres$/.test(cmd[0] ?? '') && i > 0 && !(cmd[i + 1] ?? '').startsWith(c.dir)) others++;
    } catch {
      // gone
    }
  }
  return others > 0
    ? `${others} other PostgreSQL server(s) not started by this run were up on the machine (e.g. other sessions' test rigs), so the machine was not idle.`
    : 'No other PostgreSQL servers were running on the machine.';
}

/**
 * Sections of the current RESULTS.md that this harness did not generate and that sit after its
 * last one ("## Raw runs"): hand-written notes on later runs, bench/classify.ts's "## Statement
 * classification". They are carried over when --write rewrites the file.
 */
async function keptSections(): Promise<string> {
  let text = '';
  try {
    text = await readFile(RESULTS, 'utf8');
  } catch {
    return '';
  }
  const raw = text.indexOf('\n## Raw runs');
  const at = raw >= 0 ? text.indexOf('\n## ', raw + 1) : text.indexOf('\n## Statement classification');
  return at >= 0 ? text.slice(at) : '';
}

/** Committed + rolled-back transactions in the app database on each node (pg_stat_database). */
async function xactCounts(c: Cluster): Promise<{ primary: number; replica: number }> {
  // Asked from the postgres database, so the question itself is not counted in app's row.
  const q = `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '${c.database}'`;
  const [p, r] = await Promise.all([sql(c, c.primary, q, { database: 'postgres' }), sql(c, c.replica, q, { database: 'postgres' })]);
  return { primary: Number(p), replica: Number(r) };
}

/** Backends publish their statistics at most once a second (PostgreSQL 15); wait that out. */
const STATS_FLUSH_MS = 1500;
/** The latency part starts once the whole machine keeps under this many cores busy (or after QUIET_MAX_MS). */
const QUIET_CORES = 0.2;
const QUIET_MAX_MS = 90_000;

/**
 * The round reported when there are several: the highest TPS. Interference from other work on
 * the machine only ever slows a run down, so the fastest round is the least disturbed one; every
 * target gets the same number of rounds, interleaved in time.
 */
function bestRound(rounds: PgbenchResult[]): number {
  let best = 0;
  const score = (r: PgbenchResult): number => (r.ok ? r.tps ?? 0 : -1);
  rounds.forEach((r, i) => {
    if (score(r) > score(rounds[best]!)) best = i;
  });
  return best;
}

function describe(r: PgbenchResult): string {
  if (!r.ok) return `FAILED (exit ${r.exitCode}${r.abortedClients ? `, ${r.abortedClients} clients aborted` : ''}): ${r.errors[0] ?? (r.outputTail || 'no output')}`;
  return `${Math.round(r.tps ?? 0)} tps, mean ${r.meanMs?.toFixed(3)} ms, p99 ${r.p99Ms?.toFixed(3)} ms, failed ${r.failed ?? '?'}`;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  let opts;
  try {
    opts = parseOptions(argv);
  } catch (e) {
    process.stderr.write(`${firstLines(e, 30)}\n`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const o = opts;
  const STARTERS = starters(o.pgrouterConf);
  const t0 = Date.now();
  const wantThroughput = o.parts.includes('throughput');
  const pre = checkPrerequisites(wantThroughput ? o.targets : []);
  for (const m of pre.messages) say(m);
  if (!pre.postgres) return 1;

  const loadStart = loadAverage();
  let c: Cluster | undefined;
  let stopping = false;
  // Handled on every delivery, not once: a signal often arrives twice (directly and relayed by
  // the tsx parent), and a second default-handled one would kill us halfway through cleaning up.
  const onSignal = (): void => {
    if (stopping) return;
    stopping = true;
    say('interrupted: stopping everything');
    killAllDaemonsSync();
    if (c) stopClusterSync(c);
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  say('starting the rig (primary + replica, pgbench -i -s 10)...');
  c = await startCluster({ pgbenchScale: 10, maxConnections: MAX_CONNECTIONS });
  const running: Target[] = [];
  const unavailable: Partial<Record<TargetName, string>> = { ...pre.missing };
  const cells: Cell[] = [];
  const commands = new Map<string, string>();
  const notes: string[] = [];
  let latency: string[] | undefined;
  let idle: string[] | undefined;
  const allTargets: Target[] = [];
  const foreign = foreignServers(c);
  try {
    const info = machineInfo();
    const vers = await versions(c, { ...(pre.pgpoolBin ? { pgpool: pre.pgpoolBin } : {}), ...(pre.pgbouncerBin ? { pgbouncer: pre.pgbouncerBin } : {}) });
    say(`machine: ${info.cores} cores, ${info.memory}, ${info.cpu}; load ${loadStart}`);
    say(foreign);

    if (wantThroughput) {
      const byName = new Map<TargetName, Target>();
      for (const name of o.targets) {
        if (unavailable[name]) {
          say(`${name}: not run: ${unavailable[name]}`);
          continue;
        }
        try {
          const t = await STARTERS[name](c);
          byName.set(name, t);
          running.push(t);
          allTargets.push(t);
          say(`${name}: up on port ${t.port}`);
        } catch (e) {
          unavailable[name] = firstLines(e);
          say(`${name}: could not start, carrying on without it:\n${firstLines(e)}`);
        }
      }
      // CPU of these trees is "ours"; everything else the machine did meanwhile is interference.
      const cpuRoots = [process.pid, postmasterPid(c.primary.dataDir), postmasterPid(c.replica.dataDir)].filter((p): p is number => p !== undefined);
      const workloads: Workload[] = WORKLOADS.filter((w) => o.workloads.includes(w.id));
      for (const w of workloads) {
        commands.set(w.id, `pgbench ${pgbenchArgs(c, w, 0, o.seconds).join(' ').replace(' -p 0 ', ' -p <port> ')}`);
        const rounds = new Map<TargetName, { results: PgbenchResult[]; loads: string[]; foreign: number[]; replica: number[]; client: number[] }>();
        for (let round = 1; round <= o.rounds; round++) {
          for (const name of o.targets) {
            let t = byName.get(name);
            if (!t) continue;
            if (!t.alive()) {
              // Something outside the benchmark may stop it (another session's cleanup): say so, start it again.
              const last = t.tail().split('\n').filter((l) => l.trim() !== '').slice(-2).join(' / ');
              const at = new Date().toISOString().slice(11, 19);
              say(`${name} exited during the run (${last || 'no output'}); restarting it`);
              running.splice(running.indexOf(t), 1);
              byName.delete(name);
              try {
                t = await STARTERS[name](c);
                byName.set(name, t);
                running.push(t);
                allTargets.splice(allTargets.findIndex((x) => x.name === name), 1, t);
                notes.push(`${name} exited during the run at ${at} UTC (its last output: "${last}") and was restarted before ${w.id} round ${round}; the configuration below is the restarted one (new ports).`);
              } catch (e) {
                unavailable[name] = `exited during the run (${last}) and could not be restarted: ${firstLines(e)}`;
                notes.push(`${name} exited during the run at ${at} UTC (its last output: "${last}") and could not be restarted.`);
                continue;
              }
            }
            if (w.writes) await resetTpcb(c);
            let warmTps: number | undefined;
            if (o.warmup > 0) warmTps = (await runPgbench(c, w, t.port, o.warmup, 0)).tps;
            const rate = w.connectPerTransaction ? 1 : Math.min(1, LOGGED_TRANSACTIONS / ((warmTps ?? 10_000) * o.seconds));
            await new Promise((res) => setTimeout(res, STATS_FLUSH_MS));
            const x0 = await xactCounts(c);
            const cpu0 = cpuSnapshot(cpuRoots);
            const reaped0 = reapedChildrenSeconds();
            const r = await runPgbench(c, w, t.port, o.seconds, Number(rate.toPrecision(3)));
            const other = foreignCores(cpu0, cpuSnapshot(cpuRoots));
            // The only child reaped during the run is this pgbench (targets live on): its CPU, in cores.
            const client = (reapedChildrenSeconds() - reaped0) / o.seconds;
            await new Promise((res) => setTimeout(res, STATS_FLUSH_MS));
            const x1 = await xactCounts(c);
            const onPrimary = x1.primary - x0.primary;
            const onReplica = x1.replica - x0.replica;
            const share = onPrimary + onReplica > 0 ? onReplica / (onPrimary + onReplica) : 0;
            const load = loadAverage().split(' ')[0] ?? '';
            const entry = rounds.get(name) ?? { results: [], loads: [], foreign: [], replica: [], client: [] };
            entry.replica.push(share);
            entry.client.push(client);
            entry.results.push(r);
            entry.loads.push(load);
            entry.foreign.push(other);
            rounds.set(name, entry);
            say(`[${w.id}${o.rounds > 1 ? ` round ${round}` : ''}] ${name}: ${describe(r)} (replica share ${(share * 100).toFixed(0)}%; pgbench ${client.toFixed(2)} cores; other work on the machine: ${other.toFixed(2)} cores, load ${load})`);
            if (!r.ok && t.pid !== undefined) {
              const tail = t.tail();
              if (tail) say(`${name} output:\n${tail}`);
            }
          }
        }
        for (const name of o.targets) {
          const entry = rounds.get(name);
          if (entry) {
            const best = bestRound(entry.results);
            cells.push({ workload: w, target: name, result: entry.results[best], chosen: best, rounds: entry.results, loads: entry.loads, foreign: entry.foreign, replicaShare: entry.replica, pgbenchCores: entry.client });
          } else if (unavailable[name])
            cells.push({ workload: w, target: name, result: undefined, chosen: -1, rounds: [], unavailable: unavailable[name]!, loads: [], foreign: [], replicaShare: [], pgbenchCores: [] });
        }
      }
      for (const name of ['pgpool', 'pgbouncer'] as const) {
        const t = byName.get(name);
        if (t) {
          await t.stop();
          running.splice(running.indexOf(t), 1);
        }
      }
      if (byName.get('pgbouncer') && cells.some((x) => x.target === 'pgbouncer' && x.workload.id === 'select-prepared' && x.result && !x.result.ok))
        notes.push('PgBouncer 1.18 in transaction mode has no support for protocol-level prepared statements (added in 1.21), so `-M prepared` fails against it: a statement prepared on one server connection is missing on another, or collides with one another client prepared.');
      for (const name of PGROUTER_TARGETS) {
        const readOnly = cells.filter((x) => x.target === name && !x.workload.writes && x.replicaShare.length > 0);
        if (readOnly.length > 0 && readOnly.every((x) => x.replicaShare.every((v) => v < 0.02)))
          notes.push(`${TARGET_LABELS[name]} sent (almost) none of the read-only transactions to the replica in this run (replica share < 2%: see the raw table), so its load_balance_mode had no effect on these figures; Pgpool-II spread its read-only sessions across primary and replica.`);
      }
    }

    if (o.parts.includes('latency')) {
      say(`latency: ${o.latencyQueries} SELECT 1 round trips per path...`);
      let t = running.find((x) => x.name === 'pgrouter');
      let own = false;
      try {
        if (!t) {
          t = await startPgrouter(c, { conf: o.pgrouterConf });
          own = true;
        }
        // The throughput runs leave the servers vacuuming, checkpointing and reaping connections for a while.
        const q = await waitForQuiet(QUIET_CORES, QUIET_MAX_MS);
        say(`latency: ${q.quiet ? 'machine settled' : 'machine still busy'} after ${(q.waitedMs / 1000).toFixed(0)} s (${q.busyCores.toFixed(2)} cores busy)`);
        const r = await measureLatency(c, t.port, o.latencyQueries);
        latency = latencyMarkdown(r, q);
        say(`latency: direct p50 ${r.direct.p50.toFixed(1)} µs, pgrouter p50 ${r.pgrouter.p50.toFixed(1)} µs, added ${r.addedP50.toFixed(1)} µs`);
      } catch (e) {
        latency = [`Not measured: ${firstLines(e)}`];
        say(`latency: failed: ${firstLines(e)}`);
      } finally {
        if (own && t) await t.stop();
      }
    }
    // The idle-memory run needs the primary's connections: nothing else may hold any.
    for (const t of running.splice(0)) await t.stop();

    if (o.parts.includes('idle-memory')) {
      idle = [];
      // Session mode (each authenticated session holds a backend connection, the rest queue), then
      // transaction mode (every connection an authenticated session, sharing a few backends).
      for (const mode of ['session', 'transaction'] as const) {
        const sessions = mode === 'session' ? o.idleSessions : o.idleTotal;
        say(`idle-memory (${mode}): ${sessions} authenticated sessions + ${o.idleTotal - sessions} queued connections...`);
        try {
          const r = await measureIdleMemory(c, sessions, o.idleTotal, mode);
          idle.push(...(mode === 'transaction' ? ['', '`pool_mode = transaction`:', ''] : []), ...idleMemoryMarkdown(r));
          say(`idle-memory (${mode}): base ${(r.baseKb / 1024).toFixed(1)} MB, after sessions ${(r.afterSessionsKb / 1024).toFixed(1)} MB, after all ${(r.afterAllKb / 1024).toFixed(1)} MB`);
        } catch (e) {
          idle.push(`Not measured (${mode}): ${firstLines(e)}`);
          say(`idle-memory (${mode}): failed: ${firstLines(e)}`);
        }
      }
    }

    const report = renderReport({
      date: new Date(t0),
      durationS: (Date.now() - t0) / 1000,
      options: o,
      argv,
      machine: info,
      versions: vers,
      loadStart,
      loadEnd: loadAverage(),
      foreign,
      targets: allTargets,
      unavailable: wantThroughput ? unavailable : {},
      cells,
      commands,
      ...(latency ? { latency } : {}),
      ...(idle ? { idleMemory: idle } : {}),
      notes,
    });
    process.stdout.write(`${report}\n`);
    if (o.write) {
      await writeFile(RESULTS, `${report}\n${await keptSections()}`);
      await writeFile(RESULTS_JSON, `${JSON.stringify({ date: new Date(t0).toISOString(), argv, options: o, machine: info, versions: vers, targets: allTargets.map((t) => ({ name: t.name, label: TARGET_LABELS[t.name], port: t.port, summary: t.summary, command: t.command, files: t.files })), cells: cells.map((x) => ({ ...x, workload: x.workload.id })), latency, idle }, null, 1)}\n`);
      say(`wrote ${RESULTS} and ${RESULTS_JSON}`);
    }
    return 0;
  } finally {
    for (const t of running.splice(0)) await t.stop().catch(() => undefined);
    await stopCluster(c).catch((e: unknown) => say(`stopping the rig: ${firstLines(e)}`));
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
