// The one mapping from SHOW pool_* result sets to pgpool2_exporter's metrics (v1.2.2: names,
// types, help texts, labels hostname/port/role, status words → 1/0), used by pgrouter's own
// /metrics and by `pgrouter exporter` in front of a real Pgpool-II. Fixes of the exporter's known
// bugs: a duplicated label set is dropped instead of failing the scrape (its issue 16), the
// replication delay is also exported as `_bytes` and `_seconds` (issue 42: the "0.1 second" text
// no longer breaks it), and pg_status, pg_role, lb_weight and the version get metrics (PRs 22, 29).

import { Counter, Gauge, Registry } from 'prom-client';
import { namedRows, type ShowResult } from './show-result.ts';

/** The SHOW commands pgpool2_exporter reads, in the order pgrouter runs them. */
export const SHOW_NAMESPACES = ['pool_nodes', 'pool_backend_stats', 'pool_health_check_stats', 'pool_processes', 'pool_pools', 'pool_cache'] as const;
export type ShowNamespace = (typeof SHOW_NAMESPACES)[number];

/** Namespaces Pgpool-II has only from 4.2 on (pgpool2_exporter skips them before). */
const SINCE_4_2: ReadonlySet<ShowNamespace> = new Set(['pool_backend_stats', 'pool_health_check_stats']);

/** What one scrape read: each namespace's result set, or the error its SHOW raised. */
export interface PgpoolSnapshot {
  /** The Pgpool-II answered SHOW POOL_VERSION (pgpool2_up). */
  readonly up: boolean;
  /** SHOW pool_version's text, e.g. `4.3.5 (tamahomeboshi)`. */
  readonly version?: string | undefined;
  readonly results: ReadonlyMap<ShowNamespace, ShowResult | Error>;
}

type Kind = 'gauge' | 'counter';
interface Column {
  readonly kind: Kind;
  readonly help: string;
}

const STATUS_HELP = 'Backend node Status (1 for up or waiting, 0 for down or unused)';

/** pgpool2_exporter's metricMaps (help texts verbatim, typos included: dashboards show them). */
const GENERIC: Record<'pool_nodes' | 'pool_backend_stats' | 'pool_health_check_stats' | 'pool_cache', Record<string, Column>> = {
  pool_nodes: {
    status: { kind: 'gauge', help: STATUS_HELP },
    select_cnt: { kind: 'counter', help: 'SELECT statement counts issued to each backend' },
    replication_delay: { kind: 'gauge', help: 'Replication delay' },
  },
  pool_backend_stats: {
    status: { kind: 'gauge', help: STATUS_HELP },
    select_cnt: { kind: 'counter', help: 'SELECT statement counts issued to each backend' },
    insert_cnt: { kind: 'counter', help: 'INSERT statement counts issued to each backend' },
    update_cnt: { kind: 'counter', help: 'UPDATE statement counts issued to each backend' },
    delete_cnt: { kind: 'counter', help: 'DELETE statement counts issued to each backend' },
    ddl_cnt: { kind: 'counter', help: 'DDL statement counts issued to each backend' },
    other_cnt: { kind: 'counter', help: 'other statement counts issued to each backend' },
    panic_cnt: { kind: 'counter', help: 'Panic message counts returned from backend' },
    fatal_cnt: { kind: 'counter', help: 'Fatal message counts returned from backend)' },
    error_cnt: { kind: 'counter', help: 'Error message counts returned from backend' },
  },
  pool_health_check_stats: {
    status: { kind: 'gauge', help: STATUS_HELP },
    total_count: { kind: 'gauge', help: 'Number of health check count in total' },
    success_count: { kind: 'gauge', help: 'Number of successful health check count in total' },
    fail_count: { kind: 'gauge', help: 'Number of failed health check count in total' },
    skip_count: { kind: 'gauge', help: 'Number of skipped health check count in total' },
    retry_count: { kind: 'gauge', help: 'Number of retried health check count in total' },
    average_retry_count: { kind: 'gauge', help: 'Number of average retried health check count in a health check session' },
    max_retry_count: { kind: 'gauge', help: 'Number of maximum retried health check count in a health check session' },
    max_duration: { kind: 'gauge', help: 'Maximum health check duration in Millie seconds' },
    min_duration: { kind: 'gauge', help: 'Minimum health check duration in Millie seconds' },
    average_duration: { kind: 'gauge', help: 'Average health check duration in Millie seconds' },
  },
  pool_cache: {
    num_cache_hits: { kind: 'gauge', help: 'The number of hits against the query cache' },
    num_selects: { kind: 'gauge', help: 'The number of SELECT that did not hit against the query cache' },
    cache_hit_ratio: { kind: 'gauge', help: 'Query cache hit ratio' },
    num_hash_entries: { kind: 'gauge', help: 'Number of total hash entries' },
    used_hash_entries: { kind: 'gauge', help: 'Number of used hash entries' },
    num_cache_entries: { kind: 'gauge', help: 'Number of used cache entries' },
    used_cache_entries_size: { kind: 'gauge', help: 'Total size in bytes of used cache size' },
    free_cache_entries_size: { kind: 'gauge', help: 'Total size in bytes of free cache size' },
    fragment_cache_entries_size: { kind: 'gauge', help: 'Total size in bytes of the fragmented cache' },
  },
};

