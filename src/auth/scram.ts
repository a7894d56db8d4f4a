// SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL speaks it, both sides: ScramServerSession
// authenticates a client to pgrouter, ScramClientSession authenticates pgrouter to a backend.
// Pure message-in/message-out state machines over node:crypto; no sockets.

import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { randomBytesPooled } from '../util/random-pool.ts';

/** The mechanism name used in AuthenticationSASL / SASLInitialResponse. */
export const SCRAM_SHA_256 = 'SCRAM-SHA-256';

const KEY_LEN = 32; // SHA-256 output size
const NONCE_BYTES = 18; // as PostgreSQL and libpq (SCRAM_RAW_NONCE_LEN), base64 → 24 chars
const DEFAULT_ITERATIONS = 4096; // PostgreSQL's scram_iterations default
const MAX_ITERATIONS = 10_000_000;

/** What a SCRAM verifier holds: enough to check a client, not enough to impersonate one. */
export interface ScramKeys {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

/**
 * A SCRAM exchange failed. `passwordFailed` is true only when the client's proof was wrong
 * (PostgreSQL reports that as 28P01 "password authentication failed for user ..."); otherwise the
 * message was malformed or unsupported (08P01). The message never contains the exchanged data.
 */
export class ScramError extends Error {
  readonly passwordFailed: boolean;
  constructor(message: string, passwordFailed = false) {
    super(message);
    this.name = 'ScramError';
    this.passwordFailed = passwordFailed;
  }
}

// ---------------------------------------------------------------------------------------------
// SASLprep (RFC 4013), the way PostgreSQL's pg_saslprep() applies it to passwords.

// RFC 3454 C.1.2 non-ASCII space characters: mapped to U+0020.
const NON_ASCII_SPACE: ReadonlyArray<readonly [number, number]> = [
  [0x00a0, 0x00a0], [0x1680, 0x1680], [0x2000, 0x200b], [0x202f, 0x202f], [0x205f, 0x205f],
  [0x3000, 0x3000],
];
// RFC 3454 B.1 "commonly mapped to nothing": removed.
const MAPPED_TO_NOTHING: ReadonlyArray<readonly [number, number]> = [
  [0x00ad, 0x00ad], [0x034f, 0x034f], [0x1806, 0x1806], [0x180b, 0x180d], [0x200b, 0x200d],
  [0x2060, 0x2060], [0xfe00, 0xfe0f], [0xfeff, 0xfeff],
];
// RFC 3454 C.1.2, C.2.1, C.2.2, C.3, C.4 (plane 0), C.5, C.6, C.7, C.8, C.9: prohibited output.
const PROHIBITED: ReadonlyArray<readonly [number, number]> = [
  ...NON_ASCII_SPACE,
  [0x0000, 0x001f], [0x007f, 0x009f], // C.2.1, C.2.2
  [0x0340, 0x0341], [0x06dd, 0x06dd], [0x070f, 0x070f], [0x180e, 0x180e], [0x200c, 0x200f],
  [0x2028, 0x202e], [0x2060, 0x2063], [0x206a, 0x206f], [0x2ff0, 0x2ffb], [0xd800, 0xdfff],
  [0xe000, 0xf8ff], [0xfdd0, 0xfdef], [0xfeff, 0xfeff], [0xfff9, 0xffff], [0x1d173, 0x1d17a],
  [0xe0001, 0xe0001], [0xe0020, 0xe007f], [0xf0000, 0xffffd], [0x100000, 0x10fffd],
];

function inRanges(cp: number, ranges: ReadonlyArray<readonly [number, number]>): boolean {
  for (const [lo, hi] of ranges) if (cp >= lo && cp <= hi) return true;
  return false;
}

/**
 * SASLprep a password as PostgreSQL does (src/common/saslprep.c): a pure-ASCII password is used
 * as is; otherwise map B.1 characters to nothing and non-ASCII spaces to ' ', NFKC-normalise
 * (String.prototype.normalize('NFKC')), and if the result is empty or contains a prohibited
 * character, fall back to the raw password (PostgreSQL does not reject such passwords, it just
 * skips normalisation). Not done here: the RFC 3454 A.1 "unassigned in Unicode 3.2" check and the
 * bidi (RandALCat) check, which in PostgreSQL also lead to "use the raw password".
 */
export function saslPrep(password: string): string {
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  let mapped = '';
  for (const ch of password) {
    const cp = ch.codePointAt(0) ?? 0;
    if (inRanges(cp, NON_ASCII_SPACE)) mapped += ' ';
    else if (!inRanges(cp, MAPPED_TO_NOTHING)) mapped += ch;
  }
  if (mapped.length === 0) return password;
  const normalized = mapped.normalize('NFKC');
  for (const ch of normalized) {
    const cp = ch.codePointAt(0) ?? 0;
    // C.4 also prohibits U+nFFFE/U+nFFFF in every plane.
    if (inRanges(cp, PROHIBITED) || (cp & 0xfffe) === 0xfffe) return password;
  }
  return normalized;
}

// ---------------------------------------------------------------------------------------------
// Primitives.

function hmac(key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] ?? 0) ^ (b[i] ?? 0);
  return out;
}

