// pool_mode = transaction below the socket: the lane's reply splitter fed backend bytes (whole,
// and cut at every byte), the statement-name rewriting of Parse/Bind/Describe/Close, and which
// statements may be pipelined, need a lane to themselves, or pin their session.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Lane, type LaneClient } from '../../src/pool/lane.ts';
import type { ServerConnection } from '../../src/backend/connection.ts';
import { parseKey, parseMessage, parseText, statementName, withStatementName } from '../../src/protocol/statement-names.ts';
import { statementMode } from '../../src/client/transaction-dispatch.ts';
import { classify } from '../../src/router/classify.ts';
import { loadParser } from '../../src/router/parse-tree.ts';
import { msg } from './wire-bytes.ts';

const ready = (s: string): Buffer => msg('Z', s);
const cstr = (...parts: string[]): Buffer => Buffer.from(parts.map((p) => p + '\0').join(''));

class Client implements LaneClient {
  got: Buffer[] = [];
  done: number[] = [];
  lost = 0;
  queuedBytes = 0;
  deliver(b: Buffer): void {
    this.got.push(Buffer.from(b));
  }
  onceDrained(cb: () => void): void {
    cb();
  }
  requestDone(_l: Lane, status: number): void {
    this.done.push(status);
  }
  laneLost(): void {
    this.lost++;
  }
  requestsLost = 0;
  requestLost(): void {
    this.requestsLost++;
  }
  get bytes(): Buffer {
    return Buffer.concat(this.got);
  }
}

function fakeConn(): { conn: ServerConnection; written: Buffer[] } {
  const written: Buffer[] = [];
  const conn = {
    txStatus: 0x49,
    sink: null,
    socket: { writableLength: 0, pause() {}, resume() {} },
    write(b: Buffer) {
      written.push(Buffer.from(b));
      return true;
    },
  } as unknown as ServerConnection;
  return { conn, written };
}

const owner = { laneIdle() {}, laneClosed() {} };

