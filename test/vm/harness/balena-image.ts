// A small disk image shaped like balenaOS for the end-to-end tests: an MBR with resin-boot (FAT),
// resin-rootA, resin-rootB, and resin-state + resin-data in an extended partition. It boots on a
// BIOS VM once written over a whole disk (SYSLINUX in the MBR and on resin-boot), runs the base
// disk's Debian kernel with a tiny initramfs, and switches to a busybox userland on resin-rootA
// whose /etc/os-release says balenaOS. That userland mounts resin-boot at /mnt/boot, authorizes
// the os.sshKeys of /mnt/boot/config.json for root and serves SSH (dropbear) on port 22222.
import { existsSync, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, open, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachedBuild, hashSources } from './cache.ts';
import { checkBuildPrerequisites, debianBaseKey, ensureDebianBase } from './debian-base.ts';
import { run, sh, shellQuote, step } from './run.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
const filesDir = join(here, 'balena-files');

/** Where the test userland serves SSH, as balenaOS does. */
export const BALENA_SSH_PORT = 22222;
/** Where the test userland mounts resin-boot (as balenaOS does): config.json and the stage2 log live there. */
export const BALENA_BOOT_MOUNT = '/mnt/boot';

// Kernel modules the initramfs loads (with their dependencies): disk, network, FAT.
const INITRAMFS_MODULES = [
  'virtio_pci',
  'virtio_blk',
  'virtio_net',
  'vfat',
  'nls_cp437',
  'nls_ascii',
  'nls_utf8',
];
// Host programs copied into the userland with the libraries they link.
const USERLAND_PROGRAMS = [
  { from: '/usr/sbin/dropbear', to: 'usr/sbin/dropbear' },
  { from: '/usr/lib/openssh/sftp-server', to: 'usr/lib/sftp-server' },
];
const BUSYBOX = '/bin/busybox';
const SYSLINUX_MBR = '/usr/lib/syslinux/mbr/mbr.bin';
/** GRUB's x86_64-efi modules (grub-efi-amd64-bin): the image's UEFI boot loader is built from them. */
const GRUB_EFI_MODULES_DIR = '/usr/lib/grub/x86_64-efi';
const GRUB_EFI_PRELOAD = [
  'part_msdos',
  'fat',
  'search',
  'search_label',
  'linux',
  'normal',
  'serial',
  'terminal',
  'echo',
];

interface PartitionSpec {
  label: string;
  type: string;
  sizeMiB: number;
  fs: 'vfat' | 'ext4';
  logical?: boolean;
}

// Sizes in MiB; every partition starts on a 4 MiB boundary like balenaOS images.
const ALIGN_MIB = 4;
const LAYOUT: PartitionSpec[] = [
  { label: 'resin-boot', type: 'e', sizeMiB: 40, fs: 'vfat' },
  { label: 'resin-rootA', type: '83', sizeMiB: 48, fs: 'ext4' },
  { label: 'resin-rootB', type: '83', sizeMiB: 48, fs: 'ext4' },
  { label: 'resin-state', type: '83', sizeMiB: 8, fs: 'ext4', logical: true },
  { label: 'resin-data', type: '83', sizeMiB: 48, fs: 'ext4', logical: true },
];

export interface BalenaPartition {
  /** 1-4 primary, 5-6 logical (inside the extended partition 4). */
  number: number;
  label: string;
  fs: 'vfat' | 'ext4';
  startBytes: number;
  sizeBytes: number;
}

export interface BalenaTestImage {
  /** Raw disk image (sparse). */
  img: string;
  /** The same, gzipped. */
  imgGz: string;
  rawSizeBytes: number;
  partitions: BalenaPartition[];
  /** "ssh-ed25519 AAAA..." of the userland's dropbear (generated at build time). */
  hostPublicKey: string;
  sshPort: number;
  bootMountPoint: string;
  /** Contents of the userland's /etc/os-release. */
  osRelease: string;
  kernelVersion: string;
}

interface BalenaManifest {
  rawSizeBytes: number;
  partitions: BalenaPartition[];
  hostPublicKey: string;
  kernelVersion: string;
  builtAt: string;
  buildSeconds: number;
}

