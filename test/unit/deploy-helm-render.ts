// A renderer for exactly the Helm template subset deploy/helm/pgrouter may use (Helm itself cannot
// be installed here): {{ .Values.x }} / .Release / .Chart substitution, variables bound by range,
// if/else/end, range, and the functions default, quote, toYaml, nindent, indent; {{- -}} trims.
// Anything else (include, define, tpl, with, parentheses, other functions...) throws, at parse time.

import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

/** What a template sees at its root: `.Values`, `.Release`, `.Chart` and nothing else. */
export interface RenderContext {
  readonly Values: unknown;
  readonly Release: { readonly Name: string; readonly Namespace: string; readonly Service: string };
  readonly Chart: Record<string, unknown>;
}

/** A construct outside the subset, a bad value access, or a syntax error; names file and line. */
export class TemplateError extends Error {}

type Operand =
  | { kind: 'field'; base: 'dot' | 'root' | 'var'; name: string; path: string[] }
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'bool'; value: boolean }
  | { kind: 'nil' };
interface Command {
  /** undefined: the command is a single operand. */
  readonly fn: string | undefined;
  readonly args: Operand[];
}
type Pipeline = Command[];
type Node =
  | { kind: 'text'; text: string }
  | { kind: 'print'; pipe: Pipeline; line: number }
  | { kind: 'if'; pipe: Pipeline; then: Node[]; else: Node[]; line: number }
  | { kind: 'range'; vars: string[]; pipe: Pipeline; body: Node[]; line: number };

/** The functions of the subset, with their arity (a piped value counts as the last argument). */
const FUNCTIONS: Record<string, { min: number; max: number }> = {
  default: { min: 2, max: 2 },
  quote: { min: 1, max: Infinity },
  toYaml: { min: 1, max: 1 },
  nindent: { min: 2, max: 2 },
  indent: { min: 2, max: 2 },
};
const ROOT_FIELDS = new Set(['Values', 'Release', 'Chart']);

interface RawAction {
  readonly body: string;
  readonly line: number;
}

/** Splits a template into text and action bodies, applying {{- and -}} trimming. */
function lex(src: string, file: string): (string | RawAction)[] {
  const out: (string | RawAction)[] = [];
  let i = 0;
  let trimNext = false;
  const lineAt = (pos: number): number => src.slice(0, pos).split('\n').length;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    let text = open < 0 ? src.slice(i) : src.slice(i, open);
    if (trimNext) text = text.replace(/^[ \t\r\n]+/, '');
    trimNext = false;
    if (open < 0) {
      out.push(text);
      break;
    }
    let j = open + 2;
    const trimLeft = src.startsWith('- ', j) || src.startsWith('-\t', j) || src.startsWith('-\n', j);
    if (trimLeft) {
      text = text.replace(/[ \t\r\n]+$/, '');
      j += 1;
    }
    out.push(text);
    // Find the closing }} outside string literals.
    let k = j;
    let quote: string | undefined;
    for (; k < src.length; k++) {
      const c = src[k];
      if (quote) {
        if (c === '\\' && quote === '"') k++;
        else if (c === quote) quote = undefined;
        continue;
      }
      if (c === '"' || c === '`') quote = c;
      else if (src.startsWith('}}', k)) break;
    }
    if (k >= src.length) throw new TemplateError(`${file}:${lineAt(open)}: unclosed action`);
    let body = src.slice(j, k);
    if (/[ \t\r\n]-$/.test(body)) {
      body = body.slice(0, -1);
      trimNext = true;
    }
    out.push({ body: body.trim(), line: lineAt(open) });
    i = k + 2;
  }
  return out;
}

/** Tokenizes one action body: strings, numbers, words, fields, variables, `|`, `,` and `:=`. */
function tokenize(body: string, where: string): string[] {
  const toks: string[] = [];
  let i = 0;
  while (i < body.length) {
    const c = body[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      for (; j < body.length && body[j] !== '"'; j++) if (body[j] === '\\') j++;
      if (j >= body.length) throw new TemplateError(`${where}: unterminated string`);
      toks.push(body.slice(i, j + 1));
      i = j + 1;
      continue;
    }
    if (c === '`') {
      const j = body.indexOf('`', i + 1);
      if (j < 0) throw new TemplateError(`${where}: unterminated raw string`);
      toks.push(body.slice(i, j + 1));
      i = j + 1;
      continue;
    }
    if (body.startsWith(':=', i)) {
      toks.push(':=');
      i += 2;
      continue;
    }
    if (c === '|' || c === ',') {
      toks.push(c);
      i++;
      continue;
    }
    const m = /^[A-Za-z0-9_.$-]+/.exec(body.slice(i));
    if (!m) throw new TemplateError(`${where}: "${c}" is not in the supported template subset (no parentheses, operators or assignments)`);
    toks.push(m[0]);
    i += m[0].length;
  }
  return toks;
}