describe('lane reply splitting', () => {
  const replyA = Buffer.concat([msg('T', 'rowdesc-a'), msg('D', 'row-a'), msg('C', cstr('SELECT 1')), ready('I')]);
  const replyB = Buffer.concat([msg('1'), msg('2'), msg('D', 'row-b'.repeat(50)), msg('C', cstr('SELECT 1')), ready('I')]);

  for (const step of [0, 1, 3, 7]) {
    test(step === 0 ? 'two clients, one chunk' : `two clients, chunks of ${step} bytes`, () => {
      const { conn } = fakeConn();
      const lane = new Lane(conn, owner);
      const a = new Client();
      const b = new Client();
      lane.request(a, [msg('Q', cstr('select a'))], 0, null, null);
      // b's request had a Parse pgrouter added: its first ParseComplete is not b's.
      lane.request(b, [msg('Q', cstr('select b'))], 1, null, null);
      const all = Buffer.concat([replyA, replyB]);
      if (step === 0) lane.onReply(conn, all);
      else for (let i = 0; i < all.length; i += step) lane.onReply(conn, all.subarray(i, i + step));
      assert.deepEqual(a.bytes, replyA);
      assert.deepEqual(b.bytes, replyB.subarray(5));
      assert.deepEqual(a.done, [0x49]);
      assert.deepEqual(b.done, [0x49]);
      assert.equal(lane.inFlight, 0);
    });
  }

  test('a prefix and a local reply wait for the replies owed before them', () => {
    const { conn } = fakeConn();
    const lane = new Lane(conn, owner);
    const a = new Client();
    lane.request(a, [msg('Q', cstr('select 1'))], 0, null, null);
    lane.request(a, [msg('S')], 0, msg('1'), null);
    lane.local(a, Buffer.concat([msg('C', cstr('SHOW')), ready('T')]));
    assert.equal(a.got.length, 0, 'nothing before the first reply');
    lane.onReply(conn, Buffer.concat([msg('C', cstr('SELECT 1')), ready('T')]));
    assert.deepEqual(a.bytes, Buffer.concat([msg('C', cstr('SELECT 1')), ready('T'), msg('1')]));
    lane.onReply(conn, ready('T'));
    assert.deepEqual(
      a.bytes,
      Buffer.concat([msg('C', cstr('SELECT 1')), ready('T'), msg('1'), ready('T'), msg('C', cstr('SHOW')), ready('T')]),
    );
    assert.deepEqual(a.done, [0x54, 0x54, 0x54]);
  });

  test('a request that fails forgets the statements it registered', () => {
    const { conn } = fakeConn();
    const lane = new Lane(conn, owner);
    const a = new Client();
    lane.statements.set('k-ok', 'pgrouter_x');
    lane.statements.set('k-bad', 'pgrouter_y');
    lane.request(a, [msg('P')], 0, null, ['k-bad']);
    lane.onReply(conn, Buffer.concat([msg('E', 'SERROR\0C42601\0Msyntax\0\0'), ready('I')]));
    assert.equal(lane.statements.has('k-bad'), false);
    assert.equal(lane.statements.get('k-ok'), 'pgrouter_x');
  });

  test('a lane that dies: each request in flight is reported lost once, the holder loses its lane', () => {
    const { conn } = fakeConn();
    let closed = 0;
    const lane = new Lane(conn, { laneIdle() {}, laneClosed: () => void closed++ });
    const a = new Client();
    const b = new Client();
    lane.request(a, [msg('Q', cstr('select 1'))], 0, null, null);
    lane.request(b, [msg('Q', cstr('select 2'))], 0, null, null);
    lane.request(a, [msg('Q', cstr('select 3'))], 0, null, null);
    lane.onServerClose(conn, undefined);
    assert.equal(a.requestsLost, 2);
    assert.equal(b.requestsLost, 1);
    assert.equal(a.lost + b.lost, 0);
    assert.equal(closed, 1);
    const h = new Client();
    const held = new Lane(fakeConn().conn, owner);
    held.holder = h;
    held.request(h, [msg('Q', cstr('select 4'))], 0, null, null);
    held.onServerClose(conn, undefined);
    assert.equal(h.lost, 1);
    assert.equal(h.requestsLost, 0);
  });

  test('requests of one event-loop turn go out in one write', async () => {
    const { conn, written } = fakeConn();
    const lane = new Lane(conn, owner);
    const a = new Client();
    const b = new Client();
    lane.request(a, [msg('Q', cstr('select 1'))], 0, null, null);
    lane.request(b, [msg('Q', cstr('select 2'))], 0, null, null);
    assert.equal(written.length, 0);
    await new Promise((r) => setImmediate(r));
    assert.equal(written.length, 1);
    assert.deepEqual(written[0], Buffer.concat([msg('Q', cstr('select 1')), msg('Q', cstr('select 2'))]));
  });
});

