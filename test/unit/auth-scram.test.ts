// Unit tests for src/auth/scram.ts: RFC 7677 vector (both sides), round trips, wrong passwords,
// malformed messages, verifiers produced by PostgreSQL 15 itself, and interop with node-postgres' client.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import {
  ScramClientSession,
  ScramError,
  ScramServerSession,
  formatScramVerifier,
  parseScramVerifier,
  saslPrep,
  scramKeysFromPassword,
} from '../../src/auth/scram.ts';

// RFC 7677 §3: user "user", password "pencil".
const RFC = {
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  salt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'),
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

const pencilKeys = scramKeysFromPassword('pencil', RFC.salt, 4096);

function isScramError(passwordFailed: boolean, pattern?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ScramError, `expected ScramError, got ${String(err)}`);
    assert.equal(err.passwordFailed, passwordFailed);
    if (pattern) assert.match(err.message, pattern);
    return true;
  };
}

test('RFC 7677 vector: client side', () => {
  const c = new ScramClientSession('pencil', { nonce: RFC.clientNonce, username: 'user' });
  assert.equal(c.clientFirst(), RFC.clientFirst);
  assert.equal(c.handleServerFirst(RFC.serverFirst), RFC.clientFinal);
  c.handleServerFinal(RFC.serverFinal); // does not throw
});

test('RFC 7677 vector: server side', () => {
  const s = new ScramServerSession(pencilKeys, { serverNonce: RFC.serverNonce });
  assert.equal(s.handleClientFirst(RFC.clientFirst), RFC.serverFirst);
  assert.equal(s.handleClientFinal(RFC.clientFinal), RFC.serverFinal);
  assert.deepEqual(ScramServerSession.mechanisms, ['SCRAM-SHA-256']);
});

test('round trip client ↔ server with random nonces and salt', () => {
  const keys = scramKeysFromPassword('correct horse battery staple');
  assert.equal(keys.salt.length, 16);
  assert.equal(keys.iterations, 4096);
  const c = new ScramClientSession('correct horse battery staple');
  const s = new ScramServerSession(keys);
  const first = c.clientFirst();
  assert.match(first, /^n,,n=\*,r=[A-Za-z0-9+/=]{24}$/);
  const serverFirst = s.handleClientFirst(first);
  assert.match(serverFirst, /^r=[A-Za-z0-9+/=]{48},s=[A-Za-z0-9+/=]+,i=4096$/);
  const final = c.handleServerFirst(serverFirst);
  c.handleServerFinal(s.handleClientFinal(final));
});

test('wrong password: server throws ScramError with passwordFailed, no secret in the message', () => {
  const c = new ScramClientSession('hunter2-wrong');
  const s = new ScramServerSession(pencilKeys);
  const final = c.handleServerFirst(s.handleClientFirst(c.clientFirst()));
  assert.throws(
    () => s.handleClientFinal(final),
    (err: unknown) => {
      isScramError(true)(err);
      const msg = (err as Error).message;
      assert.ok(!msg.includes('hunter2') && !msg.includes('pencil') && !msg.includes(final.split('p=')[1] ?? '@'));
      return true;
    },
  );
  // the session is dead afterwards
  assert.throws(() => s.handleClientFinal(final), isScramError(false));
});

test('client rejects a server that does not know the password (ServerSignature mismatch)', () => {
  const c = new ScramClientSession('pencil', { nonce: RFC.clientNonce, username: 'user' });
  c.clientFirst();
  c.handleServerFirst(RFC.serverFirst);
  assert.throws(() => c.handleServerFinal('v=' + Buffer.alloc(32).toString('base64')), isScramError(false, /server signature/));
});

test('client reports e= from the server', () => {
  const c = new ScramClientSession('pencil', { nonce: RFC.clientNonce, username: 'user' });
  c.clientFirst();
  c.handleServerFirst(RFC.serverFirst);
  assert.throws(() => c.handleServerFinal('e=invalid-proof'), isScramError(false, /invalid-proof/));
});

