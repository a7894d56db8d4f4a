// The SQLSTATE codes pgrouter itself raises, named as in PostgreSQL's errcodes.txt.
// A backend's own errors are relayed byte for byte and never pass through here.

/** SQLSTATE codes used by pgrouter's own ErrorResponses. */
export const SqlState = {
  SUCCESSFUL_COMPLETION: '00000',
  CONNECTION_EXCEPTION: '08000',
  CONNECTION_FAILURE: '08006',
  SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION: '08001',
  PROTOCOL_VIOLATION: '08P01',
  FEATURE_NOT_SUPPORTED: '0A000',
  INVALID_AUTHORIZATION_SPECIFICATION: '28000',
  INVALID_PASSWORD: '28P01',
  TOO_MANY_CONNECTIONS: '53300',
  QUERY_CANCELED: '57014',
  ADMIN_SHUTDOWN: '57P01',
  CANNOT_CONNECT_NOW: '57P03',
  IDLE_SESSION_TIMEOUT: '57P05',
  UNDEFINED_OBJECT: '42704',
  SYNTAX_ERROR: '42601',
  CONFIG_FILE_ERROR: 'F0000',
  INTERNAL_ERROR: 'XX000',
} as const;

export type SqlStateCode = (typeof SqlState)[keyof typeof SqlState];