/** The cache key of the test image: changes with this builder, its files, or the base disk. */
export function balenaTestImageKey(): string {
  return hashSources([fileURLToPath(import.meta.url), filesDir], [debianBaseKey(), ...INITRAMFS_MODULES]);
}

/** Builds (once, cached) and returns the balenaOS-shaped test image. Builds the base disk first. */
export async function ensureBalenaTestImage(): Promise<BalenaTestImage> {
  const base = await ensureDebianBase();
  const { dir, manifest } = await cachedBuild(`balena-test-${balenaTestImageKey()}`, (out) =>
    buildBalenaImage(out, base.kernelPath, base.modulesDir, base.kernelVersion),
  );
  return {
    img: join(dir, 'balena.img'),
    imgGz: join(dir, 'balena.img.gz'),
    rawSizeBytes: manifest.rawSizeBytes,
    partitions: manifest.partitions,
    hostPublicKey: manifest.hostPublicKey,
    sshPort: BALENA_SSH_PORT,
    bootMountPoint: BALENA_BOOT_MOUNT,
    osRelease: readFileSync(join(filesDir, 'rootfs/etc/os-release'), 'utf8'),
    kernelVersion: manifest.kernelVersion,
  };
}

/** Where each partition of LAYOUT goes, with room for the extended partition's EBRs. */
export function planBalenaPartitions(): {
  partitions: BalenaPartition[];
  extendedStartMiB: number;
  totalMiB: number;
} {
  const partitions: BalenaPartition[] = [];
  let next = ALIGN_MIB;
  let extendedStartMiB = 0;
  let number = 1;
  for (const spec of LAYOUT) {
    if (spec.logical) {
      if (extendedStartMiB === 0) {
        extendedStartMiB = next;
        number = 5;
      }
      next += ALIGN_MIB; // the EBR in front of each logical partition, padded to the alignment
    }
    partitions.push({
      number,
      label: spec.label,
      fs: spec.fs,
      startBytes: next * 1024 * 1024,
      sizeBytes: spec.sizeMiB * 1024 * 1024,
    });
    next += spec.sizeMiB;
    number++;
  }
  return { partitions, extendedStartMiB, totalMiB: next };
}

