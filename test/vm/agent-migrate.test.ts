// Agent mode end to end on the VM test bed: a loopback stand-in for the balena API serves the
// balenaOS-shaped test image as the fleet's OS, registers the Debian VM as a device and
// generates its config.json; `balena-migrate run --mode agent` takes the VM to that image
// through real reboots; the booted image then checks in with the API by itself (its
// balena-heartbeat, with the device key from the config.json on resin-boot, over QEMU's user
// network to 10.0.2.2), and only that makes the backend call the device online.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type FakeBalenaApi, startFakeBalenaApi } from '../helpers/fake-balena-api.ts';
import { sshRun } from './harness/index.ts';
import { balenaRoot, lastHostReport, phaseTimes, runCli, type Scenario, startScenario } from './scenario.ts';

/** The operator's balena API key: must show up nowhere but in its 0600 file. */
const USER_API_KEY = 'bmAgentVmUserKey0123456789abcdefXYZ';
const VERSION = '2.0.0+rev1';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Every file under `dir`, for the secret search. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isFile());
}

/** Samples every process's command line on this machine until stopped; returns those holding `secret`. */
function watchCommandLines(secret: string): () => string[] {
  const hits = new Set<string>();
  const sample = () => {
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (cmd.includes(secret)) hits.add(`${pid}: ${cmd.replace(/\0/g, ' ')}`);
      } catch {}
    }
  };
  const timer = setInterval(sample, 250);
  return () => {
    clearInterval(timer);
    sample();
    return [...hits];
  };
}

describe('agent mode on a Debian VM with GRUB', () => {
  it('registers the VM, flashes the fleet image with the backend config.json, and is migrated once the device checks in', async () => {
    const s: Scenario = await startScenario('agent-migrate');
    cleanups.push(() => s.cleanup());
    const api: FakeBalenaApi = await startFakeBalenaApi({
      apiKeys: [USER_API_KEY],
      fleets: [{ id: 11, slug: 'acme/lab', deviceType: 'genericx86-64-ext' }],
      osVersions: { 'genericx86-64-ext': [VERSION] },
      imageGz: readFileSync(s.image.imgGz),
    });
    cleanups.push(() => api.close());
    // The device reaches the host's loopback through QEMU's user network at 10.0.2.2.
    api.deviceApiUrl = api.url.replace('127.0.0.1', '10.0.2.2');

    const keyFile = join(s.dir, 'api-key');
    writeFileSync(keyFile, `${USER_API_KEY}\n`, { mode: 0o600 });
    const configFile = join(s.dir, 'balena-migrate.yml');
    writeFileSync(
      configFile,
      [
        'mode: agent',
        'agent:',
        `  apiUrl: ${api.url}`,
        '  apiKeyFile: ./api-key',
        '  fleet: acme/lab',
        '  osVersion: latest',
        '  cacheDir: ./image-cache',
        '  onlineTimeoutSeconds: 180',
        `  sshKeyFiles: [${s.base.sshKeyPath}.pub]`,
        // the Debian VM has neither curl nor wget: the laptop pushes the image, and says why
        '  hostDownload: true',
        '',
      ].join('\n'),
    );
    await s.vm.waitForTcpBanner(22, 180_000);

    const t0 = Date.now();
    const stopWatching = watchCommandLines(USER_API_KEY);
    const result = await runCli([
      'run',
      '-c',
      configFile,
      '--host',
      `root@127.0.0.1:${s.sshPort}`,
      '--known-hosts',
      s.knownHostsFile,
      '--identity',
      s.base.sshKeyPath,
      '--no-agent',
      '--balena-port',
      String(s.balenaPort),
      '--verify-timeout',
      '900',
      '--runs-dir',
      join(s.dir, 'runs'),
      '--json',
    ]);
    const commandLinesWithKey = stopWatching();
    const seconds = (Date.now() - t0) / 1000;
    const { runDir, report } = await lastHostReport(join(s.dir, 'runs'));
    console.log(`agent scenario: run → ${report.outcome} in ${seconds.toFixed(1)} s (${phaseTimes(report)})`);
    expect(report.outcome, `${result.stderr}\n${s.vm.serialTail(60)}`).toBe('migrated');
    expect(result.code).toBe(0);

    // The report names the device the backend registered for this host.
    const [device, ...others] = [...api.devices.values()];
    expect(others).toEqual([]);
    expect(device!.name).toBe(report.host);
    expect(report.balena).toMatchObject({
      fleet: 'acme/lab',
      deviceType: 'genericx86-64-ext',
      osVersion: VERSION,
      uuid: device!.uuid,
      online: true,
    });
    expect(report.balena!.dashboardUrl).toMatch(new RegExp(`^https?://\\S+/devices/${device!.uuid}`));

    expect(report.balena!.imageDownload).toEqual({
      by: 'push',
      tool: null,
      attempts: 0,
      fallbackReason: 'the host has neither curl nor wget',
    });

    // Online because the booted image checked in with its own key, not because anyone said so.
    const heartbeats = api.requestsTo('GET', `/device/v3/${device!.uuid}/state`);
    expect(heartbeats.length).toBeGreaterThan(0);
    expect(heartbeats.every((r) => r.auth === 'device-key')).toBe(true);
    expect(s.vm.serialTail(400)).toMatch(/balena-heartbeat: reached http:\/\/10\.0\.2\.2:\d+ as device/);

    // The VM runs the image, and resin-boot holds exactly the config.json the backend generated.
    const balena = balenaRoot(s);
    expect(await sshRun(balena, 'cat /etc/os-release')).toMatch(/^ID="?balena-os"?$/m);
    const onDevice = JSON.parse(await sshRun(balena, `cat ${s.image.bootMountPoint}/config.json`));
    const configDir = join(runDir, 'agent', 'config');
    const [configName, ...more] = readdirSync(configDir);
    expect(more).toEqual([]);
    const generated = JSON.parse(readFileSync(join(configDir, configName!), 'utf8'));
    expect(onDevice).toEqual(generated);
    expect(onDevice).toMatchObject({
      uuid: device!.uuid,
      deviceId: device!.id,
      applicationId: 11,
      deviceType: 'genericx86-64-ext',
      apiEndpoint: api.deviceApiUrl,
    });
    expect(device!.keys).toContain(onDevice.deviceApiKey);
    expect(onDevice).not.toHaveProperty('apiKey');
    // the image came from the backend once, with the operator's key, into the cache
    expect(api.requestsTo('GET', '/download').map((r) => r.auth)).toEqual(['user-key']);

    // The operator's key is nowhere: not in a file of the run or the cache, the output, the
    // device's config.json or console, nor any process's command line during the run.
    const everything = [
      ...filesUnder(runDir).map((f) => readFileSync(f, 'utf8')),
      ...filesUnder(join(s.dir, 'image-cache'))
        .filter((f) => f.endsWith('.json'))
        .map((f) => readFileSync(f, 'utf8')),
      result.stdout,
      result.stderr,
      JSON.stringify(onDevice),
      readFileSync(s.vm.serialLogPath, 'utf8'),
      await sshRun(balena, `cat ${s.image.bootMountPoint}/balena-migrate-stage2.log`),
    ].join('\n');
    expect(everything).not.toContain(USER_API_KEY);
    expect(commandLinesWithKey).toEqual([]);
  }, 1_800_000);
});
