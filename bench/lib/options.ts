// Command-line flags of `npm run bench`: which targets, workloads and parts to run, for how
// long, and whether to rewrite bench/RESULTS.md.

import { parsePgrouterConf } from '../targets/pgrouter.ts';
import { TARGET_NAMES, type TargetName } from '../targets/target.ts';
import { WORKLOADS } from './workloads.ts';

/** The parts of a full run, in the order they run. */
export const PARTS = ['throughput', 'latency', 'idle-memory'] as const;
export type Part = (typeof PARTS)[number];

/** Parsed flags. */
export interface BenchOptions {
  targets: TargetName[];
  workloads: string[];
  parts: Part[];
  seconds: number;
  warmup: number;
  rounds: number;
  write: boolean;
  /** latency: round trips per path. */
  latencyQueries: number;
  /** idle-memory: authenticated sessions (each holds a backend connection) and total connections. */
  idleSessions: number;
  idleTotal: number;
  /** pgpool.conf lines (--pgrouter-conf) given to both pgrouter targets and the latency part's pgrouter. */
  pgrouterConf: Record<string, string>;
}

export const USAGE = `usage: npm run bench -- [flags]
  --only T1,T2          targets (default: ${TARGET_NAMES.join(',')}; direct is always run when a ratio is wanted)
                        pgrouter = session pooling (pool_mode default), pgrouter-txn = pool_mode 'transaction'
  --workloads W1,W2     workloads (default: all: ${WORKLOADS.map((w) => w.id).join(',')})
  --seconds N           measured seconds per workload and target (default 15)
  --warmup N            warm-up seconds before each measurement (default 3)
  --rounds N            repeat each workload's target cycle N times, report the median (default 1)
  --parts P1,P2         ${PARTS.join(',')} (default: all)
  --latency             shorthand for --parts latency
  --idle-memory         shorthand for --parts idle-memory
  --latency-queries N   SELECT 1 round trips per path for the latency part (default 20000)
  --idle-sessions N     authenticated idle sessions for idle-memory (default 1000)
  --idle-total N        total idle client connections for idle-memory (default 5000)
  --pgrouter-conf K=V,… pgpool.conf lines for both pgrouter targets (and the latency part's pgrouter),
                        e.g. transaction_pool_size=8,load_balance_mode=off; repeatable; not pool_mode,
                        port, listen_addresses, unix_socket_directories, pool_passwd, backend_hostname/port
  --write               rewrite bench/RESULTS.md and bench/results.json (default: print only)
  --help`;

function list<T extends string>(flag: string, value: string | undefined, allowed: readonly T[]): T[] {
  if (value === undefined || value === '') throw new Error(`${flag} needs a comma-separated list`);
  const items = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const i of items) if (!allowed.includes(i as T)) throw new Error(`${flag}: unknown "${i}" (known: ${allowed.join(', ')})`);
  return items as T[];
}

function positive(flag: string, value: string | undefined, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} needs an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  return n;
}

/** Parses argv (without node and script); throws an Error with a readable message on bad input. */
export function parseOptions(argv: string[]): BenchOptions | 'help' {
  const o: BenchOptions = {
    targets: [...TARGET_NAMES],
    workloads: WORKLOADS.map((w) => w.id),
    parts: [...PARTS],
    seconds: 15,
    warmup: 3,
    rounds: 1,
    write: false,
    latencyQueries: 20_000,
    idleSessions: 1000,
    idleTotal: 5000,
    pgrouterConf: {},
  };
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i]!;
    const eq = raw.indexOf('=');
    const flag = eq > 0 ? raw.slice(0, eq) : raw;
    const inline = eq > 0 ? raw.slice(eq + 1) : undefined;
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--help':
      case '-h':
        return 'help';
      case '--only':
        o.targets = list(flag, value(), TARGET_NAMES);
        break;
      case '--workloads':
        o.workloads = list(flag, value(), WORKLOADS.map((w) => w.id));
        break;
      case '--parts':
        o.parts = list(flag, value(), PARTS);
        break;
      case '--latency':
        o.parts = ['latency'];
        break;
      case '--idle-memory':
        o.parts = ['idle-memory'];
        break;
      case '--seconds':
        o.seconds = positive(flag, value());
        break;
      case '--warmup':
        o.warmup = positive(flag, value(), 0);
        break;
      case '--rounds':
        o.rounds = positive(flag, value());
        break;
      case '--latency-queries':
        o.latencyQueries = positive(flag, value(), 100);
        break;
      case '--idle-sessions':
        o.idleSessions = positive(flag, value(), 0);
        break;
      case '--idle-total':
        o.idleTotal = positive(flag, value());
        break;
      case '--pgrouter-conf': {
        const v = value();
        if (v === undefined || v.trim() === '') throw new Error(`${flag} needs key=value[,key=value…]`);
        parsePgrouterConf(v, o.pgrouterConf);
        break;
      }
      case '--write':
        o.write = true;
        break;
      default:
        throw new Error(`unknown flag ${raw}\n${USAGE}`);
    }
  }
  // Keep the canonical order whatever order the flags gave.
  o.targets = TARGET_NAMES.filter((t) => o.targets.includes(t));
  o.workloads = WORKLOADS.map((w) => w.id).filter((w) => o.workloads.includes(w));
  o.parts = PARTS.filter((p) => o.parts.includes(p));
  if (o.idleSessions > o.idleTotal) throw new Error('--idle-sessions cannot exceed --idle-total');
  return o;
}

/** The value after `--name` on the command line of a standalone bench script, or `dflt`. */
export function flag(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}
