// agent.hostDownload against a fake balena API on loopback and a real sshd host (this machine,
// which has curl and wget): the host fetches the image itself, without any credential,
// continues a cut download, and every way that can fail (no tool, a refused or broken
// download, other bytes than the verified image) ends with the laptop pushing the image, the
// file on the host verified either way. Hosts run in pretend mode: the upload is all there is.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { HostAgent } from '../../orchestrator/agent/host-agent.ts';
import { provisionAgentHosts, resolveAgentRun } from '../../orchestrator/agent/prepare.ts';
import { runSettingsFrom } from '../../orchestrator/cli/targets.ts';
import { applyConfigOverrides, defaultMigrationConfig } from '../../orchestrator/config/migration-config.ts';
import { connectHost } from '../../orchestrator/phases/connect.ts';
import {
  downloadOnHost,
  type HostDownloadResult,
  type HostDownloadTools,
} from '../../orchestrator/phases/host-download.ts';
import { probeHost } from '../../orchestrator/phases/probe.ts';
import { RunResources } from '../../orchestrator/phases/resources.ts';
import type { HostTarget, RunSettings } from '../../orchestrator/phases/settings.ts';
import { uploadPayload } from '../../orchestrator/phases/upload.ts';
import type { PayloadFile, Plan } from '../../orchestrator/plan/plan.ts';
import { type FakeBalenaApi, makeDiskImage, startFakeBalenaApi } from '../helpers/fake-balena-api.ts';
import { type FleetHosts, startFleetHosts } from '../helpers/fleet-hosts.ts';

const API_KEY = 'Hd4Rk8Nq2Zt7Lm1Xv5Bc9Df3Gh0Jk6Ys';

let fleet: FleetHosts;
let fake: FakeBalenaApi;
let dir: string;
let workDir: string;
/** curl and wget as the probe reports them on the sshd host (this machine) */
let probedTools: HostDownloadTools;

beforeAll(async () => {
  fleet = await startFleetHosts([{ name: 'nuc-dl', kind: 'ok' }]);
  const settings = runSettingsFrom(
    applyConfigOverrides(defaultMigrationConfig(tmpdir()), {
      mode: 'agent',
      ssh: { knownHostsFile: fleet.knownHostsFile, identityFiles: [fleet.clientKeyPath], useAgent: false },
    }),
    'check',
  );
  const h = fleet.host('nuc-dl');
  const session = await connectHost(
    { name: h.name, address: h.address, port: h.port, user: 'root' },
    settings,
    {},
  );
  try {
    const { curl, wget } = (await probeHost(session, '/var/tmp')).facts.tools;
    probedTools = { curl, wget };
  } finally {
    await session.close();
  }
}, 120_000);

afterAll(async () => {
  await fleet?.stop();
});

beforeEach(async () => {
  // 4 MiB of incompressible image: a download cut midway has something left to continue.
  fake = await startFakeBalenaApi({
    apiKeys: [API_KEY],
    privateDeviceTypes: ['raspberrypi4-64'],
    imageGz: gzipSync(makeDiskImage(4 << 20)),
  });
  dir = mkdtempSync(join(tmpdir(), 'agent-host-dl-'));
  workDir = mkdtempSync('/var/tmp/bm-host-dl-');
  writeFileSync(join(dir, 'api-key'), `${API_KEY}\n`, { mode: 0o600 });
});

afterEach(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(workDir, { recursive: true, force: true });
});

function config(hostDownload: boolean) {
  return applyConfigOverrides(
    defaultMigrationConfig(dir),
    {
      mode: 'agent',
      agent: {
        apiUrl: fake.url,
        apiKeyFile: join(dir, 'api-key'),
        fleet: 'acme/lab',
        cacheDir: join(dir, 'cache'),
        hostDownload,
      },
      ssh: { knownHostsFile: fleet.knownHostsFile, identityFiles: [fleet.clientKeyPath], useAgent: false },
    },
    { cwd: dir },
  );
}

function target(): HostTarget {
  const h = fleet.host('nuc-dl');
  return { name: h.name, address: h.address, port: h.port, user: 'root', workDir };
}

/** Prepares agent mode (the laptop's download into the cache) and provisions the host. */
async function prepare(hostDownload = true): Promise<{
  settings: RunSettings;
  job: { target: HostTarget; agent: HostAgent };
  resources: RunResources;
}> {
  const cfg = config(hostDownload);
  const resources = new RunResources();
  const run = await resolveAgentRun({ config: cfg, targets: [target()], resources, log: () => {} });
  const hosts = await provisionAgentHosts(run, [target()], {
    command: 'run',
    runDir: join(dir, 'run'),
    resume: false,
    log: () => {},
  });
  const prepared = hosts.get('nuc-dl')!;
  // pretend: connect, probe, plan, upload and verify the payload; no boot change, no reboot
  const settings: RunSettings = { ...runSettingsFrom(cfg, 'run'), mode: 'pretend' };
  return { settings, job: prepared, resources };
}

