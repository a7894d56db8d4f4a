// PostgreSQL's md5 password scheme: the stored 'md5'+hex(md5(password‖user)) form and the
// salted response a client sends for AuthenticationMD5Password. Pure functions, no I/O.

import { createHash, timingSafeEqual } from 'node:crypto';

const MD5_HASH_RE = /^md5[0-9a-f]{32}$/;

function md5Hex(data: Buffer): string {
  return createHash('md5').update(data).digest('hex');
}

/** True if `s` is PostgreSQL's stored md5 form: 'md5' followed by 32 lowercase hex digits. */
export function isMd5Hash(s: string): boolean {
  return MD5_HASH_RE.test(s);
}

/**
 * PostgreSQL's stored md5 form of a password: `'md5' + hex(md5(password + user))`
 * (what `CREATE ROLE ... PASSWORD` stores with password_encryption=md5, and what `pg_md5 -u` prints).
 */
export function md5PasswordHash(password: string, user: string): string {
  return 'md5' + md5Hex(Buffer.from(password + user, 'utf8'));
}

/**
 * The PasswordMessage a client sends in answer to AuthenticationMD5Password:
 * `'md5' + hex(md5(storedHash.slice(3) + salt))`, where `storedHash` is the 'md5'+32-hex form.
 * Throws (without echoing the hash) if `storedHash` is not in that form or the salt is not 4 bytes.
 */
export function md5Response(storedHash: string, salt: Buffer): string {
  if (!isMd5Hash(storedHash)) throw new Error('md5Response: stored hash is not in md5 form');
  if (salt.length !== 4) throw new Error('md5Response: salt must be 4 bytes');
  return 'md5' + md5Hex(Buffer.concat([Buffer.from(storedHash.slice(3), 'ascii'), salt]));
}

/**
 * Checks a client's md5 PasswordMessage against the stored hash and the salt we sent,
 * in constant time. A response of the wrong length is simply wrong (false), never an exception.
 */
export function verifyMd5Response(storedHash: string, salt: Buffer, response: string): boolean {
  const expected = Buffer.from(md5Response(storedHash, salt), 'utf8');
  const got = Buffer.from(response, 'utf8');
  // timingSafeEqual throws on unequal lengths; the length itself is public (always 35).
  if (got.length !== expected.length) return false;
  return timingSafeEqual(got, expected);
}
