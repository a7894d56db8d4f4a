// Unit tests for src/auth/md5.ts: PostgreSQL's stored md5 form and the salted md5 response.
// Expected values were computed independently at the shell (md5sum, and pgpool's pg_md5 -m).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isMd5Hash, md5PasswordHash, md5Response, verifyMd5Response } from '../../src/auth/md5.ts';

// printf 'pencilpostgres' | md5sum  (pg_md5 -m -u postgres pencil writes the same into pool_passwd)
const PENCIL_POSTGRES = 'md54c21b325d75177d5e9b9789a50ab0c9c';

test('md5PasswordHash matches md5sum of password‖user', () => {
  assert.equal(md5PasswordHash('pencil', 'postgres'), PENCIL_POSTGRES);
  // printf '%s' 'pässwordalice' | md5sum : UTF-8 bytes, as a UTF-8 client sends them
  assert.equal(md5PasswordHash('pässword', 'alice'), 'md579c82f4bb4567a2b00dfc772f4734307');
  assert.ok(isMd5Hash(md5PasswordHash('x', 'y')));
});

test('md5Response matches md5sum of hash-hex‖salt', () => {
  // { printf '4c21b3...0c9c'; printf 'abcd'; } | md5sum
  assert.equal(md5Response(PENCIL_POSTGRES, Buffer.from('abcd')), 'md58a3daaa59510cdc1237e1eb10301ff1c');
  // binary salt 01 02 fe ff
  assert.equal(md5Response(PENCIL_POSTGRES, Buffer.from([0x01, 0x02, 0xfe, 0xff])), 'md5b811cda93d3213f69c6e06072be7f5fd');
});

test('verifyMd5Response accepts the right response and rejects others', () => {
  const salt = Buffer.from('abcd');
  assert.equal(verifyMd5Response(PENCIL_POSTGRES, salt, 'md58a3daaa59510cdc1237e1eb10301ff1c'), true);
  assert.equal(verifyMd5Response(PENCIL_POSTGRES, Buffer.from('abce'), 'md58a3daaa59510cdc1237e1eb10301ff1c'), false);
  assert.equal(verifyMd5Response(PENCIL_POSTGRES, salt, 'md58a3daaa59510cdc1237e1eb10301ff1d'), false);
  assert.equal(verifyMd5Response(PENCIL_POSTGRES, salt, ''), false);
  assert.equal(verifyMd5Response(PENCIL_POSTGRES, salt, 'md58a3daaa59510cdc1237e1eb10301ff1c0'), false);
  // a client that sends the stored hash itself (pass-the-hash without the salt) is rejected
  assert.equal(verifyMd5Response(PENCIL_POSTGRES, salt, PENCIL_POSTGRES), false);
});

test('md5Response rejects a malformed stored hash or salt without echoing the hash', () => {
  const bogus = 'md5-not-a-hash-SECRETSECRETSECRET';
  assert.throws(() => md5Response(bogus, Buffer.from('abcd')), (err: Error) => !err.message.includes('SECRET'));
  assert.throws(() => md5Response('pencil', Buffer.from('abcd')), (err: Error) => !err.message.includes('pencil'));
  assert.throws(() => md5Response(PENCIL_POSTGRES, Buffer.from('abc')), /salt/);
});