test('server: malformed or unsupported client-first-message', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /malformed/],
    ['n', /malformed/],
    ['n,,', /malformed/],
    ['x,,n=,r=abc', /channel binding flag/],
    ['p=tls-server-end-point,,n=,r=abc', /^channel binding not supported$/],
    ['n,a=bob,n=,r=abc', /authorization identity/],
    ['n,,m=ext,n=,r=abc', /extension/],
    ['n,,r=abc,n=', /attribute "n"/],
    ['n,,n=,x=abc', /attribute "r"/],
    ['n,,n=,r=', /nonce/],
    ['n,,n=,r=ab c', /nonce/],
    ['n,,n=,r=abc,garbage', /garbage/],
  ];
  for (const [msg, pattern] of cases) {
    const s = new ScramServerSession(pencilKeys);
    assert.throws(() => s.handleClientFirst(msg), isScramError(false, pattern), `client-first ${JSON.stringify(msg)}`);
  }
  // out of order
  assert.throws(() => new ScramServerSession(pencilKeys).handleClientFinal(RFC.clientFinal), isScramError(false, /out of order/));
});

test('server accepts the y,, gs2 header and checks c= against it', () => {
  const s = new ScramServerSession(pencilKeys, { serverNonce: RFC.serverNonce });
  s.handleClientFirst('y,,n=user,r=' + RFC.clientNonce);
  // the RFC client-final carries c=biws ("n,,"), which must not match a "y,," header
  assert.throws(() => s.handleClientFinal(RFC.clientFinal), isScramError(false, /channel binding/));
});

test('server: malformed client-final-message', () => {
  const nonce = RFC.clientNonce + RFC.serverNonce;
  const proof = 'dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=';
  const cases: Array<[string, RegExp]> = [
    ['', /attribute "c"/],
    [`r=${nonce},p=${proof}`, /attribute "c"/],
    [`c=eSws,r=${nonce},p=${proof}`, /channel binding/],
    [`c=biws!,r=${nonce},p=${proof}`, /channel binding/],
    [`c=biws,r=${RFC.clientNonce},p=${proof}`, /nonce/],
    [`c=biws,p=${proof}`, /attribute "r"/],
    [`c=biws,r=${nonce}`, /attribute "p"/],
    [`c=biws,r=${nonce},p=${proof},x=1`, /attribute "p"/],
    [`c=biws,r=${nonce},p=not*base64`, /proof/],
    [`c=biws,r=${nonce},p=${Buffer.alloc(16).toString('base64')}`, /proof/],
    [`c=biws,r=${nonce},junk,p=${proof}`, /garbage/],
  ];
  for (const [msg, pattern] of cases) {
    const s = new ScramServerSession(pencilKeys, { serverNonce: RFC.serverNonce });
    s.handleClientFirst(RFC.clientFirst);
    assert.throws(() => s.handleClientFinal(msg), isScramError(false, pattern), `client-final ${JSON.stringify(msg)}`);
  }
  // with an unknown extension before p=, the proof no longer covers the same AuthMessage: wrong password
  const s = new ScramServerSession(pencilKeys, { serverNonce: RFC.serverNonce });
  s.handleClientFirst(RFC.clientFirst);
  assert.throws(() => s.handleClientFinal(`c=biws,r=${nonce},x=ext,p=${proof}`), isScramError(true));
});

