// Builders for the messages pgrouter writes itself, to clients (authentication requests,
// ParameterStatus, BackendKeyData, ReadyForQuery, ErrorResponse, result sets) and to backends
// (StartupMessage, PasswordMessage, SASL responses, Query, Parse, Bind, Execute, Sync,
// CancelRequest). Pure, no I/O.

import { AuthCode, RequestCode } from './codes.ts';

function header(type: number, bodyLen: number): Buffer {
  const b = Buffer.allocUnsafe(5 + bodyLen);
  b[0] = type;
  b.writeInt32BE(4 + bodyLen, 1);
  return b;
}

/** A message made of NUL-terminated strings, then `zeros` zero bytes (counts of empty lists, a zero row limit). */
function cstringsThenZeros(type: number, zeros: number, ...parts: string[]): Buffer {
  let len = zeros;
  for (const p of parts) len += Buffer.byteLength(p) + 1;
  const b = header(type, len);
  let at = 5;
  for (const p of parts) {
    at += b.write(p, at);
    b[at++] = 0;
  }
  b.fill(0, at);
  return b;
}

/** A message made of NUL-terminated strings. */
const cstrings = (type: number, ...parts: string[]): Buffer => cstringsThenZeros(type, 0, ...parts);

function authInt(code: number, extra?: Buffer): Buffer {
  const b = header(0x52, 4 + (extra?.length ?? 0));
  b.writeInt32BE(code, 5);
  extra?.copy(b, 9);
  return b;
}

export const authenticationOk = (): Buffer => authInt(AuthCode.Ok);
export const authenticationCleartextPassword = (): Buffer => authInt(AuthCode.CleartextPassword);
export const authenticationMD5Password = (salt: Buffer): Buffer => authInt(AuthCode.MD5Password, salt);
/** AuthenticationSASL listing the offered mechanisms. */
export function authenticationSASL(mechanisms: readonly string[]): Buffer {
  const list = Buffer.from(mechanisms.map((m) => m + '\0').join('') + '\0');
  return authInt(AuthCode.SASL, list);
}
export const authenticationSASLContinue = (data: string): Buffer =>
  authInt(AuthCode.SASLContinue, Buffer.from(data));
export const authenticationSASLFinal = (data: string): Buffer => authInt(AuthCode.SASLFinal, Buffer.from(data));

export const parameterStatus = (name: string, value: string): Buffer => cstrings(0x53, name, value);

export function backendKeyData(pid: number, secret: number): Buffer {
  const b = header(0x4b, 8);
  b.writeInt32BE(pid | 0, 5);
  b.writeInt32BE(secret | 0, 9);
  return b;
}

export function readyForQuery(status: number): Buffer {
  const b = header(0x5a, 1);
  b[5] = status;
  return b;
}

/** Fields of an ErrorResponse or NoticeResponse. */
export interface NoticeFields {
  severity: string;
  code: string;
  message: string;
  detail?: string | undefined;
  hint?: string | undefined;
}

function noticeLike(type: number, f: NoticeFields): Buffer {
  const fields = ['S' + f.severity, 'V' + f.severity, 'C' + f.code, 'M' + f.message];
  if (f.detail !== undefined) fields.push('D' + f.detail);
  if (f.hint !== undefined) fields.push('H' + f.hint);
  // The empty last string adds the NUL that ends the field list.
  return cstrings(type, ...fields, '');
}

export const errorResponse = (f: NoticeFields): Buffer => noticeLike(0x45, f);
export const noticeResponse = (f: NoticeFields): Buffer => noticeLike(0x4e, f);

/** RowDescription for all-text columns with type OID 0, as Pgpool-II's own SHOW results have. */
export function rowDescription(columns: readonly string[], typeOid = 0): Buffer {
  let len = 2;
  for (const c of columns) len += Buffer.byteLength(c) + 1 + 18;
  const b = header(0x54, len);
  b.writeInt16BE(columns.length, 5);
  let at = 7;
  columns.forEach((c, i) => {
    at += b.write(c, at);
    b[at++] = 0;
    b.writeInt32BE(0, at); // table OID
    b.writeInt16BE(i, at + 4); // attribute number
    b.writeInt32BE(typeOid, at + 6);
    b.writeInt16BE(-1, at + 10); // typlen
    b.writeInt32BE(0, at + 12); // typmod
    b.writeInt16BE(0, at + 16); // text format
    at += 18;
  });
  return b;
}