// The sfdisk script for the layout; sectors of 512 bytes.
function sfdiskScript(plan: ReturnType<typeof planBalenaPartitions>): string {
  const sectors = (bytes: number) => bytes / 512;
  const lines = ['label: dos', 'unit: sectors'];
  for (const [index, part] of plan.partitions.entries()) {
    const spec = LAYOUT[index]!;
    if (part.number === 5) {
      const start = plan.extendedStartMiB * 2048;
      lines.push(`start=${start}, size=${plan.totalMiB * 2048 - start}, type=5`);
    }
    const flags = part.number === 1 ? ', bootable' : '';
    lines.push(
      `start=${sectors(part.startBytes)}, size=${sectors(part.sizeBytes)}, type=${spec.type}${flags}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function buildBalenaImage(
  out: string,
  kernelPath: string,
  modulesDir: string,
  kernelVersion: string,
): Promise<BalenaManifest> {
  const started = Date.now();
  const log = join(out, 'build.log');
  await checkBuildPrerequisites([
    'mkfs.vfat',
    'mcopy',
    'syslinux',
    'mkfs.ext4',
    'sfdisk',
    'cpio',
    'gzip',
    'dropbearkey',
    'ldd',
    'grub-mkstandalone',
    'mmd',
  ]);
  for (const file of [BUSYBOX, SYSLINUX_MBR, ...USERLAND_PROGRAMS.map((p) => p.from)]) {
    if (!existsSync(file)) {
      throw new Error(
        `${file} is missing (apt packages busybox-static, syslinux-common, dropbear-bin, openssh-sftp-server)`,
      );
    }
  }
  // The initramfs carries busybox alone: it must be the static build.
  if ((await run('ldd', [BUSYBOX], { allowFailure: true })).exitCode === 0) {
    throw new Error(`${BUSYBOX} is dynamically linked: install busybox-static instead of busybox`);
  }

  step(log, 'balena test image: initramfs');
  const initrd = join(out, 'initrd.img');
  await buildInitramfs(join(out, 'initramfs'), initrd, modulesDir, log);

  step(log, 'balena test image: userland for resin-rootA');
  const rootfs = join(out, 'rootfs');
  const hostPublicKey = await buildUserland(rootfs, log);

  step(log, 'balena test image: partitions and file systems');
  const plan = planBalenaPartitions();
  const img = join(out, 'balena.img');
  const rawSizeBytes = plan.totalMiB * 1024 * 1024;
  await run('truncate', ['-s', String(rawSizeBytes), img], { log });
  await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', img], {
    log,
    input: sfdiskScript(plan),
  });
  await checkPartitionTable(img, plan.partitions, log);
  for (const part of plan.partitions) {
    const fsImage = join(out, `${part.label}.fs`);
    await run('truncate', ['-s', String(part.sizeBytes), fsImage], { log });
    if (part.fs === 'vfat') {
      await run('mkfs.vfat', ['-n', part.label, '-h', String(part.startBytes / 512), fsImage], { log });
      await mcopy(fsImage, 0, kernelPath, 'vmlinuz', log);
      await mcopy(fsImage, 0, initrd, 'initrd.img', log);
      await mcopy(fsImage, 0, join(filesDir, 'boot/syslinux.cfg'), 'syslinux.cfg', log);
      await installEfiBootLoader(fsImage, out, log);
    } else {
      const contents = part.label === 'resin-rootA' ? ['-d', rootfs] : [];
      await run('mkfs.ext4', ['-q', '-F', '-L', part.label, ...contents, fsImage], { log });
    }
    await run(
      'dd',
      [
        `if=${fsImage}`,
        `of=${img}`,
        'bs=1M',
        `seek=${part.startBytes}`,
        'oflag=seek_bytes',
        'conv=notrunc,sparse',
        'status=none',
      ],
      { log },
    );
    await rm(fsImage);
  }

  step(log, 'balena test image: SYSLINUX into the MBR and resin-boot');
  await run('dd', [`if=${SYSLINUX_MBR}`, `of=${img}`, 'bs=440', 'count=1', 'conv=notrunc', 'status=none'], {
    log,
  });
  await run('syslinux', ['--install', '--offset', String(plan.partitions[0]!.startBytes), img], {
    log,
    env: { ...process.env, MTOOLS_SKIP_CHECK: '1' },
  });
  await rm(rootfs, { recursive: true, force: true });
  await rm(join(out, 'initramfs'), { recursive: true, force: true });
  await rm(initrd);

  step(log, 'balena test image: gzip');
  await run('gzip', ['-k', '-6', img], { log });
  const buildSeconds = Math.round((Date.now() - started) / 1000);
  step(log, `balena test image built in ${buildSeconds} s`);
  return {
    rawSizeBytes,
    partitions: plan.partitions,
    hostPublicKey,
    kernelVersion,
    builtAt: new Date().toISOString(),
    buildSeconds,
  };
}

// Reads the table back with sfdisk so a layout mistake fails the build, not a boot.
async function checkPartitionTable(img: string, expected: BalenaPartition[], log: string): Promise<void> {
  const { stdout } = await run('sfdisk', ['--json', img], { log });
  const table = JSON.parse(stdout) as {
    partitiontable: { partitions: { node: string; start: number; size: number }[] };
  };
  for (const part of expected) {
    const found = table.partitiontable.partitions.find(
      (p) => p.node.endsWith(String(part.number)) && p.start * 512 === part.startBytes,
    );
    if (!found || found.size * 512 !== part.sizeBytes)
      throw new Error(`partition ${part.number} (${part.label}) is not where planned`);
  }
}

// UEFI: a standalone GRUB (its grub.cfg inside) as \EFI\BOOT\BOOTX64.EFI on resin-boot, the
// removable path firmware boots when it has no entry of its own for the disk.
async function installEfiBootLoader(fsImage: string, out: string, log: string): Promise<void> {
  if (!existsSync(GRUB_EFI_MODULES_DIR)) {
    throw new Error(`${GRUB_EFI_MODULES_DIR} is missing (apt package grub-efi-amd64-bin)`);
  }
  const efi = join(out, 'BOOTX64.EFI');
  await run(
    'grub-mkstandalone',
    [
      '--format=x86_64-efi',
      `--directory=${GRUB_EFI_MODULES_DIR}`,
      `--output=${efi}`,
      `--modules=${GRUB_EFI_PRELOAD.join(' ')}`,
      `--install-modules=${GRUB_EFI_PRELOAD.join(' ')}`,
      '--locales=',
      '--themes=',
      '--fonts=',
      `boot/grub/grub.cfg=${join(filesDir, 'boot/grub-efi.cfg')}`,
    ],
    { log },
  );
  const env = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
  await run('mmd', ['-i', fsImage, '::/EFI', '::/EFI/BOOT'], { log, env });
  await mcopy(fsImage, 0, efi, 'EFI/BOOT/BOOTX64.EFI', log);
  await rm(efi);
}

// Copies a host file into a FAT file system image (at byte `offset` of `image`) with mtools.
async function mcopy(image: string, offset: number, from: string, name: string, log?: string): Promise<void> {
  await run('mcopy', ['-o', '-i', `${image}@@${offset}`, from, `::/${name}`], {
    log,
    env: { ...process.env, MTOOLS_SKIP_CHECK: '1' },
  });
}

// Module files to load, dependencies first, from the kernel's modules.dep.
function moduleLoadOrder(modulesDir: string, wanted: string[]): string[] {
  const deps = new Map<string, string[]>();
  for (const line of readFileSync(join(modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const [module, rest] = line.split(':');
    if (module && rest !== undefined) deps.set(module, rest.trim().split(/\s+/).filter(Boolean));
  }
  const byName = new Map<string, string>();
  for (const module of deps.keys())
    byName.set(
      module
        .split('/')
        .pop()!
        .replace(/\.ko(\..*)?$/, '')
        .replace(/-/g, '_'),
      module,
    );
  const builtin = readFileSync(join(modulesDir, 'modules.builtin'), 'utf8');
  const order: string[] = [];
  const visit = (module: string) => {
    if (order.includes(module)) return;
    for (const dep of [...(deps.get(module) ?? [])].reverse()) visit(dep);
    order.push(module);
  };
  for (const name of wanted) {
    const module = byName.get(name);
    if (module) visit(module);
    else if (!builtin.includes(`/${name}.ko`))
      throw new Error(`kernel module ${name} not found in ${modulesDir}`);
  }
  return order;
}

async function buildInitramfs(dir: string, output: string, modulesDir: string, log: string): Promise<void> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  await mkdir(join(dir, 'lib/modules'), { recursive: true });
  await copyFile(BUSYBOX, join(dir, 'bin/busybox'));
  await copyFile(join(filesDir, 'initramfs/init'), join(dir, 'init'));
  await chmod(join(dir, 'init'), 0o755);
  await chmod(join(dir, 'bin/busybox'), 0o755);
  const order = moduleLoadOrder(modulesDir, INITRAMFS_MODULES);
  const names: string[] = [];
  for (const module of order) {
    const name = module.split('/').pop()!;
    if (name.endsWith('.ko')) await copyFile(join(modulesDir, module), join(dir, 'lib/modules', name));
    else throw new Error(`compressed kernel module ${module} is not supported by the test initramfs`);
    names.push(name);
  }
  await writeFile(join(dir, 'lib/modules/load-order'), `${names.join('\n')}\n`);
  await sh(
    `cd ${shellQuote(dir)} && find . | cpio -o -H newc --quiet -R 0:0 | gzip -9 > ${shellQuote(output)}`,
    { log },
  );
}

// The resin-rootA tree: busybox with its applet links, dropbear and sftp-server with their
// libraries, the files of balena-files/rootfs, a dropbear host key. Returns its public key.
async function buildUserland(rootfs: string, log: string): Promise<string> {
  for (const dir of [
    'bin',
    'sbin',
    'usr/bin',
    'usr/sbin',
    'usr/lib',
    'lib64',
    'dev',
    'proc',
    'sys',
    'run',
    'tmp',
    'mnt',
    'home/root',
    'var/log',
    'etc/dropbear',
  ]) {
    await mkdir(join(rootfs, dir), { recursive: true });
  }
  await chmod(join(rootfs, 'tmp'), 0o1777);
  await chmod(join(rootfs, 'home/root'), 0o700);
  await symlink('../run', join(rootfs, 'var/run'));
  await copyFile(BUSYBOX, join(rootfs, 'bin/busybox'));
  await chmod(join(rootfs, 'bin/busybox'), 0o755);
  const applets = (await run(BUSYBOX, ['--list-full'], { log })).stdout
    .split('\n')
    .filter((line) => line.includes('/'));
  for (const applet of applets) {
    if (applet === 'bin/busybox') continue;
    await mkdir(join(rootfs, dirname(applet)), { recursive: true });
    await symlink('/bin/busybox', join(rootfs, applet)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
  }

  const libraries = new Set<string>();
  for (const program of USERLAND_PROGRAMS) {
    await copyFile(program.from, join(rootfs, program.to));
    await chmod(join(rootfs, program.to), 0o755);
    const { stdout } = await run('ldd', [program.from], { log });
    for (const match of stdout.matchAll(/(\/\S+\.so[^\s]*)/g)) libraries.add(match[1]!);
  }
  for (const library of libraries) {
    await mkdir(join(rootfs, dirname(library)), { recursive: true });
    await copyFile(library, join(rootfs, library)); // follows symlinks: the real file under the soname
  }

  await run('cp', ['-r', `${join(filesDir, 'rootfs')}/.`, `${rootfs}/`], { log });
  for (const script of [
    'etc/init.d/rcS',
    'etc/init.d/rcK',
    'usr/share/udhcpc/default.script',
    'usr/sbin/balena-config-ssh-keys',
    'usr/sbin/balena-heartbeat',
  ]) {
    await chmod(join(rootfs, script), 0o755);
  }
  await chmod(join(rootfs, 'etc/shadow'), 0o600);
  const hostKey = join(rootfs, 'etc/dropbear/dropbear_ed25519_host_key');
  await run('dropbearkey', ['-t', 'ed25519', '-f', hostKey], { log });
  const { stdout } = await run('dropbearkey', ['-y', '-f', hostKey], { log });
  const publicLine = stdout.split('\n').find((line) => line.startsWith('ssh-ed25519 '));
  if (!publicLine) throw new Error('dropbearkey printed no public key');
  await writeFile(join(rootfs, 'etc/dropbear/dropbear_ed25519_host_key.pub'), `${publicLine.trim()}\n`);
  return publicLine.trim().split(/\s+/).slice(0, 2).join(' ');
}

/** The byte offset of partition 1 (resin-boot) of a raw image, read from its MBR. */
export async function bootPartitionOffset(img: string): Promise<number> {
  const handle = await open(img, 'r');
  const mbr = Buffer.alloc(512);
  try {
    await handle.read(mbr, 0, 512, 0);
  } finally {
    await handle.close();
  }
  if (mbr[510] !== 0x55 || mbr[511] !== 0xaa) throw new Error(`${img} has no MBR`);
  return mbr.readUInt32LE(0x1be + 8) * 512;
}

/**
 * Copies a balena test image (sparse) and writes files into its resin-boot partition, e.g.
 * `{ 'config.json': JSON.stringify({ os: { sshKeys: [key] } }) }`. Returns `dest`.
 */
export async function copyImageWithBootFiles(
  src: string,
  dest: string,
  files: Record<string, string | Buffer>,
): Promise<string> {
  await run('cp', ['--sparse=always', src, dest]);
  const offset = await bootPartitionOffset(dest);
  const staging = `${dest}.files`;
  await mkdir(staging, { recursive: true });
  try {
    for (const [name, content] of Object.entries(files)) {
      const path = join(staging, name.replace(/\//g, '_'));
      await writeFile(path, content);
      await mcopy(dest, offset, path, name);
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return dest;
}

/** Reads a file from the resin-boot partition of a raw balena test image. */
export async function readBootFile(img: string, name: string): Promise<string> {
  const offset = await bootPartitionOffset(img);
  const { stdout } = await run('mcopy', ['-n', '-i', `${img}@@${offset}`, `::/${name}`, '-'], {
    env: { ...process.env, MTOOLS_SKIP_CHECK: '1' },
  });
  return stdout;
}
