// Reading a BEGIN at the head of an extended-protocol batch (leadingBegin), and a COMMIT or
// ROLLBACK sent the same way (leadingEnd, pgJDBC's commit()), below the socket: the
// shapes psycopg 3 and pgJDBC send are recognised with the replies a server would give them,
// and anything that a server would answer differently (a named statement, parameters, a named
// portal, a Describe of the statement) is left to the server.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { leadingBegin, leadingEnd } from '../../src/protocol/deferred-begin.ts';
import { msg } from './wire-bytes.ts';

const z = (s: string): string => `${s}\0`;
const i16 = (...ns: number[]): Buffer => Buffer.concat(ns.map((n) => Buffer.from([(n >> 8) & 0xff, n & 0xff])));
const i32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const parse = (name: string, sql: string, types: number[] = []): Buffer =>
  msg('P', Buffer.concat([Buffer.from(z(name) + z(sql)), i16(types.length), ...types.map(i32)]));
/** Bind with no parameter formats, `params` parameters of one byte each, and these result formats. */
const bind = (portal: string, stmt: string, results: number[] = [], params = 0): Buffer =>
  msg('B', Buffer.concat([Buffer.from(z(portal) + z(stmt)), i16(0), i16(params), ...Array.from({ length: params }, () => Buffer.concat([i32(1), Buffer.from('x')])), i16(results.length, ...results)]));
const describePortal = (portal: string): Buffer => msg('D', `P${z(portal)}`);
const describeStatement = (stmt: string): Buffer => msg('D', `S${z(stmt)}`);
const execute = (portal: string): Buffer => msg('E', Buffer.concat([Buffer.from(z(portal)), i32(0)]));
const sync = msg('S');

/** The frames of a batch as the dispatchers hold them: each message in a buffer of its own, at an offset. */
function frames(...messages: Buffer[]): Array<[Buffer, number, number]> {
  return messages.map((m) => [Buffer.concat([Buffer.from('junk'), m, Buffer.from('more')]), 4, 4 + m.length]);
}

const PARSE_COMPLETE = msg('1');
const BIND_COMPLETE = msg('2');
const NO_DATA = msg('n');

test('psycopg 3, pgJDBC and plain shapes of a leading BEGIN are read, with the replies a server gives them', () => {
  const psycopg = leadingBegin(frames(parse('', 'BEGIN'), bind('', '', [0]), describePortal(''), execute(''), sync));
  assert.deepEqual(psycopg && { ...psycopg, replies: psycopg.replies.toString('hex') }, {
    count: 4,
    sql: 'BEGIN',
    replies: Buffer.concat([PARSE_COMPLETE, BIND_COMPLETE, NO_DATA]).toString('hex'),
  });
  const jdbc = leadingBegin(frames(parse('', 'BEGIN'), bind('', ''), execute(''), parse('', 'SELECT 1'), bind('', ''), execute(''), sync));
  assert.equal(jdbc?.count, 3);
  assert.equal(jdbc?.sql, 'BEGIN');
  assert.deepEqual(jdbc?.replies, Buffer.concat([PARSE_COMPLETE, BIND_COMPLETE]));
  // Binary result format codes change nothing for a statement without a result.
  assert.equal(leadingBegin(frames(parse('', 'start transaction'), bind('', '', [1, 1]), execute(''), sync))?.sql, 'start transaction');
});

test('anything a server would answer differently is left to it', () => {
  const cases: Record<string, Buffer[]> = {
    'a named statement': [parse('s1', 'BEGIN'), bind('', 's1'), execute(''), sync],
    'parameter types': [parse('', 'BEGIN', [23]), bind('', ''), execute(''), sync],
    'a parameter': [parse('', 'BEGIN'), bind('', '', [], 1), execute(''), sync],
    'a named portal': [parse('', 'BEGIN'), bind('p1', ''), execute('p1'), sync],
    'a Describe of the statement': [parse('', 'BEGIN'), bind('', ''), describeStatement(''), execute(''), sync],
    'a Describe of another portal': [parse('', 'BEGIN'), bind('', ''), describePortal('p1'), execute(''), sync],
    'no Execute': [parse('', 'BEGIN'), bind('', ''), sync],
    'a Parse alone': [parse('', 'BEGIN')],
    'a Bind first': [bind('', ''), parse('', 'BEGIN'), execute(''), sync],
  };
  for (const [what, batch] of Object.entries(cases)) assert.equal(leadingBegin(frames(...batch)), undefined, what);
  // A Bind whose length disagrees with its counts is not read past its end.
  const short = bind('', '', [0]).subarray(0, -2);
  short.writeInt32BE(short.length - 1, 1);
  assert.equal(leadingBegin(frames(parse('', 'BEGIN'), short, execute(''), sync)), undefined, 'a truncated Bind');
});

test('a COMMIT, END, ROLLBACK or ABORT in the same shape (pgJDBC commit() and rollback()); a BEGIN is not one', () => {
  for (const sql of ['COMMIT', 'ROLLBACK', 'end', 'abort']) {
    const lead = leadingEnd(frames(parse('', sql), bind('', ''), execute(''), sync));
    assert.deepEqual(lead && { count: lead.count, sql: lead.sql, replies: lead.replies }, { count: 3, sql, replies: Buffer.concat([PARSE_COMPLETE, BIND_COMPLETE]) }, sql);
  }
  const described = leadingEnd(frames(parse('', 'ROLLBACK'), bind('', ''), describePortal(''), execute(''), sync));
  assert.equal(described?.count, 4);
  assert.deepEqual(described?.replies, Buffer.concat([PARSE_COMPLETE, BIND_COMPLETE, NO_DATA]));
  assert.equal(leadingEnd(frames(parse('', 'BEGIN'), bind('', ''), execute(''), sync)), undefined, 'BEGIN');
  assert.equal(leadingEnd(frames(parse('s1', 'COMMIT'), bind('', 's1'), execute(''), sync)), undefined, 'a named statement');
  assert.equal(leadingBegin(frames(parse('', 'COMMIT'), bind('', ''), execute(''), sync)), undefined, 'leadingBegin of a COMMIT');
});
