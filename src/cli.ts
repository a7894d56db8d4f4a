// The `pgrouter` command line: run the proxy (`pgrouter -f pgpool.conf`), check a
// configuration (`pgrouter check-config -f FILE`), run as pgpool2_exporter in front of a real
// Pgpool-II (`pgrouter exporter`), --help and --version. Signals: SIGTERM drains, SIGINT stops
// at once.

import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { loadConfig, type Config } from './config/load.ts';
import { ConfigError } from './config/parse.ts';
import { Proxy } from './main.ts';
import { dataSourceFromEnv } from './exporter/dsn.ts';
import { runExporter } from './exporter/exporter.ts';

const HELP = `pgrouter: a PostgreSQL query router and connection pooler (a drop-in for Pgpool-II)

Usage:
  pgrouter [options]                  run the proxy
  pgrouter check-config [options]     check the configuration and exit
  pgrouter exporter [exporter options]
                                      serve pgpool2_exporter's metrics for a running Pgpool-II

Options:
  -f, --config-file FILE   pgpool.conf-style configuration (default: ./pgpool.conf, else
                           /config/pgpool.conf, if one exists)
  -a, --hba-file FILE      pool_hba.conf (with enable_pool_hba = on)
  -k, --key-file FILE      AES key for pool_passwd entries (default: $PGPOOLKEYFILE, ~/.pgpoolkey)
  -d, --debug              log at debug level
      --metrics-port PORT  port of /metrics, /healthz, /readyz and the status page
                           (default: metrics_port, 9719)
  -n, --nodaemon           accepted for Pgpool-II compatibility (pgrouter never forks)
  -F, --pcp-file FILE      accepted for Pgpool-II compatibility and ignored
  -h, --help               show this help
  -v, --version            show the version

Exporter options (pgpool2_exporter's; the Pgpool-II to read is DATA_SOURCE_NAME, a libpq URL
or key=value string, else DATA_SOURCE_URI host:port/db?sslmode=... with DATA_SOURCE_USER and
DATA_SOURCE_PASS):
      --web.listen-address ADDR   where to serve (default :9719)
      --web.telemetry-path PATH   path of the metrics (default /metrics)
      --log.level LEVEL           debug, info, warn or error (default info)

Every parameter can also be set as PGPOOL_PARAMS_<NAME>=<value> in the environment (it wins over
the file). Signals: SIGTERM drains (sessions end between transactions, up to drain_timeout),
SIGINT closes at once, SIGHUP reloads the configuration (reloadable parameters apply to new sessions;
the others are reported and keep their running values).
`;

export function version(): string {
  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8')) as { version: string };
  return pkg.version;
}

function makeLogger(level: string): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

/** Files tried in order when no -f is given. */
const DEFAULT_CONFIG_FILES = ['pgpool.conf', '/config/pgpool.conf'];

function load(values: { 'config-file'?: string | undefined; 'hba-file'?: string | undefined; 'metrics-port'?: string | undefined }): Config {
  const overrides: Record<string, string> = {};
  if (values['hba-file']) overrides['pool_hba_file'] = values['hba-file'];
  if (values['metrics-port']) overrides['metrics_port'] = values['metrics-port'];
  let file = values['config-file'];
  // Without -f: ./pgpool.conf, else the container's mounted ConfigMap (pgpool2_on_k8s's /config).
  file ??= DEFAULT_CONFIG_FILES.find((candidate) => {
    try {
      readFileSync(candidate);
      return true;
    } catch {
      return false;
    }
  });
  return loadConfig({ file, env: process.env, overrides });
}