test('client: malformed server-first-message', () => {
  const salt = 's=W22ZaJ0SNY7soEsUEjb6gQ==';
  const nonce = 'r=' + RFC.clientNonce + 'srv';
  const cases: Array<[string, RegExp]> = [
    ['', /attribute "r"/],
    [`r=someoneelse,${salt},i=4096`, /nonce mismatch/],
    [`r=${RFC.clientNonce},${salt},i=4096`, /nonce mismatch/],
    [`m=ext,${nonce},${salt},i=4096`, /extension/],
    [`${nonce},i=4096`, /attribute "s"/],
    [`${nonce},s=,i=4096`, /salt/],
    [`${nonce},s=***,i=4096`, /salt/],
    [`${nonce},${salt}`, /attribute "i"/],
    [`${nonce},${salt},i=0`, /iteration/],
    [`${nonce},${salt},i=10000001`, /iteration/],
    [`${nonce},${salt},i=-1`, /iteration/],
    [`${nonce},${salt},i=4096x`, /iteration/],
    [`${nonce},${salt},i=4096,junk`, /garbage/],
  ];
  for (const [msg, pattern] of cases) {
    const c = new ScramClientSession('pencil', { nonce: RFC.clientNonce });
    c.clientFirst();
    assert.throws(() => c.handleServerFirst(msg), isScramError(false, pattern), `server-first ${JSON.stringify(msg)}`);
  }
  assert.throws(() => new ScramClientSession('pencil').handleServerFirst(RFC.serverFirst), isScramError(false, /out of order/));
  const c = new ScramClientSession('pencil');
  c.clientFirst();
  assert.throws(() => c.clientFirst(), isScramError(false));
  // malformed server-final
  const c2 = new ScramClientSession('pencil', { nonce: RFC.clientNonce, username: 'user' });
  c2.clientFirst();
  c2.handleServerFirst(RFC.serverFirst);
  assert.throws(() => c2.handleServerFinal('x=1'), isScramError(false, /attribute "v"/));
});

test('client escapes "," and "=" in the n= user name', () => {
  assert.equal(new ScramClientSession('x', { nonce: 'abc', username: 'a,b=c' }).clientFirst(), 'n,,n=a=2Cb=3Dc,r=abc');
});

test('verifier format/parse round trip', () => {
  const v = formatScramVerifier(pencilKeys);
  assert.equal(
    v,
    'SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$' +
      `${pencilKeys.storedKey.toString('base64')}:${pencilKeys.serverKey.toString('base64')}`,
  );
  assert.deepEqual(parseScramVerifier(v), pencilKeys);
  const random = scramKeysFromPassword('x', undefined, 10000);
  assert.deepEqual(parseScramVerifier(formatScramVerifier(random)), random);
});

test('parseScramVerifier rejects malformed verifiers without echoing them', () => {
  const good = formatScramVerifier(pencilKeys);
  const [, rest] = good.split('$4096:');
  const bad = [
    '',
    'md5abc',
    good.replace('SCRAM-SHA-256', 'SCRAM-SHA-1'),
    `SCRAM-SHA-256$0:${rest}`,
    `SCRAM-SHA-256$abc:${rest}`,
    good.replace('W22ZaJ0SNY7soEsUEjb6gQ==', 'W22Z*J0SNY7soEsUEjb6gQ=='),
    good.slice(0, -8) + '====',
    good + ':extra',
    good.replace(pencilKeys.storedKey.toString('base64'), 'AAAA'),
  ];
  for (const v of bad) {
    assert.throws(
      () => parseScramVerifier(v),
      (err: Error) => err.message.startsWith('invalid SCRAM-SHA-256 verifier') && (v === '' || !err.message.includes(v)) && !err.message.includes('W22Z'),
      JSON.stringify(v),
    );
  }
});

