// Routing rules applied per statement on top of its classification: Pgpool-II's load-balancing
// gate (comments, write functions, catalog, temporary and unlogged relations, query patterns,
// the writing-transaction state, dml_adaptive's written tables) and the weighted choice of a
// session's load-balance node. Pure: catalog facts come in through a CatalogView.

import { NON_VOLATILE_BUILTINS } from './data/non-volatile-builtins.ts';
import type { Classification } from './statement.ts';

export type DisableLbOnWrite = 'off' | 'transaction' | 'trans_transaction' | 'always' | 'dml_adaptive';

/** The routing settings, compiled once per configuration. */
export interface RouteSettings {
  readonly loadBalance: boolean;
  readonly allowSqlComments: boolean;
  /** write_function_list as anchored regexes. */
  readonly writeFunctions: readonly RegExp[];
  /** read_only_function_list as anchored regexes. */
  readonly readOnlyFunctions: readonly RegExp[];
  /** primary_routing_query_pattern_list, anchored and case-insensitive. */
  readonly primaryPatterns: readonly RegExp[];
  readonly disableLbOnWrite: DisableLbOnWrite;
  /**
   * dml_adaptive_object_relationship_list: bare object name (a function as `f()`) → the objects
   * that depend on it, so that writing the first sends reads of the others to the primary too.
   */
  readonly dmlDependents: ReadonlyMap<string, readonly string[]>;
  /** check_unlogged_table: reads of unlogged tables go to the primary (pg_class lookup). */
  readonly checkUnloggedTable: boolean;
  /** relcache_size: most catalog facts cached (0: none kept, every statement looks up). */
  readonly relcacheSize: number;
  /** relcache_expire in seconds (0: cached facts never expire). */
  readonly relcacheExpire: number;
  /** relcache_query_target: where catalog lookups run. */
  readonly relcacheQueryTarget: 'primary' | 'load_balance_node';
  readonly statementLevel: boolean;
  /** transaction_read_only_load_balance: transaction pooling runs a READ ONLY transaction where a read would go. */
  readonly readOnlyTransactions: boolean;
  /** delay_threshold in bytes (0: off); ignored when delayThresholdMs > 0, as in Pgpool-II. */
  readonly delayThresholdBytes: number;
  /** delay_threshold_by_time in milliseconds (0: off). */
  readonly delayThresholdMs: number;
  readonly preferLowerDelayStandby: boolean;
  /** notice_per_node_statement: trace every routing decision to every client. */
  readonly traceAll: boolean;
  /** replica_retry_interval in milliseconds: when a session tries a node it lost again. */
  readonly replicaRetryMs: number;
  /** app_name_ / database_ / user_redirect_preference_list, in that order of precedence. */
  readonly redirects: {
    readonly appName: readonly RedirectRule[];
    readonly database: readonly RedirectRule[];
    readonly user: readonly RedirectRule[];
  };
}

/** A replica's lag as the streaming-replication check last saw it (null: not measured). */
export interface LagFigures {
  readonly bytes: number | null;
  readonly seconds: number | null;
}

/** How far over the threshold a replica is, or 0 when within it or when its lag is unknown. */
export function lagOverThreshold(lag: LagFigures, s: RouteSettings): number {
  if (s.delayThresholdMs > 0) return lag.seconds !== null && lag.seconds * 1000 > s.delayThresholdMs ? lag.seconds * 1000 - s.delayThresholdMs : 0;
  if (s.delayThresholdBytes > 0) return lag.bytes !== null && lag.bytes > s.delayThresholdBytes ? lag.bytes - s.delayThresholdBytes : 0;
  return 0;
}

/** The figure a threshold compares (ms or bytes), for choosing the least-delayed replica. */
export function lagMeasure(lag: LagFigures, s: RouteSettings): number {
  if (s.delayThresholdMs > 0) return lag.seconds === null ? 0 : lag.seconds * 1000;
  return lag.bytes ?? 0;
}

