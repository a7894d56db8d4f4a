// The error type for failures pgrouter reports to a client as an ErrorResponse.

import type { SqlStateCode } from './sqlstate.ts';

export type Severity = 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'LOG' | 'INFO' | 'DEBUG';

/** An error with a SQLSTATE, a severity and optional detail/hint, sent to the client as PostgreSQL would. */
export class ProxyError extends Error {
  constructor(
    readonly code: SqlStateCode,
    message: string,
    readonly severity: Severity = 'FATAL',
    readonly detail?: string,
    readonly hint?: string,
    /** Logged but never sent to the client (PostgreSQL keeps auth failure reasons in its log). */
    readonly internal?: string,
  ) {
    super(message);
    this.name = 'ProxyError';
  }
}
