// deploy/Dockerfile, checked without a Docker engine: multi-stage, production-only `npm ci`,
// tini as PID 1 in front of bin/pgrouter.mjs, a numeric non-root USER, ports 9999 and 9719,
// nothing downloaded but npm and Debian packages, and every runtime import a production dependency.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT, dockerfileUid } from './deploy-check.ts';

const DOCKERFILE = path.join(ROOT, 'deploy', 'Dockerfile');
const TEXT = readFileSync(DOCKERFILE, 'utf8');

interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly line: number;
}

/** Instructions with their continuation lines joined; comments and blank lines dropped. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let l = lines[i] ?? '';
    if (/^\s*(#|$)/.test(l)) continue;
    const start = i + 1;
    while (/\\\s*$/.test(l) && i + 1 < lines.length) {
      const next = lines[++i] ?? '';
      if (/^\s*#/.test(next)) continue;
      l = l.replace(/\\\s*$/, ' ') + next;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(l);
    assert.ok(m, `Dockerfile:${start}: not an instruction`);
    out.push({ op: (m[1] as string).toUpperCase(), args: (m[2] as string).trim(), line: start });
  }
  return out;
}

const ALL = instructions(TEXT);
/** Stages: the instructions after each FROM, with the stage's name. */
const STAGES = (() => {
  const stages: { from: string; name: string | undefined; body: Instruction[] }[] = [];
  for (const ins of ALL) {
    if (ins.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      assert.ok(m, `Dockerfile:${ins.line}: FROM <image> [AS <name>]`);
      stages.push({ from: m[1] as string, name: m[2], body: [] });
    } else stages.at(-1)?.body.push(ins);
  }
  return stages;
})();
const FINAL = STAGES.at(-1);

test('Dockerfile: only known instructions, multi-stage from a Node 20 bookworm image', () => {
  const known = new Set(['ARG', 'FROM', 'WORKDIR', 'COPY', 'RUN', 'ENV', 'USER', 'EXPOSE', 'STOPSIGNAL', 'HEALTHCHECK', 'ENTRYPOINT', 'CMD', 'LABEL']);
  for (const i of ALL) assert.ok(known.has(i.op), `Dockerfile:${i.line}: unexpected instruction ${i.op}`);
  assert.ok(STAGES.length >= 2, 'at least two stages');
  const arg = ALL.find((i) => i.op === 'ARG' && i.args.startsWith('NODE_IMAGE='));
  assert.ok(arg, 'ARG NODE_IMAGE=<image>');
  assert.match(arg.args, /^NODE_IMAGE=node:20-bookworm(-slim)?$/);
  for (const s of STAGES) assert.equal(s.from, '${NODE_IMAGE}', 'every stage starts from NODE_IMAGE');
  assert.deepEqual(STAGES.map((s) => s.name), ['deps', 'runtime']);
});

test('Dockerfile: production dependencies come from the same `npm ci` the README uses, nothing is downloaded otherwise', () => {
  const runs = ALL.filter((i) => i.op === 'RUN').map((i) => i.args);
  assert.ok(runs.some((r) => /\bnpm ci --omit=dev\b/.test(r)), 'npm ci --omit=dev');
  for (const r of runs) {
    assert.doesNotMatch(r, /\b(curl|wget|git clone|npm install|npx)\b/, `RUN ${r}`);
  }
  assert.ok(!ALL.some((i) => i.op === 'ADD'), 'no ADD (it can fetch URLs)');
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  assert.match(readme, /\bnpm (ci|install)\b/);
});