/** `pgrouter exporter`: runs until SIGTERM or SIGINT. */
async function exporterMain(argv: string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        'web.listen-address': { type: 'string', default: ':9719' },
        'web.telemetry-path': { type: 'string', default: '/metrics' },
        'log.level': { type: 'string', default: 'info' },
        'log.format': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    }).values;
  } catch (e) {
    process.stderr.write(`pgrouter exporter: ${(e as Error).message}\nTry "pgrouter --help".\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`pgrouter ${version()} (exporter)\n`);
    return 0;
  }
  const log = makeLogger(values['log.level'] === 'warn' || values['log.level'] === 'error' || values['log.level'] === 'debug' ? values['log.level'] : 'info');
  // As for the proxy: handlers first, so a signal during start-up stops it once it has started.
  let running: Awaited<ReturnType<typeof runExporter>> | undefined;
  let early: string | undefined;
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (finish = resolve));
  const stop = (sig: string): void => {
    log.info(`${sig} received: stopping`);
    if (running) void running.stop().then(() => finish(0));
    else early = sig;
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  try {
    running = await runExporter({
      dataSource: dataSourceFromEnv(process.env),
      listenAddress: values['web.listen-address'],
      telemetryPath: values['web.telemetry-path'],
      log,
    });
  } catch (e) {
    log.fatal({ err: (e as Error).message }, 'exporter could not start');
    return 1;
  }
  if (early !== undefined) void running.stop().then(() => finish(0));
  return finished;
}

/** Runs the command line; resolves with the exit code (the proxy itself resolves only when stopped). */
export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'exporter') return exporterMain(argv.slice(1));
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'config-file': { type: 'string', short: 'f' },
        'hba-file': { type: 'string', short: 'a' },
        'key-file': { type: 'string', short: 'k' },
        'pcp-file': { type: 'string', short: 'F' },
        debug: { type: 'boolean', short: 'd' },
        'metrics-port': { type: 'string' },
        nodaemon: { type: 'boolean', short: 'n' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (e) {
    process.stderr.write(`pgrouter: ${(e as Error).message}\nTry "pgrouter --help".\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`pgrouter ${version()}\n`);
    return 0;
  }
  const command = positionals[0] ?? 'run';
  if (command !== 'run' && command !== 'check-config') {
    process.stderr.write(`pgrouter: unknown command "${command}"\nTry "pgrouter --help".\n`);
    return 2;
  }
  let config: Config;
  try {
    config = load(values);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`pgrouter: configuration is not valid:\n${e.problems.map((p) => `  ${p.file}:${p.line}: ${p.message}`).join('\n')}\n`);
      return 1;
    }
    process.stderr.write(`pgrouter: ${(e as Error).message}\n`);
    return 1;
  }
  if (command === 'check-config') {
    for (const w of config.warnings) process.stdout.write(`warning: ${w}\n`);
    process.stdout.write(`configuration OK: ${config.file ?? '(defaults and environment)'}, ${config.backends.length} backend(s)\n`);
    return 0;
  }
  const lm = String(config.settings.log_min_messages);
  const log = makeLogger(values.debug || lm.startsWith('debug') ? 'debug' : 'info');
  for (const w of config.warnings) log.warn(w);
  // Which source set each parameter (file:line, env PGPOOL_PARAMS_X, override): names only, no values.
  const sources: Record<string, string> = {};
  for (const [name, origin] of config.source) if (origin !== 'default') sources[name] = origin;
  log.info({ file: config.file ?? null, sources }, 'configuration loaded');
  if (config.backends.length === 0) {
    log.fatal('no backend is configured (set backend_hostname0)');
    return 1;
  }
  // The handlers go in before the listeners open: a signal that arrives while the proxy is still
  // starting (its port may already accept) is acted on once it has started, instead of killing
  // the process with the default action.
  let proxy: Proxy | undefined;
  let early: 'SIGTERM' | 'SIGINT' | undefined;
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (finish = resolve));
  const drain = (p: Proxy): void => void p.drain(config.settings.drain_timeout).then(() => finish(0));
  const stop = (p: Proxy): void => void p.stop().then(() => finish(0));
  process.once('SIGTERM', () => {
    log.info('SIGTERM received: draining');
    if (proxy) drain(proxy);
    else early ??= 'SIGTERM';
  });
  process.once('SIGINT', () => {
    log.info('SIGINT received: stopping');
    if (proxy) stop(proxy);
    else early = 'SIGINT';
  });
  process.on('SIGHUP', () => {
    if (!proxy) return; // still starting: the configuration was just read
    log.info('SIGHUP received: reloading the configuration');
    void proxy.reloadNow();
  });
  try {
    proxy = await Proxy.start(config, { log, keyFile: values['key-file'], env: process.env, reloadConfig: () => load(values) });
  } catch (e) {
    log.fatal({ err: (e as Error).message }, 'could not start');
    return 1;
  }
  if (early === 'SIGINT') stop(proxy);
  else if (early === 'SIGTERM') drain(proxy);
  return finished;
}
