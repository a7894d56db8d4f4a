// Added latency at one client for the bare Node relay (bench/floor/relay.ts) beside pgrouter
// with load balancing off and on, each against direct in alternating blocks (bench/latency.ts's
// method): how much of pgrouter's added latency is the hop itself, and what busy polling
// (busy_poll_us) takes off it.
//
//   npx tsx bench/latency-floor.ts [--queries 10000]

import { startCluster, stopCluster } from '../rig/cluster.ts';
import { measureLatency } from './latency.ts';
import { startPgrouter } from './targets/pgrouter.ts';
import { startRelay } from './targets/relay.ts';

const i = process.argv.indexOf('--queries');
const queries = i > 0 ? Number(process.argv[i + 1]) : 10_000;
const c = await startCluster({});
const relay = await startRelay(c);
const lbOff = await startPgrouter(c, { conf: { load_balance_mode: 'off' } });
const lbOn = await startPgrouter(c);
const noPoll = await startPgrouter(c, { conf: { busy_poll_us: 0 } });
try {
  console.log(`| path (${queries} SELECT 1 round trips each, alternating with direct) | direct p50 µs | path p50 µs | added p50 µs |`);
  console.log('|---|---:|---:|---:|');
  for (const [name, p] of [['bare Node relay to the primary', relay.port], ['pgrouter, load_balance_mode off', lbOff.port], ['pgrouter, load balancing on', lbOn.port], ['pgrouter, load balancing on, busy_poll_us = 0', noPoll.port]] as const) {
    const r = await measureLatency(c, p, queries);
    console.log(`| ${name} | ${r.direct.p50.toFixed(1)} | ${r.pgrouter.p50.toFixed(1)} | ${r.addedP50.toFixed(1)} |`);
  }
} finally {
  await relay.stop();
  await lbOff.stop();
  await lbOn.stop();
  await noPoll.stop();
  await stopCluster(c);
}
