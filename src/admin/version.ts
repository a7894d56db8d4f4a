// SHOW pool_version's value: the Pgpool-II release whose SHOW columns pgrouter reproduces, then
// pgrouter's own version where Pgpool-II puts its codename ("4.7.0 (pgrouter 0.1.0)"), so tools
// that gate on the version (pgpool2_exporter parses ^((\d+)(\.\d+)(\.\d+)?)) see 4.7 behaviour.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The Pgpool-II version whose SQL interface pgrouter answers. */
export const PGPOOL_COMPAT_VERSION = '4.7.0';

let cached: string | undefined;

/** pgrouter's package version. */
export function pgrouterVersion(): string {
  cached ??= (JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string }).version;
  return cached;
}

export function poolVersion(): string {
  return `${PGPOOL_COMPAT_VERSION} (pgrouter ${pgrouterVersion()})`;
}
