// Unit tests of the configuration loader and the parameter table: defaults, value conversion,
// env/override precedence (and the pgpool2_on_k8s traps), backends, paths, aliases, ignored
// parameters, secrets, SHOW formatting, and Debian's complete sample pgpool.conf.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describeSetting, formatValue, loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/parse.ts';
import { ALIASES, SETTINGS, findSetting, resolveName } from '../../src/config/settings.ts';
import type { SettingDef, Settings } from '../../src/config/settings.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'pgrouter-config-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
let fileNo = 0;

/** Writes text to a fresh pgpool.conf in its own temp directory and returns the path. */
function confFile(text: string): string {
  const dir = path.join(tmp, `c${fileNo++}`);
  mkdirSync(dir);
  const f = path.join(dir, 'pgpool.conf');
  writeFileSync(f, text);
  return f;
}

function load(text: string, env: NodeJS.ProcessEnv = {}, overrides?: Record<string, string>): Config {
  return loadConfig({ file: confFile(text), env, ...(overrides ? { overrides } : {}) });
}

/** The ConfigError messages of a failing load. */
function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.message.split('\n');
  }
  assert.fail('expected a ConfigError');
}

// ---------------------------------------------------------------------------------------------
// The table itself

test('table: unique names, well-formed rows, defaults inside their own rules', () => {
  const names = new Set<string>();
  for (const d of SETTINGS as readonly SettingDef[]) {
    assert.ok(!names.has(d.name), `duplicate ${d.name}`);
    names.add(d.name);
    assert.match(d.name, /^[a-z][a-z0-9_]*$/, `${d.name} is snake_case`);
    assert.ok(d.doc.length > 10 && !d.doc.includes('\n'), `${d.name} has a one-line doc`);
    if (d.status === 'ignored') assert.ok((d.ignoredReason ?? '').length > 10, `${d.name} says why it is ignored`);
    else assert.equal(d.ignoredReason, undefined, `${d.name} is supported but has an ignoredReason`);
    if (d.global) assert.ok(d.perNode, `${d.name}: global only makes sense per node`);
    if (d.type === 'integer' || d.type === 'real') {
      assert.ok(d.min <= d.default && d.default <= d.max, `${d.name} default within range`);
    }
    if (d.type === 'integer') assert.ok(Number.isSafeInteger(d.default), `${d.name} default is an integer`);
    if (d.type === 'enum') {
      assert.ok(d.values.includes(d.default), `${d.name} default is one of its values`);
      for (const target of Object.values(d.aliases ?? {})) assert.ok(d.values.includes(target), `${d.name} alias target`);
    }
  }
  for (const a of ALIASES) {
    assert.ok(findSetting(a.target), `alias ${a.name} points at a real parameter`);
    assert.equal(findSetting(a.name.toLowerCase()) === undefined || a.name === 'delegate_IP', true);
  }
  assert.ok(SETTINGS.length > 180, `expected the full 4.3-4.7 list, have ${SETTINGS.length}`);
});

test('table: list separators, units, secrets and pgrouter-only rows as specified', () => {
  const def = (n: string): SettingDef => findSetting(n) ?? assert.fail(`no ${n}`);
  assert.deepEqual([def('reset_query_list').type, (def('reset_query_list') as { separator: string }).separator], ['list', ';']);
  assert.equal((def('primary_routing_query_pattern_list') as { separator: string }).separator, ';');
  assert.equal((def('write_function_list') as { separator: string }).separator, ',');
  const units: Record<string, string> = {
    authentication_timeout: 's', connect_timeout: 'ms', client_idle_limit: 's', health_check_period: 's',
    health_check_timeout: 's', health_check_retry_delay: 's', sr_check_period: 's', delay_threshold_by_time: 'ms',
    log_rotation_age: 'min', log_rotation_size: 'kB', delay_threshold: 'B', drain_timeout: 's', child_life_time: 's',
  };
  for (const [n, u] of Object.entries(units)) assert.equal((def(n) as { unit?: string }).unit, u, n);
  for (const n of ['sr_check_password', 'health_check_password', 'recovery_password', 'wd_lifecheck_password', 'wd_authkey']) {
    assert.equal(def(n).secret, true, `${n} is secret`);
  }
  for (const n of ['drain_timeout', 'metrics_port', 'metrics_listen_addresses', 'pool_hba_file']) assert.equal(def(n).pgrouter, true, n);
  assert.equal(def('backend_hostname').perNode, true);
  assert.equal(def('health_check_period').perNode && def('health_check_period').global, true);
  for (const n of ['use_watchdog', 'delegate_ip', 'failover_command', 'follow_primary_command', 'pcp_port',
    'logging_collector', 'log_directory', 'memory_cache_enabled', 'recovery_1st_stage_command', 'replicate_select',
    'wd_lifecheck_method', 'heartbeat_hostname', 'other_pgpool_hostname', 'if_up_cmd', 'arping_cmd']) {
    assert.equal(def(n).status, 'ignored', `${n} is ignored`);
  }
  assert.deepEqual(
    [def('port').context, def('reset_query_list').context, def('client_idle_limit').context, def('drain_timeout').context],
    ['restart', 'reload', 'session', 'reload'],
  );
});

