// What the Raspberry Pi and u-boot planners check and build the same way: the host's tools,
// the install disk behind /, the work dir stage2 reads the payload from, the firmware boot
// partition they write to, sizes and RAM, the payload and the stage2 config. The same rules
// as the GRUB planner (grub.ts), for hosts that boot from a FAT or ext partition the firmware
// reads itself. Pure: facts in, answers and refusal reasons out.
import { posix } from 'node:path';
import { checkStage2Config } from '../../stage2/build/stage2-config.ts';
import type { BlockDevice, DirLocation, Facts } from '../facts/facts.ts';
import type { PayloadFile, PlanInput, Stage2Config } from '../plan/plan.ts';
import {
  BOOT_MARGIN_BYTES,
  CONFIG_JSON_NAME,
  formatBytes,
  IMAGE_NAMES,
  INITRAMFS_NAME,
  STAGE2_LOG_NAME,
  WORK_MARGIN_BYTES,
} from './grub.ts';
import { logDeviceProblems, stage2RamNeed, watchdogToKick } from './stage2-common.ts';

/** Filesystems the stage2 init mounts. */
export const STAGE2_FILESYSTEMS = ['ext2', 'ext3', 'ext4', 'vfat'];
/** What a path inside a partition may hold to pass through balena-stage2.yml. */
export const STAGE2_PATH = /^[A-Za-z0-9._/+,=-]+$/;
const UUID_TEXT = /^[A-Za-z0-9-]+$/;
const NON_DISK_FILESYSTEMS = ['tmpfs', 'ramfs', 'nfs', 'nfs4', 'cifs', 'smb3', '9p', 'overlay', 'squashfs'];

export function blockByName(facts: Facts, name: string | null | undefined): BlockDevice | undefined {
  return name ? facts.blockDevices.find((b) => b.name === name) : undefined;
}

/** PATH inside MOUNTPOINT as `/x/y` ('' for the mount point itself), or null when outside. */
export function underMount(mountpoint: string, path: string): string | null {
  if (path === mountpoint) return '';
  if (mountpoint === '/') return path.startsWith('/') ? path : null;
  return path.startsWith(`${mountpoint}/`) ? path.slice(mountpoint.length) : null;
}

/** Where a directory is inside its filesystem (`/` = its root), bind mounts included. */
export function pathInFilesystem(loc: DirLocation): string | null {
  const rel = underMount(loc.mountpoint, loc.path);
  if (rel === null) return null;
  return posix.join(loc.fsRoot ?? '/', rel || '/');
}

/** A boot file's bytes, when the probe read them. */
export function bootFileContent(facts: Facts, path: string): Buffer | null {
  const f = facts.boot?.files.find((x) => x.path === path);
  return f?.contentBase64 != null ? Buffer.from(f.contentBase64, 'base64') : null;
}

export function hasBootFile(facts: Facts, path: string): boolean {
  return facts.boot?.files.some((x) => x.path === path) ?? false;
}

/** Refusals about the host as a whole: the tools the transaction needs (Secure Boot is planMigration's). */
export function hostProblems(facts: Facts): string[] {
  const reasons: string[] = [];
  if (!facts.tools.setsid)
    reasons.push(
      'setsid is missing (util-linux): the boot setup must run detached from SSH; install util-linux',
    );
  if (facts.tools.flock === false)
    reasons.push(
      'flock is missing (util-linux): the boot setup transaction needs it for its lock; install util-linux',
    );
  if (!facts.tools.sha256sum)
    reasons.push('sha256sum is missing (coreutils): uploads cannot be verified; install coreutils');
  return reasons;
}

/** The partition stage2 boots from (root=): a plain partition with a filesystem stage2 mounts. */
export function bootPartitionProblems(
  facts: Facts,
  dir: DirLocation,
  what: string,
): { part: BlockDevice | undefined; reasons: string[] } {
  const reasons: string[] = [];
  const part = blockByName(facts, dir.device);
  if (!dir.exists) reasons.push(`${dir.path} (${what}) does not exist`);
  if (part?.type !== 'part') {
    reasons.push(
      `${dir.path} (${what}) is on ${dir.device ?? dir.source ?? 'no block device'}, not a disk partition: ` +
        'the stage2 kernel must find it by its PARTUUID',
    );
  } else if (!part.partuuid || !UUID_TEXT.test(part.partuuid)) {
    reasons.push(`the partition of ${dir.path} (${part.name}) has no PARTUUID the stage2 kernel could name`);
  }
  if (!STAGE2_FILESYSTEMS.includes(dir.fstype)) {
    reasons.push(
      `${dir.path} is on ${dir.fstype}, which stage2 cannot mount (${STAGE2_FILESYSTEMS.join(', ')})`,
    );
  }
  if ((dir.fsRoot ?? '/') !== '/') reasons.push(`${dir.path} is a bind mount of ${dir.fsRoot}`);
  if (dir.mountpoint !== dir.path) {
    reasons.push(`${dir.path} is not the mount point of its partition (${dir.mountpoint} is)`);
  }
  if (!dir.writable) reasons.push(`${dir.path} is not writable (read-only mount?)`);
  return { part: part?.type === 'part' ? part : undefined, reasons };
}

