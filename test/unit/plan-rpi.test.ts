import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Facts } from '../../orchestrator/facts/facts.ts';
import { parseStage2Config, restorePairs } from '../../stage2/build/stage2-config.ts';
import { expectGolden, goldenJson } from '../fixtures/golden-plans.ts';
import { plan, reasons, SYSROOTS, sysrootInput, written } from '../fixtures/sysroot-plans.ts';

// The Raspberry Pi boot manager: stage2 boots the host's own kernel from balena-migrate/ on
// the FAT boot partition, through tryboot.txt and a one-shot `reboot '0 tryboot'` where the
// firmware has it, else through a section at the end of config.txt that stage2 takes back first.

const TS = '20261126T041500Z';
const fixtureFile = (name: string, path: string): string =>
  readFileSync(join(SYSROOTS, name, path), 'latin1');

const SECTION_64 = (why: string) =>
  [
    '',
    `# balena-migrate: boot the stage2 migration environment (${why})`,
    '[all]',
    'kernel=balena-migrate/kernel.img',
    'initramfs balena-migrate/initramfs.gz followkernel',
    'cmdline=balena-migrate/cmdline.txt',
    'arm_64bit=1',
    '',
  ].join('\n');

describe('Raspberry Pi golden plans', () => {
  it('plans Raspberry Pi OS bookworm on a Pi 4 (tryboot) exactly as the golden file says', () => {
    expectGolden(
      'rpi4-raspios-bookworm.json',
      goldenJson(plan(sysrootInput('rpi4-raspios-bookworm', 'raspberrypi4-64'))),
    );
  });

  it('plans Raspberry Pi OS bullseye on a Pi 3 B+ (config.txt) exactly as the golden file says', () => {
    expectGolden(
      'rpi3bplus-raspios-bullseye.json',
      goldenJson(plan(sysrootInput('rpi3bplus-raspios-bullseye', 'raspberrypi3'))),
    );
  });

  it('plans Ubuntu on a Pi 4 with an old bootloader (config.txt) exactly as the golden file says', () => {
    expectGolden(
      'rpi4-ubuntu-2204.json',
      goldenJson(plan(sysrootInput('rpi4-ubuntu-2204', 'raspberrypi4-64'))),
    );
  });
});

