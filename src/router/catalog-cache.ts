// The catalog facts routing needs and the statement text cannot give: whether a function has a
// VOLATILE overload (pg_proc) and whether a table is unlogged (pg_class). Cached per database
// for every session (relcache_size entries, relcache_expire seconds), looked up in one query
// per statement for the names not known yet, and never twice at once for the same name. A
// database without any unlogged table (the usual case) is remembered as such, so its reads
// skip the per-table check altogether.

import type { Classification } from './statement.ts';
import { needsVolatility, type CatalogView, type RouteSettings } from './route.ts';

type Kind = 'volatile' | 'unlogged';

interface Entry {
  readonly value: boolean;
  /** Epoch ms after which the entry is not used; Infinity: never. */
  readonly expires: number;
  readonly map: Map<string, Entry>;
  readonly name: string;
  readonly db: DatabaseFacts;
}

/** The unlogged-table fact under this name means "the database has some unlogged table". */
export const ANY_RELATION = '';

/** The cached facts of one database (its catalog is the same on every node). */
export class DatabaseFacts {
  readonly volatile = new Map<string, Entry>();
  readonly unlogged = new Map<string, Entry>();
  /** unlogged's ANY_RELATION entry, kept at hand: every balanceable read asks it. */
  anyUnlogged: Entry | undefined = undefined;
  /** Lookups running now, by `kind\0name`. */
  readonly inflight = new Map<string, Promise<boolean>>();
  constructor(readonly database: string) {}
}

/** Facts a lookup just returned, kept by the session for the statement that waited for them. */
export interface FreshFacts {
  readonly volatile: Map<string, boolean>;
  readonly unlogged: Map<string, boolean>;
  /** Set when a lookup failed: its names count as volatile / unlogged (the primary). */
  error: string | undefined;
}

/** The names of one statement whose facts are not known yet. */
export interface MissingFacts {
  readonly volatile: string[];
  readonly unlogged: string[];
}

/** Runs one catalog query on the node that answers lookups and resolves with its rows. */
export type CatalogQuery = (sql: string) => Promise<ReadonlyArray<readonly (string | null)[]>>;

/** DDL that cannot change a function's volatility or a table's persistence (frequent in some workloads). */
const KEEPS_CATALOG_FACTS = new Set(['Truncate', 'Index', 'Reindex', 'Cluster', 'RefreshMatView', 'Comment', 'Grant', 'GrantRole', 'CreateStats']);

/**
 * True when `c` (sent through pgrouter) may change the facts cached here: DDL other than the
 * kinds above and CREATE TEMP TABLE (temporary tables are tracked per session).
 */
export function mayChangeCatalogFacts(c: Classification): boolean {
  return c.kind === 'ddl' && c.createsTemp.length === 0 && !KEEPS_CATALOG_FACTS.has(c.reason);
}

