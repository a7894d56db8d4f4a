// Pgpool-II's pool_passwd file (`user:secret` lines) and its AES key file (.pgpoolkey): parsing,
// secret classification (md5 / AES / TEXT / SCRAM verifier / plain) and per-method lookups.
// No secret ever reaches an error message or an `unusable` reason.

import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { aesDecryptPassword } from './aes.ts';
import { isMd5Hash, md5PasswordHash } from './md5.ts';
import { parseScramVerifier, scramKeysFromPassword } from './scram.ts';
import type { ScramKeys } from './scram.ts';

/** One user's pool_passwd entry, classified. `unusable.reason` never contains the secret. */
export type PoolSecret =
  | { kind: 'plain'; password: string }
  | { kind: 'md5'; hash: string }
  | { kind: 'scram'; keys: ScramKeys }
  | { kind: 'unusable'; reason: string };

/** Pgpool-II's words (pool_passwd.c: errdetail + errhint) for an AES entry it cannot decrypt. */
const AES_UNUSABLE = 'unable to decrypt password from pool_passwd; verify the valid pool_key exists';

// Pgpool-II's read_pool_key() reads the key with fgets() into a MAX_POOL_KEY_LEN (256) buffer.
const MAX_POOL_KEY_BYTES = 255;

/**
 * Picks the AES key file as Pgpool-II does: the explicit `-k` file, else `$PGPOOLKEYFILE` (used
 * literally, even if it does not exist), else `~/.pgpoolkey`. Existence is not checked: like
 * Pgpool-II, a missing file just means "no key". Returns undefined when no candidate applies
 * (PGPOOLKEYFILE set but empty, or no home directory).
 */
export function findPoolKeyFile(opts: { keyFile?: string | undefined; env: NodeJS.ProcessEnv; home?: string }): string | undefined {
  if (opts.keyFile !== undefined && opts.keyFile !== '') return opts.keyFile;
  const fromEnv = opts.env['PGPOOLKEYFILE'];
  if (fromEnv !== undefined) return fromEnv === '' ? undefined : fromEnv;
  let home = opts.home;
  if (home === undefined) {
    try {
      home = homedir();
    } catch {
      return undefined;
    }
  }
  return home === '' ? undefined : join(home, '.pgpoolkey');
}

/**
 * Reads the pool key the way Pgpool-II's read_pool_key() / pg_enc do: the first line of the file,
 * at most 255 bytes, with one trailing '\n' removed and nothing else trimmed (a trailing space or
 * '\r' is part of the key: verified against pg_enc 4.3.5). An empty first line is an empty key.
 * Returns undefined if the file is missing, unreadable, not a regular file, or empty.
 * (Pgpool-II also warns when the file has group/world access; that is the caller's to log.)
 */
export function readPoolKey(path: string): Buffer | undefined {
  let data: Buffer;
  try {
    if (!statSync(path).isFile()) return undefined;
    data = readFileSync(path);
  } catch {
    return undefined;
  }
  if (data.length === 0) return undefined;
  let line = data.subarray(0, MAX_POOL_KEY_BYTES);
  const nl = line.indexOf(0x0a);
  if (nl >= 0) line = line.subarray(0, nl);
  const nul = line.indexOf(0x00); // a C string ends at NUL
  if (nul >= 0) line = line.subarray(0, nul);
  return Buffer.from(line);
}

/** Classifies one secret in Pgpool-II's order (get_password_type): md5, AES, SCRAM, TEXT, plain. */
function classify(secret: string, aesKey: string | Buffer | undefined): PoolSecret {
  if (secret.startsWith('md5') && isMd5Hash(secret.toLowerCase())) {
    return { kind: 'md5', hash: secret.toLowerCase() };
  }
  if (secret.startsWith('AES')) {
    if (aesKey === undefined) return { kind: 'unusable', reason: `${AES_UNUSABLE} (no pool key file was found)` };
    const password = aesDecryptPassword(secret.slice(3), aesKey);
    return password === undefined ? { kind: 'unusable', reason: AES_UNUSABLE } : { kind: 'plain', password };
  }
  if (secret.startsWith('SCRAM-SHA-256$')) {
    try {
      return { kind: 'scram', keys: parseScramVerifier(secret) };
    } catch (err) {
      return { kind: 'unusable', reason: (err as Error).message }; // parseScramVerifier never echoes input
    }
  }
  const password = secret.startsWith('TEXT') ? secret.slice(4) : secret;
  // PostgreSQL never accepts an empty password, so an entry holding one cannot log anyone in.
  if (password === '') return { kind: 'unusable', reason: 'empty password in pool_passwd' };
  return { kind: 'plain', password };
}

