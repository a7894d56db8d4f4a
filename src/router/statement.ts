// What the router knows about one SQL string once it has been classified: where it may run
// (Pgpool-II's PRIMARY / BOTH / EITHER), its kind for the statistics, and the facts routing
// rules look at (functions called, relations read, transaction control). Pure data.

/** Pgpool-II's three destinations: only the primary, every node the session uses, or either. */
export type Target = 'primary' | 'all' | 'either';

/** The statement classes SHOW pool_backend_stats counts. */
export type StatementKind = 'select' | 'insert' | 'update' | 'delete' | 'ddl' | 'other';

/** Transaction-control meaning of a statement, from ReadyForQuery's point of view. */
export type TxControl = 'begin' | 'end' | 'savepoint' | 'none';

export interface Classification {
  readonly target: Target;
  /** Why, in a few words ("INSERT", "SELECT ... FOR UPDATE", "multi-statement"). */
  readonly reason: string;
  readonly kind: StatementKind;
  readonly tx: TxControl;
  /** A BEGIN whose options (READ WRITE, SERIALIZABLE) pin the whole transaction to the primary. */
  readonly pinsTransaction: boolean;
  /**
   * A BEGIN (or SET TRANSACTION) that makes its transaction READ ONLY, not SERIALIZABLE: nothing
   * in it can write, and a standby can run it.
   */
  readonly readOnly: boolean;
  /** Function names called, lower-cased, schema-qualified as written (`public.f`) and bare. */
  readonly functions: readonly string[];
  /** How many of the calls in `functions` are `set_config(..., true)`, whose setting ends with the transaction. */
  readonly localSetConfig: number;
  /** Relations read, `schema.name` or `name` as written. */
  readonly relations: readonly string[];
  /**
   * Relations this statement writes (or locks, or creates), as written; empty for reads and for
   * statements that change no table (SET, SAVEPOINT); null when it may write something pgrouter
   * cannot name (DO, CALL, EXECUTE, unparsable text, most DDL, a multi-statement string with one of
   * those).
   */
  readonly writes: readonly string[] | null;
  /** Temporary tables this statement creates (check_temp_table = trace). */
  readonly createsTemp: readonly string[];
  /** Tables this statement drops (to forget temporary ones). */
  readonly drops: readonly string[];
  /** SQL PREPARE name / EXECUTE name / DEALLOCATE name ('' for DEALLOCATE ALL). */
  readonly prepare?: string | undefined;
  readonly execute?: string | undefined;
  readonly deallocate?: string | undefined;
  /**
   * A session-level SET or RESET that can be replayed on another connection (transaction
   * pooling keeps it per session instead of pinning the session); undefined for anything else.
   */
  readonly setting: SessionSetting | undefined;
  /** The statements of a multi-statement string, each classified; undefined for one statement. */
  readonly parts: readonly Classification[] | undefined;
  /** True when the text begins with a comment (allow_sql_comments = off blocks balancing then). */
  readonly leadingComment: boolean;
  /** True when decided by the fast path rather than a full parse. */
  readonly fast: boolean;
}

/**
 * `SET name = value`, `SET name TO DEFAULT`, `RESET name` or `RESET ALL`, outside SET LOCAL and
 * outside the parameters that change who the session is (role, session_authorization) or what
 * its current transaction is (transaction_*). SET SESSION CHARACTERISTICS with one option counts
 * as the SET of its default_transaction_* parameter.
 */
export interface SessionSetting {
  /** The parameter, lower-cased; '' for RESET ALL. */
  readonly name: string;
  /** Back to the session's default (RESET, SET ... TO DEFAULT, RESET ALL). */
  readonly reset: boolean;
}

const NONE: readonly string[] = [];

/**
 * A classification with the common fields defaulted. Every field is set, in one order, so that
 * all classifications share one hidden class and the router's property reads stay monomorphic
 * (a spread of `extra` gave each set of keys a shape of its own).
 */
export function classification(
  target: Target,
  reason: string,
  kind: StatementKind,
  extra: Partial<Classification> = {},
): Classification {
  return {
    target,
    reason,
    kind,
    tx: extra.tx ?? 'none',
    pinsTransaction: extra.pinsTransaction ?? false,
    readOnly: extra.readOnly ?? false,
    functions: extra.functions ?? NONE,
    localSetConfig: extra.localSetConfig ?? 0,
    relations: extra.relations ?? NONE,
    writes: extra.writes !== undefined ? extra.writes : target === 'primary' ? null : NONE,
    createsTemp: extra.createsTemp ?? NONE,
    drops: extra.drops ?? NONE,
    prepare: extra.prepare,
    execute: extra.execute,
    deallocate: extra.deallocate,
    setting: extra.setting,
    parts: extra.parts,
    leadingComment: extra.leadingComment ?? false,
    fast: extra.fast ?? false,
  };
}

/** The same classification, with one field changed (keeps the shared shape). */
export function withField<K extends keyof Classification>(c: Classification, key: K, value: Classification[K]): Classification {
  return classification(c.target, c.reason, c.kind, { ...c, [key]: value });
}