/**
 * The upload phase for the host as run-host calls it (this machine cannot be planned for a
 * real migration, so the plan's payload is made here: the cached image and the host's
 * config.json), with the tools the probe reports on this host.
 */
async function upload(
  p: Awaited<ReturnType<typeof prepare>>,
  tools: HostDownloadTools = probedTools,
): Promise<{ bytesSent: number; hostDownload?: HostDownloadResult; payload: PayloadFile[]; logs: string[] }> {
  const image = p.job.target.image!;
  const config = readFileSync(p.job.target.configJson!);
  const payload: PayloadFile[] = [
    {
      role: 'image',
      source: { kind: 'file', path: image },
      remotePath: join(workDir, 'balena-image.img.gz'),
      sizeBytes: statSync(image).size,
      sha256: sha256(readFileSync(image)),
      mode: 0o600,
    },
    {
      role: 'config-json',
      source: { kind: 'bytes', data: config },
      remotePath: join(workDir, 'config.json'),
      sizeBytes: config.length,
      sha256: sha256(config),
      mode: 0o600,
    },
  ];
  const logs: string[] = [];
  const session = await connectHost(target(), p.settings, {});
  try {
    const dl = p.job.agent.imageDownload;
    const result = await uploadPayload(session, { payload } as Plan, undefined, {
      hostDownload: dl ? { download: dl, tools } : undefined,
      log: (m) => logs.push(m),
    });
    return { ...result, payload, logs };
  } finally {
    await session.close();
  }
}

/** Bytes of the payload files whose role passes `which`. */
function payloadBytes(payload: PayloadFile[], which: (role: string) => boolean): number {
  return payload.filter((f) => which(f.role)).reduce((n, f) => n + f.sizeBytes, 0);
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const imageOnHost = () => readFileSync(join(workDir, 'balena-image.img.gz'));

/** Requests the fake got for the image without a key: the host's. */
const hostDownloads = () => fake.requestsTo('GET', '/download').filter((r) => r.auth === 'none');

/** Samples every process's command line on this machine (the host too) for the API key. */
function watchForKey(): () => string[] {
  const hits = new Set<string>();
  const sample = () => {
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (cmd.includes(API_KEY)) hits.add(cmd.replace(/\0/g, ' '));
      } catch {}
    }
  };
  const timer = setInterval(sample, 20);
  return () => {
    clearInterval(timer);
    return [...hits];
  };
}

