// The authentication exchange with a client: pgrouter asks for the method that pool_hba.conf
// (or, without it, the backend) wants and checks the answer against pool_passwd. Failures
// carry PostgreSQL's own SQLSTATE and wording; no secret ever goes into a message.

import { timingSafeEqual } from 'node:crypto';
import { randomBytesPooled } from '../util/random-pool.ts';
import { Frontend } from '../protocol/codes.ts';
import * as w from '../protocol/writer.ts';
import { md5PasswordHash, verifyMd5Response } from '../auth/md5.ts';
import { ScramServerSession, scramKeysFromPassword, type ScramPassThrough } from '../auth/scram.ts';
import { md5HashFor, scramKeysFor, type PoolSecret } from '../auth/pool-passwd.ts';
import { ProxyError } from '../errors/proxy-error.ts';
import { SqlState } from '../errors/sqlstate.ts';

export type ClientAuthMethod = 'trust' | 'reject' | 'password' | 'md5' | 'scram-sha-256';

/** The client side of the exchange, as the session provides it. */
export interface ClientChannel {
  send(buf: Buffer): void;
  /** The next message from the client (a copy, header included). */
  next(): Promise<Buffer>;
}

/** What the exchange learned: the cleartext password when the client sent one. */
export interface AuthOutcome {
  readonly password?: string;
  /** After SCRAM against a verifier entry: what logging in to the backend in the client's name needs. */
  readonly scram?: ScramPassThrough;
}

export function passwordFailed(user: string): ProxyError {
  return new ProxyError(SqlState.INVALID_PASSWORD, `password authentication failed for user "${user}"`, 'FATAL');
}

async function nextPassword(ch: ClientChannel): Promise<Buffer> {
  const m = await ch.next();
  if (m[0] !== Frontend.Password)
    throw new ProxyError(
      SqlState.PROTOCOL_VIOLATION,
      `expected password response, got message type ${m[0]}`,
      'FATAL',
    );
  return m;
}

/** The NUL-terminated string body of a PasswordMessage. */
function passwordText(m: Buffer): string {
  const end = m.indexOf(0, 5);
  if (end !== m.length - 1) throw new ProxyError(SqlState.PROTOCOL_VIOLATION, 'invalid password packet size', 'FATAL');
  return m.toString('utf8', 5, end);
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Checks a cleartext password against any kind of pool_passwd entry. */
export function checkCleartext(user: string, password: string, secret: PoolSecret): boolean {
  switch (secret.kind) {
    case 'plain':
      return safeEqual(password, secret.password);
    case 'md5':
      return safeEqual(md5PasswordHash(password, user), secret.hash);
    case 'scram': {
      const k = scramKeysFromPassword(password, secret.keys.salt, secret.keys.iterations);
      return k.storedKey.length === secret.keys.storedKey.length && timingSafeEqual(k.storedKey, secret.keys.storedKey);
    }
    default:
      return false;
  }
}

/**
 * Runs `method` with the client. `secret` is the user's pool_passwd entry; when it is missing and
 * `verifyLater` is true (allow_clear_text_frontend_auth), a cleartext password is accepted here
 * for the backend to check. Resolves when the client has proved itself; rejects with 28P01/28000.
 */
export async function authenticateClient(
  ch: ClientChannel,
  method: ClientAuthMethod,
  user: string,
  secret: PoolSecret | undefined,
  verifyLater: boolean,
): Promise<AuthOutcome> {
  const usable = secret !== undefined && secret.kind !== 'unusable' ? secret : undefined;
  switch (method) {
    case 'trust':
      return {};
    case 'reject':
      throw new ProxyError(SqlState.INVALID_AUTHORIZATION_SPECIFICATION, `pool_hba.conf rejects connection for user "${user}"`, 'FATAL');
    case 'password': {
      ch.send(w.authenticationCleartextPassword());
      const password = passwordText(await nextPassword(ch));
      if (usable) {
        if (!checkCleartext(user, password, usable)) throw passwordFailed(user);
        return { password };
      }
      if (verifyLater) return { password };
      throw noEntry(user, secret);
    }
    case 'md5': {
      const hash = usable ? md5HashFor(usable, user) : undefined;
      if (hash === undefined) {
        if (verifyLater && !usable) return authenticateClient(ch, 'password', user, secret, true);
        throw noEntry(user, secret);
      }
      const salt = randomBytesPooled(4);
      ch.send(w.authenticationMD5Password(salt));
      const response = passwordText(await nextPassword(ch));
      if (!verifyMd5Response(hash, salt, response)) throw passwordFailed(user);
      return {};
    }
    case 'scram-sha-256': {
      const keys = usable ? scramKeysFor(usable) : undefined;
      if (keys === undefined) {
        if (verifyLater && !usable) return authenticateClient(ch, 'password', user, secret, true);
        throw noEntry(user, secret);
      }
      const server = new ScramServerSession(keys);
      ch.send(w.authenticationSASL(ScramServerSession.mechanisms));
      const first = await nextPassword(ch);
      const mechEnd = first.indexOf(0, 5);
      if (mechEnd < 0 || mechEnd + 5 > first.length)
        throw new ProxyError(SqlState.PROTOCOL_VIOLATION, 'malformed SASLInitialResponse', 'FATAL');
      const mech = first.toString('utf8', 5, mechEnd);
      if (mech !== 'SCRAM-SHA-256')
        throw new ProxyError(SqlState.PROTOCOL_VIOLATION, 'client selected an invalid SASL authentication mechanism', 'FATAL');
      const len = first.readInt32BE(mechEnd + 1);
      const data = first.toString('utf8', mechEnd + 5, len < 0 ? mechEnd + 5 : mechEnd + 5 + len);
      try {
        ch.send(w.authenticationSASLContinue(server.handleClientFirst(data)));
        const final = await nextPassword(ch);
        ch.send(w.authenticationSASLFinal(server.handleClientFinal(final.toString('utf8', 5))));
        if (usable?.kind === 'scram' && server.clientKey)
          return { scram: { clientKey: server.clientKey, serverKey: keys.serverKey, salt: keys.salt, iterations: keys.iterations } };
      } catch (e) {
        if (e instanceof ProxyError) throw e;
        if ((e as { passwordFailed?: boolean }).passwordFailed) throw passwordFailed(user);
        throw new ProxyError(SqlState.PROTOCOL_VIOLATION, `malformed SCRAM message (${(e as Error).message})`, 'FATAL');
      }
      return {};
    }
  }
}

function noEntry(user: string, secret: PoolSecret | undefined): ProxyError {
  return new ProxyError(
    SqlState.INVALID_PASSWORD,
    `password authentication failed for user "${user}"`,
    'FATAL',
    undefined,
    undefined,
    secret?.kind === 'unusable' ? secret.reason : 'pool_passwd has no usable entry for this user',
  );
}