test('Settings is typed from the table', () => {
  const s = loadConfig({ env: {} }).settings;
  const port: number = s.port;
  const cache: boolean = s.connection_cache;
  const resets: string[] = s.reset_query_list;
  const mode: 'off' | 'transaction' | 'trans_transaction' | 'always' | 'dml_adaptive' = s.disable_load_balance_on_write;
  const hc: number = s.health_check_period;
  // @ts-expect-error per-node parameters are in BackendConfig, not Settings
  void s.backend_hostname;
  // @ts-expect-error enums are unions, not any string
  const bad: 'nonsense' = s.log_min_messages;
  void bad;
  assert.deepEqual([port, cache, resets, mode, hc], [9999, true, ['ABORT', 'DISCARD ALL'], 'transaction', 0]);
});

// ---------------------------------------------------------------------------------------------
// Defaults

test('every default: no file, no env gives the table defaults (paths resolved against cwd)', () => {
  const c = loadConfig({ env: {} });
  assert.equal(c.file, undefined);
  assert.equal(c.dir, process.cwd());
  assert.deepEqual(c.backends, []);
  assert.deepEqual(c.warnings, []);
  const s = c.settings as unknown as Record<string, unknown>;
  for (const d of SETTINGS as readonly SettingDef[]) {
    if (d.perNode && !d.global) {
      assert.ok(!(d.name in s), `${d.name} is per node only`);
      continue;
    }
    const expected = d.path && d.default !== '' ? path.resolve(process.cwd(), String(d.default)) : d.default;
    assert.deepEqual(s[d.name], expected, d.name);
    assert.equal(c.source.get(d.name), 'default', d.name);
  }
});

test('the key defaults', () => {
  const s = loadConfig({ env: {} }).settings;
  const expected: Partial<Settings> = {
    listen_addresses: ['localhost'], port: 9999, unix_socket_directories: ['/tmp'], num_init_children: 32, max_pool: 4,
    connection_cache: true, reset_query_list: ['ABORT', 'DISCARD ALL'], reserved_connections: 0,
    listen_backlog_multiplier: 2, authentication_timeout: 60, connect_timeout: 10000, client_idle_limit: 0,
    enable_pool_hba: false, allow_clear_text_frontend_auth: false, ssl: false, ssl_cert: '', ssl_key: '', ssl_ca_cert: '',
    load_balance_mode: true, backend_clustering_mode: 'streaming_replication', health_check_period: 0,
    health_check_timeout: 20, health_check_user: '', health_check_password: '', health_check_database: '',
    health_check_max_retries: 0, health_check_retry_delay: 1, sr_check_period: 10, sr_check_user: '',
    sr_check_password: '', sr_check_database: 'postgres', failover_on_backend_error: true,
    statement_level_load_balance: false, disable_load_balance_on_write: 'transaction', delay_threshold: 0,
    delay_threshold_by_time: 0, prefer_lower_delay_standby: false, write_function_list: [], read_only_function_list: [],
    primary_routing_query_pattern_list: [], allow_sql_comments: false, log_min_messages: 'warning',
    log_line_prefix: '%m: %a pid %p: ', drain_timeout: 30, metrics_port: 9719, metrics_listen_addresses: '*',
    check_temp_table: 'catalog', log_standby_delay: 'if_over_threshold', client_min_messages: 'notice',
  };
  for (const [k, v] of Object.entries(expected)) assert.deepEqual((s as unknown as Record<string, unknown>)[k], v, k);
  assert.equal(s.pool_passwd, path.resolve('pool_passwd'));
  assert.equal(s.pool_hba_file, path.resolve('pool_hba.conf'));
});

test('per-node defaults: port 5432, weight 1, ALLOW_TO_FAILOVER, health check from the globals', () => {
  const c = load("backend_hostname0 = 'db0'\nhealth_check_period = 7\nconnect_timeout = 3s\n");
  assert.deepEqual(c.backends, [
    {
      id: 0, hostname: 'db0', port: 5432, weight: 1, flag: { alwaysPrimary: false, disallowToFailover: false },
      dataDirectory: '', applicationName: '',
      healthCheck: { period: 7, timeout: 20, user: '', password: '', database: '', maxRetries: 0, retryDelay: 1, connectTimeout: 3000 },
    },
  ]);
  assert.equal(c.source.get('backend_port0'), 'default');
});

