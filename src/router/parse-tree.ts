// Classifies SQL from a real parse of PostgreSQL's grammar (libpg_query compiled to
// WebAssembly): walks the parse tree for the facts Pgpool-II's routing rules need.

import { loadModule, parseSync } from 'libpg-query';
import { classification, type Classification, type SessionSetting, type StatementKind } from './statement.ts';

type Node = Record<string, unknown>;

let loaded: Promise<void> | null = null;
let ready = false;

/** Loads the parser (40-60 ms, once); classification before this resolves goes to the primary. */
export function loadParser(): Promise<void> {
  loaded ??= loadModule().then(() => {
    ready = true;
  });
  return loaded;
}

/** Longest statement text given to the parser; longer ones go to the primary (a 1 MB parse blocks the event loop ~180 ms). */
export const MAX_PARSE_LENGTH = 64 * 1024;

const DML_NODES = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/** Visits every object in a parse tree, with the key it was found under. */
function walk(n: unknown, visit: (key: string, value: Node) => void): void {
  if (Array.isArray(n)) {
    for (const x of n) walk(x, visit);
    return;
  }
  if (n === null || typeof n !== 'object') return;
  for (const [k, v] of Object.entries(n as Node)) {
    if (v !== null && typeof v === 'object') {
      if (!Array.isArray(v)) visit(k, v as Node);
      walk(v, visit);
    }
  }
}

function str(n: unknown): string {
  const s = (n as { String?: { sval?: string } })?.String?.sval;
  return typeof s === 'string' ? s : '';
}

/** `schema.name` or `name` of a RangeVar's fields, as written ('' if absent). */
function rangeVarName(rv: unknown): string {
  const v = rv as Node | undefined;
  if (!v || typeof v['relname'] !== 'string') return '';
  const schema = v['schemaname'];
  return typeof schema === 'string' ? `${schema}.${v['relname']}` : v['relname'];
}

/** The names of a list of `{ RangeVar: ... }` nodes (TRUNCATE, LOCK). */
function rangeVarList(list: unknown): string[] {
  return ((list as Node[] | undefined) ?? []).map((n) => rangeVarName(n['RangeVar'])).filter(Boolean);
}

interface TreeFacts {
  functions: string[];
  relations: string[];
  /** Target tables of INSERT/UPDATE/DELETE/MERGE found anywhere below (data-modifying CTEs). */
  writes: string[];
  locking: boolean;
  into: boolean;
  dml: boolean;
  /** set_config calls whose third argument is the constant true (is_local: the setting ends with the transaction). */
  localConfig: number;
}

function facts(root: unknown): TreeFacts {
  let tree: unknown = root;
  const f: TreeFacts = { functions: [], relations: [], writes: [], locking: false, into: false, dml: false, localConfig: 0 };
  tree = { root };
  walk(tree, (key, v) => {
    if (key === 'FuncCall') {
      const parts = ((v['funcname'] as unknown[]) ?? []).map(str).filter(Boolean);
      if (parts.length > 0) f.functions.push(parts.join('.'));
      if (isLocalSetConfig(parts, v['args'])) f.localConfig++;
    } else if (key === 'RangeVar') {
      const rel = String(v['relname'] ?? '');
      const schema = v['schemaname'];
      f.relations.push(typeof schema === 'string' ? `${schema}.${rel}` : rel);
    } else if (key === 'lockingClause') f.locking = true;
    else if (key === 'intoClause') f.into = true;
    else if (DML_NODES.has(key)) {
      f.dml = true;
      const target = rangeVarName(v['relation']);
      if (target !== '') f.writes.push(target);
    }
  });
  // lockingClause and intoClause are arrays/objects directly under SelectStmt.
  walk(tree, (_k, v) => {
    if (Array.isArray(v['lockingClause']) && (v['lockingClause'] as unknown[]).length > 0) f.locking = true;
    if (v['intoClause'] !== undefined) f.into = true;
  });
  return f;
}

