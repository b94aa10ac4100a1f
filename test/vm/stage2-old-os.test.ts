import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStage2Init } from '../../stage2/build/initramfs.ts';
import {
  bootQemu,
  buildScenario,
  buildTestInitramfs,
  checkExt4,
  dumpExt4,
  grubenvBlock,
  HOST_DISK_MiB,
  HOST_ROOT_OFFSET,
  type QemuRun,
  readExt4File,
  readFatFile,
  type Scenario,
  tail,
  treeOf,
  WORK_PATH,
} from '../fixtures/stage2/vm.ts';
import { ensureTestKernel, type TestKernel } from '../helpers/kernel.ts';

// The ways back to the old OS: stage2 stops before the point of no return, restores the
// former grubenv, saves its log in the working directory, cleans up and reboots. The install
// disk is compared with what it was before, file by file and byte by byte around the root fs.

const MiB = 1024 * 1024;
/** QEMU gives up after 120 s; the disk building and checks around it need less than a minute */
const VM_TEST_MS = 180_000;
const HOST_ROOT_END = HOST_ROOT_OFFSET + 64 * MiB;
let kernel: TestKernel;
let initrd: string;
let scratch: string;

beforeAll(async () => {
  kernel = await ensureTestKernel();
  scratch = await mkdtemp(join(tmpdir(), 'stage2-old-os-'));
  initrd = join(scratch, 'initramfs.gz');
  await writeFile(initrd, (await buildTestInitramfs(kernel, undefined, ['loop'])).initramfs);
});
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

async function boot(
  s: Scenario,
  opts: { memMiB?: number; initrd?: string; typing?: { when: RegExp; send: string }[] } = {},
): Promise<QemuRun> {
  return bootQemu({
    kernel: kernel.vmlinuz,
    initrd: opts.initrd ?? initrd,
    append: s.append,
    disks: [s.hostDisk, ...(s.workDisk ? [s.workDisk] : []), ...(s.logDisk ? [s.logDisk] : [])],
    memMiB: opts.memMiB,
    typing: opts.typing,
    serialLog: join(s.dir, 'serial.log'),
    timeoutMs: 120_000,
  });
}

async function explained(run: QemuRun, check: () => Promise<void>): Promise<void> {
  try {
    await check();
  } catch (e) {
    (e as Error).message += `\n--- serial console (${run.serialLog}), last lines ---\n${tail(run.serial)}`;
    throw e;
  }
}

/**
 * Asserts the old-OS outcome: QEMU rebooted cleanly, nothing outside the root filesystem
 * changed, and inside it only the expected files differ. Returns the saved log.
 */
async function expectOldOsKept(
  s: Scenario,
  run: QemuRun,
  before: Buffer,
  expected: { deleted: string[]; grubenv: Buffer; created?: string[] },
): Promise<string> {
  expect(run.timedOut).toBe(false);
  expect(run.exitCode).toBe(0);
  expect(run.serial).not.toMatch(/Kernel panic/);
  expect(run.serial).not.toMatch(/POINT OF NO RETURN/);
  expect(run.serial).toContain('reboot: Restarting system');

  const after = await readFile(s.hostDisk);
  expect(after.length).toBe(HOST_DISK_MiB * MiB);
  expect(after.subarray(0, HOST_ROOT_OFFSET).equals(before.subarray(0, HOST_ROOT_OFFSET))).toBe(true);
  expect(after.subarray(HOST_ROOT_END).equals(before.subarray(HOST_ROOT_END))).toBe(true);
  await checkExt4(s.hostDisk, HOST_ROOT_OFFSET);

  const grubenv = await readExt4File(s.hostDisk, HOST_ROOT_OFFSET, '/boot/grub/grubenv');
  expect(grubenv?.equals(expected.grubenv)).toBe(true);

  const log = (await readExt4File(s.hostDisk, HOST_ROOT_OFFSET, `/${WORK_PATH}/stage2.log`))?.toString();
  expect(log).toBeDefined();

  // file by file: the tree stage 1 left, minus the cleanup, plus the log, grubenv as expected
  const want = await treeOf(s.hostTree);
  for (const gone of expected.deleted) {
    for (const k of Object.keys(want)) if (k === gone || k.startsWith(`${gone}/`)) delete want[k];
  }
  const got = await treeOf(await dumpExt4(s.hostDisk, HOST_ROOT_OFFSET, join(s.dir, 'after')));
  const logKey = `${WORK_PATH}/stage2.log`;
  expect(got[logKey]).toBeDefined();
  delete got[logKey];
  delete got['boot/grub/grubenv'];
  delete want['boot/grub/grubenv'];
  for (const made of expected.created ?? []) {
    expect(got[made]).toBe('dir');
    delete got[made];
  }
  expect(got).toEqual(want);
  return log ?? '';
}

