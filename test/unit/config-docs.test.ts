// docs/configuration.md is generated from the settings table and must be up to date.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { renderConfigurationDoc } from '../../src/config/docs.ts';
import { SETTINGS } from '../../src/config/settings.ts';

test('docs/configuration.md matches the settings table (run `npx tsx scripts/gen-config-docs.ts`)', () => {
  const onDisk = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
  assert.equal(onDisk, renderConfigurationDoc());
  for (const d of SETTINGS) assert.ok(onDisk.includes(`\`${d.name}`), `${d.name} is documented`);
});
