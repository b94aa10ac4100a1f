import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildJsonSchema, renderJsonSchema } from '../../orchestrator/config/json-schema.ts';
import { SCHEMA_PATH } from '../../orchestrator/config/write-schema.ts';

describe('inventory/schema.json', () => {
  it('is up to date with the zod schemas (regenerate: npx tsx orchestrator/config/write-schema.ts)', () => {
    expect(readFileSync(SCHEMA_PATH, 'utf8')).toBe(renderJsonSchema());
  });

  it('describes both the inventory and balena-migrate.yml, each rejecting unknown keys', () => {
    const schema = buildJsonSchema() as { anyOf: unknown[]; $defs: Record<string, Record<string, unknown>> };
    expect(Object.keys(schema.$defs)).toEqual(expect.arrayContaining(['Inventory', 'MigrationConfig']));
    expect(schema.anyOf).toHaveLength(2);
    expect(schema.$defs.Inventory!.additionalProperties).toBe(false);
    expect(schema.$defs.MigrationConfig!.additionalProperties).toBe(false);
  });

  it('shows the defaults of balena-migrate.yml so editors can offer them', () => {
    const config = buildJsonSchema() as {
      $defs: { MigrationConfig: { properties: Record<string, { default?: unknown }> } };
    };
    expect(config.$defs.MigrationConfig.properties.workDir!.default).toBe('/var/tmp/balena-migrate');
    expect(config.$defs.MigrationConfig.properties.mode!.default).toBe('standalone');
  });
});
