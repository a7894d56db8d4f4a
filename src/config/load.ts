// Builds pgrouter's configuration: pgpool.conf, then PGPOOL_PARAMS_* environment variables, then
// command-line overrides, each checked against the parameter table; collects every problem at once.
// Also groups backend_*N parameters into BackendConfig entries and resolves relative paths.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, scanConfig } from './parse.ts';
import type { ConfigProblem } from './parse.ts';
import { SETTINGS, resolveName } from './settings.ts';
import type { SettingDef, Settings } from './settings.ts';
import { convertValue } from './values.ts';
import type { Converted, SettingValue } from './values.ts';

export { describeSetting, formatValue } from './values.ts';
export type { SettingDescription } from './values.ts';

/** Health check settings of one node: its per-node overrides, else the global values. */
export interface HealthCheckConfig {
  /** Seconds between checks; 0 = disabled. */
  readonly period: number;
  /** Seconds a check may take. */
  readonly timeout: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  readonly maxRetries: number;
  /** Seconds between retries. */
  readonly retryDelay: number;
  /** Milliseconds allowed to connect (connect_timeout[N]). */
  readonly connectTimeout: number;
}

/** One PostgreSQL node from backend_hostnameN and friends. */
export interface BackendConfig {
  /** N of backend_hostnameN; ids may be sparse. */
  readonly id: number;
  readonly hostname: string;
  readonly port: number;
  readonly weight: number;
  readonly flag: { readonly alwaysPrimary: boolean; readonly disallowToFailover: boolean };
  readonly dataDirectory: string;
  readonly applicationName: string;
  readonly healthCheck: HealthCheckConfig;
}

/** The loaded configuration. */
export interface Config {
  /** The config file as given, or undefined when none was read. */
  readonly file: string | undefined;
  /** Absolute directory of the config file (the working directory without a file). */
  readonly dir: string;
  readonly settings: Readonly<Settings>;
  /** Backends in id order. */
  readonly backends: readonly BackendConfig[];
  /**
   * Where each parameter's value came from, by canonical name (port, backend_port1):
   * "pgpool.conf:12", "env PGPOOL_PARAMS_PORT", "override" or "default".
   */
  readonly source: ReadonlyMap<string, string>;
  /** Deprecated names and ignored parameters that were used, once each. */
  readonly warnings: readonly string[];
}

/** Inputs of {@link loadConfig}. */
export interface LoadOptions {
  /** Path of pgpool.conf; without it only defaults, environment and overrides apply. */
  readonly file?: string | undefined;
  /** Environment to read PGPOOL_PARAMS_* from; defaults to process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Values from command-line flags, by parameter name; they win over file and environment. */
  readonly overrides?: Record<string, string>;
}

/** Prefix of environment variables that set parameters, as in pgpool2_on_k8s. */
export const ENV_PREFIX = 'PGPOOL_PARAMS_';

/** Clustering modes pgrouter can route for; the others would need writes sent to every node. */
const SUPPORTED_CLUSTERING_MODES: readonly string[] = ['streaming_replication', 'logical_replication', 'raw'];

const BACKEND_FLAGS = ['ALLOW_TO_FAILOVER', 'DISALLOW_TO_FAILOVER', 'ALWAYS_PRIMARY'];

/** Parses backend_flagN: |-separated, case-insensitive; ALLOW and DISALLOW exclude each other. */
export function parseBackendFlag(
  text: string,
): { ok: true; alwaysPrimary: boolean; disallowToFailover: boolean } | { ok: false; hint: string } {
  const items = text
    .split('|')
    .map((s) => s.trim().toUpperCase())
    .filter((s) => s !== '');
  for (const item of items) {
    if (item === 'ALWAYS_MASTER') return { ok: false, hint: 'ALWAYS_MASTER is now spelled ALWAYS_PRIMARY' };
    if (!BACKEND_FLAGS.includes(item)) return { ok: false, hint: `valid flags are ${BACKEND_FLAGS.join(', ')}` };
  }
  const disallow = items.includes('DISALLOW_TO_FAILOVER');
  if (disallow && items.includes('ALLOW_TO_FAILOVER')) {
    return { ok: false, hint: 'ALLOW_TO_FAILOVER and DISALLOW_TO_FAILOVER exclude each other' };
  }
  return { ok: true, alwaysPrimary: items.includes('ALWAYS_PRIMARY'), disallowToFailover: disallow };
}

