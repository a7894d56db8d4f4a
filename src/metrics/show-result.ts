// Decodes the reply to one SHOW command (RowDescription, DataRows, CommandComplete or
// ErrorResponse, as Pgpool-II and pgrouter's Admin send them) into named columns and text rows.
// Both feeds of the metrics use it: pgrouter's own Admin replies and a real Pgpool-II's.

import { Backend } from '../protocol/codes.ts';
import { decodeErrorFields, type ErrorFields } from '../protocol/error-response.ts';
import { Framer } from '../protocol/framer.ts';
import { decodeDataRow } from '../protocol/read.ts';

/** One SHOW result set: column names and rows of text ('' for NULL, as Pgpool-II never sends NULL). */
export interface ShowResult {
  readonly columns: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

/** The server answered a SHOW with an ErrorResponse. */
export class ShowError extends Error {
  constructor(readonly fields: ErrorFields) {
    super(fields.message);
    this.name = 'ShowError';
  }
}

function decodeRowDescription(buf: Buffer, start: number, end: number): string[] {
  const n = buf.readInt16BE(start + 5);
  const out: string[] = [];
  let at = start + 7;
  for (let i = 0; i < n && at < end; i++) {
    const stop = buf.indexOf(0, at);
    if (stop < 0 || stop >= end) break;
    out.push(buf.toString('utf8', at, stop));
    at = stop + 1 + 18; // table OID, attnum, type OID, typlen, typmod, format
  }
  return out;
}

/**
 * Collects one simple Query's reply, message by message. Pgpool-II up to 4.3.5 sends the
 * RowDescription of `SHOW pool_version` / `pool_processes` twice: a second RowDescription before
 * any row replaces the first, so the result is the same as from a fixed Pgpool-II.
 */
export class ShowCollector {
  private columns: string[] = [];
  private rows: string[][] = [];
  private error: ErrorFields | undefined;
  private readonly framer = new Framer(() => 0x3fffffff);
  /** ReadyForQuery seen. */
  done = false;

  /** Feeds raw reply bytes (any chunking). Throws FrameError on a broken stream. */
  feed(chunk: Buffer): void {
    this.framer.feed(chunk, (type, buf, start, end) => {
      if (type === Backend.RowDescription) {
        const cols = decodeRowDescription(buf, start, end);
        if (this.rows.length === 0 || cols.join('\0') !== this.columns.join('\0')) this.rows = [];
        this.columns = cols;
      } else if (type === Backend.DataRow) this.rows.push(decodeDataRow(buf, start, end).map((v) => v ?? ''));
      else if (type === Backend.ErrorResponse) this.error ??= decodeErrorFields(buf, start, end);
      else if (type === Backend.ReadyForQuery) this.done = true;
    });
  }

  /** The result, or throws ShowError when the server answered with an error. */
  result(): ShowResult {
    if (this.error) throw new ShowError(this.error);
    return { columns: this.columns, rows: this.rows };
  }
}

/** Decodes a complete reply held in one buffer (pgrouter's Admin output). */
export function decodeShowReply(reply: Buffer): ShowResult {
  const c = new ShowCollector();
  c.feed(reply);
  return c.result();
}

/** The rows of a result as objects keyed by column name (Pgpool2_exporter finds columns by name). */
export function namedRows(r: ShowResult): Array<Record<string, string>> {
  return r.rows.map((row) => {
    const o: Record<string, string> = {};
    r.columns.forEach((c, i) => (o[c] = row[i] ?? ''));
    return o;
  });
}
