import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXTLINUX_LABEL, withExtlinuxEntry } from '../../orchestrator/platform/uboot.ts';
import { buildInitramfs } from '../../stage2/build/initramfs.ts';
import { readModulesFromDir } from '../../stage2/build/modules-fs.ts';
import { renderStage2Config } from '../../stage2/build/stage2-config.ts';
import { makeBalenaImage, makeExt4, makeMbrDisk, readExt4File, sh, tail } from '../fixtures/stage2/vm.ts';
import { ensureArmhfBusybox } from '../helpers/busybox-armhf.ts';
import type { TestKernel } from '../helpers/kernel.ts';
import { ensureArmhfKernel } from '../helpers/kernel-armhf.ts';

// A real u-boot (Debian's u-boot-qemu for QEMU's 32-bit ARM `virt` machine) booting a disk the
// way the u-boot planner leaves it: extlinux.conf with the stage2 entry as its default
// (rendered by withExtlinuxEntry), the host kernel, device tree and stage2 initramfs in
// /boot/balena-migrate. u-boot must find the entry and its files by the paths the planner
// writes; stage2 (Debian's armhf kernel and busybox) must put extlinux.conf back first, then,
// the image hash being wrong, go back to the old OS with the partition as it was.

const UBOOT = '/usr/lib/u-boot/qemu_arm/u-boot.bin';
const QEMU = ['qemu-system-arm', '-M', 'virt', '-cpu', 'cortex-a15', '-m', '512', '-smp', '1', '-nographic'];
const MiB = 1024 * 1024;
const TS = '20261126T041500Z';
const WORK_PATH = 'var/tmp/balena-migrate';
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const haveTools = existsSync(UBOOT) && spawnable('qemu-system-arm');

function spawnable(cmd: string): boolean {
  return ['/usr/bin', '/bin', '/usr/local/bin'].some((d) => existsSync(join(d, cmd)));
}

let kernel: TestKernel;
let scratch: string;
let initramfs: Buffer;