describe('a deferred BEGIN in front of a request (transaction_defer_begin)', () => {
  // What pgrouter writes in front: Parse/Bind/Execute of "BEGIN" in the unnamed statement, no Sync.
  const beginExtended = Buffer.concat([
    msg('P', Buffer.concat([cstr('', 'BEGIN'), Buffer.from([0, 0])])),
    msg('B', Buffer.concat([cstr('', ''), Buffer.from([0, 0, 0, 0, 0, 0])])),
    msg('E', Buffer.concat([cstr(''), Buffer.from([0, 0, 0, 0])])),
  ]);
  const beginReplies = Buffer.concat([msg('1'), msg('2'), msg('C', cstr('BEGIN'))]);
  const update = msg('Q', cstr('UPDATE t SET v = 1'));
  const error = msg('E', 'SERROR\0C57014\0Mcanceling statement due to user request\0\0');

  /** Feeds `bytes` whole and cut into pieces of every size up to 13, each time into a fresh held lane. */
  function feed(opens: 'begin' | 'begin+sync', request: Buffer[], bytes: Buffer, check: (c: Client, written: Buffer) => void): void {
    for (const step of [0, 1, 2, 3, 5, 6, 11, 13]) {
      const { conn, written } = fakeConn();
      const lane = new Lane(conn, owner);
      const c = new Client();
      lane.holder = c;
      lane.request(c, request, 0, null, null, null, true, opens);
      if (step === 0) lane.onReply(conn, bytes);
      else for (let i = 0; i < bytes.length; i += step) lane.onReply(conn, bytes.subarray(i, i + step));
      assert.equal(written.length, 1, 'the BEGIN, the request and the Sync go out in one write');
      check(c, written[0]!);
      assert.equal(lane.inFlight, 0, `step ${step}: the request is done`);
    }
  }

  test('a Query: BEGIN in front, a Sync after; the client sees only its own replies and one ReadyForQuery', () => {
    const own = Buffer.concat([msg('C', cstr('UPDATE 1')), ready('T')]);
    feed('begin+sync', [update], Buffer.concat([beginReplies, own, ready('T')]), (c, written) => {
      assert.deepEqual(written, Buffer.concat([beginExtended, update, msg('S')]));
      assert.deepEqual(c.bytes, own);
      assert.deepEqual(c.done, [0x54]);
    });
  });

  test('a Query that fails inside the transaction: the error and its E status reach the client, the Sync reply does not', () => {
    const own = Buffer.concat([msg('E', 'SERROR\0C22012\0Mdivision by zero\0\0'), ready('E')]);
    feed('begin+sync', [update], Buffer.concat([beginReplies, own, ready('E')]), (c) => {
      assert.deepEqual(c.bytes, own);
      assert.deepEqual(c.done, [0x45]);
    });
  });

  test('the BEGIN itself fails: the server skips the request up to the Sync, so the client gets the error and status I', () => {
    feed('begin+sync', [update], Buffer.concat([msg('1'), error, ready('I')]), (c) => {
      assert.deepEqual(c.bytes, Buffer.concat([error, ready('I')]));
      assert.deepEqual(c.done, [0x49]);
    });
  });

  test('COPY FROM STDIN: the server ignores the Sync during copy-in, so one ReadyForQuery ends the request', () => {
    const own = Buffer.concat([msg('G', Buffer.from([0, 0, 0])), msg('C', cstr('COPY 2')), ready('T')]);
    feed('begin+sync', [msg('Q', cstr('COPY t FROM STDIN'))], Buffer.concat([beginReplies, own]), (c) => {
      assert.deepEqual(c.bytes, own);
      assert.deepEqual(c.done, [0x54]);
    });
  });

  test('an extended-protocol batch ends in its own Sync: no Sync of pgrouter\'s', () => {
    const batch = [msg('B', Buffer.concat([cstr('', 's1'), Buffer.from([0, 0, 0, 0, 0, 0])])), msg('E', Buffer.concat([cstr(''), Buffer.from([0, 0, 0, 0])])), msg('S')];
    const own = Buffer.concat([msg('2'), msg('D', 'row'), msg('C', cstr('SELECT 1')), ready('T')]);
    feed('begin', batch, Buffer.concat([beginReplies, own]), (c, written) => {
      assert.deepEqual(written, Buffer.concat([beginExtended, ...batch]));
      assert.deepEqual(c.bytes, own);
      assert.deepEqual(c.done, [0x54]);
    });
  });

  test('a notice in front of the BEGIN\'s replies still reaches the client', () => {
    const notice = msg('N', 'SWARNING\0C01000\0Mhello\0\0');
    const own = Buffer.concat([msg('C', cstr('UPDATE 1')), ready('T')]);
    feed('begin+sync', [update], Buffer.concat([msg('1'), notice, msg('2'), msg('C', cstr('BEGIN')), own, ready('T')]), (c) => {
      assert.deepEqual(c.bytes, Buffer.concat([notice, own]));
    });
  });
});

