// Sends one simple Query on a backend connection that no client is using and hands every reply
// chunk to the caller, resolving at its ReadyForQuery. Shared by the health checks and the
// exporter's Pgpool-II connection, which decode the replies in their own ways.

import * as w from '../protocol/writer.ts';
import type { ReplySink, ServerConnection } from './connection.ts';

export interface SimpleQueryMessages {
  /** The error when the reply takes longer than the timeout (the connection is then closed). */
  readonly timeout: string;
  /** The error when the server closes the connection without a reason. */
  readonly closed: string;
}

/**
 * Runs `sql` as a simple Query. `onChunk` sees the raw reply bytes; if it throws, the stream is
 * out of sync: the promise rejects with that error and the connection is closed.
 */
export function sendSimpleQuery(
  conn: ServerConnection,
  sql: string,
  timeoutMs: number,
  onChunk: (chunk: Buffer) => void,
  messages: SimpleQueryMessages,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let finished = false;
    const finish = (err?: Error): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      conn.sink = null;
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => {
      finish(new Error(messages.timeout));
      conn.close();
    }, timeoutMs);
    const sink: ReplySink = {
      onReply(_c, chunk) {
        try {
          onChunk(chunk);
        } catch (e) {
          finish(e as Error);
          conn.close();
        }
      },
      onReady(c) {
        if (c.owed === 0) finish();
      },
      onServerClose(_c, err) {
        finish(err ?? new Error(messages.closed));
      },
    };
    conn.sink = sink;
    conn.request(w.query(sql), 1, true);
  });
}