// Verifiers written by PostgreSQL 15.18 (SET password_encryption='scram-sha-256'; CREATE ROLE ...
// PASSWORD ...; SELECT rolpassword FROM pg_authid), covering its SASLprep: plain ASCII, NFKC
// (U+2168 ROMAN NUMERAL NINE → "IX"), C.1.2 space and B.1 mapping, and the fall-back to the raw
// password when the prepared form holds a prohibited character (U+0007).
const PG_VERIFIERS: Array<[string, string]> = [
  ['pencil', 'SCRAM-SHA-256$4096:w3VjGtCfJxkn9P4XRF09WA==$PEcruQCVNrq7/na5W5fhQNDLeNz6wA5tmvap9X5qQvg=:FnwLkmBJjHIqmjCCQoCGl6tzGaHYvqNEfiT5afs0l1c='],
  ['IX', 'SCRAM-SHA-256$4096:ILsgqfunz/Qkyhr+r01UuA==$tt8bixV5RYvL1t9zTjSi5CQj1OIao4ngmvTqYa5dSDE=:T7LXfsSI/soRN6eLYrxXYqO/XYiH1xAQkifHb2O+XNM='],
  ['\u2168', 'SCRAM-SHA-256$4096:/gtMBeRo4qNU4dkG3OAJXQ==$a6J7iREa1K81IOkxkpwsG6BcL4psVDASeedA6+qGVbM=:YJn6jQNdaocntMlYVIEUnGiWOOsosCBgfNCPpkZJbFo='],
  ['p\u00e4ss\u00a0w\u00adord', 'SCRAM-SHA-256$4096:syKn4HcG1u0U4UsHeBieyQ==$SKkAtsTNG2Euxga60TlGsH6mUL5osYpibQhiod8GBZo=:Sd2minz1regQX4jb+E68i2fOS7V6k8fJ9iuQ8UM95Qw='],
  ['\u0007\u2168', 'SCRAM-SHA-256$4096:8oEgu7JvcQ25vXpVLaKpaA==$/RaRmbKMStaLFPGJ0KBYlgPZ00Hi0hNgDkIwnbfXvKU=:kDM0Jly1BJcLsLnyFwpe9M06sfovcD3uIZgivT5zQMs='],
];

test('scramKeysFromPassword reproduces verifiers written by PostgreSQL (incl. SASLprep)', () => {
  for (const [password, verifier] of PG_VERIFIERS) {
    const k = parseScramVerifier(verifier);
    assert.equal(formatScramVerifier(scramKeysFromPassword(password, k.salt, k.iterations)), verifier, JSON.stringify(password));
  }
  assert.equal(saslPrep('pencil'), 'pencil');
  assert.equal(saslPrep('\u2168'), 'IX');
  assert.equal(saslPrep('p\u00e4ss\u00a0w\u00adord'), 'p\u00e4ss word');
  assert.equal(saslPrep('\u0007\u2168'), '\u0007\u2168');
  assert.equal(saslPrep('\u00ad'), '\u00ad'); // maps to empty: PostgreSQL uses the raw password
});

test('client against a PostgreSQL-written verifier: server built from it accepts, wrong password fails', () => {
  const keys = parseScramVerifier(PG_VERIFIERS[2]?.[1] ?? '');
  for (const [password, ok] of [['IX', true], ['\u2168', true], ['ix', false]] as const) {
    const c = new ScramClientSession(password);
    const s = new ScramServerSession(keys);
    const final = c.handleServerFirst(s.handleClientFirst(c.clientFirst()));
    if (ok) c.handleServerFinal(s.handleClientFinal(final));
    else assert.throws(() => s.handleClientFinal(final), isScramError(true));
  }
});

interface PgSaslSession { response: string }
interface PgSasl {
  startSession(mechanisms: string[], stream?: unknown): PgSaslSession;
  continueSession(session: PgSaslSession, password: string, serverData: string, stream?: unknown): Promise<void>;
  finalizeSession(session: PgSaslSession, serverData: string): void;
}

test('interop: node-postgres SCRAM client (n,, and y,, headers) against ScramServerSession', async () => {
  const sasl = createRequire(import.meta.url)('pg/lib/crypto/sasl.js') as PgSasl;
  for (const stream of [undefined, {}]) {
    const session = sasl.startSession([...ScramServerSession.mechanisms], stream);
    assert.ok(session.response.startsWith(stream ? 'y,,' : 'n,,'));
    const s = new ScramServerSession(pencilKeys);
    await sasl.continueSession(session, 'pencil', s.handleClientFirst(session.response), stream);
    sasl.finalizeSession(session, s.handleClientFinal(session.response)); // throws on a bad v=
  }
});
