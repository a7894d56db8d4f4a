// asyncpg (Debian's python3-asyncpg) and its own connection pool through pgrouter in transaction
// pooling. asyncpg resets a connection it takes back with one multi-statement query
// (`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`); that reset must not
// pin the session to a backend, and must still undo the session's SETs. Driven by
// drivers/asyncpg_pool.py; directly on the primary for comparison.

import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { Cluster } from '../../rig/cluster.ts';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';
import { run } from './clients-helpers.ts';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./drivers/asyncpg_pool.py', import.meta.url));

let c: Cluster;
let p: ProxyHandle;

before(async () => {
  c = await getCluster();
  p = await startProxy(c, {
    conf: { pool_mode: 'transaction', transaction_pool_size: 2, load_balance_mode: 'on', backend_weight0: 0, backend_weight1: 1 },
  });
});

after(async () => {
  await p?.stop();
});

interface PoolRun {
  ports: Record<string, number>;
  wrong: number;
  before: string;
  after: string[];
  primary_backends: number;
}

async function poolRun(host: string, port: number): Promise<PoolRun> {
  const u = c.users.md5;
  const r = await run(PYTHON, [SCRIPT, host, String(port), u.name, u.password, c.database, String(c.primary.port)]);
  assert.equal(r.code, 0, `asyncpg_pool.py exited with ${r.code ?? r.signal}\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout) as PoolRun;
}

test('directly: the pool holds 10 backends, and its reset undoes a SET', async () => {
  const d = await poolRun(c.primary.host, c.primary.port);
  assert.deepEqual(d, { ports: { [String(c.primary.port)]: 600 }, wrong: 0, before: 'pg_catalog', after: ['"$user", public'], primary_backends: 10 });
});

test('through transaction pooling: the 10 pooled connections share 2 backends, reads balance, and the reset still undoes the SET', async () => {
  const r = await poolRun(p.host, p.port);
  assert.equal(r.wrong, 0);
  assert.equal(r.before, 'pg_catalog');
  assert.deepEqual(r.after, ['"$user", public']);
  // The reads went to the replica (primary weight 0): no session was pinned to the primary by
  // asyncpg's reset (a pinned session reads from its primary backend). Only the first read of
  // each of the 10 connections ran on the primary: asyncpg prepares a statement with Parse,
  // Describe and Flush, and a Flush-ended batch holds a primary lane until its Sync.
  assert.deepEqual(r.ports, { [String(c.replica.port)]: 590, [String(c.primary.port)]: 10 });
  assert.ok(r.primary_backends <= 2, `pgrouter holds ${r.primary_backends} primary backends for 10 pooled connections`);
});
