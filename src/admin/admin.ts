// pgrouter's own SQL commands, answered without a backend: Pgpool-II's SHOW pool_* family,
// PGPOOL SHOW / SET / RESET / RELOAD, and PGPOOL DETACH|ATTACH NODE. Names are case-insensitive and a trailing `;` is allowed; an unknown SHOW pool_xxx
// is left to the backend (which says 42704), as Pgpool-II does.

import type { AdminSessionInfo } from '../client/context.ts';
import { SqlState } from '../errors/sqlstate.ts';
import { errorReply, resultSet } from './result-set.ts';
import { commandComplete } from '../protocol/writer.ts';
import { POOL_BACKEND_STATS_COLUMNS, POOL_HEALTH_CHECK_STATS_COLUMNS, POOL_NODES_COLUMNS, poolBackendStats, poolHealthCheckStats, poolNodes } from './show-nodes.ts';
import { POOL_POOLS_COLUMNS, POOL_PROCESSES_COLUMNS, poolPools, poolProcesses } from './show-processes.ts';
import { POOL_STATUS_COLUMNS, pgpoolShow, poolStatus } from './show-settings.ts';
import { SlotTable } from './slots.ts';
import type { AdminSession, AdminSources } from './sources.ts';
import { poolVersion } from './version.ts';
import { PGPOOL_SET_OR_RESET, pgpoolSetOrReset } from './pgpool-set.ts';
import { NODE_COMMAND, nodeCommand } from './node-admin.ts';
import type { Config } from '../config/load.ts';

const SHOW = /^\s*show\s+(pool_[a-z_]+)\s*;?\s*$/i;
const PGPOOL_SHOW = /^\s*pgpool\s+show\s+("?)([a-z_][a-z0-9_]*)\1\s*;?\s*$/i;
const PGPOOL_RELOAD = /^\s*pgpool\s+reload\s*;?\s*$/i;

export const POOL_VERSION_COLUMNS = ['pool_version'] as const;

export const POOL_CACHE_COLUMNS = [
  'num_cache_hits', 'num_selects', 'cache_hit_ratio', 'num_hash_entries', 'used_hash_entries',
  'num_cache_entries', 'used_cache_entries_size', 'free_cache_entries_size', 'fragment_cache_entries_size',
] as const;

export class Admin {
  private readonly slots: SlotTable;

  constructor(private readonly src: AdminSources) {
    this.slots = new SlotTable(() => src.config().settings.num_init_children);
  }

  /** ProxyContext.admin: the reply for one of pgrouter's commands, or undefined to route `sql` as usual. */
  handle(sql: string, session: AdminSessionInfo): Buffer | undefined {
    const show = SHOW.exec(sql);
    if (show) return this.show(show[1]!.toLowerCase(), session);
    const pg = PGPOOL_SHOW.exec(sql);
    if (pg) return this.pgpoolShow(pg[2]!, session);
    if (PGPOOL_RELOAD.test(sql)) {
      if (!this.src.reload) return errorReply(SqlState.FEATURE_NOT_SUPPORTED, 'PGPOOL RELOAD is not available in this mode');
      this.src.reload();
      return commandComplete('RELOAD');
    }
    if (PGPOOL_SET_OR_RESET.test(sql)) return pgpoolSetOrReset(sql, session.settings);
    const node = NODE_COMMAND.exec(sql);
    if (node) return nodeCommand(this.src, node[1]!.toLowerCase() as 'detach' | 'attach', node[2]!, session.user);
    return undefined;
  }

  /** A client session ended (keeps pool_processes' per-slot counts right). */
  sessionEnded(s: AdminSession): void {
    this.slots.ended(s);
  }

  private show(name: string, session: AdminSessionInfo): Buffer | undefined {
    const src = this.src;
    switch (name) {
      case 'pool_nodes':
        return resultSet(POOL_NODES_COLUMNS, poolNodes(src, session.loadBalanceNode));
      case 'pool_backend_stats':
        return resultSet(POOL_BACKEND_STATS_COLUMNS, poolBackendStats(src));
      case 'pool_health_check_stats':
        return resultSet(POOL_HEALTH_CHECK_STATS_COLUMNS, poolHealthCheckStats(src));
      case 'pool_processes':
        return resultSet(POOL_PROCESSES_COLUMNS, poolProcesses(src, this.slots.sync(src.sessions())));
      case 'pool_pools':
        return resultSet(POOL_POOLS_COLUMNS, poolPools(src, this.slots.sync(src.sessions())));
      case 'pool_status':
        return resultSet(POOL_STATUS_COLUMNS, poolStatus(this.configOf(session), src.cluster()));
      case 'pool_version':
        return resultSet(POOL_VERSION_COLUMNS, [[poolVersion()]]);
      case 'pool_cache':
        // No query cache: Pgpool-II's figures with memory_cache_enabled off.
        return resultSet(POOL_CACHE_COLUMNS, [['0', '0', '0.00', '0', '0', '0', '0', '0', '0']]);
      default:
        return undefined;
    }
  }

  /** The configuration as this session sees it: with its PGPOOL SET values. */
  private configOf(session: AdminSessionInfo): Config {
    const c = this.src.config();
    const o = session.settings;
    return o === undefined || o.size === 0 ? c : { ...c, settings: o.apply(c.settings) };
  }

  private pgpoolShow(name: string, session: AdminSessionInfo): Buffer {
    const r = pgpoolShow(name, this.configOf(session));
    if (r.kind === 'unknown') return errorReply(SqlState.INTERNAL_ERROR, `config variable "${name}" not found`);
    if (r.kind === 'value') return resultSet([r.column], [[r.value]]);
    return resultSet(POOL_STATUS_COLUMNS, r.rows);
  }
}
