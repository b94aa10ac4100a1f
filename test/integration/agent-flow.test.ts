// Agent mode against a fake balena API on loopback, through the real balena-sdk: everything
// up to the point where a host would be touched.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackendError, BalenaBackend } from '../../orchestrator/agent/backend.ts';
import { cachedImagePath, ensureImage } from '../../orchestrator/agent/image-cache.ts';
import { type AgentRun, provisionAgentHosts, resolveAgentRun } from '../../orchestrator/agent/prepare.ts';
import { verifyAgainstBackend } from '../../orchestrator/agent/verify-online.ts';
import {
  applyConfigOverrides,
  type ConfigOverrides,
  defaultMigrationConfig,
} from '../../orchestrator/config/migration-config.ts';
import { RunResources } from '../../orchestrator/phases/resources.ts';
import type { HostTarget } from '../../orchestrator/phases/settings.ts';
import { type FakeBalenaApi, startFakeBalenaApi } from '../helpers/fake-balena-api.ts';

const API_KEY = 'Zq8Xk2v9LmN4pR7sT1wY3bC6dF0gH5jA';

let fake: FakeBalenaApi;
let dir: string;
let keyFile: string;

beforeEach(async () => {
  fake = await startFakeBalenaApi({ apiKeys: [API_KEY] });
  dir = mkdtempSync(join(tmpdir(), 'agent-flow-'));
  keyFile = join(dir, 'balena-api-key');
  writeFileSync(keyFile, `${API_KEY}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'wifi-key'), 'correct horse battery\n', { mode: 0o600 });
});

afterEach(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

function agentConfig(agent: NonNullable<ConfigOverrides['agent']> = {}) {
  return applyConfigOverrides(
    defaultMigrationConfig(dir),
    {
      mode: 'agent',
      agent: {
        apiUrl: fake.url,
        apiKeyFile: keyFile,
        fleet: 'acme/lab',
        cacheDir: join(dir, 'cache'),
        ...agent,
      },
    },
    { cwd: dir },
  );
}

function host(name: string, vars: Record<string, unknown> = {}): HostTarget {
  return { name, address: '192.0.2.10', port: 22, user: 'root', vars };
}

async function resolve(targets: HostTarget[], agent: NonNullable<ConfigOverrides['agent']> = {}) {
  const resources = new RunResources();
  const run = await resolveAgentRun({
    config: agentConfig(agent),
    targets,
    resources,
    log: () => {},
    download: { stallMs: 300 },
  });
  return { run, resources };
}

async function failure(promise: Promise<unknown>): Promise<BackendError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BackendError);
  return err as BackendError;
}

describe('agent mode up to the hosts', () => {
  it('downloads, caches and measures the image, registers each host and writes its own config.json', async () => {
    const targets = [host('nuc-1'), host('nuc-2')];
    const { run, resources } = await resolve(targets, {
      wifiSsid: 'lab-wifi',
      wifiKeyFile: join(dir, 'wifi-key'),
      appUpdatePollInterval: 10,
    });

    // One image for the one device type, in the cache, verified and measured for the run.
    expect(run.versions.get('genericx86-64-ext')).toBe('6.0.13+rev1');
    const image = run.images.get('genericx86-64-ext')!;
    expect(image.path).toBe(cachedImagePath(join(dir, 'cache'), 'genericx86-64-ext', '6.0.13+rev1'));
    expect(readFileSync(image.path).equals(fake.imageGz)).toBe(true);
    expect(image.info).toMatchObject({ compression: 'gzip', fileSizeBytes: fake.imageGz.length });
    expect(await resources.image(image.path)).toBe(image.info);
    expect(fake.requestsTo('GET', '/download')).toHaveLength(1);
    expect(fake.requestsTo('GET', '/download')[0]!.query).toBe(
      'fileType=.gz&imageType=raw&deviceType=genericx86-64-ext&version=6.0.13+rev1',
    );

    const runDir = join(dir, 'run');
    const hosts = await provisionAgentHosts(run, targets, {
      command: 'run',
      runDir,
      resume: false,
      log: () => {},
    });
    expect(fake.devices.size).toBe(2);
    for (const name of ['nuc-1', 'nuc-2']) {
      const prepared = hosts.get(name)!;
      const uuid = prepared.agent.device.uuid!;
      const device = fake.devices.get(uuid)!;
      expect(device).toMatchObject({ name, fleetId: 11, deviceType: 'genericx86-64-ext' });
      expect(prepared.target.image).toBe(image.path);
      expect(prepared.agent.device).toEqual({
        fleet: 'acme/lab',
        deviceType: 'genericx86-64-ext',
        osVersion: '6.0.13+rev1',
        uuid,
        dashboardUrl: expect.stringContaining(`/devices/${uuid}/summary`),
        online: null,
      });
      const configPath = prepared.target.configJson!;
      expect(statSync(configPath).mode & 0o777).toBe(0o600);
      const config = JSON.parse(readFileSync(configPath, 'utf8'));
      expect(config).toMatchObject({
        applicationId: 11,
        deviceType: 'genericx86-64-ext',
        uuid,
        deviceId: device.id,
        deviceApiKey: device.keys[0],
        wifiSsid: 'lab-wifi',
        wifiKey: 'correct horse battery',
        appUpdatePollInterval: 600000,
      });
      expect(config.apiKey).toBeUndefined();
    }
    // The fleet's config.json was generated once for the device type, with the network settings.
    const configRequests = fake.requestsTo('POST', '/download-config');
    expect(configRequests).toHaveLength(1);
    expect(configRequests[0]!.body).toEqual({
      version: '6.0.13+rev1',
      deviceType: 'genericx86-64-ext',
      network: 'wifi',
      wifiSsid: 'lab-wifi',
      wifiKey: 'correct horse battery',
      appUpdatePollInterval: 10,
      appId: 11,
    });
    // Registration went through the provisioning key the SDK asked for, not the user's key.
    expect(fake.requestsTo('POST', '/device/register').map((r) => r.auth)).toEqual([
      'provisioning-key',
      'provisioning-key',
    ]);
  });

  it('uses the image already in the cache instead of downloading it again', async () => {
    await resolve([host('nuc-1')]);
    const { run } = await resolve([host('nuc-1')]);
    expect(run.images.get('genericx86-64-ext')!.downloaded).toBe(false);
    expect(fake.requestsTo('GET', '/download')).toHaveLength(1);
  });

  it('matches a host to the existing device named by its balenaUuid instead of registering one', async () => {
    const uuid = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
    fake.addDevice({ uuid, name: 'old-nuc', fleetId: 11, deviceType: 'genericx86-64-ext' });
    const targets = [host('nuc-1', { balenaUuid: uuid })];
    const { run } = await resolve(targets);
    const hosts = await provisionAgentHosts(run, targets, {
      command: 'run',
      runDir: join(dir, 'run'),
      resume: false,
      log: () => {},
    });
    expect(fake.requestsTo('POST', '/device/register')).toHaveLength(0);
    const config = JSON.parse(readFileSync(hosts.get('nuc-1')!.target.configJson!, 'utf8'));
    expect(config.uuid).toBe(uuid);
    expect(config.deviceApiKey).toBe(fake.devices.get(uuid)!.keys[0]);
  });

  it('registers nothing for check, and writes a stand-in config.json to plan with', async () => {
    const targets = [host('nuc-1')];
    const { run } = await resolve(targets);
    const hosts = await provisionAgentHosts(run, targets, {
      command: 'check',
      runDir: join(dir, 'run'),
      resume: false,
      log: () => {},
    });
    expect(fake.devices.size).toBe(0);
    expect(fake.requestsTo('POST', '/download-config')).toHaveLength(0);
    expect(hosts.get('nuc-1')!.agent.device.uuid).toBeNull();
    expect(existsSync(hosts.get('nuc-1')!.target.configJson!)).toBe(true);
  });

  it('reuses the devices registered by an interrupted run when it is resumed', async () => {
    const targets = [host('nuc-1')];
    const { run } = await resolve(targets);
    const runDir = join(dir, 'run');
    const first = await provisionAgentHosts(run, targets, {
      command: 'run',
      runDir,
      resume: false,
      log: () => {},
    });
    const again = await provisionAgentHosts(run, targets, {
      command: 'run',
      runDir,
      resume: true,
      log: () => {},
    });
    expect(again.get('nuc-1')!.agent.device.uuid).toBe(first.get('nuc-1')!.agent.device.uuid);
    expect(fake.devices.size).toBe(1);
  });

  it('stops with the key refused, naming where the key came from but never the key', async () => {
    writeFileSync(keyFile, 'WrongKeyWrongKeyWrongKey0123456789\n', { mode: 0o600 });
    const err = await failure(resolve([host('nuc-1')]));
    expect(err.message).toBe(`the balena API refused the API key from ${keyFile}`);
    expect(err.format()).not.toContain('WrongKeyWrongKey');
    expect(fake.requestsTo('GET', '/actor/v1/whoami')[0]!.auth).toBe('unknown-key');
  });

  it('stops when the fleet does not exist or the key cannot see it', async () => {
    const err = await failure(resolve([host('nuc-1')], { fleet: 'acme/nowhere' }));
    expect(err.message).toBe("fleet 'acme/nowhere' not found, or this API key cannot see it");
    expect(err.hint).toMatch(/agent\.fleet/);
  });

  it('stops when a host is of a device type the fleet does not support', async () => {
    const err = await failure(
      resolve([host('nuc-1'), host('pi-1', { balenaDeviceType: 'raspberrypi4-64' })]),
    );
    expect(err.message).toBe(
      'fleet acme/lab (genericx86-64-ext, amd64) does not support device type raspberrypi4-64 (aarch64)',
    );
    expect(fake.requestsTo('GET', '/download')).toHaveLength(0);
  });

  it('stops when no balenaOS version matches, listing the ones there are', async () => {
    const err = await failure(resolve([host('nuc-1')], { osVersion: '^7.0.0' }));
    expect(err.message).toBe(
      "no balenaOS release for genericx86-64-ext matches '^7.0.0' (available: 6.0.13+rev1, 6.0.10+rev3, 5.3.1+rev2)",
    );
  });

  it('picks the newest release in a semver range, and an exact version as given', async () => {
    expect(
      (await resolve([host('nuc-1')], { osVersion: '~6.0.10' })).run.versions.get('genericx86-64-ext'),
    ).toBe('6.0.13+rev1');
    expect(
      (await resolve([host('nuc-1')], { osVersion: '5.3.1+rev2' })).run.versions.get('genericx86-64-ext'),
    ).toBe('5.3.1+rev2');
  });
});

describe('the image download', () => {
  async function backend() {
    return BalenaBackend.connect(fake.url, { value: API_KEY, origin: 'test' });
  }
  const base = () => ({
    cacheDir: join(dir, 'cache'),
    deviceType: 'genericx86-64-ext',
    version: '6.0.13+rev1',
    stallMs: 300,
  });

  it('continues a download cut midway with a Range request and verifies the result', async () => {
    fake.cutDownloads(300_000);
    const image = await ensureImage({ source: await backend(), ...base() });
    expect(image.resumedFrom).toEqual([300_000]);
    expect(fake.requestsTo('GET', '/download').map((r) => r.range)).toEqual([undefined, 'bytes=300000-']);
    expect(readFileSync(image.path).equals(fake.imageGz)).toBe(true);
    expect(image.info.fileSizeBytes).toBe(fake.imageGz.length);
  });

  it('keeps the partial file when every try is cut, and the next run continues it', async () => {
    fake.cutDownloads(250_000);
    const err = await failure(ensureImage({ source: await backend(), ...base(), attempts: 1 }));
    expect(err.message).toMatch(/did not complete after 1 tries: stopped at 250000 of \d+ bytes/);
    const part = `${cachedImagePath(join(dir, 'cache'), 'genericx86-64-ext', '6.0.13+rev1')}.part`;
    expect(statSync(part).size).toBe(250_000);

    const image = await ensureImage({ source: await backend(), ...base() });
    expect(image.resumedFrom).toEqual([250_000]);
    expect(readFileSync(image.path).equals(fake.imageGz)).toBe(true);
    expect(existsSync(part)).toBe(false);
  });

  it('downloads again a cached image that changed on disk', async () => {
    const first = await ensureImage({ source: await backend(), ...base() });
    const damaged = readFileSync(first.path);
    damaged[1000] = damaged[1000]! ^ 0xff;
    writeFileSync(first.path, damaged);
    const again = await ensureImage({ source: await backend(), ...base() });
    expect(again.downloaded).toBe(true);
    expect(readFileSync(again.path).equals(fake.imageGz)).toBe(true);
  });
});

describe('verifying a migrated host against the backend', () => {
  let run: AgentRun;
  let uuid: string;
  let isOnline: () => Promise<boolean>;

  beforeEach(async () => {
    const targets = [host('nuc-1')];
    run = (await resolve(targets)).run;
    const hosts = await provisionAgentHosts(run, targets, {
      command: 'run',
      runDir: join(dir, 'run'),
      resume: false,
      log: () => {},
    });
    uuid = hosts.get('nuc-1')!.agent.device.uuid!;
    isOnline = () => run.backend.isOnline(uuid);
  });

  const device = () => ({ uuid, dashboardUrl: run.backend.dashboardUrl(uuid) });

  it('is needs-attention, not migrated, when the backend never sees the device online', async () => {
    const verdict = await verifyAgainstBackend({
      hostCheck: async () => 'balena',
      isOnline,
      timeoutMs: 400,
      pollMs: 50,
      device: device(),
    });
    expect(verdict.outcome).toBe('needs-attention');
    expect(verdict.online).toBe(false);
    expect(verdict.error?.class).toBe('DeviceNotOnline');
    expect(verdict.error?.message).toContain(uuid);
    expect(fake.requestsTo('GET', `/v7/device(uuid='${uuid}')`).length).toBeGreaterThan(2);
  });

  it('is migrated once the backend sees the device online', async () => {
    fake.onlineAfterPolls = 3;
    const verdict = await verifyAgainstBackend({
      hostCheck: async () => 'balena',
      isOnline,
      timeoutMs: 5000,
      pollMs: 20,
      device: device(),
    });
    expect(verdict).toEqual({ outcome: 'migrated', online: true, error: null });
  });

  it("gives run-host's online check the fleet device of the host, bounded by onlineTimeoutSeconds", async () => {
    const targets = [host('nuc-2')];
    const { run: timed } = await resolve(targets, { onlineTimeoutSeconds: 1 });
    const hosts = await provisionAgentHosts(timed, targets, {
      command: 'run',
      runDir: join(dir, 'run2'),
      resume: false,
      log: () => {},
      onlinePollMs: 100,
    });
    const agent = hosts.get('nuc-2')!.agent;
    const logs: string[] = [];
    const never = await agent.confirmOnline(new AbortController().signal, (m) => logs.push(m));
    expect(never.ok).toBe(false);
    expect(never.wait.afterMs).toBeGreaterThanOrEqual(1000);
    expect(logs[0]).toBe(`waiting up to 1s for the balena backend to see ${agent.device.uuid} online`);
    fake.setOnline(agent.device.uuid!, true);
    expect((await agent.confirmOnline(new AbortController().signal, () => {})).ok).toBe(true);
  });

  it('does not ask the backend when the host came back on its old OS', async () => {
    const before = fake.requests.length;
    const verdict = await verifyAgainstBackend({
      hostCheck: async () => 'old-os',
      isOnline,
      timeoutMs: 400,
      device: device(),
    });
    expect(verdict.outcome).toBe('reverted');
    expect(fake.requests.length).toBe(before);
  });
});