/** The users and classified secrets of one pool_passwd file. */
export class PoolPasswd {
  /** Number of users with an entry. */
  readonly size: number;
  private readonly entries: ReadonlyMap<string, PoolSecret>;

  private constructor(entries: ReadonlyMap<string, PoolSecret>) {
    this.entries = entries;
    this.size = entries.size;
  }

  /** The entry for `user`, or undefined if there is none. */
  get(user: string): PoolSecret | undefined {
    return this.entries.get(user);
  }

  /**
   * Parses pool_passwd text. One `user:secret` per line, the secret being everything after the
   * first ':'; blank lines and lines starting with '#' are skipped; a trailing '\r' is dropped.
   * As in Pgpool-II, the first entry for a user wins and a line with an empty secret is no entry.
   * AES entries are decrypted now with `aesKey` (the pool key's text or bytes); those that cannot
   * be become `unusable`. A line without ':' or with an empty user name throws an Error naming
   * `file:line` (never the line's content).
   */
  static parse(text: string, file: string, aesKey?: string | Buffer): PoolPasswd {
    const entries = new Map<string, PoolSecret>();
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      let line = lines[i] ?? '';
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line.trim() === '' || line.startsWith('#')) continue;
      const colon = line.indexOf(':');
      if (colon < 0) throw new Error(`${file}:${i + 1}: invalid pool_passwd line: missing ':' between user name and password`);
      if (colon === 0) throw new Error(`${file}:${i + 1}: invalid pool_passwd line: empty user name`);
      const user = line.slice(0, colon);
      const secret = line.slice(colon + 1);
      if (secret === '' || entries.has(user)) continue;
      entries.set(user, classify(secret, aesKey));
    }
    return new PoolPasswd(entries);
  }

  /**
   * Reads and parses a pool_passwd file; `keyFile` (see findPoolKeyFile) supplies the AES key.
   * A missing or empty key file is not an error here: AES entries just become `unusable`.
   */
  static load(path: string, keyFile?: string | undefined): PoolPasswd {
    const text = readFileSync(path, 'utf8');
    const key = keyFile === undefined ? undefined : readPoolKey(keyFile);
    return PoolPasswd.parse(text, path, key);
  }
}

/** The md5 hash ('md5'+32 hex) to use for `user`: an md5 entry as is, or computed from a plaintext. */
export function md5HashFor(secret: PoolSecret, user: string): string | undefined {
  if (secret.kind === 'md5') return secret.hash;
  if (secret.kind === 'plain') return md5PasswordHash(secret.password, user);
  return undefined;
}

// Keys derived from plaintext entries, per secret object. A PoolPasswd holds one secret object per
// user, so PBKDF2 runs once per user for the life of that PoolPasswd (dropped with it on reload).
// Keyed by object identity, so no plaintext is ever a map key.
const derivedScramKeys = new WeakMap<PoolSecret, ScramKeys>();

/**
 * SCRAM keys for a secret: a verifier entry's keys, or keys derived from a plaintext (random salt,
 * 4096 iterations), cached per secret object. md5 and unusable entries cannot do SCRAM: undefined.
 */
export function scramKeysFor(secret: PoolSecret): ScramKeys | undefined {
  if (secret.kind === 'scram') return secret.keys;
  if (secret.kind !== 'plain') return undefined;
  let keys = derivedScramKeys.get(secret);
  if (keys === undefined) {
    keys = scramKeysFromPassword(secret.password);
    derivedScramKeys.set(secret, keys);
  }
  return keys;
}

/** The plaintext password, if the entry has one (plain, TEXT or decrypted AES). */
export function plainPasswordFor(secret: PoolSecret): string | undefined {
  return secret.kind === 'plain' ? secret.password : undefined;
}
