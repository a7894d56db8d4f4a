// Where `pgrouter exporter` connects, read as pgpool2_exporter reads it: DATA_SOURCE_NAME (a
// libpq URL or key=value string) wins; else DATA_SOURCE_USER, DATA_SOURCE_PASS and DATA_SOURCE_URI
// (`host:port/db?sslmode=...`). The password is kept out of every printable form.

/** A parsed data source. `describe()` is the only text of it meant for logs. */
export interface DataSource {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string | undefined;
  readonly database: string;
  /** libpq sslmode: disable, allow, prefer, require, verify-ca, verify-full. */
  readonly sslmode: string;
  /** `postgresql://user:MASKED_PASSWORD@host:port/db?sslmode=...` (pgpool2_exporter's MaskPassword). */
  describe(): string;
}

const SSLMODES = new Set(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']);

function build(p: Record<string, string>): DataSource {
  const host = p['host'] || 'localhost';
  const port = Number(p['port'] || '5432');
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`data source: port "${p['port']}" is not valid`);
  const user = p['user'] || process.env['USER'] || 'postgres';
  const sslmode = p['sslmode'] || 'prefer';
  if (!SSLMODES.has(sslmode)) throw new Error(`data source: sslmode "${sslmode}" is not valid`);
  const password = p['password'];
  const database = p['dbname'] || user;
  const hostText = host.includes(':') && !host.startsWith('/') ? `[${host}]` : host;
  return {
    host,
    port,
    user,
    password,
    database,
    sslmode,
    describe: () =>
      `postgresql://${encodeURIComponent(user)}${password !== undefined ? ':MASKED_PASSWORD' : ''}@${host.startsWith('/') ? '' : hostText}:${port}/${encodeURIComponent(database)}?sslmode=${sslmode}${host.startsWith('/') ? `&host=${encodeURIComponent(host)}` : ''}`,
  };
}

/** `postgres://` / `postgresql://` URL. */
function parseUrl(s: string): Record<string, string> {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    // Never echo the string: it holds the password.
    throw new Error('data source: DATA_SOURCE_NAME is not a valid postgresql:// URL');
  }
  const p: Record<string, string> = {};
  if (u.hostname) p['host'] = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (u.port) p['port'] = u.port;
  if (u.username) p['user'] = decodeURIComponent(u.username);
  if (u.password) p['password'] = decodeURIComponent(u.password);
  const db = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (db) p['dbname'] = db;
  for (const [k, v] of u.searchParams) p[k === 'database' ? 'dbname' : k] = v;
  return p;
}

/** libpq's `key=value key='quoted value'` form. */
function parseKeywords(s: string): Record<string, string> {
  const p: Record<string, string> = {};
  const re = /\s*([a-zA-Z_]+)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S*))/gy;
  let at = 0;
  for (;;) {
    re.lastIndex = at;
    const m = re.exec(s);
    if (!m) break;
    p[m[1]!] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!;
    at = re.lastIndex;
  }
  if (s.slice(at).trim() !== '') throw new Error('data source: DATA_SOURCE_NAME is neither a URL nor key=value pairs');
  return p;
}

/** Parses one DSN (URL or key=value). */
export function parseDsn(s: string): DataSource {
  const t = s.trim();
  return build(/^postgres(ql)?:\/\//i.test(t) ? parseUrl(t) : parseKeywords(t));
}

/** The data source named by the environment, as pgpool2_exporter reads it. */
export function dataSourceFromEnv(env: NodeJS.ProcessEnv): DataSource {
  const dsn = env['DATA_SOURCE_NAME'];
  if (dsn !== undefined && dsn !== '') return parseDsn(dsn);
  const uri = env['DATA_SOURCE_URI'];
  if (uri === undefined || uri === '') throw new Error('set DATA_SOURCE_NAME, or DATA_SOURCE_URI (with DATA_SOURCE_USER and DATA_SOURCE_PASS)');
  const user = env['DATA_SOURCE_USER'] ?? '';
  const pass = env['DATA_SOURCE_PASS'] ?? '';
  const auth = user === '' ? '' : `${encodeURIComponent(user)}${pass !== '' ? `:${encodeURIComponent(pass)}` : ''}@`;
  return parseDsn(`postgresql://${auth}${uri}`);
}
