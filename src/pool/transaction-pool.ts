// pool_mode = transaction: the lane groups (shared backend connections) of every node, user,
// database and startup-parameter set, created when the first session of that kind needs one.

import type { Logger } from 'pino';
import type { BackendCredentials } from '../backend/connection.ts';
import type { BackendNode } from '../backend/node.ts';
import { LaneGroup, type LaneLimits } from './lane-group.ts';
import { poolKey, type Pool } from './pool.ts';

export class TransactionPool {
  private readonly groups = new Map<string, LaneGroup>();

  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
    private readonly limits: () => LaneLimits,
  ) {}

  /**
   * The group for these sessions on `node`. `credentials` open its connections: those of the
   * session that needed the group first (the pool_passwd entry, or its SCRAM keys).
   */
  group(node: BackendNode, user: string, database: string, params: ReadonlyMap<string, string>, credentials: BackendCredentials): LaneGroup {
    // Sessions share connections only when every startup parameter that changes what the
    // server does (client_encoding, DateStyle, TimeZone, options...) is equal. application_name
    // only labels the connection: each session is told its own.
    const values: string[] = [];
    for (const [k, v] of params) if (k !== 'application_name') values.push(`${k}=${v}`);
    values.sort();
    const key = `${poolKey({ node, user, database, params: new Map() })}\0${node.host}:${node.port}\0${values.join('\0')}`;
    let g = this.groups.get(key);
    if (g === undefined) {
      g = new LaneGroup(
        node,
        () => this.pool.lease({ node, user, database, params, credentials }),
        this.limits,
        this.log,
        (conn) => this.pool.release(conn),
      );
      this.groups.set(key, g);
    }
    return g;
  }

  closeAll(): void {
    for (const g of this.groups.values()) g.closeAll();
    this.groups.clear();
  }
}