/** `set_config(name, value, true)` (or `pg_catalog.set_config`): a setting for the current transaction only. */
function isLocalSetConfig(name: string[], args: unknown): boolean {
  const fn = name.join('.');
  if (fn !== 'set_config' && fn !== 'pg_catalog.set_config') return false;
  const third = (args as Node[] | undefined)?.[2]?.['A_Const'] as Node | undefined;
  return (third?.['boolval'] as { boolval?: boolean } | undefined)?.boolval === true;
}

function constText(n: unknown): string {
  const c = (n as { A_Const?: Node })?.A_Const;
  if (!c) return '';
  const s = (c['sval'] as { sval?: string })?.sval;
  if (typeof s === 'string') return s;
  const i = (c['ival'] as { ival?: number })?.ival;
  if (typeof i === 'number') return String(i);
  if (c['ival'] !== undefined) return '0'; // ival 0 is encoded as an empty object
  const b = (c['boolval'] as { boolval?: boolean })?.boolval;
  if (typeof b === 'boolean') return b ? 'true' : 'false';
  if (c['boolval'] !== undefined) return 'false';
  return '';
}

/** DeclareCursorStmt.options bit of WITH HOLD (PostgreSQL's CURSOR_OPT_HOLD). */
const CURSOR_OPT_HOLD = 0x20;

const FALSE_SPELLINGS = /^(off|false|f|no|n|0|of|fa|fal|fals)$/i;

/** The DefElem options of SET TRANSACTION / BEGIN that force the primary. */
function writesOrSerializable(options: unknown): boolean {
  for (const o of (options as Node[]) ?? []) {
    const d = o['DefElem'] as Node | undefined;
    if (!d) continue;
    const name = d['defname'];
    const val = constText(d['arg']);
    if (name === 'transaction_read_only' && FALSE_SPELLINGS.test(val)) return true;
    if (name === 'transaction_isolation' && val.toLowerCase() === 'serializable') return true;
  }
  return false;
}

/**
 * The DefElem options of BEGIN / SET TRANSACTION make the transaction READ ONLY. Callers have
 * checked writesOrSerializable first: with SERIALIZABLE (which a standby does not have) the
 * transaction is not one a replica can run.
 */
function readOnlyOptions(options: unknown): boolean {
  for (const o of (options as Node[]) ?? []) {
    const d = o['DefElem'] as Node | undefined;
    if (d?.['defname'] === 'transaction_read_only' && !FALSE_SPELLINGS.test(constText(d['arg']))) return true;
  }
  return false;
}

/**
 * The tables an INSERT/UPDATE/DELETE/MERGE writes (its target and those of its data-modifying
 * CTEs) and the functions it calls (dml_adaptive_object_relationship_list may name them).
 */
function dmlFacts(body: Node): { writes: string[]; functions: string[] } {
  const target = rangeVarName(body['relation']);
  const x = facts(body);
  return { writes: [...(target === '' ? [] : [target]), ...x.writes], functions: x.functions };
}

