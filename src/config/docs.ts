// Renders docs/configuration.md from the settings table, so the documentation cannot disagree
// with what the parser accepts (a unit test checks the file is up to date).

import { ALIASES, SETTINGS, type SettingDef } from './settings.ts';
import { formatDefValue } from './values.ts';

function typeOf(d: SettingDef): string {
  if (d.type === 'enum') return `enum (${d.values.join(', ')})`;
  if (d.type === 'list') return `list (${d.separator === ';' ? "';'" : "','"}-separated)`;
  if (d.type === 'integer' && 'unit' in d && d.unit) return `integer (${d.unit})`;
  return d.type;
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** The whole of docs/configuration.md. */
export function renderConfigurationDoc(): string {
  const defs = SETTINGS as readonly SettingDef[];
  const row = (d: SettingDef): string => {
    const name = d.perNode ? `${d.name}N` : d.name;
    const def = d.secret ? "''" : formatDefValue(d, d.default) === '' ? "''" : `\`${cell(formatDefValue(d, d.default))}\``;
    return `| \`${name}\` | ${typeOf(d)} | ${def} | ${d.context} | ${cell(d.doc)} |`;
  };
  const head = '| parameter | type | default | applies | meaning |\n|---|---|---|---|---|';
  const supported = defs.filter((d) => d.status === 'supported' && !d.pgrouter);
  const own = defs.filter((d) => d.pgrouter);
  const ignored = defs.filter((d) => d.status === 'ignored');
  return [
    '# Configuration',
    '',
    '<!-- Generated from src/config/settings.ts by `npx tsx scripts/gen-config-docs.ts`; do not edit by hand. -->',
    '',
    "pgrouter reads Pgpool-II's `pgpool.conf` syntax and parameter names. Each parameter can also be set as",
    '`PGPOOL_PARAMS_<NAME>=<value>` in the environment; the environment wins over the file. "applies" says',
    'when a change takes effect: `reload` on SIGHUP / `PGPOOL RELOAD` / a watched file change, for new sessions;',
    '`restart` only at start (a reload reports the change and keeps the running value); `session` like reload.',
    'Times without a unit are in the unit shown; `10s`, `500ms`, `5min` are accepted.',
    '',
    `## Supported Pgpool-II parameters (${supported.length})`,
    '',
    head,
    ...supported.map(row),
    '',
    `## pgrouter's own parameters (${own.length})`,
    '',
    head,
    ...own.map(row),
    '',
    `## Accepted but ignored (${ignored.length})`,
    '',
    'These are validated like the others and reported once at start when set to something other than',
    'their default, with the reason; pgrouter does not act on them.',
    '',
    '| parameter | reason |',
    '|---|---|',
    ...ignored.map((d) => `| \`${d.perNode ? `${d.name}N` : d.name}\` | ${cell(d.ignoredReason ?? '')} |`),
    '',
    '## Old names',
    '',
    '| old name | now | note |',
    '|---|---|---|',
    ...ALIASES.map((a) => `| \`${a.name}\` | \`${a.target}\` | ${cell(a.note)} |`),
    '',
  ].join('\n');
}
