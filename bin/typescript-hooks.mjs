// Module hooks (node:module register) that let Node.js run pgrouter's TypeScript directly: a
// `.ts` file under this package is compiled by esbuild when it is first imported, one file at a
// time (types stripped, imports left as written, no bundling), so every module keeps its own
// file URL. Everything else goes to Node's own loader.
//
// pgrouter ran under tsx before. tsx compiles with esbuild's keepNames, which wraps each function
// it creates in an Object.defineProperty call (`__name`); a new client connection creates dozens
// of closures, and those calls took about 5% of pgrouter's CPU per login (perf, `pgbench -S -C`).
// Without minifying or bundling, esbuild renames nothing, so the wrapper bought nothing here.

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { stop, transform } from 'esbuild';

const PACKAGE_ROOT = new URL('../', import.meta.url).href;

/** The compiler options of tsconfig.json that change what esbuild emits. */
const TSCONFIG = { compilerOptions: { target: 'ES2022', useDefineForClassFields: true, verbatimModuleSyntax: true } };

/**
 * Called by register() with a port on which the entry point says when the program's modules are
 * all loaded: esbuild's service process then exits, instead of idling beside pgrouter for its
 * whole life (a later import would start it again).
 */
export function initialize(data) {
  data?.loaded?.once('message', () => {
    void stop();
    data.loaded.close();
  });
}

export async function load(url, context, nextLoad) {
  if (!url.endsWith('.ts') || !url.startsWith(PACKAGE_ROOT) || url.includes('/node_modules/')) return nextLoad(url, context);
  const file = fileURLToPath(url);
  const out = await transform(await readFile(file, 'utf8'), {
    loader: 'ts',
    format: 'esm',
    target: `node${process.versions.node}`,
    sourcefile: file,
    sourcemap: 'inline',
    minifyWhitespace: true,
    tsconfigRaw: TSCONFIG,
  });
  return { format: 'module', source: out.code, shortCircuit: true };
}