/** The install disk: the whole disk holding the root partition; refusals when it cannot be told. */
export function installDiskOf(
  facts: Facts,
  rawImageBytes: number,
): { disk: BlockDevice | undefined; rootPart: BlockDevice | undefined; reasons: string[] } {
  const reasons: string[] = [];
  const rootPart = blockByName(facts, facts.rootDevice ?? facts.rootDir?.device);
  if (rootPart?.type !== 'part') {
    reasons.push(
      `the root filesystem is on ${rootPart?.name ?? facts.rootDir?.source ?? 'no block device'}, not a plain ` +
        'partition: the install disk cannot be told safely; this layout is not supported',
    );
    return { disk: undefined, rootPart: undefined, reasons };
  }
  if (!rootPart.uuid || !UUID_TEXT.test(rootPart.uuid)) {
    reasons.push(
      `the root filesystem (${rootPart.name}) has no usable UUID: stage2 could not find the install disk`,
    );
  }
  const disk = blockByName(facts, rootPart.parent);
  if (!disk) reasons.push(`the disk holding the root partition ${rootPart.name} was not found in the probe`);
  else {
    if (disk.readOnly) reasons.push(`the install disk ${disk.name} is read-only`);
    if (disk.sizeBytes < rawImageBytes) {
      reasons.push(
        `the install disk ${disk.name} (${formatBytes(disk.sizeBytes)}) is smaller than the image ` +
          `(${formatBytes(rawImageBytes)} raw)`,
      );
    }
  }
  return { disk, rootPart, reasons };
}

/** The work dir: a plain disk filesystem stage2 can open, with a path it can name. */
export function workDirOf(
  facts: Facts,
  workDir: string,
): { dev: BlockDevice | undefined; inFs: string | null; reasons: string[] } {
  const reasons: string[] = [];
  const work = facts.workDir;
  const dev = blockByName(facts, work.device);
  const inFs = pathInFilesystem(work);
  if (
    !posix.isAbsolute(workDir) ||
    posix.normalize(workDir) !== workDir ||
    workDir === '/' ||
    workDir.endsWith('/')
  ) {
    reasons.push(`the work dir "${workDir}" must be an absolute, normalised path below /`);
  }
  if (work.path !== workDir)
    reasons.push(`the facts were probed for the work dir ${work.path}, not ${workDir}: probe again`);
  if (NON_DISK_FILESYSTEMS.includes(work.fstype) || work.fstype.startsWith('fuse')) {
    reasons.push(
      `the work dir ${workDir} is on ${work.fstype} (${work.mountpoint}), which stage2 cannot open after the ` +
        'reboot; choose a directory on a local disk filesystem (ext2/3/4 or vfat)',
    );
  } else if (!STAGE2_FILESYSTEMS.includes(work.fstype)) {
    reasons.push(
      `the work dir ${workDir} is on ${work.fstype}, which stage2 cannot mount (${STAGE2_FILESYSTEMS.join(', ')})`,
    );
  } else if (!dev || (dev.type !== 'part' && dev.type !== 'disk')) {
    reasons.push(
      `the work dir ${workDir} is on ${work.device ?? work.source ?? 'no block device'}, not a plain partition`,
    );
  } else if (!dev.uuid || !UUID_TEXT.test(dev.uuid)) {
    reasons.push(`the filesystem of the work dir (${dev.name}) has no usable UUID: stage2 could not find it`);
  }
  if (!work.writable)
    reasons.push(`the work dir ${workDir} (checked at ${work.probedPath ?? work.path}) is not writable`);
  if (inFs === null) reasons.push(`the work dir ${workDir} is not under its mount point ${work.mountpoint}`);
  else if (inFs !== '/' && !STAGE2_PATH.test(inFs)) {
    reasons.push(
      `the work dir path ${inFs} has characters stage2 cannot use; use only letters, digits and . _ / = + , -`,
    );
  }
  return { dev, inFs, reasons };
}

