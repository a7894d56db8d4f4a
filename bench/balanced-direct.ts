// What load balancing costs on this machine without any proxy: pgbench -S with 16 clients on
// the primary alone, against 8 clients on the primary plus 8 on the replica at the same time
// (both servers share the same cores). The difference is the price of spreading reads over two
// PostgreSQL instances here, which a routing proxy pays on top of its own cost.
//
//   npx tsx bench/balanced-direct.ts [--workloads select-simple,select-prepared] [--seconds 8] [--rounds 2]

import { startCluster, stopCluster } from '../rig/cluster.ts';
import { runPgbench } from './lib/pgbench.ts';
import { WORKLOADS } from './lib/workloads.ts';
import { flag } from './lib/options.ts';

const workloads = flag('workloads', 'select-simple,select-extended,select-prepared').split(',');
const seconds = Number(flag('seconds', '8'));
const rounds = Number(flag('rounds', '2'));

const c = await startCluster({ pgbenchScale: 10, maxConnections: 1200 });
try {
  console.log('| workload | round | 16 clients on the primary | 8 on the primary + 8 on the replica | ratio |');
  console.log('|---|---:|---:|---:|---:|');
  for (const wid of workloads) {
    const w = WORKLOADS.find((x) => x.id === wid);
    if (!w) throw new Error(`unknown workload ${wid}`);
    const half = { ...w, clients: w.clients / 2 };
    for (let r = 1; r <= rounds; r++) {
      const one = await runPgbench(c, w, c.primary.port, seconds, 0);
      const [a, b] = await Promise.all([runPgbench(c, half, c.primary.port, seconds, 0), runPgbench(c, half, c.replica.port, seconds, 0)]);
      const split = (a.tps ?? 0) + (b.tps ?? 0);
      console.log(`| ${wid} | ${r} | ${one.tps?.toFixed(0)} | ${split.toFixed(0)} (${a.tps?.toFixed(0)} + ${b.tps?.toFixed(0)}) | ${(split / (one.tps ?? 1)).toFixed(2)} |`);
    }
  }
} finally {
  await stopCluster(c);
}