/** Metrics pgrouter adds to the pool_nodes namespace (same labels). */
const NODE_EXTRAS = {
  pg_status: 'Backend pg status (1 for up or waiting, 0 for down or unused)',
  pg_role: 'Backend role reported by PostgreSQL itself (1 for primary, 0 for standby, -1 for unknown)',
  lb_weight: 'Load balance weight of the backend (its backend_weight over the sum of all weights)',
  replication_delay_bytes: 'Replication delay of the standby behind the primary in bytes of WAL',
  replication_delay_seconds: 'Replication delay of the standby behind the primary in seconds (replay_lag)',
} as const;

/** pgpool2_exporter's parseStatusField: up/waiting/true are 1, anything else 0. */
export function statusValue(s: string): number {
  return s === 'up' || s === 'waiting' || s === 'true' ? 1 : 0;
}

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** Go's ParseFloat as pgpool2_exporter uses it (nan and -nan accepted); undefined when unparsable. */
export function parseNumber(s: string): number | undefined {
  const t = s.trim();
  if (t === 'nan' || t === '-nan') return NaN;
  if (/^[+-]?inf(inity)?$/i.test(t)) return t.startsWith('-') ? -Infinity : Infinity;
  return NUMBER.test(t) ? Number(t) : undefined;
}

/** replication_delay as Pgpool-II prints it: WAL bytes, or `0.000568 second(s)` with delay_threshold_by_time. */
export function parseReplicationDelay(s: string): { bytes?: number; seconds?: number } {
  const t = s.trim();
  if (/^\d+$/.test(t)) return { bytes: Number(t) };
  const m = /^(\S+)\s+seconds?$/.exec(t);
  const v = m ? parseNumber(m[1]!) : undefined;
  return v !== undefined ? { seconds: v } : {};
}

/** Major.minor.patch from `4.3.5 (tamahomeboshi)` (pgpool2_exporter's regex), or undefined. */
export function parseVersion(text: string | undefined): { text: string; major: number; minor: number; patch: number } | undefined {
  const m = /^((\d+)(\.\d+)(\.\d+)?)/.exec(text ?? '');
  if (!m) return undefined;
  return { text: m[1]!, major: Number(m[2]), minor: Number(m[3]!.slice(1)), patch: m[4] ? Number(m[4].slice(1)) : 0 };
}

/** Builds one scrape's families in a fresh registry, so only what the SHOWs returned is exported. */
class Families {
  readonly registry = new Registry();
  private readonly byName = new Map<string, Gauge | Counter>();
  private readonly seen = new Map<string, Set<string>>();
  constructor(private readonly problems: string[]) {}

  /** Sets one sample; a second sample with the same labels is dropped (pgpool2_exporter issue 16). */
  set(kind: Kind, name: string, help: string, labels: Record<string, string>, value: number): void {
    let m = this.byName.get(name);
    const labelNames = Object.keys(labels);
    if (!m) {
      const o = { name, help, labelNames, registers: [this.registry] };
      m = kind === 'counter' ? new Counter(o) : new Gauge(o);
      this.byName.set(name, m);
    }
    const key = labelNames.map((l) => labels[l]).join('\0');
    let seen = this.seen.get(name);
    if (!seen) this.seen.set(name, (seen = new Set()));
    if (seen.has(key)) {
      this.problems.push(`${name}: a second row with the same labels ${JSON.stringify(labels)} was dropped`);
      return;
    }
    seen.add(key);
    if (m instanceof Counter) {
      if (Number.isFinite(value) && value >= 0) m.inc(labels, value);
      else this.problems.push(`${name}: ${value} is not a counter value`);
    } else m.set(labels, value);
  }
}

