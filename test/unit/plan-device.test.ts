import { describe, expect, it } from 'vitest';
import type { Facts } from '../../orchestrator/facts/facts.ts';
import type { PlanInput } from '../../orchestrator/plan/plan.ts';
import { chooseDevice, DEVICE_RULES, type DeviceRule } from '../../orchestrator/platform/device.ts';
import { planMigration } from '../../orchestrator/platform/plan-migration.ts';
import { factsFixture } from '../fixtures/facts-plans.ts';

describe('chooseDevice', () => {
  it('makes an x86_64 BIOS host a genericx86-64-ext booted through GRUB', () => {
    expect(chooseDevice(factsFixture('debian-bookworm-bios-virtio'))).toMatchObject({
      ok: true,
      device: { ruleId: 'x86_64-pc', deviceType: 'genericx86-64-ext', bootManager: 'grub' },
    });
  });

  it('makes an x86_64 UEFI host a genericx86-64-ext booted through GRUB too', () => {
    const choice = chooseDevice(factsFixture('ubuntu-nuc-uefi-separate-boot'));
    expect(choice.ok && choice.device.deviceType).toBe('genericx86-64-ext');
  });

  it('makes a Raspberry Pi 4 a raspberrypi4-64 booted by the Raspberry Pi firmware', () => {
    expect(chooseDevice(factsFixture('raspberry-pi-4-bookworm'))).toMatchObject({
      ok: true,
      device: { ruleId: 'rpi4', deviceType: 'raspberrypi4-64', bootManager: 'rpi' },
    });
  });

  it('refuses a board it does not know, naming what it is and what is supported', () => {
    const f = factsFixture('raspberry-pi-4-bookworm');
    f.arch = 'riscv64';
    f.hardware = {
      ...f.hardware,
      dtModel: 'SiFive HiFive Unmatched A00',
      dtCompatible: ['sifive,hifive-unmatched-a00'],
      cpuModel: null,
    };
    const choice = chooseDevice(f);
    expect(choice.ok).toBe(false);
    expect(!choice.ok && choice.reasons[0]).toMatch(
      /^no supported device type for this host, riscv64 with devicetree firmware \(SiFive HiFive Unmatched A00\), compatible sifive,hifive-unmatched-a00: supported are Raspberry Pi 1 .*; leave this host out of the run until its platform is supported$/,
    );
  });

  it('refuses a host that already runs balenaOS', () => {
    const f = factsFixture('debian-bookworm-bios-virtio');
    f.os = { id: 'balena-os', versionId: '5.1.20', prettyName: 'balenaOS 5.1.20', isBalenaOS: true };
    expect(chooseDevice(f)).toEqual({
      ok: false,
      reasons: ['the host already runs balenaOS (balenaOS 5.1.20): there is nothing to migrate'],
    });
  });

  it('takes a new platform as one more row of the table', () => {
    const board: DeviceRule = {
      id: 'visionfive2',
      name: 'StarFive VisionFive 2',
      family: 'beaglebone',
      compatible: ['starfive,visionfive-2-v1.3b'],
      arch: ['riscv64'],
      deviceType: 'starfive-visionfive2',
      alternatives: [],
      bootManager: 'uboot',
    };
    const f = factsFixture('raspberry-pi-4-bookworm');
    f.arch = 'riscv64';
    f.hardware = {
      ...f.hardware,
      dtModel: null,
      cpuRevision: null,
      dtCompatible: ['starfive,visionfive-2-v1.3b', 'starfive,jh7110'],
    };
    expect(chooseDevice(f, [...DEVICE_RULES, board])).toMatchObject({
      ok: true,
      device: { ruleId: 'visionfive2', deviceType: 'starfive-visionfive2', bootManager: 'uboot' },
    });
  });
});

describe('planMigration', () => {
  const input = (f: Facts): PlanInput => ({
    hostName: 'h',
    facts: f,
    mode: 'standalone',
    image: {
      path: '/i.img.gz',
      compression: 'gzip',
      fileSizeBytes: 200 << 20,
      fileSha256: 'a'.repeat(64),
      rawSizeBytes: 1 << 30,
      rawSha256: 'b'.repeat(64),
    },
    configJson: { path: '/c.json', sizeBytes: 900, sha256: 'c'.repeat(64) },
    workDir: '/var/tmp/balena-migrate',
    kernel: { source: 'host' },
    initramfs: { data: Buffer.from('x'), sha256: 'd'.repeat(64) },
    failMode: 'rescue-shell',
    ramMarginBytes: 64 << 20,
    timestamp: '20261126T041500Z',
  });

  it('plans an x86_64 host with the GRUB boot manager and the chosen device type', () => {
    const r = planMigration(input(factsFixture('debian-bookworm-bios-virtio')));
    expect(r.ok && [r.plan.deviceType, r.plan.bootManager, r.plan.stage2Config.fail_mode]).toEqual([
      'genericx86-64-ext',
      'grub',
      'rescue-shell',
    ]);
  });

  it('refuses with the device reason before any boot manager looks at the host', () => {
    const f = factsFixture('raspberry-pi-4-bookworm');
    f.arch = 'riscv64';
    f.hardware = {
      ...f.hardware,
      dtModel: null,
      cpuRevision: null,
      dtCompatible: ['sifive,hifive-unmatched-a00'],
    };
    const r = planMigration(input(f));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reasons).toHaveLength(1);
  });

  it('refuses Secure Boot on any platform, before the boot manager plans', () => {
    const f = factsFixture('debian-bookworm-bios-virtio');
    f.firmware = { type: 'uefi', secureBoot: true };
    expect(planMigration(input(f))).toEqual({
      ok: false,
      reasons: [
        'Secure Boot is enabled: the stage2 kernel and initramfs are not signed for it and would not boot; ' +
          'disable Secure Boot in the firmware setup, then run check again',
      ],
    });
  });
});
