// Runs a driver's step script (test/integration/drivers/) against a server and reads its JSON
// lines; starts the pgrouters the driver tests compare with a direct connection, and registers
// those tests. Shared by clients-psycopg.test.ts and clients-jdbc.test.ts.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Cluster } from '../../rig/cluster.ts';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';
import { run } from './clients-helpers.ts';

/** One line of a step script: a step's value, or the error it ended with. */
export interface StepLine {
  step: string;
  ok: boolean;
  value?: unknown;
  sqlstate?: string | null;
  error?: string;
}

/** Where a step script connects. */
export interface DriverTarget {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Whether a read sent before the session's first write is served by the standby. */
  readonly readsFromStandby: boolean;
  /** The same for a read inside a transaction (session pooling balances those, transaction pooling runs them on the primary). */
  readonly txReadsFromStandby: boolean;
}

/** Runs `file args` and returns its step lines; fails with its stderr when it exits non-zero. */
export async function runSteps(file: string, args: string[]): Promise<StepLine[]> {
  const r = await run(file, args);
  const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
  assert.equal(r.code, 0, `${file} exited with ${r.code ?? r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return lines.map((l) => {
    try {
      return JSON.parse(l) as StepLine;
    } catch {
      throw new Error(`not a step line: ${l}\nstderr:\n${r.stderr}`);
    }
  });
}

/** The lines with the parts that differ between a run's own runs (error texts) left out. */
export function comparable(lines: readonly StepLine[]): Array<Omit<StepLine, 'error'>> {
  return lines.map(({ error: _error, ...rest }) => rest);
}

/**
 * The three pgrouters a driver runs through: session pooling with everything on the primary;
 * session pooling and transaction pooling load balancing onto the standby (primary weight 0),
 * where reads after a session's first write stay on the primary
 * (`disable_load_balance_on_write = always`) so that the steps read what they wrote.
 */
export async function startDriverProxies(c: Cluster): Promise<ProxyHandle[]> {
  const balanced = { load_balance_mode: 'on', backend_weight0: 0, backend_weight1: 1, disable_load_balance_on_write: 'always' };
  return Promise.all([
    startProxy(c, { conf: { load_balance_mode: 'off' } }),
    startProxy(c, { conf: balanced }),
    startProxy(c, { conf: { ...balanced, pool_mode: 'transaction' } }),
  ]);
}

/** The direct target and one per pgrouter of {@link startDriverProxies}, in that order. */
export function driverTargets(c: Cluster, proxies: readonly ProxyHandle[]): DriverTarget[] {
  const [primaryOnly, session, transaction] = proxies;
  return [
    { name: 'directly on the primary', host: c.primary.host, port: c.primary.port, readsFromStandby: false, txReadsFromStandby: false },
    { name: 'pgrouter, session pooling, primary only', host: primaryOnly!.host, port: primaryOnly!.port, readsFromStandby: false, txReadsFromStandby: false },
    { name: 'pgrouter, session pooling, load-balanced', host: session!.host, port: session!.port, readsFromStandby: true, txReadsFromStandby: true },
    { name: 'pgrouter, transaction pooling, load-balanced', host: transaction!.host, port: transaction!.port, readsFromStandby: true, txReadsFromStandby: false },
  ];
}

/** The step that tells where a read before any write ran. */
export const STANDBY_STEP = 'reads before any write: a standby?';
/** The step that tells where a read in a transaction (the driver's own BEGIN) before any write ran. */
export const TX_STANDBY_STEP = 'reads in a transaction before any write: a standby?';
/** The step that tells where a READ ONLY transaction (the driver's read-only mode) ran: where reads go, in both pool modes. */
export const RO_TX_STANDBY_STEP = 'a READ ONLY transaction: a standby?';

/**
 * Registers a driver's tests: its steps run directly on the primary (`checkDirect` looks at
 * those), then through each pgrouter of {@link startDriverProxies}, where every step must give
 * the direct run's result, but the reads of STANDBY_STEP, TX_STANDBY_STEP and RO_TX_STANDBY_STEP, whose values
 * `standbyValue` gives for a standby or not.
 */
export function driverTests(o: {
  run: (c: Cluster, t: DriverTarget) => Promise<StepLine[]>;
  standbyValue: (onStandby: boolean) => unknown;
  checkDirect: (direct: readonly StepLine[]) => void;
}): void {
  let c: Cluster;
  let proxies: ProxyHandle[] = [];
  let targets: DriverTarget[];
  let direct: StepLine[];
  before(async () => {
    c = await getCluster();
    proxies = await startDriverProxies(c);
    targets = driverTargets(c, proxies);
    direct = await o.run(c, targets[0]!);
  });
  after(async () => {
    await Promise.all(proxies.map((p) => p.stop()));
  });
  test('directly on the primary every step succeeds but those meant to fail', () => o.checkDirect(direct));
  const names = ['session pooling, primary only', 'session pooling, load-balanced', 'transaction pooling, load-balanced'];
  names.forEach((name, k) =>
    test(`through pgrouter, ${name}: the same results as directly`, async () => {
      const t = targets[k + 1]!;
      const want = comparable(direct).map((l) =>
        l.step === STANDBY_STEP || l.step === RO_TX_STANDBY_STEP
          ? { ...l, value: o.standbyValue(t.readsFromStandby) }
          : l.step === TX_STANDBY_STEP
            ? { ...l, value: o.standbyValue(t.txReadsFromStandby) }
            : l,
      );
      assert.deepEqual(comparable(await o.run(c, t)), want);
    }),
  );
}
