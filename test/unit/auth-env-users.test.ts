// Unit tests for src/auth/env-users.ts: the <X>_USERNAME/<X>_PASSWORD rule (one- and multi-word
// prefixes, skipped and conflicting pairs), secrets kept out of printing, and the merged lookup
// over pool_passwd (env wins, sizes, pre-encrypted values, SCRAM key caching per user).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { md5PasswordHash } from '../../src/auth/md5.ts';
import { PoolPasswd, md5HashFor, plainPasswordFor, scramKeysFor } from '../../src/auth/pool-passwd.ts';
import { mergeEnvUsers, passwordsPreEncrypted, scanEnvUsers, usersFromEnv } from '../../src/auth/env-users.ts';

test('POSTGRES_USERNAME/POSTGRES_PASSWORD become one user, values taken literally', () => {
  const users = usersFromEnv({ POSTGRES_USERNAME: 'app', POSTGRES_PASSWORD: " p'= \"w d\n", HOME: '/root' });
  assert.deepEqual([...users], [['app', " p'= \"w d\n"]]);
});

test('multi-word prefixes pair with exactly <X>_PASSWORD', () => {
  const users = usersFromEnv({
    APP_RO_USERNAME: 'reader',
    APP_RO_PASSWORD: 'r-pw',
    APP_USERNAME: 'writer',
    APP_PASSWORD: 'w-pw',
    MY_LONG_PREFIX_X_USERNAME: 'x',
    MY_LONG_PREFIX_X_PASSWORD: 'x-pw',
  });
  assert.deepEqual(Object.fromEntries(users), { reader: 'r-pw', writer: 'w-pw', x: 'x-pw' });
});

test('unpaired, empty and non-matching variables are skipped, with notes naming variables only', () => {
  const scan = scanEnvUsers({
    LONELY_USERNAME: 'lonely',
    EMPTYPW_USERNAME: 'nopw',
    EMPTYPW_PASSWORD: '',
    EMPTYUSER_USERNAME: '',
    EMPTYUSER_PASSWORD: 'secret-value-1',
    _USERNAME: 'noprefix',
    _PASSWORD: 'secret-value-2',
    PGPOOL_PCP_USER: 'pcp',
    PGPOOL_PCP_PASSWORD: 'secret-value-3',
    PGPOOL_PARAMS_SR_CHECK_USERNAME: 'not-a-user',
    PGPOOL_PARAMS_SR_CHECK_PASSWORD: 'secret-value-4',
    lower_username: 'lower',
    lower_password: 'secret-value-5',
    ORPHAN_PASSWORD: 'secret-value-6',
  });
  assert.equal(scan.users.size, 0);
  assert.deepEqual(scan.notes, [
    'EMPTYPW_PASSWORD is empty: user from EMPTYPW_USERNAME skipped',
    'EMPTYUSER_USERNAME is empty: no user taken from EMPTYUSER_*',
    'LONELY_USERNAME is set but LONELY_PASSWORD is not: user skipped',
  ]);
  for (const n of scan.notes) assert.doesNotMatch(n, /secret-value|lonely|nopw/);
});

test('two prefixes naming one user: the first in sort order wins, whatever the environment order', () => {
  const a = scanEnvUsers({ ZED_USERNAME: 'app', ZED_PASSWORD: 'z-pw', ALPHA_USERNAME: 'app', ALPHA_PASSWORD: 'a-pw' });
  const b = scanEnvUsers({ ALPHA_USERNAME: 'app', ALPHA_PASSWORD: 'a-pw', ZED_USERNAME: 'app', ZED_PASSWORD: 'z-pw' });
  assert.equal(a.users.get('app'), 'a-pw');
  assert.equal(b.users.get('app'), 'a-pw');
  assert.deepEqual(a.notes, ['ZED_USERNAME names the same user as ALPHA_USERNAME with another password: ALPHA_* wins']);
  // The same password twice is no conflict.
  assert.deepEqual(scanEnvUsers({ A_USERNAME: 'u', A_PASSWORD: 'p', B_USERNAME: 'u', B_PASSWORD: 'p' }).notes, []);
});

