// What the benchmark needs installed, checked before anything starts. The harness installs
// nothing; it says what is missing and how to install it, and runs what it can.

import { readdirSync } from 'node:fs';
import path from 'node:path';
import { isExecutable as executable } from '../../rig/system.ts';
import { PGBOUNCER_BIN } from '../targets/pgbouncer.ts';
import { PGPOOL_BIN } from '../targets/pgpool.ts';
import type { TargetName } from '../targets/target.ts';

/** The outcome of the check. */
export interface Prerequisites {
  /** PostgreSQL's server binaries and pgbench are there (else nothing can run). */
  readonly postgres: boolean;
  /** Per target: undefined when usable, else why not. */
  readonly missing: Partial<Record<TargetName, string>>;
  /** Lines to print (one per missing thing, with the install command). */
  readonly messages: string[];
  readonly pgpoolBin?: string;
  readonly pgbouncerBin?: string;
}

function pgBinDirWith(names: string[]): string | undefined {
  const root = '/usr/lib/postgresql';
  let versions: string[] = [];
  try {
    versions = readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  } catch {
    return undefined;
  }
  return versions.map((v) => path.join(root, v, 'bin')).find((d) => names.every((n) => executable(path.join(d, n))));
}

/** Checks PostgreSQL (server + pgbench), Pgpool-II and PgBouncer for the wanted targets. */
export function checkPrerequisites(targets: readonly TargetName[]): Prerequisites {
  const messages: string[] = [];
  const missing: Partial<Record<TargetName, string>> = {};
  const postgres = pgBinDirWith(['initdb', 'pg_ctl', 'pg_basebackup', 'postgres', 'pgbench', 'psql']) !== undefined;
  if (!postgres)
    messages.push('missing: PostgreSQL server binaries and pgbench under /usr/lib/postgresql/<N>/bin — install with: apt-get install -y postgresql postgresql-contrib postgresql-client');
  const pkgs: string[] = [];
  if (targets.includes('pgpool') && !executable(PGPOOL_BIN)) {
    missing.pgpool = `${PGPOOL_BIN} not found (Debian package pgpool2)`;
    pkgs.push('pgpool2');
  }
  if (targets.includes('pgbouncer') && !executable(PGBOUNCER_BIN)) {
    missing.pgbouncer = `${PGBOUNCER_BIN} not found (Debian package pgbouncer)`;
    pkgs.push('pgbouncer');
  }
  for (const m of Object.values(missing)) messages.push(`missing: ${m}`);
  if (pkgs.length > 0)
    messages.push(
      `install with: apt-get install -y ${pkgs.join(' ')}   (the harness starts its own instances; ` +
        "to keep Debian from starting the packages' services, see bench/README.md)",
    );
  return {
    postgres,
    missing,
    messages,
    ...(executable(PGPOOL_BIN) ? { pgpoolBin: PGPOOL_BIN } : {}),
    ...(executable(PGBOUNCER_BIN) ? { pgbouncerBin: PGBOUNCER_BIN } : {}),
  };
}
