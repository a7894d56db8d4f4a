// SHOW pool_nodes, pool_backend_stats and pool_health_check_stats: one row per configured node,
// in Pgpool-II 4.7's columns, from the cluster view, the per-node counters and the last checks.
// pg_status and pg_role come from the last health check / role probe (not a live check as in
// Pgpool-II): SHOW never waits on a backend.

import type { ClusterNode, ClusterView } from '../pool/cluster.ts';
import { fixed6, timestamp } from './format.ts';
import type { AdminSources } from './sources.ts';

export const POOL_NODES_COLUMNS = [
  'node_id', 'hostname', 'port', 'status', 'pg_status', 'lb_weight', 'role', 'pg_role', 'select_cnt',
  'load_balance_node', 'replication_delay', 'replication_state', 'replication_sync_state', 'last_status_change',
] as const;

export const POOL_BACKEND_STATS_COLUMNS = [
  'node_id', 'hostname', 'port', 'status', 'role', 'select_cnt', 'insert_cnt', 'update_cnt', 'delete_cnt',
  'ddl_cnt', 'other_cnt', 'panic_cnt', 'fatal_cnt', 'error_cnt',
] as const;

export const POOL_HEALTH_CHECK_STATS_COLUMNS = [
  'node_id', 'hostname', 'port', 'status', 'role', 'last_status_change', 'total_count', 'success_count',
  'fail_count', 'skip_count', 'retry_count', 'average_retry_count', 'max_retry_count', 'max_duration',
  'min_duration', 'average_duration', 'last_health_check', 'last_successful_health_check',
  'last_skip_health_check', 'last_failed_health_check',
] as const;

/** pgpool's belief: the node it sends writes to is the primary, every other one a standby. */
function role(view: ClusterView, n: ClusterNode): string {
  return n.id === view.primaryId ? 'primary' : 'standby';
}

/** replication_delay: bytes, or seconds (`%.6f second(s)`) when delay_threshold_by_time is set. */
export function replicationDelay(view: ClusterView, n: ClusterNode, byTime: boolean): string {
  if (n.id === view.primaryId) return '0';
  if (byTime) {
    const s = n.lag.seconds ?? 0;
    return `${fixed6(s)} ${s < 2 ? 'second' : 'seconds'}`;
  }
  return String(n.lag.bytes ?? 0);
}

export function poolNodes(src: AdminSources, loadBalanceNode: number): string[][] {
  const view = src.cluster();
  const byTime = src.config().settings.delay_threshold_by_time > 0;
  const total = view.nodes.reduce((a, n) => a + n.weight, 0);
  return view.nodes.map((n) => {
    const primary = n.id === view.primaryId;
    return [
      String(n.id),
      n.host,
      String(n.port),
      n.status,
      src.health.pgStatus(n.id),
      fixed6(total > 0 ? n.weight / total : 0),
      role(view, n),
      src.health.pgRole(n.id),
      String(src.stats.of(n.id).select),
      n.id === loadBalanceNode ? 'true' : 'false',
      replicationDelay(view, n, byTime),
      primary ? '' : n.lag.state,
      primary ? '' : n.lag.syncState,
      timestamp(n.lastStatusChange),
    ];
  });
}

export function poolBackendStats(src: AdminSources): string[][] {
  const view = src.cluster();
  return view.nodes.map((n) => {
    const c = src.stats.of(n.id);
    return [
      String(n.id), n.host, String(n.port), n.status, role(view, n),
      ...[c.select, c.insert, c.update, c.delete, c.ddl, c.other, c.panic, c.fatal, c.error].map(String),
    ];
  });
}

export function poolHealthCheckStats(src: AdminSources): string[][] {
  const view = src.cluster();
  return view.nodes.map((n) => {
    const h = src.health.healthStats(n.id);
    const head = [String(n.id), n.host, String(n.port), n.status, role(view, n), timestamp(n.lastStatusChange)];
    if (!h) return [...head, '0', '0', '0', '0', '0', fixed6(0), '0', '0', '0', fixed6(0), '', '', '', ''];
    return [
      ...head,
      String(h.total),
      String(h.success),
      String(h.fail),
      String(h.skip),
      String(h.retry),
      fixed6(h.averageRetry),
      String(h.maxRetry),
      String(h.maxDurationMs),
      String(h.minDurationMs),
      fixed6(h.averageDurationMs),
      timestamp(h.lastCheck),
      timestamp(h.lastSuccess),
      timestamp(h.lastSkip),
      timestamp(h.lastFailure),
    ];
  });
}
