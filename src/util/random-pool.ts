// Cryptographically random bytes for the per-connection secrets (SCRAM nonces, cancel keys),
// served from a block filled by crypto.randomFillSync: one call into OpenSSL per 4 KiB instead
// of one per login. Bytes are handed out once each, and the block is refilled when used up.

import { randomFillSync } from 'node:crypto';

const BLOCK = 4096;
const block = Buffer.allocUnsafe(BLOCK);
let used = BLOCK;

/** `n` fresh random bytes (a copy, never handed out twice). */
export function randomBytesPooled(n: number): Buffer {
  if (n > BLOCK) return randomFillSync(Buffer.allocUnsafe(n));
  if (used + n > BLOCK) {
    randomFillSync(block);
    used = 0;
  }
  const out = Buffer.from(block.subarray(used, used + n));
  block.fill(0, used, used + n);
  used += n;
  return out;
}

/** A random signed 32-bit integer (cancel-request secrets). */
export function randomInt32Pooled(): number {
  if (used + 4 > BLOCK) {
    randomFillSync(block);
    used = 0;
  }
  const v = block.readInt32BE(used);
  block.fill(0, used, used + 4);
  used += 4;
  return v;
}