describe('tryboot on a Pi 4 with a bootloader that has it', () => {
  const p = plan(sysrootInput('rpi4-raspios-bookworm', 'raspberrypi4-64'));

  it('writes tryboot.txt as config.txt plus the stage2 section and never touches config.txt', () => {
    expect(written(p, '/boot/firmware/tryboot.txt')).toBe(
      fixtureFile('rpi4-raspios-bookworm', 'boot/firmware/config.txt') +
        SECTION_64('read by the firmware for one tryboot reboot only'),
    );
    expect(p.steps.some((s) => s.kind === 'write' && s.path === '/boot/firmware/config.txt')).toBe(false);
  });

  it('reboots with the one-shot tryboot flag', () => {
    expect(p.oneShot).toEqual({ mechanism: 'rpi-tryboot', argv: ['reboot', '0 tryboot'] });
    expect(p.rebootArgument).toBe('0 tryboot');
  });

  it('takes the steps in a safe order: stage2 files first, tryboot.txt last', () => {
    expect(p.steps.map((s) => s.description)).toEqual([
      'create /boot/firmware/balena-migrate for the stage2 kernel and initramfs',
      "copy the host's own kernel /boot/vmlinuz-6.6.20+rpt-rpi-v8",
      'copy the stage2 initramfs',
      "write stage2's kernel command line /boot/firmware/balena-migrate/cmdline.txt",
      'write the stage2 config /boot/firmware/balena-stage2.yml',
      'check that /boot/firmware/config.txt is still what was probed (tryboot.txt is made from it)',
      "write /boot/firmware/tryboot.txt: config.txt with stage2's kernel, initramfs and cmdline, for one tryboot reboot",
    ]);
  });

  it("boots stage2 with root= the boot partition's PARTUUID on the consoles the host uses", () => {
    expect(written(p, '/boot/firmware/balena-migrate/cmdline.txt')).toBe(
      'console=ttyS0,115200 console=tty1 root=PARTUUID=4e639091-01 rootwait panic=10\n',
    );
  });

  it('has stage2 remove the tryboot.txt it did not find, and clean up its files on the way back', () => {
    const cfg = parseStage2Config(written(p, '/boot/firmware/balena-stage2.yml'));
    expect(restorePairs(cfg)).toEqual([{ from: '', to: 'tryboot.txt' }]);
    expect(cfg.cleanup).toBe('balena-migrate balena-stage2.yml');
    expect(cfg.grubenv).toBe('');
    expect(cfg.install_disk_of).toBe('UUID=56f80fa2-e005-4cca-86e6-19da1069914d');
  });

  it('backs up a tryboot.txt that was there and has stage2 put it back', () => {
    const q = plan(
      sysrootInput('rpi4-raspios-bookworm', 'raspberrypi4-64', (i) => {
        i.facts.boot!.files.push({
          path: '/boot/firmware/tryboot.txt',
          sizeBytes: 14,
          contentBase64: Buffer.from('os_prefix=b/\n\n').toString('base64'),
        });
      }),
    );
    expect(q.steps.at(-2)).toMatchObject({
      kind: 'copy',
      from: '/boot/firmware/tryboot.txt',
      to: `/boot/firmware/tryboot.txt.${TS}`,
    });
    expect(restorePairs(q.stage2Config)).toEqual([{ from: `tryboot.txt.${TS}`, to: 'tryboot.txt' }]);
  });

  it('uses tryboot on a Pi 5 whatever the bootloader says', () => {
    const q = plan(
      sysrootInput('rpi4-raspios-bookworm', 'raspberrypi5', (i) => {
        i.facts.hardware = {
          ...i.facts.hardware,
          cpuRevision: 'd04170',
          dtModel: 'Raspberry Pi 5 Model B Rev 1.0',
          dtCompatible: ['raspberrypi,5-model-b', 'brcm,bcm2712'],
          bootloaderTimestamp: null,
        };
      }),
    );
    expect([q.deviceType, q.oneShot.mechanism]).toEqual(['raspberrypi5', 'rpi-tryboot']);
  });
});

