// SIGHUP reload under load: weights change twice and a backend is added while pgbench runs
// through pgrouter with zero failed transactions; a bad file changes nothing; a restart-only
// parameter is reported and kept.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';

let p: ProxyHandle | undefined;
after(async () => {
  await p?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('SIGHUP applies weights and a new backend under load; bad files and restart-only changes are reported', async () => {
  const c = await getCluster();
  p = await startProxy(c, { conf: { backend_weight0: 1, backend_weight1: 0 } });
  const proxy = p;
  const confFile = path.join(proxy.dir, 'pgpool.conf');
  const original = readFileSync(confFile, 'utf8');
  const su = c.users.superuser;
  async function readPort(): Promise<number> {
    const cl = new pg.Client({ connectionString: proxy.url(su.name, su.password) });
    cl.on('error', () => undefined); // errors also reject the pending call; an idle client must not throw
    await cl.connect();
    const r = await cl.query("SELECT current_setting('port') AS port");
    await cl.end();
    return Number(r.rows[0].port);
  }
  async function reload(text: string, expect: RegExp): Promise<void> {
    const before = proxy.logs.length;
    writeFileSync(confFile, text);
    proxy.proc.kill('SIGHUP');
    const deadline = Date.now() + 10_000;
    while (!proxy.logs.slice(before).some((l) => expect.test(l))) {
      if (Date.now() > deadline) throw new Error(`no log line ${expect} after SIGHUP:\n${proxy.logs.slice(before).join('\n')}`);
      await sleep(50);
    }
  }
  assert.equal(await readPort(), c.primary.port);

  const bench = spawn('pgbench', ['-h', '127.0.0.1', '-p', String(proxy.port), '-U', su.name, '-S', '-c', '4', '-j', '2', '-T', '8', c.database], {
    env: { ...process.env, PGPASSWORD: su.password },
  });
  let out = '';
  bench.stdout.on('data', (d) => (out += d));
  bench.stderr.on('data', (d) => (out += d));
  const done = new Promise<number | null>((r) => bench.once('exit', r));

  await sleep(1500);
  await reload(original.replace("backend_weight0 = '1'", "backend_weight0 = '0'").replace("backend_weight1 = '0'", "backend_weight1 = '1'"), /configuration reloaded/);
  assert.equal(await readPort(), c.replica.port, 'new sessions follow the new weights');
  await sleep(1500);
  const withNode2 =
    original.replace("backend_weight1 = '0'", "backend_weight1 = '1'") +
    `backend_hostname2 = '${c.replica.host}'\nbackend_port2 = '${c.replica.port}'\nbackend_weight2 = '1'\n`;
  await reload(withNode2, /backend_hostname2 \(new backend\).*configuration reloaded/);
  await sleep(1000);
  // A file with a misspelled parameter changes nothing.
  await reload(withNode2 + 'num_init_childrn = 5\n', /reload failed/);
  // A restart-only parameter is reported and keeps its running value.
  await reload(withNode2.replace(/^num_init_children = .*$/m, "num_init_children = '7'"), /needs a restart/);

  const code = await done;
  assert.equal(code, 0, out);
  assert.match(out, /number of failed transactions: 0 /, out);
  const processed = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? 0);
  assert.ok(processed > 0, out);
  // Still serving, with the last good configuration (nodes 0, 1 and 2).
  const ports = new Set<number>();
  for (let i = 0; i < 20; i++) ports.add(await readPort());
  assert.ok(ports.has(c.replica.port));
});

test('PGPOOL RELOAD and watch_config_files reload without a signal', async () => {
  const c = await getCluster();
  const q = await startProxy(c, { conf: { backend_weight0: 1, backend_weight1: 0, watch_config_files: 'on' } });
  try {
    const confFile = path.join(q.dir, 'pgpool.conf');
    const su = c.users.superuser;
    const waitLog = async (re: RegExp, from: number): Promise<void> => {
      const deadline = Date.now() + 10_000;
      while (!q.logs.slice(from).some((l) => re.test(l))) {
        if (Date.now() > deadline) throw new Error(`no log line ${re}:\n${q.logs.slice(from).join('\n')}`);
        await sleep(50);
      }
    };
    // A changed file is picked up by itself.
    let from = q.logs.length;
    writeFileSync(confFile, readFileSync(confFile, 'utf8').replace("backend_weight1 = '0'", "backend_weight1 = '2'"));
    await waitLog(/backend_weight1.*configuration reloaded/, from);
    // PGPOOL RELOAD answers RELOAD and re-reads the file.
    from = q.logs.length;
    const cl = new pg.Client({ connectionString: q.url(su.name, su.password) });
    cl.on('error', () => undefined); // errors also reject the pending call; an idle client must not throw
    await cl.connect();
    const r = await cl.query('PGPOOL RELOAD');
    assert.equal(r.command, 'RELOAD');
    await cl.end();
    await waitLog(/configuration reloaded/, from);
  } finally {
    await q.stop();
  }
});