beforeAll(async () => {
  if (!haveTools) return;
  kernel = await ensureArmhfKernel();
  scratch = await mkdtemp(join(tmpdir(), 'uboot-extlinux-'));
  const modules = await readModulesFromDir(kernel.modulesDir, [
    'virtio_mmio',
    'virtio_blk',
    'ext4',
    'crc32c_generic',
    'vfat',
    'nls_cp437',
    'nls_iso8859_1',
    'loop',
  ]);
  initramfs = buildInitramfs({
    busybox: await readFile(await ensureArmhfBusybox()),
    modules: modules.files,
    kernelRelease: kernel.release,
  });
}, 300_000);
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** Runs the machine until it powers off or reboots (-no-reboot); the serial console's text. */
async function runUboot(
  disk: string,
  log: string,
  timeoutMs: number,
): Promise<{ serial: string; timedOut: boolean }> {
  const args = [
    ...QEMU.slice(1),
    '-no-reboot',
    '-bios',
    UBOOT,
    '-drive',
    `if=none,file=${disk},format=raw,id=hd0`,
    '-device',
    'virtio-blk-device,drive=hd0',
  ];
  const out = createWriteStream(log);
  const chunks: Buffer[] = [];
  const child = spawn(QEMU[0]!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d: Buffer) => {
    chunks.push(d);
    out.write(d);
  });
  child.stderr.on('data', (d: Buffer) => out.write(d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  await new Promise((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  await new Promise((r) => out.end(r));
  return { serial: Buffer.concat(chunks).toString('utf8'), timedOut };
}

describe.skipIf(!haveTools)('u-boot booting stage2 through extlinux.conf', () => {
  it("boots the planner's default entry, and stage2 puts extlinux.conf back before anything else", async () => {
    const dir = await mkdtemp(join(scratch, 'disk-'));
    const dtb = join(dir, 'virt.dtb');
    await sh(QEMU[0]!, [...QEMU.slice(1).map((a) => (a === 'virt' ? `virt,dumpdtb=${dtb}` : a))]);
    const diskId = 0x5e2d0003;
    const rootUuid = randomUUID();
    const original = Buffer.from(
      `default debian\ntimeout 1\n\nlabel debian\n    kernel /boot/vmlinuz-${kernel.release}\n    append root=/dev/vda1 ro\n`,
    );
    const root = join(dir, 'root');
    await mkdir(join(root, 'boot/extlinux'), { recursive: true });
    await mkdir(join(root, 'boot/balena-migrate'), { recursive: true });
    await copyFile(kernel.vmlinuz, join(root, `boot/vmlinuz-${kernel.release}`));
    await copyFile(kernel.vmlinuz, join(root, 'boot/balena-migrate/vmlinuz'));
    await copyFile(dtb, join(root, 'boot/balena-migrate/virt.dtb'));
    await writeFile(join(root, 'boot/balena-migrate/initramfs.gz'), initramfs);
    await writeFile(join(root, `boot/extlinux/extlinux.conf.${TS}`), original);
    await writeFile(
      join(root, 'boot/extlinux/extlinux.conf'),
      withExtlinuxEntry(original.toString(), {
        kernel: '/boot/balena-migrate/vmlinuz',
        fdt: '/boot/balena-migrate/virt.dtb',
        initrd: '/boot/balena-migrate/initramfs.gz',
        append: `console=ttyAMA0,115200 root=PARTUUID=${diskId.toString(16)}-01 rootwait panic=10`,
      }),
    );
    // the payload, with an image hash that sends stage2 back to the old OS
    const image = await readFile((await makeBalenaImage(dir)).path);
    const gz = gzipSync(image);
    await mkdir(join(root, WORK_PATH), { recursive: true });
    await writeFile(join(root, WORK_PATH, 'balena.img.gz'), gz);
    await writeFile(join(root, WORK_PATH, 'config.json'), '{}\n');
    const diskMiB = 128;
    await writeFile(
      join(root, 'balena-stage2.yml'),
      renderStage2Config({
        version: 1,
        mode: 'flash',
        fail_mode: 'reboot',
        grubenv: '',
        grubenv_b64: '',
        work_dev: `UUID=${rootUuid}`,
        work_fstype: 'ext4',
        work_path: WORK_PATH,
        install_disk_of: `UUID=${rootUuid}`,
        install_disk_size: diskMiB * MiB,
        image_file: 'balena.img.gz',
        image_compression: 'gzip',
        image_sha256: 'f'.repeat(64),
        image_size: gz.length,
        image_raw_size: image.length,
        image_raw_sha256: sha256(image),
        config_file: 'config.json',
        config_sha256: sha256(Buffer.from('{}\n')),
        network_files: '',
        network_sha256: '',
        ram_margin: 32 * MiB,
        boot_label: 'resin-boot',
        log_name: 'stage2.log',
        log_device: '',
        watchdog: '',
        cleanup: 'boot/balena-migrate balena-stage2.yml',
        restore_count: 1,
        restore_1_from: `boot/extlinux/extlinux.conf.${TS}`,
        restore_1_to: 'boot/extlinux/extlinux.conf',
      }),
    );
    await makeExt4(join(dir, 'root.ext4'), 120, 'rootfs', root, rootUuid);
    const disk = join(dir, 'disk.img');
    const [part] = await makeMbrDisk(
      disk,
      diskMiB,
      [{ file: join(dir, 'root.ext4'), sizeMiB: 120, type: '83' }],
      diskId,
    );
    await rm(join(dir, 'root.ext4'));

    const run = await runUboot(disk, join(dir, 'serial.log'), 420_000);
    try {
      expect(run.timedOut).toBe(false);
      // u-boot read the planner's extlinux.conf and took the stage2 entry with its paths
      expect(run.serial).toMatch(new RegExp(`${EXTLINUX_LABEL}`));
      expect(run.serial).toContain('/boot/balena-migrate/initramfs.gz');
      // stage2, on Debian's armhf kernel and busybox, restored extlinux.conf first
      expect(run.serial).toContain(
        `restore: boot/extlinux/extlinux.conf replaced from boot/extlinux/extlinux.conf.${TS}`,
      );
      expect(run.serial).toMatch(/FAILED: the image's sha256/);
      expect(run.serial).toContain('reboot: Restarting system');
      expect(await readExt4File(disk, part!.offset, '/boot/extlinux/extlinux.conf')).toEqual(original);
      expect(await readExt4File(disk, part!.offset, `/boot/extlinux/extlinux.conf.${TS}`)).toBeUndefined();
      expect(await readExt4File(disk, part!.offset, '/balena-stage2.yml')).toBeUndefined();
      expect(await readExt4File(disk, part!.offset, '/boot/balena-migrate/vmlinuz')).toBeUndefined();
    } catch (e) {
      (e as Error).message += `\n--- serial console, last lines ---\n${tail(run.serial, 80)}`;
      throw e;
    }
  }, 600_000);
});
