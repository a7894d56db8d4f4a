// SHOW pool_status and PGPOOL SHOW <param>|<group>|ALL: every parameter of the settings table with
// its value and description. Values are GUC-formatted (on/off, units, enums by name) in both, and
// passwords are always `*****` (Pgpool-II's pool_status prints them, and booleans as 1/0).

import type { BackendConfig, Config } from '../config/load.ts';
import { findSetting, resolveName, SETTINGS, type SettingDef } from '../config/settings.ts';
import { formatDefValue } from '../config/values.ts';
import type { ClusterView } from '../pool/cluster.ts';

export const POOL_STATUS_COLUMNS = ['item', 'value', 'description'] as const;

type Row = [item: string, value: string, description: string];

function flagText(b: BackendConfig): string {
  const f = [b.flag.disallowToFailover ? 'DISALLOW_TO_FAILOVER' : 'ALLOW_TO_FAILOVER'];
  if (b.flag.alwaysPrimary) f.push('ALWAYS_PRIMARY');
  return f.join('|');
}

/** The value one backend has for a per-node parameter that pgrouter keeps; undefined for the others. */
function backendValue(name: string, b: BackendConfig): unknown {
  const h = b.healthCheck;
  switch (name) {
    case 'backend_hostname': return b.hostname;
    case 'backend_port': return b.port;
    case 'backend_weight': return b.weight;
    case 'backend_data_directory': return b.dataDirectory;
    case 'backend_flag': return flagText(b);
    case 'backend_application_name': return b.applicationName;
    case 'health_check_period': return h.period;
    case 'health_check_timeout': return h.timeout;
    case 'health_check_user': return h.user;
    case 'health_check_password': return h.password;
    case 'health_check_database': return h.database;
    case 'health_check_max_retries': return h.maxRetries;
    case 'health_check_retry_delay': return h.retryDelay;
    case 'connect_timeout': return h.connectTimeout;
    default: return undefined;
  }
}

function globalValue(def: SettingDef, config: Config): unknown {
  return (config.settings as unknown as Record<string, unknown>)[def.name] ?? def.default;
}

function globalRow(def: SettingDef, config: Config): Row {
  return [def.name, formatDefValue(def, globalValue(def, config)), def.doc];
}

/** `name0`, `name1`... for each configured backend, when pgrouter keeps that parameter per node. */
function nodeRows(def: SettingDef, config: Config): Row[] {
  const rows: Row[] = [];
  for (const b of config.backends) {
    const v = backendValue(def.name, b);
    if (v !== undefined) rows.push([`${def.name}${b.id}`, formatDefValue(def, v), def.doc]);
  }
  return rows;
}

/** Rows of one parameter: its index-free value (if it has one), then its per-node values. */
function rowsOf(def: SettingDef, config: Config): Row[] {
  const rows: Row[] = [];
  if (!def.perNode || def.global) rows.push(globalRow(def, config));
  if (def.perNode) rows.push(...nodeRows(def, config));
  return rows;
}

/** PGPOOL SHOW ALL: every parameter in table order, per-node values after their index-free one. */
export function allSettings(config: Config): Row[] {
  return (SETTINGS as readonly SettingDef[]).flatMap((d) => rowsOf(d, config));
}

/**
 * SHOW pool_status: the index-free parameters in table order, then per backend its
 * backend_* rows, backend_statusN and standby_delayN (as Pgpool-II), and its health check values.
 */
export function poolStatus(config: Config, view: ClusterView): Row[] {
  const defs = SETTINGS as readonly SettingDef[];
  const rows: Row[] = defs.filter((d) => !d.perNode || d.global).map((d) => globalRow(d, config));
  const def = (name: string): SettingDef => findSetting(name)!;
  const one = (name: string, b: BackendConfig): Row => {
    const d = def(name);
    return [`${name}${b.id}`, formatDefValue(d, backendValue(name, b)), d.doc];
  };
  for (const b of config.backends) {
    const node = view.node(b.id);
    rows.push(
      one('backend_hostname', b),
      one('backend_port', b),
      one('backend_weight', b),
      one('backend_data_directory', b),
      [`backend_status${b.id}`, node?.status ?? 'unused', `Status of backend #${b.id} as pgrouter sees it`],
      [`standby_delay${b.id}`, String(node?.lag.bytes ?? 0), `Replication delay of backend #${b.id} in bytes`],
      one('backend_flag', b),
      one('backend_application_name', b),
    );
    for (const d of defs) if (d.perNode && d.global) rows.push(one(d.name, b));
  }
  return rows;
}

const WATCHDOG_REASON = findSetting('use_watchdog')?.ignoredReason;

/** Pgpool-II's parameter groups that PGPOOL SHOW accepts. */
function groupDefs(name: string): SettingDef[] | undefined {
  const defs = SETTINGS as readonly SettingDef[];
  switch (name) {
    case 'backend':
      return defs.filter((d) => d.perNode && d.name.startsWith('backend_'));
    case 'health_check':
      return defs.filter((d) => d.name.startsWith('health_check_') || d.name === 'connect_timeout');
    case 'watchdog':
      return defs.filter((d) => d.ignoredReason === WATCHDOG_REASON && !d.name.includes('heartbeat'));
    case 'heartbeat':
      return defs.filter((d) => d.name.includes('heartbeat'));
    default:
      return undefined;
  }
}

/** What PGPOOL SHOW answers: one value in a column named after the parameter, or item/value/description rows. */
export type PgpoolShowResult =
  | { kind: 'value'; column: string; value: string }
  | { kind: 'rows'; rows: Row[] }
  | { kind: 'unknown' };

export function pgpoolShow(name: string, config: Config): PgpoolShowResult {
  const lower = name.toLowerCase();
  if (lower === 'all') return { kind: 'rows', rows: allSettings(config) };
  const group = groupDefs(lower);
  if (group) return { kind: 'rows', rows: group.flatMap((d) => rowsOf(d, config)) };
  const r = resolveName(name);
  if (!r.def) {
    if (r.reason === 'needs-index') {
      const def = findSetting(lower);
      if (def) return { kind: 'rows', rows: nodeRows(def, config) };
    }
    return { kind: 'unknown' };
  }
  if (r.index === undefined) return { kind: 'value', column: r.key, value: formatDefValue(r.def, globalValue(r.def, config)) };
  const b = config.backends.find((x) => x.id === r.index);
  const v = b ? backendValue(r.def.name, b) : undefined;
  // A node that is not configured, or a per-node parameter pgrouter ignores: its default.
  return { kind: 'value', column: r.key, value: formatDefValue(r.def, v ?? (r.def.global ? globalValue(r.def, config) : r.def.default)) };
}
