// Converts a parameter's raw text to its typed value (booleans, integers with units, enums, lists)
// and back to GUC-style text for SHOW commands, following PostgreSQL's parse_bool/parse_int rules.

import type { EnumDef, IntegerDef, SettingDef, Unit } from './settings.ts';
import { resolveName } from './settings.ts';

/** A typed parameter value. */
export type SettingValue = boolean | number | string | string[];

/** Outcome of {@link convertValue}: the value, or why the text is not acceptable (no value echoed). */
export type Converted = { readonly ok: true; readonly value: SettingValue } | { readonly ok: false; readonly hint?: string };

const TIME_MS: Readonly<Record<string, number>> = { us: 0.001, ms: 1, s: 1000, min: 60000, h: 3600000, d: 86400000 };
const MEMORY_B: Readonly<Record<string, number>> = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };
// Largest unit first: formatting picks the first one that divides the value exactly.
const TIME_ORDER = ['d', 'h', 'min', 's', 'ms'] as const;
const MEMORY_ORDER = ['TB', 'GB', 'MB', 'kB', 'B'] as const;

function unitTable(unit: Unit): Readonly<Record<string, number>> {
  return unit === 'B' || unit === 'kB' ? MEMORY_B : TIME_MS;
}

/** PostgreSQL's parse_bool: on/off/true/false/yes/no/1/0 and unique prefixes, case-insensitive. */
export function parseBoolean(text: string): boolean | undefined {
  const v = text.toLowerCase();
  if (v.length === 0) return undefined;
  const prefixOf = (word: string, minLen = 1): boolean => v.length >= minLen && word.startsWith(v);
  if (prefixOf('true') || prefixOf('yes')) return true;
  if (prefixOf('false') || prefixOf('no')) return false;
  if (v === 'on') return true;
  if (prefixOf('off', 2)) return false; // "o" alone is ambiguous between on and off
  if (v === '1') return true;
  if (v === '0') return false;
  return undefined;
}