function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 decode (Buffer.from is lenient and silently drops junk); undefined if invalid. */
function decodeBase64(s: string): Buffer | undefined {
  return BASE64_RE.test(s) ? Buffer.from(s, 'base64') : undefined;
}

/** RFC 5802 printable: %x21-2B / %x2D-7E (visible ASCII except ','). */
function isPrintableNonce(s: string): boolean {
  return s.length > 0 && /^[\x21-\x2b\x2d-\x7e]+$/.test(s);
}

function newNonce(): string {
  return randomBytesPooled(NONCE_BYTES).toString('base64');
}

interface SaltedKeys {
  clientKey: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** SaltedPassword = Hi(SASLprep(password), salt, i); then ClientKey, StoredKey, ServerKey. */
// PBKDF2 costs ~3 ms per call at 4096 iterations and blocks the event loop, so derived keys are
// kept per (password, salt, iterations). The map key is a SHA-256 digest, never the password.
const derivedCache = new Map<string, SaltedKeys>();
const MAX_DERIVED = 1024;

function deriveKeys(password: string, salt: Buffer, iterations: number): SaltedKeys {
  const key = createHash('sha256').update(password).update('\0').update(salt).update(String(iterations)).digest('base64');
  const hit = derivedCache.get(key);
  if (hit) return hit;
  const keys = deriveKeysUncached(password, salt, iterations);
  if (derivedCache.size >= MAX_DERIVED) derivedCache.clear();
  derivedCache.set(key, keys);
  return keys;
}

function deriveKeysUncached(password: string, salt: Buffer, iterations: number): SaltedKeys {
  const salted = pbkdf2Sync(Buffer.from(saslPrep(password), 'utf8'), salt, iterations, KEY_LEN, 'sha256');
  const clientKey = hmac(salted, 'Client Key');
  return { clientKey, storedKey: sha256(clientKey), serverKey: hmac(salted, 'Server Key') };
}

function isSaneIterations(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 1 && n <= MAX_ITERATIONS;
}

// ---------------------------------------------------------------------------------------------
// Verifiers.

/**
 * Derives SCRAM keys from a plaintext password (SASLprep applied as PostgreSQL does). Costs one
 * PBKDF2 run (~3 ms at 4096 iterations): callers that log users in repeatedly cache the result.
 * Uses a random 16-byte salt when none is given.
 */
export function scramKeysFromPassword(password: string, salt?: Buffer, iterations = DEFAULT_ITERATIONS): ScramKeys {
  if (!isSaneIterations(iterations)) throw new RangeError('SCRAM iteration count out of range');
  const s = salt ?? randomBytes(16);
  if (s.length === 0) throw new RangeError('SCRAM salt must not be empty');
  const { storedKey, serverKey } = deriveKeys(password, s, iterations);
  return { iterations, salt: Buffer.from(s), storedKey, serverKey };
}

/**
 * Parses PostgreSQL's stored verifier `SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>`.
 * Throws an Error that does not contain the verifier.
 */
export function parseScramVerifier(v: string): ScramKeys {
  const m = /^SCRAM-SHA-256\$([0-9]+):([^$:]+)\$([^$:]+):([^$:]+)$/.exec(v);
  const fail = (why: string): never => {
    throw new Error(`invalid SCRAM-SHA-256 verifier: ${why}`);
  };
  if (!m) return fail('not in the form SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>');
  const iterations = Number(m[1]);
  if (!isSaneIterations(iterations)) return fail('iteration count out of range');
  const salt = decodeBase64(m[2] ?? '');
  if (!salt || salt.length === 0) return fail('salt is not valid base64');
  const storedKey = decodeBase64(m[3] ?? '');
  const serverKey = decodeBase64(m[4] ?? '');
  if (!storedKey || storedKey.length !== KEY_LEN) return fail('StoredKey is not 32 bytes of base64');
  if (!serverKey || serverKey.length !== KEY_LEN) return fail('ServerKey is not 32 bytes of base64');
  return { iterations, salt, storedKey, serverKey };
}

/** Formats keys as PostgreSQL's stored verifier string (inverse of parseScramVerifier). */
export function formatScramVerifier(k: ScramKeys): string {
  return `SCRAM-SHA-256$${k.iterations}:${k.salt.toString('base64')}$${k.storedKey.toString('base64')}:${k.serverKey.toString('base64')}`;
}

// ---------------------------------------------------------------------------------------------
// Message parsing helpers.

/** Reads `<name>=<value>` from one comma-separated field, or throws a ScramError naming the attribute. */
function attr(field: string | undefined, name: string, where: string): string {
  if (field === undefined || field.length < 2 || field[0] !== name || field[1] !== '=') {
    throw new ScramError(`malformed SCRAM message: expected attribute "${name}" in ${where}`);
  }
  return field.slice(2);
}

function isAttr(field: string): boolean {
  return /^[A-Za-z]=/.test(field);
}

// ---------------------------------------------------------------------------------------------
// Server side.

/** Test hooks for ScramServerSession. */
export interface ScramServerOptions {
  /** The server's nonce part (default: 18 random bytes, base64). Printable, no ','. */
  serverNonce?: string;
}

/**
 * pgrouter's side of SCRAM-SHA-256 when authenticating a client (after sending
 * AuthenticationSASL with `ScramServerSession.mechanisms`):
 * SASLInitialResponse data → `handleClientFirst` → AuthenticationSASLContinue data;
 * SASLResponse data → `handleClientFinal` → AuthenticationSASLFinal data.
 * Channel binding (SCRAM-SHA-256-PLUS) is not offered.
 */
export class ScramServerSession {
  /** The SASL mechanisms to advertise in AuthenticationSASL. */
  static readonly mechanisms: readonly string[] = [SCRAM_SHA_256];

