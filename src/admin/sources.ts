// What the SHOW commands read from the running proxy: configuration, cluster view, counters,
// the health monitor's last results, client sessions and pooled backend connections. main.ts
// provides it; everything here is read-only.

import type { Config } from '../config/load.ts';
import type { ClusterView } from '../pool/cluster.ts';
import type { NodeStats } from '../pool/node-stats.ts';
import type { ConnectionInfo } from '../pool/pool.ts';
import type { HealthStats } from '../health/health-stats.ts';

/** What SHOW reads of one client session. */
export interface AdminSession {
  /** pgrouter's BackendKeyData pid for the session; 0 until the session is ready. */
  readonly pid: number;
  readonly user: string;
  readonly database: string;
  /** Epoch ms. */
  readonly startedAt: number;
  /** Epoch ms of the last request finished or bytes received. */
  readonly lastActivity: number;
  /** The client began a transaction that has not reached a server yet (a deferred BEGIN). */
  readonly deferredTransaction?: boolean;
  /** PGPOOL DETACH NODE ran on `nodeId`: a session whose primary connection is there ends. */
  nodeDetached?(nodeId: number): void;
}

/** The health monitor's answers (see ClusterMonitor). */
export interface HealthView {
  healthStats(nodeId: number): HealthStats | undefined;
  pgStatus(nodeId: number): 'up' | 'down' | 'unknown';
  pgRole(nodeId: number): 'primary' | 'standby' | 'unknown';
  /** PGPOOL DETACH NODE: down until attached, whatever checks find. */
  detach?(nodeId: number): void;
  /** PGPOOL ATTACH NODE: checks may bring the node back (up at once if its last check passed). */
  attach?(nodeId: number): void;
}

export interface AdminSources {
  config(): Config;
  cluster(): ClusterView;
  readonly stats: NodeStats;
  readonly health: HealthView;
  /** Client sessions (ready or not). */
  sessions(): Iterable<AdminSession>;
  /** Open backend connections. */
  connections(): readonly ConnectionInfo[];
  /** When this pgrouter started. */
  readonly startedAt: Date;
  /** PGPOOL RELOAD: re-reads the configuration as SIGHUP does (absent: not available). */
  readonly reload?: (() => void) | undefined;
}