// ---------------------------------------------------------------------------------------------
// Values

test('booleans: PostgreSQL spellings and unique prefixes, case-insensitive', () => {
  const val = (v: string): boolean => load(`ssl = ${v}\n`).settings.ssl;
  for (const v of ['on', 'ON', 'true', 't', 'tr', 'yes', 'y', '1', "'On'"]) assert.equal(val(v), true, v);
  for (const v of ['off', 'of', 'OFF', 'false', 'f', 'no', 'n', '0', "'off'"]) assert.equal(val(v), false, v);
  for (const v of ['o', 'maybe', '2', 'onn', "''", 'yess']) {
    assert.deepEqual(problemsOf(() => val(v)).map((m) => m.replace(/^.*?:\d+: /, '')).slice(0, 1),
      [`invalid value for parameter "ssl": "${v.replace(/^'(.*)'$/, '$1')}"; use on/off, true/false, yes/no or 1/0`], v);
  }
});

test('integers: units converted to the base unit, PostgreSQL rounding, octal and hex', () => {
  const s = load([
    'authentication_timeout = 1min', // s
    'connect_timeout = 10s', // ms
    "client_idle_limit = '1500 ms'", // 1.5 s rounds to 2
    'health_check_period = 1h',
    'health_check_timeout = 500ms', // 0.5 s rounds half to even: 0
    'log_rotation_age = 1d', // min
    'log_rotation_size = 10MB', // kB
    'delay_threshold = 10MB', // bytes
    'delay_threshold_by_time = 1.5s',
    'sr_check_period = 0.5min',
    'log_file_mode = 0600',
    "unix_socket_permissions = '0770'",
    'port = 0x2710',
    'num_init_children = +8',
    'client_idle_limit_in_recovery = -1',
    'backend_hostname0 = db',
    'backend_weight0 = 0.25',
    'drain_timeout = 2min',
  ].join('\n')).settings;
  assert.deepEqual(
    [s.authentication_timeout, s.connect_timeout, s.client_idle_limit, s.health_check_period, s.health_check_timeout,
      s.log_rotation_age, s.log_rotation_size, s.delay_threshold, s.delay_threshold_by_time, s.sr_check_period,
      s.log_file_mode, s.unix_socket_permissions, s.port, s.num_init_children, s.client_idle_limit_in_recovery, s.drain_timeout],
    [60, 10000, 2, 3600, 0, 1440, 10240, 10485760, 1500, 30, 0o600, 0o770, 10000, 8, -1, 120],
  );
});

test('integer errors: not a number, out of range, unit where none fits, unknown unit', () => {
  const msgs = problemsOf(() => load([
    "port = 'abc'",
    'port = 80',
    'num_init_children = 5s',
    'connect_timeout = 5sec',
    'max_pool = 08',
    'authentication_timeout = 10kB',
    'port = 1.5e10',
  ].join('\n')));
  const f = msgs[0]!.split(':1:')[0];
  assert.deepEqual(msgs, [
    `${f}:1: invalid value for parameter "port": "abc"`,
    `${f}:2: invalid value for parameter "port": "80"; allowed range is 1024 .. 65535`,
    `${f}:3: invalid value for parameter "num_init_children": "5s"; this parameter takes no unit`,
    `${f}:4: invalid value for parameter "connect_timeout": "5sec"; valid units for this parameter are us, ms, s, min, h, d`,
    `${f}:5: invalid value for parameter "max_pool": "08"`,
    `${f}:6: invalid value for parameter "authentication_timeout": "10kB"; valid units for this parameter are us, ms, s, min, h, d`,
    `${f}:7: invalid value for parameter "port": "1.5e10"; allowed range is 1024 .. 65535`,
  ]);
});

test('enums are case-insensitive, keep Pgpool-II aliases, and list their values on error', () => {
  const s = load("log_min_messages = WARNING\nclient_min_messages = debug\ncheck_temp_table = on\nsyslog_facility = local3\ndisable_load_balance_on_write = 'ALWAYS'\n").settings;
  assert.deepEqual([s.log_min_messages, s.client_min_messages, s.check_temp_table, s.syslog_facility, s.disable_load_balance_on_write],
    ['warning', 'debug2', 'catalog', 'LOCAL3', 'always']);
  assert.equal(load('check_temp_table = off\n').settings.check_temp_table, 'none');
  const [m] = problemsOf(() => load('log_standby_delay = sometimes\n'));
  assert.match(m!, /invalid value for parameter "log_standby_delay": "sometimes"; available values: always, if_over_threshold, none$/);
});

