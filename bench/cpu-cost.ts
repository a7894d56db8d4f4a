// CPU cost per transaction of each proxy: runs a pgbench workload against each target in turn
// (interleaved rounds) and reads the target process tree's CPU time (utime and stime from /proc,
// reported apart: the kernel's share is mostly the sockets, user space is the proxy's own code)
// around each run; TPC-B runs start from a vacuumed rig, as in bench/run.ts. Unlike TPS, a
// proxy's own microseconds of CPU per transaction move little when other work shares the cores,
// so this compares efficiency even on a busy machine. The `relay` target (bench/floor/relay.ts)
// is the floor of any Node.js proxy on this I/O path;
// `pgrouter-txn` is pgrouter with pool_mode = 'transaction' (bench/targets/pgrouter.ts).
// --pgrouter-conf goes to both pgrouter targets (same syntax as `npm run bench -- --pgrouter-conf`).
//
//   npx tsx bench/cpu-cost.ts [--targets relay,pgrouter,pgrouter-txn,pgbouncer,pgpool] [--workloads select-simple,...]
//                             [--seconds 8] [--rounds 3] [--pgrouter-conf key=value,...]

import { readFileSync } from 'node:fs';
import { startCluster, stopCluster, type Cluster } from '../rig/cluster.ts';
import { parsePgrouterConf, startPgrouter } from './targets/pgrouter.ts';
import { startPgbouncer } from './targets/pgbouncer.ts';
import { startPgpool } from './targets/pgpool.ts';
import { resetTpcb, runPgbench } from './lib/pgbench.ts';
import { WORKLOADS } from './lib/workloads.ts';
import { treeCpuSplit } from './lib/cpu.ts';
import { startRelay, type RunningRelay } from './targets/relay.ts';
import { flag } from './lib/options.ts';

type Running = RunningRelay;

const pgrouterConf = parsePgrouterConf(flag('pgrouter-conf', ''));

const starters: Record<string, (c: Cluster) => Promise<Running>> = {
  relay: startRelay,
  pgrouter: async (c) => {
    const t = await startPgrouter(c, { conf: pgrouterConf });
    return { port: t.port, pid: t.pid!, stop: () => t.stop() };
  },
  'pgrouter-txn': async (c) => {
    const t = await startPgrouter(c, { conf: pgrouterConf, poolMode: 'transaction' });
    return { port: t.port, pid: t.pid!, stop: () => t.stop() };
  },
  pgbouncer: async (c) => {
    const t = await startPgbouncer(c);
    return { port: t.port, pid: t.pid!, stop: () => t.stop() };
  },
  pgpool: async (c) => {
    const t = await startPgpool(c);
    return { port: t.port, pid: t.pid!, stop: () => t.stop() };
  },
};

const targets = flag('targets', 'relay,pgrouter,pgbouncer').split(',');
const workloads = flag('workloads', 'select-simple,select-extended,select-prepared').split(',');
const seconds = Number(flag('seconds', '8'));
const rounds = Number(flag('rounds', '3'));
for (const t of targets) if (!starters[t]) throw new Error(`unknown target ${t} (known: ${Object.keys(starters).join(', ')})`);

const c = await startCluster({ pgbenchScale: 10, maxConnections: 1200 });
const running = new Map<string, Running>();
try {
  for (const t of targets) {
    const s = starters[t];
    if (!s) throw new Error(`unknown target ${t} (known: ${Object.keys(starters).join(', ')})`);
    running.set(t, await s(c));
  }
  const rows: string[] = [];
  for (const wid of workloads) {
    const w = WORKLOADS.find((x) => x.id === wid);
    if (!w) throw new Error(`unknown workload ${wid}`);
    const perTarget = new Map<string, Array<{ tps: number; cores: number; us: number; user: number; system: number }>>();
    for (let r = 0; r < rounds; r++)
      for (const [name, t] of running) {
        if (w.writes) await resetTpcb(c);
        await runPgbench(c, w, t.port, 2, 0); // warm-up
        const cpu0 = treeCpuSplit([t.pid]);
        const t0 = Date.now();
        const res = await runPgbench(c, w, t.port, seconds, 0);
        const cpu1 = treeCpuSplit([t.pid]);
        const user = cpu1.user - cpu0.user;
        const system = cpu1.system - cpu0.system;
        const cpu = user + system;
        const wall = (Date.now() - t0) / 1000;
        const tx = res.ok ? (res.processed ?? 0) : 0;
        const list = perTarget.get(name) ?? [];
        if (tx > 0) list.push({ tps: res.tps ?? 0, cores: cpu / wall, us: (cpu / tx) * 1e6, user: (user / tx) * 1e6, system: (system / tx) * 1e6 });
        perTarget.set(name, list);
        process.stderr.write(`cpu-cost: ${wid} ${name} round ${r + 1}: ${tx > 0 ? `${(res.tps ?? 0).toFixed(0)} TPS, ${((cpu / tx) * 1e6).toFixed(1)} µs/tx` : 'failed'}\n`);
      }
    for (const [name, list] of perTarget) {
      if (list.length === 0) {
        rows.push(`| ${wid} | ${name} | failed | — | — | — | — | — |`);
        continue;
      }
      // The median round by total CPU per transaction, with its user/system split.
      const sorted = [...list].sort((a, b) => a.us - b.us);
      const med = sorted[Math.floor(sorted.length / 2)]!;
      const best = list.reduce((a, b) => (b.tps > a.tps ? b : a));
      const every = list.map((x) => `${x.us.toFixed(1)} (${x.user.toFixed(1)} + ${x.system.toFixed(1)})`).join(', ');
      rows.push(`| ${wid} | ${name} | ${best.tps.toFixed(0)} | ${best.cores.toFixed(2)} | ${med.us.toFixed(1)} | ${med.user.toFixed(1)} | ${med.system.toFixed(1)} | ${every} |`);
    }
  }
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`pgbench as in bench/run.ts (workloads above), ${seconds} s per run, ${rounds} interleaved rounds; load average at the end ${load}\n`);
  console.log('| workload | target | best TPS | its CPU cores | proxy CPU µs/tx (median round) | of it user | of it system | every round: total (user + system) |');
  console.log('|---|---|---:|---:|---:|---:|---:|---|');
  for (const r of rows) console.log(r);
} finally {
  for (const t of running.values()) await t.stop();
  await stopCluster(c);
}
