// The table of every pgpool.conf parameter pgrouter knows: type, default, unit, range, context,
// and whether pgrouter acts on it. Parsing, validation, SHOW output and docs are all derived from it.
// Types, defaults, units and contexts follow Pgpool-II 4.3-4.7; every doc line is our own.

/** The value kinds of the parameter table. */
export type ParamType = 'boolean' | 'integer' | 'real' | 'string' | 'enum' | 'list';
/** Base units of time parameters: values are stored as integers in this unit. */
export type TimeUnit = 'ms' | 's' | 'min';
/** Base units of memory parameters (bytes or kilobytes), as in PostgreSQL's GUC_UNIT_BYTE/KB. */
export type MemoryUnit = 'B' | 'kB';
/** Base unit of an integer parameter. */
export type Unit = TimeUnit | MemoryUnit;
/** When a change takes effect: at start only, on reload (SIGHUP), or per session (PGPOOL SET). */
export type Context = 'restart' | 'reload' | 'session';

interface CommonDef {
  /** Pgpool-II's name, snake_case; for per-node parameters the name without the node number. */
  readonly name: string;
  readonly context: Context;
  /** One line describing the parameter, shown by SHOW/PGPOOL SHOW and the docs. */
  readonly doc: string;
  /** 'ignored': accepted and validated, but pgrouter does not act on it (see ignoredReason). */
  readonly status: 'supported' | 'ignored';
  readonly ignoredReason?: string;
  /** Indexed by node number: backend_hostname0, backend_hostname1, ... */
  readonly perNode?: true;
  /** With perNode: also settable without a number; that value is the default for every node. */
  readonly global?: true;
  /** A password or key: never printed (formatted as *****) and never put in a message. */
  readonly secret?: true;
  /** Not a Pgpool-II parameter: pgrouter's own. */
  readonly pgrouter?: true;
  /** A file or directory path: relative values are resolved against the config file's directory. */
  readonly path?: true;
  /** An integer shown in octal, like a file mode (0600). */
  readonly octal?: true;
}

/** Row of an on/off parameter. */
export interface BooleanDef extends CommonDef {
  readonly type: 'boolean';
  readonly default: boolean;
}
/** Row of an integer parameter; with a unit, values are stored in that base unit. */
export interface IntegerDef extends CommonDef {
  readonly type: 'integer';
  readonly default: number;
  readonly unit?: Unit;
  readonly min: number;
  readonly max: number;
}
/** Row of a floating-point parameter. */
export interface RealDef extends CommonDef {
  readonly type: 'real';
  readonly default: number;
  readonly min: number;
  readonly max: number;
}
/** Row of a free-text parameter. */
export interface StringDef extends CommonDef {
  readonly type: 'string';
  readonly default: string;
}
/** Row of a parameter taking one of a fixed set of words. */
export interface EnumDef extends CommonDef {
  readonly type: 'enum';
  readonly default: string;
  /** Canonical values (matched case-insensitively). */
  readonly values: readonly string[];
  /** Other spellings Pgpool-II accepts, mapped to the canonical value. */
  readonly aliases?: Readonly<Record<string, string>>;
}
/** Row of a parameter holding a separated list of items. */
export interface ListDef extends CommonDef {
  readonly type: 'list';
  readonly default: readonly string[];
  readonly separator: ',' | ';';
}

/** One row of the parameter table. */
export type SettingDef = BooleanDef | IntegerDef | RealDef | StringDef | EnumDef | ListDef;

/** An old parameter name that still sets a current one. */
export interface AliasDef {
  /** The old name, as Pgpool-II spells it (matched case-insensitively, except delegate_IP). */
  readonly name: string;
  /** The current parameter it sets. */
  readonly target: string;
  /** Warning text, appended to 'parameter "<name>" ...'. */
  readonly note: string;
}

const INT_MAX = 2147483647;
/** Pgpool-II uses C long (64 bit) here; JavaScript numbers are exact up to 2^53 - 1. */
const LONG_MAX = Number.MAX_SAFE_INTEGER;

const MESSAGE_LEVELS = [
  'debug5', 'debug4', 'debug3', 'debug2', 'debug1', 'info', 'notice', 'warning', 'error', 'log', 'fatal', 'panic',
] as const;

// Reasons shared by groups of ignored parameters.
const WATCHDOG = {
  status: 'ignored',
  ignoredReason:
    'pgrouter has no watchdog: Kubernetes keeps it available (replicas behind a Service), so there is no virtual IP, heartbeat or quorum',
} as const;
const PCP = {
  status: 'ignored',
  ignoredReason:
    'pgrouter has no PCP server: administer it with SQL (SHOW pool_*, PGPOOL SHOW), its metrics endpoint and the Kubernetes API',
} as const;
const RECOVERY = {
  status: 'ignored',
  ignoredReason: 'online recovery is the PostgreSQL operator\'s job: it rebuilds replicas, pgrouter only routes to them',
} as const;
const SCRIPTS = {
  status: 'ignored',
  ignoredReason:
    'pgrouter runs no failover scripts: Kubernetes and the PostgreSQL operator promote nodes and repoint Services',
} as const;
const NATIVE_REPLICATION = {
  status: 'ignored',
  ignoredReason:
    'native replication and snapshot isolation modes are not supported: PostgreSQL streaming replication keeps the copies in step',
} as const;
const QUERY_CACHE = {
  status: 'ignored',
  ignoredReason: 'pgrouter has no in-memory query cache: every query is answered by PostgreSQL',
} as const;
const LOG_FILES = {
  status: 'ignored',
  ignoredReason:
    'pgrouter logs to stdout/stderr and leaves files, rotation and syslog to the container runtime',
} as const;
const PROCESSES = {
  status: 'ignored',
  ignoredReason:
    'pgrouter serves every client from one event loop: there are no child processes to pre-fork, count or recycle',
} as const;
const OK = { status: 'supported' } as const;

/**
 * Every parameter, in pgpool.conf's section order. `as const` keeps the literal types from which
 * {@link Settings} is computed; `satisfies` checks each row's shape.
 */
