// The base Debian disk every end-to-end VM boots from: Debian bookworm (debootstrap minbase),
// BIOS GRUB in the MBR, one ext4 root partition, DHCP, sshd with a host key known in advance,
// root and a sudo user `migrator` reachable with a generated test key.
import { appendFileSync, existsSync, readdirSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachedBuild, hashSources, vmCacheDir } from './cache.ts';
import { run, sh, shellQuote, step, unmountUnder } from './run.ts';
import { sshExec, sshRun, waitForSsh } from './ssh.ts';
import { startVm } from './vm.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
const overlayDir = join(here, 'debian-rootfs');

export const DEBIAN_ROOT_LABEL = 'debian-root';
export const DEBIAN_SUITE = 'bookworm';
const DISK_SIZE_MIB = 2048;
const PARTITION_START_MIB = 1;
const PACKAGES = [
  'linux-image-cloud-amd64',
  'grub-pc',
  'openssh-server',
  'openssh-sftp-server',
  'systemd-sysv',
  'udev',
  'ifupdown',
  'isc-dhcp-client',
  'sudo',
  'util-linux',
  'coreutils',
  'kmod',
  'e2fsprogs',
  'procps',
  'iproute2',
  'fdisk',
];

// Boot-time work nothing here needs, costly under TCG: the e2scrub leftover sweep and the
// text-console gettys (the VM has no screen; the serial getty stays).
const MASKED_UNITS = ['e2scrub_reap.service', 'getty-static.service', 'getty@tty1.service'];

export interface BaseDisk {
  /** qcow2 image; use it as a backing file only (startVm makes an overlay). */
  disk: string;
  /** Unencrypted OpenSSH ed25519 private key accepted for root and migrator. */
  sshKeyPath: string;
  sshPublicKey: string;
  /** Users the key logs in as; `migrator` has passwordless sudo. */
  users: { root: 'root'; sudoer: 'migrator' };
  /** "ssh-ed25519 AAAA... root@debian-vm": the only host key sshd offers. */
  hostPublicKey: string;
  /** The disk's kernel and initramfs-tools initrd, copied out. */
  kernelPath: string;
  initrdPath: string;
  kernelVersion: string;
  /** Copy of the disk's /lib/modules/<kernelVersion>, for initramfs builders. */
  modulesDir: string;
  rootLabel: string;
  /** Size of the virtual disk (one partition from 1 MiB to the end). */
  diskSizeBytes: number;
  /** Directory holding all of the above. */
  dir: string;
}

interface BaseManifest {
  kernelVersion: string;
  hostPublicKey: string;
  sshPublicKey: string;
  builtAt: string;
  buildSeconds: number;
  packages: string[];
}

/** The cache key of the base disk: changes whenever this builder or its files change. */
export function debianBaseKey(): string {
  return hashSources([fileURLToPath(import.meta.url), overlayDir], [DEBIAN_SUITE, ...PACKAGES]);
}

/** Builds (once, cached) and returns the base Debian disk. Needs root, debootstrap, QEMU. */
export async function ensureDebianBase(): Promise<BaseDisk> {
  const { dir, manifest } = await cachedBuild(`debian-base-${debianBaseKey()}`, buildDebianBase);
  return {
    disk: join(dir, 'disk.qcow2'),
    sshKeyPath: join(dir, 'id_ed25519'),
    sshPublicKey: manifest.sshPublicKey,
    users: { root: 'root', sudoer: 'migrator' },
    hostPublicKey: manifest.hostPublicKey,
    kernelPath: join(dir, 'vmlinuz'),
    initrdPath: join(dir, 'initrd.img'),
    kernelVersion: manifest.kernelVersion,
    modulesDir: join(dir, 'modules', manifest.kernelVersion),
    rootLabel: DEBIAN_ROOT_LABEL,
    diskSizeBytes: DISK_SIZE_MIB * 1024 * 1024,
    dir,
  };
}