function nodeLabels(row: Record<string, string>): Record<string, string> {
  return { hostname: row['hostname'] ?? '', port: row['port'] ?? '', role: row['role'] ?? '' };
}

function mapGeneric(f: Families, ns: keyof typeof GENERIC, r: ShowResult, problems: string[]): void {
  const columns = GENERIC[ns];
  const labelled = ns !== 'pool_cache';
  const present = new Set(r.columns);
  for (const row of namedRows(r)) {
    const labels = labelled ? nodeLabels(row) : {};
    for (const [col, def] of Object.entries(columns)) {
      if (!present.has(col)) continue;
      const name = `pgpool2_${ns}_${col}`;
      const text = row[col]!;
      if (col === 'status') {
        f.set(def.kind, name, def.help, labels, statusValue(text));
        continue;
      }
      const v = parseNumber(text);
      if (v === undefined) {
        // The exporter logs these and goes on; replication_delay in seconds is handled below.
        if (!(ns === 'pool_nodes' && col === 'replication_delay')) problems.push(`${name}: cannot parse ${JSON.stringify(text)}`);
        continue;
      }
      f.set(def.kind, name, def.help, labels, v);
    }
    if (ns === 'pool_nodes') mapNodeExtras(f, row, present, labels);
  }
}

function mapNodeExtras(f: Families, row: Record<string, string>, present: ReadonlySet<string>, labels: Record<string, string>): void {
  const g = (col: keyof typeof NODE_EXTRAS, v: number): void => f.set('gauge', `pgpool2_pool_nodes_${col}`, NODE_EXTRAS[col], labels, v);
  if (present.has('pg_status')) g('pg_status', statusValue(row['pg_status']!));
  if (present.has('pg_role')) {
    const r = row['pg_role']!;
    g('pg_role', r === 'primary' || r === 'main' ? 1 : r === 'standby' || r === 'replica' ? 0 : -1);
  }
  const w = present.has('lb_weight') ? parseNumber(row['lb_weight']!) : undefined;
  if (w !== undefined) g('lb_weight', w);
  // pgrouter's own feed adds both figures as extra columns; Pgpool-II prints one of them.
  const fromText = present.has('replication_delay') ? parseReplicationDelay(row['replication_delay']!) : {};
  const bytes = present.has('replication_delay_bytes') ? parseNumber(row['replication_delay_bytes']!) : fromText.bytes;
  const seconds = present.has('replication_delay_seconds') ? parseNumber(row['replication_delay_seconds']!) : fromText.seconds;
  if (bytes !== undefined) g('replication_delay_bytes', bytes);
  if (seconds !== undefined) g('replication_delay_seconds', seconds);
}

/** SHOW pool_processes: frontend_total, frontend_used{username,database}, frontend_used_ratio. */
function mapProcesses(f: Families, r: ShowResult): void {
  let total = 0;
  let used = 0;
  const byUserDb = new Map<string, { username: string; database: string; n: number }>();
  for (const row of namedRows(r)) {
    total++;
    const database = row['database'] ?? '';
    const username = row['username'] ?? '';
    if (database === '' || username === '') continue;
    used++;
    const k = `${username}\0${database}`;
    const e = byUserDb.get(k);
    if (e) e.n++;
    else byUserDb.set(k, { username, database, n: 1 });
  }
  for (const e of byUserDb.values())
    f.set('gauge', 'pgpool2_frontend_used', 'Number of used child processes', { username: e.username, database: e.database }, e.n);
  f.set('gauge', 'pgpool2_frontend_total', 'Number of total child processed', {}, total);
  f.set('gauge', 'pgpool2_frontend_used_ratio', 'Ratio of child processes to total processes', {}, used / total);
}