describe('hosts downloading the image themselves (agent.hostDownload)', () => {
  it('the probe reports curl and wget on a host that has them', async () => {
    expect(probedTools).toEqual({ curl: true, wget: true });
  });

  it('the host downloads the image with curl, without any credential, and the laptop pushes only the rest', async () => {
    const p = await prepare();
    const stop = watchForKey();
    const r = await upload(p);
    const keyInCmdlines = stop();
    expect(r.hostDownload).toEqual({ ok: true, tool: 'curl', attempts: 1, resumedFrom: [] });
    expect(sha256(imageOnHost())).toBe(sha256(fake.imageGz));
    // the image crossed the laptop's uplink once, into its cache: the push was the rest
    expect(r.bytesSent).toBe(payloadBytes(r.payload, (role) => role !== 'image'));
    expect(hostDownloads()).toHaveLength(1);
    expect(hostDownloads()[0]!.query).toContain('deviceType=genericx86-64-ext');
    expect(hostDownloads()[0]!.query).toContain(`version=${p.job.agent.device.osVersion}`);
    expect(r.logs.join('\n')).toMatch(/host downloaded the image itself with curl and it is verified/);
    expect(keyInCmdlines).toEqual([]);
  }, 120_000);

  it('continues a download cut midway with a Range request instead of starting over', async () => {
    const p = await prepare();
    const half = Math.floor(fake.imageGz.length / 2);
    fake.cutDownloads(half, 1);
    const r = await upload(p);
    expect(r.hostDownload).toMatchObject({ ok: true, tool: 'curl', attempts: 2 });
    const [first, second] = hostDownloads();
    expect(first!.range).toBeUndefined();
    const from = Number(/^bytes=(\d+)-$/.exec(second!.range ?? '')?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(half);
    expect(r.hostDownload?.ok && r.hostDownload.resumedFrom).toEqual([from]);
    expect(r.bytesSent).toBe(payloadBytes(r.payload, (role) => role !== 'image'));
    expect(sha256(imageOnHost())).toBe(sha256(fake.imageGz));
  }, 120_000);

  it('falls back to the push when the backend refuses the host the download', async () => {
    const p = await prepare();
    fake.failDownloads = 3;
    const r = await upload(p);
    expect(r.hostDownload).toMatchObject({ ok: false, tool: 'curl', attempts: 3 });
    expect(!r.hostDownload?.ok && r.hostDownload?.reason).toMatch(
      /stopped at 0 of \d+ bytes \(curl exited with 22/,
    );
    expect(r.bytesSent).toBe(payloadBytes(r.payload, () => true));
    expect(sha256(imageOnHost())).toBe(sha256(fake.imageGz));
    expect(readdirSync(workDir).filter((f) => f.endsWith('.download'))).toEqual([]);
  }, 120_000);

  it('falls back to the push when the host gets other bytes than the verified image', async () => {
    const p = await prepare();
    const other = Buffer.from(fake.imageGz);
    other[other.length >> 1]! ^= 0xff;
    fake.corruptAnonymousDownloads(other);
    const r = await upload(p);
    expect(r.hostDownload).toMatchObject({ ok: false, tool: 'curl', attempts: 1 });
    expect(!r.hostDownload?.ok && r.hostDownload?.reason).toContain(`sha256 ${sha256(other)}`);
    expect(r.bytesSent).toBe(payloadBytes(r.payload, () => true));
    expect(sha256(imageOnHost())).toBe(sha256(fake.imageGz));
    expect(readdirSync(workDir).filter((f) => f.endsWith('.download'))).toEqual([]);
  }, 120_000);

  it('falls back to the push when the host has neither curl nor wget, asking the backend nothing', async () => {
    const p = await prepare();
    const r = await upload(p, { curl: false, wget: false });
    expect(r.hostDownload).toEqual({
      ok: false,
      tool: null,
      attempts: 0,
      reason: 'the host has neither curl nor wget',
    });
    expect(hostDownloads()).toEqual([]);
    expect(r.bytesSent).toBe(payloadBytes(r.payload, () => true));
    expect(sha256(imageOnHost())).toBe(sha256(fake.imageGz));
  }, 120_000);

  it('pushes as before when the option is off: the host is never sent to the backend', async () => {
    const p = await prepare(false);
    expect(p.job.agent.imageDownload).toBeUndefined();
    const r = await upload(p);
    expect(r.hostDownload).toBeUndefined();
    expect(hostDownloads()).toEqual([]);
    expect(r.bytesSent).toBe(payloadBytes(r.payload, () => true));
  }, 120_000);
});

describe('the host-side download on its own', () => {
  async function session(settings: RunSettings) {
    return connectHost(target(), settings, {});
  }

  it("reports the host's progress while it downloads over a slow link", async () => {
    const p = await prepare();
    fake.throttle = { bytes: 512 * 1024, everyMs: 400 };
    const s = await session(p.settings);
    const seen: number[] = [];
    try {
      const dest = join(workDir, 'slow.gz');
      const r = await downloadOnHost(
        s,
        dest,
        0o600,
        p.job.agent.imageDownload!,
        { curl: true },
        () => {},
        (done) => seen.push(done),
      );
      expect(r).toMatchObject({ ok: true, tool: 'curl', attempts: 1 });
      expect(seen.length).toBeGreaterThanOrEqual(1);
      expect(seen.some((n) => n > 0 && n < fake.imageGz.length)).toBe(true);
      expect(seen).toEqual([...seen].sort((a, b) => a - b));
    } finally {
      await s.close();
    }
  }, 120_000);

  it('uses wget when the probe found no curl, and continues a cut download with it', async () => {
    const p = await prepare();
    fake.cutDownloads(Math.floor(fake.imageGz.length / 3), 1);
    const s = await session(p.settings);
    try {
      const dest = join(workDir, 'image.gz');
      const r = await downloadOnHost(
        s,
        dest,
        0o600,
        p.job.agent.imageDownload!,
        { curl: false, wget: true },
        () => {},
      );
      expect(r).toMatchObject({ ok: true, tool: 'wget', attempts: 2 });
      expect(sha256(readFileSync(dest))).toBe(sha256(fake.imageGz));
      expect(hostDownloads()[1]!.range).toMatch(/^bytes=\d+-$/);
    } finally {
      await s.close();
    }
  }, 120_000);

  it('gets no image of a private device type without a key, and says so', async () => {
    const p = await prepare();
    const s = await session(p.settings);
    try {
      const privateImage = {
        ...p.job.agent.imageDownload!,
        url: p.job.agent.imageDownload!.url.replace('genericx86-64-ext', 'raspberrypi4-64'),
      };
      const r = await downloadOnHost(s, join(workDir, 'x.gz'), 0o600, privateImage, { curl: true }, () => {});
      expect(r.ok).toBe(false);
      expect(!r.ok && r.reason).toMatch(/curl exited with 22/);
      expect(hostDownloads().every((q) => q.auth === 'none')).toBe(true);
    } finally {
      await s.close();
    }
  }, 120_000);
});
