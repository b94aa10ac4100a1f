import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceTypeJson, makeBootImage } from '../fixtures/balena-boot-image.ts';
import { SYSROOTS, sysrootFacts } from '../fixtures/sysroot-plans.ts';
import { ensureArmhfBusybox } from '../helpers/busybox-armhf.ts';

// `balena-migrate check --sysroot DIR` and `check --facts FILE`: the real CLI plans hosts it
// never connects to, with the real image (its device type read from it) and config.json.

const CLI = join(import.meta.dirname, '../../bin/balena-migrate.js');
let dir: string;
let image: string;
/** the fixtures are 32-bit ARM hosts: stage2 gets Debian's armhf busybox */
let busybox: string;

beforeAll(async () => {
  busybox = await ensureArmhfBusybox();
  dir = mkdtempSync(join(tmpdir(), 'check-offline-'));
  image = makeBootImage(dir, 'balena-raspberrypi3.img', {
    deviceTypeJson: deviceTypeJson('raspberrypi3'),
    dataMiB: 1,
  }).path;
  execFileSync('gzip', [image]);
  image = `${image}.gz`;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ deviceType: 'raspberrypi3', uuid: 'abc' }));
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], withBusybox = busybox): { status: number | null; out: string } {
  const r = spawnSync(
    process.execPath,
    [
      CLI,
      'check',
      '--image',
      image,
      '--config-json',
      join(dir, 'config.json'),
      '--busybox',
      withBusybox,
      ...args,
    ],
    { encoding: 'utf8', cwd: dir, timeout: 60_000 },
  );
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('check without a connection', () => {
  it('plans a sysroot of Raspberry Pi OS on a Pi 3 B+ with the image read for its device type, and exits 0', () => {
    const r = cli(['--sysroot', join(SYSROOTS, 'rpi3bplus-raspios-bullseye')]);
    expect(r.out).toContain('rpi3bplus-raspios-bullseye (offline:0): ready');
    expect(r.out).toContain('device type raspberrypi3, boot manager rpi, install disk mmcblk0');
    expect(r.out).toContain('add the stage2 section to /boot/config.txt: the next boot starts stage2');
    expect(r.out).toContain('1 of 1 hosts ready');
    expect(r.status).toBe(0);
  });

  it('plans from a facts file as `probe -o` saves it', () => {
    const facts = join(dir, 'pi3.json');
    writeFileSync(facts, `${JSON.stringify(sysrootFacts('rpi3bplus-raspios-bullseye'), null, 2)}\n`);
    const r = cli(['--facts', facts]);
    expect(r.out).toContain('pi3 (offline:0): ready');
    expect(r.out).toContain('offline: the initramfs holds no kernel modules (no --modules-dir)');
    expect(r.status).toBe(0);
  });

  it('refuses the image on a host of another board and exits 1', () => {
    const r = cli(['--sysroot', join(SYSROOTS, 'bbb-debian11-emmc')]);
    expect(r.out).toContain('bbb-debian11-emmc (offline:0): refused');
    expect(r.out).toMatch(
      /✗ the image is for raspberrypi3 \(its device-type.json\), but this host is a BeagleBone Black/,
    );
    expect(r.status).toBe(1);
  });

  it('plans it anyway with --allow-device-type-mismatch, and warns', () => {
    const r = cli(['--sysroot', join(SYSROOTS, 'bbb-debian11-emmc'), '--allow-device-type-mismatch']);
    expect(r.out).toContain('bbb-debian11-emmc (offline:0): ready');
    expect(r.out).toContain('note: WARNING (allowDeviceTypeMismatch): the image is for raspberrypi3');
    expect(r.status).toBe(0);
  });

  it('refuses a host whose architecture the stage2 busybox is not built for', () => {
    const r = cli(['--sysroot', join(SYSROOTS, 'rpi3bplus-raspios-bullseye')], '/bin/busybox');
    expect(r.out).toContain(
      '✗ the stage2 busybox /bin/busybox is built for x86_64, but this host runs armv7l',
    );
    expect(r.status).toBe(1);
  });

  it('says what is wrong with a file that is not facts, and exits 2', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"probeVersion": 1}');
    const r = cli(['--facts', bad]);
    expect(r.out).toMatch(/bad.json is not a facts file: hostname: /);
    expect(r.status).toBe(2);
  });
});
