// Users from the environment, as pgpool2_on_k8s takes them: every <X>_USERNAME / <X>_PASSWORD pair
// (POSTGRES_USERNAME/POSTGRES_PASSWORD fed from a Kubernetes Secret) becomes a pool_passwd-like
// entry, kept in memory only. Pure: nothing is written to disk, nothing is logged.

import { inspect } from 'node:util';
import { PoolPasswd } from './pool-passwd.ts';
import type { PoolSecret } from './pool-passwd.ts';

/** Suffix of the variable holding a user name; its partner has {@link PASSWORD_SUFFIX}. */
export const USERNAME_SUFFIX = '_USERNAME';
/** Suffix of the variable holding that user's password. */
export const PASSWORD_SUFFIX = '_PASSWORD';
/** Variables with this prefix are configuration parameters, never users. */
const PARAMS_PREFIX = 'PGPOOL_PARAMS_';

/**
 * A user → plaintext password map whose contents never show up when it is printed: `util.inspect`
 * (console.log, pino's fallback) and `JSON.stringify` give only the number of users.
 */
export class EnvUserMap extends Map<string, string> {
  /** For JSON.stringify: the count only. */
  toJSON(): { users: number } {
    return { users: this.size };
  }

  [inspect.custom](): string {
    return `EnvUserMap { users: ${this.size} }`;
  }
}

/** What {@link scanEnvUsers} found. `notes` name variables only, never a value. */
export interface EnvUsersScan {
  readonly users: EnvUserMap;
  /** One line per pair that was skipped or lost a conflict, e.g. "APP_USERNAME is set but APP_PASSWORD is not". */
  readonly notes: readonly string[];
}

/**
 * Reads every `<X>_USERNAME` / `<X>_PASSWORD` pair from `env`.
 *
 * The rule: a variable whose name ends in `_USERNAME` and has a non-empty prefix X (any text, so
 * `POSTGRES`, `APP` and the multi-word `APP_RO` all work) pairs with the variable named exactly
 * `<X>_PASSWORD`. For a one-word prefix this is pgpool2_on_k8s's rule (X = the text before the
 * first `_`); pgpool2_on_k8s never found multi-word prefixes, pgrouter does. Names are
 * case-sensitive, as the shell's are. Variables starting with `PGPOOL_PARAMS_` are parameters
 * and are never read as users. Values are taken literally (no trimming: a Secret value with a
 * trailing newline keeps it).
 *
 * Skipped, with a note: a `_USERNAME` without its `_PASSWORD`, an empty user name, an empty
 * password (PostgreSQL never accepts one). When two prefixes name the same user with different
 * passwords, the prefix first in sort order wins (so the result does not depend on the order of
 * the environment) and the other is noted.
 */
export function scanEnvUsers(env: NodeJS.ProcessEnv): EnvUsersScan {
  const users = new EnvUserMap();
  const notes: string[] = [];
  const from = new Map<string, string>(); // user → prefix that set it
  for (const name of Object.keys(env).sort()) {
    if (!name.endsWith(USERNAME_SUFFIX) || name.startsWith(PARAMS_PREFIX)) continue;
    const prefix = name.slice(0, -USERNAME_SUFFIX.length);
    if (prefix === '') continue;
    const user = env[name];
    const passwordVar = `${prefix}${PASSWORD_SUFFIX}`;
    const password = env[passwordVar];
    if (user === undefined) continue;
    if (user === '') {
      notes.push(`${name} is empty: no user taken from ${prefix}_*`);
      continue;
    }
    if (password === undefined) {
      notes.push(`${name} is set but ${passwordVar} is not: user skipped`);
      continue;
    }
    if (password === '') {
      notes.push(`${passwordVar} is empty: user from ${name} skipped`);
      continue;
    }
    const earlier = users.get(user);
    if (earlier !== undefined) {
      if (earlier !== password) {
        notes.push(`${name} names the same user as ${from.get(user)}${USERNAME_SUFFIX} with another password: ${from.get(user)}_* wins`);
      }
      continue;
    }
    users.set(user, password);
    from.set(user, prefix);
  }
  return { users, notes };
}

/** The users of {@link scanEnvUsers}, without the notes: user → plaintext password. */
export function usersFromEnv(env: NodeJS.ProcessEnv): Map<string, string> {
  return scanEnvUsers(env).users;
}

/**
 * pgpool2_on_k8s's `PGPOOL_SKIP_PASSWORD_ENCRYPTION=true`: the `_PASSWORD` values are already
 * pool_passwd secrets (`md5…`, `AES…`, `TEXT…`, `SCRAM-SHA-256$…`) rather than plaintext.
 */
export function passwordsPreEncrypted(env: NodeJS.ProcessEnv): boolean {
  const v = env['PGPOOL_SKIP_PASSWORD_ENCRYPTION'];
  return v !== undefined && ['true', 'on', 'yes', '1'].includes(v.trim().toLowerCase());
}

/** What client authentication needs from a user table: {@link PoolPasswd} has this shape too. */
export interface SecretLookup {
  /** The entry for `user`, or undefined if there is none. */
  get(user: string): PoolSecret | undefined;
  /** Number of users with an entry. */
  readonly size: number;
}

/** Options of {@link mergeEnvUsers}. */
export interface MergeOptions {
  /** Classify each password as a pool_passwd secret (see {@link passwordsPreEncrypted}); default false: plaintext. */
  readonly preEncrypted?: boolean;
  /** The pool key for pre-encrypted `AES…` values (see readPoolKey). */
  readonly aesKey?: string | Buffer | undefined;
}

function envSecret(password: string, o: MergeOptions): PoolSecret {
  if (o.preEncrypted !== true) return { kind: 'plain', password };
  // PoolPasswd.parse reads lines: a value holding a line break can only be a plain password.
  if (/[\r\n]/.test(password)) return { kind: 'plain', password };
  // The user part does not matter to classification (an md5 hash already embeds the real user).
  return PoolPasswd.parse(`u:${password}`, 'environment', o.aesKey).get('u') ?? { kind: 'unusable', reason: 'empty password' };
}

class MergedUsers implements SecretLookup {
  readonly size: number;
  constructor(
    private readonly passwd: SecretLookup | undefined,
    private readonly env: ReadonlyMap<string, PoolSecret>,
  ) {
    let extra = 0;
    for (const user of env.keys()) if (passwd?.get(user) === undefined) extra++;
    this.size = (passwd?.size ?? 0) + extra;
  }

  get(user: string): PoolSecret | undefined {
    return this.env.get(user) ?? this.passwd?.get(user);
  }

  toJSON(): { users: number } {
    return { users: this.size };
  }

  [inspect.custom](): string {
    return `SecretLookup { users: ${this.size} }`;
  }
}

/**
 * pool_passwd (if any) plus the environment's users, as one lookup. A user in both gets the
 * environment's password: the environment wins, as it does for parameters (and as pgpool2_on_k8s,
 * which writes the pairs into pool_passwd, ends up doing). One PoolSecret object is made per user
 * here, so SCRAM keys derived from it (scramKeysFor) are computed once for the life of the lookup.
 */
export function mergeEnvUsers(passwd: SecretLookup | undefined, users: ReadonlyMap<string, string>, o: MergeOptions = {}): SecretLookup {
  const env = new Map<string, PoolSecret>();
  for (const [user, password] of users) env.set(user, envSecret(password, o));
  return new MergedUsers(passwd, env);
}
