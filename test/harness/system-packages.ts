// The Debian packages the suite needs besides PostgreSQL's server (rig/system.ts sees to that):
// checked before `npm test` starts anything. As root the missing ones are installed, with
// Debian's services kept from starting (they would take the ports the tests use); otherwise the
// run stops with the exact command to type.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isExecutable } from '../../rig/system.ts';

/** One thing a test runs, and the package that brings it. */
interface Need {
  /** An absolute path, or a command name looked up on PATH. */
  readonly file: string;
  readonly packages: readonly string[];
  readonly why: string;
}

export const NEEDS: readonly Need[] = [
  { file: '/usr/bin/psql', packages: ['postgresql-client-15'], why: 'psql, for the client tests' },
  { file: '/usr/bin/pgbench', packages: ['postgresql-client-15'], why: 'pgbench, for the load tests' },
  { file: '/usr/sbin/pgpool', packages: ['pgpool2'], why: 'Pgpool-II, behind pgrouter exporter in the exporter test' },
  { file: '/usr/sbin/pg_enc', packages: ['pgpool2'], why: "pg_enc, to check pool_passwd's AES format" },
  { file: 'openssl', packages: ['openssl', 'ca-certificates'], why: 'openssl, for the TLS test certificates' },
  { file: '/usr/bin/prometheus', packages: ['prometheus'], why: 'Prometheus, which scrapes pgrouter in the metrics test' },
  { file: '/usr/bin/promtool', packages: ['prometheus'], why: 'promtool, to check the alerting rules' },
  { file: '/usr/bin/chromium', packages: ['chromium', 'fonts-dejavu-core'], why: 'Chromium, for the status page test' },
  { file: 'kubectl', packages: ['kubernetes-client'], why: 'kubectl kustomize, for the deploy overlays' },
  {
    file: '/usr/lib/python3/dist-packages/psycopg/__init__.py',
    packages: ['python3-psycopg'],
    why: "psycopg 3 on Debian's python3, for the psycopg client test",
  },
  {
    file: '/usr/lib/python3/dist-packages/asyncpg/__init__.py',
    packages: ['python3-asyncpg'],
    why: "asyncpg on Debian's python3, for the asyncpg pool test",
  },
  { file: '/usr/share/java/postgresql.jar', packages: ['libpostgresql-jdbc-java'], why: 'pgJDBC, for the JDBC client test' },
  { file: 'javac', packages: ['default-jdk-headless'], why: 'a JDK (java runs the JDBC test from its source file)' },
];

/** Files that are read, not run: present when they exist. */
const DATA_FILE = /\.(py|jar)$/;

/** Whether `file` (a path, or a command on PATH) can be run here. */
export function onSystem(file: string): boolean {
  if (path.isAbsolute(file)) return DATA_FILE.test(file) ? existsSync(file) : isExecutable(file);
  return (process.env['PATH'] ?? '').split(path.delimiter).some((dir) => dir !== '' && isExecutable(path.join(dir, file)));
}

/** The packages to install for what `present` says is missing, each once, in NEEDS order; and why. */
export function missingPackages(present: (file: string) => boolean = onSystem): { packages: string[]; reasons: string[] } {
  const packages: string[] = [];
  const reasons: string[] = [];
  for (const n of NEEDS) {
    if (present(n.file)) continue;
    reasons.push(`${n.why} (${n.file})`);
    for (const p of n.packages) if (!packages.includes(p)) packages.push(p);
  }
  return { packages, reasons };
}

const POLICY = '/usr/sbin/policy-rc.d';

/** Installs what is missing (as root) or throws an Error with the command to run. Logs to stderr. */
export function ensureTestPackages(): void {
  const { packages, reasons } = missingPackages();
  if (packages.length === 0) return;
  const command = `apt-get update && apt-get install -y --no-install-recommends ${packages.join(' ')}`;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0)
    throw new Error(`missing: ${reasons.join('; ')}. Install with: sudo sh -c '${command}'`);
  process.stderr.write(`npm test: missing ${reasons.join('; ')}\nnpm test: running ${command}\n`);
  // Debian starts a package's service on install (pgpool2 on 9999); policy-rc.d says no.
  const createdPolicy = !existsSync(POLICY);
  if (createdPolicy) writeFileSync(POLICY, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const out = { stdio: ['ignore', process.stderr, process.stderr] as ['ignore', NodeJS.WriteStream, NodeJS.WriteStream], env };
    execFileSync('apt-get', ['update'], out);
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...packages], out);
  } finally {
    if (createdPolicy) rmSync(POLICY, { force: true });
  }
  spawnSync('pkill', ['-x', 'pgpool'], { stdio: 'ignore' });
  const still = missingPackages();
  if (still.packages.length > 0) throw new Error(`still missing after ${command}: ${still.reasons.join('; ')}`);
}