describe('config.txt on a Pi without tryboot', () => {
  const p = plan(sysrootInput('rpi3bplus-raspios-bullseye', 'raspberrypi3'));
  const configTxt = fixtureFile('rpi3bplus-raspios-bullseye', 'boot/config.txt');

  it('backs config.txt up to config.txt.TIMESTAMP, checked against what was probed, then adds the section last', () => {
    expect(p.steps.slice(-2)).toEqual([
      {
        kind: 'copy',
        from: '/boot/config.txt',
        to: `/boot/config.txt.${TS}`,
        mode: 0o755,
        description: `back up /boot/config.txt to /boot/config.txt.${TS} (and check it is still what was probed)`,
        sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      },
      {
        kind: 'write',
        path: '/boot/config.txt',
        // the file had no final newline: one is added before the section
        content: `${configTxt}\n${[
          '',
          `# balena-migrate: boot the stage2 migration environment (one boot: stage2 moves config.txt.${TS} back over this file first)`,
          '[all]',
          'kernel=balena-migrate/kernel.img',
          'initramfs balena-migrate/initramfs.gz followkernel',
          'cmdline=balena-migrate/cmdline.txt',
          'arm_64bit=0',
          '',
        ].join('\n')}`,
        mode: 0o755,
        description: 'add the stage2 section to /boot/config.txt: the next boot starts stage2',
      },
    ]);
    expect(configTxt.endsWith('\n')).toBe(false);
  });

  it('leaves cmdline.txt alone: the section names stage2 its own', () => {
    const touched = p.steps.map((s) => (s.kind === 'write' ? s.path : s.kind === 'copy' ? s.to : ''));
    expect(touched).not.toContain('/boot/cmdline.txt');
    expect(touched).toContain('/boot/balena-migrate/cmdline.txt');
  });

  it('has stage2 move config.txt.TIMESTAMP back over config.txt before anything else', () => {
    expect(restorePairs(p.stage2Config)).toEqual([{ from: `config.txt.${TS}`, to: 'config.txt' }]);
    expect(p.oneShot.mechanism).toBe('rpi-config-txt');
    expect(p.rebootArgument).toBeUndefined();
  });

  it("boots the firmware's kernel7.img of the running 6.1.21-v7+ kernel when there is no /boot/vmlinuz", () => {
    expect(p.steps[1]).toMatchObject({
      kind: 'copy',
      from: '/boot/kernel7.img',
      to: '/boot/balena-migrate/kernel.img',
    });
  });

  it('falls back to config.txt on a Pi 4 whose bootloader predates tryboot, and says why', () => {
    const q = plan(sysrootInput('rpi4-ubuntu-2204', 'raspberrypi4-64'));
    expect(q.oneShot.mechanism).toBe('rpi-config-txt');
    expect(q.notes.join('\n')).toContain(
      'no one-shot: the bootloader EEPROM (2020-09-03) predates tryboot (2021-03-18); update it with rpi-eeprom-update',
    );
    // Ubuntu names its own kernel, initramfs and cmdline in config.txt: the section's come later and win
    expect(written(q, '/boot/firmware/config.txt')).toMatch(
      /kernel=vmlinuz\n[\s\S]*kernel=balena-migrate\/kernel.img\n/,
    );
  });
});

describe('Raspberry Pi refusals', () => {
  const edit = (name: string, f: (facts: Facts) => void) =>
    reasons(
      sysrootInput(name, name.startsWith('rpi3') ? 'raspberrypi3' : 'raspberrypi4-64', (i) => f(i.facts)),
    );

  it('refuses when no boot partition with config.txt is mounted', () => {
    expect(
      edit('rpi4-raspios-bookworm', (f) => {
        f.boot!.firmwareDir = null;
      }),
    ).toContain(
      'no Raspberry Pi boot partition: neither /boot/firmware/config.txt nor /boot/config.txt is on a mounted FAT ' +
        'partition; mount the boot partition (the first, FAT one) at /boot/firmware and re-run',
    );
  });

  it('refuses a config.txt that moves the kernel with os_prefix', () => {
    const r = edit('rpi3bplus-raspios-bullseye', (f) => {
      const file = f.boot!.files.find((x) => x.path === '/boot/config.txt')!;
      file.contentBase64 = Buffer.from('os_prefix=current/\n[all]\n').toString('base64');
    });
    expect(r).toEqual([
      '/boot/config.txt sets os_prefix, which moves where the firmware looks for the kernel and initramfs; ' +
        'stage2 cannot be booted from balena-migrate/ with it',
    ]);
  });

  it('refuses a config.txt it could not read, since its new content cannot be planned', () => {
    const r = edit('rpi3bplus-raspios-bullseye', (f) => {
      f.boot!.files.find((x) => x.path === '/boot/config.txt')!.contentBase64 = null;
    });
    expect(r).toEqual([
      '/boot/config.txt could not be read (over 64 KiB?): its exact new content cannot be planned',
    ]);
  });

  it('refuses a Pi that boots from one disk while / is on another', () => {
    const r = edit('rpi4-raspios-bookworm', (f) => {
      f.blockDevices.push({ ...f.blockDevices[0]!, name: 'sda', majMin: '8:0' });
      const root = f.blockDevices.find((b) => b.name === 'mmcblk0p2')!;
      root.parent = 'sda';
    });
    expect(r).toContain(
      'the boot partition mmcblk0p1 is on mmcblk0, but / is on sda: balenaOS would be written to a disk this Pi does not boot from',
    );
  });

  it('refuses a kernel with no image to boot', () => {
    const r = edit('rpi3bplus-raspios-bullseye', (f) => {
      f.boot!.files = f.boot!.files.filter((x) => x.path !== '/boot/kernel7.img');
    });
    expect(r[0]).toMatch(
      /^the running kernel 6.1.21-v7\+ has no image: neither \/boot\/vmlinuz-6.1.21-v7\+ nor \/boot\/kernel7.img exists/,
    );
  });

  it('refuses an image for another board before planning anything', () => {
    const r = reasons(sysrootInput('rpi4-raspios-bookworm', 'beaglebone-black'));
    expect(r[0]).toMatch(
      /^the image is for beaglebone-black \(its device-type.json\), but this host is a Raspberry Pi 4 Model B/,
    );
  });
});