function classifyStatement(stmt: Node): Classification {
  const [type, body] = Object.entries(stmt)[0] as [string, Node];
  const f = () => facts(body);
  switch (type) {
    case 'SelectStmt': {
      const x = f();
      const extra = { functions: x.functions, relations: x.relations, localSetConfig: x.localConfig };
      if (x.into) {
        const temp = (body['intoClause'] as Node | undefined)?.['rel'] as Node | undefined;
        return classification('primary', 'SELECT INTO', 'ddl', {
          ...extra,
          writes: [rangeVarName(temp)].filter(Boolean),
          createsTemp: temp?.['relpersistence'] === 't' ? [String(temp['relname'])] : [],
        });
      }
      // Locked rows count as written (dml_adaptive): later reads of those tables stay with the lock.
      if (x.locking) return classification('primary', 'SELECT ... FOR UPDATE/SHARE', 'select', { ...extra, writes: x.relations });
      if (x.dml) return classification('primary', 'data-modifying CTE', 'select', { ...extra, writes: x.writes });
      // Pgpool-II balances only text that starts with SELECT, WITH, TABLE or '(': a bare VALUES stays on the primary.
      if (body['valuesLists'] !== undefined)
        return classification('primary', 'VALUES (not balanced, as in Pgpool-II)', 'select', { ...extra, writes: [] });
      return classification('either', 'SELECT', 'select', extra);
    }
    case 'InsertStmt':
      return classification('primary', 'INSERT', 'insert', dmlFacts(body));
    case 'UpdateStmt':
      return classification('primary', 'UPDATE', 'update', dmlFacts(body));
    case 'DeleteStmt':
      return classification('primary', 'DELETE', 'delete', dmlFacts(body));
    case 'MergeStmt':
      return classification('primary', 'MERGE', 'other', dmlFacts(body));
    case 'TruncateStmt':
      return classification('primary', 'Truncate', 'ddl', { writes: rangeVarList(body['relations']) });
    case 'AlterTableStmt':
    case 'IndexStmt': {
      const rel = rangeVarName(body['relation']);
      return classification('primary', type.replace(/Stmt$/, ''), 'ddl', { writes: rel === '' ? null : [rel] });
    }
    case 'CopyStmt': {
      if (body['is_from'] === true) {
        const rel = rangeVarName(body['relation']);
        return classification('primary', 'COPY FROM', 'other', { writes: rel === '' ? null : [rel] });
      }
      const q = body['query'] as Node | undefined;
      if (q && !('SelectStmt' in q)) return classification('primary', 'COPY of a data-modifying query', 'other');
      const x = f();
      if (q && (x.locking || x.dml || x.into)) return classification('primary', 'COPY of a writing query', 'other');
      return classification('either', 'COPY TO', 'other', { functions: x.functions, relations: x.relations });
    }
    case 'VariableShowStmt':
      return classification('either', 'SHOW', 'other');
    case 'VariableSetStmt': {
      const name = String(body['name'] ?? '');
      const kind = body['kind'];
      // SET SESSION CHARACTERISTICS AS TRANSACTION ...: the session's defaults, which outlive any
      // transaction. With one option it sets one default_transaction_* parameter, and is kept and
      // replayed as that parameter's SET (pgJDBC's setTransactionIsolation sends this form).
      if (kind === 'VAR_SET_MULTI' && name === 'SESSION CHARACTERISTICS')
        return writesOrSerializable(body['args'])
          ? classification('primary', 'SET SESSION CHARACTERISTICS READ WRITE/SERIALIZABLE', 'other', { writes: [] })
          : classification('all', 'SET SESSION CHARACTERISTICS', 'other', { setting: characteristicsSetting(body['args']) });
      if (kind === 'VAR_SET_MULTI' && writesOrSerializable(body['args']))
        return classification('primary', 'SET TRANSACTION READ WRITE/SERIALIZABLE', 'other', { writes: [] });
      if (kind === 'VAR_SET_MULTI' && name === 'TRANSACTION' && readOnlyOptions(body['args']))
        return classification('all', 'SET TRANSACTION READ ONLY', 'other', { readOnly: true });
      if (name === 'transaction_read_only' && FALSE_SPELLINGS.test(constText((body['args'] as unknown[])?.[0])))
        return classification('primary', 'SET transaction_read_only to false', 'other', { writes: [] });
      if (name === 'transaction_read_only' && kind === 'VAR_SET_VALUE') return classification('all', 'SET', 'other', { readOnly: true });
      if (
        (name === 'transaction_isolation' || name === 'default_transaction_isolation') &&
        constText((body['args'] as unknown[])?.[0]).toLowerCase() === 'serializable'
      )
        return classification('primary', 'SET isolation SERIALIZABLE', 'other', { writes: [] });
      if (name === 'default_transaction_read_only' && FALSE_SPELLINGS.test(constText((body['args'] as unknown[])?.[0])))
        return classification('all', 'SET', 'other');
      const reset = kind === 'VAR_RESET' || kind === 'VAR_RESET_ALL';
      return classification('all', reset ? 'RESET' : 'SET', 'other', { setting: sessionSetting(body, name) });
    }
    case 'DiscardStmt':
      return classification('all', 'DISCARD', 'other');
    case 'TransactionStmt': {
      const k = String(body['kind']);
      if (k === 'TRANS_STMT_BEGIN' || k === 'TRANS_STMT_START') {
        const pins = writesOrSerializable(body['options']);
        const readOnly = !pins && readOnlyOptions(body['options']);
        return classification('all', pins ? 'BEGIN READ WRITE/SERIALIZABLE' : 'BEGIN', 'other', {
          tx: 'begin',
          pinsTransaction: pins,
          readOnly,
        });
      }
      if (k === 'TRANS_STMT_PREPARE' || k === 'TRANS_STMT_COMMIT_PREPARED' || k === 'TRANS_STMT_ROLLBACK_PREPARED')
        return classification('primary', 'two-phase commit', 'other', { tx: 'end' });
      if (k === 'TRANS_STMT_COMMIT' || k === 'TRANS_STMT_ROLLBACK') return classification('all', 'transaction end', 'other', { tx: 'end' });
      return classification('all', 'savepoint', 'other', { tx: 'savepoint' });
    }
    case 'LockStmt': {
      const mode = Number(body['mode'] ?? 8);
      // ROW EXCLUSIVE (3) or stronger writes; weaker locks go where the transaction is.
      // A strong lock counts as a write of its tables (dml_adaptive keeps their reads with the lock).
      return mode >= 3
        ? classification('primary', 'LOCK ROW EXCLUSIVE or stronger', 'other', { writes: rangeVarList(body['relations']) })
        : classification('all', 'LOCK', 'other');
    }
    case 'PrepareStmt': {
      const inner = classifyStatement(body['query'] as Node);
      const name = String(body['name'] ?? '');
      return inner.target === 'either'
        ? classification('either', 'PREPARE of a read', 'other', { prepare: name, functions: inner.functions, relations: inner.relations })
        : classification('primary', `PREPARE of ${inner.reason}`, 'other', { prepare: name, writes: [] });
    }
    case 'ExecuteStmt':
      return classification('primary', 'EXECUTE', 'other', { execute: String(body['name'] ?? '') });
    case 'DeallocateStmt': {
      const name = body['name'];
      return typeof name === 'string'
        ? classification('primary', 'DEALLOCATE', 'other', { deallocate: name, writes: [] })
        : classification('all', 'DEALLOCATE ALL', 'other', { deallocate: '' });
    }
    case 'ExplainStmt': {
      const analyze = ((body['options'] as Node[]) ?? []).some((o) => (o['DefElem'] as Node | undefined)?.['defname'] === 'analyze');
      const inner = classifyStatement(body['query'] as Node);
      if (!analyze && inner.target === 'either')
        return classification('either', 'EXPLAIN of a read', 'other', { functions: inner.functions, relations: inner.relations });
      return classification('primary', analyze ? 'EXPLAIN ANALYZE' : `EXPLAIN of ${inner.reason}`, 'other');
    }
    case 'CreateStmt': {
      const rel = body['relation'] as Node | undefined;
      const temp = rel?.['relpersistence'] === 't';
      const name = rangeVarName(rel);
      return classification('primary', 'CREATE TABLE', 'ddl', {
        createsTemp: temp ? [String(rel?.['relname'])] : [],
        writes: name === '' ? null : [name],
      });
    }
    case 'CreateTableAsStmt': {
      const rel = (body['into'] as Node | undefined)?.['rel'] as Node | undefined;
      const temp = rel?.['relpersistence'] === 't';
      const name = rangeVarName(rel);
      return classification('primary', 'CREATE TABLE AS', 'ddl', {
        createsTemp: temp ? [String(rel?.['relname'])] : [],
        writes: name === '' ? null : [name],
      });
    }
    case 'DropStmt': {
      const names = ((body['objects'] as unknown[]) ?? []).map((o) =>
        (((o as Node)['List'] as Node | undefined)?.['items'] as unknown[] | undefined)?.map(str).join('.') ?? '',
      );
      return classification('primary', 'DROP', 'ddl', { drops: names.filter(Boolean) });
    }
    case 'DeclareCursorStmt':
      // A cursor WITH HOLD outlives its transaction (transaction pooling pins the session for it).
      return classification('primary', (Number(body['options']) & CURSOR_OPT_HOLD) !== 0 ? 'DECLARECURSOR WITH HOLD' : 'DECLARECURSOR', 'other', {
        writes: [],
      });
    case 'CheckPointStmt':
    case 'ListenStmt':
    case 'UnlistenStmt':
    case 'NotifyStmt':
    case 'LoadStmt':
    case 'FetchStmt':
    case 'ClosePortalStmt':
      // Primary only, but they change no table.
      return classification('primary', type.replace(/Stmt$/, '').toUpperCase(), 'other', { writes: [] });
    case 'CallStmt':
    case 'DoStmt':
    case 'VacuumStmt':
      return classification('primary', type.replace(/Stmt$/, '').toUpperCase(), 'other');
    default:
      return classification('primary', type.replace(/Stmt$/, ''), 'ddl' as StatementKind);
  }
}