/** Per-node parameters that describe a backend, with the BackendConfig field they fill. */
const BACKEND_PARAMS = {
  backend_hostname: 'hostname',
  backend_port: 'port',
  backend_weight: 'weight',
  backend_flag: 'flag',
  backend_data_directory: 'dataDirectory',
  backend_application_name: 'applicationName',
} as const;
const HEALTH_CHECK_PARAMS = {
  health_check_period: 'period',
  health_check_timeout: 'timeout',
  health_check_user: 'user',
  health_check_password: 'password',
  health_check_database: 'database',
  health_check_max_retries: 'maxRetries',
  health_check_retry_delay: 'retryDelay',
  connect_timeout: 'connectTimeout',
} as const;

interface Assignment {
  readonly rawName: string;
  readonly value: string;
  /** For `source` and warnings: "pgpool.conf:12", "env PGPOOL_PARAMS_X", "override". */
  readonly origin: string;
  readonly file: string;
  readonly line: number;
}

interface Entry {
  readonly def: SettingDef;
  readonly index: number | undefined;
  readonly value: SettingValue;
  readonly assignment: Assignment;
}

function sameValue(a: SettingValue, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => x === b[i]);
  return a === b;
}

function cloneDefault(def: SettingDef): SettingValue {
  return Array.isArray(def.default) ? [...(def.default as readonly string[])] : (def.default as SettingValue);
}

/** Value checks beyond the type, for the few parameters that need them. */
function extraCheck(def: SettingDef, value: SettingValue): Converted {
  if (def.name === 'backend_flag') {
    const f = parseBackendFlag(String(value));
    return f.ok ? { ok: true, value } : { ok: false, hint: f.hint };
  }
  if (def.name === 'backend_clustering_mode' && !SUPPORTED_CLUSTERING_MODES.includes(String(value))) {
    return { ok: false, hint: `pgrouter supports ${SUPPORTED_CLUSTERING_MODES.join(', ')}` };
  }
  return { ok: true, value };
}

/**
 * Loads and checks the configuration. Later sources win: defaults < pgpool.conf (last line of a
 * name wins) < PGPOOL_PARAMS_<NAME> environment variables (value taken literally) < overrides.
 * @throws ConfigError listing every problem found (syntax, unknown names, bad values, backends).
 */
