// The cluster view: the configured backend nodes and which one is the primary. Immutable; a
// new snapshot replaces the old one when configuration or health checks change it, and a
// session reads the current snapshot once per request.

import type { BackendNode } from '../backend/node.ts';

export interface ClusterNode extends BackendNode {
  readonly weight: number;
  readonly alwaysPrimary: boolean;
  readonly disallowToFailover: boolean;
  readonly applicationName: string;
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
}
