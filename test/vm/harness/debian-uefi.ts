// A second Debian disk for the boot-variant tests, laid out like Debian's own cloud images: a
// GPT disk that boots on UEFI *and* on BIOS. It holds a BIOS boot partition (GRUB's core.img
// for SeaBIOS), an EFI system partition (shim + signed GRUB, also on the removable path
// \EFI\BOOT\BOOTX64.EFI, so it boots under Secure Boot with Microsoft's keys too), /boot on
// its own ext4 partition (grub.cfg and grubenv live there, in /boot/grub, which is where
// Debian's grub-efi reads its environment as well) and the root filesystem.
//
// It is derived from the base disk (same Debian tree, users, SSH keys, kernel): the base's root
// filesystem is copied out, GRUB for EFI, shim and efibootmgr are added with apt in a chroot,
// the GPT disk is assembled, and a first boot under OVMF (direct kernel) runs grub-install for
// both platforms. The OVMF variable store of that boot, with the `debian` boot entry that
// grub-install made, is kept as the NVRAM template of every UEFI VM booting this disk.
import { appendFileSync, existsSync, readdirSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachedBuild, hashSources } from './cache.ts';
import { type BaseDisk, checkBuildPrerequisites, debianBaseKey, ensureDebianBase } from './debian-base.ts';
import { run, sh, shellQuote, step, unmountUnder } from './run.ts';
import { sshExec, sshRun, waitForSsh } from './ssh.ts';
import { startVm } from './vm.ts';

/** OVMF as Debian's `ovmf` package installs it. */
export const OVMF = {
  code: '/usr/share/OVMF/OVMF_CODE_4M.fd',
  vars: '/usr/share/OVMF/OVMF_VARS_4M.fd',
  /** needs a q35 machine with SMM (startVm's `uefi.secureBoot`) */
  codeSecureBoot: '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd',
  /** Secure Boot enabled, Microsoft's keys enrolled (they sign shim) */
  varsSecureBoot: '/usr/share/OVMF/OVMF_VARS_4M.ms.fd',
} as const;

export const UEFI_ROOT_LABEL = 'debian-root';
export const UEFI_BOOT_LABEL = 'debian-boot';
export const UEFI_ESP_LABEL = 'ESP';
const DISK_SIZE_MIB = 2048;
/** GPT partitions, in MiB; the root takes the rest of the disk. */
const LAYOUT = {
  biosBoot: { startMiB: 1, sizeMiB: 1 },
  esp: { startMiB: 2, sizeMiB: 98 },
  boot: { startMiB: 100, sizeMiB: 256 },
  root: { startMiB: 356 },
} as const;
const GPT_TYPE = {
  biosBoot: '21686148-6449-6E6F-744E-656564454649',
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
} as const;
/** What a Debian UEFI install has on top of the base tree (grub-pc-bin stays for BIOS). */
const EXTRA_PACKAGES = [
  'grub-efi-amd64',
  'grub-efi-amd64-signed',
  'shim-signed',
  'efibootmgr',
  'grub-pc-bin',
];

/** The only modules in the disk's initrd (MODULES=list): the virtio disk the root is on. */
const INITRD_MODULES = ['virtio_pci', 'virtio_blk'];

export interface UefiDisk {
  /** qcow2 image; use it as a backing file only (startVm makes an overlay). */
  disk: string;
  /** OVMF variable store holding the `debian` boot entry (BootOrder starts with it). */
  varsTemplate: string;
  /** The same keys, users and kernel as the base disk. */
  base: BaseDisk;
  sshKeyPath: string;
  sshPublicKey: string;
  hostPublicKey: string;
  /** Filesystem UUIDs: the ESP (vfat, `XXXX-XXXX`), /boot and / (ext4). */
  espUuid: string;
  bootUuid: string;
  rootUuid: string;
  diskSizeBytes: number;
  /** `efibootmgr -v` after the first boot, for the reader of a failing test. */
  efibootmgr: string;
  dir: string;
}

interface UefiManifest {
  espUuid: string;
  bootUuid: string;
  rootUuid: string;
  efibootmgr: string;
  builtAt: string;
  buildSeconds: number;
  packages: string[];
}

/** The cache key: this builder, the base disk it derives from, and the packages it adds. */
export function debianUefiKey(): string {
  return hashSources(
    [fileURLToPath(import.meta.url)],
    [debianBaseKey(), ...EXTRA_PACKAGES, ...INITRD_MODULES],
  );
}