/** A SQL string literal that means `s` whatever standard_conforming_strings is. */
function literal(s: string): string {
  return `E'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** `s.name` → ['s', 'name']; `name` → [undefined, 'name']; longer names keep their last two parts. */
function split(name: string): [string | undefined, string] {
  const parts = name.split('.');
  const bare = parts.pop()!;
  return [parts.pop(), bare];
}

/** The boolean expression that answers one fact; an unqualified name matches in any schema (the safe side). */
function factExpression(kind: Kind, name: string): string {
  if (kind === 'unlogged' && name === ANY_RELATION) return `EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relpersistence = 'u')`;
  const [schema, bare] = split(name);
  if (kind === 'volatile')
    return schema === undefined
      ? `EXISTS (SELECT 1 FROM pg_catalog.pg_proc WHERE proname = ${literal(bare)} AND provolatile = 'v')`
      : `EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace ` +
          `WHERE p.proname = ${literal(bare)} AND n.nspname = ${literal(schema)} AND p.provolatile = 'v')`;
  return schema === undefined
    ? `EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relname = ${literal(bare)} AND relpersistence = 'u')`
    : `EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ` +
        `WHERE c.relname = ${literal(bare)} AND n.nspname = ${literal(schema)} AND c.relpersistence = 'u')`;
}

/** The query answering `facts`, one boolean column each, in order. Exported for the unit test. */
export function catalogQueryText(facts: ReadonlyArray<readonly [Kind, string]>): string {
  return `SELECT ${facts.map(([k, n]) => factExpression(k, n)).join(', ')}`;
}

/** Date.now() costs tens of nanoseconds per call; expiry checks read this, refreshed every 200 ms while some cache expires entries. */
let coarseNow = Date.now();
let ticker: NodeJS.Timeout | undefined;
const coarseClock = (): number => coarseNow;

export class CatalogCache {
  private readonly databases = new Map<string, DatabaseFacts>();
  /** Every entry, oldest first: the eviction order when relcache_size is reached. */
  private readonly order = new Set<Entry>();
  private size = 256;
  private expireMs = 0;

  constructor(private readonly now: () => number = coarseClock) {}

  /** relcache_size and relcache_expire (restart-only settings; applied to later entries). */
  configure(size: number, expireSeconds: number): void {
    this.size = size;
    this.expireMs = expireSeconds * 1000;
    if (this.expireMs > 0 && this.now === coarseClock && ticker === undefined) {
      coarseNow = Date.now();
      ticker = setInterval(() => (coarseNow = Date.now()), 200);
      ticker.unref();
    }
  }

  /** The facts of `database`, created on first use; sessions keep the object for their lookups. */
  database(database: string): DatabaseFacts {
    let d = this.databases.get(database);
    if (!d) {
      d = new DatabaseFacts(database);
      this.databases.set(database, d);
    }
    return d;
  }

  /** A cached fact, or undefined when unknown or expired. No allocation: this runs for every read. */
  get(db: DatabaseFacts, kind: Kind, name: string): boolean | undefined {
    const e = db[kind].get(name);
    if (e === undefined) return undefined;
    if (e.expires !== Infinity && e.expires <= this.now()) {
      this.remove(e);
      return undefined;
    }
    return e.value;
  }

  private put(db: DatabaseFacts, kind: Kind, name: string, value: boolean): void {
    if (this.size <= 0) return;
    const map = db[kind];
    const old = map.get(name);
    if (old) this.remove(old);
    while (this.order.size >= this.size) {
      const oldest = this.order.values().next().value;
      if (oldest === undefined) break;
      this.remove(oldest);
    }
    const e: Entry = { value, expires: this.expireMs > 0 ? this.now() + this.expireMs : Infinity, map, name, db };
    map.set(name, e);
    this.order.add(e);
    if (kind === 'unlogged' && name === ANY_RELATION) db.anyUnlogged = e;
  }

  private remove(e: Entry): void {
    if (e.map.get(e.name) === e) e.map.delete(e.name);
    if (e.db.anyUnlogged === e) e.db.anyUnlogged = undefined;
    this.order.delete(e);
  }

  /** Forgets what is known about one database (DDL ran there: a function or table may have changed). */
  forget(db: DatabaseFacts): void {
    for (const map of [db.volatile, db.unlogged]) for (const e of map.values()) this.order.delete(e);
    db.volatile.clear();
    db.unlogged.clear();
    db.anyUnlogged = undefined;
  }

  /** Number of cached facts (for tests and SHOW). */
  get entries(): number {
    return this.order.size;
  }

  /**
   * The facts `c` needs that neither the cache nor `fresh` holds, or undefined when none is
   * missing. Only called once the routing gate answered NEEDS_CATALOG_LOOKUP.
   */
  missing(db: DatabaseFacts, c: Classification, s: RouteSettings, fresh: FreshFacts | null): MissingFacts | undefined {
    const volatile: string[] = [];
    const unlogged: string[] = [];
    for (const f of c.functions)
      if (needsVolatility(f, s) && this.get(db, 'volatile', f) === undefined && fresh?.volatile.get(f) === undefined && !volatile.includes(f))
        volatile.push(f);
    if (s.checkUnloggedTable && c.relations.length > 0) {
      const any = this.get(db, 'unlogged', ANY_RELATION) ?? fresh?.unlogged.get(ANY_RELATION);
      // Not known whether the database has unlogged tables: ask that and the tables at once.
      if (any === undefined) unlogged.push(ANY_RELATION);
      if (any !== false)
        for (const r of c.relations)
          if (this.get(db, 'unlogged', r) === undefined && fresh?.unlogged.get(r) === undefined && !unlogged.includes(r)) unlogged.push(r);
    }
    return volatile.length + unlogged.length === 0 ? undefined : { volatile, unlogged };
  }

  /**
   * Looks up `want` with `run` (names already being looked up by another session are waited
   * for instead) and adds the answers to the cache and to `into`. Never rejects: a failed lookup
   * records its names as volatile / unlogged in `into` only, and its error in `into.error`.
   */
  async lookUp(db: DatabaseFacts, want: MissingFacts, run: CatalogQuery, into: FreshFacts): Promise<void> {
    const waits: Promise<void>[] = [];
    const mine: Array<readonly [Kind, string]> = [];
    for (const kind of ['volatile', 'unlogged'] as const)
      for (const name of want[kind]) {
        const running = db.inflight.get(`${kind}\0${name}`);
        if (running)
          waits.push(
            running.then(
              (v) => void into[kind].set(name, v),
              () => undefined,
            ),
          );
        else mine.push([kind, name]);
      }
    if (mine.length > 0) {
      const answer = run(catalogQueryText(mine)).then((rows) => {
        const row = rows[0];
        if (!row || row.length !== mine.length) throw new Error(`catalog query returned ${rows.length} rows of ${row?.length ?? 0} columns`);
        return row.map((v) => v === 't');
      });
      mine.forEach(([kind, name], i) => {
        const key = `${kind}\0${name}`;
        const one = answer.then((values) => {
          this.put(db, kind, name, values[i]!);
          return values[i]!;
        });
        db.inflight.set(key, one);
        waits.push(
          one.then(
            (v) => void into[kind].set(name, v),
            () => undefined,
          ),
        );
        void one.then(
          () => db.inflight.delete(key),
          () => db.inflight.delete(key),
        );
      });
      waits.push(
        answer.then(
          () => undefined,
          (e: Error) => {
            into.error = e.message;
          },
        ),
      );
    }
    await Promise.all(waits);
    // Whatever is still unanswered (a failed lookup, ours or another session's) goes to the primary.
    for (const kind of ['volatile', 'unlogged'] as const)
      for (const name of want[kind])
        if (!into[kind].has(name)) {
          into[kind].set(name, true);
          into.error ??= 'catalog lookup failed';
        }
  }

  /** A CatalogView over the cache and a session's fresh facts (built once per session). */
  view(db: DatabaseFacts, fresh: () => FreshFacts | null): CatalogView {
    // The maps are read directly: this runs for every relation of every balanceable read.
    const volatile = db.volatile;
    const unlogged = db.unlogged;
    const answer = (e: Entry | undefined): boolean | undefined => {
      if (e === undefined) return undefined;
      if (e.expires !== Infinity && e.expires <= this.now()) {
        this.remove(e);
        return undefined;
      }
      return e.value;
    };
    return {
      volatile: (name) => answer(volatile.get(name)) ?? fresh()?.volatile.get(name),
      unlogged: (name) => answer(unlogged.get(name)) ?? fresh()?.unlogged.get(name),
      anyUnlogged: () => answer(db.anyUnlogged) ?? fresh()?.unlogged.get(ANY_RELATION),
    };
  }
}

/** The process's catalog cache, shared by every session (Pgpool-II's enable_shared_relcache). */
export const catalogCache = new CatalogCache();

/** An empty FreshFacts. */
export function freshFacts(): FreshFacts {
  return { volatile: new Map(), unlogged: new Map(), error: undefined };
}
