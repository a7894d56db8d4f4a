// Short-lived backend connections for pgrouter's own checks (health check, streaming-replication
// check, primary discovery): open and authenticate, run simple queries and read their rows, close.
// They never enter the pool.

import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { ServerConnection } from '../backend/connection.ts';
import { collectRows } from '../backend/query-rows.ts';
import type { BackendNode } from '../backend/node.ts';
import type { PoolSecret } from '../auth/pool-passwd.ts';
import type { ErrorFields } from '../protocol/error-response.ts';

/** One result row: text values, null for SQL NULL. */
export type Row = readonly (string | null)[];

/** Where and as whom a check connects. */
export interface CheckTarget {
  readonly node: BackendNode;
  readonly user: string;
  readonly database: string;
  /** The password to answer the backend with (pool_passwd entry or the *_check_password). */
  readonly secret: PoolSecret | undefined;
  /** Time allowed for the TCP connect and, separately, for authentication. */
  readonly connectTimeoutMs: number;
  readonly ssl: boolean;
}

/** The backend answered a check's query with an ErrorResponse. */
export class CheckQueryError extends Error {
  constructor(readonly fields: ErrorFields) {
    super(fields.message);
    this.name = 'CheckQueryError';
  }
}

/** A host name that did not resolve (counted as a failed check attempt). */
export class LookupError extends Error {
  constructor(
    readonly host: string,
    readonly code: string,
  ) {
    super(`could not translate host name "${host}" to address (${code})`);
    this.name = 'LookupError';
  }
}

/**
 * Resolves the node's host name, so that a DNS failure is reported as such. Kubernetes Services
 * move: every check resolves again (and ServerConnection resolves again when it connects).
 */
export async function resolveNode(node: BackendNode): Promise<void> {
  if (node.unix || net.isIP(node.host) !== 0) return;
  try {
    await lookup(node.host);
  } catch (e) {
    throw new LookupError(node.host, (e as NodeJS.ErrnoException).code ?? 'error');
  }
}

/** Rejects after `ms` (0: never); a result that arrives too late is handed to `late` (to close it). */
export function withDeadline<T>(p: Promise<T>, ms: number, what: string, late?: (v: T) => void): Promise<T> {
  if (ms <= 0) return p;
  return new Promise<T>((resolve, reject) => {
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      reject(new Error(`${what} timed out after ${ms} ms`));
    }, ms);
    p.then(
      (v) => {
        if (expired) late?.(v);
        else {
          clearTimeout(timer);
          resolve(v);
        }
      },
      (e: unknown) => {
        if (!expired) {
          clearTimeout(timer);
          reject(e as Error);
        }
      },
    );
  });
}

/** A check's own backend connection. */
export class CheckConnection {
  private constructor(private readonly conn: ServerConnection) {}

  /** Opens and authenticates a connection (application_name `pgrouter`). */
  static async open(t: CheckTarget): Promise<CheckConnection> {
    const conn = await ServerConnection.open({
      node: t.node,
      user: t.user,
      database: t.database,
      params: new Map([['application_name', 'pgrouter']]),
      credentials: { secret: t.secret },
      connectTimeoutMs: t.connectTimeoutMs,
      ssl: t.ssl,
    });
    return new CheckConnection(conn);
  }

  /** The backend's process id. */
  get pid(): number {
    return this.conn.pid;
  }

  /**
   * Runs one statement as a simple Query and resolves with its rows (all result sets together).
   * Rejects with CheckQueryError if the backend raised an error, or on timeout / lost connection.
   */
  query(sql: string, timeoutMs: number): Promise<Row[]> {
    return collectRows(this.conn, sql, timeoutMs, {
      timeout: `query timed out after ${timeoutMs} ms`,
      closed: 'server closed the connection',
    }).then(({ rows, error }) => {
      if (error) throw new CheckQueryError(error);
      return rows;
    });
  }


  /** Sends Terminate and closes. */
  close(): void {
    this.conn.close();
  }
}