  private readonly keys: ScramKeys;
  private readonly serverNonce: string;
  private state: 'initial' | 'sent-first' | 'done' | 'failed' = 'initial';
  /**
   * After a successful exchange: the client's ClientKey, recovered from its proof. With the
   * verifier's salt and iteration count it lets pgrouter log in to a backend that stores the same
   * verifier, without ever knowing the password (SCRAM pass-through). Kept in memory only.
   */
  clientKey: Buffer | undefined;
  private gs2Header = '';
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';

  constructor(keys: ScramKeys, options: ScramServerOptions = {}) {
    this.keys = keys;
    this.serverNonce = options.serverNonce ?? newNonce();
    if (!isPrintableNonce(this.serverNonce)) throw new RangeError('SCRAM server nonce must be printable ASCII without ","');
  }

  /** Consumes client-first-message, returns server-first-message `r=<nonce>,s=<salt>,i=<iter>`. */
  handleClientFirst(msg: string): string {
    if (this.state !== 'initial') throw this.fail(new ScramError('SCRAM client-first-message received out of order'));
    try {
      const fields = msg.split(',');
      // gs2-header: gs2-cbind-flag "," [authzid] ","
      const cbind = fields[0] ?? '';
      if (cbind.startsWith('p=')) throw new ScramError('channel binding not supported');
      if (cbind !== 'n' && cbind !== 'y') {
        throw new ScramError('malformed SCRAM message: invalid channel binding flag in client-first-message');
      }
      if (fields.length < 4) throw new ScramError('malformed SCRAM message: client-first-message is incomplete');
      // As PostgreSQL: an authorization identity is not supported.
      if (fields[1] !== '') throw new ScramError('client uses authorization identity, but it is not supported');
      const bare = fields.slice(2);
      if ((bare[0] ?? '').startsWith('m=')) throw new ScramError('client requires an unsupported SCRAM extension');
      attr(bare[0], 'n', 'client-first-message'); // user name: ignored, PostgreSQL uses the startup packet's
      const clientNonce = attr(bare[1], 'r', 'client-first-message');
      if (!isPrintableNonce(clientNonce)) throw new ScramError('malformed SCRAM message: invalid client nonce');
      for (const ext of bare.slice(2)) {
        if (!isAttr(ext)) throw new ScramError('malformed SCRAM message: garbage at end of client-first-message');
      }
      this.gs2Header = `${cbind},,`;
      this.clientFirstBare = bare.join(',');
      this.nonce = clientNonce + this.serverNonce;
      this.serverFirst = `r=${this.nonce},s=${this.keys.salt.toString('base64')},i=${this.keys.iterations}`;
      this.state = 'sent-first';
      return this.serverFirst;
    } catch (err) {
      throw this.fail(err);
    }
  }

