// Runs pgrouter's own statements (reset_query_list, SETs on reuse) on a backend connection
// that no client is using, swallowing the replies and reporting whether any failed.

import * as w from '../protocol/writer.ts';
import type { ReplySink, ServerConnection } from './connection.ts';

/**
 * Sends each statement as a simple Query, pipelined, and resolves when all have answered:
 * true if none raised an ERROR. Rejects if the connection breaks or the timeout passes.
 */
export function runInternal(conn: ServerConnection, statements: readonly string[], timeoutMs: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const errorsBefore = conn.errors;
    const timer = setTimeout(() => finish(new Error('internal query timed out')), timeoutMs);
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      conn.sink = null;
      if (err) reject(err);
      else resolve(conn.errors === errorsBefore);
    };
    const sink: ReplySink = {
      onReply() {
        // Replies to pgrouter's own statements go nowhere; the connection counts their errors.
      },
      onReady(c) {
        if (c.owed === 0) finish();
      },
      onServerClose(_c, err) {
        finish(err ?? new Error('server closed the connection'));
      },
    };
    conn.sink = sink;
    const parts = statements.map((s) => w.query(s));
    conn.owed += parts.length;
    conn.write(Buffer.concat(parts));
  });
}
