// Writes inventory/schema.json. Run: npx tsx orchestrator/config/write-schema.ts
// (a unit test fails when the committed file is out of date).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderJsonSchema } from './json-schema.ts';

export const SCHEMA_PATH = fileURLToPath(new URL('../../inventory/schema.json', import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(SCHEMA_PATH, renderJsonSchema());
  console.log(`wrote ${SCHEMA_PATH}`);
}
