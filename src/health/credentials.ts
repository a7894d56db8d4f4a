// The password a check answers the backend with: health_check_password / sr_check_password when
// set (plain, TEXT, md5 or AES, as Pgpool-II accepts), else the user's pool_passwd entry.

import { PoolPasswd, findPoolKeyFile, readPoolKey, type PoolSecret } from '../auth/pool-passwd.ts';
import type { SecretLookup } from '../auth/env-users.ts';

/** Where AES-encrypted check passwords find their key (Pgpool-II's -k, $PGPOOLKEYFILE, ~/.pgpoolkey). */
export interface KeySource {
  readonly keyFile?: string | undefined;
  readonly env: NodeJS.ProcessEnv;
}

/**
 * Classifies a configured check password the way pool_passwd entries are classified; an empty
 * one means "look the user up in pool_passwd". Never puts the password in an error.
 */
export function checkSecret(user: string, password: string, passwd: SecretLookup | undefined, keys: KeySource): PoolSecret | undefined {
  if (password === '') return passwd?.get(user);
  // PoolPasswd.parse reads lines: a password holding a line break can only be a plain one.
  if (/[\r\n]/.test(password)) return { kind: 'plain', password };
  let aesKey: Buffer | undefined;
  if (password.startsWith('AES')) {
    const file = findPoolKeyFile({ keyFile: keys.keyFile, env: keys.env });
    aesKey = file === undefined ? undefined : readPoolKey(file);
  }
  // The user part is irrelevant to classification; the md5 form already embeds the real user.
  return PoolPasswd.parse(`u:${password}`, 'check password', aesKey).get('u');
}