/** Round half to even, like C's rint() in PostgreSQL's parse_int. */
function rint(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Parses a number as C's strtol(base 0) / strtod would: 0x hex, leading-0 octal, decimals. */
function parseNumber(text: string): number | undefined {
  const t = text.toLowerCase();
  const sign = t.startsWith('-') ? -1 : 1;
  const body = t.replace(/^[+-]/, '');
  if (/^0x[0-9a-f]+$/.test(body)) return sign * parseInt(body.slice(2), 16);
  if (/^0[0-7]+$/.test(body)) return sign * parseInt(body, 8);
  if (/^0\d+$/.test(body)) return undefined; // octal with an 8 or 9
  if (/^(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/.test(body)) return sign * Number(body);
  return undefined;
}

function convertInteger(def: IntegerDef, text: string): Converted {
  const m = /^\s*([+-]?(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?))\s*([A-Za-z]*)\s*$/.exec(text);
  if (!m) return { ok: false };
  let n = parseNumber(m[1] ?? '');
  if (n === undefined || !Number.isFinite(n)) return { ok: false };
  const unitText = m[2] ?? '';
  if (unitText !== '') {
    if (!def.unit) return { ok: false, hint: 'this parameter takes no unit' };
    const table = unitTable(def.unit);
    const factor = table[unitText];
    if (factor === undefined) {
      const valid = def.unit === 'B' || def.unit === 'kB' ? 'B, kB, MB, GB, TB' : 'us, ms, s, min, h, d';
      return { ok: false, hint: `valid units for this parameter are ${valid}` };
    }
    n = (n * factor) / (table[def.unit] ?? 1);
  }
  n = rint(n);
  if (!Number.isSafeInteger(n) || n < def.min || n > def.max) {
    return { ok: false, hint: `allowed range is ${def.min} .. ${def.max}${def.unit ? ` (${def.unit})` : ''}` };
  }
  return { ok: true, value: n };
}

function convertEnum(def: EnumDef, text: string): Converted {
  const v = text.toLowerCase();
  const found = def.values.find((x) => x.toLowerCase() === v);
  if (found !== undefined) return { ok: true, value: found };
  const alias = def.aliases && Object.entries(def.aliases).find(([k]) => k.toLowerCase() === v);
  if (alias) return { ok: true, value: alias[1] };
  return { ok: false, hint: `available values: ${def.values.join(', ')}` };
}

/** Splits a list value at its separator, trimming items and dropping empty ones (as Pgpool-II 4.6+). */
export function splitList(text: string, separator: string): string[] {
  return text
    .split(separator)
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Converts a raw value (quoted or not, as PostgreSQL does not distinguish) to the row's type. */
export function convertValue(def: SettingDef, text: string): Converted {
  switch (def.type) {
    case 'boolean': {
      const b = parseBoolean(text);
      return b === undefined ? { ok: false, hint: 'use on/off, true/false, yes/no or 1/0' } : { ok: true, value: b };
    }
    case 'integer':
      return convertInteger(def, text);
    case 'real': {
      const t = text.trim();
      const n = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(t) ? Number(t) : NaN;
      if (!Number.isFinite(n)) return { ok: false };
      if (n < def.min || n > def.max) return { ok: false, hint: `allowed range is ${def.min} .. ${def.max}` };
      return { ok: true, value: n };
    }
    case 'string':
      return { ok: true, value: text };
    case 'enum':
      return convertEnum(def, text);
    case 'list':
      return { ok: true, value: splitList(text, def.separator) };
  }
}

function formatWithUnit(value: number, unit: Unit): string {
  // As PostgreSQL's SHOW: 0 and negatives bare, otherwise the largest unit dividing evenly.
  if (value <= 0) return String(value);
  const table = unitTable(unit);
  const base = table[unit] ?? 1;
  const order = unit === 'B' || unit === 'kB' ? MEMORY_ORDER : TIME_ORDER;
  for (const u of order) {
    const factor = table[u] ?? 1;
    if (factor < base) break;
    const ratio = factor / base;
    if (value % ratio === 0) return `${value / ratio}${u}`;
  }
  return `${value}${unit}`;
}

/** Formats a typed value of a row GUC-style: on/off, units appended (10s, 64MB), octal modes, ***** for secrets. */
export function formatDefValue(def: SettingDef, value: unknown): string {
  if (def.secret) return '*****';
  switch (def.type) {
    case 'boolean':
      return value ? 'on' : 'off';
    case 'integer': {
      const n = Number(value);
      if (def.octal) return `0${n.toString(8).padStart(3, '0')}`;
      return def.unit ? formatWithUnit(n, def.unit) : String(n);
    }
    case 'real':
      return String(value);
    case 'list':
      return Array.isArray(value) ? value.join(def.separator) : String(value);
    case 'string':
    case 'enum':
      return String(value);
  }
}

/** What {@link describeSetting} tells about a parameter name. */
export interface SettingDescription {
  /** Canonical name, with node number for per-node parameters (backend_port1). */
  readonly name: string;
  readonly def: SettingDef;
  /** Node number, or undefined for a global value. */
  readonly index: number | undefined;
}

/**
 * Looks up a parameter by name as a SHOW command would get it (case-insensitive, node numbers
 * and old names accepted). Undefined when there is no such parameter.
 */
export function describeSetting(name: string): SettingDescription | undefined {
  const r = resolveName(name);
  if (!r.def) return undefined;
  return { name: r.key, def: r.def, index: r.index };
}

/**
 * Formats a value of the named parameter GUC-style (see {@link formatDefValue}).
 * @throws Error when the name is not a parameter; check with {@link describeSetting} first.
 */
export function formatValue(name: string, value: unknown): string {
  const d = describeSetting(name);
  if (!d) throw new Error(`unrecognized configuration parameter "${name}"`);
  return formatDefValue(d.def, value);
}
