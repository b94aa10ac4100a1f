import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootQemu,
  buildScenario,
  buildTestInitramfs,
  bytesOf,
  checkExt4,
  HOST_DISK_MiB,
  HOST_ROOT_OFFSET,
  listFat,
  type QemuRun,
  readExt4File,
  readFatFile,
  type Scenario,
  tail,
  WORK_PATH,
} from '../fixtures/stage2/vm.ts';
import { ensureTestKernel, type TestKernel } from '../helpers/kernel.ts';

// Stage2 for real: Debian's cloud kernel boots our initramfs under QEMU (TCG) with the disks
// stage 1 would leave behind, and the disks are inspected after QEMU has exited.

const MiB = 1024 * 1024;
/** QEMU gives up after 120 s; the disk building and checks around it need less than a minute */
const VM_TEST_MS = 180_000;
let kernel: TestKernel;
let initrd: string;
let scratch: string;

beforeAll(async () => {
  kernel = await ensureTestKernel();
  scratch = await mkdtemp(join(tmpdir(), 'stage2-flash-'));
  initrd = join(scratch, 'initramfs.gz');
  await writeFile(initrd, (await buildTestInitramfs(kernel, undefined, ['softdog', 'loop'])).initramfs);
});
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

async function boot(s: Scenario): Promise<QemuRun> {
  return bootQemu({
    kernel: kernel.vmlinuz,
    initrd,
    append: s.append,
    disks: [s.hostDisk, ...(s.workDisk ? [s.workDisk] : []), ...(s.logDisk ? [s.logDisk] : [])],
    serialLog: join(s.dir, 'serial.log'),
    timeoutMs: 120_000,
  });
}

/** A Wi-Fi connection as stage 1 would carry it; its key must never show up in a log. */
const WIFI_PSK = 'bm-test-wifi-psk-8d1c';
const WIFI_KEYFILE = [
  '[connection]',
  'id=home-wifi',
  'uuid=6f0c2b1e-3c7a-5d2e-9a41-0b8f3e2d1c5a',
  'type=wifi',
  '',
  '[wifi]',
  'mode=infrastructure',
  'ssid=home-wifi',
  '',
  '[wifi-security]',
  'key-mgmt=wpa-psk',
  `psk=${WIFI_PSK}`,
  '',
  '[ipv4]',
  'method=auto',
  '',
  '[ipv6]',
  'method=auto',
  '',
].join('\n');
const WIRED_KEYFILE = [
  '[connection]',
  'id=eth0-static',
  'uuid=0d6e9f4a-2b1c-5e3d-8f7a-6c5b4a3d2e1f',
  'type=ethernet',
  '',
  '[ipv4]',
  'method=manual',
  'address1=192.0.2.10/24,192.0.2.1',
  'dns=192.0.2.53;',
  '',
].join('\n');

/** Runs the assertions, and on failure adds the tail of the serial console to the message. */
async function explained(run: QemuRun, check: () => Promise<void>): Promise<void> {
  try {
    await check();
  } catch (e) {
    (e as Error).message += `\n--- serial console (${run.serialLog}), last lines ---\n${tail(run.serial)}`;
    throw e;
  }
}

