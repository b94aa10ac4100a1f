import { describe, expect, it } from 'vitest';
import type { NetworkPlan } from '../../orchestrator/network/plan-network.ts';
import { wantedModules } from '../../orchestrator/phases/payload.ts';
import { printablePlan } from '../../orchestrator/phases/run-host.ts';
import type { Plan, PlanInput } from '../../orchestrator/plan/plan.ts';
import { planGrubBoot } from '../../orchestrator/platform/grub.ts';
import { watchdogToKick } from '../../orchestrator/platform/stage2-common.ts';
import { checkStage2Config } from '../../stage2/build/stage2-config.ts';
import { factsFixture } from '../fixtures/facts-plans.ts';

// What the GRUB planner tells stage2 beyond the disk: the image format and its raw hash, the
// network files, the watchdog to kick, where else to keep the log, and a rehearsal.

const MiB = 1024 * 1024;

function input(edit: (i: PlanInput) => void = () => {}): PlanInput {
  const i: PlanInput = {
    hostName: 'vm',
    facts: factsFixture('debian-bookworm-bios-virtio'),
    mode: 'standalone',
    image: {
      path: '/op/balena.img.xz',
      compression: 'xz',
      fileSizeBytes: 200 * MiB,
      fileSha256: 'a1'.repeat(32),
      rawSizeBytes: 1536 * MiB,
      rawSha256: 'b2'.repeat(32),
      decoderMemoryBytes: 65 * MiB,
    },
    configJson: { path: '/op/config.json', sizeBytes: 1000, sha256: 'c3'.repeat(32) },
    workDir: '/var/tmp/balena-migrate',
    kernel: { source: 'host' },
    initramfs: { data: Buffer.from('initramfs'), sha256: 'd4'.repeat(32) },
    failMode: 'reboot',
    ramMarginBytes: 64 * MiB,
    timestamp: '20261126T041500Z',
  };
  edit(i);
  return i;
}

function plan(i: PlanInput): Plan {
  const r = planGrubBoot(i);
  if (!r.ok) throw new Error(r.reasons.join(' | '));
  return r.plan;
}

const network: NetworkPlan = {
  files: [
    {
      name: 'bm-net-01-home.nmconnection',
      data: Buffer.from('[connection]\nid=home\n'),
      sha256: 'e5'.repeat(32),
      what: 'Wi-Fi home',
    },
    {
      name: 'bm-net-02-eth0.nmconnection',
      data: Buffer.from('[connection]\nid=eth0\n'),
      sha256: 'f6'.repeat(32),
      what: 'wired eth0',
    },
  ],
  notes: ['network: bm-net-01-home.nmconnection: Wi-Fi home'],
  reasons: [],
  usable: true,
};

