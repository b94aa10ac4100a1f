import { createHash, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderStage2Config } from '../../stage2/build/stage2-config.ts';
import {
  bootQemu,
  buildTestInitramfs,
  listFat,
  makeBalenaImage,
  makeExt4,
  makeMbrDisk,
  makeVfat,
  readExt4File,
  readFatFile,
  tail,
} from '../fixtures/stage2/vm.ts';
import { ensureTestKernel, type TestKernel } from '../helpers/kernel.ts';

// Stage2's first act on boards without a one-shot boot, with the real init on a real kernel:
// on a Raspberry-Pi-shaped disk (root= the FAT boot partition) it moves config.txt.TIMESTAMP
// back over the config.txt that booted it; on a BeagleBone-shaped one (root= the ext4 root
// partition) it removes the uEnv.txt stage 1 added. Then, the image hash being wrong, it goes
// back to the old OS: the boot files must be byte for byte what they were before stage 1.

const MiB = 1024 * 1024;
const TS = '20261126T041500Z';
const WORK_PATH = 'var/tmp/balena-migrate';
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let kernel: TestKernel;
let initrd: string;
let scratch: string;
let image: { gz: Buffer; raw: Buffer };

beforeAll(async () => {
  kernel = await ensureTestKernel();
  scratch = await mkdtemp(join(tmpdir(), 'stage2-restore-'));
  initrd = join(scratch, 'initramfs.gz');
  await writeFile(initrd, (await buildTestInitramfs(kernel, undefined, ['loop'])).initramfs);
  const built = await makeBalenaImage(scratch);
  const raw = await readFile(built.path);
  image = { raw, gz: gzipSync(raw) };
});
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** balena-stage2.yml as a planner writes it, with a wrong image sha256 so stage2 goes back. */
function stage2Config(opts: {
  rootUuid: string;
  diskBytes: number;
  restores: { from: string; to: string }[];
  cleanup: string;
}): string {
  const config: Record<string, string | number> = {
    version: 1,
    mode: 'flash',
    fail_mode: 'reboot',
    grubenv: '',
    grubenv_b64: '',
    work_dev: `UUID=${opts.rootUuid}`,
    work_fstype: 'ext4',
    work_path: WORK_PATH,
    install_disk_of: `UUID=${opts.rootUuid}`,
    install_disk_size: opts.diskBytes,
    image_file: 'balena.img.gz',
    image_compression: 'gzip',
    image_sha256: 'f'.repeat(64),
    image_size: image.gz.length,
    image_raw_size: image.raw.length,
    image_raw_sha256: sha256(image.raw),
    config_file: 'config.json',
    config_sha256: sha256(Buffer.from('{}\n')),
    network_files: '',
    network_sha256: '',
    ram_margin: 32 * MiB,
    boot_label: 'resin-boot',
    log_name: 'stage2.log',
    log_device: '',
    watchdog: '',
    cleanup: opts.cleanup,
    restore_count: opts.restores.length,
  };
  opts.restores.forEach((r, i) => {
    config[`restore_${i + 1}_from`] = r.from;
    config[`restore_${i + 1}_to`] = r.to;
  });
  return renderStage2Config(config);
}

/** The work dir tree with the payload: the image and config.json. */
async function workTree(root: string): Promise<void> {
  await mkdir(join(root, WORK_PATH), { recursive: true });
  await writeFile(join(root, WORK_PATH, 'balena.img.gz'), image.gz);
  await writeFile(join(root, WORK_PATH, 'config.json'), '{}\n');
}

