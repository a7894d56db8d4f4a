// What a client session needs from the running proxy: settings snapshot, pool, cluster view,
// secrets, admission and cancel registries. main.ts builds it; sessions only read it.

import type tls from 'node:tls';
import type { Logger } from 'pino';
import type { SecretLookup } from '../auth/env-users.ts';
import type { Pool } from '../pool/pool.ts';
import type { ClusterView } from '../pool/cluster.ts';
import type { NodeStats } from '../pool/node-stats.ts';
import type { TransactionPool } from '../pool/transaction-pool.ts';
import type { Admission } from './admission.ts';
import type { CancelRegistry } from './cancel-registry.ts';
import type { HbaFile } from './hba.ts';
import type { RouteSettings } from '../router/route.ts';
import type { SessionOverrides } from '../config/session-overrides.ts';

/** What an admin command may know of the session that sent it. */
export interface AdminSessionInfo {
  readonly user: string;
  readonly database: string;
  /** This session's load-balance node (SHOW pool_nodes' load_balance_node). */
  readonly loadBalanceNode: number;
  /** The session's PGPOOL SET values (PGPOOL SET/RESET change them; PGPOOL SHOW shows them). */
  readonly settings?: SessionOverrides | undefined;
}

/** The settings a session reads, in the units it uses. */
export interface SessionSettings {
  /** Seconds a client has to finish authentication (authentication_timeout; 0: no limit). */
  readonly authenticationTimeout: number;
  /** Seconds a client may sit idle between requests (client_idle_limit; 0: no limit). */
  readonly clientIdleLimit: number;
  /** allow_clear_text_frontend_auth: ask a cleartext password when pool_passwd has no entry. */
  readonly allowClearTextFrontendAuth: boolean;
  readonly connectTimeoutMs: number;
  /** pool_mode: session (a backend connection per session) or transaction (shared connections). */
  readonly poolMode: 'session' | 'transaction';
  /** transaction_pool_size and transaction_pipeline_depth. */
  readonly transactionPoolSize: number;
  readonly transactionPipelineDepth: number;
  /** transaction_unnamed_statement_cache. */
  readonly transactionUnnamedStatementCache: boolean;
  /** transaction_defer_begin. */
  readonly transactionDeferBegin: boolean;
}

export interface ProxyContext {
  readonly log: Logger;
  readonly pool: Pool;
  readonly admission: Admission;
  readonly cancels: CancelRegistry;
  /** Per-node statement and error counters (SHOW pool_nodes, pool_backend_stats, metrics). */
  readonly stats: NodeStats;
  /** pool_mode = transaction: the shared backend connections. */
  readonly lanes: TransactionPool;
  /**
   * pgrouter's own commands (SHOW pool_nodes, PGPOOL SHOW...): a complete reply (without the
   * ReadyForQuery) for a simple Query it answers itself, or undefined to route it as usual.
   */
  admin?: ((sql: string, session: AdminSessionInfo) => Buffer | undefined) | undefined;
  settings(): SessionSettings;
  routeSettings(): RouteSettings;
  cluster(): ClusterView;
  passwd(): SecretLookup | undefined;
  /** pool_hba.conf when enable_pool_hba is on. */
  hba(): HbaFile | undefined;
  /** Server-side TLS when ssl is on. */
  tls(): tls.SecureContext | undefined;
  /** True once SIGTERM has started a drain. */
  draining(): boolean;
  /**
   * A backend connection failed (socket error, or could not be opened). With
   * failover_on_backend_error on, the node is taken out at once (health checks bring it back).
   */
  backendFailed(nodeId: number, why: string): void;
  /** Called when a session ends. */
  sessionEnded(s: unknown): void;
}