export const SETTINGS = [
  // --- Clustering mode ---
  { name: 'backend_clustering_mode', type: 'enum', default: 'streaming_replication', context: 'restart', ...OK,
    values: ['streaming_replication', 'native_replication', 'logical_replication', 'slony', 'raw', 'snapshot_isolation'],
    doc: 'How the backends are kept in sync; pgrouter routes for streaming_replication, logical_replication and raw' },

  // --- Connections ---
  { name: 'listen_addresses', type: 'list', separator: ',', default: ['localhost'], context: 'restart', ...OK,
    doc: 'Host names or IP addresses to accept client connections on; * means all, empty means Unix sockets only' },
  { name: 'port', type: 'integer', default: 9999, min: 1024, max: 65535, context: 'restart', ...OK,
    doc: 'TCP port for client connections (also names the Unix socket file .s.PGSQL.<port>)' },
  { name: 'unix_socket_directories', type: 'list', separator: ',', default: ['/tmp'], context: 'restart', ...OK,
    doc: 'Directories to create the client Unix socket in; empty means no Unix socket' },
  { name: 'unix_socket_group', type: 'string', default: '', context: 'restart', status: 'ignored',
    ignoredReason: 'set socket ownership with the pod securityContext (fsGroup) instead',
    doc: 'Group that should own the Unix sockets' },
  { name: 'unix_socket_permissions', type: 'integer', default: 0o777, min: 0, max: 0o777, octal: true, context: 'restart', ...OK,
    doc: 'File mode of the Unix sockets, in octal' },
  { name: 'reserved_connections', type: 'integer', default: 0, min: 0, max: INT_MAX, context: 'restart', ...OK,
    doc: 'Client slots kept free: past num_init_children minus this, new clients get "Sorry, too many clients already"' },
  { name: 'listen_backlog_multiplier', type: 'integer', default: 2, min: 1, max: INT_MAX, context: 'restart', ...OK,
    doc: 'The listen(2) backlog is num_init_children times this' },
  { name: 'serialize_accept', type: 'boolean', default: false, context: 'restart', ...PROCESSES,
    doc: 'Take a lock around accept() to avoid a thundering herd of children' },
  { name: 'pcp_listen_addresses', type: 'list', separator: ',', default: ['localhost'], context: 'restart', ...PCP,
    doc: 'Addresses the PCP administration server listens on' },
  { name: 'pcp_port', type: 'integer', default: 9898, min: 1024, max: 65535, context: 'restart', ...PCP,
    doc: 'TCP port of the PCP administration server' },
  { name: 'pcp_socket_dir', type: 'list', separator: ',', default: ['/tmp'], context: 'restart', ...PCP,
    doc: 'Directories for the PCP Unix socket' },

  // --- Backends (one set per node: backend_hostname0, backend_port0, ...) ---
  { name: 'backend_hostname', type: 'string', default: '', perNode: true, context: 'reload', ...OK,
    doc: 'Host name, IP address or socket directory of PostgreSQL node N; a node exists only if this is set' },
  { name: 'backend_port', type: 'integer', default: 5432, min: 1024, max: 65535, perNode: true, context: 'reload', ...OK,
    doc: 'Port of PostgreSQL node N' },
  { name: 'backend_weight', type: 'real', default: 1, min: 0, max: 100000000, perNode: true, context: 'reload', ...OK,
    doc: 'Share of load-balanced reads for node N, relative to the other weights; 0 never balances to it' },
  { name: 'backend_data_directory', type: 'string', default: '', perNode: true, context: 'reload', status: 'ignored',
    ignoredReason: 'only online recovery and failover scripts use it, and pgrouter runs neither',
    doc: 'Data directory of node N, passed to recovery and failover scripts' },
  { name: 'backend_flag', type: 'string', default: 'ALLOW_TO_FAILOVER', perNode: true, context: 'reload', ...OK,
    doc: 'Flags of node N joined by |: ALLOW_TO_FAILOVER or DISALLOW_TO_FAILOVER, and ALWAYS_PRIMARY' },
  { name: 'backend_application_name', type: 'string', default: '', perNode: true, context: 'reload', ...OK,
    doc: 'application_name node N uses in primary_conninfo, to find it in pg_stat_replication' },

  // --- Authentication ---
  { name: 'enable_pool_hba', type: 'boolean', default: false, context: 'reload', ...OK,
    doc: 'Check clients against pool_hba.conf instead of mirroring the backend\'s authentication method' },
  { name: 'pool_hba_file', type: 'string', default: 'pool_hba.conf', pgrouter: true, path: true, context: 'reload', ...OK,
    doc: 'Path of the pool_hba.conf file (pgpool takes it with -a)' },
  { name: 'pool_passwd', type: 'string', default: 'pool_passwd', path: true, context: 'restart', ...OK,
    doc: 'Path of the user:password file used to authenticate clients and backends; empty disables it' },
  { name: 'authentication_timeout', type: 'integer', unit: 's', default: 60, min: 0, max: INT_MAX, context: 'restart', ...OK,
    doc: 'Time a client has to finish authenticating; 0 waits forever' },
  { name: 'allow_clear_text_frontend_auth', type: 'boolean', default: false, context: 'reload', ...OK,
    doc: 'Ask a client without a pool_passwd entry for a clear-text password and use it towards the backends' },

  // --- SSL ---
  { name: 'ssl', type: 'boolean', default: false, context: 'restart', ...OK,
    doc: 'Offer TLS to clients and use it towards backends that accept it' },
  { name: 'ssl_key', type: 'string', default: '', path: true, context: 'restart', ...OK,
    doc: 'Path of the TLS private key (PEM)' },
  { name: 'ssl_cert', type: 'string', default: '', path: true, context: 'restart', ...OK,
    doc: 'Path of the TLS certificate chain (PEM)' },
  { name: 'ssl_ca_cert', type: 'string', default: '', path: true, context: 'restart', ...OK,
    doc: 'Path of a PEM file of CA certificates used to verify client certificates' },
  { name: 'ssl_ca_cert_dir', type: 'string', default: '', context: 'restart', status: 'ignored',
    ignoredReason: 'Node.js TLS takes CA certificates from files: put them all in ssl_ca_cert',
    doc: 'Directory of CA certificates' },
  { name: 'ssl_crl_file', type: 'string', default: '', path: true, context: 'restart', ...OK,
    doc: 'Path of a certificate revocation list (PEM) checked against client certificates' },
  { name: 'ssl_ciphers', type: 'string', default: 'HIGH:MEDIUM:+3DES:!aNULL', context: 'restart', ...OK,
    doc: 'OpenSSL cipher list allowed for client TLS connections' },
  { name: 'ssl_prefer_server_ciphers', type: 'boolean', default: false, context: 'restart', ...OK,
    doc: 'Pick the cipher by pgrouter\'s order of preference rather than the client\'s' },
  { name: 'ssl_ecdh_curve', type: 'string', default: 'prime256v1', context: 'restart', ...OK,
    doc: 'Curve used for ECDH key exchange' },
  { name: 'ssl_dh_params_file', type: 'string', default: '', path: true, context: 'restart', ...OK,
    doc: 'Path of a PEM file of Diffie-Hellman parameters; empty uses the built-in ones' },
  { name: 'ssl_passphrase_command', type: 'string', default: '', context: 'restart', status: 'ignored',
    ignoredReason: 'keys come unencrypted from a Kubernetes Secret; pgrouter runs no shell commands',
    doc: 'Command printing the passphrase of an encrypted ssl_key' },

  // --- Pools and process management ---
  { name: 'process_management_mode', type: 'enum', default: 'static', values: ['static', 'dynamic'], context: 'reload', ...PROCESSES,
    doc: 'Whether child processes are all pre-forked (static) or grown and shrunk on demand (dynamic)' },
  { name: 'process_management_strategy', type: 'enum', default: 'gentle', values: ['aggressive', 'gentle', 'lazy'],
    context: 'reload', ...PROCESSES,
    doc: 'How fast dynamic mode retires idle children' },
  { name: 'num_init_children', type: 'integer', default: 32, min: 1, max: INT_MAX, context: 'restart', ...OK,
    doc: 'Maximum number of concurrent client sessions' },
  { name: 'min_spare_children', type: 'integer', default: 5, min: 1, max: INT_MAX, context: 'reload', ...PROCESSES,
    doc: 'Dynamic mode: fewest idle children to keep' },
  { name: 'max_spare_children', type: 'integer', default: 10, min: 1, max: INT_MAX, context: 'reload', ...PROCESSES,
    doc: 'Dynamic mode: most idle children to keep' },
  { name: 'max_pool', type: 'integer', default: 4, min: 0, max: INT_MAX, context: 'restart', ...OK,
    doc: 'Cached backend connection sets (one per user/database pair) kept per client slot' },
  { name: 'child_life_time', type: 'integer', unit: 's', default: 300, min: 0, max: INT_MAX, context: 'restart', ...PROCESSES,
    doc: 'Seconds after which an idle child process is replaced; 0 never' },
  { name: 'child_max_connections', type: 'integer', default: 0, min: 0, max: INT_MAX, context: 'restart', ...PROCESSES,
    doc: 'Client sessions after which a child process is replaced; 0 never' },
  { name: 'connection_life_time', type: 'integer', unit: 's', default: 0, min: 0, max: INT_MAX, context: 'restart', ...OK,
    doc: 'Close a cached backend connection idle for this long; 0 keeps it' },
  { name: 'client_idle_limit', type: 'integer', unit: 's', default: 0, min: 0, max: INT_MAX, context: 'session', ...OK,
    doc: 'Disconnect a client that sent nothing for this long, even inside a transaction; 0 never' },

  // --- Logging ---
  { name: 'log_destination', type: 'string', default: 'stderr', context: 'reload', ...LOG_FILES,
    doc: 'Where Pgpool-II logs: stderr and/or syslog' },
  { name: 'log_line_prefix', type: 'string', default: '%m: %a pid %p: ', context: 'reload', ...OK,
    doc: 'printf-style prefix of each text log line (%m time, %a application, %p pid, ...)' },
  { name: 'log_connections', type: 'boolean', default: false, context: 'reload', ...OK,
    doc: 'Log each accepted client connection' },
  { name: 'log_disconnections', type: 'boolean', default: false, context: 'reload', ...OK,
    doc: 'Log the end of each client session' },
  { name: 'log_pcp_processes', type: 'boolean', default: false, context: 'reload', ...PCP,
    doc: 'Log the start and normal exit of PCP processes' },
  { name: 'log_hostname', type: 'boolean', default: false, context: 'reload', ...OK,
    doc: 'Log the client\'s host name (reverse DNS) rather than its IP address' },
  { name: 'log_statement', type: 'boolean', default: false, context: 'session', ...OK,
    doc: 'Log every SQL statement received from clients' },
  { name: 'log_per_node_statement', type: 'boolean', default: false, context: 'session', ...OK,
    doc: 'Log every statement sent to a backend, with the node it went to' },
  { name: 'notice_per_node_statement', type: 'boolean', default: false, context: 'session', ...OK,
    doc: 'Send the client a NOTICE naming the node each statement went to' },
  { name: 'log_client_messages', type: 'boolean', default: false, context: 'session', ...OK,
    doc: 'Log every protocol message received from clients' },
  { name: 'log_backend_messages', type: 'enum', default: 'none', values: ['none', 'terse', 'verbose'], context: 'session', ...OK,
    doc: 'Log protocol messages from backends: none, terse (repeats counted) or verbose' },
  { name: 'log_standby_delay', type: 'enum', default: 'if_over_threshold', values: ['always', 'if_over_threshold', 'none'],
    context: 'reload', ...OK,
    doc: 'When to log standby replication delay: always, if_over_threshold or none' },
  { name: 'syslog_facility', type: 'enum', default: 'LOCAL0',
    values: ['LOCAL0', 'LOCAL1', 'LOCAL2', 'LOCAL3', 'LOCAL4', 'LOCAL5', 'LOCAL6', 'LOCAL7'], context: 'reload', ...LOG_FILES,
    doc: 'syslog facility' },
  { name: 'syslog_ident', type: 'string', default: 'pgpool', context: 'reload', ...LOG_FILES,
    doc: 'Program name in syslog messages' },
  { name: 'log_error_verbosity', type: 'enum', default: 'default', values: ['terse', 'default', 'verbose'], context: 'session', ...OK,
    doc: 'How much detail logged errors carry: terse, default or verbose' },
  { name: 'client_min_messages', type: 'enum', default: 'notice', values: MESSAGE_LEVELS, aliases: { debug: 'debug2' },
    context: 'session', ...OK,
    doc: 'Lowest message level sent to clients' },
  { name: 'log_min_messages', type: 'enum', default: 'warning', values: MESSAGE_LEVELS, aliases: { debug: 'debug2' },
    context: 'session', ...OK,
    doc: 'Lowest message level written to the log' },
  { name: 'logging_collector', type: 'boolean', default: false, context: 'restart', ...LOG_FILES,
    doc: 'Capture stderr into rotated log files' },
  { name: 'log_directory', type: 'string', default: '/tmp/pgpool_logs', context: 'reload', ...LOG_FILES,
    doc: 'Directory of the collected log files' },
  { name: 'log_filename', type: 'string', default: 'pgpool-%Y-%m-%d_%H%M%S.log', context: 'reload', ...LOG_FILES,
    doc: 'strftime pattern of collected log file names' },
  { name: 'log_file_mode', type: 'integer', default: 0o600, min: 0, max: INT_MAX, octal: true, context: 'reload', ...LOG_FILES,
    doc: 'File mode of collected log files, in octal' },
  { name: 'log_truncate_on_rotation', type: 'boolean', default: false, context: 'reload', ...LOG_FILES,
    doc: 'Overwrite rather than append to a reused log file name on time-based rotation' },
  { name: 'log_rotation_age', type: 'integer', unit: 'min', default: 1440, min: 0, max: INT_MAX, context: 'reload', ...LOG_FILES,
    doc: 'Start a new log file after this long; 0 never' },
  { name: 'log_rotation_size', type: 'integer', unit: 'kB', default: 10240, min: 0, max: Math.floor(INT_MAX / 1024),
    context: 'reload', ...LOG_FILES,
    doc: 'Start a new log file after this much output; 0 never' },

  // --- File locations ---
  { name: 'pid_file_name', type: 'string', default: '/var/run/pgpool/pgpool.pid', context: 'restart', status: 'ignored',
    ignoredReason: 'a container needs no PID file',
    doc: 'Path of the PID file' },
  { name: 'work_dir', type: 'string', default: '/tmp', context: 'restart', status: 'ignored',
    ignoredReason: 'pgrouter keeps no pgpool_status file: node status is rebuilt from live checks at each start',
    doc: 'Directory of the pgpool_status file and lock files (logdir before Pgpool-II 4.7)' },

  // --- Connection pooling ---
  { name: 'connection_cache', type: 'boolean', default: true, context: 'restart', ...OK,
    doc: 'Keep backend connections open after a client leaves, for reuse by the same user and database' },
  { name: 'reset_query_list', type: 'list', separator: ';', default: ['ABORT', 'DISCARD ALL'], context: 'reload', ...OK,
    doc: 'Statements, separated by ;, run on a cached connection when its client leaves' },

  // --- Native replication mode ---
  { name: 'replication_mode', type: 'boolean', default: false, context: 'restart', ...NATIVE_REPLICATION,
    doc: 'Old (before 4.2) switch for native replication mode' },
  { name: 'replicate_select', type: 'boolean', default: false, context: 'reload', ...NATIVE_REPLICATION,
    doc: 'Native replication: send SELECTs to every node' },
  { name: 'insert_lock', type: 'boolean', default: true, context: 'reload', ...NATIVE_REPLICATION,
    doc: 'Native replication: lock the table around INSERTs to keep serial columns equal' },
  { name: 'lobj_lock_table', type: 'string', default: '', context: 'reload', ...NATIVE_REPLICATION,
    doc: 'Native replication: table locked around large object creation' },
  { name: 'replication_stop_on_mismatch', type: 'boolean', default: false, context: 'reload', ...NATIVE_REPLICATION,
    doc: 'Native replication: detach a node whose reply kind differs from the main node\'s' },
  { name: 'failover_if_affected_tuples_mismatch', type: 'boolean', default: false, context: 'reload', ...NATIVE_REPLICATION,
    doc: 'Native replication: detach a node whose affected row count differs from the majority\'s' },

  // --- Load balancing ---
  { name: 'load_balance_mode', type: 'boolean', default: true, context: 'restart', ...OK,
    doc: 'Send read-only queries to standbys in proportion to backend_weight' },
  { name: 'ignore_leading_white_space', type: 'boolean', default: true, context: 'reload', ...OK,
    doc: 'Skip leading white space when deciding whether a query can be load balanced' },
  { name: 'read_only_function_list', type: 'list', separator: ',', default: [], context: 'reload', ...OK,
    doc: 'Regexes of functions that do not write; any other function sends the query to the primary' },
  { name: 'write_function_list', type: 'list', separator: ',', default: [], context: 'reload', ...OK,
    doc: 'Regexes of functions that write, sending the query to the primary; both lists empty means volatile functions write' },
  { name: 'primary_routing_query_pattern_list', type: 'list', separator: ';', default: [], context: 'reload', ...OK,
    doc: 'Regexes, separated by ;, of whole query texts always sent to the primary' },
  { name: 'user_redirect_preference_list', type: 'string', default: '', context: 'reload', ...OK,
    doc: 'user-regex:node(ratio) pairs choosing the load balance node by user name' },
  { name: 'database_redirect_preference_list', type: 'string', default: '', context: 'reload', ...OK,
    doc: 'database-regex:node(ratio) pairs choosing the load balance node by database' },
  { name: 'app_name_redirect_preference_list', type: 'string', default: '', context: 'reload', ...OK,
    doc: 'application-regex:node(ratio) pairs choosing the load balance node by startup application_name' },
  { name: 'allow_sql_comments', type: 'boolean', default: false, context: 'session', ...OK,
    doc: 'Look past SQL comments when deciding whether a query can be load balanced' },
  { name: 'disable_load_balance_on_write', type: 'enum', default: 'transaction',
    values: ['off', 'transaction', 'trans_transaction', 'always', 'dml_adaptive'], context: 'reload', ...OK,
    doc: 'After a write, how long reads stick to the primary: off, transaction, trans_transaction, always, dml_adaptive' },
  { name: 'dml_adaptive_object_relationship_list', type: 'string', default: '', context: 'reload', ...OK,
    doc: 'dml_adaptive: object:dependent pairs, so writing one also sends reads of the other to the primary' },
  { name: 'statement_level_load_balance', type: 'boolean', default: false, context: 'reload', ...OK,
    doc: 'Pick the load balance node for each read instead of once per session' },
  { name: 'check_temp_table', type: 'enum', default: 'catalog', values: ['catalog', 'trace', 'none'],
    aliases: { on: 'catalog', off: 'none' }, context: 'reload', ...OK,
    doc: 'How to spot temporary tables, which only the primary has: catalog lookup, trace CREATE TEMP, or none' },
  { name: 'check_unlogged_table', type: 'boolean', default: true, context: 'session', ...OK,
    doc: 'Look up unlogged tables in the catalog and keep queries on them on the primary' },
  { name: 'relcache_expire', type: 'integer', unit: 's', default: 0, min: 0, max: LONG_MAX, context: 'restart', ...OK,
    doc: 'Lifetime of cached catalog lookups; 0 keeps them forever' },
  { name: 'relcache_size', type: 'integer', default: 256, min: 0, max: INT_MAX, context: 'restart', ...OK,
    doc: 'Number of cached catalog lookups' },
  { name: 'enable_shared_relcache', type: 'boolean', default: true, context: 'restart', status: 'ignored',
    ignoredReason: 'pgrouter is one process, so its catalog lookup cache is always shared',
    doc: 'Share cached catalog lookups between child processes' },
  { name: 'relcache_query_target', type: 'enum', default: 'primary', values: ['primary', 'load_balance_node'],
    context: 'reload', ...OK,
    doc: 'Node that answers the catalog lookups: primary or load_balance_node' },

  // --- Streaming replication checks ---
  { name: 'sr_check_period', type: 'integer', unit: 's', default: 10, min: 0, max: INT_MAX, context: 'reload', ...OK,
    doc: 'Interval of the replication delay and role check; 0 disables it' },
  { name: 'sr_check_user', type: 'string', default: '', context: 'reload', ...OK,
    doc: 'User for the replication check and primary detection (superuser or pg_monitor member)' },
  { name: 'sr_check_password', type: 'string', default: '', secret: true, context: 'reload', ...OK,
    doc: 'Password of sr_check_user; empty looks it up in pool_passwd' },
  { name: 'sr_check_database', type: 'string', default: 'postgres', context: 'reload', ...OK,
    doc: 'Database the replication check connects to' },
  { name: 'delay_threshold', type: 'integer', unit: 'B', default: 0, min: 0, max: LONG_MAX, context: 'reload', ...OK,
    doc: 'Replay lag in WAL bytes beyond which a standby gets no reads; 0 disables' },
  { name: 'delay_threshold_by_time', type: 'integer', unit: 'ms', default: 0, min: 0, max: INT_MAX, context: 'reload', ...OK,
    doc: 'Replay lag in time beyond which a standby gets no reads; overrides delay_threshold; 0 disables' },
  { name: 'prefer_lower_delay_standby', type: 'boolean', default: false, context: 'reload', ...OK,
    doc: 'When the load balance node lags too much, use the least lagging standby rather than the primary' },

  // --- Health check (global value, overridable per node: health_check_period0, ...) ---
  { name: 'health_check_period', type: 'integer', unit: 's', default: 0, min: 0, max: INT_MAX, perNode: true, global: true,
    context: 'reload', ...OK,
    doc: 'Interval between health checks of a node; 0 disables them' },
  { name: 'health_check_timeout', type: 'integer', unit: 's', default: 20, min: 0, max: INT_MAX, perNode: true, global: true,
    context: 'reload', ...OK,
    doc: 'Time a single health check may take; 0 waits forever' },
  { name: 'health_check_user', type: 'string', default: '', perNode: true, global: true, context: 'reload', ...OK,
    doc: 'User the health check connects as' },
  { name: 'health_check_password', type: 'string', default: '', secret: true, perNode: true, global: true,
    context: 'reload', ...OK,
    doc: 'Password of health_check_user; empty looks it up in pool_passwd' },
  { name: 'health_check_database', type: 'string', default: '', perNode: true, global: true, context: 'reload', ...OK,
    doc: 'Database the health check connects to; empty tries postgres, then template1' },
  { name: 'health_check_max_retries', type: 'integer', default: 0, min: 0, max: INT_MAX, perNode: true, global: true,
    context: 'reload', ...OK,
    doc: 'Retries of a failed health check before the node is declared down' },
  { name: 'health_check_retry_delay', type: 'integer', unit: 's', default: 1, min: 0, max: INT_MAX, perNode: true,
    global: true, context: 'reload', ...OK,
    doc: 'Pause between health check retries' },
  { name: 'connect_timeout', type: 'integer', unit: 'ms', default: 10000, min: 0, max: INT_MAX, perNode: true, global: true,
    context: 'reload', ...OK,
    doc: 'Time allowed to open a backend connection (sessions and health checks); 0 waits forever' },
  { name: 'health_check_test', type: 'boolean', default: false, context: 'restart', status: 'ignored',
    ignoredReason: 'it is a Pgpool-II debugging switch',
    doc: 'Simulate health check failures (Pgpool-II testing aid)' },

  // --- Failover ---
  { name: 'failover_command', type: 'string', default: '', context: 'reload', ...SCRIPTS,
    doc: 'Command run when a node is detached' },
  { name: 'failback_command', type: 'string', default: '', context: 'reload', ...SCRIPTS,
    doc: 'Command run when a node is attached again' },
  { name: 'follow_primary_command', type: 'string', default: '', context: 'reload', ...SCRIPTS,
    doc: 'Command run for each standby after a primary failover' },
  { name: 'failover_on_backend_error', type: 'boolean', default: true, context: 'reload', ...OK,
    doc: 'Declare a node down when a session fails to read from or write to it' },
  { name: 'failover_on_backend_shutdown', type: 'boolean', default: false, context: 'reload', ...OK,
    doc: 'Declare a node down when it reports that it is shutting down' },
  { name: 'detach_false_primary', type: 'boolean', default: false, context: 'reload', ...OK,
    doc: 'Detach a node that claims to be primary but is not the one the standbys stream from' },
  { name: 'search_primary_node_timeout', type: 'integer', unit: 's', default: 300, min: 0, max: INT_MAX, context: 'reload', ...OK,
    doc: 'How long to look for a new primary after a failover; 0 keeps looking' },
  { name: 'auto_failback', type: 'boolean', default: false, context: 'reload', ...OK,
    doc: 'Attach a down standby again once it streams from the primary' },
  { name: 'auto_failback_interval', type: 'integer', unit: 's', default: 60, min: 0, max: INT_MAX, context: 'reload', ...OK,
    doc: 'Shortest interval between two automatic failbacks' },

  // --- Online recovery ---
  { name: 'recovery_user', type: 'string', default: '', context: 'reload', ...RECOVERY,
    doc: 'User running online recovery' },
  { name: 'recovery_password', type: 'string', default: '', secret: true, context: 'reload', ...RECOVERY,
    doc: 'Password of recovery_user' },
  { name: 'recovery_database', type: 'string', default: 'postgres', context: 'reload', ...RECOVERY,
    doc: 'Database online recovery connects to' },
  { name: 'recovery_1st_stage_command', type: 'string', default: '', context: 'reload', ...RECOVERY,
    doc: 'Script of the first recovery stage' },
  { name: 'recovery_2nd_stage_command', type: 'string', default: '', context: 'reload', ...RECOVERY,
    doc: 'Script of the second recovery stage' },
  { name: 'recovery_timeout', type: 'integer', unit: 's', default: 90, min: 0, max: INT_MAX, context: 'reload', ...RECOVERY,
    doc: 'How long recovery waits for the recovered node' },
  { name: 'client_idle_limit_in_recovery', type: 'integer', unit: 's', default: 0, min: -1, max: INT_MAX, context: 'session',
    ...RECOVERY,
    doc: 'Idle limit applied to clients during the second recovery stage; -1 disconnects at once' },

  // --- Watchdog ---
  { name: 'use_watchdog', type: 'boolean', default: false, context: 'restart', ...WATCHDOG,
    doc: 'Run the watchdog that coordinates several Pgpool-II nodes' },
  { name: 'trusted_servers', type: 'string', default: '', context: 'restart', ...WATCHDOG,
    doc: 'Hosts pinged to confirm the network is up' },
  { name: 'trusted_server_command', type: 'string', default: 'ping -q -c3 %h', context: 'reload', ...WATCHDOG,
    doc: 'Command checking a trusted server' },
  { name: 'ping_path', type: 'string', default: '/bin', context: 'restart', ...WATCHDOG,
    doc: 'Directory of the ping command' },
  { name: 'hostname', type: 'string', default: 'localhost', perNode: true, context: 'reload', ...WATCHDOG,
    doc: 'Address of Pgpool-II watchdog node N' },
  { name: 'wd_port', type: 'integer', default: 9000, min: 1024, max: 65535, perNode: true, context: 'reload', ...WATCHDOG,
    doc: 'Watchdog port of Pgpool-II node N' },
  { name: 'pgpool_port', type: 'integer', default: 9999, min: 1024, max: 65535, perNode: true, context: 'reload', ...WATCHDOG,
    doc: 'Client port of Pgpool-II node N' },
  { name: 'wd_priority', type: 'integer', default: 1, min: 0, max: INT_MAX, context: 'restart', ...WATCHDOG,
    doc: 'Priority of this node in leader elections' },
  { name: 'wd_authkey', type: 'string', default: '', secret: true, context: 'reload', ...WATCHDOG,
    doc: 'Shared key authenticating watchdog messages' },
  { name: 'wd_ipc_socket_dir', type: 'string', default: '/tmp', context: 'restart', ...WATCHDOG,
    doc: 'Directory of the watchdog IPC socket' },
  { name: 'delegate_ip', type: 'string', default: '', context: 'restart', ...WATCHDOG,
    doc: 'Virtual IP address held by the leader node' },
  { name: 'if_cmd_path', type: 'string', default: '/sbin', context: 'restart', ...WATCHDOG,
    doc: 'Directory of the interface commands' },
  { name: 'if_up_cmd', type: 'string', default: '/usr/bin/sudo /sbin/ip addr add $_IP_$/24 dev eth0 label eth0:0',
    context: 'restart', ...WATCHDOG,
    doc: 'Command bringing the virtual IP up' },
  { name: 'if_down_cmd', type: 'string', default: '/usr/bin/sudo /sbin/ip addr del $_IP_$/24 dev eth0',
    context: 'restart', ...WATCHDOG,
    doc: 'Command taking the virtual IP down' },
  { name: 'arping_path', type: 'string', default: '/usr/sbin', context: 'restart', ...WATCHDOG,
    doc: 'Directory of the arping command' },
  { name: 'arping_cmd', type: 'string', default: '/usr/bin/sudo /usr/sbin/arping -U $_IP_$ -w 1 -I eth0',
    context: 'restart', ...WATCHDOG,
    doc: 'Command announcing the virtual IP' },
  { name: 'clear_memqcache_on_escalation', type: 'boolean', default: true, context: 'reload', ...WATCHDOG,
    doc: 'Empty the query cache when this node becomes leader' },
  { name: 'wd_escalation_command', type: 'string', default: '', context: 'reload', ...WATCHDOG,
    doc: 'Command run when this node becomes leader' },
  { name: 'wd_de_escalation_command', type: 'string', default: '', context: 'reload', ...WATCHDOG,
    doc: 'Command run when this node stops being leader' },
  { name: 'failover_when_quorum_exists', type: 'boolean', default: true, context: 'restart', ...WATCHDOG,
    doc: 'Fail over only while the watchdog cluster has a quorum' },
  { name: 'failover_require_consensus', type: 'boolean', default: true, context: 'restart', ...WATCHDOG,
    doc: 'Fail over only when most watchdog nodes agree' },
  { name: 'allow_multiple_failover_requests_from_node', type: 'boolean', default: false, context: 'restart', ...WATCHDOG,
    doc: 'Let one node vote several times for the same failover' },
  { name: 'enable_consensus_with_half_votes', type: 'boolean', default: false, context: 'restart', ...WATCHDOG,
    doc: 'With an even node count, half of the votes make a majority' },
  { name: 'wd_remove_shutdown_nodes', type: 'boolean', default: false, context: 'reload', ...WATCHDOG,
    doc: 'Drop cleanly stopped nodes from the watchdog cluster' },
  { name: 'wd_lost_node_removal_timeout', type: 'integer', unit: 's', default: 0, min: 0, max: INT_MAX, context: 'reload',
    ...WATCHDOG,
    doc: 'Drop a lost watchdog node after this long; 0 never' },
  { name: 'wd_no_show_node_removal_timeout', type: 'integer', unit: 's', default: 0, min: 0, max: INT_MAX, context: 'reload',
    ...WATCHDOG,
    doc: 'Drop a watchdog node that never showed up after this long; 0 never' },
  { name: 'wd_monitoring_interfaces_list', type: 'list', separator: ',', default: [], context: 'restart', ...WATCHDOG,
    doc: 'Network interfaces whose link state the watchdog watches' },
  { name: 'wd_lifecheck_method', type: 'enum', default: 'heartbeat', values: ['query', 'heartbeat', 'external'],
    context: 'restart', ...WATCHDOG,
    doc: 'How watchdog nodes check each other: query, heartbeat or external' },
  { name: 'wd_interval', type: 'integer', unit: 's', default: 10, min: 0, max: INT_MAX, context: 'restart', ...WATCHDOG,
    doc: 'Interval of watchdog life checks' },
  { name: 'heartbeat_hostname', type: 'string', default: '', perNode: true, context: 'reload', ...WATCHDOG,
    doc: 'Address heartbeats of watchdog node N are sent to' },
  { name: 'heartbeat_port', type: 'integer', default: 9694, min: 1024, max: 65535, perNode: true, context: 'reload',
    ...WATCHDOG,
    doc: 'UDP port of heartbeats of watchdog node N' },
  { name: 'heartbeat_device', type: 'string', default: '', perNode: true, context: 'reload', ...WATCHDOG,
    doc: 'Network device heartbeats to node N are sent from' },
  { name: 'wd_heartbeat_keepalive', type: 'integer', unit: 's', default: 2, min: 1, max: INT_MAX, context: 'restart',
    ...WATCHDOG,
    doc: 'Interval between heartbeats' },
  { name: 'wd_heartbeat_deadtime', type: 'integer', unit: 's', default: 30, min: 1, max: INT_MAX, context: 'restart',
    ...WATCHDOG,
    doc: 'Silence after which a node is considered lost' },
  { name: 'wd_life_point', type: 'integer', default: 3, min: 0, max: INT_MAX, context: 'restart', ...WATCHDOG,
    doc: 'Failed query life checks before a node is considered lost' },
  { name: 'wd_lifecheck_query', type: 'string', default: 'SELECT 1', context: 'restart', ...WATCHDOG,
    doc: 'Query of the query life check' },
  { name: 'wd_lifecheck_dbname', type: 'string', default: 'template1', context: 'reload', ...WATCHDOG,
    doc: 'Database of the query life check' },
  { name: 'wd_lifecheck_user', type: 'string', default: '', context: 'reload', ...WATCHDOG,
    doc: 'User of the query life check' },
  { name: 'wd_lifecheck_password', type: 'string', default: '', secret: true, context: 'reload', ...WATCHDOG,
    doc: 'Password of wd_lifecheck_user' },
  // Added in 4.7.1; values are not checked since pgrouter does not use them.
  { name: 'wd_listen_address', type: 'string', default: '', context: 'restart', ...WATCHDOG,
    doc: 'Address the watchdog listens on (Pgpool-II 4.7.1+)' },
  { name: 'wd_listen_port', type: 'string', default: '', context: 'restart', ...WATCHDOG,
    doc: 'Port the watchdog listens on (Pgpool-II 4.7.1+)' },
  { name: 'wd_heartbeat_listen_addresses', type: 'string', default: '', context: 'restart', ...WATCHDOG,
    doc: 'Addresses the heartbeat receiver listens on (Pgpool-II 4.7.1+)' },
  { name: 'wd_heartbeat_listen_port', type: 'string', default: '', context: 'restart', ...WATCHDOG,
    doc: 'Port the heartbeat receiver listens on (Pgpool-II 4.7.1+)' },
  // Watchdog names from before Pgpool-II 4.2.
  { name: 'wd_hostname', type: 'string', default: '', context: 'restart', ...WATCHDOG,
    doc: 'Address of this watchdog node (before 4.2)' },
  { name: 'other_pgpool_hostname', type: 'string', default: '', perNode: true, context: 'reload', ...WATCHDOG,
    doc: 'Address of other Pgpool-II node N (before 4.2)' },
  { name: 'other_pgpool_port', type: 'integer', default: 9999, min: 1024, max: 65535, perNode: true, context: 'reload',
    ...WATCHDOG,
    doc: 'Client port of other Pgpool-II node N (before 4.2)' },
  { name: 'other_wd_port', type: 'integer', default: 9000, min: 1024, max: 65535, perNode: true, context: 'reload',
    ...WATCHDOG,
    doc: 'Watchdog port of other Pgpool-II node N (before 4.2)' },
  { name: 'heartbeat_destination', type: 'string', default: '', perNode: true, context: 'reload', ...WATCHDOG,
    doc: 'Heartbeat destination N (before 4.2)' },
  { name: 'heartbeat_destination_port', type: 'integer', default: 9694, min: 1024, max: 65535, perNode: true,
    context: 'reload', ...WATCHDOG,
    doc: 'Heartbeat destination port N (before 4.2)' },

  // --- In-memory query cache ---
  { name: 'memory_cache_enabled', type: 'boolean', default: false, context: 'restart', ...QUERY_CACHE,
    doc: 'Cache SELECT results in memory' },
  { name: 'memqcache_method', type: 'enum', default: 'shmem', values: ['shmem', 'memcached'], context: 'restart', ...QUERY_CACHE,
    doc: 'Query cache storage: shmem or memcached' },
  { name: 'memqcache_memcached_host', type: 'string', default: 'localhost', context: 'restart', ...QUERY_CACHE,
    doc: 'memcached host' },
  { name: 'memqcache_memcached_port', type: 'integer', default: 11211, min: 0, max: INT_MAX, context: 'restart', ...QUERY_CACHE,
    doc: 'memcached port' },
  { name: 'memqcache_total_size', type: 'integer', unit: 'B', default: 67108864, min: 0, max: LONG_MAX, context: 'restart',
    ...QUERY_CACHE,
    doc: 'Shared memory reserved for the query cache' },
  { name: 'memqcache_max_num_cache', type: 'integer', default: 1000000, min: 0, max: INT_MAX, context: 'restart', ...QUERY_CACHE,
    doc: 'Most cache entries' },
  { name: 'memqcache_expire', type: 'integer', unit: 's', default: 0, min: 0, max: INT_MAX, context: 'restart', ...QUERY_CACHE,
    doc: 'Lifetime of a cache entry; 0 until invalidated' },
  { name: 'memqcache_auto_cache_invalidation', type: 'boolean', default: true, context: 'reload', ...QUERY_CACHE,
    doc: 'Drop cache entries of tables when they are written' },
  { name: 'memqcache_maxcache', type: 'integer', unit: 'B', default: 409600, min: 0, max: INT_MAX, context: 'restart',
    ...QUERY_CACHE,
    doc: 'Largest SELECT result that is cached' },
  { name: 'memqcache_cache_block_size', type: 'integer', unit: 'B', default: 1048576, min: 512, max: INT_MAX,
    context: 'restart', ...QUERY_CACHE,
    doc: 'Size of a query cache block' },
  { name: 'memqcache_oiddir', type: 'string', default: '/var/log/pgpool/oiddir', context: 'restart', ...QUERY_CACHE,
    doc: 'Directory recording which tables each cache entry used' },
  { name: 'cache_safe_memqcache_table_list', type: 'list', separator: ',', default: [], context: 'reload', ...QUERY_CACHE,
    doc: 'Regexes of tables whose results may be cached' },
  { name: 'cache_unsafe_memqcache_table_list', type: 'list', separator: ',', default: [], context: 'reload', ...QUERY_CACHE,
    doc: 'Regexes of tables whose results are never cached' },

  // --- pgrouter's own ---
  { name: 'drain_timeout', type: 'integer', unit: 's', default: 30, min: 0, max: INT_MAX, pgrouter: true, context: 'reload', ...OK,
    doc: 'On SIGTERM, how long to wait for client sessions to finish before closing them' },
  { name: 'watch_config_files', type: 'boolean', default: false, pgrouter: true, context: 'restart', ...OK,
    doc: 'Reload by itself when the configuration file, pool_passwd or pool_hba.conf changes (a mounted ConfigMap or Secret)' },
  { name: 'metrics_port', type: 'integer', default: 9719, min: 1, max: 65535, pgrouter: true, context: 'restart', ...OK,
    doc: 'TCP port of the Prometheus metrics endpoint (pgpool2_exporter\'s port)' },
  { name: 'metrics_listen_addresses', type: 'string', default: '*', pgrouter: true, context: 'restart', ...OK,
    doc: 'Address the metrics endpoint listens on; * means all' },
  { name: 'pool_mode', type: 'enum', default: 'session', values: ['session', 'transaction'], pgrouter: true, context: 'reload', ...OK,
    doc: 'session: a client keeps its backend connections for its whole session (Pgpool-II\'s way); transaction: clients share a few backend connections per node, each transaction or autocommit statement running on one of them (new sessions follow a change)' },
  { name: 'transaction_pool_size', type: 'integer', default: 20, min: 1, max: 10000, pgrouter: true, context: 'reload', ...OK,
    doc: 'pool_mode = transaction: most shared backend connections per node for each user and database (connections pinned to one session do not count)' },
  { name: 'transaction_pipeline_depth', type: 'integer', default: 32, min: 1, max: 10000, pgrouter: true, context: 'reload', ...OK,
    doc: 'pool_mode = transaction: requests queued on one shared backend connection before another is opened' },
  { name: 'transaction_unnamed_statement_cache', type: 'boolean', default: true, pgrouter: true, context: 'reload', ...OK,
    doc: 'pool_mode = transaction: an unnamed statement (an extended-protocol Parse with an empty name) that a shared backend connection has seen before is kept there under a name of pgrouter\'s and reused by autocommit requests, so the server does not parse and plan the same text again; off sends every unnamed Parse to the server' },
  { name: 'replica_retry_interval', type: 'integer', unit: 's', default: 30, min: 0, max: 86400, pgrouter: true, context: 'reload', ...OK,
    doc: 'Session pooling: a replica whose connection a session lost (its backend ended, a restart) or could not open is tried again for that session\'s reads after this long, or as soon as the health checks have seen it down and up again; until then its reads go to the primary. 0 tries again at the next read' },
  { name: 'transaction_defer_begin', type: 'boolean', default: true, pgrouter: true, context: 'reload', ...OK,
    doc: 'A BEGIN (or START TRANSACTION) is answered by pgrouter and sent in front of the transaction\'s first statement, in the same write, as the client wrote it (options included), which saves a round trip to the server per transaction; now() and xact_start are then the time of that first statement rather than of the BEGIN. A COMMIT or ROLLBACK right after it is answered by pgrouter too and never reaches a server; in session mode the BEGIN is deferred only when nothing is in flight, also in the extended protocol (psycopg 3, pgJDBC), but not with READ WRITE or SERIALIZABLE, and the session\'s other open connections get it too. off sends each BEGIN on its own' },
  { name: 'transaction_read_only_load_balance', type: 'boolean', default: true, pgrouter: true, context: 'reload', ...OK,
    doc: 'pool_mode = transaction: a transaction that begins READ ONLY (BEGIN READ ONLY, START TRANSACTION READ ONLY, or BEGIN then SET TRANSACTION READ ONLY or SET transaction_read_only = on first), and not SERIALIZABLE nor made READ WRITE again in its first request, runs on the node a read of the session would go to, within the lag thresholds, instead of the primary: nothing in it can write. A statement in it that would leave session state on a standby (SQL PREPARE, a SET without LOCAL, a session advisory lock, set_config without is_local, a cursor WITH HOLD) fails the transaction with 0A000. off runs every transaction on the primary' },
  { name: 'busy_poll_us', type: 'integer', default: 100, min: 0, max: 10000, pgrouter: true, context: 'reload', ...OK,
    doc: 'Microseconds pgrouter keeps polling its sockets without sleeping after each read, while at most busy_poll_max_clients clients are active: a reply or request that comes within that time is read without the process waking from sleep, which cuts the latency a lone client sees at the cost of CPU while it runs; 0 turns this off. Off by itself when the container\'s CPU limit (cgroup quota) is under 2 CPUs, where spinning would use up the quota' },
  { name: 'busy_poll_max_clients', type: 'integer', default: 2, min: 1, max: 10000, pgrouter: true, context: 'reload', ...OK,
    doc: 'Busy polling (busy_poll_us) runs only while at most this many clients sent something in the last 20-40 ms; with more, reads follow each other anyway, and in a lull of a busy server spinning would take the CPU it needs' },
  { name: 'pgrouter_admin_users', type: 'list', separator: ',', default: [], pgrouter: true, context: 'reload', ...OK,
    doc: 'Users allowed to run PGPOOL DETACH NODE and PGPOOL ATTACH NODE (comma-separated); empty allows nobody' },
] as const satisfies readonly SettingDef[];

