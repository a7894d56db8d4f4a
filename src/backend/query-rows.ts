// Runs one simple Query on a backend connection no client is using and collects its rows as
// text (pgrouter's own catalog lookups). An ErrorResponse rejects with the server's message.

import { Backend } from '../protocol/codes.ts';
import { decodeErrorFields } from '../protocol/error-response.ts';
import { Framer } from '../protocol/framer.ts';
import type { ServerConnection } from './connection.ts';
import { sendSimpleQuery } from './simple-query.ts';

/** One result row: text values, null for SQL NULL. */
export type TextRow = readonly (string | null)[];

/** The values of the DataRow message at `buf[start, end)` (header included). */
function dataRow(buf: Buffer, start: number, end: number): (string | null)[] {
  const count = buf.readInt16BE(start + 5);
  const values: (string | null)[] = [];
  let at = start + 7;
  while (values.length < count && at + 4 <= end) {
    const len = buf.readInt32BE(at);
    at += 4;
    if (len < 0) values.push(null);
    else {
      values.push(buf.toString('utf8', at, at + len));
      at += len;
    }
  }
  return values;
}

/**
 * Sends `sql` as a simple Query on `conn` and resolves with the rows of all its result sets.
 * Rejects on an ErrorResponse, a timeout (the connection is then closed) or a lost connection.
 */
export async function queryRows(conn: ServerConnection, sql: string, timeoutMs: number): Promise<TextRow[]> {
  const framer = new Framer(() => 0x3fffffff);
  const rows: TextRow[] = [];
  let error: string | undefined;
  await sendSimpleQuery(
    conn,
    sql,
    timeoutMs,
    (chunk) =>
      framer.feed(chunk, (type, buf, start, end) => {
        if (type === Backend.DataRow) rows.push(dataRow(buf, start, end));
        else if (type === Backend.ErrorResponse) error ??= decodeErrorFields(buf, start, end).message;
      }),
    { timeout: `catalog query timed out after ${timeoutMs} ms`, closed: 'server closed the connection during a catalog query' },
  );
  if (error !== undefined) throw new Error(`catalog query failed: ${error}`);
  return rows;
}
