// Reload planning: reloadable parameters apply, restart-only ones are reported and kept.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { planReload } from '../../src/config/reload.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'pgrouter-reload-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function conf(text: string) {
  const file = path.join(dir, `pgpool${n++}.conf`);
  writeFileSync(file, text);
  return loadConfig({ file, env: {} });
}
const base = `backend_hostname0 = 'a'\nbackend_port0 = 5432\nbackend_weight0 = 1\nport = 9999\nnum_init_children = 32\nclient_idle_limit = 0\n`;

test('reloadable parameters apply; restart-only ones are kept and reported', () => {
  const old = conf(base);
  const next = conf(base.replace('backend_weight0 = 1', 'backend_weight0 = 3').replace('port = 9999', 'port = 7777').replace('client_idle_limit = 0', 'client_idle_limit = 5'));
  const plan = planReload(old, next);
  assert.ok(plan.applied.includes('backend_weight0'));
  assert.ok(plan.applied.includes('client_idle_limit'));
  assert.deepEqual(plan.needRestart, ['port']);
  assert.equal(plan.config.settings.port, 9999);
  assert.equal(plan.config.settings.client_idle_limit, 5);
  assert.equal(plan.config.backends[0]!.weight, 3);
});

test('a new backend is added; a moved or removed one waits for a restart', () => {
  const old = conf(base);
  const added = planReload(old, conf(base + `backend_hostname1 = 'b'\nbackend_port1 = 5433\n`));
  assert.equal(added.config.backends.length, 2);
  assert.ok(added.applied.some((a) => a.startsWith('backend_hostname1')));
  const moved = planReload(old, conf(base.replace("'a'", "'z'")));
  assert.equal(moved.config.backends[0]!.hostname, 'a');
  assert.ok(moved.needRestart.some((n) => n.startsWith('backend_hostname0')));
  const removed = planReload(added.config, old);
  assert.equal(removed.config.backends.length, 2);
  assert.ok(removed.needRestart.some((n) => n.includes('removed')));
});