test('lists split at their separator, trimmed, empty items dropped', () => {
  const s = load([
    "reset_query_list = 'ABORT;  DISCARD ALL ; SET SESSION AUTHORIZATION DEFAULT;'",
    "write_function_list = 'nextval, setval,,public.f1'",
    "primary_routing_query_pattern_list = 'SELECT \\\\* FROM t1\\\\;;.*FOR UPDATE'",
    "listen_addresses = 'localhost, 10.0.0.1'",
    "read_only_function_list = ''",
  ].join('\n')).settings;
  assert.deepEqual(s.reset_query_list, ['ABORT', 'DISCARD ALL', 'SET SESSION AUTHORIZATION DEFAULT']);
  assert.deepEqual(s.write_function_list, ['nextval', 'setval', 'public.f1']);
  assert.deepEqual(s.listen_addresses, ['localhost', '10.0.0.1']);
  assert.deepEqual(s.read_only_function_list, []);
  assert.ok(s.primary_routing_query_pattern_list.length >= 2);
});

test('unknown parameter names are problems; names are case-insensitive; duplicates: last wins', () => {
  const msgs = problemsOf(() => load("foo = 1\nport = 5433\nbackend_hostname = 'x'\nbackend_hostname999 = 'x'\n"));
  assert.equal(msgs.length, 3);
  assert.match(msgs[0]!, /pgpool\.conf:1: unrecognized configuration parameter "foo"$/);
  assert.match(msgs[1]!, /pgpool\.conf:3: parameter "backend_hostname" needs a node number, as in "backend_hostname0"$/);
  assert.match(msgs[2]!, /pgpool\.conf:4: node number of parameter "backend_hostname999" is out of range$/);

  const f = confFile('PORT = 5433\nport = 5434\nmax_pool = 1\nport = 5435\n');
  const c = loadConfig({ file: f, env: {} });
  assert.equal(c.settings.port, 5435);
  assert.equal(c.source.get('port'), `${f}:4`);
  assert.equal(c.source.get('max_pool'), `${f}:3`);
  assert.equal(c.source.get('num_init_children'), 'default');
});

test('all problems of a file are reported together, syntax and values alike', () => {
  const msgs = problemsOf(() => load("port = 'abc'\nlisten_addresses = *\nnope = 1\nssl = maybe\n"));
  assert.deepEqual(msgs.map((m) => /:(\d+): /.exec(m)?.[1]), ['2', '1', '3', '4']);
});

test('a missing config file is a problem, not a crash', () => {
  const f = path.join(tmp, 'does-not-exist.conf');
  assert.deepEqual(problemsOf(() => loadConfig({ file: f, env: {} })), [`${f}: could not read configuration file (ENOENT)`]);
});

// ---------------------------------------------------------------------------------------------
// Environment overlay and overrides

test('env PGPOOL_PARAMS_* wins over the file, overrides win over both; source says where from', () => {
  const f = confFile('port = 5433\nmax_pool = 2\nnum_init_children = 10\n');
  const c = loadConfig({
    file: f,
    env: { PGPOOL_PARAMS_PORT: '6000', PGPOOL_PARAMS_MAX_POOL: '3', PGPOOL_PORT: '1', pgpool_params_ssl: 'on', PATH: '/bin' },
    overrides: { max_pool: '5' },
  });
  assert.deepEqual([c.settings.port, c.settings.max_pool, c.settings.num_init_children, c.settings.ssl], [6000, 5, 10, false]);
  assert.equal(c.source.get('port'), 'env PGPOOL_PARAMS_PORT');
  assert.equal(c.source.get('max_pool'), 'override');
  assert.equal(c.source.get('num_init_children'), `${f}:3`);
  assert.equal(c.source.get('ssl'), 'default');
});

