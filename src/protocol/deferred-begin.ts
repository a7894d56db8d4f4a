// The BEGIN pgrouter sends in front of a transaction's first request when it answered the
// client's BEGIN itself (transaction_defer_begin): Parse, Bind and Execute of the unnamed
// statement, with no Sync. Should it fail, the server skips everything up to the next Sync, so
// the client's request never runs outside the transaction it asked for. Also the replies
// pgrouter gives a plain BEGIN, and a COMMIT or ROLLBACK right after it, that it answers itself,
// and the reading of a BEGIN a client sends in the extended protocol (psycopg 3, pgJDBC).

import { Frontend, TxStatus } from './codes.ts';
import { PARSE_COMPLETE } from './statement-names.ts';
import { bind, commandComplete, execute, parse, readyForQuery } from './writer.ts';

/** A deferred BEGIN's messages for the client's text (options included, as it wrote them): the replies are the same for any. */
export function deferredBeginOf(text: string): Buffer {
  return Buffer.concat([parse('', text), bind('', ''), execute('')]);
}

/** The deferred BEGIN's messages for a plain BEGIN. */
export const DEFERRED_BEGIN = deferredBeginOf('BEGIN');

/** Whether a text may be a BEGIN or START TRANSACTION (a cheap test before classifying it). */
export function mayBeBegin(sql: string): boolean {
  return /^\s*(?:begin|start)\b/i.test(sql);
}

/** The first word of a BEGIN or START TRANSACTION with options, which decides its CommandComplete tag. */
export function beginWord(sql: string): 'begin' | 'start' {
  return /^\s*start\b/i.test(sql) ? 'start' : 'begin';
}

/** The replies it gets when it succeeds: ParseComplete, BindComplete and CommandComplete. */
export const DEFERRED_BEGIN_REPLIES = 3;

/**
 * What PostgreSQL answers a plain transaction-control statement with: its CommandComplete (END
 * is a COMMIT, ABORT a ROLLBACK) and ReadyForQuery, in a transaction after BEGIN, idle after the end.
 */
export function transactionControlReply(word: 'begin' | 'start' | 'commit' | 'end' | 'rollback' | 'abort'): Buffer {
  return CONTROL_REPLIES[word];
}

/** The CommandComplete of a BEGIN or START TRANSACTION. */
export function beginComplete(word: 'begin' | 'start'): Buffer {
  return word === 'start' ? START_COMPLETE : BEGIN_COMPLETE;
}

// Built once: a deferred BEGIN is answered with one of these for every transaction (shared
// buffers, never written to).
const BEGIN_COMPLETE = commandComplete('BEGIN');
const START_COMPLETE = commandComplete('START TRANSACTION');
const COMMIT_REPLY = Buffer.concat([commandComplete('COMMIT'), readyForQuery(TxStatus.Idle)]);
const ROLLBACK_REPLY = Buffer.concat([commandComplete('ROLLBACK'), readyForQuery(TxStatus.Idle)]);
const CONTROL_REPLIES = {
  begin: Buffer.concat([BEGIN_COMPLETE, readyForQuery(TxStatus.InTransaction)]),
  start: Buffer.concat([START_COMPLETE, readyForQuery(TxStatus.InTransaction)]),
  commit: COMMIT_REPLY,
  end: COMMIT_REPLY,
  rollback: ROLLBACK_REPLY,
  abort: ROLLBACK_REPLY,
} as const;

/** BindComplete and NoData: with ParseComplete, the replies to an extended-protocol BEGIN's messages. */
const BIND_COMPLETE = Buffer.from([0x32, 0, 0, 0, 4]);
const NO_DATA = Buffer.from([0x6e, 0, 0, 0, 4]);

/** Bytes a BEGIN or START TRANSACTION text may start with (a letter of either case, or white space). */
const BEGIN_START = new Uint8Array(256);
for (const ch of 'bBsS \t\r\n') BEGIN_START[ch.charCodeAt(0)] = 1;
/** Bytes a COMMIT, END, ROLLBACK or ABORT text may start with. */
const END_START = new Uint8Array(256);
for (const ch of 'cCeErRaA \t\r\n') END_START[ch.charCodeAt(0)] = 1;

/** A frame as the dispatchers hold it: the message is `buf[start, end)`. */
type FrameView = readonly [Buffer, number, number];

/**
 * A plain BEGIN (or START TRANSACTION) at the head of an extended-protocol batch, as psycopg 3
 * and pgJDBC send one: Parse of the unnamed statement with no parameter types, Bind of the
 * unnamed portal to it with no parameters, an optional Describe of that portal, and Execute.
 * Returns how many frames it takes, the statement's text and the replies a server would give
 * those messages, or undefined for anything else.
 */
export function leadingBegin(frames: readonly FrameView[]): { count: number; sql: string; replies: Buffer } | undefined {
  return leadingStatement(frames, BEGIN_START);
}

/** The same for a COMMIT, END, ROLLBACK or ABORT sent that way (pgJDBC's commit() and rollback()). */
export function leadingEnd(frames: readonly FrameView[]): { count: number; sql: string; replies: Buffer } | undefined {
  return leadingStatement(frames, END_START);
}

function leadingStatement(frames: readonly FrameView[], starts: Uint8Array): { count: number; sql: string; replies: Buffer } | undefined {
  if (frames.length < 3) return undefined;
  const [pb, ps, pe] = frames[0]!;
  // Parse: '' \0 query \0 Int16 0 (no parameter types).
  if (pb[ps] !== Frontend.Parse || pb[ps + 5] !== 0 || !starts[pb[ps + 6]!]) return undefined;
  const qEnd = pb.indexOf(0, ps + 6);
  if (qEnd < 0 || qEnd + 3 !== pe || pb[qEnd + 1] !== 0 || pb[qEnd + 2] !== 0) return undefined;
  // Bind: '' \0 '' \0, parameter format codes, no parameters, result format codes (libpq sends one).
  const [bb, bs, be] = frames[1]!;
  if (bb[bs] !== Frontend.Bind || be - bs < 13 || bb[bs + 5] !== 0 || bb[bs + 6] !== 0) return undefined;
  const formats = bb.readInt16BE(bs + 7);
  let at = bs + 9 + 2 * formats;
  if (formats < 0 || at + 4 > be || bb.readInt16BE(at) !== 0) return undefined;
  const results = bb.readInt16BE(at + 2);
  at += 4 + 2 * results;
  if (results < 0 || at !== be) return undefined;
  let i = 2;
  let replies = [PARSE_COMPLETE, BIND_COMPLETE];
  const [db, ds, de] = frames[i]!;
  if (db[ds] === Frontend.Describe) {
    if (de - ds !== 7 || db[ds + 5] !== 0x50 || db[ds + 6] !== 0) return undefined; // Describe portal ''
    replies = [...replies, NO_DATA];
    i++;
  }
  const f = frames[i];
  if (f === undefined) return undefined;
  const [eb, es, ee] = f;
  if (eb[es] !== Frontend.Execute || ee - es !== 10 || eb[es + 5] !== 0) return undefined;
  // The text last: this runs for every Sync-ended batch, most of which are not a BEGIN.
  return { count: i + 1, sql: pb.toString('utf8', ps + 6, qEnd), replies: Buffer.concat(replies) };
}
