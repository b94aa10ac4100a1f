// `balena-migrate` in agent mode as an operator runs it: a subprocess, a fake balena API on
// loopback, real sshd hosts. The API key goes in through an environment variable and must
// come out nowhere: not in the run directory, the image cache, the output, or any process's
// command line while the CLI runs.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeBalenaApi, startFakeBalenaApi } from '../helpers/fake-balena-api.ts';
import {
  type CliResult,
  type FleetHosts,
  nativeInventory,
  readHostReports,
  readJsonLines,
  startCli,
  startFleetHosts,
} from '../helpers/fleet-hosts.ts';

const API_KEY = 'Pw7Rk3Nq9Zt2Lm5Xv8Bc1Df4Gh6Jk0Ys';
const KEY_VAR = 'BM_TEST_BALENA_API_KEY';
const WIFI_KEY = 'lab wifi passphrase 42';

let fake: FakeBalenaApi;
let fleet: FleetHosts;
let dir: string;
let runsDir: string;
let configFile: string;
let inventoryFile: string;

beforeAll(async () => {
  fake = await startFakeBalenaApi({ apiKeys: [API_KEY] });
  fleet = await startFleetHosts([
    { name: 'nuc-ok', kind: 'ok' },
    { name: 'nuc-down', kind: 'down' },
  ]);
  dir = mkdtempSync(join(tmpdir(), 'agent-cli-'));
  runsDir = join(dir, 'runs');
  configFile = join(dir, 'balena-migrate.yml');
  writeFileSync(join(dir, 'wifi-key'), `${WIFI_KEY}\n`, { mode: 0o600 });
  writeFileSync(
    configFile,
    [
      'mode: agent',
      'agent:',
      `  apiUrl: ${fake.url}`,
      `  apiKeyEnv: ${KEY_VAR}`,
      '  fleet: acme/lab',
      '  cacheDir: cache',
      '  onlineTimeoutSeconds: 5',
      '  wifiSsid: lab-wifi',
      '  wifiKeyFile: wifi-key',
      'ssh:',
      `  knownHostsFile: ${fleet.knownHostsFile}`,
      '  useAgent: false',
      '  connectTimeoutSeconds: 5',
      'run:',
      '  runsDir: runs',
      '',
    ].join('\n'),
  );
  inventoryFile = join(dir, 'inventory.yml');
  writeFileSync(inventoryFile, nativeInventory(fleet));
}, 120_000);