/** Fails early, with what to do, when the build cannot work on this machine. */
export async function checkBuildPrerequisites(tools: string[]): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error('building the VM images needs root (debootstrap, chroot, mkfs -d)');
  const missing: string[] = [];
  for (const tool of tools) {
    const found = await sh(`command -v ${shellQuote(tool)}`, { allowFailure: true });
    if (found.exitCode !== 0) missing.push(tool);
  }
  if (missing.length > 0) {
    throw new Error(
      `missing tools for the VM images: ${missing.join(', ')} (see test/vm/harness/README.md for apt packages)`,
    );
  }
}

async function buildDebianBase(out: string): Promise<BaseManifest> {
  const started = Date.now();
  const log = join(out, 'build.log');
  await checkBuildPrerequisites([
    'debootstrap',
    'chroot',
    'mkfs.ext4',
    'sfdisk',
    'ssh-keygen',
    'qemu-img',
    'qemu-system-x86_64',
  ]);
  const rootfs = join(out, 'rootfs');
  try {
    step(log, `debootstrap ${DEBIAN_SUITE} minbase into ${rootfs} (about a minute)`);
    const debs = join(vmCacheDir(), 'debootstrap-debs');
    await mkdir(debs, { recursive: true });
    const mirror = process.env.BALENA_MIGRATE_DEBIAN_MIRROR || 'http://deb.debian.org/debian';
    await run(
      'debootstrap',
      [
        '--variant=minbase',
        `--cache-dir=${debs}`,
        `--include=${PACKAGES.join(',')}`,
        DEBIAN_SUITE,
        rootfs,
        mirror,
      ],
      { log, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } },
    );
    await unmountUnder(rootfs);

    step(log, 'configuring the tree: network, sshd, GRUB defaults, users, keys');
    await run('cp', ['-r', `${overlayDir}/.`, `${rootfs}/`], { log });
    await chmod(join(rootfs, 'etc/sudoers.d/migrator'), 0o440);
    await sh(`rm -f ${shellQuote(rootfs)}/etc/ssh/ssh_host_*`, { log });
    await run(
      'ssh-keygen',
      [
        '-q',
        '-t',
        'ed25519',
        '-N',
        '',
        '-C',
        'root@debian-vm',
        '-f',
        join(rootfs, 'etc/ssh/ssh_host_ed25519_key'),
      ],
      { log },
    );
    const hostPublicKey = (await readFile(join(rootfs, 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8')).trim();
    await run(
      'ssh-keygen',
      ['-q', '-t', 'ed25519', '-N', '', '-C', 'balena-migrate-test', '-f', join(out, 'id_ed25519')],
      { log },
    );
    const sshPublicKey = (await readFile(join(out, 'id_ed25519.pub'), 'utf8')).trim();

    await run(
      'chroot',
      [rootfs, 'useradd', '--create-home', '--shell', '/bin/bash', '--groups', 'sudo', 'migrator'],
      { log },
    );
    const uid = Number((await run('chroot', [rootfs, 'id', '-u', 'migrator'], { log })).stdout.trim());
    const gid = Number((await run('chroot', [rootfs, 'id', '-g', 'migrator'], { log })).stdout.trim());
    await authorize(join(rootfs, 'root'), sshPublicKey, 0, 0);
    await authorize(join(rootfs, 'home/migrator'), sshPublicKey, uid, gid);
    for (const unit of MASKED_UNITS) await symlink('/dev/null', join(rootfs, 'etc/systemd/system', unit));
    await run('chroot', [rootfs, 'apt-get', 'clean'], { log });
    await sh(`rm -rf ${shellQuote(rootfs)}/var/lib/apt/lists/* ${shellQuote(rootfs)}/var/log/*.log`, { log });

    const kernelVersion = readdirSync(join(rootfs, 'lib/modules'))[0];
    if (!kernelVersion) throw new Error('debootstrap installed no kernel modules');
    await copyFile(join(rootfs, 'boot', `vmlinuz-${kernelVersion}`), join(out, 'vmlinuz'));
    await copyFile(join(rootfs, 'boot', `initrd.img-${kernelVersion}`), join(out, 'initrd.img'));
    await mkdir(join(out, 'modules'));
    await run('cp', ['-a', join(rootfs, 'lib/modules', kernelVersion), join(out, 'modules', kernelVersion)], {
      log,
    });

    step(log, 'making the ext4 root file system and the MBR disk');
    const fsImage = join(out, 'root.ext4');
    const raw = join(out, 'disk.raw');
    await run('truncate', ['-s', `${DISK_SIZE_MIB - PARTITION_START_MIB}M`, fsImage], { log });
    await run('mkfs.ext4', ['-q', '-F', '-L', DEBIAN_ROOT_LABEL, '-d', rootfs, fsImage], { log });
    await rm(rootfs, { recursive: true, force: true });
    await run('truncate', ['-s', `${DISK_SIZE_MIB}M`, raw], { log });
    await run('sfdisk', ['--quiet', raw], {
      log,
      input: `label: dos\nstart=${PARTITION_START_MIB * 2048}, type=83, bootable\n`,
    });
    await run(
      'dd',
      [
        `if=${fsImage}`,
        `of=${raw}`,
        'bs=1M',
        `seek=${PARTITION_START_MIB}`,
        'conv=notrunc,sparse',
        'status=none',
      ],
      { log },
    );
    await rm(fsImage);

    await installGrub(raw, out, hostPublicKey, log);

    step(log, 'converting to qcow2');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, join(out, 'disk.qcow2')], { log });
    await rm(raw);
    const buildSeconds = Math.round((Date.now() - started) / 1000);
    step(log, `Debian base disk built in ${buildSeconds} s`);
    return {
      kernelVersion,
      hostPublicKey,
      sshPublicKey,
      builtAt: new Date().toISOString(),
      buildSeconds,
      packages: PACKAGES,
    };
  } finally {
    await unmountUnder(rootfs);
  }
}

