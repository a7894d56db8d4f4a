// Cryptographically random bytes for the per-connection secrets (SCRAM nonces, md5 salts, cancel
// keys), served from a block filled by crypto.randomFillSync: one call into OpenSSL per 4 KiB
// instead of one per login. Bytes are handed out once each, and the block is refilled when used up.

import { randomFillSync } from 'node:crypto';

const BLOCK = 4096;
const block = Buffer.allocUnsafe(BLOCK);
let used = BLOCK;

/** Reserves `n` (≤ BLOCK) unused bytes of the block and returns where they start; `forget` zeroes them once read. */
function take(n: number): number {
  if (used + n > BLOCK) {
    randomFillSync(block);
    used = 0;
  }
  const at = used;
  used += n;
  return at;
}

function forget(at: number, n: number): void {
  block.fill(0, at, at + n);
}

/** `n` fresh random bytes (a copy, never handed out twice). */
export function randomBytesPooled(n: number): Buffer {
  if (n > BLOCK) return randomFillSync(Buffer.allocUnsafe(n));
  const at = take(n);
  const out = Buffer.from(block.subarray(at, at + n));
  forget(at, n);
  return out;
}

/** A random signed 32-bit integer (cancel-request secrets). */
export function randomInt32Pooled(): number {
  const at = take(4);
  const v = block.readInt32BE(at);
  forget(at, 4);
  return v;
}