test('env values are taken literally: = signs, quotes, spaces and | survive (pgpool2_on_k8s traps)', () => {
  const c = loadConfig({
    env: {
      PGPOOL_PARAMS_PRIMARY_ROUTING_QUERY_PATTERN_LIST: "SELECT .* WHERE a=b;x = 'y'",
      PGPOOL_PARAMS_HEALTH_CHECK_USER: "o'brien",
      PGPOOL_PARAMS_SR_CHECK_PASSWORD: "pa=ss 'w\"ord # not a comment",
      PGPOOL_PARAMS_RESET_QUERY_LIST: 'ABORT; DISCARD ALL',
      PGPOOL_PARAMS_LOG_LINE_PREFIX: "'%t: pid %p: '",
      PGPOOL_PARAMS_BACKEND_HOSTNAME0: 'primary.db.svc',
      PGPOOL_PARAMS_BACKEND_FLAG0: 'ALWAYS_PRIMARY|DISALLOW_TO_FAILOVER',
      PGPOOL_PARAMS_BACKEND_HOSTNAME1: 'replica.db.svc',
      PGPOOL_PARAMS_BACKEND_FLAG1: 'DISALLOW_TO_FAILOVER',
      PGPOOL_PARAMS_BACKEND_WEIGHT1: '3',
      PGPOOL_PARAMS_LISTEN_ADDRESSES: '*',
    },
  });
  const s = c.settings;
  assert.deepEqual(s.primary_routing_query_pattern_list, ['SELECT .* WHERE a=b', "x = 'y'"]);
  assert.equal(s.health_check_user, "o'brien");
  assert.equal(s.sr_check_password, "pa=ss 'w\"ord # not a comment");
  assert.deepEqual(s.reset_query_list, ['ABORT', 'DISCARD ALL']);
  assert.equal(s.log_line_prefix, "'%t: pid %p: '", 'quotes are part of the value, not syntax');
  assert.deepEqual(s.listen_addresses, ['*']);
  assert.deepEqual(c.backends.map((b) => [b.id, b.hostname, b.weight, b.flag.alwaysPrimary, b.flag.disallowToFailover]), [
    [0, 'primary.db.svc', 1, true, true],
    [1, 'replica.db.svc', 3, false, true],
  ]);
});

test('unknown env names and bad env values are problems, located at the variable', () => {
  const msgs = problemsOf(() => loadConfig({ env: { PGPOOL_PARAMS_NOPE: 'x', PGPOOL_PARAMS_PORT: 'nine' }, overrides: { bogus: '1' } }));
  assert.deepEqual(msgs, [
    'env PGPOOL_PARAMS_NOPE: unrecognized configuration parameter "nope"',
    'env PGPOOL_PARAMS_PORT: invalid value for parameter "port": "nine"',
    'override: unrecognized configuration parameter "bogus"',
  ]);
});

test("pgpool2_on_k8s's script defaults load, with the socket_dir rename reported", () => {
  const c = loadConfig({
    env: {
      PGPOOL_PARAMS_PORT: '9999', PGPOOL_PARAMS_BACKEND_HOSTNAME0: 'pg', PGPOOL_PARAMS_BACKEND_PORT0: '5432',
      PGPOOL_PARAMS_BACKEND_WEIGHT0: '1', PGPOOL_PARAMS_BACKEND_FLAG0: 'ALLOW_TO_FAILOVER', PGPOOL_PARAMS_LISTEN_ADDRESSES: '*',
      PGPOOL_PARAMS_SR_CHECK_PERIOD: '0', PGPOOL_PARAMS_HEALTH_CHECK_PERIOD: '0', PGPOOL_PARAMS_FAILOVER_ON_BACKEND_ERROR: 'off',
      PGPOOL_PARAMS_SOCKET_DIR: '/var/run/pgpool', PGPOOL_PARAMS_PCP_SOCKET_DIR: '/var/run/pgpool',
      PGPOOL_PARAMS_WD_IPC_SOCKET_DIR: '/var/run/pgpool',
    },
  });
  assert.deepEqual(c.settings.unix_socket_directories, ['/var/run/pgpool']);
  assert.equal(c.source.get('unix_socket_directories'), 'env PGPOOL_PARAMS_SOCKET_DIR');
  assert.equal(c.settings.failover_on_backend_error, false);
  assert.equal(c.backends.length, 1);
  assert.ok(c.warnings.some((w) => w.includes('"socket_dir" was renamed to "unix_socket_directories"')));
  assert.ok(c.warnings.some((w) => w.includes('"pcp_socket_dir" is ignored')));
});

// ---------------------------------------------------------------------------------------------
// Backends

test('backends: sparse ids kept, per-node health check overrides, flags parsed', () => {
  const c = load([
    "backend_hostname0 = 'primary'",
    'backend_port0 = 5433',
    "backend_flag0 = 'always_primary | disallow_to_failover'",
    "backend_application_name0 = 'server0'",
    "backend_data_directory0 = '/data'",
    "backend_hostname2 = '/var/run/postgresql'",
    'backend_weight2 = 0',
    'health_check_period = 10',
    'health_check_period2 = 3',
    "health_check_user = 'hc'",
    "health_check_password2 = 'p2'",
    'connect_timeout2 = 250ms',
  ].join('\n'));
  assert.deepEqual(c.backends.map((b) => b.id), [0, 2]);
  const [b0, b2] = c.backends;
  assert.deepEqual([b0!.hostname, b0!.port, b0!.flag, b0!.applicationName, b0!.dataDirectory],
    ['primary', 5433, { alwaysPrimary: true, disallowToFailover: true }, 'server0', '/data']);
  assert.deepEqual([b2!.hostname, b2!.port, b2!.weight], ['/var/run/postgresql', 5432, 0]);
  assert.deepEqual([b0!.healthCheck.period, b0!.healthCheck.user, b0!.healthCheck.password, b0!.healthCheck.connectTimeout],
    [10, 'hc', '', 10000]);
  assert.deepEqual([b2!.healthCheck.period, b2!.healthCheck.user, b2!.healthCheck.password, b2!.healthCheck.connectTimeout],
    [3, 'hc', 'p2', 250]);
  assert.equal(c.settings.health_check_period, 10);
  assert.match(c.source.get('health_check_period2')!, /:9$/);
});

