// The BEGIN pgrouter sends in front of a transaction's first request when it answered the
// client's BEGIN itself (transaction_defer_begin): Parse, Bind and Execute of the unnamed
// statement, with no Sync. Should it fail, the server skips everything up to the next Sync, so
// the client's request never runs outside the transaction it asked for. Also the replies
// pgrouter gives a plain BEGIN, and a COMMIT or ROLLBACK right after it, that it answers itself.

import { TxStatus } from './codes.ts';
import { bind, commandComplete, execute, parse, readyForQuery } from './writer.ts';

/** The deferred BEGIN's messages. */
export const DEFERRED_BEGIN = Buffer.concat([parse('', 'BEGIN'), bind('', ''), execute('')]);

/** The replies it gets when it succeeds: ParseComplete, BindComplete and CommandComplete. */
export const DEFERRED_BEGIN_REPLIES = 3;

/**
 * What PostgreSQL answers a plain transaction-control statement with: its CommandComplete (END
 * is a COMMIT, ABORT a ROLLBACK) and ReadyForQuery, in a transaction after BEGIN, idle after the end.
 */
export function transactionControlReply(word: 'begin' | 'start' | 'commit' | 'end' | 'rollback' | 'abort'): Buffer {
  if (word === 'begin' || word === 'start')
    return Buffer.concat([commandComplete(word === 'start' ? 'START TRANSACTION' : 'BEGIN'), readyForQuery(TxStatus.InTransaction)]);
  return Buffer.concat([commandComplete(word === 'rollback' || word === 'abort' ? 'ROLLBACK' : 'COMMIT'), readyForQuery(TxStatus.Idle)]);
}