describe('statement names', () => {
  const parse = msg('P', Buffer.concat([cstr('stmt1', 'SELECT $1::int'), Buffer.from([0, 1, 0, 0, 0, 23])]));
  const bind = msg('B', Buffer.concat([cstr('portal', 'stmt1'), Buffer.from([0, 0, 0, 0, 0, 0])]));
  const describeS = msg('D', Buffer.concat([Buffer.from('S'), cstr('stmt1')]));
  const describeP = msg('D', Buffer.concat([Buffer.from('P'), cstr('stmt1')]));
  const close = msg('C', Buffer.concat([Buffer.from('S'), cstr('stmt1')]));

  test('reads the statement name of Parse, Bind, Describe S and Close S only', () => {
    for (const m of [parse, bind, describeS, close]) assert.equal(statementName(m, 0, m.length)?.name, 'stmt1');
    assert.equal(statementName(describeP, 0, describeP.length), null);
    const q = msg('Q', cstr('select 1'));
    assert.equal(statementName(q, 0, q.length), null);
  });

  test('rewrites the name and the length, nothing else', () => {
    for (const m of [parse, bind, describeS, close]) {
      const span = statementName(m, 0, m.length)!;
      const out = withStatementName(m, 0, m.length, span, 'pgrouter_12345');
      assert.equal(out.readInt32BE(1), out.length - 1);
      assert.equal(statementName(out, 0, out.length)?.name, 'pgrouter_12345');
      const back = withStatementName(out, 0, out.length, statementName(out, 0, out.length)!, 'stmt1');
      assert.deepEqual(back, m);
    }
  });

  test('a Parse rebuilt from its key under another name keeps text and parameter types', () => {
    const span = statementName(parse, 0, parse.length)!;
    const key = parseKey(parse, 0, parse.length, span);
    assert.equal(parseText(parse, 0, parse.length, span), 'SELECT $1::int');
    const again = parseMessage('stmt1', key);
    assert.deepEqual(again, parse);
  });
});

describe('what may share a connection', async () => {
  await loadParser();
  const cases: Array<[string, number]> = [
    ['SELECT abalance FROM pgbench_accounts WHERE aid = 5', 0],
    ['INSERT INTO t VALUES (1)', 0],
    ['SELECT nextval(\'s\')', 0],
    ['BEGIN', 1],
    ['COMMIT', 1],
    ['SAVEPOINT a', 1],
    ['SELECT 1; SELECT 2', 1],
    ['COPY t FROM STDIN', 1],
    ['SET LOCAL work_mem = \'1MB\'', 1],
    ['SET search_path = app', 0],
    ['RESET ALL', 0],
    ["SET work_mem = '1MB'; SELECT 1", 2],
    // asyncpg's reset when a connection goes back to its pool: no pin (nothing it resets is on a shared lane).
    ['SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;', 1],
    ['BEGIN; RESET ALL; COMMIT', 2],
    ['SELECT pg_advisory_unlock_all()', 0],
    ['SELECT pg_advisory_unlock(1)', 0],
    ['UNLISTEN *', 0],
    ['BEGIN; SET work_mem = 1; COMMIT', 2],
    ['SET ROLE postgres', 2],
    ['DISCARD ALL', 2],
    ['PREPARE p AS SELECT 1', 2],
    ['LISTEN chan', 2],
    ['CREATE TEMP TABLE tt (a int)', 2],
    ['SELECT pg_advisory_lock(1)', 2],
    ['SELECT pg_advisory_xact_lock(1)', 0],
    ['SELECT set_config(\'a.b\', \'1\', false)', 2],
    ['DECLARE c CURSOR WITH HOLD FOR SELECT 1', 2],
  ];
  for (const [sql, want] of cases)
    test(`${sql} → ${['pipelined', 'holds a lane', 'pins the session'][want]}`, () => {
      assert.equal(statementMode(classify(sql), sql), want);
    });
});
