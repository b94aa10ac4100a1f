import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deviceConfigJson, writeSecretJson } from '../../orchestrator/agent/device-config.ts';
import { cachedImagePath } from '../../orchestrator/agent/image-cache.ts';

describe("a device's config.json", () => {
  const fleetConfig = {
    applicationId: 11,
    deviceType: 'genericx86-64-ext',
    apiEndpoint: 'https://api.balena-cloud.com',
    apiKey: 'provisioning-key-of-the-fleet',
    wifiSsid: 'lab',
  };

  it("is the fleet's config with the device's identity, and without the fleet's provisioning key", () => {
    const config = deviceConfigJson(
      fleetConfig,
      { id: 77, uuid: 'ab'.repeat(16), deviceApiKey: 'device-key' },
      new Date('2026-11-26T04:00:00Z'),
    );
    expect(config).toEqual({
      applicationId: 11,
      deviceType: 'genericx86-64-ext',
      apiEndpoint: 'https://api.balena-cloud.com',
      wifiSsid: 'lab',
      uuid: 'ab'.repeat(16),
      deviceId: 77,
      deviceApiKey: 'device-key',
      registered_at: 1795665600,
    });
  });

  it('is written readable by its owner only, even over an existing file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-config-'));
    try {
      const path = join(dir, 'config', 'nuc-1.config.json');
      writeSecretJson(path, { a: 1 });
      writeFileSync(path, 'old', { mode: 0o644 });
      writeSecretJson(path, { a: 2 });
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, 'config')).mode & 0o777).toBe(0o700);
      expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ a: 2 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the image cache', () => {
  it('keys each image by device type and version, in a portable file name', () => {
    expect(cachedImagePath('/c', 'genericx86-64-ext', '6.0.13+rev1')).toBe(
      '/c/genericx86-64-ext/6.0.13+rev1/balena-genericx86-64-ext-6.0.13+rev1.img.gz',
    );
    expect(cachedImagePath('/c', 'x', '../../etc')).toBe('/c/x/.._.._etc/balena-x-.._.._etc.img.gz');
  });
});
