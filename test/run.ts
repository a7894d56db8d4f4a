// `npm test`: starts one shared rig cluster, runs every unit and integration test file against it
// with node:test (one file at a time), then stops the cluster and exits with the tests' status.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeCluster, startCluster, stopCluster, stopClusterSync } from '../rig/cluster.ts';
import type { Cluster } from '../rig/cluster.ts';
import { CLUSTER_ENV } from './harness/cluster.ts';
import { ensureTestPackages } from './harness/system-packages.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** `test/<sub>/*.test.ts`, sorted; Node 20's --test does not expand globs or folders itself. */
function testFiles(sub: string): string[] {
  let names: string[];
  try {
    names = readdirSync(path.join(root, 'test', sub));
  } catch {
    return [];
  }
  return names.filter((n) => n.endsWith('.test.ts')).sort().map((n) => path.join('test', sub, n));
}

const cliFiles = process.argv.slice(2);
const files = cliFiles.length > 0 ? cliFiles : [...testFiles('unit'), ...testFiles('integration')];
if (files.length === 0) {
  console.error('npm test: no test files found in test/unit/*.test.ts or test/integration/*.test.ts');
  process.exit(1);
}

let cluster: Cluster | undefined;
let child: ChildProcess | undefined;
let interrupted: NodeJS.Signals | undefined;
let stopped = false;

let childExited = false;

/** Signals the test runner's whole process group (it and the per-file processes it spawned). */
function signalTests(sig: NodeJS.Signals): void {
  if (child?.pid === undefined || childExited) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    // already gone
  }
}

// Last resort if we die some unplanned way (e.g. EPIPE on stdout): no cluster and no orphaned
// test processes left behind.
process.on('exit', () => {
  signalTests('SIGKILL');
  if (cluster && !stopped) stopClusterSync(cluster);
});

function onSignal(sig: NodeJS.Signals): void {
  if (interrupted) {
    // Second signal: stop waiting for anyone.
    if (cluster && !stopped) stopClusterSync(cluster);
    stopped = true;
    process.exit(sig === 'SIGINT' ? 130 : 143);
  }
  interrupted = sig;
  // The tests run in their own process group, so Ctrl-C reaches them only through us.
  signalTests(sig);
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

async function main(): Promise<number> {
  ensureTestPackages();
  const t0 = Date.now();
  cluster = await startCluster({
    pgbenchScale: 1,
    ...(process.env['PGROUTER_RIG_LOG'] === '1' ? { log: (l: string) => console.error(l) } : {}),
  });
  const c = cluster;
  console.log(
    `test rig: primary ${c.primary.host}:${c.primary.port}, replica ${c.replica.host}:${c.replica.port}, ` +
      `dir ${c.dir} (up in ${Date.now() - t0} ms)`,
  );
  if (interrupted) return interrupted === 'SIGINT' ? 130 : 143;

  const code = await new Promise<number>((resolve) => {
    child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files], {
      cwd: root,
      // Own process group: lets us kill the runner together with its per-file children.
      detached: true,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, [CLUSTER_ENV]: describeCluster(c) },
    });
    child.once('error', (e) => {
      console.error(`npm test: cannot start node --test: ${e.message}`);
      resolve(1);
    });
    child.once('exit', (exitCode, signal) => {
      childExited = true;
      if (exitCode !== null) resolve(exitCode);
      else resolve(signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 1);
    });
  });
  return interrupted ? (interrupted === 'SIGINT' ? 130 : 143) : code;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (e) {
  console.error(`npm test: ${e instanceof Error ? e.message : String(e)}`);
} finally {
  if (cluster && !stopped) {
    try {
      await stopCluster(cluster);
    } catch (e) {
      console.error(`npm test: stopping the rig: ${e instanceof Error ? e.message : String(e)}`);
      stopClusterSync(cluster);
    }
    stopped = true;
  }
}
process.exit(exitCode);