async function expectBalenaOsOnDisk(s: Scenario, run: QemuRun): Promise<void> {
  expect(run.timedOut).toBe(false);
  expect(run.exitCode).toBe(0);
  expect(run.serial).not.toMatch(/Kernel panic/);
  expect(run.serial).toContain('reboot: Restarting system');

  // everything but resin-boot is the image byte for byte; the rest of the disk is untouched
  const bootStart = s.imageBootOffset;
  const bootEnd = bootStart + 16 * MiB;
  expect((await bytesOf(s.hostDisk, 0, bootStart)).equals(s.image.subarray(0, bootStart))).toBe(true);
  expect((await bytesOf(s.hostDisk, bootEnd, s.image.length)).equals(s.image.subarray(bootEnd))).toBe(true);
  await checkExt4(s.hostDisk, bootEnd);

  // resin-boot keeps the image's files and gains config.json and the stage2 log
  expect(await listFat(s.hostDisk, bootStart)).toEqual(
    expect.arrayContaining(['os-release', 'splash.txt', 'config.json', 'balena-migrate-stage2.log']),
  );
  expect((await readFatFile(s.hostDisk, bootStart, 'os-release')).toString()).toBe('balenaOS stand-in\n');
  expect((await readFatFile(s.hostDisk, bootStart, 'config.json')).equals(s.configJson)).toBe(true);
  const log = (await readFatFile(s.hostDisk, bootStart, 'balena-migrate-stage2.log')).toString();
  expect(log).toMatch(/grubenv: restored boot\/grub\/grubenv/);
  expect(log).toMatch(/image, config and \d+ network files verified in RAM/);
  expect(log).toMatch(/the image decompresses to the planned disk image: .* sha256 verified/);
  expect(log).toMatch(/the image's partition 1 \(from sector 2048\) is resin-boot/);
  expect(log).toMatch(/POINT OF NO RETURN: writing/);
  expect(log).toMatch(/wrote 34.0 MiB in [0-9.]+ s \([0-9.]+ MiB\/s\) to \/dev\/vda/);
  expect(log).toMatch(/read back 34.0 MiB in .*: sha256 matches the image/);
  expect(log).toMatch(/config.json written to resin-boot/);
  expect(log).toMatch(/balenaOS is on \/dev\/vda: rebooting into it/);
  expect(log).not.toContain('not-a-real-key');
}

describe('stage2 flashing balenaOS', () => {
  it(
    'writes a gzipped image over the disk it runs from, then puts config.json, the network files and its log on resin-boot and the log device',
    async () => {
      const dir = await mkdtemp(join(scratch, 'gz-'));
      const s = await buildScenario(dir, {
        compression: 'gzip',
        cleanup: 'boot/balena-migrate balena-stage2.yml',
        networkFiles: {
          'bm-10-home-wifi.nmconnection': WIFI_KEYFILE,
          'bm-20-eth0-static.nmconnection': WIRED_KEYFILE,
        },
        logDisk: true,
      });
      const before = await readFile(s.hostDisk);
      const run = await boot(s);
      await explained(run, async () => {
        await expectBalenaOsOnDisk(s, run);
        // past the image, the old disk's bytes are as they were
        expect(
          (await bytesOf(s.hostDisk, s.image.length, HOST_DISK_MiB * MiB)).equals(
            before.subarray(s.image.length),
          ),
        ).toBe(true);
        // the connection files are in resin-boot/system-connections, byte for byte
        expect(await listFat(s.hostDisk, s.imageBootOffset, 'system-connections')).toEqual([
          'bm-10-home-wifi.nmconnection',
          'bm-20-eth0-static.nmconnection',
        ]);
        const bootFile = (name: string) => readFatFile(s.hostDisk, s.imageBootOffset, name);
        expect((await bootFile('system-connections/bm-10-home-wifi.nmconnection')).toString()).toBe(
          WIFI_KEYFILE,
        );
        expect((await bootFile('system-connections/bm-20-eth0-static.nmconnection')).toString()).toBe(
          WIRED_KEYFILE,
        );
        const log = (await bootFile('balena-migrate-stage2.log')).toString();
        expect(log).toMatch(
          /network: 2 connection files written to resin-boot\/system-connections: bm-10-home-wifi.nmconnection bm-20-eth0-static.nmconnection/,
        );
        // the log device has the same log, the key of the Wi-Fi network is nowhere
        const onLogDisk = (await readFatFile(s.logDisk!, MiB, 'balena-migrate-stage2.log')).toString();
        expect(onLogDisk).toContain('balenaOS is on /dev/vda: rebooting into it');
        expect(`${log}${onLogDisk}${run.serial}`).not.toContain(WIFI_PSK);
      });
      await rm(dir, { recursive: true, force: true });
    },
    VM_TEST_MS,
  );

  it(
    'writes an uncompressed image from a working directory on another disk and leaves that disk as it was',
    async () => {
      const dir = await mkdtemp(join(scratch, 'raw-'));
      const s = await buildScenario(dir, {
        compression: 'none',
        workOnSecondDisk: true,
        installDiskByPartuuid: true,
      });
      const run = await boot(s);
      await explained(run, async () => {
        await expectBalenaOsOnDisk(s, run);
        const log = (
          await readFatFile(s.hostDisk, s.imageBootOffset, 'balena-migrate-stage2.log')
        ).toString();
        expect(log).toMatch(/working directory: \/mnt\/work\/var\/tmp\/balena-migrate on \/dev\/vdb1/);
        expect(log).toMatch(/install disk: \/dev\/vda .* found through \/dev\/vda1/);
        // the work disk still holds the image and config, and no log: success logs go to resin-boot
        const workDisk = s.workDisk!;
        await checkExt4(workDisk, HOST_ROOT_OFFSET);
        expect(
          (await readExt4File(workDisk, HOST_ROOT_OFFSET, `/${WORK_PATH}/balena.img`))?.equals(s.imageFile),
        ).toBe(true);
        expect(
          (await readExt4File(workDisk, HOST_ROOT_OFFSET, `/${WORK_PATH}/config.json`))?.equals(s.configJson),
        ).toBe(true);
        expect(await readExt4File(workDisk, HOST_ROOT_OFFSET, `/${WORK_PATH}/stage2.log`)).toBeUndefined();
      });
      await rm(dir, { recursive: true, force: true });
    },
    VM_TEST_MS,
  );
  for (const compression of ['xz', 'zip'] as const) {
    it(
      `writes a ${compression === 'xz' ? '.img.xz' : '.zip'} image, decompressing it with busybox while writing`,
      async () => {
        const dir = await mkdtemp(join(scratch, `${compression}-`));
        const s = await buildScenario(dir, { compression });
        const run = await boot(s);
        await explained(run, async () => {
          await expectBalenaOsOnDisk(s, run);
          const log = (
            await readFatFile(s.hostDisk, s.imageBootOffset, 'balena-migrate-stage2.log')
          ).toString();
          expect(log).toMatch(new RegExp(`checking that the image decompresses \\(${compression}\\)`));
          expect(log).toMatch(/image written to \/dev\/vda and verified \(attempt 1\)/);
        });
        await rm(dir, { recursive: true, force: true });
      },
      VM_TEST_MS,
    );
  }

  it(
    'catches a corrupted write by reading the disk back, and writes again from the copy in RAM',
    async () => {
      const dir = await mkdtemp(join(scratch, 'corrupt-'));
      // test-only switch: one byte of the disk is flipped after the first write
      const s = await buildScenario(dir, { compression: 'gzip', inject: 'corrupt-write' });
      const run = await boot(s);
      await explained(run, async () => {
        await expectBalenaOsOnDisk(s, run);
        const log = (
          await readFatFile(s.hostDisk, s.imageBootOffset, 'balena-migrate-stage2.log')
        ).toString();
        expect(log).toMatch(
          /TEST INJECTION .* flipped the byte at offset 17825792 of \/dev\/vda after write attempt 1/,
        );
        expect(log).toMatch(
          /read back 35651584 bytes from \/dev\/vda: sha256 [0-9a-f]{64}, the image's is [0-9a-f]{64}/,
        );
        expect(log).toMatch(/writing the image again from the copy in RAM \(attempt 2 of 3\)/);
        expect(log).toMatch(/image written to \/dev\/vda and verified \(attempt 2\)/);
        expect(log.match(/POINT OF NO RETURN/g)).toHaveLength(1);
      });
      await rm(dir, { recursive: true, force: true });
    },
    VM_TEST_MS,
  );

  it(
    'kicks the hardware watchdog the old OS ran, from before the point of no return until the reboot',
    async () => {
      const dir = await mkdtemp(join(scratch, 'watchdog-'));
      const s = await buildScenario(dir, { compression: 'gzip', watchdog: '/dev/watchdog0' });
      const run = await boot(s);
      await explained(run, async () => {
        await expectBalenaOsOnDisk(s, run);
        const log = (
          await readFatFile(s.hostDisk, s.imageBootOffset, 'balena-migrate-stage2.log')
        ).toString();
        expect(log).toMatch(/hardware watchdog: kicking \/dev\/watchdog0 every 5s \(timeout 60s\)/);
        expect(log.indexOf('hardware watchdog: kicking')).toBeLessThan(log.indexOf('POINT OF NO RETURN'));
      });
      await rm(dir, { recursive: true, force: true });
    },
    VM_TEST_MS,
  );
});
