import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../orchestrator/config/inventory.ts';
import { MigrationConfigFile } from '../../orchestrator/config/migration-config-schema.ts';
import { readSourceText } from '../../orchestrator/config/source-text.ts';
import { validateWith } from '../../orchestrator/config/validate.ts';
import { locatePath, parseYamlSource, yamlValue } from '../../orchestrator/config/yaml-source.ts';
import { fixturePath } from '../fixtures/config/config-error.ts';

const example = (name: string) => fixturePath(`../../inventory/${name}`);

describe('the example files in inventory/', () => {
  // The example inventory names ~/.ssh/fleet_ed25519; give it a home where that exists.
  let home: string;
  const realHome = process.env.HOME;
  beforeAll(() => {
    home = mkdtempSync(join(tmpdir(), 'bm-home-'));
    mkdirSync(join(home, '.ssh'));
    writeFileSync(join(home, '.ssh/fleet_ed25519'), 'placeholder');
    process.env.HOME = home;
  });
  afterAll(() => {
    process.env.HOME = realHome;
    rmSync(home, { recursive: true, force: true });
  });

  it('example-inventory.yml loads, with its jump host and nested groups', () => {
    const inventory = loadInventory(example('example-inventory.yml'));
    expect(inventory.format).toBe('balena-migrate');
    expect(inventory.hosts.map((host) => host.name)).toEqual(['nuc-1', 'nuc-2', 'nuc-3', 'pi-1']);
    expect(inventory.hosts[0]!.jump).toEqual([
      { name: 'bastion', address: '198.51.100.7', port: 2222, user: 'ops', identityFile: undefined },
    ]);
    expect(inventory.hosts[3]).toMatchObject({ user: 'pi', become: 'sudo', groups: ['lab', 'lab-east'] });
  });

  it('example-ansible.ini loads as an Ansible INI inventory', () => {
    const inventory = loadInventory(example('example-ansible.ini'));
    expect(inventory.format).toBe('ansible-ini');
    expect(inventory.hosts.map((host) => host.name)).toEqual(['nuc-1', 'nuc-2', 'nuc-3', 'pi-1', 'pi-2']);
    expect(inventory.hosts[4]).toMatchObject({ user: 'pi', workDir: '/data/balena-migrate' });
  });

  it('balena-migrate.example.yml is a valid migration config (its image paths are placeholders)', () => {
    const yaml = parseYamlSource(readSourceText(example('balena-migrate.example.yml'), 'migration config'));
    const config = validateWith(MigrationConfigFile, yamlValue(yaml), {
      locate: (path) => locatePath(yaml, path),
    });
    expect(config.mode).toBe('standalone');
    expect(config.workDir).toBe('/var/tmp/balena-migrate');
  });
});