describe('stage2 going back to the old OS', () => {
  it(
    'restores grubenv, saves its log and cleans up when the image sha256 is wrong, writing nothing else',
    async () => {
      const dir = await mkdtemp(join(scratch, 'sha-'));
      const s = await buildScenario(dir, {
        compression: 'gzip',
        imageSha256: 'f'.repeat(64),
        cleanup: 'boot/balena-migrate balena-stage2.yml',
      });
      const before = await readFile(s.hostDisk);
      const run = await boot(s);
      await explained(run, async () => {
        const log = await expectOldOsKept(s, run, before, {
          deleted: ['boot/balena-migrate', 'balena-stage2.yml'],
          grubenv: s.grubenvOriginal,
        });
        expect(log).toMatch(/FAILED: the image's sha256 is [0-9a-f]{64}, the plan says f{64}/);
        expect(log).toMatch(/nothing was written to the install disk: going back to the old OS/);
        expect(log).toMatch(/cleanup: deleted boot\/balena-migrate/);
        expect(log).toMatch(/cleanup: deleted balena-stage2.yml/);
        expect(log).not.toContain('not-a-real-key');
      });
      await rm(dir, { recursive: true, force: true });
    },
    VM_TEST_MS,
  );

  it(
    'refuses to go on when MemAvailable is below image, config, log and margin',
    async () => {
      const dir = await mkdtemp(join(scratch, 'ram-'));
      const s = await buildScenario(dir, {
        compression: 'gzip',
        ramMarginBytes: 256 * MiB,
        cleanup: 'boot/balena-migrate',
      });
      const before = await readFile(s.hostDisk);
      const run = await boot(s, { memMiB: 256 });
      await explained(run, async () => {
        const log = await expectOldOsKept(s, run, before, {
          deleted: ['boot/balena-migrate'],
          grubenv: s.grubenvOriginal,
        });
        expect(log).toMatch(
          /FAILED: not enough RAM: [0-9.]+ MiB available, but the image, config, log and margin need 25[0-9.]+ MiB/,
        );
        expect(log).not.toMatch(/copying .* into RAM/);
      });
      await rm(dir, { recursive: true, force: true });
    },
    VM_TEST_MS,
  );

  it(
    'in pretend mode checks everything, says what it would have done and leaves the install disk byte-identical',
    async () => {
      const dir = await mkdtemp(join(scratch, 'pretend-'));
      // grubenv already as it was before stage 1 (as after a GRUB that kept no one-shot), no
      // cleanup, the working directory (and so the log) on a second disk: nothing needs writing
      const s = await buildScenario(dir, {
        compression: 'xz',
        mode: 'pretend',
        workOnSecondDisk: true,
        grubenvNow: grubenvBlock({ saved_entry: '0' }),
      });
      const before = await readFile(s.hostDisk);
      const run = await boot(s);
      await explained(run, async () => {
        expect(run.timedOut).toBe(false);
        expect(run.exitCode).toBe(0);
        expect(run.serial).toContain('reboot: Restarting system');
        expect((await readFile(s.hostDisk)).equals(before)).toBe(true);
        const log = (
          await readExt4File(s.workDisk!, HOST_ROOT_OFFSET, `/${WORK_PATH}/stage2.log`)
        )?.toString();
        expect(log).toMatch(/grubenv: boot\/grub\/grubenv is already as it was before the migration/);
        expect(log).toMatch(/the image decompresses to the planned disk image: .* sha256 verified/);
        expect(log).toMatch(/the image's partition 1 \(from sector 2048\) is resin-boot/);
        expect(log).toMatch(/nothing on \/dev\/vda is mounted any more/);
        expect(log).toMatch(
          /pretend: every check passed; would write balena.img.xz \(34.0 MiB\) to \/dev\/vda and copy config.json to resin-boot/,
        );
        expect(log).not.toMatch(/FAILED|POINT OF NO RETURN/);
      });
      await rm(dir, { recursive: true, force: true });
    },
    VM_TEST_MS,
  );

  it(
    'still takes the old-OS way when the script itself breaks unexpectedly half-way',
    async () => {
      const dir = await mkdtemp(join(scratch, 'crash-'));
      const s = await buildScenario(dir, { compression: 'gzip', cleanup: 'boot/balena-migrate' });
      // an init with a bug: an unset variable right after the payload is staged (set -u ends the shell)
      const init = readStage2Init().toString();
      const broken = init.replace(
        '  stage_payload\n',
        '  stage_payload\n  : "$stage2_test_unset_variable"\n',
      );
      expect(broken).not.toBe(init);
      const brokenInitrd = join(dir, 'broken-initramfs.gz');
      const { initramfs } = await buildTestInitramfs(kernel, Buffer.from(broken));
      await writeFile(brokenInitrd, initramfs);
      const before = await readFile(s.hostDisk);
      const run = await boot(s, { initrd: brokenInitrd });
      await explained(run, async () => {
        const log = await expectOldOsKept(s, run, before, {
          deleted: ['boot/balena-migrate'],
          grubenv: s.grubenvOriginal,
        });
        expect(log).toMatch(/image, config and 0 network files verified in RAM/);
        expect(log).toMatch(/stage2 stopped unexpectedly \(status [1-9][0-9]*\)/);
        expect(log).toMatch(/FAILED: unexpected stop of stage2/);
      });
      await rm(dir, { recursive: true, force: true });
    },
    VM_TEST_MS,
  );

  it(
    'with fail_mode rescue-shell, offers a shell on the serial console and reboots when asked',
    async () => {
      const dir = await mkdtemp(join(scratch, 'rescue-'));
      const s = await buildScenario(dir, {
        compression: 'gzip',
        imageSha256: '0'.repeat(64),
        failMode: 'rescue-shell',
      });
      const before = await readFile(s.hostDisk);
      const run = await boot(s, {
        typing: [
          {
            when: /rescue shell on[\s\S]*# /,
            send: 'echo "rescue-$((6 * 7))"; ls /mnt/host | wc -l; reboot -f\n',
          },
        ],
      });
      await explained(run, async () => {
        const log = await expectOldOsKept(s, run, before, { deleted: [], grubenv: s.grubenvOriginal });
        expect(log).toMatch(/FAILED: the image's sha256/);
        expect(run.serial).toMatch(/rescue shell on \/dev\/ttyS0 \/dev\/tty0/);
        expect(run.serial).toMatch(/^rescue-42\r?$/m);
        // everything was unmounted before the shell started
        expect(run.serial).toMatch(/^0\r?$/m);
      });
      await rm(dir, { recursive: true, force: true });
    },
    VM_TEST_MS,
  );

  it(
    'refuses before writing an image that has no partition with the boot label',
    async () => {
      const dir = await mkdtemp(join(scratch, 'nolabel-'));
      // the image has no partition labelled flash-boot: found out from the image in RAM
      const s = await buildScenario(dir, { compression: 'gzip', bootLabel: 'flash-boot' });
      const before = await readFile(s.hostDisk);
      const run = await boot(s);
      await explained(run, async () => {
        const log = await expectOldOsKept(s, run, before, { deleted: [], grubenv: s.grubenvOriginal });
        expect(log).toMatch(
          /FAILED: the image has no partition labelled flash-boot: stage2 could not put config.json on it after writing/,
        );
      });
      await rm(dir, { recursive: true, force: true });
    },
    VM_TEST_MS,
  );

  it(
    'refuses before writing a .zip that its busybox cannot decompress (zip64)',
    async () => {
      const dir = await mkdtemp(join(scratch, 'zip64-'));
      const s = await buildScenario(dir, { compression: 'zip64', cleanup: 'boot/balena-migrate' });
      const before = await readFile(s.hostDisk);
      const run = await boot(s);
      await explained(run, async () => {
        const log = await expectOldOsKept(s, run, before, {
          deleted: ['boot/balena-migrate'],
          grubenv: s.grubenvOriginal,
        });
        expect(log).toMatch(/FAILED: the image does not decompress with busybox \(zip, status [1-9]/);
      });
      await rm(dir, { recursive: true, force: true });
    },
    VM_TEST_MS,
  );

  it(
    'goes back when the image does not decompress to the planned raw sha256',
    async () => {
      const dir = await mkdtemp(join(scratch, 'rawsha-'));
      const s = await buildScenario(dir, { compression: 'gzip', imageRawSha256: 'e'.repeat(64) });
      const before = await readFile(s.hostDisk);
      const run = await boot(s);
      await explained(run, async () => {
        const log = await expectOldOsKept(s, run, before, { deleted: [], grubenv: s.grubenvOriginal });
        expect(log).toMatch(/FAILED: the decompressed image's sha256 is [0-9a-f]{64}, the plan says e{64}/);
      });
      await rm(dir, { recursive: true, force: true });
    },
    VM_TEST_MS,
  );

  it(
    'goes back when the working directory is missing, and leaves its log in a working directory it creates',
    async () => {
      const dir = await mkdtemp(join(scratch, 'nowork-'));
      const s = await buildScenario(dir, {
        compression: 'gzip',
        workDirMissing: true,
        cleanup: 'boot/balena-migrate',
      });
      const before = await readFile(s.hostDisk);
      const run = await boot(s);
      await explained(run, async () => {
        const log = await expectOldOsKept(s, run, before, {
          deleted: ['boot/balena-migrate'],
          grubenv: s.grubenvOriginal,
          created: ['var/', 'var/tmp/', `${WORK_PATH}/`],
        });
        expect(log).toMatch(
          /FAILED: the working directory var\/tmp\/balena-migrate on UUID=\S+ is not available/,
        );
        expect(log).toMatch(
          /the working directory var\/tmp\/balena-migrate is missing: creating it for the log/,
        );
      });
      await rm(dir, { recursive: true, force: true });
    },
    VM_TEST_MS,
  );

  it(
    'after the point of no return (every write read back wrong), saves its log on resin-boot and the log device and reboots',
    async () => {
      const dir = await mkdtemp(join(scratch, 'ponr-'));
      // test-only switch: a byte of the disk is flipped after every write, so no attempt verifies
      const s = await buildScenario(dir, {
        compression: 'gzip',
        inject: 'corrupt-write-always',
        logDisk: true,
      });
      const run = await boot(s);
      await explained(run, async () => {
        expect(run.timedOut).toBe(false);
        expect(run.exitCode).toBe(0);
        expect(run.serial).not.toMatch(/Kernel panic/);
        expect(run.serial).toMatch(/POINT OF NO RETURN/);
        expect(run.serial).toMatch(/writing the image again from the copy in RAM \(attempt 3 of 3\)/);
        expect(run.serial).toMatch(
          /FAILED after the point of no return: the image did not write correctly to \/dev\/vda in 3 attempts/,
        );
        expect(run.serial).toMatch(/there is no old OS to go back to/);
        expect(run.serial).not.toMatch(/going back to the old OS/);
        // the log is on the written resin-boot and on the log device
        const onBoot = (
          await readFatFile(s.hostDisk, s.imageBootOffset, 'balena-migrate-stage2.log')
        ).toString();
        expect(onBoot).toMatch(/FAILED after the point of no return/);
        const onLogDisk = (await readFatFile(s.logDisk!, MiB, 'balena-migrate-stage2.log')).toString();
        expect(onLogDisk).toMatch(/FAILED after the point of no return/);
      });
      await rm(dir, { recursive: true, force: true });
    },
    VM_TEST_MS,
  );
});