function parseOperand(tok: string, where: string): Operand {
  if (tok.startsWith('"')) return { kind: 'string', value: JSON.parse(tok) as string };
  if (tok.startsWith('`')) return { kind: 'string', value: tok.slice(1, -1) };
  if (/^-?\d+(\.\d+)?$/.test(tok)) return { kind: 'number', value: Number(tok) };
  if (tok === 'true' || tok === 'false') return { kind: 'bool', value: tok === 'true' };
  if (tok === 'nil') return { kind: 'nil' };
  const fieldPath = (rest: string): string[] => {
    if (rest === '') return [];
    const parts = rest.split('.');
    if (parts[0] !== '' || parts.slice(1).some((p) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(p))) {
      throw new TemplateError(`${where}: bad field chain "${tok}"`);
    }
    return parts.slice(1);
  };
  if (tok === '.') return { kind: 'field', base: 'dot', name: '', path: [] };
  if (tok.startsWith('.')) return { kind: 'field', base: 'dot', name: '', path: fieldPath(tok) };
  if (tok === '$' || tok.startsWith('$.')) return { kind: 'field', base: 'root', name: '', path: fieldPath(tok.slice(1)) };
  const v = /^\$([A-Za-z_][A-Za-z0-9_]*)(.*)$/.exec(tok);
  if (v) return { kind: 'field', base: 'var', name: v[1] as string, path: fieldPath(v[2] as string) };
  throw new TemplateError(`${where}: "${tok}" is not in the supported template subset`);
}

function parsePipeline(toks: string[], where: string): Pipeline {
  if (toks.length === 0) throw new TemplateError(`${where}: empty pipeline`);
  const cmds: Command[] = [];
  let cur: string[] = [];
  const flush = (): void => {
    if (cur.length === 0) throw new TemplateError(`${where}: empty command in pipeline`);
    const [head, ...rest] = cur as [string, ...string[]];
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(head) && !['true', 'false', 'nil'].includes(head)) {
      const spec = FUNCTIONS[head];
      if (!spec) throw new TemplateError(`${where}: function "${head}" is not in the supported template subset (${Object.keys(FUNCTIONS).join(', ')})`);
      const n = rest.length + (cmds.length > 0 ? 1 : 0);
      if (n < spec.min || n > spec.max) throw new TemplateError(`${where}: ${head} takes ${spec.min === spec.max ? spec.min : `at least ${spec.min}`} argument(s), got ${n}`);
      cmds.push({ fn: head, args: rest.map((t) => parseOperand(t, where)) });
    } else {
      if (cmds.length > 0) throw new TemplateError(`${where}: "${head}" cannot take a piped value`);
      if (rest.length > 0) throw new TemplateError(`${where}: "${head}" is not a function`);
      cmds.push({ fn: undefined, args: [parseOperand(head, where)] });
    }
    cur = [];
  };
  for (const t of toks) {
    if (t === '|') flush();
    else if (t === ',' || t === ':=') throw new TemplateError(`${where}: unexpected "${t}"`);
    else cur.push(t);
  }
  flush();
  return cmds;
}

