// PGPOOL DETACH NODE n / PGPOOL ATTACH NODE n: an operator's planned switchover, what Pgpool-II
// offers only through pcp_detach_node / pcp_attach_node. Allowed to the users listed in
// pgrouter_admin_users; a detached node is down until it is attached (see ClusterStore).

import { SqlState } from '../errors/sqlstate.ts';
import { commandComplete, errorResponse } from '../protocol/writer.ts';
import { errorReply } from './result-set.ts';
import type { AdminSources } from './sources.ts';

export const NODE_COMMAND = /^\s*pgpool\s+(detach|attach)\s+node\s+(\S+?)\s*;?\s*$/i;

/** The reply to PGPOOL DETACH|ATTACH NODE `idText`, run by `user`. */
export function nodeCommand(src: AdminSources, verb: 'detach' | 'attach', idText: string, user: string): Buffer {
  const admins = src.config().settings.pgrouter_admin_users;
  if (!admins.includes(user))
    return errorResponse({
      severity: 'ERROR',
      code: SqlState.INSUFFICIENT_PRIVILEGE,
      message: `permission denied to ${verb} a node: user "${user}" is not in pgrouter_admin_users`,
      hint: 'List the users allowed to detach and attach nodes in pgrouter_admin_users (comma-separated) and reload.',
    });
  const view = src.cluster();
  const id = /^\d+$/.test(idText) ? Number(idText) : NaN;
  const node = Number.isSafeInteger(id) ? view.node(id) : undefined;
  if (!node) {
    const ids = view.nodes.map((n) => n.id);
    return errorReply(
      SqlState.INVALID_PARAMETER_VALUE,
      `node id ${idText} is out of range: configured nodes are ${ids.length > 0 ? `${Math.min(...ids)} to ${Math.max(...ids)}` : 'none'}`,
    );
  }
  const health = src.health;
  if (verb === 'detach') {
    if (!health.detach) return errorReply(SqlState.FEATURE_NOT_SUPPORTED, 'PGPOOL DETACH NODE is not available in this mode');
    health.detach(id);
    // Sessions whose primary (or, without a primary, base) connection is on that node end, as
    // Pgpool-II restarts its children when the primary fails over; readers just move on.
    for (const s of src.sessions()) s.nodeDetached?.(id);
    return commandComplete('DETACH NODE');
  }
  if (!health.attach) return errorReply(SqlState.FEATURE_NOT_SUPPORTED, 'PGPOOL ATTACH NODE is not available in this mode');
  health.attach(id);
  return commandComplete('ATTACH NODE');
}
