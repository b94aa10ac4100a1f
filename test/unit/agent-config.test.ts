import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readApiKey, redact } from '../../orchestrator/agent/api-key.ts';
import { agentConfigFrom, looksLikeApiKey } from '../../orchestrator/agent/config.ts';
import { agentOverridesFromFlags } from '../../orchestrator/agent/flags.ts';
import { deviceTypeMismatch } from '../../orchestrator/agent/host-agent.ts';
import { overridesFromFlags } from '../../orchestrator/cli/options.ts';
import { runSettingsFrom } from '../../orchestrator/cli/targets.ts';
import {
  applyConfigOverrides,
  defaultMigrationConfig,
  loadMigrationConfig,
} from '../../orchestrator/config/migration-config.ts';
import { configErrorFrom, fixturePath } from '../fixtures/config/config-error.ts';

const dir = fixturePath('agent');
const KEY = 'Zq8Xk2v9LmN4pR7sT1wY3bC6dF0gH5jA';

describe('the agent section of balena-migrate.yml', () => {
  it('loads with paths taken from the file and every value kept', () => {
    const config = loadMigrationConfig(`${dir}/agent.yml`);
    expect(config.mode).toBe('agent');
    expect(config.agent).toEqual({
      apiUrl: 'https://api.balena.example.org',
      apiKeyFile: `${dir}/files/api-key`,
      apiKeyEnv: undefined,
      fleet: 'acme/lab',
      deviceType: 'genericx86-64-ext',
      osVersion: '^6.0.0',
      developmentMode: undefined,
      wifiSsid: 'lab-wifi',
      wifiKeyFile: `${dir}/files/wifi-key`,
      appUpdatePollInterval: 10,
      onlineTimeoutSeconds: 300,
      cacheDir: `${dir}/cache`,
      sshKeyFiles: [`${dir}/files/operator.pub`],
      hostDownload: true,
    });
  });

  it('fills in the backend, version, online wait and cache defaults', () => {
    const config = loadMigrationConfig(`${dir}/minimal.yml`);
    expect(config.agent).toMatchObject({
      apiUrl: 'https://api.balena-cloud.com',
      fleet: 1234,
      apiKeyEnv: 'BALENA_API_KEY',
      osVersion: 'latest',
      onlineTimeoutSeconds: 600,
      cacheDir: join(homedir(), '.cache/balena-migrate/images'),
      sshKeyFiles: [],
      hostDownload: false,
    });
  });

  it('refuses an API key written in clear text at its line and column, saying to use a file or a variable', () => {
    const error = configErrorFrom(() => loadMigrationConfig(`${dir}/literal-api-key.yml`));
    expect(error.where).toEqual({ file: `${dir}/literal-api-key.yml`, line: 4, col: 3 });
    expect(error.message).toBe(
      'agent.apiKey: a secret must not be written in clear text in the migration config',
    );
    expect(error.hint).toMatch(/agent\.apiKeyFile.*agent\.apiKeyEnv/);
    expect(error.format()).not.toContain(KEY);
  });

  it('refuses a Wi-Fi passphrase in clear text, pointing at wifiKeyFile', () => {
    const error = configErrorFrom(() => loadMigrationConfig(`${dir}/literal-wifi-key.yml`));
    expect(error.where).toMatchObject({ line: 6, col: 3 });
    expect(error.hint).toMatch(/wifiKeyFile/);
    expect(error.format()).not.toContain('correct-horse-battery');
  });

  it('refuses a key pasted where a file name belongs, without printing it', () => {
    const error = configErrorFrom(() => loadMigrationConfig(`${dir}/key-as-file-name.yml`));
    expect(error.message).toBe('agent.apiKeyFile looks like a secret itself, not the name of a file');
    expect(error.where).toMatchObject({ line: 4, col: 15 });
    expect(error.format()).not.toContain(KEY);
  });

  it('refuses a fleet that is not a slug or an id, at its line', () => {
    const error = configErrorFrom(() => loadMigrationConfig(`${dir}/bad-fleet.yml`));
    expect(error.where).toMatchObject({ line: 3, col: 10 });
    expect(error.hint).toMatch(/myorg\/myfleet/);
  });

  it('takes agent flags over the file, with a numeric fleet as an id', () => {
    const base = loadMigrationConfig(`${dir}/agent.yml`);
    const config = applyConfigOverrides(
      base,
      overridesFromFlags({ fleet: '42', osVersion: 'latest', onlineTimeout: '30', apiKeyEnv: 'MY_KEY' }),
    );
    expect(config.agent).toMatchObject({
      fleet: 42,
      osVersion: 'latest',
      onlineTimeoutSeconds: 30,
      apiKeyEnv: 'MY_KEY',
    });
    const error = configErrorFrom(() => agentConfigFrom(config.agent, config.source));
    expect(error.message).toMatch(/both set/);
  });

  it('checks a flag value with the schema, naming the command line', () => {
    const error = configErrorFrom(() =>
      applyConfigOverrides(defaultMigrationConfig('/tmp'), {
        agent: agentOverridesFromFlags({ onlineTimeout: 'soon' }),
      }),
    );
    expect(error.message).toBe(
      'agent.onlineTimeoutSeconds (from the command line) must be a whole number (got "soon")',
    );
  });

  it('needs a fleet and a place for the key before agent mode can run', () => {
    const noFleet = configErrorFrom(() => agentConfigFrom(undefined, '/x/balena-migrate.yml'));
    expect(noFleet.message).toBe('mode agent needs the fleet the devices join');
    const config = applyConfigOverrides(defaultMigrationConfig('/tmp'), { agent: { fleet: 'acme/lab' } });
    expect(configErrorFrom(() => agentConfigFrom(config.agent, undefined)).hint).toMatch(/--api-key-env/);
  });

  it('runs the hosts of agent mode like standalone ones, with no image or config.json of its own', () => {
    const config = applyConfigOverrides(defaultMigrationConfig('/tmp'), { mode: 'agent' });
    const settings = runSettingsFrom(config, 'run');
    expect(settings.mode).toBe('standalone');
  });
});

