// pool_mode = transaction: a lane keeps a bounded number of server-side prepared statements.
// One client prepares 700 named statements; the lane closes the oldest past 512, and binding
// an old name again re-parses it on the lane, so every statement still answers correctly.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import type { Cluster } from '../../rig/cluster.ts';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';

let c: Cluster;
let p: ProxyHandle;

before(async () => {
  c = await getCluster();
  p = await startProxy(c, { conf: { pool_mode: 'transaction', load_balance_mode: 'off', transaction_pool_size: 1 } });
});

after(async () => {
  await p?.stop('SIGKILL');
});

test('700 named statements on one lane: the oldest are closed on the server and re-parsed when used again', async () => {
  const u = c.users.superuser;
  const cl = new pg.Client({ host: p.host, port: p.port, user: u.name, password: u.password, database: c.database });
  cl.on('error', () => undefined);
  await cl.connect();
  try {
    const run = async (i: number): Promise<number> =>
      (await cl.query<{ v: number }>({ name: `s${i}`, text: `SELECT $1::int + ${i} AS v`, values: [1000] })).rows[0]!.v;
    for (let i = 0; i < 700; i++) assert.equal(await run(i), 1000 + i);
    // The lane holds at most 512 of them (pg_prepared_statements is per backend: the one lane).
    const held = await cl.query<{ n: string }>("SELECT count(*) AS n FROM pg_prepared_statements WHERE name LIKE 'pgrouter_%'");
    const n = Number(held.rows[0]!.n);
    assert.ok(n > 0 && n <= 512, `server-side statements on the lane: ${n}`);
    // The first ones were closed on the server; node-postgres binds them by name again.
    for (let i = 0; i < 700; i += 7) assert.equal(await run(i), 1000 + i);
  } finally {
    await cl.end();
  }
});