export function loadConfig(opts: LoadOptions = {}): Config {
  const problems: ConfigProblem[] = [];
  const warnings: string[] = [];
  const file = opts.file;
  const dir = file !== undefined ? path.dirname(path.resolve(file)) : process.cwd();
  const assignments: Assignment[] = [];

  if (file !== undefined) {
    let text: string | undefined;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      problems.push({ file, line: 0, message: `could not read configuration file (${code})` });
    }
    if (text !== undefined) {
      const scanned = scanConfig(text, file);
      problems.push(...scanned.problems);
      for (const l of scanned.lines) {
        assignments.push({ rawName: l.name, value: l.value, origin: `${file}:${l.line}`, file, line: l.line });
      }
    }
  }

  const env = opts.env ?? process.env;
  for (const key of Object.keys(env).sort()) {
    const value = env[key];
    if (!key.startsWith(ENV_PREFIX) || value === undefined) continue;
    const origin = `env ${key}`;
    assignments.push({ rawName: key.slice(ENV_PREFIX.length).toLowerCase(), value, origin, file: origin, line: 0 });
  }
  for (const [name, value] of Object.entries(opts.overrides ?? {})) {
    assignments.push({ rawName: name, value, origin: 'override', file: 'override', line: 0 });
  }

  // Apply in order; the last assignment of a canonical name wins.
  const entries = new Map<string, Entry>();
  const warnedAliases = new Set<string>();
  for (const a of assignments) {
    const problem = (message: string): void => {
      problems.push({ file: a.file, line: a.line, message });
    };
    const r = resolveName(a.rawName);
    if (!r.def) {
      if (r.reason === 'needs-index') {
        problem(`parameter "${a.rawName}" needs a node number, as in "${a.rawName.toLowerCase()}0"`);
      } else if (r.reason === 'index-range') {
        problem(`node number of parameter "${a.rawName}" is out of range`);
      } else {
        problem(`unrecognized configuration parameter "${a.rawName}"`);
      }
      continue;
    }
    if (r.alias && !warnedAliases.has(r.alias.name)) {
      warnedAliases.add(r.alias.name);
      warnings.push(`${a.origin}: parameter "${r.alias.name}" ${r.alias.note}; use the new name`);
    }
    let c = convertValue(r.def, a.value);
    if (c.ok) c = extraCheck(r.def, c.value);
    if (!c.ok) {
      // A secret's value (or a hint derived from it) never goes into a message.
      if (r.def.secret) problem(`invalid value for parameter "${a.rawName}"`);
      else problem(`invalid value for parameter "${a.rawName}": "${a.value}"${c.hint ? `; ${c.hint}` : ''}`);
      continue;
    }
    entries.set(r.key, { def: r.def, index: r.index, value: c.value, assignment: a });
  }

  const source = new Map<string, string>();
  const resolvePath = (def: SettingDef, v: SettingValue): SettingValue =>
    def.path && typeof v === 'string' && v !== '' && !path.isAbsolute(v) ? path.resolve(dir, v) : v;

  // Global values.
  const settings: Record<string, SettingValue> = {};
  for (const def of SETTINGS as readonly SettingDef[]) {
    if (def.perNode && !def.global) continue;
    const e = entries.get(def.name);
    let v = e ? e.value : cloneDefault(def);
    v = resolvePath(def, v);
    settings[def.name] = Array.isArray(v) ? Object.freeze(v) as string[] : v;
    source.set(def.name, e ? e.assignment.origin : 'default');
  }

  // Backends, from every node number that any backend or health check parameter mentions.
  const nodeIds = new Set<number>();
  for (const e of entries.values()) {
    if (e.index !== undefined && (e.def.name in BACKEND_PARAMS || e.def.name in HEALTH_CHECK_PARAMS)) nodeIds.add(e.index);
  }
  const backends: BackendConfig[] = [];
  for (const id of [...nodeIds].sort((x, y) => x - y)) {
    const host = entries.get(`backend_hostname${id}`);
    if (!host || host.value === '') {
      for (const e of entries.values()) {
        if (e.index !== id || e.def.name === 'backend_hostname') continue;
        if (!(e.def.name in BACKEND_PARAMS || e.def.name in HEALTH_CHECK_PARAMS)) continue;
        problems.push({
          file: e.assignment.file,
          line: e.assignment.line,
          message: `${e.def.name}${id} is set but backend_hostname${id} is not`,
        });
      }
      continue;
    }
    const nodeValue = (name: string): SettingValue => {
      const key = `${name}${id}`;
      const e = entries.get(key);
      source.set(key, e ? e.assignment.origin : 'default');
      if (e) return e.value;
      const def = SETTINGS.find((d) => d.name === name) as SettingDef;
      return def.global ? (settings[name] as SettingValue) : cloneDefault(def);
    };
    const flag = parseBackendFlag(String(nodeValue('backend_flag')));
    backends.push(
      Object.freeze({
        id,
        hostname: String(nodeValue('backend_hostname')),
        port: Number(nodeValue('backend_port')),
        weight: Number(nodeValue('backend_weight')),
        flag: Object.freeze(
          flag.ok ? { alwaysPrimary: flag.alwaysPrimary, disallowToFailover: flag.disallowToFailover }
            : { alwaysPrimary: false, disallowToFailover: false },
        ),
        dataDirectory: String(nodeValue('backend_data_directory')),
        applicationName: String(nodeValue('backend_application_name')),
        healthCheck: Object.freeze({
          period: Number(nodeValue('health_check_period')),
          timeout: Number(nodeValue('health_check_timeout')),
          user: String(nodeValue('health_check_user')),
          password: String(nodeValue('health_check_password')),
          database: String(nodeValue('health_check_database')),
          maxRetries: Number(nodeValue('health_check_max_retries')),
          retryDelay: Number(nodeValue('health_check_retry_delay')),
          connectTimeout: Number(nodeValue('connect_timeout')),
        }),
      }),
    );
  }

  // Ignored parameters set to something other than their default: say once that nothing happens.
  const warnedIgnored = new Set<string>();
  for (const e of entries.values()) {
    if (e.def.status !== 'ignored' || warnedIgnored.has(e.def.name)) continue;
    if (sameValue(e.value, e.def.default)) continue;
    warnedIgnored.add(e.def.name);
    warnings.push(`${e.assignment.origin}: parameter "${e.def.name}" is ignored: ${e.def.ignoredReason ?? 'not used by pgrouter'}`);
  }
  // Per-node values of ignored parameters (watchdog nodes...) are not kept, but record their source.
  for (const [key, e] of entries) if (!source.has(key)) source.set(key, e.assignment.origin);

  if (problems.length > 0) throw new ConfigError(problems);

  return Object.freeze({
    file,
    dir,
    settings: Object.freeze(settings) as unknown as Readonly<Settings>,
    backends: Object.freeze(backends),
    source,
    warnings: Object.freeze(warnings),
  });
}
