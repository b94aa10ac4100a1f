import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Facts } from '../../orchestrator/facts/facts.ts';
import { parseFacts } from '../../orchestrator/facts/parse.ts';
import type { PlanInput } from '../../orchestrator/plan/plan.ts';
import { chooseDevice, DEVICE_RULES, type DeviceRule } from '../../orchestrator/platform/device.ts';
import { planMigration } from '../../orchestrator/platform/plan-migration.ts';

const facts = (name: string): Facts =>
  parseFacts(readFileSync(join(import.meta.dirname, '../fixtures/facts', `${name}.txt`), 'utf8'));

describe('chooseDevice', () => {
  it('makes an x86_64 BIOS host a genericx86-64-ext booted through GRUB', () => {
    expect(chooseDevice(facts('debian-bookworm-bios-virtio'))).toEqual({
      ok: true,
      device: { ruleId: 'x86_64-grub', deviceType: 'genericx86-64-ext', bootManager: 'grub' },
    });
  });

  it('makes an x86_64 UEFI host a genericx86-64-ext booted through GRUB too', () => {
    const choice = chooseDevice(facts('ubuntu-nuc-uefi-separate-boot'));
    expect(choice.ok && choice.device.deviceType).toBe('genericx86-64-ext');
  });

  it('refuses a Raspberry Pi for now, naming what it is and what is supported', () => {
    expect(chooseDevice(facts('raspberry-pi-4-bookworm'))).toEqual({
      ok: false,
      reasons: [
        'no supported device type for this host, aarch64 with devicetree firmware (Raspberry Pi 4 Model B Rev 1.4): ' +
          'supported so far are x86_64 PCs with BIOS or UEFI firmware booting through GRUB (genericx86-64-ext); ' +
          'leave this host out of the run until its platform is supported',
      ],
    });
  });

  it('refuses a host that already runs balenaOS', () => {
    const f = facts('debian-bookworm-bios-virtio');
    f.os = { id: 'balena-os', versionId: '5.1.20', prettyName: 'balenaOS 5.1.20', isBalenaOS: true };
    expect(chooseDevice(f)).toEqual({
      ok: false,
      reasons: ['the host already runs balenaOS (balenaOS 5.1.20): there is nothing to migrate'],
    });
  });

  it('takes a new platform as one more row of the table', () => {
    const pi4: DeviceRule = {
      id: 'raspberrypi4-64',
      description: 'Raspberry Pi 4 on a 64-bit OS',
      arch: ['aarch64'],
      firmware: ['devicetree'],
      matches: (f) => f.hardware.dtCompatible.includes('raspberrypi,4-model-b'),
      deviceType: 'raspberrypi4-64',
      bootManager: 'rpi',
    };
    expect(chooseDevice(facts('raspberry-pi-4-bookworm'), [...DEVICE_RULES, pi4])).toEqual({
      ok: true,
      device: { ruleId: 'raspberrypi4-64', deviceType: 'raspberrypi4-64', bootManager: 'rpi' },
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
    const r = planMigration(input(facts('debian-bookworm-bios-virtio')));
    expect(r.ok && [r.plan.deviceType, r.plan.bootManager, r.plan.stage2Config.fail_mode]).toEqual([
      'genericx86-64-ext',
      'grub',
      'rescue-shell',
    ]);
  });

  it('refuses with the device reason before any boot manager looks at the host', () => {
    const r = planMigration(input(facts('raspberry-pi-4-bookworm')));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reasons).toHaveLength(1);
  });
});