  /**
   * Consumes client-final-message, checks channel binding, nonce and ClientProof; returns
   * server-final-message `v=<ServerSignature>`. A wrong proof throws ScramError with passwordFailed.
   */
  handleClientFinal(msg: string): string {
    if (this.state !== 'sent-first') throw this.fail(new ScramError('SCRAM client-final-message received out of order'));
    try {
      const fields = msg.split(',');
      const cb = decodeBase64(attr(fields[0], 'c', 'client-final-message'));
      if (!cb || !cb.equals(Buffer.from(this.gs2Header, 'ascii'))) {
        throw new ScramError('SCRAM channel binding check failed');
      }
      const nonce = attr(fields[1], 'r', 'client-final-message');
      if (nonce !== this.nonce) throw new ScramError('SCRAM nonce does not match');
      const proofField = fields[fields.length - 1] ?? '';
      if (fields.length < 3 || !proofField.startsWith('p=')) {
        throw new ScramError('malformed SCRAM message: expected attribute "p" at end of client-final-message');
      }
      for (const ext of fields.slice(2, -1)) {
        if (!isAttr(ext) || ext.startsWith('p=')) {
          throw new ScramError('malformed SCRAM message: garbage in client-final-message');
        }
      }
      const proof = decodeBase64(proofField.slice(2));
      if (!proof || proof.length !== KEY_LEN) throw new ScramError('malformed SCRAM message: malformed proof in client-final-message');

      const withoutProof = fields.slice(0, -1).join(',');
      const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
      const clientSignature = hmac(this.keys.storedKey, authMessage);
      const clientKey = xor(proof, clientSignature);
      if (!constantTimeEqual(sha256(clientKey), this.keys.storedKey)) {
        throw new ScramError('SCRAM client proof is wrong', true);
      }
      this.clientKey = clientKey;
      this.state = 'done';
      return `v=${hmac(this.keys.serverKey, authMessage).toString('base64')}`;
    } catch (err) {
      throw this.fail(err);
    }
  }

  private fail(err: unknown): unknown {
    this.state = 'failed';
    return err;
  }
}

// ---------------------------------------------------------------------------------------------
// Client side.

/** What SCRAM pass-through needs to answer a backend in the client's name. */
export interface ScramPassThrough {
  readonly clientKey: Buffer;
  readonly serverKey: Buffer;
  readonly salt: Buffer;
  readonly iterations: number;
}

/** Test hooks for ScramClientSession. */
export interface ScramClientOptions {
  /** Client nonce (default: 18 random bytes, base64). Printable, no ','. */
  nonce?: string;
  /** The n= user name (default '*'; PostgreSQL ignores it and uses the startup packet's). */
  username?: string;
}

/**
 * pgrouter's side of SCRAM-SHA-256 when authenticating to a PostgreSQL backend:
 * `clientFirst()` → SASLInitialResponse data; AuthenticationSASLContinue data →
 * `handleServerFirst` → SASLResponse data; AuthenticationSASLFinal data → `handleServerFinal`.
 * PBKDF2 runs once per session, in handleServerFirst (the salt is only known then).
 */
export class ScramClientSession {
  private readonly password: string;
  private readonly passThrough: ScramPassThrough | undefined;
  private readonly clientNonce: string;
  private readonly clientFirstBare: string;
  private state: 'initial' | 'sent-first' | 'sent-final' | 'done' | 'failed' = 'initial';
  private expectedServerSignature: Buffer = Buffer.alloc(0);