describe('stage2 restoring the boot files first, on a real kernel', () => {
  it('on a Raspberry Pi disk: puts config.txt back from config.txt.TIMESTAMP, then goes back with the boot partition as it was', async () => {
    const dir = await mkdtemp(join(scratch, 'rpi-'));
    const configTxt = Buffer.from('dtparam=audio=on\ncamera_auto_detect=1\narm_64bit=1\n\n[all]\n');
    const cmdlineTxt = Buffer.from(
      'console=serial0,115200 console=tty1 root=PARTUUID=5e2d0001-02 rootwait\n',
    );
    const rootUuid = randomUUID();
    const diskId = 0x5e2d0001;
    const diskMiB = 128;
    const section = `${configTxt}\n[all]\nkernel=balena-migrate/kernel.img\ninitramfs balena-migrate/initramfs.gz followkernel\ncmdline=balena-migrate/cmdline.txt\n`;
    await makeVfat(join(dir, 'boot.vfat'), 32, 'bootfs', {
      'config.txt': Buffer.from(section),
      [`config.txt.${TS}`]: configTxt,
      'cmdline.txt': cmdlineTxt,
      'balena-stage2.yml': Buffer.from(
        stage2Config({
          rootUuid,
          diskBytes: diskMiB * MiB,
          restores: [{ from: `config.txt.${TS}`, to: 'config.txt' }],
          cleanup: 'balena-stage2.yml',
        }),
      ),
    });
    const rootTree = join(dir, 'root');
    await workTree(rootTree);
    await makeExt4(join(dir, 'root.ext4'), 80, 'rootfs', rootTree, rootUuid);
    const disk = join(dir, 'disk.img');
    const [boot, root] = await makeMbrDisk(
      disk,
      diskMiB,
      [
        { file: join(dir, 'boot.vfat'), sizeMiB: 32, type: 'c' },
        { file: join(dir, 'root.ext4'), sizeMiB: 80, type: '83' },
      ],
      diskId,
    );
    const run = await bootQemu({
      kernel: kernel.vmlinuz,
      initrd,
      append: `root=PARTUUID=${diskId.toString(16)}-01 console=ttyS0,115200 panic=10`,
      disks: [disk],
      serialLog: join(dir, 'serial.log'),
      timeoutMs: 120_000,
    });
    try {
      expect(run.timedOut).toBe(false);
      expect(run.serial).toContain(`restore: config.txt replaced from config.txt.${TS}`);
      expect(run.serial).not.toMatch(/POINT OF NO RETURN/);
      expect(run.serial).toContain('reboot: Restarting system');
      expect(await readFatFile(disk, boot!.offset, 'config.txt')).toEqual(configTxt);
      expect(await readFatFile(disk, boot!.offset, 'cmdline.txt')).toEqual(cmdlineTxt);
      expect(await listFat(disk, boot!.offset)).toEqual(['cmdline.txt', 'config.txt']);
      const log = (await readExt4File(disk, root!.offset, `/${WORK_PATH}/stage2.log`))?.toString() ?? '';
      expect(log).toMatch(
        /restore: config.txt replaced from config.txt.20261126T041500Z\n[\s\S]*FAILED: the image's sha256/,
      );
    } catch (e) {
      (e as Error).message += `\n--- serial console, last lines ---\n${tail(run.serial)}`;
      throw e;
    }
  }, 240_000);

  it('on a BeagleBone disk: removes the /uEnv.txt stage 1 added, first, and leaves /boot/uEnv.txt alone', async () => {
    const dir = await mkdtemp(join(scratch, 'bbb-'));
    const rootUuid = randomUUID();
    const diskId = 0x5e2d0002;
    const diskMiB = 100;
    const bootUenv = Buffer.from('uname_r=5.10.168-ti-r71\nenable_uboot_overlays=1\n');
    const rootTree = join(dir, 'root');
    await workTree(rootTree);
    await mkdir(join(rootTree, 'boot'), { recursive: true });
    await writeFile(join(rootTree, 'boot/uEnv.txt'), bootUenv);
    await writeFile(join(rootTree, 'uEnv.txt'), 'uenvcmd=run balena_migrate_stage2\n');
    await writeFile(
      join(rootTree, 'balena-stage2.yml'),
      stage2Config({
        rootUuid,
        diskBytes: diskMiB * MiB,
        restores: [{ from: '', to: 'uEnv.txt' }],
        cleanup: 'balena-stage2.yml',
      }),
    );
    await makeExt4(join(dir, 'root.ext4'), 96, 'rootfs', rootTree, rootUuid);
    const disk = join(dir, 'disk.img');
    const [root] = await makeMbrDisk(
      disk,
      diskMiB,
      [{ file: join(dir, 'root.ext4'), sizeMiB: 96, type: '83' }],
      diskId,
    );
    const run = await bootQemu({
      kernel: kernel.vmlinuz,
      initrd,
      append: `root=PARTUUID=${diskId.toString(16)}-01 console=ttyS0,115200 panic=10`,
      disks: [disk],
      serialLog: join(dir, 'serial.log'),
      timeoutMs: 120_000,
    });
    try {
      expect(run.timedOut).toBe(false);
      expect(run.serial).toContain('restore: removed uEnv.txt (there was none before the migration)');
      expect(run.serial).toContain('reboot: Restarting system');
      expect(await readExt4File(disk, root!.offset, '/uEnv.txt')).toBeUndefined();
      expect(await readExt4File(disk, root!.offset, '/balena-stage2.yml')).toBeUndefined();
      expect(await readExt4File(disk, root!.offset, '/boot/uEnv.txt')).toEqual(bootUenv);
    } catch (e) {
      (e as Error).message += `\n--- serial console, last lines ---\n${tail(run.serial)}`;
      throw e;
    }
  }, 240_000);
});
