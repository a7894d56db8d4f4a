// Runs one simple Query on a backend connection no client is using and collects its rows as
// text: pgrouter's own queries (catalog lookups, health and replication checks). An
// ErrorResponse is returned with the rows, for the caller to turn into its own error.

import { Backend } from '../protocol/codes.ts';
import { decodeErrorFields, type ErrorFields } from '../protocol/error-response.ts';
import { Framer } from '../protocol/framer.ts';
import { decodeDataRow } from '../protocol/read.ts';
import type { ServerConnection } from './connection.ts';
import { sendSimpleQuery } from './simple-query.ts';

/** One result row: text values, null for SQL NULL. */
export type TextRow = readonly (string | null)[];

/**
 * Sends `sql` as a simple Query on `conn` and resolves with the rows of all its result sets and
 * the first ErrorResponse, if any. Rejects on a timeout (the connection is then closed) or a lost
 * connection, with the messages given.
 */
export async function collectRows(
  conn: ServerConnection,
  sql: string,
  timeoutMs: number,
  messages: { timeout: string; closed: string },
): Promise<{ rows: TextRow[]; error: ErrorFields | undefined }> {
  const collector = new RowCollector();
  await sendSimpleQuery(conn, sql, timeoutMs, (chunk) => collector.feed(chunk), messages);
  return { rows: collector.rows, error: collector.error };
}

/** Reads a reply stream's rows as text, and its first ErrorResponse. */
export class RowCollector {
  private readonly framer = new Framer(() => 0x3fffffff);
  readonly rows: TextRow[] = [];
  error: ErrorFields | undefined;

  feed(chunk: Buffer): void {
    this.framer.feed(chunk, (type, buf, start, end) => {
      if (type === Backend.DataRow) this.rows.push(decodeDataRow(buf, start, end));
      else if (type === Backend.ErrorResponse) this.error ??= decodeErrorFields(buf, start, end);
    });
  }
}

/** collectRows for a catalog lookup: an ErrorResponse rejects with the server's message. */
export async function queryRows(conn: ServerConnection, sql: string, timeoutMs: number): Promise<TextRow[]> {
  const { rows, error } = await collectRows(conn, sql, timeoutMs, {
    timeout: `catalog query timed out after ${timeoutMs} ms`,
    closed: 'server closed the connection during a catalog query',
  });
  if (error !== undefined) throw new Error(`catalog query failed: ${error.message}`);
  return rows;
}
