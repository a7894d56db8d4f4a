// PGPOOL SET <param> {=|TO} <value> and PGPOOL RESET <param>|ALL: a session's own values of the
// parameters of context 'session' (the ones Pgpool-II lets a session change). Replies as Pgpool-II:
// CommandComplete SET (RESET ALL: RESET); errors with PostgreSQL's SQLSTATEs for SET.

import { resolveName } from '../config/settings.ts';
import type { SessionOverrides } from '../config/session-overrides.ts';
import { convertValue } from '../config/values.ts';
import { SqlState } from '../errors/sqlstate.ts';
import { commandComplete, errorResponse } from '../protocol/writer.ts';
import { errorReply } from './result-set.ts';

/** Anything that starts like PGPOOL SET / PGPOOL RESET (answered here, even when malformed). */
export const PGPOOL_SET_OR_RESET = /^\s*pgpool\s+(set|reset)\b/i;

const SET = /^\s*pgpool\s+set\s+("?)([a-z_][a-z0-9_]*)\1\s*(?:=|\s+to\s)\s*(.*?)\s*;?\s*$/is;
const RESET = /^\s*pgpool\s+reset\s+("?)([a-z_][a-z0-9_]*)\1\s*;?\s*$/i;
const CACHE_DELETE = /^\s*pgpool\s+set\s+cache\s+delete\b/i;

/** A value as written: 'quoted' (with '' for a quote), or a bare word or number. */
function unquote(text: string): string | undefined {
  const q = /^'((?:[^']|'')*)'$/s.exec(text);
  if (q) return q[1]!.replace(/''/g, "'");
  if (text === '' || /[\s';]/.test(text)) return undefined;
  return text;
}

type Resolved = { ok: true; name: string } | { ok: false; reply: Buffer };

/** The table name of a session-settable parameter, or the error for any other name. */
function sessionParameter(raw: string): Resolved {
  const r = resolveName(raw);
  if (!r.def) {
    if (r.reason === 'unknown')
      return { ok: false, reply: errorReply(SqlState.UNDEFINED_OBJECT, `unrecognized configuration parameter "${raw.toLowerCase()}"`) };
    return { ok: false, reply: notSettable(raw.toLowerCase()) };
  }
  if (r.def.context !== 'session' || r.index !== undefined) return { ok: false, reply: notSettable(r.key) };
  return { ok: true, name: r.def.name };
}

function notSettable(name: string): Buffer {
  return errorResponse({
    severity: 'ERROR',
    code: SqlState.CANT_CHANGE_RUNTIME_PARAM,
    message: `parameter "${name}" cannot be changed now`,
    hint: 'PGPOOL SET changes only the session parameters (client_idle_limit, log_statement, allow_sql_comments, ...); set this one in pgpool.conf and reload.',
  });
}

/** The reply to a PGPOOL SET / RESET statement; `overrides` is the session's own values. */
export function pgpoolSetOrReset(sql: string, overrides: SessionOverrides | undefined): Buffer {
  if (CACHE_DELETE.test(sql)) return errorReply(SqlState.FEATURE_NOT_SUPPORTED, 'pgrouter has no query cache: PGPOOL SET CACHE DELETE has nothing to delete');
  if (!overrides) return errorReply(SqlState.FEATURE_NOT_SUPPORTED, 'PGPOOL SET is not available here');
  const reset = RESET.exec(sql);
  if (reset) {
    const raw = reset[2]!;
    if (raw.toLowerCase() === 'all') {
      overrides.resetAll();
      return commandComplete('RESET');
    }
    const p = sessionParameter(raw);
    if (!p.ok) return p.reply;
    overrides.reset(p.name);
    return commandComplete('SET');
  }
  const set = SET.exec(sql);
  if (!set) return errorReply(SqlState.SYNTAX_ERROR, 'syntax error in PGPOOL SET: expected PGPOOL SET <parameter> = <value> or PGPOOL RESET <parameter> | ALL');
  const p = sessionParameter(set[2]!);
  if (!p.ok) return p.reply;
  const written = set[3]!;
  if (/^default$/i.test(written)) {
    overrides.reset(p.name);
    return commandComplete('SET');
  }
  const text = unquote(written);
  const def = resolveName(p.name).def!;
  const v = text === undefined ? ({ ok: false } as const) : convertValue(def, text);
  if (!v.ok)
    return errorResponse({
      severity: 'ERROR',
      code: SqlState.INVALID_PARAMETER_VALUE,
      message: `invalid value for parameter "${p.name}": "${written}"`,
      hint: v.hint,
    });
  overrides.set(p.name, v.value);
  return commandComplete('SET');
}