/** Old names accepted for current parameters; each use produces a warning. */
export const ALIASES: readonly AliasDef[] = [
  { name: 'black_function_list', target: 'write_function_list', note: 'is the pre-4.2 name of "write_function_list"' },
  { name: 'white_function_list', target: 'read_only_function_list', note: 'is the pre-4.2 name of "read_only_function_list"' },
  { name: 'black_query_pattern_list', target: 'primary_routing_query_pattern_list',
    note: 'is the pre-4.2 name of "primary_routing_query_pattern_list"' },
  { name: 'white_memqcache_table_list', target: 'cache_safe_memqcache_table_list',
    note: 'is the pre-4.2 name of "cache_safe_memqcache_table_list"' },
  { name: 'black_memqcache_table_list', target: 'cache_unsafe_memqcache_table_list',
    note: 'is the pre-4.2 name of "cache_unsafe_memqcache_table_list"' },
  { name: 'fail_over_on_backend_error', target: 'failover_on_backend_error', note: 'is an old name of "failover_on_backend_error"' },
  { name: 'logdir', target: 'work_dir', note: 'was renamed to "work_dir" in Pgpool-II 4.7' },
  { name: 'delegate_IP', target: 'delegate_ip', note: 'is an old spelling of "delegate_ip"' },
  { name: 'socket_dir', target: 'unix_socket_directories', note: 'was renamed to "unix_socket_directories" in Pgpool-II 4.4' },
];