describe('the stage2 config beyond the disk', () => {
  it('names the image by its format and hands stage2 the raw sha256 to read the disk back against', () => {
    for (const [compression, name] of [
      ['none', 'balena-image.img'],
      ['gzip', 'balena-image.img.gz'],
      ['xz', 'balena-image.img.xz'],
      ['zip', 'balena-image.zip'],
    ] as const) {
      const p = plan(
        input((i) => {
          i.image.compression = compression;
        }),
      );
      expect(p.stage2Config).toMatchObject({
        image_file: name,
        image_compression: compression,
        image_raw_sha256: 'b2'.repeat(32),
      });
      expect(p.payload[0]?.remotePath).toBe(`/var/tmp/balena-migrate/${name}`);
      expect(checkStage2Config(p.stage2Config)).toEqual([]);
    }
  });

  it("adds the xz decoder's memory to the RAM stage2 keeps free, and refuses when it does not fit", () => {
    const p = plan(input());
    expect(p.stage2Config.ram_margin).toBe(64 * MiB + 65 * MiB);
    expect(p.ram.neededBytes).toBe(200 * MiB + 1000 + MiB + 64 * MiB + 65 * MiB);
    const r = planGrubBoot(
      input((i) => {
        i.facts.memory.availableBytes = 300 * MiB;
      }),
    );
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(r.reasons.join('\n')).toMatch(
        /needs 330.0 MiB .* \+ 65.0 MiB for the xz decoder\), but only 300.0 MiB is available/,
      );
  });

  it('uploads the network files 0600 next to the image, lists them with their hashes and counts them in RAM', () => {
    const p = plan(
      input((i) => {
        i.network = network;
      }),
    );
    expect(p.payload.filter((f) => f.role === 'network')).toEqual([
      expect.objectContaining({
        remotePath: '/var/tmp/balena-migrate/bm-net-01-home.nmconnection',
        mode: 0o600,
        sha256: 'e5'.repeat(32),
      }),
      expect.objectContaining({
        remotePath: '/var/tmp/balena-migrate/bm-net-02-eth0.nmconnection',
        mode: 0o600,
        sha256: 'f6'.repeat(32),
      }),
    ]);
    expect(p.stage2Config).toMatchObject({
      network_files: 'bm-net-01-home.nmconnection bm-net-02-eth0.nmconnection',
      network_sha256: `${'e5'.repeat(32)} ${'f6'.repeat(32)}`,
    });
    expect(p.ram.neededBytes).toBe(plan(input()).ram.neededBytes + 21 + 21);
    expect(p.notes).toContain('network: bm-net-01-home.nmconnection: Wi-Fi home');
  });

  it("keeps the network files' content out of the plan a report shows: sizes and hashes only", () => {
    const secret = { ...network.files[0]!, data: Buffer.from('[wifi-security]\npsk=do-not-print-me\n') };
    const p = plan(
      input((i) => {
        i.network = { ...network, files: [secret] };
      }),
    );
    const shown = JSON.stringify(printablePlan(p));
    expect(shown).not.toContain('do-not-print-me');
    expect(shown).toContain(`"sizeBytes":${secret.data.length}`);
  });

  it('refuses with the network verdict when balenaOS would not reach the network', () => {
    const r = planGrubBoot(
      input((i) => {
        i.network = { ...network, reasons: ['no usable network configuration for balenaOS: ...'] };
      }),
    );
    expect(r).toEqual({ ok: false, reasons: ['no usable network configuration for balenaOS: ...'] });
  });

  it('asks stage2 to kick the watchdog the old OS keeps running, and carries its driver', () => {
    const running = input((i) => {
      i.facts.watchdog = {
        devices: [
          {
            device: '/dev/watchdog0',
            state: 'active',
            identity: 'iTCO_wdt',
            timeoutSeconds: 30,
            module: 'iTCO_wdt',
          },
        ],
        systemdRuntime: '30s',
        daemon: null,
      };
    });
    expect(plan(running).stage2Config.watchdog).toBe('/dev/watchdog0');
    expect(plan(running).notes).toContain(
      'watchdog: stage2 kicks /dev/watchdog0 while it works: /dev/watchdog0 is running (kept by systemd (RuntimeWatchdogUSec=30s))',
    );
    expect(wantedModules(running.facts)).toContain('iTCO_wdt');
    // a watchdog nobody started is left alone: opening it would start it
    const idle = input((i) => {
      i.facts.watchdog = {
        devices: [
          {
            device: '/dev/watchdog0',
            state: 'inactive',
            identity: 'i6300ESB',
            timeoutSeconds: 30,
            module: 'i6300esb',
          },
        ],
        systemdRuntime: '0',
        daemon: null,
      };
    });
    expect(plan(idle).stage2Config.watchdog).toBe('');
    expect(wantedModules(idle.facts)).not.toContain('i6300esb');
    // an older kernel that does not say: systemd or a daemon using it decides
    const daemon = input((i) => {
      i.facts.watchdog = {
        devices: [
          {
            device: '/dev/watchdog1',
            state: null,
            identity: null,
            timeoutSeconds: null,
            module: 'bcm2835_wdt',
          },
        ],
        systemdRuntime: '0',
        daemon: 'watchdog',
      };
    });
    expect(watchdogToKick(daemon.facts)).toMatchObject({ device: '/dev/watchdog1', module: 'bcm2835_wdt' });
  });

  it('saves the log on a log device only when it is on the host, off the install disk and mountable', () => {
    const withStick = (spec: string) =>
      input((i) => {
        i.logDevice = spec;
        i.facts.blockDevices.push(
          {
            name: 'sdb',
            type: 'disk',
            parent: null,
            sizeBytes: 8 * 1024 * MiB,
            partNumber: null,
            ptType: 'dos',
            uuid: null,
            partuuid: null,
            label: null,
            fstype: null,
            removable: true,
            readOnly: false,
          },
          {
            name: 'sdb1',
            type: 'part',
            parent: 'sdb',
            sizeBytes: 8 * 1024 * MiB,
            partNumber: 1,
            ptType: null,
            uuid: '1A2B-3C4D',
            partuuid: 'abcd0001-01',
            label: 'BM-LOGS',
            fstype: 'vfat',
            removable: true,
            readOnly: false,
          },
        );
      });
    expect(plan(withStick('LABEL=BM-LOGS')).stage2Config.log_device).toBe('LABEL=BM-LOGS');
    expect(plan(withStick('UUID=1a2b-3c4d')).stage2Config.log_device).toBe('UUID=1a2b-3c4d');
    const missing = planGrubBoot(withStick('LABEL=NOPE'));
    expect(missing.ok ? [] : missing.reasons).toEqual([
      'stage2.logDevice LABEL=NOPE is not on this host: plug it in, or leave logDevice out',
    ]);
    const root = input().facts.blockDevices.find((b) => b.type === 'part' && b.uuid)!;
    const onInstall = planGrubBoot(withStick(`UUID=${root.uuid}`));
    expect(onInstall.ok ? [] : onInstall.reasons.join()).toMatch(
      /is vda1, on the install disk vda, which stage2 overwrites/,
    );
  });

  it('tells stage2 to rehearse with stage2.pretend, while the orchestrator still applies and reboots', () => {
    const p = plan(
      input((i) => {
        i.stage2Pretend = true;
      }),
    );
    expect(p.stage2Config.mode).toBe('pretend');
    expect(p.oneShot.argv).toEqual(['/usr/sbin/grub-reboot', 'balena-migrate-stage2']);
    expect(p.notes).toContain(
      'stage2 pretend: stage2 checks everything, writes nothing and boots the old OS again',
    );
  });
});