test('backends: a port/weight/override without a hostname is a problem at its line', () => {
  const msgs = problemsOf(() => load("backend_hostname0 = 'a'\nbackend_port1 = 5433\nbackend_weight1 = 2\nhealth_check_period3 = 1\nbackend_hostname4 = ''\nbackend_port4 = 5432\n"));
  assert.deepEqual(msgs.map((m) => m.replace(/^.*pgpool\.conf/, '')), [
    ':2: backend_port1 is set but backend_hostname1 is not',
    ':3: backend_weight1 is set but backend_hostname1 is not',
    ':4: health_check_period3 is set but backend_hostname3 is not',
    ':6: backend_port4 is set but backend_hostname4 is not',
  ]);
});

test('backend_flag: unknown flags and ALLOW together with DISALLOW are rejected', () => {
  const msgs = problemsOf(() => load("backend_hostname0 = 'a'\nbackend_flag0 = 'ALLOW_TO_FAILOVER|DISALLOW_TO_FAILOVER'\nbackend_hostname1 = 'b'\nbackend_flag1 = 'ALWAYS_MASTER'\nbackend_hostname2 = 'c'\nbackend_flag2 = 'FAST'\n"));
  assert.equal(msgs.length, 3);
  assert.match(msgs[0]!, /:2: invalid value for parameter "backend_flag0": .*exclude each other$/);
  assert.match(msgs[1]!, /:4: .*ALWAYS_MASTER is now spelled ALWAYS_PRIMARY$/);
  assert.match(msgs[2]!, /:6: .*valid flags are ALLOW_TO_FAILOVER, DISALLOW_TO_FAILOVER, ALWAYS_PRIMARY$/);
});

test('backend_clustering_mode: modes pgrouter cannot route for are refused', () => {
  for (const m of ['streaming_replication', 'logical_replication', 'raw']) {
    assert.equal(load(`backend_clustering_mode = '${m}'\n`).settings.backend_clustering_mode, m);
  }
  const [msg] = problemsOf(() => load("backend_clustering_mode = 'native_replication'\n"));
  assert.match(msg!, /invalid value for parameter "backend_clustering_mode": "native_replication"; pgrouter supports/);
});

// ---------------------------------------------------------------------------------------------
// Paths

test('relative paths resolve against the config file directory; absolute and empty stay', () => {
  const f = confFile("pool_passwd = 'pool_passwd'\nssl_cert = 'tls/server.crt'\nssl_key = '/etc/tls/server.key'\nssl_ca_cert = ''\npool_hba_file = '../hba.conf'\n");
  const dir = path.dirname(f);
  const c = loadConfig({ file: f, env: {} });
  assert.equal(c.dir, dir);
  assert.equal(c.settings.pool_passwd, path.join(dir, 'pool_passwd'));
  assert.equal(c.settings.ssl_cert, path.join(dir, 'tls/server.crt'));
  assert.equal(c.settings.ssl_key, '/etc/tls/server.key');
  assert.equal(c.settings.ssl_ca_cert, '');
  assert.equal(c.settings.pool_hba_file, path.resolve(dir, '../hba.conf'));
  assert.equal(load("pool_passwd = ''\n").settings.pool_passwd, '', "'' disables pool_passwd");
});

// ---------------------------------------------------------------------------------------------
// Aliases and ignored parameters

