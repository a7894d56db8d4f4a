// The bounded set of reason labels that routing decisions are counted under
// (pgrouter_routing_decisions_total): the free-text reasons of the routing trace name tables,
// functions and byte counts, so they are reduced to a category before they become a label.

/** Categories of reasons that keep a balanceable statement on the primary, by the reason's first words. */
const BY_PREFIX: ReadonlyArray<readonly [prefix: string, category: string]> = [
  ['load_balance_mode is off', 'load_balance_off'],
  ['leading comment', 'sql_comment'],
  ['transaction is READ WRITE', 'read_write_transaction'],
  ['in writing transaction', 'writing_transaction'],
  ['write function', 'write_function'],
  ['system catalog', 'system_catalog'],
  ['temporary table', 'temp_table'],
  ['unlogged table', 'unlogged_table'],
  ['primary_routing_query_pattern_list', 'query_pattern'],
  ['dml_adaptive', 'dml_adaptive'],
  // Reasons of the balancing step itself.
  ['read in a transaction the replica did not begin', 'transaction_began_on_primary'],
  ['read (node', 'node_unavailable'],
  ['read', 'load_balance'],
  ['replica node', 'replica_lag'],
];

/** Every category a decision can be counted under (for documentation and tests). */
export const REASON_CATEGORIES: readonly string[] = [
  'write', 'session_command', 'prepared_statement', ...new Set(BY_PREFIX.map(([, c]) => c)),
  // pool_mode = transaction: a read sent to the primary while its catalog facts are looked up, a
  // statement inside a transaction (which runs on its primary lane), one of a pinned session.
  'catalog_lookup', 'transaction', 'pinned_session',
  'other',
];

const memo = new Map<string, string>();
const MEMO_LIMIT = 1024;

/** The category of a trace reason (see BY_PREFIX); `other` for one it does not know. */
export function reasonCategory(reason: string): string {
  const hit = memo.get(reason);
  if (hit !== undefined) return hit;
  let category = 'other';
  for (const [prefix, c] of BY_PREFIX)
    if (reason.startsWith(prefix)) {
      category = c;
      break;
    }
  // Reasons with names or figures in them are many: keep the memo bounded.
  if (memo.size >= MEMO_LIMIT) memo.clear();
  memo.set(reason, category);
  return category;
}