/** write_function_list / read_only_function_list entries as anchored regexes (double quotes dropped). */
export function compileFunctionList(list: readonly string[]): RegExp[] {
  return list
    .map((p) => p.trim().replace(/"/g, ''))
    .filter((p) => p !== '')
    .map((p) => new RegExp(`^(?:${p})$`));
}

/** primary_routing_query_pattern_list entries: anchored, case-insensitive, matched against the whole text. */
export function compileQueryPatterns(list: readonly string[]): RegExp[] {
  return list
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map((p) => new RegExp(`^(?:${p})$`, 'is'));
}

/**
 * Parses dml_adaptive_object_relationship_list, `'table_1:table_2,func_x():table_y'`: writing the
 * left object also makes the right one "written". Names are compared bare (schema dropped),
 * lower-cased unless double-quoted, as the parser folds identifiers. Throws on a bad entry.
 */
export function parseDmlRelationships(list: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const raw of list.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const colon = entry.indexOf(':');
    const from = colon < 0 ? '' : dmlObjectName(entry.slice(0, colon));
    const to = colon < 0 ? '' : dmlObjectName(entry.slice(colon + 1));
    if (from === '' || to === '') throw new Error(`invalid dml_adaptive_object_relationship_list entry "${entry}": expected object:dependent`);
    const deps = out.get(from) ?? [];
    if (!deps.includes(to)) deps.push(to);
    out.set(from, deps);
  }
  return out;
}

/** `Public.T` → `t`, `"T"` → `T`, `f ( )` → `f()`. */
function dmlObjectName(written: string): string {
  let w = written.trim();
  const fn = /\(\s*\)$/.test(w);
  if (fn) w = w.replace(/\(\s*\)$/, '').trim();
  const bare = bareName(w.includes('"') ? w : w.toLowerCase()).replace(/"/g, '');
  return bare === '' ? '' : fn ? `${bare}()` : bare;
}

/** The last part of a possibly schema-qualified name. */
export function bareName(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}

/**
 * Catalog facts the gate needs beyond the statement text, answered from a cache of pg_proc and
 * pg_class lookups: true / false, or undefined when not known yet (a lookup is needed).
 */
export interface CatalogView {
  /** Has a function of this name (`f`: any schema, `s.f`: schema s) a VOLATILE overload? */
  volatile(name: string): boolean | undefined;
  /** Is this relation (`t`: any schema, `s.t`: schema s) an unlogged table? */
  unlogged(name: string): boolean | undefined;
  /** Has the database any unlogged table at all? (When not, no relation needs asking.) */
  anyUnlogged(): boolean | undefined;
}

/** A CatalogView that knows nothing: every user function counts as volatile, no table as unlogged. */
export const NO_CATALOG: CatalogView = { volatile: () => true, unlogged: () => false, anyUnlogged: () => false };

/** Does `name` need its volatility from pg_proc (both function lists empty and not a known built-in)? */
export function needsVolatility(name: string, s: RouteSettings): boolean {
  if (s.readOnlyFunctions.length > 0 || s.writeFunctions.length > 0) return false;
  const dot = name.lastIndexOf('.');
  if (dot >= 0 && name.slice(0, dot) !== 'pg_catalog') return true;
  return !NON_VOLATILE_BUILTINS.has((dot < 0 ? name : name.slice(dot + 1)).toLowerCase());
}

/**
 * Is `name` (as written: `f` or `schema.f`) a function that writes, by Pgpool-II's rules?
 * Undefined when that depends on pg_proc and `catalog` does not know yet.
 */
export function isWriteFunction(name: string, s: RouteSettings, catalog: CatalogView = NO_CATALOG): boolean | undefined {
  if (s.readOnlyFunctions.length > 0) return !s.readOnlyFunctions.some((r) => r.test(name));
  if (s.writeFunctions.length > 0) return s.writeFunctions.some((r) => r.test(name));
  // Neither list: volatility decides. Built-ins are known; anything else is asked of pg_proc.
  return needsVolatility(name, s) ? catalog.volatile(name) : false;
}

/**
 * True when the statement may change data, as far as reads after it are concerned
 * (disable_load_balance_on_write): one for the primary only, unless it is known to change no
 * table (LISTEN, CLOSE, CHECKPOINT, SET TRANSACTION READ WRITE, PREPARE, DEALLOCATE). Write
 * functions are asked apart (callsWriteFunction).
 */
export function writesData(c: Classification): boolean {
  return c.target === 'primary' && (c.writes === null || c.writes.length > 0);
}

/** writesData, or a call of a function that writes or whose volatility is not known (the safe side). */
export function writesForReads(c: Classification, s: RouteSettings, catalog: CatalogView): boolean {
  return writesData(c) || (c.functions.length > 0 && callsWriteFunction(c, s, catalog));
}

/** True when the statement calls a function that writes, or whose volatility is not known (the safe side). */
export function callsWriteFunction(c: Classification, s: RouteSettings, catalog: CatalogView): boolean {
  for (const f of c.functions) if (isWriteFunction(f, s, catalog) !== false) return true;
  return false;
}

/**
 * primaryReason's answer when the decision depends on catalog facts not cached yet: the caller
 * looks them up (see catalog-cache.ts) and asks again. No other reason has this text.
 */
export const NEEDS_CATALOG_LOOKUP = 'catalog lookup needed';

/** What the session tells the gate about itself. */
export interface SessionRouteState {
  readonly inTransaction: boolean;
  /** The transaction (or session, for always/trans_transaction) has written. */
  readonly writing: boolean;
  /** The transaction was opened READ WRITE or SERIALIZABLE. */
  readonly pinned: boolean;
  readonly tempTables: ReadonlySet<string>;
  /** dml_adaptive: bare names of the tables (and `f()` functions) written in this transaction, with their dependents. */
  readonly written: ReadonlySet<string>;
}

/**
 * Why a balanceable statement must still go to the primary, or null when it may be balanced, or
 * NEEDS_CATALOG_LOOKUP when only pg_proc / pg_class facts `catalog` does not have can tell.
 */
export function primaryReason(
  c: Classification,
  sql: string,
  st: SessionRouteState,
  s: RouteSettings,
  catalog: CatalogView = NO_CATALOG,
): string | null {
  if (!s.loadBalance) return 'load_balance_mode is off';
  if (c.leadingComment && !s.allowSqlComments) return 'leading comment (allow_sql_comments is off)';
  if (st.pinned) return 'transaction is READ WRITE or SERIALIZABLE';
  if (st.writing && (st.inTransaction || s.disableLbOnWrite === 'always')) return 'in writing transaction';
  let unknown = false;
  for (const f of c.functions) {
    const writes = isWriteFunction(f, s, catalog);
    if (writes === true) return `write function ${f}`;
    if (writes === undefined) unknown = true;
  }
  // Once per statement: in a database without unlogged tables no relation is asked about.
  const anyUnlogged = s.checkUnloggedTable && c.relations.length > 0 ? catalog.anyUnlogged() : false;
  if (anyUnlogged === undefined) unknown = true;
  for (const r of c.relations) {
    const lower = r.toLowerCase();
    const bare = lower.slice(lower.lastIndexOf('.') + 1);
    if (lower.startsWith('pg_catalog.') || lower.startsWith('information_schema.') || (bare.startsWith('pg_') && !lower.includes('.')))
      return `system catalog ${r}`;
    if (st.tempTables.has(bare)) return `temporary table ${r}`;
    if (anyUnlogged === true) {
      const u = catalog.unlogged(r);
      if (u === true) return `unlogged table ${r}`;
      if (u === undefined) unknown = true;
    }
  }
  if (st.written.size > 0 && st.inTransaction) {
    for (const r of c.relations) if (st.written.has(bareName(r))) return `dml_adaptive: ${r} was written in this transaction`;
    for (const f of c.functions) if (st.written.has(`${bareName(f)}()`)) return `dml_adaptive: ${f}() depends on a table written in this transaction`;
  }
  for (const p of s.primaryPatterns) if (p.test(sql)) return 'primary_routing_query_pattern_list';
  return unknown ? NEEDS_CATALOG_LOOKUP : null;
}

/**
 * Built-in functions a standby refuses even in a READ ONLY transaction ("recovery is in
 * progress", "cannot assign TransactionIds during recovery"): WAL positions and control, backups,
 * a new transaction id. Other volatile functions (random(), clock_timestamp(),
 * pg_is_in_recovery()) run there as on the primary.
 */
const STANDBY_REFUSES =
  /^(?:pg_catalog\.)?(?:pg_current_wal_(?:insert_|flush_)?lsn|pg_switch_wal|pg_create_restore_point|pg_walfile_name(?:_offset)?|pg_(?:start|stop)_backup|pg_backup_(?:start|stop)|txid_current|pg_current_xact_id)$/i;

/**
 * Why a READ ONLY transaction that begins with this statement must run on the primary rather
 * than where reads go, or null. Only what a standby cannot run counts, and what the user sends to
 * the primary on purpose: nothing in the transaction can write, so Pgpool-II's rule for write
 * functions does not apply. An unlogged table not looked up yet counts as logged.
 */
export function readOnlyTransactionReason(c: Classification, sql: string, s: RouteSettings, catalog: CatalogView): string | null {
  for (const f of c.functions) if (STANDBY_REFUSES.test(f)) return `${f} cannot run on a standby`;
  if (s.checkUnloggedTable && c.relations.length > 0 && catalog.anyUnlogged() === true)
    for (const r of c.relations) if (catalog.unlogged(r) === true) return `unlogged table ${r}`;
  for (const p of s.primaryPatterns) if (p.test(sql)) return 'primary_routing_query_pattern_list';
  return null;
}

/** Weighted random choice among `candidates` (weight > 0); undefined if none has weight. */
export function weightedChoice<T extends { weight: number }>(
  candidates: readonly T[],
  random = Math.random,
  /** Only candidates it accepts count (saves building a filtered list on a hot path). */
  accept: (c: T) => boolean = () => true,
): T | undefined {
  let total = 0;
  let last: T | undefined;
  for (const c of candidates)
    if (c.weight > 0 && accept(c)) {
      total += c.weight;
      last = c;
    }
  if (total <= 0) return undefined;
  let r = random() * total;
  for (const c of candidates) {
    if (c.weight <= 0 || !accept(c)) continue;
    r -= c.weight;
    if (r < 0) return c;
  }
  return last;
}

/** One entry of a *_redirect_preference_list: `pattern:target(ratio)`. */
export interface RedirectRule {
  readonly pattern: RegExp;
  readonly target: number | 'primary' | 'standby';
  readonly ratio: number;
}

/**
 * Parses Pgpool-II's redirect preference list syntax, e.g.
 * `'postgres:primary,mydb[01]:1(0.3),mydb2:standby'`. Throws with the entry on a bad one.
 */
export function parseRedirectList(list: string): RedirectRule[] {
  const out: RedirectRule[] = [];
  for (const raw of list.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const colon = entry.lastIndexOf(':');
    if (colon <= 0) throw new Error(`invalid redirect preference entry "${entry}": expected pattern:target`);
    const pattern = entry.slice(0, colon);
    const m = /^(primary|standby|\d+)(?:\((0(?:\.\d+)?|1(?:\.0+)?)\))?$/i.exec(entry.slice(colon + 1).trim());
    if (!m) throw new Error(`invalid redirect preference entry "${entry}": target must be primary, standby or a node id, with an optional (ratio)`);
    const t = m[1]!.toLowerCase();
    out.push({
      pattern: new RegExp(`^(?:${pattern})$`),
      target: t === 'primary' || t === 'standby' ? t : Number(t),
      ratio: m[2] === undefined ? 1 : Number(m[2]),
    });
  }
  return out;
}

/** The load-balance node a redirect rule picks, among `nodes` (usable, with weights). */
export function applyRedirect<T extends { id: number; weight: number }>(
  rule: RedirectRule,
  nodes: readonly T[],
  primaryId: number,
  random = Math.random,
): number | undefined {
  if (rule.target === 'standby') {
    const standbys = nodes.filter((n) => n.id !== primaryId);
    if (standbys.length > 0 && random() < rule.ratio) return weightedChoice(standbys, random)?.id ?? primaryId;
    return primaryId;
  }
  const id = rule.target === 'primary' ? primaryId : rule.target;
  if (nodes.some((n) => n.id === id) && random() < rule.ratio) return id;
  return weightedChoice(nodes.filter((n) => n.id !== id), random)?.id;
}

/**
 * The load-balance node of a session, chosen once at its start as Pgpool-II does: the first
 * matching redirect rule (application_name, then database, then user), else a weighted choice
 * among `nodes` (the usable ones, the primary included). The primary when balancing is off.
 */
export function sessionLoadBalanceNode<T extends { id: number; weight: number }>(
  s: RouteSettings,
  nodes: readonly T[],
  primaryId: number,
  who: { readonly applicationName: string; readonly database: string; readonly user: string },
): number {
  if (!s.loadBalance) return primaryId;
  for (const [list, value] of [
    [s.redirects.appName, who.applicationName],
    [s.redirects.database, who.database],
    [s.redirects.user, who.user],
  ] as const) {
    const rule = list.find((r) => r.pattern.test(value));
    if (rule) return applyRedirect(rule, nodes, primaryId) ?? primaryId;
  }
  return weightedChoice(nodes)?.id ?? primaryId;
}
