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
  await writeFile(initrd, (await buildTestInitramfs(kernel)).initramfs);
});
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

async function boot(s: Scenario): Promise<QemuRun> {
  return bootQemu({
    kernel: kernel.vmlinuz,
    initrd,
    append: s.append,
    disks: s.workDisk ? [s.hostDisk, s.workDisk] : [s.hostDisk],
    serialLog: join(s.dir, 'serial.log'),
    timeoutMs: 120_000,
  });
}

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
  expect(log).toMatch(/image and config verified in RAM/);
  expect(log).toMatch(/POINT OF NO RETURN: writing/);
  expect(log).toMatch(/config.json written to resin-boot/);
  expect(log).toMatch(/balenaOS is on \/dev\/vda: rebooting into it/);
  expect(log).not.toContain('not-a-real-key');
}

describe('stage2 flashing balenaOS', () => {
  it(
    'writes a gzipped image over the disk it runs from, then puts config.json and its log on resin-boot',
    async () => {
      const dir = await mkdtemp(join(scratch, 'gz-'));
      const s = await buildScenario(dir, {
        compression: 'gzip',
        cleanup: 'boot/balena-migrate balena-stage2.yml',
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
});