/**
 * Parameters whose SET says who the session is, or what its current transaction is: never
 * replayed. The default_transaction_* defaults are, but for SERIALIZABLE and read-write, which
 * are classified before (they keep the session on the primary).
 */
const UNREPLAYED = /^(?:role|session_authorization|transaction_.*)$/;

/**
 * The default_transaction_* parameter that SET SESSION CHARACTERISTICS with this one option sets
 * (ISOLATION LEVEL, READ ONLY, [NOT] DEFERRABLE); undefined for several options.
 */
function characteristicsSetting(options: unknown): SessionSetting | undefined {
  const list = (options as Node[]) ?? [];
  const name = list.length === 1 ? (list[0]!['DefElem'] as Node | undefined)?.['defname'] : undefined;
  return typeof name === 'string' && name.startsWith('transaction_') ? { name: `default_${name}`, reset: false } : undefined;
}

/** What a VariableSetStmt (not SET TRANSACTION, not the special cases above) sets, when it can be replayed. */
function sessionSetting(body: Node, name: string): SessionSetting | undefined {
  if (body['is_local'] === true) return undefined;
  const kind = body['kind'];
  if (kind === 'VAR_RESET_ALL') return { name: '', reset: true };
  if (kind !== 'VAR_SET_VALUE' && kind !== 'VAR_SET_DEFAULT' && kind !== 'VAR_RESET') return undefined;
  const lower = name.toLowerCase();
  if (lower === '' || UNREPLAYED.test(lower)) return undefined;
  return { name: lower, reset: kind !== 'VAR_SET_VALUE' };
}

