// Users from <X>_USERNAME / <X>_PASSWORD environment variables (pgpool2_on_k8s), with no
// pool_passwd on disk: they log in through pgrouter, a wrong password is refused, and the
// password appears in no log line.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { getCluster } from '../harness/cluster.ts';
import { startProxy, type ProxyHandle } from '../harness/proxy.ts';

let p: ProxyHandle | undefined;
after(async () => {
  await p?.stop();
});

test('POSTGRES_USERNAME/POSTGRES_PASSWORD and APP_RO_USERNAME/APP_RO_PASSWORD become users', async () => {
  const c = await getCluster();
  p = await startProxy(c, {
    conf: { pool_passwd: '' },
    poolPasswd: '',
    env: {
      POSTGRES_USERNAME: c.users.scram.name,
      POSTGRES_PASSWORD: c.users.scram.password,
      APP_RO_USERNAME: c.users.md5.name,
      APP_RO_PASSWORD: c.users.md5.password,
    },
  });
  for (const u of [c.users.scram, c.users.md5]) {
    const cl: pg.Client = new pg.Client({ connectionString: p.url(u.name, u.password) });
    cl.on('error', () => undefined); // errors also reject the pending call; an idle client must not throw
    await cl.connect();
    assert.equal((await cl.query('SELECT current_user AS u')).rows[0].u, u.name);
    await cl.end();
    const bad: pg.Client = new pg.Client({ connectionString: p.url(u.name, u.password + 'x') });
    bad.on('error', () => undefined); // errors also reject the pending call; an idle client must not throw
    await assert.rejects(bad.connect(), (e: { code?: string }) => e.code === '28P01');
  }
  const logs = p.logs.join('\n');
  assert.ok(!logs.includes(c.users.scram.password) && !logs.includes(c.users.md5.password), 'no password in the logs');
  assert.match(logs, /users from <X>_USERNAME\/<X>_PASSWORD environment variables/);
});