type AnyDef = (typeof SETTINGS)[number];
/** Rows that have a single (not per-node) value, including per-node rows with a global default. */
type GlobalDef = Exclude<AnyDef, { readonly perNode: true }> | Extract<AnyDef, { readonly global: true }>;
type ValueOfDef<D> = D extends { readonly type: 'boolean' }
  ? boolean
  : D extends { readonly type: 'integer' | 'real' }
    ? number
    : D extends { readonly type: 'string' }
      ? string
      : D extends { readonly type: 'list' }
        ? string[]
        : D extends { readonly type: 'enum'; readonly values: readonly (infer V extends string)[] }
          ? V
          : never;

/**
 * Every non-per-node parameter by name, typed from the table: `port: number`,
 * `connection_cache: boolean`, `reset_query_list: string[]`, enums as unions of their values.
 * Per-node values live in BackendConfig (health_check_* and connect_timeout have both).
 */
export type Settings = { -readonly [D in GlobalDef as D['name']]: ValueOfDef<D> };
/** Name of a parameter that has a value in {@link Settings}. */
export type SettingName = keyof Settings;
/** Name of any row of the table (per-node rows without their number). */
export type ParameterName = AnyDef['name'];

const byName = new Map<string, SettingDef>();
for (const def of SETTINGS as readonly SettingDef[]) byName.set(def.name, def);
const aliasByName = new Map<string, AliasDef>();
for (const alias of ALIASES) aliasByName.set(alias.name.toLowerCase(), alias);

