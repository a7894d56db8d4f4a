// The cluster view: the configured backend nodes and which one is the primary. Immutable; a
// new snapshot replaces the old one when configuration or health checks change it, and a
// session reads the current snapshot once per request.

import type { BackendNode } from '../backend/node.ts';

/** Pgpool-II's node status words. */
export type NodeStatus = 'up' | 'waiting' | 'down' | 'unused';

/** Replication figures from the streaming-replication check; null while unknown. */
export interface NodeLag {
  readonly bytes: number | null;
  readonly seconds: number | null;
  /** pg_stat_replication.state / sync_state, '' when unmatched or for the primary. */
  readonly state: string;
  readonly syncState: string;
}

export interface ClusterNode extends BackendNode {
  readonly weight: number;
  readonly alwaysPrimary: boolean;
  readonly disallowToFailover: boolean;
  readonly applicationName: string;
  readonly status: NodeStatus;
  readonly lag: NodeLag;
  readonly lastStatusChange: Date;
}

export const UNKNOWN_LAG: NodeLag = { bytes: null, seconds: null, state: '', syncState: '' };

/** True for a node that may be sent statements. */
export function isUsable(n: ClusterNode): boolean {
  return n.status === 'up' || n.status === 'waiting';
}

export class ClusterView {
  constructor(
    readonly nodes: readonly ClusterNode[],
    /** Id of the node believed to be the primary, or -1 when none is known. */
    readonly primaryId: number,
  ) {}

  /** Node 0's role goes to an ALWAYS_PRIMARY node if there is one, else to the first configured node. */
  static fromNodes(nodes: readonly ClusterNode[]): ClusterView {
    const flagged = nodes.find((n) => n.alwaysPrimary);
    return new ClusterView(nodes, (flagged ?? nodes[0])?.id ?? -1);
  }

  get primary(): ClusterNode | undefined {
    return this.nodes.find((n) => n.id === this.primaryId);
  }

  node(id: number): ClusterNode | undefined {
    return this.nodes.find((n) => n.id === id);
  }

  /** A copy with one node changed (status changes also stamp lastStatusChange). */
  withNode(id: number, patch: Partial<Omit<ClusterNode, 'id'>>): ClusterView {
    return new ClusterView(
      this.nodes.map((n) =>
        n.id !== id
          ? n
          : { ...n, ...patch, lastStatusChange: patch.status !== undefined && patch.status !== n.status ? new Date() : n.lastStatusChange },
      ),
      this.primaryId,
    );
  }

  /** A copy with another primary (-1: none known). */
  withPrimary(id: number): ClusterView {
    return new ClusterView(this.nodes, id);
  }
}

/**
 * Holds the current cluster view; health checks swap it, sessions read it. Also holds the nodes an
 * operator detached (PGPOOL DETACH NODE): such a node stays 'down' in every view set here, whatever
 * a check finds, until it is attached again.
 */
export class ClusterStore {
  private listeners: Array<(v: ClusterView, old: ClusterView) => void> = [];
  private readonly detachedIds = new Set<number>();
  constructor(private current: ClusterView) {}

  get view(): ClusterView {
    return this.current;
  }

  set(v: ClusterView): void {
    const old = this.current;
    this.current = this.keepDetachedDown(v);
    for (const l of this.listeners) l(this.current, old);
  }

  onChange(l: (v: ClusterView, old: ClusterView) => void): void {
    this.listeners.push(l);
  }

  /** True while `id` is detached by an operator. */
  isDetached(id: number): boolean {
    return this.detachedIds.has(id);
  }

  /** PGPOOL DETACH NODE: the node goes down now and stays down until {@link attach}. */
  detach(id: number): void {
    this.detachedIds.add(id);
    this.set(this.current);
  }

  /** PGPOOL ATTACH NODE: checks may bring the node back again (its status is not changed here). */
  attach(id: number): void {
    this.detachedIds.delete(id);
  }

  private keepDetachedDown(v: ClusterView): ClusterView {
    let out = v;
    for (const id of this.detachedIds) {
      const n = out.node(id);
      if (n && n.status !== 'down') out = out.withNode(id, { status: 'down' });
    }
    return out;
  }
}
