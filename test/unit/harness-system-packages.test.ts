// npm test's own check of the Debian packages it needs: which packages a missing program maps
// to, each named once, and what the machine has now.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NEEDS, missingPackages, onSystem } from '../harness/system-packages.ts';

test('nothing missing: nothing to install', () => {
  assert.deepEqual(missingPackages(() => true), { packages: [], reasons: [] });
});

test('each missing program names its package, and a package shared by two programs comes once', () => {
  const absent = new Set(['/usr/bin/prometheus', '/usr/bin/promtool', '/usr/bin/chromium', 'kubectl']);
  const r = missingPackages((f) => !absent.has(f));
  assert.deepEqual(r.packages, ['prometheus', 'chromium', 'fonts-dejavu-core', 'kubernetes-client']);
  assert.equal(r.reasons.length, 4);
  assert.ok(r.reasons[0]!.includes('/usr/bin/prometheus'), r.reasons[0]);
});

test('everything missing: every package once', () => {
  const r = missingPackages(() => false);
  const all = [...new Set(NEEDS.flatMap((n) => n.packages))];
  assert.deepEqual(r.packages, all);
});

test('onSystem finds a command on PATH and an absolute path, and not a name that is nowhere', () => {
  assert.equal(onSystem('sh'), true);
  assert.equal(onSystem(process.execPath), true);
  assert.equal(onSystem('no-such-program-pgrouter'), false);
  assert.equal(onSystem('/nonexistent/bin/tool'), false);
});