// Writes ~/.ssh/authorized_keys under `home` with the modes sshd insists on.
async function authorize(home: string, publicKey: string, uid: number, gid: number): Promise<void> {
  const sshDir = join(home, '.ssh');
  await mkdir(sshDir, { recursive: true, mode: 0o700 });
  await writeFile(join(sshDir, 'authorized_keys'), `${publicKey}\n`, { mode: 0o600 });
  await chmod(sshDir, 0o700);
  await chown(sshDir, uid, gid);
  await chown(join(sshDir, 'authorized_keys'), uid, gid);
}

// GRUB goes into the MBR from inside the guest: boot the disk's own kernel directly once, run
// grub-install and update-grub over SSH, power off.
async function installGrub(raw: string, out: string, hostPublicKey: string, log: string): Promise<void> {
  step(log, 'first boot (direct kernel) to install GRUB into the MBR');
  const vm = await startVm({
    name: 'debian-base-build',
    disk: raw,
    writeDisk: true,
    forwards: [{ guestPort: 22 }],
    kernel: {
      kernel: join(out, 'vmlinuz'),
      initrd: join(out, 'initrd.img'),
      append: `root=LABEL=${DEBIAN_ROOT_LABEL} ro console=ttyS0,115200`,
    },
  });
  try {
    const target = {
      port: vm.hostPort(22),
      user: 'root',
      privateKeyPath: join(out, 'id_ed25519'),
      hostPublicKey,
    };
    await vm.waitForTcpBanner(22, 180_000);
    await waitForSsh(target, 60_000);
    const output = await sshRun(target, 'grub-install /dev/vda 2>&1 && update-grub 2>&1 && sync', 300_000);
    await writeFile(join(out, 'grub-install.log'), output);
    step(log, 'GRUB installed; powering off');
    await sshExec(target, 'systemctl poweroff', 20_000).catch(() => undefined);
    await vm.waitForExit(180_000);
    if (!existsSync(raw)) throw new Error('disk vanished during the first boot');
  } catch (error) {
    appendFileSync(log, `\n${vm.serialTail(400)}\n`);
    throw error;
  } finally {
    await vm.stop();
  }
}
