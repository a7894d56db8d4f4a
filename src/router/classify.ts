// The router's classifier: a cache keyed by statement text, in front of a fast path for the
// commonest shapes (transaction control, single-table point SELECTs and constant-only
// single-table INSERT/UPDATE/DELETE) and the full parse of
// PostgreSQL's grammar for everything else. The fast path only answers for text whose
// meaning it can be sure of, and a unit test checks it against the full parse.

import { classifyByParse } from './parse-tree.ts';
import { classification, withField, type Classification } from './statement.ts';

/** PostgreSQL's reserved key words: they may not stand as bare identifiers on the fast path. */
const RESERVED = new Set(
  (
    'all analyse analyze and any array as asc asymmetric authorization binary both case cast check collate collation ' +
    'column concurrently constraint create cross current_catalog current_date current_role current_schema current_time ' +
    'current_timestamp current_user default deferrable desc distinct do else end except false fetch for foreign freeze ' +
    'from full grant group having ilike in initially inner intersect into is isnull join lateral leading left like limit ' +
    'localtime localtimestamp natural not notnull null offset on only or order outer overlaps placing primary references ' +
    'returning right select session_user similar some symmetric table tablesample then to trailing true union unique user ' +
    'using variadic verbose when where window with between'
  ).split(' '),
);

/** An unquoted identifier that is not a reserved key word. */
const IDENT = `(?!(?:${[...RESERVED].join('|')})(?![a-z0-9_$]))[a-z_][a-z0-9_$]*`;
const VALUE = `(?:\\$[1-9][0-9]*|-?[0-9]+|'[^'\\\\]*')`;
const COND = `(${IDENT})\\s*(?:=|<>|!=|<=|>=|<|>)\\s*${VALUE}`;
/** `SELECT cols FROM [schema.]rel [WHERE col op value [AND ...]] [;]`, case-insensitive. */
const POINT_SELECT = new RegExp(
  `^\\s*select\\s+(\\*|${IDENT}(?:\\s*,\\s*${IDENT})*)\\s+from\\s+(${IDENT}(?:\\.${IDENT})?)` +
    `(?:\\s+where\\s+${COND}(?:\\s+and\\s+${COND})*)?\\s*;?\\s*$`,
  'i',
);
const TX_CONTROL = /^\s*(?:(begin|commit|end|rollback|abort)(?:\s+(?:work|transaction))?|(start)\s+transaction)\s*;?\s*$/i;
const REL = `(${IDENT}(?:\\.${IDENT})?)`;
const WHERE = `(?:\\s+where\\s+${COND}(?:\\s+and\\s+${COND})*)?\\s*;?\\s*$`;
/** A SET item: `col = value`, `col = col`, or `col = col + value` (no function call, no subquery). */
const SET_ITEM = `${IDENT}\\s*=\\s*(?:${VALUE}|${IDENT}(?:\\s*[-+]\\s*${VALUE})?)`;
/** Single-table DML with constants only (pgbench's TPC-B shapes): `UPDATE rel SET ... [WHERE ...]`, `DELETE FROM rel [WHERE ...]`, `INSERT INTO rel [(cols)] VALUES (...)`. */
const POINT_UPDATE = new RegExp(`^\\s*update\\s+${REL}\\s+set\\s+${SET_ITEM}(?:\\s*,\\s*${SET_ITEM})*${WHERE}`, 'i');
const POINT_DELETE = new RegExp(`^\\s*delete\\s+from\\s+${REL}${WHERE}`, 'i');
const INSERT_VALUE = `(?:${VALUE}|null|current_timestamp)`;
const POINT_INSERT = new RegExp(
  `^\\s*insert\\s+into\\s+${REL}\\s*(?:\\(\\s*${IDENT}(?:\\s*,\\s*${IDENT})*\\s*\\))?\\s*values\\s*\\(\\s*${INSERT_VALUE}(?:\\s*,\\s*${INSERT_VALUE})*\\s*\\)\\s*;?\\s*$`,
  'i',
);

/**
 * The keyword of a transaction-control statement with no options (`BEGIN [WORK|TRANSACTION]`,
 * `START TRANSACTION`, `COMMIT`, `END`, `ROLLBACK`, `ABORT`), lower-cased, else undefined.
 */
export function plainTransactionControl(sql: string): 'begin' | 'start' | 'commit' | 'end' | 'rollback' | 'abort' | undefined {
  const tx = TX_CONTROL.exec(sql);
  return tx ? ((tx[1] ?? tx[2]!).toLowerCase() as 'begin' | 'start' | 'commit' | 'end' | 'rollback' | 'abort') : undefined;
}

/** The fast path: a classification for text it can be sure of, else undefined. */
export function classifyFast(sql: string): Classification | undefined {
  const word = plainTransactionControl(sql);
  if (word !== undefined) {
    if (word === 'begin' || word === 'start') return classification('all', 'BEGIN', 'other', { tx: 'begin', fast: true });
    return classification('all', 'transaction end', 'other', { tx: 'end', fast: true });
  }
  const m = POINT_SELECT.exec(sql);
  if (m) return classification('either', 'SELECT', 'select', { relations: [m[2]!.toLowerCase()], fast: true });
  // Writes: only the first word can start one of these shapes, so test it before the regexes.
  const first = /^\s*([a-z]+)/i.exec(sql)?.[1]?.toLowerCase();
  const dml = first === 'update' ? POINT_UPDATE : first === 'insert' ? POINT_INSERT : first === 'delete' ? POINT_DELETE : undefined;
  const d = dml?.exec(sql);
  if (!d) return undefined;
  const kind = first as 'update' | 'insert' | 'delete';
  return classification('primary', kind.toUpperCase(), kind, { writes: [d[1]!.toLowerCase()], fast: true });
}

const MAX_CACHE = 10_000;
const MAX_CACHED_LENGTH = 16 * 1024;
const cache = new Map<string, Classification>();

/** Counters for the benchmark and the logs. */
export const classifierStats = { hits: 0, fast: 0, parsed: 0 };

/**
 * Classifies one query string (a Query message or a Parse message's text). Pure function of the
 * text, cached; the per-session rules (transactions, write functions, temp tables) are applied
 * by the router afterwards.
 */
export function classify(sql: string): Classification {
  // Fast-path shapes are answered before the cache and never enter it: their texts usually carry
  // literals (pgbench's aid), so caching them would fill the cache with texts never seen again.
  const fast = classifyFast(sql);
  if (fast) {
    classifierStats.fast++;
    return fast;
  }
  const hit = cache.get(sql);
  if (hit !== undefined) {
    classifierStats.hits++;
    return hit;
  }
  let c = classifyByParse(sql);
  classifierStats.parsed++;
  if (/^\s*(--|\/\*)/.test(sql)) c = withField(c, 'leadingComment', true);
  if (sql.length <= MAX_CACHED_LENGTH && c.reason !== 'parser not loaded yet') {
    if (cache.size >= MAX_CACHE) cache.clear();
    cache.set(sql, c);
  }
  return c;
}
