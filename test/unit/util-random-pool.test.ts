// The pooled random bytes behind SCRAM nonces and cancel keys: right lengths, never the same
// bytes twice, across refills of the block.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytesPooled, randomInt32Pooled } from '../../src/util/random-pool.ts';

test('pooled random bytes: the length asked for, and no two draws alike across many refills', () => {
  const seen = new Set<string>();
  // 18-byte nonces: 2,000 of them use the 4 KiB block up about nine times over.
  for (let i = 0; i < 2000; i++) {
    const b = randomBytesPooled(18);
    assert.equal(b.length, 18);
    seen.add(b.toString('hex'));
  }
  assert.equal(seen.size, 2000);
  assert.equal(randomBytesPooled(10_000).length, 10_000);
  // A draw is a copy: changing it changes no later draw.
  const a = randomBytesPooled(16);
  a.fill(0);
  assert.notDeepEqual(randomBytesPooled(16), a);
});

test('pooled random int32: signed 32-bit values, spread over the range', () => {
  const values = new Set<number>();
  let negative = 0;
  for (let i = 0; i < 2000; i++) {
    const v = randomInt32Pooled();
    assert.ok(Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31, String(v));
    if (v < 0) negative++;
    values.add(v);
  }
  // 2,000 draws from 2^32 values: a repeat is possible but rare (p ≈ 0.0005).
  assert.ok(values.size >= 1998, `only ${values.size} distinct values`);
  assert.ok(negative > 800 && negative < 1200, `${negative} negative of 2000`);
});