test('Dockerfile: runtime stage has tini as PID 1 in front of node bin/pgrouter.mjs, SIGTERM, non-root, ports', () => {
  assert.ok(FINAL);
  const body = FINAL.body;
  const one = (op: string): Instruction => {
    const found = body.filter((i) => i.op === op);
    assert.equal(found.length, 1, `exactly one ${op} in the runtime stage`);
    return found[0] as Instruction;
  };
  assert.ok(body.some((i) => i.op === 'RUN' && /apt-get install\b[^&]*\btini\b/.test(i.args)), "tini from Debian's package");
  assert.deepEqual(JSON.parse(one('ENTRYPOINT').args), ['tini', '--', 'node', 'bin/pgrouter.mjs']);
  // No -f: the CLI reads ./pgpool.conf, else /config/pgpool.conf, else only the environment.
  assert.deepEqual(JSON.parse(one('CMD').args), []);
  assert.equal(one('STOPSIGNAL').args, 'SIGTERM');
  const uid = dockerfileUid(TEXT);
  assert.ok(uid > 0, 'USER is not root');
  assert.match(one('USER').args, /^\d+:\d+$/, 'USER is numeric (runAsNonRoot can check it)');
  assert.deepEqual(one('EXPOSE').args.split(/\s+/).sort(), ['9719', '9999']);
  const hc = one('HEALTHCHECK').args;
  assert.match(hc, /http:\/\/127\.0\.0\.1:9719\/healthz/);
  const workdir = one('WORKDIR').args;
  assert.equal(workdir, '/app');
  assert.ok(existsSync(path.join(ROOT, 'bin', 'pgrouter.mjs')));
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  assert.equal(pkg.bin['pgrouter'], 'bin/pgrouter.mjs');
});

test('Dockerfile: COPY sources exist, come from a named stage or the context, and the .dockerignore keeps them', () => {
  const ignore = readFileSync(`${DOCKERFILE}.dockerignore`, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const toRe = (glob: string): RegExp =>
    new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*/g, '\u0000').replace(/\*/g, '[^/]*').replace(/\u0000/g, '.*')}$`);
  const ignored = (file: string): boolean => {
    let out = false;
    for (const p of ignore) {
      const neg = p.startsWith('!');
      if (toRe(neg ? p.slice(1) : p).test(file)) out = !neg;
    }
    return out;
  };
  const files = (rel: string): string[] => {
    const abs = path.join(ROOT, rel);
    if (!statSync(abs).isDirectory()) return [rel];
    return readdirSync(abs).flatMap((n) => files(path.posix.join(rel, n)));
  };
  const stageNames = new Set(STAGES.map((s) => s.name));
  let fromContext = 0;
  for (const c of ALL.filter((i) => i.op === 'COPY')) {
    const parts = c.args.split(/\s+/);
    const from = parts.find((p) => p.startsWith('--from='));
    const paths = parts.filter((p) => !p.startsWith('--'));
    const sources = paths.slice(0, -1);
    assert.ok(sources.length > 0, `Dockerfile:${c.line}: COPY <src>... <dest>`);
    if (from) {
      assert.ok(stageNames.has(from.slice('--from='.length)), `Dockerfile:${c.line}: ${from} names a stage`);
      continue;
    }
    for (const s of sources) {
      assert.ok(existsSync(path.join(ROOT, s)), `Dockerfile:${c.line}: ${s} exists in the repository`);
      for (const f of files(s)) {
        fromContext++;
        assert.ok(!ignored(f), `${f} is copied but the .dockerignore drops it`);
      }
    }
  }
  assert.ok(fromContext > 10);
  assert.ok(ignored('node_modules/pino/package.json') && ignored('test/unit/x.test.ts') && ignored('.git/HEAD'), 'the context leaves out node_modules, tests and .git');
});

test('every package the running code imports is a production dependency (the image has no devDependencies)', () => {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : /\.(ts|mjs|js)$/.test(e.name) ? [path.join(dir, e.name)] : []));
  const specifiers = new Set<string>();
  const patterns = [/^\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/gm, /^\s*import\s*['"]([^'"]+)['"]/gm, /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const f of [...walk(path.join(ROOT, 'src')), ...walk(path.join(ROOT, 'bin'))]) {
    const text = readFileSync(f, 'utf8');
    for (const re of patterns) for (const m of text.matchAll(re)) specifiers.add(m[1] as string);
  }
  const packages = [...specifiers]
    .filter((s) => !s.startsWith('.') && !s.startsWith('node:'))
    .map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : (s.split('/')[0] as string)));
  assert.ok(packages.includes('esbuild'), 'bin/typescript-hooks.mjs compiles the sources with esbuild at run time');
  for (const p of new Set(packages)) assert.ok(p in pkg.dependencies, `${p} is imported by src/ or bin/ but is not in "dependencies"`);
});
