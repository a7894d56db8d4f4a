// The status page's data (/status.json): the nodes and the pool's use, built from the same SHOW
// snapshot as the metrics, so the page works the same in front of pgrouter and of a Pgpool-II.

import { parseNumber, parseReplicationDelay, type PgpoolSnapshot, type ShowNamespace } from './pgpool-metrics.ts';
import { namedRows, type ShowResult } from './show-result.ts';

export interface StatusNode {
  readonly id: string;
  readonly hostname: string;
  readonly port: string;
  readonly status: string;
  readonly pgStatus: string;
  readonly role: string;
  readonly pgRole: string;
  readonly weight: number | null;
  readonly selects: number | null;
  /** Every statement counted for the node (pool_backend_stats), else its SELECTs. */
  readonly statements: number | null;
  readonly lagBytes: number | null;
  readonly lagSeconds: number | null;
  readonly replicationState: string;
  readonly syncState: string;
  readonly lastStatusChange: string;
}

export interface StatusData {
  readonly mode: 'pgrouter' | 'exporter';
  readonly version: string;
  readonly up: boolean;
  /** Epoch ms of the snapshot. */
  readonly time: number;
  readonly nodes: readonly StatusNode[];
  readonly pool: {
    readonly clientsUsed: number | null;
    readonly clientsTotal: number | null;
    readonly backendsUsed: number | null;
    readonly backendsTotal: number | null;
  };
  readonly errors: readonly string[];
}

function rows(s: PgpoolSnapshot, ns: ShowNamespace): Array<Record<string, string>> | undefined {
  const r = s.results.get(ns);
  return r === undefined || r instanceof Error ? undefined : namedRows(r as ShowResult);
}

const num = (v: string | undefined): number | null => {
  const n = v === undefined || v === '' ? undefined : parseNumber(v);
  return n === undefined || !Number.isFinite(n) ? null : n;
};

const STATEMENT_COLUMNS = ['select_cnt', 'insert_cnt', 'update_cnt', 'delete_cnt', 'ddl_cnt', 'other_cnt'];

export function statusData(s: PgpoolSnapshot, mode: StatusData['mode'], time = Date.now()): StatusData {
  const stats = new Map((rows(s, 'pool_backend_stats') ?? []).map((r) => [r['node_id'] ?? `${r['hostname']}:${r['port']}`, r]));
  const nodes = (rows(s, 'pool_nodes') ?? []).map((r): StatusNode => {
    const b = stats.get(r['node_id'] ?? `${r['hostname']}:${r['port']}`);
    const text = parseReplicationDelay(r['replication_delay'] ?? '');
    const statements = b ? STATEMENT_COLUMNS.reduce((a, c) => a + (num(b[c]) ?? 0), 0) : num(r['select_cnt']);
    return {
      id: r['node_id'] ?? '',
      hostname: r['hostname'] ?? '',
      port: r['port'] ?? '',
      status: r['status'] ?? '',
      pgStatus: r['pg_status'] ?? '',
      role: r['role'] ?? '',
      pgRole: r['pg_role'] ?? '',
      weight: num(r['lb_weight']),
      selects: num(r['select_cnt']),
      statements,
      lagBytes: 'replication_delay_bytes' in r ? num(r['replication_delay_bytes']) : (text.bytes ?? null),
      lagSeconds: 'replication_delay_seconds' in r ? num(r['replication_delay_seconds']) : (text.seconds ?? null),
      replicationState: r['replication_state'] ?? '',
      syncState: r['replication_sync_state'] ?? '',
      lastStatusChange: r['last_status_change'] ?? '',
    };
  });
  const processes = rows(s, 'pool_processes');
  const pools = rows(s, 'pool_pools');
  const errors: string[] = [];
  for (const [ns, r] of s.results) if (r instanceof Error) errors.push(`SHOW ${ns}: ${r.message}`);
  return {
    mode,
    version: s.version ?? '',
    up: s.up,
    time,
    nodes,
    pool: {
      clientsUsed: processes ? processes.filter((r) => r['username'] !== '' && r['database'] !== '').length : null,
      clientsTotal: processes ? processes.length : null,
      backendsUsed: pools ? pools.filter((r) => r['username'] !== '').length : null,
      backendsTotal: pools ? pools.filter((r) => r['pool_pid'] !== '').length : null,
    },
    errors,
  };
}