/** Parses a template into nodes; throws TemplateError on anything outside the subset. */
export function parseTemplate(src: string, file: string): Node[] {
  const root: Node[] = [];
  // Open blocks: the node and which branch collects children.
  const stack: { node: Extract<Node, { kind: 'if' | 'range' }>; inElse: boolean }[] = [];
  const target = (): Node[] => {
    const top = stack.at(-1);
    if (!top) return root;
    if (top.node.kind === 'range') return top.node.body;
    return top.inElse ? top.node.else : top.node.then;
  };
  for (const piece of lex(src, file)) {
    if (typeof piece === 'string') {
      if (piece !== '') target().push({ kind: 'text', text: piece });
      continue;
    }
    const where = `${file}:${piece.line}`;
    const body = piece.body;
    if (body.startsWith('/*')) {
      if (!body.endsWith('*/')) throw new TemplateError(`${where}: unterminated comment`);
      continue;
    }
    const toks = tokenize(body, where);
    const head = toks[0];
    if (head === 'if') {
      const node: Node = { kind: 'if', pipe: parsePipeline(toks.slice(1), where), then: [], else: [], line: piece.line };
      target().push(node);
      stack.push({ node, inElse: false });
    } else if (head === 'range') {
      let rest = toks.slice(1);
      const vars: string[] = [];
      const decl = rest.indexOf(':=');
      if (decl >= 0) {
        const names = rest.slice(0, decl).filter((t) => t !== ',');
        if (names.length < 1 || names.length > 2 || !names.every((n) => /^\$[A-Za-z_][A-Za-z0-9_]*$/.test(n))) {
          throw new TemplateError(`${where}: range declares one or two $variables`);
        }
        vars.push(...names.map((n) => n.slice(1)));
        rest = rest.slice(decl + 1);
      }
      const node: Node = { kind: 'range', vars, pipe: parsePipeline(rest, where), body: [], line: piece.line };
      target().push(node);
      stack.push({ node, inElse: false });
    } else if (head === 'else') {
      const top = stack.at(-1);
      if (toks.length > 1) throw new TemplateError(`${where}: "else ${toks.slice(1).join(' ')}" is not in the supported template subset (only a plain else)`);
      if (!top || top.node.kind !== 'if' || top.inElse) throw new TemplateError(`${where}: else without if`);
      top.inElse = true;
    } else if (head === 'end') {
      if (toks.length > 1 || !stack.pop()) throw new TemplateError(`${where}: unexpected end`);
    } else if (['with', 'define', 'template', 'block', 'break', 'continue', 'include', 'tpl', 'required'].includes(head ?? '')) {
      throw new TemplateError(`${where}: "${head}" is not in the supported template subset`);
    } else {
      target().push({ kind: 'print', pipe: parsePipeline(toks, where), line: piece.line });
    }
  }
  if (stack.length > 0) throw new TemplateError(`${file}: ${stack.length} block(s) not closed with end`);
  return root;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Go's %v for a float64 (Helm's values are float64): shortest digits, e-notation from 1e+06 or below 1e-04. */
export function goNumber(n: number): string {
  if (!Number.isFinite(n)) return n > 0 ? '+Inf' : n < 0 ? '-Inf' : 'NaN';
  if (n === 0) return '0';
  const [mant, expText] = n.toExponential().split('e') as [string, string];
  const exp = Number(expText);
  if (exp < -4 || exp >= 6) {
    const e = Math.abs(exp);
    return `${mant}e${exp < 0 ? '-' : '+'}${e < 10 ? '0' : ''}${e}`;
  }
  return String(n);
}

/** Go text/template truthiness: false, 0, nil, "" and empty lists and maps are false. */
function truthy(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (isMap(v)) return Object.keys(v).length > 0;
  return true;
}

/** sprig's strval. */
function strval(v: unknown, where: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return goNumber(v);
  if (typeof v === 'boolean') return String(v);
  throw new TemplateError(`${where}: cannot turn a ${Array.isArray(v) ? 'list' : 'map'} into a string (use toYaml)`);
}

function indentText(n: number, s: string): string {
  const pad = ' '.repeat(n);
  return pad + s.replace(/\n/g, `\n${pad}`);
}

function toInt(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new TemplateError(`${where}: indent width must be a number`);
  return v;
}

/** Helm's toYaml: sigs.k8s.io/yaml (sorted keys, unindented lists), trailing newline removed. */
function toYaml(v: unknown): string {
  if (v === undefined || v === null) return 'null';
  return YAML.stringify(v, { sortMapEntries: true, indentSeq: false, lineWidth: 0 }).replace(/\n$/, '');
}

interface Scope {
  readonly root: RenderContext;
  readonly dot: unknown;
  readonly vars: ReadonlyMap<string, unknown>;
}

function evalOperand(op: Operand, s: Scope, where: string): unknown {
  switch (op.kind) {
    case 'string':
    case 'number':
    case 'bool':
      return op.value;
    case 'nil':
      return undefined;
    case 'field': {
      let cur: unknown;
      let shown: string;
      if (op.base === 'dot') {
        cur = s.dot;
        shown = '';
      } else if (op.base === 'root') {
        cur = s.root;
        shown = '$';
      } else {
        if (!s.vars.has(op.name)) throw new TemplateError(`${where}: undefined variable $${op.name}`);
        cur = s.vars.get(op.name);
        shown = `$${op.name}`;
      }
      op.path.forEach((field, i) => {
        if (cur === s.root && !ROOT_FIELDS.has(field)) {
          throw new TemplateError(`${where}: .${field} is not in the supported template subset (only .Values, .Release, .Chart)`);
        }
        if (cur === undefined || cur === null) throw new TemplateError(`${where}: nil pointer evaluating interface {}.${field} (in ${shown}.${op.path.slice(0, i + 1).join('.')})`);
        if (!isMap(cur)) throw new TemplateError(`${where}: can't evaluate field ${field} in a ${Array.isArray(cur) ? 'list' : typeof cur}`);
        cur = Object.hasOwn(cur, field) ? cur[field] : undefined;
      });
      return cur;
    }
  }
}

