// Unit tests for src/auth/pool-passwd.ts and src/auth/aes.ts: every kind of pool_passwd line,
// malformed lines, secrets kept out of errors, the pool key file rules, and AES entries checked
// against Pgpool-II's own pg_enc (fixed vectors below, plus a live run of the installed tool).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { aesDecryptPassword, aesEncryptPassword } from '../../src/auth/aes.ts';
import { md5PasswordHash } from '../../src/auth/md5.ts';
import { ScramClientSession, ScramServerSession, formatScramVerifier, scramKeysFromPassword } from '../../src/auth/scram.ts';
import {
  PoolPasswd,
  findPoolKeyFile,
  md5HashFor,
  plainPasswordFor,
  readPoolKey,
  scramKeysFor,
} from '../../src/auth/pool-passwd.ts';
import type { PoolSecret } from '../../src/auth/pool-passwd.ts';

// Produced once with pgpool-II 4.3.5's pg_enc (Debian bookworm package pgpool2):
//   printf 'sekrit-key\n' > key; chmod 600 key
//   pg_enc -k key pencil                                  → AES2/zEQAU/um3dEgx22qG+Pw==
//   pg_enc -m -f pgpool.conf -k key -u alice 'pä ss:word' → alice:AESlM1RujBBu1P+RUVoPSGnHw==
//   printf 'sekrit-key \r\n' > key3; pg_enc -k key3 pencil → AESz8OIvY0jF8z2exbmvt6AxA==
//   python3 -c "print('k'*300)" > longkey; pg_enc -k longkey pencil → AES0g+Ua/IoxfJWbp+0c1SJuA==
// (the same ciphertext as `openssl enc -aes-256-cbc -md sha1 -nosalt -pass pass:sekrit-key -a`).
const PG_ENC = {
  key: 'sekrit-key',
  pencil: '2/zEQAU/um3dEgx22qG+Pw==',
  alice: 'lM1RujBBu1P+RUVoPSGnHw==',
  pencilWithKeySpaceCr: 'z8OIvY0jF8z2exbmvt6AxA==',
  pencilWithLongKey: '0g+Ua/IoxfJWbp+0c1SJuA==',
};

const AES_REASON = 'unable to decrypt password from pool_passwd; verify the valid pool_key exists';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'pgrouter-auth-'));
}

function writeKey(dir: string, name: string, content: string | Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  chmodSync(p, 0o600);
  return p;
}

test('AES: fixed pg_enc vectors decrypt, and our encryption reproduces them byte for byte', () => {
  assert.equal(aesDecryptPassword(PG_ENC.pencil, PG_ENC.key), 'pencil');
  assert.equal(aesDecryptPassword(PG_ENC.alice, PG_ENC.key), 'pä ss:word');
  assert.equal(aesEncryptPassword('pencil', PG_ENC.key), PG_ENC.pencil);
  assert.equal(aesEncryptPassword('pä ss:word', PG_ENC.key), PG_ENC.alice);
  assert.equal(aesDecryptPassword(PG_ENC.pencilWithKeySpaceCr, 'sekrit-key \r'), 'pencil');
  assert.equal(aesDecryptPassword(PG_ENC.pencilWithLongKey, 'k'.repeat(255)), 'pencil');
  // wrong key, junk, truncated ciphertext: undefined, never an exception
  assert.equal(aesDecryptPassword(PG_ENC.pencil, 'other-key'), undefined);
  assert.equal(aesDecryptPassword('not base64!', PG_ENC.key), undefined);
  assert.equal(aesDecryptPassword('', PG_ENC.key), undefined);
  assert.equal(aesDecryptPassword(Buffer.alloc(8).toString('base64'), PG_ENC.key), undefined);
  // round trip of our own entries, including a 3-block password
  const long = 'x'.repeat(40) + 'ü€😀';
  assert.equal(aesDecryptPassword(aesEncryptPassword(long, 'k2'), 'k2'), long);
});