/** SHOW pool_pools: backend_total/used/used_ratio and the same per pool_pid. */
function mapPools(f: Families, r: ShowResult): void {
  let total = 0;
  let used = 0;
  const totalByPid = new Map<string, number>();
  const usedBy = new Map<string, { labels: Record<string, string>; n: number }>();
  const usedByPid = new Map<string, number>();
  for (const row of namedRows(r)) {
    const pid = row['pool_pid'] ?? '';
    const username = row['username'] ?? '';
    if (pid !== '') {
      total++;
      totalByPid.set(pid, (totalByPid.get(pid) ?? 0) + 1);
    }
    if (username === '') continue;
    used++;
    const labels = { pool_pid: pid, pool_id: row['pool_id'] ?? '', backend_id: row['backend_id'] ?? '', username, database: row['database'] ?? '' };
    const k = Object.values(labels).join('\0');
    const e = usedBy.get(k);
    if (e) e.n++;
    else {
      usedBy.set(k, { labels, n: 1 });
      usedByPid.set(pid, (usedByPid.get(pid) ?? 0) + 1);
    }
  }
  const help = 'Number of backend connection slots in use';
  for (const e of usedBy.values()) f.set('gauge', 'pgpool2_backend_by_process_used', help, e.labels, e.n);
  for (const [pid, n] of usedByPid) {
    const t = totalByPid.get(pid) ?? 0;
    f.set('gauge', 'pgpool2_backend_by_process_used_ratio', help, { pool_pid: pid }, n / t);
    f.set('gauge', 'pgpool2_backend_by_process_total', help, { pool_pid: pid }, t);
  }
  f.set('gauge', 'pgpool2_backend_total', 'Number of total possible backend connection slots', {}, total);
  f.set('gauge', 'pgpool2_backend_used', help, {}, used);
  f.set('gauge', 'pgpool2_backend_used_ratio', 'Ratio of backend connections in use to total backend connection slots', {}, used / total);
}

/** The outcome of mapping one snapshot. */
export interface Mapped {
  /** The snapshot's families (a fresh registry; merge it with the long-lived ones). */
  readonly registry: Registry;
  /** Parse problems and dropped duplicates (pgpool2_exporter logs these; the scrape goes on). */
  readonly problems: readonly string[];
  /** Namespaces whose SHOW failed (these set pgpool2_last_scrape_error). */
  readonly failed: readonly ShowNamespace[];
}

/** Maps one snapshot to pgpool2_* families (not the exporter's own up/scrape metrics: see ExporterSelfMetrics). */
export function mapSnapshot(s: PgpoolSnapshot): Mapped {
  const problems: string[] = [];
  const f = new Families(problems);
  const failed: ShowNamespace[] = [];
  const version = parseVersion(s.version);
  if (s.up) {
    const old = version !== undefined && (version.major < 4 || (version.major === 4 && version.minor < 2));
    for (const ns of SHOW_NAMESPACES) {
      if (old && SINCE_4_2.has(ns)) continue;
      const r = s.results.get(ns);
      if (r === undefined) continue;
      if (r instanceof Error) {
        failed.push(ns);
        problems.push(`SHOW ${ns}: ${r.message}`);
        continue;
      }
      if (ns === 'pool_processes') mapProcesses(f, r);
      else if (ns === 'pool_pools') mapPools(f, r);
      else mapGeneric(f, ns, r, problems);
    }
    if (version) f.set('gauge', 'pgpool2_version', 'Pgpool-II version', { version: version.text }, 1);
  }
  return { registry: f.registry, problems, failed };
}

/** pgpool2_up, pgpool2_scrapes_total, pgpool2_last_scrape_duration_seconds, pgpool2_last_scrape_error. */
export class ExporterSelfMetrics {
  readonly registry = new Registry();
  private readonly up = new Gauge({ name: 'pgpool2_up', help: 'Whether the Pgpool-II server is up (1 for yes, 0 for no).', registers: [this.registry] });
  private readonly duration = new Gauge({
    name: 'pgpool2_last_scrape_duration_seconds',
    help: 'Duration of the last scrape of metrics from Pgpool-II.',
    registers: [this.registry],
  });
  private readonly scrapes = new Counter({
    name: 'pgpool2_scrapes_total',
    help: 'Total number of times Pgpool-II has been scraped for metrics.',
    registers: [this.registry],
  });
  private readonly error = new Gauge({
    name: 'pgpool2_last_scrape_error',
    help: 'Whether the last scrape of metrics from Pgpool-II resulted in an error (1 for error, 0 for success).',
    registers: [this.registry],
  });

  /** A scrape starts (pgpool2_exporter counts it before reading anything). */
  begin(): void {
    this.scrapes.inc();
  }

  /** A scrape ended: up, how long it took, and whether any SHOW failed (or Pgpool-II was down). */
  end(up: boolean, seconds: number, error: boolean): void {
    this.up.set(up ? 1 : 0);
    this.duration.set(seconds);
    this.error.set(error || !up ? 1 : 0);
  }
}