/** Classifies `sql` with the full parser. Unparsable, over-long and multi-statement text goes to the primary. */
export function classifyByParse(sql: string): Classification {
  if (!ready) return classification('primary', 'parser not loaded yet', 'other');
  if (sql.trim() === '') return classification('either', 'empty query', 'other');
  if (sql.length > MAX_PARSE_LENGTH) return classification('primary', 'statement too long to classify', 'other');
  let stmts: Node[];
  try {
    stmts = ((parseSync(sql) as { stmts?: Array<{ stmt: Node }> }).stmts ?? []).map((s) => s.stmt);
  } catch {
    return classification('primary', 'unparsable statement', 'other');
  }
  if (stmts.length === 0) return classification('either', 'empty query', 'other');
  if (stmts.length > 1) {
    const kinds = stmts.map(classifyStatement);
    return classification('primary', 'multi-statement query', kinds[0]!.kind, {
      parts: kinds,
      // What it writes and calls is what its statements write and call (null: something unknown).
      writes: kinds.some((k) => k.writes === null) ? null : kinds.flatMap((k) => k.writes ?? []),
      functions: kinds.flatMap((k) => k.functions),
      tx: kinds.some((k) => k.tx === 'begin') ? 'begin' : 'none',
      createsTemp: kinds.flatMap((k) => k.createsTemp),
      drops: kinds.flatMap((k) => k.drops),
    });
  }
  return classifyStatement(stmts[0]!);
}