test('old names set the new parameters, with one warning per old name', () => {
  const c = load([
    "black_function_list = 'nextval,setval'",
    "white_function_list = 'f'",
    "black_query_pattern_list = 'x;y'",
    "white_memqcache_table_list = 'a'",
    "black_memqcache_table_list = 'b'",
    'fail_over_on_backend_error = off',
    "logdir = '/var/log/pgpool'",
    "delegate_IP = ''",
    "socket_dir = '/run/pg'",
    "black_function_list = 'nextval'",
  ].join('\n'));
  const s = c.settings;
  assert.deepEqual(s.write_function_list, ['nextval']);
  assert.deepEqual(s.read_only_function_list, ['f']);
  assert.deepEqual(s.primary_routing_query_pattern_list, ['x', 'y']);
  assert.deepEqual(s.cache_safe_memqcache_table_list, ['a']);
  assert.deepEqual(s.cache_unsafe_memqcache_table_list, ['b']);
  assert.equal(s.failover_on_backend_error, false);
  assert.equal(s.work_dir, '/var/log/pgpool');
  assert.deepEqual(s.unix_socket_directories, ['/run/pg']);
  assert.match(c.source.get('write_function_list')!, /:10$/);
  const aliasWarnings = c.warnings.filter((w) => w.includes('use the new name'));
  assert.equal(aliasWarnings.length, 9, aliasWarnings.join('\n'));
  assert.ok(aliasWarnings[0]!.includes('"black_function_list" is the pre-4.2 name of "write_function_list"'));
  assert.equal(load("delegate_ip = ''\n").warnings.length, 0, 'the current spelling warns nothing');
});

test('ignored parameters: accepted, one warning each with the reason, none when left at the default', () => {
  const c = load("use_watchdog = on\nuse_watchdog = on\nwd_port0 = 9001\nwd_port1 = 9002\nfailover_command = '/bin/failover.sh %d'\nmemory_cache_enabled = off\nwd_interval = 10\n");
  assert.deepEqual(c.warnings.map((w) => w.replace(/^.*pgpool\.conf:/, '')), [
    '2: parameter "use_watchdog" is ignored: ' + findSetting('use_watchdog')!.ignoredReason,
    '3: parameter "wd_port" is ignored: ' + findSetting('wd_port')!.ignoredReason,
    '5: parameter "failover_command" is ignored: ' + findSetting('failover_command')!.ignoredReason,
  ]);
  assert.ok(findSetting('failover_command')!.ignoredReason!.includes('Kubernetes'));
  assert.match(c.source.get('wd_port1')!, /:4$/);
});

// ---------------------------------------------------------------------------------------------
// Secrets

test('a secret value never appears in problems, warnings or formatted output', () => {
  const secret = 'Tr0ub4dor&3';
  const c = loadConfig({
    env: {
      PGPOOL_PARAMS_SR_CHECK_PASSWORD: secret, PGPOOL_PARAMS_HEALTH_CHECK_PASSWORD: secret,
      PGPOOL_PARAMS_WD_LIFECHECK_PASSWORD: secret, PGPOOL_PARAMS_RECOVERY_PASSWORD: secret, PGPOOL_PARAMS_WD_AUTHKEY: secret,
    },
  });
  assert.equal(c.settings.health_check_password, secret);
  assert.ok(c.warnings.length > 0 && !c.warnings.join('\n').includes(secret));
  assert.equal(formatValue('health_check_password', secret), '*****');
  assert.equal(formatValue('health_check_password0', secret), '*****');
  assert.equal(formatValue('sr_check_password', ''), '*****');

  const msgs = problemsOf(() => load(
    `sr_check_password = ${secret}\nhealth_check_password = 'x' ${secret}\nhealth_check_passwd = '${secret}'\nwd_authkey = '${secret}\n`,
  ));
  assert.equal(msgs.length, 4);
  assert.ok(!msgs.join('\n').includes(secret), msgs.join('\n'));
  assert.ok(!msgs.join('\n').includes('Tr0ub'), msgs.join('\n'));
});

test('a per-node secret set for a node without a hostname is reported by name only', () => {
  const msgs = problemsOf(() => load("health_check_password5 = 'hunter2'\n"));
  assert.deepEqual(msgs.map((m) => m.replace(/^.*pgpool\.conf/, '')), [':1: health_check_password5 is set but backend_hostname5 is not']);
});

// ---------------------------------------------------------------------------------------------
// SHOW helpers

