// The deferred BEGIN's reply filter below the socket: a backend's reply bytes, whole and cut at
// every byte, with the lead (ParseComplete, BindComplete, CommandComplete, and the ParseComplete
// of each statement parsed with it) dropped and everything else kept byte for byte.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ReplyLead } from '../../src/protocol/reply-lead.ts';
import { msg } from './wire-bytes.ts';

const BEGIN_LEAD = [msg('1'), msg('2'), msg('C', 'BEGIN\0')];
const reply = Buffer.concat([msg('T', 'rowdesc'), msg('D', 'row'.repeat(40)), msg('C', 'SELECT 1\0'), msg('Z', 'T')]);
const notice = msg('N', 'SNOTICE\0Mhello\0\0');
const notify = msg('A', '\0\0\0\x07chan\0payload\0');
const error = msg('E', 'SERROR\0C57014\0Mcanceling statement due to user request\0\0');

/** Feeds `input` in pieces of `step` bytes (0: whole); returns what the filter kept and how often it reported a failure. */
function run(expect: number, input: Buffer, step: number): { out: Buffer; failed: number; active: boolean } {
  let failed = 0;
  const lead = new ReplyLead(() => failed++);
  lead.expect(expect);
  const kept: Buffer[] = [];
  const pieces = step === 0 ? [input] : Array.from({ length: Math.ceil(input.length / step) }, (_, i) => input.subarray(i * step, (i + 1) * step));
  for (const p of pieces) {
    // Once the lead is gone the connection stops calling the filter: the rest passes untouched.
    if (!lead.active) kept.push(p);
    else kept.push(Buffer.from(lead.take(p)));
  }
  return { out: Buffer.concat(kept), failed, active: lead.active };
}

const STEPS = [0, 1, 2, 3, 4, 5, 6, 7, 11, 13];

describe('deferred BEGIN reply filter', () => {
  for (const step of STEPS) {
    test(`the BEGIN's three replies are dropped, the request's kept (${step === 0 ? 'one chunk' : `chunks of ${step}`})`, () => {
      const r = run(3, Buffer.concat([...BEGIN_LEAD, reply]), step);
      assert.deepEqual(r.out, reply);
      assert.equal(r.failed, 0);
      assert.equal(r.active, false);
    });

    test(`with two statements parsed behind the BEGIN: five replies dropped (${step === 0 ? 'one chunk' : `chunks of ${step}`})`, () => {
      const r = run(5, Buffer.concat([...BEGIN_LEAD, msg('1'), msg('1'), msg('2'), reply]), step);
      // The BindComplete after the five dropped ones is the request's own.
      assert.deepEqual(r.out, Buffer.concat([msg('2'), reply]));
      assert.equal(r.failed, 0);
    });

    test(`a NoticeResponse and a NotificationResponse in the middle of the lead are kept, in order (${step === 0 ? 'one chunk' : `chunks of ${step}`})`, () => {
      const r = run(3, Buffer.concat([notify, msg('1'), notice, msg('2'), msg('C', 'BEGIN\0'), reply]), step);
      assert.deepEqual(r.out, Buffer.concat([notify, notice, reply]));
      assert.equal(r.failed, 0);
    });

    test(`the BEGIN fails: its error is kept and reported once, and nothing after it is dropped (${step === 0 ? 'one chunk' : `chunks of ${step}`})`, () => {
      const rest = Buffer.concat([error, msg('Z', 'I')]);
      const r = run(3, Buffer.concat([msg('1'), rest]), step);
      assert.deepEqual(r.out, rest);
      assert.equal(r.failed, 1);
      assert.equal(r.active, false);
    });
  }

  test('a CommandComplete the lead does not expect any more is kept (the count is exact)', () => {
    const r = run(3, Buffer.concat([...BEGIN_LEAD, msg('C', 'INSERT 0 1\0'), msg('Z', 'T')]), 0);
    assert.deepEqual(r.out, Buffer.concat([msg('C', 'INSERT 0 1\0'), msg('Z', 'T')]));
  });

  test('a length under 4 in the lead is a protocol error', () => {
    const lead = new ReplyLead(() => undefined);
    lead.expect(3);
    const bad = Buffer.from([0x31, 0, 0, 0, 2]);
    assert.throws(() => lead.take(bad), /invalid message length/);
  });
});
