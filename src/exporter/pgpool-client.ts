// The exporter's one connection to a Pgpool-II (pgpool2_exporter keeps exactly one): opened with
// pgrouter's own backend code (startup, TLS, trust/password/md5/SCRAM), then simple Queries whose
// replies are decoded into named columns and text rows.

import { ServerConnection } from '../backend/connection.ts';
import { sendSimpleQuery } from '../backend/simple-query.ts';
import { ShowCollector, type ShowResult } from '../metrics/show-result.ts';
import type { DataSource } from './dsn.ts';

export class PgpoolConnection {
  private constructor(private readonly conn: ServerConnection) {}

  /** Connects and authenticates (application_name `pgrouter-exporter`). */
  static async open(ds: DataSource, connectTimeoutMs: number): Promise<PgpoolConnection> {
    const conn = await ServerConnection.open({
      node: { id: 0, host: ds.host, port: ds.port, unix: ds.host.startsWith('/') },
      user: ds.user,
      database: ds.database,
      params: new Map([['application_name', 'pgrouter-exporter']]),
      credentials: { secret: ds.password !== undefined ? { kind: 'plain', password: ds.password } : undefined },
      connectTimeoutMs,
      ssl: ds.sslmode !== 'disable',
    });
    return new PgpoolConnection(conn);
  }

  /** False once the server closed the connection or it broke. */
  get usable(): boolean {
    return this.conn.state !== 'closed' && !this.conn.broken;
  }

  /**
   * Runs one statement (simple Query) and resolves with its result set; rejects with ShowError
   * when the server answered with an error, or with an Error when the connection failed or the
   * reply took longer than `timeoutMs` (the connection is then closed).
   */
  query(sql: string, timeoutMs: number): Promise<ShowResult> {
    if (!this.usable) return Promise.reject(new Error('connection to Pgpool-II is closed'));
    const collector = new ShowCollector();
    return sendSimpleQuery(this.conn, sql, timeoutMs, (chunk) => collector.feed(chunk), {
      timeout: `"${sql}" timed out after ${timeoutMs} ms`,
      closed: 'Pgpool-II closed the connection',
    }).then(() => collector.result());
  }

  close(): void {
    this.conn.close();
  }
}