afterAll(async () => {
  await fleet?.stop();
  await fake?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the CLI, reading every process's command line on the machine while it runs. */
async function runWatched(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<CliResult & { keyInCmdline: string[]; sawOwnCmdline: boolean }> {
  const [command, ...rest] = args;
  const cli = startCli([command!, '-c', configFile, ...rest], runsDir, env);
  const keyInCmdline: string[] = [];
  let sawOwnCmdline = false;
  let running = true;
  const watch = (async () => {
    while (running) {
      for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
        let cmdline: string;
        try {
          cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        } catch {
          continue;
        }
        if (Number(pid) === cli.child.pid && cmdline.includes('balena-migrate')) sawOwnCmdline = true;
        if (cmdline.includes(API_KEY)) keyInCmdline.push(`${pid}: ${cmdline.replace(/\0/g, ' ')}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  const result = await cli.done;
  running = false;
  await watch;
  return { ...result, keyInCmdline, sawOwnCmdline };
}

/** Every file under `root` whose bytes contain `needle`. */
function filesContaining(root: string, needle: string): string[] {
  const hits: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (readFileSync(p).includes(needle)) hits.push(p);
    }
  };
  if (existsSync(root)) walk(root);
  return hits;
}

describe('balena-migrate in agent mode', () => {
  it('downloads and caches the image with --download-only, touching no host and writing no run', async () => {
    const result = await runWatched(['run', '--download-only'], { [KEY_VAR]: API_KEY });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /^genericx86-64-ext balenaOS 6\.0\.13\+rev1: .*\/cache\/genericx86-64-ext\/6\.0\.13\+rev1\/.*\.img\.gz \(\d+ bytes, sha256 [0-9a-f]{64}, downloaded now\)$/m,
    );
    expect(result.runDir).toBeNull();
    expect(fake.devices.size).toBe(0);
    expect(result.sawOwnCmdline).toBe(true);
    expect(result.keyInCmdline).toEqual([]);
  }, 120_000);

  it('registers each host, runs it with its own config.json, and keeps the API key out of everything', async () => {
    const result = await runWatched(['run', '-i', inventoryFile, '--limit', 'nuc-down', '--json'], {
      [KEY_VAR]: API_KEY,
    });
    expect(result.code).toBe(1);
    expect(result.runDir).not.toBeNull();
    const runDir = result.runDir!;
    const report = readHostReports(runDir).get('nuc-down')!;
    expect(report.outcome).toBe('unreachable');
    const balena = report.balena as { uuid: string; dashboardUrl: string; fleet: string; osVersion: string };
    expect(fake.devices.get(balena.uuid)).toMatchObject({ name: 'nuc-down', fleetId: 11 });
    expect(balena).toMatchObject({ fleet: 'acme/lab', osVersion: '6.0.13+rev1' });
    expect(balena.dashboardUrl).toContain(balena.uuid);
    expect(JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8')).mode).toBe('agent');
    expect(readJsonLines(join(runDir, 'events.jsonl')).length).toBeGreaterThan(0);

    const configs = readdirSync(join(runDir, 'agent', 'config'));
    expect(configs).toEqual(['nuc-down.config.json']);
    const config = JSON.parse(readFileSync(join(runDir, 'agent', 'config', configs[0]!), 'utf8'));
    expect(config.uuid).toBe(balena.uuid);
    // the agent's Wi-Fi: the same network in config.json and as the keyfile every host gets
    expect(config).toMatchObject({ wifiSsid: 'lab-wifi', wifiKey: WIFI_KEY });
    const keyfile = join(runDir, 'agent', 'network', 'agent-wifi.nmconnection');
    expect(statSync(keyfile).mode & 0o777).toBe(0o600);
    expect(readFileSync(keyfile, 'utf8')).toMatch(/^ssid=lab-wifi$/m);
    expect(readFileSync(join(runDir, 'hosts', 'nuc-down', 'report.json'), 'utf8')).not.toContain(WIFI_KEY);
    expect(result.stdout + result.stderr).not.toContain(WIFI_KEY);

    expect(filesContaining(runDir, API_KEY)).toEqual([]);
    expect(filesContaining(join(dir, 'cache'), API_KEY)).toEqual([]);
    expect(result.stdout).not.toContain(API_KEY);
    expect(result.stderr).not.toContain(API_KEY);
    expect(result.sawOwnCmdline).toBe(true);
    expect(result.keyInCmdline).toEqual([]);
  }, 120_000);

  it('plans a reachable host with the downloaded image and registers nothing for check', async () => {
    const devicesBefore = fake.devices.size;
    const result = await runWatched(['check', '-i', inventoryFile, '--limit', 'nuc-ok', '--json'], {
      [KEY_VAR]: API_KEY,
    });
    const report = readHostReports(result.runDir!).get('nuc-ok')!;
    expect(['ready', 'refused']).toContain(report.outcome);
    expect(report.phases).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'probe', ok: true })]),
    );
    expect(report.balena).toMatchObject({ fleet: 'acme/lab', uuid: null });
    if (report.outcome === 'ready') {
      const plan = JSON.stringify(report.plan);
      expect(plan).toContain('/cache/genericx86-64-ext/6.0.13+rev1/');
    }
    expect(fake.devices.size).toBe(devicesBefore);
    expect(filesContaining(result.runDir!, API_KEY)).toEqual([]);
    expect(result.keyInCmdline).toEqual([]);
  }, 120_000);

  it('exits 2 before any host when the backend refuses the key, and does not echo it', async () => {
    const wrong = 'Wr0ngKeyWr0ngKeyWr0ngKeyWr0ngKey';
    const result = await runWatched(['run', '-i', inventoryFile], { [KEY_VAR]: wrong });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      `the balena API refused the API key from environment variable ${KEY_VAR}`,
    );
    expect(result.stderr).not.toContain(wrong);
    expect(result.runDir).toBeNull();
  }, 120_000);
});
