// The BEGIN pgrouter sends in front of a transaction's first request when it answered the
// client's BEGIN itself (transaction_defer_begin): Parse, Bind and Execute of the unnamed
// statement, with no Sync. Should it fail, the server skips everything up to the next Sync, so
// the client's request never runs outside the transaction it asked for.

import { bind, execute, parse } from './writer.ts';

/** The deferred BEGIN's messages. */
export const DEFERRED_BEGIN = Buffer.concat([parse('', 'BEGIN'), bind('', ''), execute('')]);

/** The replies it gets when it succeeds: ParseComplete, BindComplete and CommandComplete. */
export const DEFERRED_BEGIN_REPLIES = 3;