/** Builds (once, cached) and returns the GPT/UEFI Debian disk. Builds the base disk first. */
export async function ensureDebianUefiDisk(): Promise<UefiDisk> {
  const base = await ensureDebianBase();
  const { dir, manifest } = await cachedBuild(`debian-uefi-${debianUefiKey()}`, (out) =>
    buildUefiDisk(out, base),
  );
  return {
    disk: join(dir, 'disk.qcow2'),
    varsTemplate: join(dir, 'OVMF_VARS.fd'),
    base,
    sshKeyPath: base.sshKeyPath,
    sshPublicKey: base.sshPublicKey,
    hostPublicKey: base.hostPublicKey,
    espUuid: manifest.espUuid,
    bootUuid: manifest.bootUuid,
    rootUuid: manifest.rootUuid,
    diskSizeBytes: DISK_SIZE_MIB * 1024 * 1024,
    efibootmgr: manifest.efibootmgr,
    dir,
  };
}

/** Fails early, with the package to install, when OVMF is missing. */
export function checkOvmf(): void {
  for (const file of Object.values(OVMF)) {
    if (!existsSync(file)) throw new Error(`${file} is missing: apt-get install ovmf`);
  }
}

async function buildUefiDisk(out: string, base: BaseDisk): Promise<UefiManifest> {
  const started = Date.now();
  const log = join(out, 'build.log');
  await checkBuildPrerequisites(['chroot', 'mkfs.ext4', 'mkfs.vfat', 'sfdisk', 'qemu-img', 'mount', 'blkid']);
  checkOvmf();
  const rootfs = join(out, 'rootfs');
  const mnt = join(out, 'base-root');
  const baseRaw = join(out, 'base.raw');
  try {
    step(log, 'UEFI disk: copying the base disk root filesystem out');
    await run('qemu-img', ['convert', '-U', '-O', 'raw', base.disk, baseRaw], { log });
    await mkdir(mnt);
    await mkdir(rootfs);
    await run('mount', ['-o', `loop,ro,offset=${1024 * 1024}`, baseRaw, mnt], { log });
    try {
      await run('cp', ['-a', `${mnt}/.`, `${rootfs}/`], { log });
    } finally {
      await run('umount', [mnt], { log, allowFailure: true });
    }
    await rm(baseRaw);
    await rm(mnt, { recursive: true });

    step(log, `UEFI disk: apt-get install ${EXTRA_PACKAGES.join(' ')} in a chroot`);
    await installPackages(rootfs, log);

    step(log, 'UEFI disk: /boot, ESP and root filesystems, GPT');
    const espUuid = (await run('sh', ['-c', 'od -An -N4 -tx4 /dev/urandom | tr -d " \\n"'])).stdout
      .toUpperCase()
      .replace(/^(....)(....)$/, '$1-$2');
    const bootUuid = (await run('cat', ['/proc/sys/kernel/random/uuid'])).stdout.trim();
    const rootUuid = (await run('cat', ['/proc/sys/kernel/random/uuid'])).stdout.trim();
    await writeFile(
      join(rootfs, 'etc/fstab'),
      [
        '# Written by the balena-migrate VM test bed (GPT/UEFI disk).',
        `UUID=${rootUuid}  /          ext4  errors=remount-ro  0  1`,
        `UUID=${bootUuid}  /boot      ext4  defaults           0  2`,
        `UUID=${espUuid}  /boot/efi  vfat  umask=0077         0  1`,
        '',
      ].join('\n'),
    );
    const bootTree = join(out, 'boot-tree');
    await run('mv', [join(rootfs, 'boot'), bootTree], { log });
    await mkdir(join(rootfs, 'boot'));
    await mkdir(join(bootTree, 'efi'), { recursive: true });

    const raw = join(out, 'disk.raw');
    await run('truncate', ['-s', `${DISK_SIZE_MIB}M`, raw], { log });
    const sectors = (mib: number) => mib * 2048;
    await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', raw], {
      log,
      input: [
        'label: gpt',
        `start=${sectors(LAYOUT.biosBoot.startMiB)}, size=${sectors(LAYOUT.biosBoot.sizeMiB)}, type=${GPT_TYPE.biosBoot}, name="bios-boot"`,
        `start=${sectors(LAYOUT.esp.startMiB)}, size=${sectors(LAYOUT.esp.sizeMiB)}, type=${GPT_TYPE.esp}, name="EFI system partition"`,
        `start=${sectors(LAYOUT.boot.startMiB)}, size=${sectors(LAYOUT.boot.sizeMiB)}, type=${GPT_TYPE.linux}, name="boot"`,
        `start=${sectors(LAYOUT.root.startMiB)}, type=${GPT_TYPE.linux}, name="root"`,
        '',
      ].join('\n'),
    });
    const place = async (file: string, startMiB: number) => {
      await run(
        'dd',
        [`if=${file}`, `of=${raw}`, 'bs=1M', `seek=${startMiB}`, 'conv=notrunc,sparse', 'status=none'],
        {
          log,
        },
      );
      await rm(file);
    };
    const esp = join(out, 'esp.vfat');
    await run('truncate', ['-s', `${LAYOUT.esp.sizeMiB}M`, esp], { log });
    await run('mkfs.vfat', ['-F', '32', '-n', UEFI_ESP_LABEL, '-i', espUuid.replace('-', ''), esp], { log });
    await place(esp, LAYOUT.esp.startMiB);
    const bootFs = join(out, 'boot.ext4');
    await run('truncate', ['-s', `${LAYOUT.boot.sizeMiB}M`, bootFs], { log });
    await run('mkfs.ext4', ['-q', '-F', '-L', UEFI_BOOT_LABEL, '-U', bootUuid, '-d', bootTree, bootFs], {
      log,
    });
    await rm(bootTree, { recursive: true, force: true });
    await place(bootFs, LAYOUT.boot.startMiB);
    const rootFs = join(out, 'root.ext4');
    await run('truncate', ['-s', `${DISK_SIZE_MIB - LAYOUT.root.startMiB - 1}M`, rootFs], { log });
    await run('mkfs.ext4', ['-q', '-F', '-L', UEFI_ROOT_LABEL, '-U', rootUuid, '-d', rootfs, rootFs], {
      log,
    });
    await rm(rootfs, { recursive: true, force: true });
    await place(rootFs, LAYOUT.root.startMiB);

    const efibootmgr = await installBootLoaders(raw, out, base, log);

    step(log, 'UEFI disk: converting to qcow2');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, join(out, 'disk.qcow2')], { log });
    await rm(raw);
    const buildSeconds = Math.round((Date.now() - started) / 1000);
    step(log, `UEFI disk built in ${buildSeconds} s`);
    return {
      espUuid,
      bootUuid,
      rootUuid,
      efibootmgr,
      builtAt: new Date().toISOString(),
      buildSeconds,
      packages: EXTRA_PACKAGES,
    };
  } finally {
    await unmountUnder(mnt);
    await unmountUnder(rootfs);
  }
}

