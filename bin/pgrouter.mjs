#!/usr/bin/env node
// Entry point of the `pgrouter` command: registers the TypeScript loader, then runs src/cli.ts.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../src/cli.ts');
process.exit(await main(process.argv.slice(2)));
