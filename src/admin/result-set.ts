// Builds the replies of pgrouter's own commands the way Pgpool-II sends them: RowDescription with
// all-text columns of type OID 0, one DataRow per row (empty strings, never NULL), CommandComplete
// `SELECT n`; or an ErrorResponse. The dispatcher adds ReadyForQuery 'I'.

import * as w from '../protocol/writer.ts';

/** A complete result set: RowDescription, DataRows, CommandComplete. */
export function resultSet(columns: readonly string[], rows: readonly (readonly string[])[]): Buffer {
  const parts = [w.rowDescription(columns)];
  for (const r of rows) parts.push(w.dataRow(r));
  parts.push(w.commandComplete(`SELECT ${rows.length}`));
  return Buffer.concat(parts);
}

/** An ERROR reply (the session goes on). */
export function errorReply(code: string, message: string): Buffer {
  return w.errorResponse({ severity: 'ERROR', code, message });
}
