// Host facts the test rig needs: where the PostgreSQL server binaries live (installing them
// when we are root and they are missing), which OS user runs the servers, and free TCP ports.

import { execFileSync } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';

/** Root of Debian's versioned PostgreSQL installs (`/usr/lib/postgresql/<N>/bin`). */
const PG_LIB_ROOT = '/usr/lib/postgresql';
/** The binaries the rig cannot work without. */
const REQUIRED_BINARIES = ['initdb', 'pg_ctl', 'pg_basebackup', 'postgres'] as const;
/** The OS account PostgreSQL servers run as when we are root. */
const SERVER_USER_NAME = 'postgres';

/** Whether `file` exists and may be executed by us. */
export function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Highest-versioned complete bin dir under PG_LIB_ROOT, or undefined. */
function scanPgBinDir(): string | undefined {
  let entries: string[];
  try {
    entries = readdirSync(PG_LIB_ROOT);
  } catch {
    return undefined;
  }
  const versions = entries
    .filter((e) => /^\d+(\.\d+)?$/.test(e))
    .sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = path.join(PG_LIB_ROOT, v, 'bin');
    if (REQUIRED_BINARIES.every((b) => isExecutable(path.join(bin, b)))) return bin;
  }
  return undefined;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * The highest `/usr/lib/postgresql/<N>/bin` holding initdb, pg_ctl, pg_basebackup and postgres.
 * When none exists and we run as root, installs Debian's `postgresql` and `postgresql-client`
 * packages (announcing each command on stderr); otherwise throws an Error naming the command.
 */
export function findPgBinDir(): string {
  const found = scanPgBinDir();
  if (found !== undefined) return found;
  if (!isRoot()) {
    throw new Error(
      `no PostgreSQL server binaries (${REQUIRED_BINARIES.join(', ')}) under ${PG_LIB_ROOT}/<N>/bin; ` +
        'install them with: sudo apt-get install -y postgresql postgresql-client',
    );
  }
  const steps: string[][] = [
    ['apt-get', 'update'],
    ['apt-get', 'install', '-y', 'postgresql', 'postgresql-client'],
  ];
  for (const [cmd, ...args] of steps) {
    process.stderr.write(`rig: PostgreSQL binaries missing; running: ${[cmd, ...args].join(' ')}\n`);
    // stdout to our stderr so a test runner's stdout protocol is not disturbed.
    execFileSync(cmd as string, args, {
      stdio: ['ignore', process.stderr, process.stderr],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  }
  const installed = scanPgBinDir();
  if (installed === undefined) {
    throw new Error(
      `apt-get install -y postgresql postgresql-client finished but ${PG_LIB_ROOT}/<N>/bin still lacks ` +
        REQUIRED_BINARIES.join(', '),
    );
  }
  return installed;
}

/** passwd entry for `name` via getent (covers NSS), falling back to /etc/passwd. */
function lookupUser(name: string): { uid: number; gid: number; name: string } | undefined {
  let line: string | undefined;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    try {
      line = readFileSync('/etc/passwd', 'utf8')
        .split('\n')
        .find((l) => l.startsWith(`${name}:`));
    } catch {
      line = undefined;
    }
  }
  if (line === undefined) return undefined;
  const fields = line.trim().split(':');
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  if (fields[0] !== name || !Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  return { uid, gid, name };
}

/**
 * The OS user the PostgreSQL servers must run as. PostgreSQL refuses to run as root, so when we
 * are root this is the `postgres` system user (created by Debian's postgresql packages); when we
 * are not root it is undefined, meaning "run as ourselves". Throws if root and no such user.
 */
export function serverUser(): { uid: number; gid: number; name: string } | undefined {
  if (!isRoot()) return undefined;
  const user = lookupUser(SERVER_USER_NAME);
  if (user === undefined) {
    throw new Error(
      `running as root, but there is no '${SERVER_USER_NAME}' system user to run PostgreSQL as ` +
        '(PostgreSQL refuses to run as root). Install Debian\'s packages, which create it: ' +
        'apt-get install -y postgresql postgresql-client',
    );
  }
  if (user.uid === 0) throw new Error(`the '${SERVER_USER_NAME}' user has uid 0; PostgreSQL refuses to run as root`);
  return user;
}

/** A TCP port free on 127.0.0.1 right now (bind port 0, read the port, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : undefined;
      srv.close((err) => {
        if (err) reject(err);
        else if (port === undefined) reject(new Error('freePort: could not read the bound port'));
        else resolve(port);
      });
    });
  });
}