function evalPipeline(pipe: Pipeline, s: Scope, where: string): unknown {
  let value: unknown;
  pipe.forEach((cmd, i) => {
    const args = cmd.args.map((a) => evalOperand(a, s, where));
    if (i > 0) args.push(value);
    if (cmd.fn === undefined) {
      value = args[0];
      return;
    }
    switch (cmd.fn) {
      case 'default':
        value = truthy(args[1]) ? args[1] : args[0];
        break;
      case 'quote':
        value = args
          .filter((a) => a !== undefined && a !== null)
          .map((a) => JSON.stringify(strval(a, where)))
          .join(' ');
        break;
      case 'toYaml':
        value = toYaml(args[0]);
        break;
      case 'nindent':
        value = `\n${indentText(toInt(args[0], where), strval(args[1], where))}`;
        break;
      case 'indent':
        value = indentText(toInt(args[0], where), strval(args[1], where));
        break;
      default:
        throw new TemplateError(`${where}: unknown function ${cmd.fn}`);
    }
  });
  return value;
}

function exec(nodes: readonly Node[], s: Scope, file: string, out: string[]): void {
  for (const n of nodes) {
    if (n.kind === 'text') {
      out.push(n.text);
      continue;
    }
    const where = `${file}:${n.line}`;
    if (n.kind === 'print') {
      const v = evalPipeline(n.pipe, s, where);
      // Helm prints a missing value as nothing (it strips text/template's "<no value>").
      out.push(v === undefined || v === null ? '' : strval(v, where));
    } else if (n.kind === 'if') {
      exec(truthy(evalPipeline(n.pipe, s, where)) ? n.then : n.else, s, file, out);
    } else {
      const v = evalPipeline(n.pipe, s, where);
      let items: [unknown, unknown][];
      if (v === undefined || v === null) items = [];
      else if (Array.isArray(v)) items = v.map((x, i) => [i, x]);
      else if (isMap(v)) items = Object.keys(v).sort().map((k) => [k, v[k]]);
      else throw new TemplateError(`${where}: range can't iterate over ${strval(v, where)}`);
      for (const [key, value] of items) {
        const vars = new Map(s.vars);
        if (n.vars.length === 1) vars.set(n.vars[0] as string, value);
        if (n.vars.length === 2) {
          vars.set(n.vars[0] as string, key);
          vars.set(n.vars[1] as string, value);
        }
        exec(n.body, { root: s.root, dot: value, vars }, file, out);
      }
    }
  }
}

/** Renders one template text. */
export function renderTemplate(src: string, file: string, ctx: RenderContext): string {
  const nodes = parseTemplate(src, file);
  const out: string[] = [];
  exec(nodes, { root: ctx, dot: ctx, vars: new Map() }, file, out);
  return out.join('');
}

/** Helm's values merge: maps merge key by key, anything else replaces; null deletes the key. */
export function mergeValues(base: unknown, over: unknown): unknown {
  if (!isMap(base) || !isMap(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k];
    else out[k] = mergeValues(base[k], v);
  }
  return out;
}

/** One rendered template file of a chart. */
export interface RenderedFile {
  /** Path inside the chart, e.g. templates/deployment.yaml. */
  readonly file: string;
  readonly text: string;
}

/**
 * Renders every file in `<chartDir>/templates` (files starting with `_` are partials and would
 * need `include`: they are refused) as `helm template <release> <chartDir> -f <values>` would.
 */
export function renderChart(chartDir: string, opts: { release?: string; namespace?: string; values?: unknown } = {}): RenderedFile[] {
  const chart = YAML.parse(readFileSync(path.join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
  const defaults = YAML.parse(readFileSync(path.join(chartDir, 'values.yaml'), 'utf8')) as unknown;
  const capitalized: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(chart)) capitalized[k.charAt(0).toUpperCase() + k.slice(1)] = v;
  const ctx: RenderContext = {
    Values: mergeValues(defaults, opts.values ?? {}),
    Release: { Name: opts.release ?? 'pgrouter', Namespace: opts.namespace ?? 'default', Service: 'Helm' },
    Chart: capitalized,
  };
  const dir = path.join(chartDir, 'templates');
  const files: RenderedFile[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('_')) throw new TemplateError(`templates/${name}: partials need include/define, which are not in the supported subset`);
    const file = `templates/${name}`;
    files.push({ file, text: renderTemplate(readFileSync(path.join(dir, name), 'utf8'), file, ctx) });
  }
  return files;
}