/** Everything uploaded to the work dir (the kernel stays on the host). */
export function payloadFiles(input: PlanInput, imageName: string): PayloadFile[] {
  const j = (n: string) => posix.join(input.workDir, n);
  const files: PayloadFile[] = [
    {
      role: 'image',
      source: { kind: 'file', path: input.image.path },
      remotePath: j(imageName),
      sizeBytes: input.image.fileSizeBytes,
      sha256: input.image.fileSha256,
      mode: 0o600,
    },
    {
      role: 'config-json',
      source: { kind: 'file', path: input.configJson.path },
      remotePath: j(CONFIG_JSON_NAME),
      sizeBytes: input.configJson.sizeBytes,
      sha256: input.configJson.sha256,
      mode: 0o600,
    },
    {
      role: 'initramfs',
      source: { kind: 'bytes', data: input.initramfs.data },
      remotePath: j(INITRAMFS_NAME),
      sizeBytes: input.initramfs.data.length,
      sha256: input.initramfs.sha256,
      mode: 0o644,
    },
  ];
  for (const f of input.network?.files ?? []) {
    files.push({
      role: 'network',
      source: { kind: 'bytes', data: f.data },
      remotePath: j(f.name),
      sizeBytes: f.data.length,
      sha256: f.sha256,
      mode: 0o600,
    });
  }
  if (input.kernel.source === 'file') {
    files.push({
      role: 'kernel',
      source: { kind: 'file', path: input.kernel.file.path },
      remotePath: j('vmlinuz'),
      sizeBytes: input.kernel.file.sizeBytes,
      sha256: input.kernel.file.sha256,
      mode: 0o644,
    });
  }
  return files;
}

export interface SizeCheck {
  payloadBytes: number;
  ramNeedBytes: number;
  reasons: string[];
}

/** Room on the boot partition and in the work dir, and RAM for stage2. */
export function sizeProblems(input: PlanInput, boot: DirLocation, bootFilesBytes: number): SizeCheck {
  const reasons: string[] = [];
  const { facts } = input;
  const work = facts.workDir;
  const payloadBytes = payloadFiles(input, IMAGE_NAMES.none).reduce((n, f) => n + f.sizeBytes, 0);
  const bootNeed = bootFilesBytes + BOOT_MARGIN_BYTES;
  const workNeed = payloadBytes + WORK_MARGIN_BYTES;
  if (boot.device !== null && boot.device === work.device && boot.mountpoint === work.mountpoint) {
    if (bootNeed + workNeed > work.freeBytes) {
      reasons.push(
        `${boot.mountpoint} (${boot.device}) has ${formatBytes(work.freeBytes)} free, but the payload and the boot ` +
          `files need ${formatBytes(bootNeed + workNeed)} with margin; free some space or choose another work dir`,
      );
    }
  } else {
    if (bootNeed > boot.freeBytes) {
      reasons.push(
        `${boot.path} has ${formatBytes(boot.freeBytes)} free, but the stage2 kernel, initramfs and boot files ` +
          `need ${formatBytes(bootNeed)} with margin`,
      );
    }
    if (workNeed > work.freeBytes) {
      reasons.push(
        `the work dir ${input.workDir} has ${formatBytes(work.freeBytes)} free, but the payload needs ` +
          `${formatBytes(workNeed)} with margin; free some space or choose another work dir`,
      );
    }
  }
  const ram = stage2RamNeed({
    image: input.image,
    configBytes: input.configJson.sizeBytes,
    network: input.network,
    marginBytes: input.ramMarginBytes,
  });
  if (ram.needBytes > facts.memory.availableBytes) {
    reasons.push(
      `stage2 holds the image in RAM: it needs ${formatBytes(ram.needBytes)} (image ` +
        `${formatBytes(input.image.fileSizeBytes)} + config + log + margin), but only ` +
        `${formatBytes(facts.memory.availableBytes)} is available; use a compressed image or a smaller RAM margin`,
    );
  }
  return { payloadBytes, ramNeedBytes: ram.needBytes, reasons };
}

/** The image's name in the work dir, or a refusal for a compression stage2 cannot read. */
export function imageNameFor(input: PlanInput): { name: string; reasons: string[] } {
  const c = input.image.compression;
  if (!(c in IMAGE_NAMES)) {
    return {
      name: IMAGE_NAMES.none,
      reasons: [`the image is ${c}-compressed; stage2 reads raw, gzip, xz and zip images`],
    };
  }
  return { name: IMAGE_NAMES[c], reasons: [] };
}