/** The row of a parameter by its exact table name (no node number, no alias). */
export function findSetting(name: string): SettingDef | undefined {
  return byName.get(name);
}

/** A parameter name from a config line resolved against the table. */
export interface ResolvedName {
  readonly def: SettingDef;
  /** Node number of an indexed name (backend_port1 → 1); undefined for a global value. */
  readonly index: number | undefined;
  /** Canonical full name: table name plus node number, e.g. "backend_port1". */
  readonly key: string;
  /** Set when an old name was used. */
  readonly alias: AliasDef | undefined;
}

/** Result of {@link resolveName} for a name that matched nothing usable. */
export interface UnresolvedName {
  readonly def: undefined;
  readonly reason: 'unknown' | 'needs-index' | 'index-range';
}

/** Highest node number accepted in indexed names (Pgpool-II allows 128 backends). */
export const MAX_NODE_INDEX = 127;

/**
 * Resolves a name as written in pgpool.conf (case-insensitive; old names allowed) to its row,
 * node number and canonical key.
 */
export function resolveName(rawName: string): ResolvedName | UnresolvedName {
  const lower = rawName.toLowerCase();
  // delegate_IP is the only alias that differs from its target by case alone.
  const alias = rawName === 'delegate_IP' ? aliasByName.get('delegate_ip') : lower === 'delegate_ip' ? undefined : aliasByName.get(lower);
  const name = alias ? alias.target : lower;
  const direct = byName.get(name);
  if (direct) {
    if (direct.perNode && !direct.global) return { def: undefined, reason: 'needs-index' };
    return { def: direct, index: undefined, key: direct.name, alias };
  }
  const m = /^(.*?)(\d+)$/.exec(name);
  if (m) {
    const base = byName.get(m[1] ?? '');
    if (base?.perNode) {
      const index = Number(m[2]);
      if (index > MAX_NODE_INDEX) return { def: undefined, reason: 'index-range' };
      return { def: base, index, key: `${base.name}${index}`, alias };
    }
  }
  return { def: undefined, reason: 'unknown' };
}
