// Per-node counters: statements sent to each node by kind (Pgpool-II's select_cnt and
// pool_backend_stats columns) and the PANIC/FATAL/ERROR replies each node sent.

import type { StatementKind } from '../router/statement.ts';

export interface NodeCounters {
  select: number;
  insert: number;
  update: number;
  delete: number;
  ddl: number;
  other: number;
  panic: number;
  fatal: number;
  error: number;
}

const zero = (): NodeCounters => ({ select: 0, insert: 0, update: 0, delete: 0, ddl: 0, other: 0, panic: 0, fatal: 0, error: 0 });

export class NodeStats {
  private readonly byNode = new Map<number, NodeCounters>();

  /** The counters of one node (created on first use). */
  of(nodeId: number): NodeCounters {
    let c = this.byNode.get(nodeId);
    if (!c) this.byNode.set(nodeId, (c = zero()));
    return c;
  }

  /** A statement of `kind` was sent to `nodeId` for a client. */
  statement(nodeId: number, kind: StatementKind): void {
    this.of(nodeId)[kind]++;
  }

  serverError(nodeId: number, severity: string): void {
    const c = this.of(nodeId);
    if (severity === 'PANIC') c.panic++;
    else if (severity === 'FATAL') c.fatal++;
    else if (severity === 'ERROR') c.error++;
  }
}