test('printing the users or the merged lookup never shows a password', () => {
  const users = usersFromEnv({ POSTGRES_USERNAME: 'app', POSTGRES_PASSWORD: 'hunter2-secret' });
  const merged = mergeEnvUsers(undefined, users);
  for (const shown of [inspect(users), JSON.stringify(users), inspect(merged), JSON.stringify(merged), String(inspect({ users, merged }))]) {
    assert.doesNotMatch(shown, /hunter2/);
  }
  assert.equal(JSON.stringify(merged), '{"users":1}');
  assert.equal(inspect(users), 'EnvUserMap { users: 1 }');
});

test('merged lookup: env users on their own, plain secrets usable for md5 and SCRAM', () => {
  const merged = mergeEnvUsers(undefined, usersFromEnv({ POSTGRES_USERNAME: 'app', POSTGRES_PASSWORD: 'pw' }));
  assert.equal(merged.size, 1);
  const s = merged.get('app');
  assert.ok(s);
  assert.equal(plainPasswordFor(s), 'pw');
  assert.equal(md5HashFor(s, 'app'), md5PasswordHash('pw', 'app'));
  // One secret object per user: SCRAM keys are derived once, not per login.
  assert.equal(merged.get('app'), s);
  assert.equal(scramKeysFor(s), scramKeysFor(merged.get('app')!));
  assert.equal(merged.get('nobody'), undefined);
});

test('merged lookup over pool_passwd: the environment wins, other file users stay, size counts the union', () => {
  const file = PoolPasswd.parse(`app:TEXTfile-pw\nalice:${md5PasswordHash('alice-pw', 'alice')}\n`, 'pool_passwd');
  const merged = mergeEnvUsers(file, usersFromEnv({ POSTGRES_USERNAME: 'app', POSTGRES_PASSWORD: 'env-pw', RO_USERNAME: 'bob', RO_PASSWORD: 'bob-pw' }));
  assert.equal(merged.size, 3);
  assert.equal(plainPasswordFor(merged.get('app')!), 'env-pw');
  assert.deepEqual(merged.get('alice'), { kind: 'md5', hash: md5PasswordHash('alice-pw', 'alice') });
  assert.equal(plainPasswordFor(merged.get('bob')!), 'bob-pw');
  // No env users: the file's entries, unchanged.
  const same = mergeEnvUsers(file, new Map());
  assert.equal(same.size, 2);
  assert.equal(plainPasswordFor(same.get('app')!), 'file-pw');
});

test('without pre-encryption a value that looks like a hash is still a plaintext password', () => {
  const hash = md5PasswordHash('pw', 'app');
  const merged = mergeEnvUsers(undefined, new Map([['app', hash]]));
  assert.deepEqual(merged.get('app'), { kind: 'plain', password: hash });
});

test('PGPOOL_SKIP_PASSWORD_ENCRYPTION=true: values are pool_passwd secrets (md5, TEXT, AES without key)', () => {
  assert.equal(passwordsPreEncrypted({ PGPOOL_SKIP_PASSWORD_ENCRYPTION: 'true' }), true);
  assert.equal(passwordsPreEncrypted({ PGPOOL_SKIP_PASSWORD_ENCRYPTION: 'false' }), false);
  assert.equal(passwordsPreEncrypted({}), false);
  const hash = md5PasswordHash('pw', 'app');
  const users = new Map([
    ['app', hash],
    ['t', 'TEXTplain-pw'],
    ['a', 'AESlM1RujBBu1P+RUVoPSGnHw=='],
    ['nl', 'line1\nline2'],
  ]);
  const merged = mergeEnvUsers(undefined, users, { preEncrypted: true });
  assert.deepEqual(merged.get('app'), { kind: 'md5', hash });
  assert.equal(plainPasswordFor(merged.get('t')!), 'plain-pw');
  assert.equal(merged.get('a')?.kind, 'unusable');
  assert.doesNotMatch(JSON.stringify(merged.get('a')), /lM1Ruj/);
  assert.equal(plainPasswordFor(merged.get('nl')!), 'line1\nline2');
  // With pg_enc's key (vector from auth-pool-passwd.test.ts) the AES value decrypts.
  const keyed = mergeEnvUsers(undefined, users, { preEncrypted: true, aesKey: 'sekrit-key' });
  assert.equal(plainPasswordFor(keyed.get('a')!), 'pä ss:word');
});