test('readPoolKey follows pg_enc: first line, one \\n removed, nothing else trimmed, 255 bytes max', () => {
  const dir = tmp();
  try {
    assert.deepEqual(readPoolKey(writeKey(dir, 'a', 'sekrit-key\n')), Buffer.from('sekrit-key'));
    assert.deepEqual(readPoolKey(writeKey(dir, 'b', 'sekrit-key')), Buffer.from('sekrit-key'));
    assert.deepEqual(readPoolKey(writeKey(dir, 'c', 'sekrit-key \r\n')), Buffer.from('sekrit-key \r'));
    assert.deepEqual(readPoolKey(writeKey(dir, 'd', 'first\nsecond\n')), Buffer.from('first'));
    assert.deepEqual(readPoolKey(writeKey(dir, 'e', '\nsecond\n')), Buffer.alloc(0));
    assert.deepEqual(readPoolKey(writeKey(dir, 'f', 'k'.repeat(300) + '\n')), Buffer.from('k'.repeat(255)));
    assert.equal(readPoolKey(writeKey(dir, 'g', '')), undefined);
    assert.equal(readPoolKey(join(dir, 'missing')), undefined);
    mkdirSync(join(dir, 'adir'));
    assert.equal(readPoolKey(join(dir, 'adir')), undefined);
    // the key as read decrypts the pg_enc vectors made with these files
    assert.equal(aesDecryptPassword(PG_ENC.pencilWithKeySpaceCr, readPoolKey(join(dir, 'c')) ?? ''), 'pencil');
    assert.equal(aesDecryptPassword(PG_ENC.pencilWithLongKey, readPoolKey(join(dir, 'f')) ?? ''), 'pencil');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('findPoolKeyFile: -k file, then $PGPOOLKEYFILE, then ~/.pgpoolkey', () => {
  assert.equal(findPoolKeyFile({ keyFile: '/k/file', env: { PGPOOLKEYFILE: '/env/file' }, home: '/home/u' }), '/k/file');
  assert.equal(findPoolKeyFile({ keyFile: undefined, env: { PGPOOLKEYFILE: '/env/file' }, home: '/home/u' }), '/env/file');
  assert.equal(findPoolKeyFile({ env: {}, home: '/home/u' }), '/home/u/.pgpoolkey');
  assert.equal(findPoolKeyFile({ keyFile: '', env: {}, home: '/home/u' }), '/home/u/.pgpoolkey');
  assert.equal(findPoolKeyFile({ env: { PGPOOLKEYFILE: '' }, home: '/home/u' }), undefined);
  assert.equal(findPoolKeyFile({ env: {}, home: '' }), undefined);
});

const VERIFIER = formatScramVerifier(scramKeysFromPassword('pencil', Buffer.from('0123456789abcdef'), 4096));

const SAMPLE = [
  '# pool_passwd written by hand',
  'alice:md54c21b325d75177d5e9b9789a50ab0c9c',
  'bob:AES' + PG_ENC.pencil,
  '',
  'carol:TEXTsecret:with:colons',
  `dave:${VERIFIER}`,
  'erin:plainpass',
  '   ',
  'frank:md5short',
  'gina:MD54C21B325D75177D5E9B9789A50AB0C9C',
  'hank:md54C21B325D75177D5E9B9789A50AB0C9C',
  'ivan:AESnot-base64!!',
  'judy:SCRAM-SHA-256$4096:garbage',
  'kate:TEXT',
  'leo:',
  'alice:TEXTsecond-entry-ignored',
  'mallory:crlfpass\r',
  'AESuser:x',
].join('\n');

test('parse classifies every kind of entry', () => {
  const pp = PoolPasswd.parse(SAMPLE, 'pool_passwd', PG_ENC.key);
  assert.deepEqual(pp.get('alice'), { kind: 'md5', hash: 'md54c21b325d75177d5e9b9789a50ab0c9c' });
  assert.deepEqual(pp.get('bob'), { kind: 'plain', password: 'pencil' });
  assert.deepEqual(pp.get('carol'), { kind: 'plain', password: 'secret:with:colons' });
  const dave = pp.get('dave');
  assert.equal(dave?.kind, 'scram');
  assert.equal(dave?.kind === 'scram' ? formatScramVerifier(dave.keys) : '', VERIFIER);
  assert.deepEqual(pp.get('erin'), { kind: 'plain', password: 'plainpass' });
  assert.deepEqual(pp.get('frank'), { kind: 'plain', password: 'md5short' }); // not 32 hex: plaintext, as Pgpool-II
  assert.deepEqual(pp.get('gina'), { kind: 'plain', password: 'MD54C21B325D75177D5E9B9789A50AB0C9C' }); // prefix is case-sensitive
  assert.deepEqual(pp.get('hank'), { kind: 'md5', hash: 'md54c21b325d75177d5e9b9789a50ab0c9c' }); // hex normalised
  assert.deepEqual(pp.get('ivan'), { kind: 'unusable', reason: AES_REASON });
  const judy = pp.get('judy');
  assert.equal(judy?.kind, 'unusable');
  assert.match(judy?.kind === 'unusable' ? judy.reason : '', /^invalid SCRAM-SHA-256 verifier/);
  assert.equal(pp.get('kate')?.kind, 'unusable');
  assert.equal(pp.get('leo'), undefined); // empty secret: no entry, as Pgpool-II
  assert.deepEqual(pp.get('mallory'), { kind: 'plain', password: 'crlfpass' });
  assert.deepEqual(pp.get('AESuser'), { kind: 'plain', password: 'x' });
  assert.equal(pp.get('nobody'), undefined);
  assert.equal(pp.get('# pool_passwd written by hand'), undefined);
  assert.equal(pp.size, 13); // leo (empty secret) and the second alice are not entries
});

test('AES entries without a key, or with the wrong key, are unusable in Pgpool-II words, secret-free', () => {
  for (const key of [undefined, 'wrong-key']) {
    const pp = PoolPasswd.parse(SAMPLE, 'pool_passwd', key);
    const bob = pp.get('bob');
    assert.equal(bob?.kind, 'unusable');
    const reason = bob?.kind === 'unusable' ? bob.reason : '';
    assert.ok(reason.startsWith(AES_REASON), reason);
    assert.ok(!reason.includes(PG_ENC.pencil) && !reason.includes('pencil') && !reason.includes('wrong-key'));
    assert.deepEqual(pp.get('erin'), { kind: 'plain', password: 'plainpass' }); // other entries unaffected
  }
  const reasons = [...'ivan judy kate'.split(' ')].map((u) => {
    const s = PoolPasswd.parse(SAMPLE, 'pool_passwd', PG_ENC.key).get(u);
    return s?.kind === 'unusable' ? s.reason : 'not unusable';
  });
  for (const r of reasons) assert.ok(!/not-base64|garbage|not unusable/.test(r), r);
});

test('malformed lines throw naming file:line, without the line content', () => {
  assert.throws(
    () => PoolPasswd.parse('alice:x\n# ok\nSECRET-no-colon-here\n', '/etc/pgpool/pool_passwd'),
    (err: Error) => err.message.startsWith('/etc/pgpool/pool_passwd:3: ') && /missing ':'/.test(err.message) && !err.message.includes('SECRET'),
  );
  assert.throws(
    () => PoolPasswd.parse('\n:SECRETpass\n', 'pp'),
    (err: Error) => err.message.startsWith('pp:2: ') && /empty user name/.test(err.message) && !err.message.includes('SECRET'),
  );
});

test('md5HashFor / scramKeysFor / plainPasswordFor', () => {
  const pp = PoolPasswd.parse(SAMPLE, 'pool_passwd', PG_ENC.key);
  const get = (u: string): PoolSecret => pp.get(u) ?? assert.fail(`no entry for ${u}`);
  assert.equal(md5HashFor(get('alice'), 'alice'), 'md54c21b325d75177d5e9b9789a50ab0c9c');
  assert.equal(md5HashFor(get('bob'), 'postgres'), md5PasswordHash('pencil', 'postgres'));
  assert.equal(md5HashFor(get('dave'), 'dave'), undefined);
  assert.equal(md5HashFor(get('ivan'), 'ivan'), undefined);

  assert.equal(plainPasswordFor(get('bob')), 'pencil');
  assert.equal(plainPasswordFor(get('carol')), 'secret:with:colons');
  assert.equal(plainPasswordFor(get('alice')), undefined);
  assert.equal(plainPasswordFor(get('dave')), undefined);
  assert.equal(plainPasswordFor(get('ivan')), undefined);

  assert.equal(scramKeysFor(get('alice')), undefined); // md5 entries cannot do SCRAM
  assert.equal(scramKeysFor(get('ivan')), undefined);
  const dave = get('dave');
  assert.equal(dave.kind === 'scram' ? scramKeysFor(dave) : undefined, dave.kind === 'scram' ? dave.keys : 'x');
  // plaintext-derived keys: computed once per user and reused (same object, same salt)
  const k1 = scramKeysFor(get('bob'));
  const k2 = scramKeysFor(get('bob'));
  assert.ok(k1 !== undefined);
  assert.equal(k1, k2);
  assert.equal(k1.iterations, 4096);
  // ... and a new PoolPasswd (a reload) derives afresh
  const k3 = scramKeysFor(PoolPasswd.parse(SAMPLE, 'pool_passwd', PG_ENC.key).get('bob') ?? get('erin'));
  assert.notEqual(k3, k1);
  // the derived keys authenticate a client that knows the plaintext, and only that client
  for (const [password, ok] of [['pencil', true], ['pencil2', false]] as const) {
    const c = new ScramClientSession(password);
    const s = new ScramServerSession(k1);
    const final = c.handleServerFirst(s.handleClientFirst(c.clientFirst()));
    if (ok) c.handleServerFinal(s.handleClientFinal(final));
    else assert.throws(() => s.handleClientFinal(final));
  }
});

test('load reads the file and the key file; a missing key file only makes AES entries unusable', () => {
  const dir = tmp();
  try {
    const file = join(dir, 'pool_passwd');
    writeFileSync(file, `bob:AES${PG_ENC.pencil}\nerin:plainpass\n`);
    const key = writeKey(dir, '.pgpoolkey', 'sekrit-key\n');
    assert.deepEqual(PoolPasswd.load(file, key).get('bob'), { kind: 'plain', password: 'pencil' });
    const noKey = PoolPasswd.load(file, join(dir, 'missing-key'));
    assert.equal(noKey.get('bob')?.kind, 'unusable');
    assert.deepEqual(noKey.get('erin'), { kind: 'plain', password: 'plainpass' });
    assert.equal(PoolPasswd.load(file).get('bob')?.kind, 'unusable');
    writeFileSync(file, 'ok:x\nbroken\n');
    assert.throws(() => PoolPasswd.load(file, key), (err: Error) => err.message.startsWith(`${file}:2: `));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Finds Pgpool-II's pg_enc / pg_md5 (Debian puts them in /usr/sbin). */
function findTool(name: string): string | undefined {
  const dirs = ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin', ...(process.env['PATH'] ?? '').split(delimiter)];
  return dirs.map((d) => join(d, name)).find((p) => existsSync(p));
}

function run(tool: string, args: string[], cwd: string): string {
  const env = { ...process.env };
  delete env['PGPOOLKEYFILE'];
  const r = spawnSync(tool, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(r.status, 0, `${tool} failed: ${r.stderr}`);
  return r.stdout;
}

test('AES against the real pg_enc: its entries decrypt, ours are identical', () => {
  const pgEnc = findTool('pg_enc');
  const pgMd5 = findTool('pg_md5');
  if (pgEnc === undefined || pgMd5 === undefined) {
    assert.fail('pg_enc/pg_md5 not found: install Pgpool-II (Debian/Ubuntu: apt-get install pgpool2); the CI script installs it');
  }
  const dir = tmp();
  try {
    const keyText = randomBytes(24).toString('base64');
    const keyFile = writeKey(dir, 'pgpoolkey', keyText + '\n');
    writeFileSync(join(dir, 'pgpool.conf'), "pool_passwd = 'pool_passwd'\n");
    const passwords = ['pencil', 'pä ss:wörd €', randomBytes(30).toString('hex'), 'exactly16bytes!!'];
    for (const password of passwords) {
      const out = run(pgEnc, ['-k', keyFile, password], dir);
      const m = /pool_passwd string: AES(\S+)/.exec(out);
      assert.ok(m?.[1], `unexpected pg_enc output: ${out}`);
      assert.equal(aesDecryptPassword(m[1], keyText), password);
      assert.equal(aesEncryptPassword(password, keyText), m[1]);
    }
    // -m writes pool_passwd next to pgpool.conf; pg_md5 -m adds an md5 entry to the same file
    run(pgEnc, ['-m', '-f', join(dir, 'pgpool.conf'), '-k', keyFile, '-u', 'bob', 'bobs:pässword'], dir);
    run(pgMd5, ['-m', '-f', join(dir, 'pgpool.conf'), '-u', 'carol', 'carolpw'], dir);
    const file = join(dir, 'pool_passwd');
    assert.match(readFileSync(file, 'utf8'), /^bob:AES/m);
    const pp = PoolPasswd.load(file, keyFile);
    assert.deepEqual(pp.get('bob'), { kind: 'plain', password: 'bobs:pässword' });
    assert.deepEqual(pp.get('carol'), { kind: 'md5', hash: md5PasswordHash('carolpw', 'carol') });
    // key file quirks: pg_enc keeps a trailing space and \r, and reads at most 255 bytes
    for (const [name, content] of [['k-cr', 'key \r\n'], ['k-long', 'L'.repeat(400)]] as const) {
      const kf = writeKey(dir, name, content);
      const m = /pool_passwd string: AES(\S+)/.exec(run(pgEnc, ['-k', kf, 'pencil'], dir));
      assert.equal(aesDecryptPassword(m?.[1] ?? '', readPoolKey(kf) ?? ''), 'pencil', name);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
