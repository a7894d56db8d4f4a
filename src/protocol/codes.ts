// Message type bytes and special request codes of PostgreSQL's protocol 3.0, named as in
// the protocol documentation ("Message Formats"). Pure constants, no I/O.

/** Frontend (client → server) message type bytes. */
export const Frontend = {
  Bind: 0x42, // 'B'
  Close: 0x43, // 'C'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyFail: 0x66, // 'f'
  Describe: 0x44, // 'D'
  Execute: 0x45, // 'E'
  Flush: 0x48, // 'H'
  FunctionCall: 0x46, // 'F'
  Parse: 0x50, // 'P'
  /** PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse all use 'p'. */
  Password: 0x70, // 'p'
  Query: 0x51, // 'Q'
  Sync: 0x53, // 'S'
  Terminate: 0x58, // 'X'
} as const;

/** Backend (server → client) message type bytes. */
export const Backend = {
  Authentication: 0x52, // 'R'
  BackendKeyData: 0x4b, // 'K'
  BindComplete: 0x32, // '2'
  CloseComplete: 0x33, // '3'
  CommandComplete: 0x43, // 'C'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  CopyBothResponse: 0x57, // 'W'
  DataRow: 0x44, // 'D'
  EmptyQueryResponse: 0x49, // 'I'
  ErrorResponse: 0x45, // 'E'
  FunctionCallResponse: 0x56, // 'V'
  NegotiateProtocolVersion: 0x76, // 'v'
  NoData: 0x6e, // 'n'
  NoticeResponse: 0x4e, // 'N'
  NotificationResponse: 0x41, // 'A'
  ParameterDescription: 0x74, // 't'
  ParameterStatus: 0x53, // 'S'
  ParseComplete: 0x31, // '1'
  PortalSuspended: 0x73, // 's'
  ReadyForQuery: 0x5a, // 'Z'
  RowDescription: 0x54, // 'T'
} as const;

/** Authentication request codes carried in an 'R' message. */
export const AuthCode = {
  Ok: 0,
  KerberosV5: 2,
  CleartextPassword: 3,
  MD5Password: 5,
  GSS: 7,
  GSSContinue: 8,
  SSPI: 9,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;

/** The version/request codes that stand where a StartupMessage carries its protocol version. */
export const RequestCode = {
  Protocol3: 196608, // 3 << 16 | 0
  CancelRequest: 80877102,
  SSLRequest: 80877103,
  GSSENCRequest: 80877104,
} as const;

/** ReadyForQuery transaction status bytes. */
export const TxStatus = {
  Idle: 0x49, // 'I'
  InTransaction: 0x54, // 'T'
  Failed: 0x45, // 'E'
} as const;

/** PostgreSQL's own limits on frontend message sizes (PQ_LARGE/SMALL_MESSAGE_LIMIT). */
export const MessageLimit = {
  large: 0x3fffffff - 1,
  small: 10000,
  startup: 10000,
} as const;

/** Frontend types that may be large; every other type is held to MessageLimit.small. */
export const LARGE_FRONTEND_TYPES: ReadonlySet<number> = new Set([
  Frontend.Query,
  Frontend.Parse,
  Frontend.Bind,
  Frontend.FunctionCall,
  Frontend.CopyData,
  Frontend.Password,
]);

/** Every message type a client may send after authentication. */
export const FRONTEND_TYPES: ReadonlySet<number> = new Set(Object.values(Frontend));