  /**
   * `secret` is the password, or pass-through keys: the ClientKey recovered from the client's own
   * SCRAM exchange plus the verifier's ServerKey, salt and iterations (they must be the backend's).
   */
  constructor(secret: string | ScramPassThrough, options: ScramClientOptions = {}) {
    this.password = typeof secret === 'string' ? secret : '';
    this.passThrough = typeof secret === 'string' ? undefined : secret;
    this.clientNonce = options.nonce ?? newNonce();
    if (!isPrintableNonce(this.clientNonce)) throw new RangeError('SCRAM client nonce must be printable ASCII without ","');
    // saslname: ',' and '=' are escaped as =2C and =3D (RFC 5802 §5.1).
    const user = (options.username ?? '*').replace(/=/g, '=3D').replace(/,/g, '=2C');
    this.clientFirstBare = `n=${user},r=${this.clientNonce}`;
  }

  /** client-first-message: `n,,n=*,r=<nonce>` (no channel binding). */
  clientFirst(): string {
    if (this.state !== 'initial') throw this.fail(new ScramError('SCRAM client-first-message already sent'));
    this.state = 'sent-first';
    return `n,,${this.clientFirstBare}`;
  }

  /** Consumes server-first-message, returns client-final-message `c=biws,r=<nonce>,p=<proof>`. */
  handleServerFirst(msg: string): string {
    if (this.state !== 'sent-first') throw this.fail(new ScramError('SCRAM server-first-message received out of order'));
    try {
      const fields = msg.split(',');
      if ((fields[0] ?? '').startsWith('m=')) throw new ScramError('server requires an unsupported SCRAM extension');
      const nonce = attr(fields[0], 'r', 'server-first-message');
      if (nonce.length <= this.clientNonce.length || !nonce.startsWith(this.clientNonce) || !isPrintableNonce(nonce)) {
        throw new ScramError('invalid SCRAM response (nonce mismatch)');
      }
      const salt = decodeBase64(attr(fields[1], 's', 'server-first-message'));
      if (!salt || salt.length === 0) throw new ScramError('malformed SCRAM message: invalid salt in server-first-message');
      const iterText = attr(fields[2], 'i', 'server-first-message');
      const iterations = /^[0-9]{1,8}$/.test(iterText) ? Number(iterText) : NaN;
      if (!isSaneIterations(iterations)) throw new ScramError('malformed SCRAM message: invalid iteration count in server-first-message');
      for (const ext of fields.slice(3)) {
        if (!isAttr(ext)) throw new ScramError('malformed SCRAM message: garbage at end of server-first-message');
      }

      let keys: SaltedKeys;
      const pt = this.passThrough;
      if (pt) {
        if (pt.iterations !== iterations || !pt.salt.equals(salt))
          throw new ScramError('the backend\'s SCRAM salt or iteration count differs from the pool_passwd verifier');
        keys = { clientKey: pt.clientKey, storedKey: sha256(pt.clientKey), serverKey: pt.serverKey };
      } else keys = deriveKeys(this.password, salt, iterations);
      const withoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${nonce}`;
      const authMessage = `${this.clientFirstBare},${msg},${withoutProof}`;
      const proof = xor(keys.clientKey, hmac(keys.storedKey, authMessage));
      this.expectedServerSignature = hmac(keys.serverKey, authMessage);
      this.state = 'sent-final';
      return `${withoutProof},p=${proof.toString('base64')}`;
    } catch (err) {
      throw this.fail(err);
    }
  }

  /** Consumes server-final-message; throws ScramError on `e=` or if ServerSignature does not match. */
  handleServerFinal(msg: string): void {
    if (this.state !== 'sent-final') throw this.fail(new ScramError('SCRAM server-final-message received out of order'));
    try {
      if (msg.startsWith('e=')) {
        // server-error-value is a fixed vocabulary (e.g. "invalid-proof"); cap it anyway.
        throw new ScramError(`error received from server in SCRAM exchange: ${msg.slice(2, 66)}`);
      }
      const fields = msg.split(',');
      const sig = decodeBase64(attr(fields[0], 'v', 'server-final-message'));
      if (!sig || fields.length !== 1) throw new ScramError('malformed SCRAM message: invalid server-final-message');
      if (!constantTimeEqual(sig, this.expectedServerSignature)) {
        throw new ScramError('incorrect server signature');
      }
      this.state = 'done';
    } catch (err) {
      throw this.fail(err);
    }
  }

  private fail(err: unknown): unknown {
    this.state = 'failed';
    return err;
  }
}
