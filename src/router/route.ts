// Routing rules applied per statement on top of its classification: Pgpool-II's load-balancing
// gate (comments, write functions, catalog and temporary relations, query patterns, the
// writing-transaction state) and the weighted choice of a session's load-balance node. Pure.

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
  readonly statementLevel: boolean;
  /** delay_threshold in bytes (0: off); ignored when delayThresholdMs > 0, as in Pgpool-II. */
  readonly delayThresholdBytes: number;
  /** delay_threshold_by_time in milliseconds (0: off). */
  readonly delayThresholdMs: number;
  readonly preferLowerDelayStandby: boolean;
  /** notice_per_node_statement: trace every routing decision to every client. */
  readonly traceAll: boolean;
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

/** Is `name` (as written: `f` or `schema.f`) a function that writes, by Pgpool-II's rules? */
export function isWriteFunction(name: string, s: RouteSettings): boolean {
  if (s.readOnlyFunctions.length > 0) return !s.readOnlyFunctions.some((r) => r.test(name));
  if (s.writeFunctions.length > 0) return s.writeFunctions.some((r) => r.test(name));
  // Neither list: volatility decides. Built-ins are known; anything else is taken as volatile.
  const dot = name.lastIndexOf('.');
  const schema = dot < 0 ? '' : name.slice(0, dot);
  const bare = dot < 0 ? name : name.slice(dot + 1);
  if (schema !== '' && schema !== 'pg_catalog') return true;
  return !NON_VOLATILE_BUILTINS.has(bare.toLowerCase());
}

/** What the session tells the gate about itself. */
export interface SessionRouteState {
  readonly inTransaction: boolean;
  /** The transaction (or session, for always/trans_transaction) has written. */
  readonly writing: boolean;
  /** The transaction was opened READ WRITE or SERIALIZABLE. */
  readonly pinned: boolean;
  readonly tempTables: ReadonlySet<string>;
}

/** Why a balanceable statement must still go to the primary, or null when it may be balanced. */
export function primaryReason(c: Classification, sql: string, st: SessionRouteState, s: RouteSettings): string | null {
  if (!s.loadBalance) return 'load_balance_mode is off';
  if (c.leadingComment && !s.allowSqlComments) return 'leading comment (allow_sql_comments is off)';
  if (st.pinned) return 'transaction is READ WRITE or SERIALIZABLE';
  if (st.writing && (st.inTransaction || s.disableLbOnWrite === 'always')) return 'in writing transaction';
  for (const f of c.functions) if (isWriteFunction(f, s)) return `write function ${f}`;
  for (const r of c.relations) {
    const lower = r.toLowerCase();
    const bare = lower.slice(lower.lastIndexOf('.') + 1);
    if (lower.startsWith('pg_catalog.') || lower.startsWith('information_schema.') || (bare.startsWith('pg_') && !lower.includes('.')))
      return `system catalog ${r}`;
    if (st.tempTables.has(bare)) return `temporary table ${r}`;
  }
  for (const p of s.primaryPatterns) if (p.test(sql)) return 'primary_routing_query_pattern_list';
  return null;
}

/** Weighted random choice among `candidates` (weight > 0); undefined if none has weight. */
export function weightedChoice<T extends { weight: number }>(candidates: readonly T[], random = Math.random): T | undefined {
  let total = 0;
  for (const c of candidates) if (c.weight > 0) total += c.weight;
  if (total <= 0) return undefined;
  let r = random() * total;
  for (const c of candidates) {
    if (c.weight <= 0) continue;
    r -= c.weight;
    if (r < 0) return c;
  }
  return candidates.filter((c) => c.weight > 0).at(-1);
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