/** balena-stage2.yml for a firmware-booted host: no grubenv, restore pairs, cleanup paths. */
export function firmwareStage2Config(opts: {
  input: PlanInput;
  imageName: string;
  workDev: BlockDevice;
  workInFs: string;
  rootPart: BlockDevice;
  installDisk: BlockDevice;
  restores: { from: string; to: string }[];
  cleanup: string[];
}): { config: Stage2Config; problems: string[] } {
  const { input } = opts;
  const rel = (p: string): string => p.replace(/^\/+/, '');
  const ram = stage2RamNeed({
    image: input.image,
    configBytes: input.configJson.sizeBytes,
    network: input.network,
    marginBytes: input.ramMarginBytes,
  });
  const net = input.network?.files ?? [];
  const config: Stage2Config = {
    version: 1,
    mode: input.mode === 'pretend' || input.stage2Pretend ? 'pretend' : 'flash',
    fail_mode: input.failMode,
    grubenv: '',
    grubenv_b64: '',
    work_dev: `UUID=${opts.workDev.uuid}`,
    work_fstype: input.facts.workDir.fstype,
    work_path: opts.workInFs === '/' ? '.' : rel(opts.workInFs),
    install_disk_of: `UUID=${opts.rootPart.uuid}`,
    install_disk_size: opts.installDisk.sizeBytes,
    image_file: opts.imageName,
    image_compression: input.image.compression,
    image_sha256: input.image.fileSha256,
    image_size: input.image.fileSizeBytes,
    image_raw_size: input.image.rawSizeBytes,
    image_raw_sha256: input.image.rawSha256,
    config_file: CONFIG_JSON_NAME,
    config_sha256: input.configJson.sha256,
    network_files: net.map((f) => f.name).join(' '),
    network_sha256: net.map((f) => f.sha256).join(' '),
    ram_margin: ram.marginForStage2,
    boot_label: 'resin-boot',
    log_name: STAGE2_LOG_NAME,
    log_device: input.logDevice ?? '',
    watchdog: watchdogToKick(input.facts)?.device ?? '',
    cleanup: opts.cleanup.join(' '),
    restore_count: opts.restores.length,
  };
  opts.restores.forEach((r, i) => {
    config[`restore_${i + 1}_from`] = r.from;
    config[`restore_${i + 1}_to`] = r.to;
  });
  const problems = checkStage2Config(config).map((p) => `the stage2 config would be invalid: ${p}`);
  if (input.logDevice)
    problems.push(...logDeviceProblems(input.facts, input.logDevice, opts.installDisk.name));
  return { config, problems };
}

/** The notes every firmware plan shares: install disk, work dir, RAM, image, watchdog, log, network. */
export function commonNotes(
  input: PlanInput,
  installDisk: BlockDevice,
  rootPart: BlockDevice,
  workDev: BlockDevice,
  sizes: SizeCheck,
): string[] {
  const { facts } = input;
  const watchdog = watchdogToKick(facts);
  return [
    `install disk: ${installDisk.name} (${formatBytes(installDisk.sizeBytes)}) holding / on ${rootPart.name}; ` +
      `image ${formatBytes(input.image.rawSizeBytes)} raw`,
    `work dir: ${input.workDir} on ${workDev.name} (${facts.workDir.fstype}), ${formatBytes(facts.workDir.freeBytes)} free, ` +
      `payload ${formatBytes(sizes.payloadBytes)}`,
    `RAM: stage2 needs ${formatBytes(sizes.ramNeedBytes)} of ${formatBytes(facts.memory.availableBytes)} available`,
    `image: ${input.image.compression}, ${formatBytes(input.image.fileSizeBytes)} in RAM, written ` +
      `${formatBytes(input.image.rawSizeBytes)} and read back against its sha256`,
    ...(watchdog ? [`watchdog: stage2 kicks ${watchdog.device} while it works: ${watchdog.why}`] : []),
    ...(input.logDevice ? [`log: stage2 also saves its log on ${input.logDevice}`] : []),
    ...(input.stage2Pretend
      ? ['stage2 pretend: stage2 checks everything, writes nothing and boots the old OS again']
      : []),
    ...(input.network?.notes ?? []),
  ];
}

export { INITRAMFS_NAME };
