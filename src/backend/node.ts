// The identity of one backend node as the data path sees it: id, address and role.
// Immutable; a new value is made when configuration or discovery changes it.

/** A PostgreSQL node pgrouter can send statements to. */
export interface BackendNode {
  readonly id: number;
  readonly host: string;
  readonly port: number;
  /** True when host is a Unix-socket directory (starts with '/'). */
  readonly unix: boolean;
}

/** Where to connect for a node: a TCP address or the Unix socket PostgreSQL names `.s.PGSQL.<port>`. */
export function nodeAddress(n: BackendNode): { path: string } | { host: string; port: number } {
  return n.unix ? { path: `${n.host.replace(/\/$/, '')}/.s.PGSQL.${n.port}` } : { host: n.host, port: n.port };
}

/** `node 1 (10.0.0.7:5432)`, for logs and error messages. */
export function describeNode(n: BackendNode): string {
  return `node ${n.id} (${n.host}:${n.port})`;
}
