// bin/register-typescript.mjs and bin/typescript-hooks.mjs, the loader bin/pgrouter.mjs runs
// pgrouter's sources with: a child Node process registers them and imports a TypeScript fixture.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REGISTER = new URL('../../bin/register-typescript.mjs', import.meta.url).href;
const FIXTURE = new URL('./fixtures/typescript-hooks-sample.ts', import.meta.url).href;
const FIXTURE_PATH = fileURLToPath(FIXTURE);

/** Runs `body` in a fresh node (no tsx) after registering the hooks; returns its stdout as JSON. */
function run(body: string): Record<string, unknown> {
  const script = `
    import { readFileSync, readdirSync } from 'node:fs';
    import { registerTypeScript } from ${JSON.stringify(REGISTER)};
    const modulesLoaded = registerTypeScript();
    const m = await import(${JSON.stringify(FIXTURE)});
    ${body}
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  return JSON.parse(out) as Record<string, unknown>;
}

test('the hooks compile TypeScript: types stripped, class fields and object literals work', () => {
  const r = run(`
    const w = new m.WithFields(); w.bump(); w.bump();
    const h = m.host();
    console.log(JSON.stringify({ count: w.count, first: h.first(), second: h.second('a'), ownField: Object.hasOwn(w, 'bump') }));
  `);
  assert.deepEqual(r, { count: 2, first: 1, second: 1, ownField: true });
});

test('the compiled code has no keepNames wrappers (no __name call per closure created)', () => {
  const r = run(`console.log(JSON.stringify({ host: m.host.toString(), klass: m.WithFields.toString() }));`);
  assert.match(String(r['host']), /first:\s*\(\)\s*=>\s*1/);
  assert.doesNotMatch(String(r['host']), /__name/);
  assert.doesNotMatch(String(r['klass']), /__name/);
});

test('stack traces name the .ts file and its line (source maps on)', () => {
  const r = run(`try { m.boom(); } catch (e) { console.log(JSON.stringify({ stack: e.stack })); }`);
  assert.ok(String(r['stack']).includes(`${FIXTURE_PATH}:8:`), String(r['stack']));
});

test("esbuild's service process exits once the modules are loaded", () => {
  // Children of this process: every thread's list (the hooks run on a worker thread).
  const r = run(`
    const children = () => readdirSync('/proc/self/task').flatMap((t) => readFileSync('/proc/self/task/' + t + '/children', 'utf8').split(' ').filter(Boolean));
    const before = children().length;
    modulesLoaded();
    let after = children().length;
    for (let i = 0; i < 100 && after > 0; i++) { await new Promise((res) => setTimeout(res, 20)); after = children().length; }
    console.log(JSON.stringify({ before, after }));
  `);
  assert.ok((r['before'] as number) >= 1, 'esbuild runs while modules load');
  assert.equal(r['after'], 0);
});
