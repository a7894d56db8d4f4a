// pool_hba.conf: which authentication method a client must pass, by connection type,
// database, user and address, in pg_hba.conf's syntax (first matching line wins).

import { readFileSync } from 'node:fs';
import net from 'node:net';

export type HbaMethod = 'trust' | 'reject' | 'password' | 'md5' | 'scram-sha-256';
const METHODS: ReadonlySet<string> = new Set(['trust', 'reject', 'password', 'md5', 'scram-sha-256']);

interface HbaRule {
  readonly line: number;
  readonly type: 'local' | 'host' | 'hostssl' | 'hostnossl';
  readonly databases: readonly string[];
  readonly users: readonly string[];
  readonly address: { readonly net: net.BlockList } | 'all' | null;
  readonly method: HbaMethod;
}

/** The connection being checked. */
export interface HbaClient {
  readonly local: boolean;
  readonly ssl: boolean;
  readonly address: string;
  readonly database: string;
  readonly user: string;
}

/** Splits a line into fields, keeping "quoted" fields whole. */
function fields(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"]|"")*)"|([^\s"]+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line)) !== null) out.push(m[1] !== undefined ? m[1].replace(/""/g, '"') : m[2]!);
  return out;
}

export class HbaFile {
  private constructor(private readonly rules: readonly HbaRule[]) {}

  /** Parses pool_hba.conf text; throws naming `file:line` and the reason. */
  static parse(text: string, file: string): HbaFile {
    const rules: HbaRule[] = [];
    text.split('\n').forEach((raw, i) => {
      const line = raw.replace(/#.*$/, '').trim();
      if (line === '') return;
      const f = fields(line);
      const where = `${file}:${i + 1}`;
      const type = f[0];
      if (type !== 'local' && type !== 'host' && type !== 'hostssl' && type !== 'hostnossl')
        throw new Error(`${where}: invalid connection type "${type}"`);
      const need = type === 'local' ? 4 : 5;
      if (f.length < need) throw new Error(`${where}: end-of-line before authentication method`);
      let address: HbaRule['address'] = null;
      let methodAt = 3;
      if (type !== 'local') {
        methodAt = 4;
        address = parseAddress(f[3]!, f[4], where);
        if (address !== 'all' && !f[3]!.includes('/') && f[4] !== undefined && net.isIP(f[4])) methodAt = 5;
      }
      const method = f[methodAt];
      if (method === undefined || !METHODS.has(method))
        throw new Error(`${where}: invalid authentication method "${method ?? ''}"`);
      rules.push({
        line: i + 1,
        type,
        databases: f[1]!.split(','),
        users: f[2]!.split(','),
        address,
        method: method as HbaMethod,
      });
    });
    return new HbaFile(rules);
  }

  static load(path: string): HbaFile {
    return HbaFile.parse(readFileSync(path, 'utf8'), path);
  }

  /** The method of the first matching rule, or undefined when none matches. */
  match(c: HbaClient): HbaMethod | undefined {
    for (const r of this.rules) {
      if (r.type === 'local' ? !c.local : c.local) continue;
      if (r.type === 'hostssl' && !c.ssl) continue;
      if (r.type === 'hostnossl' && c.ssl) continue;
      if (!matchName(r.databases, c.database, c.user)) continue;
      if (!matchName(r.users, c.user, c.user)) continue;
      if (r.address !== null && r.address !== 'all' && !checkAddress(r.address.net, c.address)) continue;
      return r.method;
    }
    return undefined;
  }
}

function matchName(list: readonly string[], value: string, user: string): boolean {
  for (const item of list) {
    if (item === 'all' || item === value) return true;
    if (item === 'sameuser' && value === user) return true;
  }
  return false;
}

function parseAddress(addr: string, mask: string | undefined, where: string): HbaRule['address'] {
  if (addr === 'all' || addr === 'samehost' || addr === 'samenet') return 'all';
  const list = new net.BlockList();
  const [ip, bits] = addr.split('/');
  const family = net.isIP(ip ?? '');
  if (family === 0) throw new Error(`${where}: invalid IP address "${addr}"`);
  const type = family === 6 ? 'ipv6' : 'ipv4';
  let prefix: number;
  if (bits !== undefined) prefix = Number(bits);
  else if (mask !== undefined && net.isIP(mask)) prefix = maskBits(mask);
  else throw new Error(`${where}: IP address "${addr}" needs a CIDR mask or a netmask`);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32))
    throw new Error(`${where}: invalid CIDR mask in address "${addr}"`);
  list.addSubnet(ip!, prefix, type);
  return { net: list };
}

function maskBits(mask: string): number {
  return mask.split('.').reduce((n, part) => n + (Number(part) >>> 0).toString(2).replace(/0/g, '').length, 0);
}

function checkAddress(list: net.BlockList, address: string): boolean {
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return list.check(v4, net.isIP(v4) === 6 ? 'ipv6' : 'ipv4');
}
