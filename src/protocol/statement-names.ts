// Reads and rewrites the prepared-statement name in the extended-protocol messages that carry one
// (Parse, Bind, Describe 'S', Close 'S'). Transaction pooling shares a backend connection between
// clients, so each client's statement names are mapped to names unique on that connection. Pure.

import { Frontend } from './codes.ts';

/** Where the statement name of a Parse/Bind/Describe/Close message lies, or null when it names none. */
export interface NameSpan {
  readonly name: string;
  /** Offset of the name's first byte in the buffer, and of its terminating NUL. */
  readonly at: number;
  readonly nul: number;
}

/**
 * The statement name of a message `buf[start, end)`: Parse's name, Bind's source statement,
 * Describe/Close of kind 'S'. Null for a portal Describe/Close, any other type, or a malformed
 * message (then nothing is rewritten and the server judges it).
 */
export function statementName(buf: Buffer, start: number, end: number): NameSpan | null {
  const type = buf[start];
  let at = start + 5;
  if (type === Frontend.Bind) {
    const portalEnd = buf.indexOf(0, at);
    if (portalEnd < 0 || portalEnd >= end) return null;
    at = portalEnd + 1;
  } else if (type === Frontend.Describe || type === Frontend.Close) {
    if (buf[at] !== 0x53) return null; // 'P' names a portal
    at += 1;
  } else if (type !== Frontend.Parse) return null;
  const nul = buf.indexOf(0, at);
  if (nul < 0 || nul >= end) return null;
  return { name: buf.toString('utf8', at, nul), at, nul };
}

/** The message `buf[start, end)` with the name at `span` replaced by `name` (a new buffer). */
export function withStatementName(buf: Buffer, start: number, end: number, span: NameSpan, name: string): Buffer {
  const nameLen = Buffer.byteLength(name);
  const out = Buffer.allocUnsafe(end - start - (span.nul - span.at) + nameLen);
  buf.copy(out, 0, start, span.at);
  let o = span.at - start;
  o += out.write(name, o);
  buf.copy(out, o, span.nul, end);
  out.writeInt32BE(out.length - 1, 1);
  return out;
}

/**
 * What identifies a Parse on a backend connection: its query text and parameter types (the bytes
 * after the name). Two clients' Parses with equal keys can share one server-side statement.
 */
export function parseKey(buf: Buffer, start: number, end: number, span: NameSpan): string {
  return buf.toString('latin1', span.nul + 1, end);
}

/** The query text of a Parse message, or null when it is malformed. */
export function parseText(buf: Buffer, start: number, end: number, span: NameSpan): string | null {
  const qEnd = buf.indexOf(0, span.nul + 1);
  if (qEnd < 0 || qEnd >= end) return null;
  return buf.toString('utf8', span.nul + 1, qEnd);
}

/** A Parse message naming `name`, rebuilt from a parse key (see parseKey). */
export function parseMessage(name: string, key: string): Buffer {
  const nameLen = Buffer.byteLength(name);
  const body = Buffer.from(key, 'latin1');
  const out = Buffer.allocUnsafe(5 + nameLen + 1 + body.length);
  out[0] = Frontend.Parse;
  out.writeInt32BE(out.length - 1, 1);
  out.write(name, 5);
  out[5 + nameLen] = 0;
  body.copy(out, 6 + nameLen);
  return out;
}

/** ParseComplete, answered for a Parse the backend connection already holds. */
export const PARSE_COMPLETE = Buffer.from([0x31, 0, 0, 0, 4]);

/** Close of the prepared statement `name`. */
export function closeStatement(name: string): Buffer {
  const nameLen = Buffer.byteLength(name);
  const out = Buffer.allocUnsafe(7 + nameLen);
  out[0] = Frontend.Close;
  out.writeInt32BE(out.length - 1, 1);
  out[5] = 0x53; // 'S'
  out.write(name, 6);
  out[6 + nameLen] = 0;
  return out;
}