/** DataRow of text values; null becomes SQL NULL. */
export function dataRow(values: readonly (string | null)[]): Buffer {
  let len = 2;
  for (const v of values) len += 4 + (v === null ? 0 : Buffer.byteLength(v));
  const b = header(0x44, len);
  b.writeInt16BE(values.length, 5);
  let at = 7;
  for (const v of values) {
    if (v === null) {
      b.writeInt32BE(-1, at);
      at += 4;
    } else {
      const n = b.write(v, at + 4);
      b.writeInt32BE(n, at);
      at += 4 + n;
    }
  }
  return b;
}

export const commandComplete = (tag: string): Buffer => cstrings(0x43, tag);
export const emptyQueryResponse = (): Buffer => header(0x49, 0);

// ---- frontend messages (pgrouter as a client of a backend) ----

/** StartupMessage for protocol 3.0 with the given parameters. */
export function startupMessage(params: Readonly<Record<string, string>>): Buffer {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(params)) parts.push(k, v);
  let len = 4 + 4 + 1;
  for (const p of parts) len += Buffer.byteLength(p) + 1;
  const b = Buffer.allocUnsafe(len);
  b.writeInt32BE(len, 0);
  b.writeInt32BE(RequestCode.Protocol3, 4);
  let at = 8;
  for (const p of parts) {
    at += b.write(p, at);
    b[at++] = 0;
  }
  b[at] = 0;
  return b;
}

export function sslRequest(): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(RequestCode.SSLRequest, 4);
  return b;
}

export function cancelRequest(pid: number, secret: number): Buffer {
  const b = Buffer.allocUnsafe(16);
  b.writeInt32BE(16, 0);
  b.writeInt32BE(RequestCode.CancelRequest, 4);
  b.writeInt32BE(pid | 0, 8);
  b.writeInt32BE(secret | 0, 12);
  return b;
}

export const passwordMessage = (password: string): Buffer => cstrings(0x70, password);

export function saslInitialResponse(mechanism: string, data: string): Buffer {
  const mech = Buffer.byteLength(mechanism) + 1;
  const payload = Buffer.from(data);
  const b = header(0x70, mech + 4 + payload.length);
  let at = 5 + b.write(mechanism, 5);
  b[at++] = 0;
  b.writeInt32BE(payload.length, at);
  payload.copy(b, at + 4);
  return b;
}

export function saslResponse(data: string): Buffer {
  const payload = Buffer.from(data);
  const b = header(0x70, payload.length);
  payload.copy(b, 5);
  return b;
}

export const query = (sql: string): Buffer => cstrings(0x51, sql);

export function terminate(): Buffer {
  return header(0x58, 0);
}

/** NegotiateProtocolVersion: the newest minor version supported and the options not recognised. */
export function negotiateProtocolVersion(minor: number, unrecognized: readonly string[]): Buffer {
  let len = 8;
  for (const o of unrecognized) len += Buffer.byteLength(o) + 1;
  const b = header(0x76, len);
  b.writeInt32BE(minor, 5);
  b.writeInt32BE(unrecognized.length, 9);
  let at = 13;
  for (const o of unrecognized) {
    at += b.write(o, at);
    b[at++] = 0;
  }
  return b;
}

export function sync(): Buffer {
  return header(0x53, 0);
}

/** Parse of `sql` as statement `name`, with no parameter types given. */
export const parse = (name: string, sql: string): Buffer => cstringsThenZeros(0x50, 2, name, sql);

/** Bind of statement `statement` to portal `portal`: no parameters, no parameter or result formats (text). */
export const bind = (portal: string, statement: string): Buffer => cstringsThenZeros(0x42, 6, portal, statement);

/** Execute of portal `portal`, all its rows (a row limit of 0). */
export const execute = (portal: string): Buffer => cstringsThenZeros(0x45, 4, portal);