describe('the API key', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), 'agent-key-'));
  });
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));

  it('is read from a file of its own, trimmed', () => {
    const file = join(tmp, 'key');
    writeFileSync(file, `${KEY}\n`, { mode: 0o600 });
    expect(readApiKey({ kind: 'file', path: file })).toEqual({ value: KEY, origin: file });
  });

  it('is refused from a file every user can read', () => {
    const file = join(tmp, 'key');
    writeFileSync(file, KEY);
    chmodSync(file, 0o644);
    const error = configErrorFrom(() => readApiKey({ kind: 'file', path: file }));
    expect(error.hint).toBe(`chmod 600 ${file}`);
  });

  it('is read from an environment variable, and an unset one says which to export', () => {
    expect(readApiKey({ kind: 'env', name: 'BM_KEY' }, { BM_KEY: KEY }).value).toBe(KEY);
    const error = configErrorFrom(() => readApiKey({ kind: 'env', name: 'BM_KEY' }, {}));
    expect(error.message).toBe('the environment variable BM_KEY (agent.apiKeyEnv) is not set or empty');
  });

  it('is cut out of any message that echoes it', () => {
    expect(redact(`Bearer ${KEY} refused`, [KEY])).toBe('Bearer [redacted] refused');
  });

  it('is told apart from a file name', () => {
    expect(looksLikeApiKey(KEY)).toBe(true);
    expect(looksLikeApiKey('~/.config/balena/api-key')).toBe(false);
    expect(looksLikeApiKey('balena-api-key.txt')).toBe(false);
  });
});

describe('a host whose plan is another device type than agent mode prepared', () => {
  it('is refused with the host var that fixes it', () => {
    expect(deviceTypeMismatch('genericx86-64-ext', 'genericx86-64-ext')).toBeNull();
    expect(deviceTypeMismatch('genericx86-64-ext', 'raspberrypi4-64')).toMatch(
      /^this host is a genericx86-64-ext, but agent mode prepared a raspberrypi4-64 image.*balenaDeviceType: genericx86-64-ext/,
    );
  });
});

describe('inventory/balena-migrate.agent.example.yml', () => {
  it('loads as an agent-mode config that takes its key from an environment variable', () => {
    const config = loadMigrationConfig(fixturePath('../../inventory/balena-migrate.agent.example.yml'));
    expect(config.mode).toBe('agent');
    expect(agentConfigFrom(config.agent, config.source)).toMatchObject({
      fleet: 'myorg/myfleet',
      apiKeySource: { kind: 'env', name: 'BALENA_API_KEY' },
    });
  });
});
