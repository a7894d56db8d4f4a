// npm test's own check of the Debian packages it needs: which packages a missing program maps
// to, each named once, and what the machine has now.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
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

test('the client tests need psycopg, asyncpg, pgJDBC and a JDK; files that are read count when they exist', () => {
  const absent = ['/usr/share/java/postgresql.jar', 'javac', '/usr/lib/python3/dist-packages/psycopg/__init__.py', '/usr/lib/python3/dist-packages/asyncpg/__init__.py'];
  const r = missingPackages((f) => !absent.includes(f));
  assert.deepEqual(r.packages, ['python3-psycopg', 'python3-asyncpg', 'libpostgresql-jdbc-java', 'default-jdk-headless']);
  assert.equal(onSystem('/usr/share/java/postgresql.jar'), existsSync('/usr/share/java/postgresql.jar'));
  assert.equal(onSystem('/nonexistent/lib.jar'), false);
});
