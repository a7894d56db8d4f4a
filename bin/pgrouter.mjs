#!/usr/bin/env node
// Entry point of the `pgrouter` command: registers the TypeScript module hooks
// (bin/register-typescript.mjs), loads src/cli.ts and runs it.
import { registerTypeScript } from './register-typescript.mjs';

const modulesLoaded = registerTypeScript();
const { main } = await import('../src/cli.ts');
modulesLoaded();
process.exit(await main(process.argv.slice(2)));