// apt-get in a chroot of the tree, with the host's network; no service starts, and GRUB's
// maintainer scripts find no grub.cfg to regenerate (the first boot does that in the VM).
async function installPackages(rootfs: string, log: string): Promise<void> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' };
  const resolv = join(rootfs, 'etc/resolv.conf');
  const savedResolv = existsSync(resolv) ? await readFile(resolv) : null;
  await rm(resolv, { force: true });
  await copyFile('/etc/resolv.conf', resolv);
  await writeFile(join(rootfs, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  await rm(join(rootfs, 'boot/grub/grub.cfg'), { force: true });
  const mirror = process.env.BALENA_MIGRATE_DEBIAN_MIRROR;
  if (mirror) {
    await writeFile(join(rootfs, 'etc/apt/sources.list'), `deb ${mirror} bookworm main\n`);
  }
  for (const [fs, dir] of [
    ['proc', 'proc'],
    ['sysfs', 'sys'],
  ] as const) {
    await run('mount', ['-t', fs, fs, join(rootfs, dir)], { log });
  }
  await run('mount', ['--bind', '/dev', join(rootfs, 'dev')], { log });
  try {
    await run('chroot', [rootfs, 'apt-get', 'update', '-q'], { log, env });
    await run(
      'chroot',
      [rootfs, 'apt-get', 'install', '-y', '-q', '--no-install-recommends', ...EXTRA_PACKAGES],
      { log, env },
    );
    await run('chroot', [rootfs, 'apt-get', 'clean'], { log, env });
    // A small initrd, as on a tuned cloud image: the tests reboot this disk many times under TCG,
    // where GRUB reading and the kernel unpacking Debian's 15 MB `MODULES=most` initrd cost
    // tens of seconds per boot. Only what finds the root disk (ext4 is built into the kernel).
    await writeFile(join(rootfs, 'etc/initramfs-tools/conf.d/balena-migrate-test.conf'), 'MODULES=list\n');
    await writeFile(
      join(rootfs, 'etc/initramfs-tools/modules'),
      `# balena-migrate test disk: the root disk only\n${INITRD_MODULES.join('\n')}\n`,
    );
    await run('chroot', [rootfs, 'update-initramfs', '-u', '-k', 'all'], { log, env });
    // Linux's boot-time check of the IO-APIC timer fails when TCG gets little CPU (other VMs
    // on the same cores) and panics the kernel before it prints a line: skip it, as VMs do.
    await writeFile(
      join(rootfs, 'etc/default/grub.d/balena-migrate-uefi.cfg'),
      'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX no_timer_check"\n',
    );
  } finally {
    await unmountUnder(join(rootfs, 'dev'));
    await unmountUnder(join(rootfs, 'sys'));
    await unmountUnder(join(rootfs, 'proc'));
  }
  await sh(`rm -rf ${shellQuote(rootfs)}/var/lib/apt/lists/* ${shellQuote(rootfs)}/usr/sbin/policy-rc.d`, {
    log,
  });
  await rm(resolv, { force: true });
  if (savedResolv) await writeFile(resolv, savedResolv);
  const kernels = readdirSync(join(rootfs, 'lib/modules'));
  if (kernels.length !== 1) throw new Error(`expected one kernel in the tree, found ${kernels.join(', ')}`);
}

// The first boot: OVMF with the disk's own kernel given directly, so the running system is a
// UEFI one with efivarfs; grub-install for x86_64-efi (shim, NVRAM entry `debian`, and the
// removable path) and for i386-pc (the BIOS boot partition), update-grub, power off. The
// variable store of this boot becomes the template.
async function installBootLoaders(raw: string, out: string, base: BaseDisk, log: string): Promise<string> {
  step(log, 'UEFI disk: first boot under OVMF (direct kernel) to install GRUB for UEFI and BIOS');
  const vm = await startVm({
    name: 'debian-uefi-build',
    disk: raw,
    writeDisk: true,
    forwards: [{ guestPort: 22 }],
    uefi: { code: OVMF.code, vars: OVMF.vars },
    kernel: {
      kernel: base.kernelPath,
      initrd: base.initrdPath,
      append: `root=LABEL=${UEFI_ROOT_LABEL} ro console=ttyS0,115200`,
    },
  });
  try {
    const target = {
      port: vm.hostPort(22),
      user: 'root',
      privateKeyPath: base.sshKeyPath,
      hostPublicKey: base.hostPublicKey,
    };
    await vm.waitForTcpBanner(22, 240_000);
    await waitForSsh(target, 60_000);
    const output = await sshRun(
      target,
      [
        'set -e',
        'findmnt /boot/efi && findmnt /boot && test -d /sys/firmware/efi/efivars',
        'grub-install --target=x86_64-efi --efi-directory=/boot/efi --bootloader-id=debian --force-extra-removable 2>&1',
        'grub-install --target=i386-pc /dev/vda 2>&1',
        'update-grub 2>&1',
        'ls -lR /boot/efi',
        'efibootmgr -v',
        'sync',
      ].join('\n'),
      600_000,
    );
    await writeFile(join(out, 'grub-install.log'), output);
    const efibootmgr = (await sshRun(target, 'efibootmgr -v')).trim();
    if (!/^Boot[0-9A-F]{4}\* debian\b/m.test(efibootmgr)) {
      throw new Error(`grub-install made no "debian" boot entry:\n${efibootmgr}`);
    }
    step(log, 'UEFI disk: GRUB installed for UEFI and BIOS; powering off');
    await sshExec(target, 'systemctl poweroff', 20_000).catch(() => undefined);
    await vm.waitForExit(180_000);
    if (!vm.varsPath) throw new Error('the build VM has no variable store');
    await copyFile(vm.varsPath, join(out, 'OVMF_VARS.fd'));
    return efibootmgr;
  } catch (error) {
    appendFileSync(log, `\n${vm.serialTail(400)}\n`);
    throw error;
  } finally {
    await vm.stop();
  }
}