test('describeSetting and formatValue: GUC-style output', () => {
  assert.deepEqual(
    [describeSetting('Backend_Port1')?.name, describeSetting('backend_port1')?.index, describeSetting('port')?.index,
      describeSetting('logdir')?.name, describeSetting('nope'), describeSetting('backend_port')],
    ['backend_port1', 1, undefined, 'work_dir', undefined, undefined],
  );
  const cases: Array<[string, unknown, string]> = [
    ['client_idle_limit', 10, '10s'], ['client_idle_limit', 0, '0'], ['authentication_timeout', 60, '1min'],
    ['authentication_timeout', 90, '90s'], ['child_life_time', 300, '5min'], ['connect_timeout', 10000, '10s'],
    ['connect_timeout', 1500, '1500ms'], ['health_check_period', 3600, '1h'], ['log_rotation_age', 1440, '1d'],
    ['log_rotation_size', 10240, '10MB'], ['memqcache_total_size', 67108864, '64MB'], ['memqcache_maxcache', 409600, '400kB'],
    ['delay_threshold', 1000, '1000B'], ['client_idle_limit_in_recovery', -1, '-1'], ['log_file_mode', 0o600, '0600'],
    ['unix_socket_permissions', 0o777, '0777'], ['ssl', true, 'on'], ['connection_cache', false, 'off'],
    ['reset_query_list', ['ABORT', 'DISCARD ALL'], 'ABORT;DISCARD ALL'], ['listen_addresses', ['a', 'b'], 'a,b'],
    ['log_min_messages', 'warning', 'warning'], ['backend_weight0', 0.5, '0.5'], ['backend_hostname3', 'db', 'db'],
    ['port', 9999, '9999'], ['drain_timeout', 30, '30s'],
  ];
  for (const [name, value, text] of cases) assert.equal(formatValue(name, value), text, `${name} ${String(value)}`);
  assert.throws(() => formatValue('nope', 1), /unrecognized configuration parameter "nope"/);
});

test('the loaded Config is frozen', () => {
  const c = load("backend_hostname0 = 'a'\n");
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.settings) && Object.isFrozen(c.backends) && Object.isFrozen(c.backends[0]));
  assert.ok(Object.isFrozen(c.settings.reset_query_list));
  assert.throws(() => {
    (c.settings as { port: number }).port = 1;
  }, TypeError);
});

// ---------------------------------------------------------------------------------------------
// Debian's complete sample pgpool.conf

const SAMPLE_CANDIDATES = [
  '/usr/share/doc/pgpool2/examples/pgpool.conf.sample',
  '/usr/share/doc/pgpool2/examples/pgpool.conf.sample.gz',
  '/etc/pgpool2/pgpool.conf',
];

/** Debian's sample config text; fails (does not skip) when pgpool2 is not installed. */
function debianSample(): { file: string; text: string } {
  const file = SAMPLE_CANDIDATES.find((f) => existsSync(f));
  if (!file) {
    assert.fail(
      `Debian's sample pgpool.conf was not found (looked in ${SAMPLE_CANDIDATES.join(', ')}): ` +
        'install the pgpool2 package (apt-get install pgpool2) to run this test',
    );
  }
  const raw = readFileSync(file);
  return { file, text: file.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8') };
}

test("Debian's sample pgpool.conf loads as shipped, with no problems", () => {
  const { text } = debianSample();
  const c = load(text);
  assert.equal(c.settings.backend_clustering_mode, 'streaming_replication');
  assert.deepEqual(c.backends, []);
});

test("Debian's sample pgpool.conf with every commented-out parameter enabled: every name known, every value valid", () => {
  const { text } = debianSample();
  // "#name = value" lines are the sample's parameters; "#   name = value" is prose.
  const enabled = text
    .split('\n')
    .map((l) => l.replace(/^#(?=[A-Za-z_][A-Za-z0-9_]*\s*=)/, ''))
    .join('\n');
  const names = new Set<string>();
  for (const m of enabled.matchAll(/^([A-Za-z_][A-Za-z0-9_]*)\s*=/gm)) names.add(m[1]!);
  assert.ok(names.size > 150, `found only ${names.size} parameters in the sample`);
  for (const n of names) {
    const r = resolveName(n);
    assert.ok(r.def, `sample parameter "${n}" is unknown to the table`);
    if (r.def.status === 'ignored') assert.ok(r.def.ignoredReason, `${n} is ignored without a reason`);
  }

  let c: Config;
  try {
    c = load(enabled);
  } catch (err) {
    assert.fail(`the enabled sample did not load:\n${err instanceof Error ? err.message : String(err)}`);
  }
  assert.deepEqual(c.backends.map((b) => [b.id, b.hostname, b.port, b.weight, b.dataDirectory, b.applicationName]), [
    [0, 'host1', 5432, 1, '/data', 'server0'],
    [1, 'host2', 5433, 1, '/data1', 'server1'],
  ]);
  const s = c.settings;
  assert.equal(s.port, 5433);
  assert.equal(s.authentication_timeout, 60, '1min');
  assert.equal(s.log_rotation_size, 10240, '10MB');
  assert.equal(s.log_file_mode, 0o600);
  assert.equal(s.memqcache_total_size, 64 * 1024 * 1024);
  assert.deepEqual(s.reset_query_list, ['ABORT', 'RESET ALL', 'SET SESSION AUTHORIZATION DEFAULT'], 'the later line wins');
  assert.ok(c.warnings.some((w) => w.includes('"logdir" was renamed to "work_dir"')));
  assert.ok(c.warnings.some((w) => w.includes('"delegate_IP" is an old spelling')));
});
