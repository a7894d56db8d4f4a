// Pgpool-II's AES pool_passwd entries ("AES" + base64), byte-compatible with what pg_enc writes:
// AES-256-CBC with PKCS#7 padding, key and IV from OpenSSL's EVP_BytesToKey(SHA-1, no salt,
// 1 round) over the pool key's bytes; standard base64 with padding, no line breaks.

import { createCipheriv, createDecipheriv, createHash } from 'node:crypto';

const KEY_LEN = 32; // AES-256
const IV_LEN = 16; // AES block size

/**
 * OpenSSL's EVP_BytesToKey with SHA-1, no salt and a count of 1, as Pgpool-II's aes_get_key()
 * calls it: D1 = SHA1(key), Di = SHA1(D(i-1) ‖ key); the stream D1‖D2‖D3 gives the 32-byte AES key
 * followed by the 16-byte IV. (So the IV is fixed per pool key: equal passwords encrypt equally.)
 */
function deriveKeyAndIv(poolKey: string | Buffer): { key: Buffer; iv: Buffer } {
  const pass = typeof poolKey === 'string' ? Buffer.from(poolKey, 'utf8') : poolKey;
  const blocks: Buffer[] = [];
  let prev = Buffer.alloc(0);
  let total = 0;
  while (total < KEY_LEN + IV_LEN) {
    prev = createHash('sha1').update(prev).update(pass).digest();
    blocks.push(prev);
    total += prev.length;
  }
  const stream = Buffer.concat(blocks);
  return { key: stream.subarray(0, KEY_LEN), iv: stream.subarray(KEY_LEN, KEY_LEN + IV_LEN) };
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Encrypts a password as `pg_enc` does; returns the base64 text (the pool_passwd entry is
 * `'AES' + result`). Used by tests and tooling. A string key is taken as its UTF-8 bytes.
 */
export function aesEncryptPassword(password: string, poolKey: string | Buffer): string {
  const { key, iv } = deriveKeyAndIv(poolKey);
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  return Buffer.concat([cipher.update(password, 'utf8'), cipher.final()]).toString('base64');
}

/**
 * Decrypts the base64 part of an `AES...` pool_passwd entry with the pool key. Returns undefined
 * (never throws, never reveals why in detail) when the text is not base64, the padding does not
 * check out (wrong key), or the plaintext is empty, contains NUL or is not UTF-8: the cases where
 * Pgpool-II's get_decrypted_password() fails or would yield a password nobody can type.
 */
export function aesDecryptPassword(base64: string, poolKey: string | Buffer): string | undefined {
  if (base64.length === 0 || !BASE64_RE.test(base64)) return undefined;
  const data = Buffer.from(base64, 'base64');
  if (data.length === 0 || data.length % IV_LEN !== 0) return undefined;
  const { key, iv } = deriveKeyAndIv(poolKey);
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-cbc', key, iv);
    plain = Buffer.concat([decipher.update(data), decipher.final()]);
  } catch {
    return undefined; // bad padding: almost always a wrong key
  }
  // Pgpool-II treats an empty result as failure and would cut the C string at a NUL.
  if (plain.length === 0 || plain.includes(0)) return undefined;
  try {
    return utf8.decode(plain);
  } catch {
    return undefined; // a wrong key that happened to leave valid padding
  }
}
