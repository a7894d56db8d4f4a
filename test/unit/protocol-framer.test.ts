// The framer and the reply scanner against every split point of a message stream and a one-byte drip.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Framer, FrameError } from '../../src/protocol/framer.ts';
import { ReplyScanner } from '../../src/protocol/reply-scanner.ts';
import * as w from '../../src/protocol/writer.ts';

const stream = Buffer.concat([
  w.query('SELECT 1'),
  w.terminate(),
  w.dataRow(['x'.repeat(300), null, 'é']),
  w.readyForQuery(0x49),
  w.parameterStatus('TimeZone', 'UTC'),
  w.errorResponse({ severity: 'ERROR', code: '42601', message: 'syntax error' }),
  w.commandComplete('SELECT 1'),
]);
const expected = [0x51, 0x58, 0x44, 0x5a, 0x53, 0x45, 0x43];

function frameAll(chunks: Buffer[]): { types: number[]; bytes: Buffer } {
  const f = new Framer(() => 1 << 20);
  const types: number[] = [];
  const out: Buffer[] = [];
  for (const c of chunks)
    f.feed(c, (t, b, s, e) => {
      types.push(t);
      out.push(Buffer.from(b.subarray(s, e)));
    });
  assert.equal(f.buffered, 0);
  return { types, bytes: Buffer.concat(out) };
}

test('framer: every split point yields the same messages', () => {
  for (let i = 0; i <= stream.length; i++) {
    for (const j of [i, Math.min(stream.length, i + 3), Math.min(stream.length, i + 200)]) {
      const r = frameAll([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]);
      assert.deepEqual(r.types, expected, `split at ${i}/${j}`);
      assert.ok(r.bytes.equals(stream), `bytes at ${i}/${j}`);
    }
  }
});

test('framer: one-byte drip', () => {
  const chunks: Buffer[] = [];
  for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1));
  const r = frameAll(chunks);
  assert.deepEqual(r.types, expected);
  assert.ok(r.bytes.equals(stream));
});

test('framer: a message inside one chunk is a view, not a copy', () => {
  const f = new Framer(() => 1 << 20);
  let same = false;
  f.feed(stream, (t, b) => {
    if (t === 0x51) same = b === stream;
  });
  assert.ok(same);
});

test('framer: rejects lengths under 4 and over the limit', () => {
  const bad = Buffer.from([0x51, 0, 0, 0, 3]);
  assert.throws(() => new Framer(() => 100).feed(bad, () => {}), FrameError);
  const big = Buffer.from([0x51, 0, 0, 1, 0]);
  assert.throws(() => new Framer(() => 100).feed(big, () => {}), FrameError);
  // and when the oversized header itself straddles chunks
  const f = new Framer(() => 100);
  f.feed(big.subarray(0, 2), () => {});
  assert.throws(() => f.feed(big.subarray(2), () => {}), FrameError);
});

test('reply scanner: every split point finds the interesting messages whole', () => {
  const interest = new Uint8Array(256);
  interest[0x5a] = 1;
  interest[0x45] = 1;
  interest[0x53] = 1;
  const want = [
    w.readyForQuery(0x49),
    w.parameterStatus('TimeZone', 'UTC'),
    w.errorResponse({ severity: 'ERROR', code: '42601', message: 'syntax error' }),
  ];
  for (let i = 0; i <= stream.length; i++) {
    for (const j of [i, Math.min(stream.length, i + 1), Math.min(stream.length, i + 7)]) {
      const s = new ReplyScanner(interest);
      const got: Buffer[] = [];
      for (const c of [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)])
        s.scan(c, (_t, b, st, e) => got.push(Buffer.from(b.subarray(st, e))));
      assert.equal(got.length, 3, `split ${i}/${j}`);
      got.forEach((g, k) => assert.ok(g.equals(want[k]!), `message ${k} at ${i}/${j}`));
      assert.ok(s.atBoundary);
    }
  }
  const drip = new ReplyScanner(interest);
  const got: number[] = [];
  for (let i = 0; i < stream.length; i++) drip.scan(stream.subarray(i, i + 1), (t) => got.push(t));
  assert.deepEqual(got, [0x5a, 0x53, 0x45]);
});
