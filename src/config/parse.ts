// Lexer for pgpool.conf, whose syntax is postgresql.conf's: `name [=] value` lines, # comments,
// single-quoted strings with '' and backslash escapes, bare identifiers and numbers with units.
// It only splits lines into name/value pairs; parameter names and values are checked in load.ts.

import { ProxyError } from '../errors/proxy-error.ts';
import { SqlState } from '../errors/sqlstate.ts';

/** One `name = value` line of a config file. */
export interface ConfigLine {
  readonly file: string;
  /** 1-based line number. */
  readonly line: number;
  /** The name as written (not lower-cased). */
  readonly name: string;
  /** The value with quotes removed and escapes decoded. */
  readonly value: string;
  /** Whether the value was a single-quoted string. */
  readonly quoted: boolean;
}

/** One thing wrong with the configuration; never contains a secret value. */
export interface ConfigProblem {
  /** A file name, or a pseudo-source such as "env PGPOOL_PARAMS_PORT" or "override". */
  readonly file: string;
  /** 1-based line number, or 0 when the problem is not tied to a line. */
  readonly line: number;
  readonly message: string;
}

/** Formats a problem as `file:line: message` (or `file: message` without a line). */
export function formatProblem(p: ConfigProblem): string {
  return p.line > 0 ? `${p.file}:${p.line}: ${p.message}` : `${p.file}: ${p.message}`;
}

/** The configuration could not be used; `problems` lists everything found wrong, in order. */
export class ConfigError extends ProxyError {
  readonly problems: ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super(SqlState.CONFIG_FILE_ERROR, problems.map(formatProblem).join('\n') || 'invalid configuration', 'FATAL');
    this.name = 'ConfigError';
    this.problems = [...problems];
  }
}

/** Lines and problems of a file; problems are collected for every line rather than stopping at the first. */
export interface ScanResult {
  readonly lines: ConfigLine[];
  readonly problems: ConfigProblem[];
}

const WS = /[ \t\r\f\v]/;
const NAME_START = /[A-Za-z_\u0080-\uffff]/;
const NAME_CHAR = /[A-Za-z0-9_$.\u0080-\uffff]/;
// Bare values as postgresql.conf's lexer accepts them: numbers (with unit letters), identifiers and
// unquoted strings that start with a letter and may contain - . _ : /
const BARE_VALUE = [
  /^[+-]?(\d+|0[xX][0-9a-fA-F]+)[A-Za-z]*$/,
  /^[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?[A-Za-z]*$/,
  /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_\-.:/\u0080-\uffff]*$/,
];

const ESCAPES: Readonly<Record<string, string>> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

type LineResult = { kind: 'blank' } | { kind: 'ok'; name: string; value: string; quoted: boolean } | { kind: 'error'; message: string };

function scanLine(text: string): LineResult {
  let i = 0;
  const skipWs = (): void => {
    while (i < text.length && WS.test(text[i] ?? '')) i++;
  };
  skipWs();
  if (i >= text.length || text[i] === '#') return { kind: 'blank' };

  if (!NAME_START.test(text[i] ?? '')) return { kind: 'error', message: 'syntax error: expected a parameter name' };
  const nameStart = i;
  while (i < text.length && NAME_CHAR.test(text[i] ?? '')) i++;
  const name = text.slice(nameStart, i);

  skipWs();
  if (text[i] === '=') {
    i++;
    skipWs();
  }
  if (i >= text.length || text[i] === '#') return { kind: 'error', message: `syntax error: missing value for "${name}"` };

  let value: string;
  let quoted = false;
  if (text[i] === "'") {
    quoted = true;
    i++;
    let out = '';
    let closed = false;
    while (i < text.length) {
      const c = text[i] ?? '';
      if (c === "'") {
        if (text[i + 1] === "'") {
          out += "'";
          i += 2;
          continue;
        }
        i++;
        closed = true;
        break;
      }
      if (c === '\\') {
        const n = text[i + 1];
        if (n === undefined) break; // a backslash cannot continue a string onto the next line
        if (n >= '0' && n <= '7') {
          // up to three octal digits, as GUC_scanstr
          let j = i + 1;
          let oct = '';
          while (j < text.length && j < i + 4 && (text[j] ?? '') >= '0' && (text[j] ?? '') <= '7') oct += text[j++];
          out += String.fromCharCode(parseInt(oct, 8));
          i = j;
          continue;
        }
        out += ESCAPES[n] ?? n;
        i += 2;
        continue;
      }
      out += c;
      i++;
    }
    if (!closed) return { kind: 'error', message: 'syntax error: unterminated quoted string' };
    value = out;
  } else {
    const start = i;
    while (i < text.length && !WS.test(text[i] ?? '') && text[i] !== '#') i++;
    value = text.slice(start, i);
    // The token is not echoed: it might be a password.
    if (!BARE_VALUE.some((re) => re.test(value))) {
      return { kind: 'error', message: `syntax error: the value of "${name}" must be quoted` };
    }
  }

  skipWs();
  if (i < text.length && text[i] !== '#') {
    return { kind: 'error', message: `syntax error: unexpected text after the value of "${name}"` };
  }
  return { kind: 'ok', name, value, quoted };
}

/**
 * Splits config text into lines and collects syntax problems of every line.
 * @param file the name used in ConfigLine.file and in messages (e.g. "pgpool.conf").
 */
export function scanConfig(text: string, file: string): ScanResult {
  const lines: ConfigLine[] = [];
  const problems: ConfigProblem[] = [];
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  // \r before \n is whitespace to the line scanner, so CRLF files need nothing special.
  body.split('\n').forEach((raw, idx) => {
    const r = scanLine(raw);
    if (r.kind === 'ok') lines.push({ file, line: idx + 1, name: r.name, value: r.value, quoted: r.quoted });
    else if (r.kind === 'error') problems.push({ file, line: idx + 1, message: r.message });
  });
  return { lines, problems };
}

/**
 * Parses config text into its `name = value` lines.
 * @throws ConfigError listing every syntax problem of the text.
 */
export function parseConfig(text: string, file: string): ConfigLine[] {
  const { lines, problems } = scanConfig(text, file);
  if (problems.length > 0) throw new ConfigError(problems);
  return lines;
}
