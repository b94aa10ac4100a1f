// The GRUB boot manager for x86-64 hosts (BIOS or UEFI): a one-shot menu entry that boots the
// stage2 kernel + initramfs once (grub-reboot), and everything stage2 needs to find its way
// to the image and back. Pure: facts and sizes in, a Plan or the reasons for refusing out.
import { posix } from 'node:path';
import { checkStage2Config, renderStage2Config } from '../../stage2/build/stage2-config.ts';
import type { BlockDevice, DirLocation, Facts } from '../facts/facts.ts';
import type { ApplyStep, PayloadFile, Plan, PlanInput, PlanResult, Stage2Config } from '../plan/plan.ts';
import { GENERIC_X86_64 } from './device.ts';
import { logDeviceProblems, stage2RamNeed, watchdogToKick } from './stage2-common.ts';

/** The menu entry id that grub-reboot selects. */
export const GRUB_ENTRY_ID = 'balena-migrate-stage2';
/** The grub.d script that prints the entry; after 41_custom, before nothing that matters. */
export const GRUB_D_SCRIPT = '/etc/grub.d/42_balena-migrate';
/** Directory (in /boot) that holds the stage2 kernel and initramfs. */
export const BOOT_SUBDIR = 'balena-migrate';
export const STAGE2_CONFIG_NAME = 'balena-stage2.yml';
export const KERNEL_NAME = 'vmlinuz';
export const INITRAMFS_NAME = 'stage2-initramfs.gz';
export const CONFIG_JSON_NAME = 'config.json';
export const STAGE2_LOG_NAME = 'stage2.log';
/** The copy of grub.cfg (in BOOT_SUBDIR) that stage2 moves back over the regenerated one. */
export const GRUB_CFG_BACKUP_NAME = 'grub.cfg.orig';

const MiB = 1024 * 1024;
/** room in /boot beyond our files: grub.cfg grows a little, filesystems need slack */
export const BOOT_MARGIN_BYTES = 8 * MiB;
/** room in the work dir beyond the payload: backups of grub files, scripts, logs */
export const WORK_MARGIN_BYTES = 16 * MiB;
/** what stage2 keeps in RAM for its log (the init's LOG_RESERVE) */
export const STAGE2_LOG_BYTES = 1 * MiB;
/** the image's name in the work dir, by the compression found in its content */
export const IMAGE_NAMES = {
  none: 'balena-image.img',
  gzip: 'balena-image.img.gz',
  xz: 'balena-image.img.xz',
  zip: 'balena-image.zip',
} as const;

/** Filesystems the stage2 init can mount. */
const STAGE2_FILESYSTEMS = ['ext2', 'ext3', 'ext4', 'vfat'];
const GRUB_FS_MODULE: Record<string, string> = { ext2: 'ext2', ext3: 'ext2', ext4: 'ext2', vfat: 'fat' };
const GRUB_PART_MODULE: Record<string, string> = { dos: 'part_msdos', gpt: 'part_gpt' };
const RAM_FILESYSTEMS = ['tmpfs', 'ramfs'];
const NETWORK_FILESYSTEMS = [
  'nfs',
  'nfs4',
  'cifs',
  'smb3',
  'smbfs',
  '9p',
  'ceph',
  'glusterfs',
  'fuse.sshfs',
  'sshfs',
];
const LAYERED_FILESYSTEMS = ['overlay', 'aufs', 'squashfs', 'fuse'];
/** What may appear in a path that stage2 reads from its config (see stage2-config.ts). */
const STAGE2_PATH = /^[A-Za-z0-9._/+,=-]+$/;
const UUID_TEXT = /^[A-Za-z0-9-]+$/;

/** Bytes in the unit a person reads quickest. */
export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[u]}`;
}

/** PATH inside MOUNTPOINT as `/x/y` ('' for the mount point itself), or null when outside. */
function under(mountpoint: string, path: string): string | null {
  if (path === mountpoint) return '';
  if (mountpoint === '/') return path.startsWith('/') ? path : null;
  return path.startsWith(`${mountpoint}/`) ? path.slice(mountpoint.length) : null;
}

/** Where a directory is inside its filesystem (`/` = the filesystem root), bind mounts included. */
function pathInFilesystem(loc: DirLocation): string | null {
  const rel = under(loc.mountpoint, loc.path);
  if (rel === null) return null;
  return posix.join(loc.fsRoot ?? '/', rel || '/');
}

/** The deepest mount point (from /proc/self/mounts) that holds PATH. */
function mountHolding(facts: Facts, path: string): string | null {
  let best: string | null = null;
  for (const m of facts.mounts) {
    if (under(m.target, path) !== null && (best === null || m.target.length >= best.length)) best = m.target;
  }
  return best;
}

/** `dm-0 (LVM vg0-root)` and the like, for messages about block devices. */
function describeDevice(dev: BlockDevice | undefined, name: string | null, source?: string): string {
  if (!dev) return name ? name : `no block device (${source || 'unknown source'})`;
  if (dev.name.startsWith('dm-')) {
    const kind = dev.dmUuid?.startsWith('LVM-')
      ? 'LVM'
      : dev.dmUuid?.startsWith('CRYPT-')
        ? 'dm-crypt/LUKS'
        : 'device-mapper';
    return `${dev.name} (${kind}${dev.dmName ? ` ${dev.dmName}` : ''})`;
  }
  if (dev.name.startsWith('md')) return `${dev.name} (md RAID)`;
  return dev.name;
}

/**
 * Stage2 talks on the consoles the host already uses (its serial console on a headless box,
 * the screen on a PC): the `console=` arguments of the running kernel, or tty0.
 */
export function stage2Consoles(cmdline: string): string[] {
  const consoles = cmdline.split(/\s+/).filter((arg) => /^console=[A-Za-z0-9,._-]+$/.test(arg));
  return consoles.length ? consoles : ['console=tty0'];
}

/**
 * Arguments of the host's kernel command line that the same kernel needs on the same machine
 * to get through early boot at all (a VM whose timer check fails under load); stage2 keeps them.
 */
export const HOST_BOOT_ARGS_KEPT = ['no_timer_check'];

/** The consoles (stage2Consoles) and the kept early-boot arguments of the host's command line. */
export function stage2KernelArgs(cmdline: string): string[] {
  const args = cmdline.split(/\s+/);
  return [...stage2Consoles(cmdline), ...HOST_BOOT_ARGS_KEPT.filter((a) => args.includes(a))];
}

/** The `menuentry` script for /etc/grub.d: exact text, every value checked before it gets here. */
export function renderGrubEntryScript(opts: {
  bootFsUuid: string;
  partModules: string[];
  fsModule: string;
  kernelPath: string;
  initramfsPath: string;
  consoles: string[];
}): string {
  const insmods = [...opts.partModules, opts.fsModule].map((m) => `\tinsmod ${m}\n`).join('');
  return (
    '#!/bin/sh\n' +
    '# Written by balena-migrate: the one-shot entry into the stage2 initramfs.\n' +
    `# \`grub-reboot ${GRUB_ENTRY_ID}\` selects it for one boot; undo removes this file and\n` +
    '# puts the former grub.cfg back, byte for byte.\n' +
    "cat <<'BALENA_MIGRATE_EOF'\n" +
    `menuentry 'balena-migrate stage2' --id ${GRUB_ENTRY_ID} --unrestricted {\n` +
    insmods +
    `\tsearch --no-floppy --fs-uuid --set=root ${opts.bootFsUuid}\n` +
    `\tlinux ${opts.kernelPath} root=UUID=${opts.bootFsUuid} ${opts.consoles.join(' ')} panic=10\n` +
    `\tinitrd ${opts.initramfsPath}\n` +
    '}\n' +
    'BALENA_MIGRATE_EOF\n'
  );
}

/** Plans the GRUB one-shot into stage2, or refuses with every reason that applies. */
export function planGrubBoot(input: PlanInput): PlanResult {
  const { facts } = input;
  const reasons: string[] = [];
  const notes: string[] = [];
  const refuse = (why: string): void => {
    reasons.push(why);
  };
  const block = (name: string | null | undefined): BlockDevice | undefined =>
    name ? facts.blockDevices.find((b) => b.name === name) : undefined;

  // ---- the host as a whole --------------------------------------------------------------------
  if (facts.os.isBalenaOS)
    refuse(`the host already runs balenaOS (${facts.os.prettyName}): nothing to migrate`);
  if (facts.arch !== 'x86_64') {
    refuse(`the GRUB planner handles x86_64 hosts only; this host is ${facts.arch}`);
  }
  if (facts.firmware.type === 'devicetree') {
    refuse('the firmware is device-tree based (no BIOS or UEFI): GRUB is not how this host boots');
  }
  if (facts.firmware.secureBoot === true) {
    refuse(
      'Secure Boot is enabled: the stage2 kernel and initramfs are not signed for it and would not boot; ' +
        'disable Secure Boot in the firmware setup, then run check again',
    );
  } else if (facts.firmware.type === 'uefi' && facts.firmware.secureBoot === null) {
    notes.push('Secure Boot state could not be read (no efivars); assuming it is off');
  }
  if (!facts.tools.setsid) {
    refuse('setsid is missing (util-linux): the boot setup must run detached from SSH; install util-linux');
  }
  if (facts.tools.flock === false) {
    refuse(
      'flock is missing (util-linux): the boot setup transaction needs it for its lock; install util-linux',
    );
  }
  if (!facts.tools.sha256sum) {
    refuse('sha256sum is missing (coreutils): uploads cannot be verified; install coreutils');
  }

  // ---- GRUB -----------------------------------------------------------------------------------
  const grub = facts.grub;
  const mkconfigArgv = grub.updateGrub
    ? [grub.updateGrub]
    : grub.mkconfig && grub.dir
      ? [grub.mkconfig, '-o', `${grub.dir}/grub.cfg`]
      : null;
  if (!grub.installed || !mkconfigArgv) {
    refuse('GRUB tools are missing: neither update-grub nor grub-mkconfig (or grub2-*) was found');
  }
  if (!grub.reboot)
    refuse('grub-reboot (or grub2-reboot) is missing: the one-shot boot into stage2 needs it');
  if (!grub.dir) refuse('no GRUB directory (/boot/grub or /boot/grub2): is this host really booted by GRUB?');
  if (!grub.grubDDir) refuse('/etc/grub.d does not exist: the stage2 menu entry cannot be added');
  if (grub.dir && !grub.honoursNextEntry) {
    refuse(
      `${grub.dir}/grub.cfg has no next_entry handling, so grub-reboot would be ignored; ` +
        'regenerate it with grub-mkconfig (update-grub) from a standard /etc/grub.d',
    );
  }
  if (grub.dir && !grub.envWritableAtBoot) {
    refuse(
      `GRUB cannot rewrite its environment block at boot (${grub.envNotWritableReason ?? 'reason unknown'}): ` +
        'grub-reboot would never clear itself and the host would boot stage2 again and again',
    );
  }
  if (grub.envFile && !grub.envBase64) {
    refuse(`${grub.envFile} could not be read: stage2 could not restore it byte for byte`);
  }
  if (grub.envSymlinkTarget) {
    refuse(
      `${grub.envFile ?? 'grubenv'} is a symlink to ${grub.envSymlinkTarget} (on the EFI system partition?): ` +
        'stage2 could not restore it there; use stage2.bootManager efi (a one-shot UEFI boot entry) for this host',
    );
  }

  // ---- kernel ---------------------------------------------------------------------------------
  let kernelFrom: string | null = null;
  let kernelBytes = 0;
  let kernelSha: string | undefined;
  if (input.kernel.source === 'host') {
    if (!facts.kernel.image) {
      refuse(
        `the running kernel ${facts.kernel.release} has no image at /boot/vmlinuz-${facts.kernel.release} ` +
          '(upgraded or removed since the last boot?): reboot into the installed kernel, or supply a migration kernel',
      );
    } else {
      kernelFrom = facts.kernel.image;
      kernelBytes = facts.kernel.imageSizeBytes ?? 0;
    }
    if (!facts.kernel.modulesDir) {
      refuse(
        `/lib/modules/${facts.kernel.release} is missing: the stage2 initramfs needs this kernel's storage modules; ` +
          'reboot into the installed kernel, or supply a migration kernel',
      );
    }
  } else {
    kernelFrom = posix.join(input.workDir, KERNEL_NAME);
    kernelBytes = input.kernel.file.sizeBytes;
    kernelSha = input.kernel.file.sha256;
  }

  // ---- image ----------------------------------------------------------------------------------
  const compression = input.image.compression;
  if (!(compression in IMAGE_NAMES)) {
    refuse(`the image is ${compression}-compressed; stage2 reads raw, gzip, xz and zip images`);
  }
  const imageName = IMAGE_NAMES[compression] ?? IMAGE_NAMES.none;
  // the network stage2 leaves behind, and the rest of what stage2 needs besides the disk
  for (const why of input.network?.reasons ?? []) refuse(why);
  const watchdog = watchdogToKick(facts);

  // ---- /boot ----------------------------------------------------------------------------------
  const boot = facts.bootDir;
  const bootDev = block(boot.device);
  const bootInFs = pathInFilesystem(boot);
  let bootFsUuid: string | null = null;
  let partModules: string[] = [];
  let fsModule: string | null = null;
  if (!boot.exists) refuse(`${boot.path} does not exist`);
  if (bootDev?.type !== 'part') {
    refuse(
      `${boot.path} is on ${describeDevice(bootDev, boot.device, boot.source)}, not a plain disk partition: ` +
        'GRUB and stage2 must find it by filesystem UUID on a partition',
    );
  } else {
    const disk = block(bootDev.parent);
    bootFsUuid = bootDev.uuid;
    if (!bootFsUuid || !UUID_TEXT.test(bootFsUuid)) {
      refuse(
        `the filesystem holding ${boot.path} (${bootDev.name}) has no usable UUID (${bootFsUuid ?? 'none found'})`,
      );
      bootFsUuid = null;
    }
    partModules = disk?.ptType ? [GRUB_PART_MODULE[disk.ptType]!] : ['part_msdos', 'part_gpt'];
    if (!disk?.ptType)
      notes.push(
        `partition table of ${bootDev.parent ?? '?'} unknown: GRUB loads both part_msdos and part_gpt`,
      );
  }
  if (!STAGE2_FILESYSTEMS.includes(boot.fstype)) {
    refuse(
      `${boot.path} is on ${boot.fstype}, which stage2 cannot mount to read its config and restore grubenv ` +
        `(it reads ${STAGE2_FILESYSTEMS.join(', ')})`,
    );
  } else {
    fsModule = GRUB_FS_MODULE[boot.fstype]!;
  }
  if ((boot.fsRoot ?? '/') !== '/') {
    refuse(
      `${boot.path} is a bind mount of ${boot.fsRoot}: balena-stage2.yml must go to the root of its filesystem`,
    );
  }
  if (!boot.writable) refuse(`${boot.path} is not writable (read-only mount?)`);
  if (bootInFs === null)
    refuse(`${boot.path} is not under its mount point ${boot.mountpoint} (probe inconsistency)`);

  // grubenv and grub.cfg live in the GRUB dir, which must be on the same filesystem as /boot:
  // stage2 puts both back there (grubenv from its config, grub.cfg from a copy in BOOT_SUBDIR).
  const grubenvPath = grub.envFile ?? (grub.dir ? `${grub.dir}/grubenv` : null);
  const grubCfg = grub.dir ? `${grub.dir}/grub.cfg` : null;
  let grubenvInFs: string | null = null;
  let grubCfgInFs: string | null = null;
  if (grub.dir && grubenvPath && grubCfg) {
    if (mountHolding(facts, grub.dir) !== boot.mountpoint) {
      refuse(
        `${grub.dir} is on a different filesystem than ${boot.path}: stage2 could not restore grubenv and grub.cfg`,
      );
    } else {
      grubenvInFs = under(boot.mountpoint, grubenvPath);
      grubCfgInFs = under(boot.mountpoint, grubCfg);
    }
  }

  // ---- root and the install disk --------------------------------------------------------------
  const rootDir = facts.rootDir;
  const rootDev = block(facts.rootDevice ?? rootDir?.device);
  let installDisk: BlockDevice | undefined;
  if (rootDev?.type !== 'part') {
    const what =
      rootDev?.type === 'disk'
        ? `the whole disk ${rootDev.name} (no partition table)`
        : describeDevice(rootDev, rootDir?.device ?? null, rootDir?.source);
    refuse(
      `the root filesystem is on ${what}, not a plain partition: the install disk cannot be told safely; ` +
        'this layout is not supported',
    );
  } else {
    installDisk = block(rootDev.parent);
    if (!rootDev.uuid || !UUID_TEXT.test(rootDev.uuid)) {
      refuse(
        `the root filesystem (${rootDev.name}) has no usable UUID: stage2 could not find the install disk`,
      );
    }
    if (!installDisk) {
      refuse(`the disk holding the root partition ${rootDev.name} was not found in the probe`);
    } else {
      if (installDisk.readOnly) refuse(`the install disk ${installDisk.name} is read-only`);
      if (installDisk.sizeBytes < input.image.rawSizeBytes) {
        refuse(
          `the install disk ${installDisk.name} (${formatBytes(installDisk.sizeBytes)}) is smaller than the ` +
            `image (${formatBytes(input.image.rawSizeBytes)} raw)`,
        );
      }
    }
  }

  // ---- work dir -------------------------------------------------------------------------------
  const work = facts.workDir;
  const workDev = block(work.device);
  const workInFs = pathInFilesystem(work);
  const workDir = input.workDir;
  if (
    !posix.isAbsolute(workDir) ||
    posix.normalize(workDir) !== workDir ||
    workDir === '/' ||
    workDir.endsWith('/')
  ) {
    refuse(`the work dir "${workDir}" must be an absolute, normalised path below /`);
  }
  if (work.path !== workDir) {
    refuse(`the facts were probed for the work dir ${work.path}, not ${workDir}: probe again`);
  }
  if (RAM_FILESYSTEMS.includes(work.fstype)) {
    refuse(
      `the work dir ${workDir} is on ${work.fstype} (RAM, mounted at ${work.mountpoint}): it is empty after the ` +
        'reboot; choose a directory on a disk filesystem (ext2/3/4 or vfat)',
    );
  } else if (NETWORK_FILESYSTEMS.includes(work.fstype)) {
    refuse(
      `the work dir ${workDir} is on the network filesystem ${work.fstype} (${work.mountpoint}): stage2 has no ` +
        'network; choose a directory on a local disk (ext2/3/4 or vfat)',
    );
  } else if (LAYERED_FILESYSTEMS.includes(work.fstype) || work.fstype.startsWith('fuse.')) {
    refuse(
      `the work dir ${workDir} is on ${work.fstype} (${work.mountpoint}), which stage2 cannot open; choose a ` +
        'directory on a plain disk filesystem (ext2/3/4 or vfat)',
    );
  } else if (!STAGE2_FILESYSTEMS.includes(work.fstype)) {
    refuse(
      `the work dir ${workDir} is on ${work.fstype}, which stage2 cannot mount (it reads ` +
        `${STAGE2_FILESYSTEMS.join(', ')}); choose a directory on such a filesystem`,
    );
  } else if (!workDev || (workDev.type !== 'part' && workDev.type !== 'disk')) {
    refuse(
      `the work dir ${workDir} is on ${describeDevice(workDev, work.device, work.source)}, which stage2 cannot ` +
        'open (no LVM, RAID or encryption there); choose a directory on a plain partition',
    );
  } else if (!workDev.uuid || !UUID_TEXT.test(workDev.uuid)) {
    refuse(`the filesystem of the work dir (${workDev.name}) has no usable UUID: stage2 could not find it`);
  }
  if (!work.writable)
    refuse(`the work dir ${workDir} (checked at ${work.probedPath ?? work.path}) is not writable`);
  if (workInFs === null)
    refuse(`the work dir ${workDir} is not under its mount point ${work.mountpoint} (probe inconsistency)`);
  else if (workInFs !== '/' && !STAGE2_PATH.test(workInFs)) {
    refuse(
      `the work dir path ${workInFs} (inside its filesystem) has characters stage2 cannot use; ` +
        'use only letters, digits and . _ / = + , -',
    );
  }

  // ---- sizes ----------------------------------------------------------------------------------
  const initramfsBytes = input.initramfs.data.length;
  const networkFiles = input.network?.files ?? [];
  const payloadBytes =
    input.image.fileSizeBytes +
    input.configJson.sizeBytes +
    networkFiles.reduce((n, f) => n + f.data.length, 0) +
    initramfsBytes +
    (input.kernel.source === 'file' ? input.kernel.file.sizeBytes : 0);
  const bootNeed = kernelBytes + initramfsBytes + 4096 + BOOT_MARGIN_BYTES;
  const workNeed = payloadBytes + WORK_MARGIN_BYTES;
  const sameFs = boot.device !== null && boot.device === work.device && boot.mountpoint === work.mountpoint;
  if (sameFs) {
    if (bootNeed + workNeed > work.freeBytes) {
      refuse(
        `${boot.mountpoint} (${boot.device}) has ${formatBytes(work.freeBytes)} free, but the payload ` +
          `(${formatBytes(workNeed)} with margin) and the boot files (${formatBytes(bootNeed)} with margin) need ` +
          `${formatBytes(bootNeed + workNeed)}; free some space or choose a work dir on another filesystem`,
      );
    }
  } else {
    if (bootNeed > boot.freeBytes) {
      refuse(
        `${boot.path} has ${formatBytes(boot.freeBytes)} free, but the stage2 kernel and initramfs need ` +
          `${formatBytes(bootNeed)} with margin; remove old kernels from ${boot.path}`,
      );
    }
    if (workNeed > work.freeBytes) {
      refuse(
        `the work dir ${workDir} has ${formatBytes(work.freeBytes)} free, but the payload needs ` +
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
  const ramNeed = ram.needBytes;
  if (ramNeed > facts.memory.availableBytes) {
    const decoder = input.image.decoderMemoryBytes
      ? ` + ${formatBytes(input.image.decoderMemoryBytes)} for the ${compression} decoder`
      : '';
    refuse(
      `stage2 holds the image in RAM: it needs ${formatBytes(ramNeed)} (image ${formatBytes(input.image.fileSizeBytes)}` +
        ` + config + network files + log + margin ${formatBytes(input.ramMarginBytes)}${decoder}), but only ` +
        `${formatBytes(facts.memory.availableBytes)} is available; use a compressed image or a smaller RAM margin`,
    );
  }
  if (input.logDevice) {
    for (const why of logDeviceProblems(facts, input.logDevice, installDisk?.name)) refuse(why);
  }

  if (
    reasons.length > 0 ||
    !installDisk ||
    !rootDev ||
    !bootFsUuid ||
    !fsModule ||
    !kernelFrom ||
    !mkconfigArgv
  ) {
    if (reasons.length === 0) reasons.push('internal: the GRUB planner is missing facts it needs');
    return { ok: false, reasons };
  }
  if (
    !workDev ||
    bootInFs === null ||
    workInFs === null ||
    !grub.reboot ||
    !grubenvPath ||
    !grubCfg ||
    !grubCfgInFs
  ) {
    return { ok: false, reasons: ['internal: the GRUB planner is missing facts it needs'] };
  }

  // ---- paths --------------------------------------------------------------------------------
  const hostBootSubdir = posix.join(boot.path, BOOT_SUBDIR);
  const grubBootSubdir = posix.join(bootInFs, BOOT_SUBDIR);
  const stage2ConfigPath = posix.join(boot.mountpoint, STAGE2_CONFIG_NAME);
  const grubCfgBackup = posix.join(hostBootSubdir, GRUB_CFG_BACKUP_NAME);
  const relative = (p: string): string => p.replace(/^\/+/, '');

  const stage2Config: Stage2Config = {
    version: 1,
    mode: input.mode === 'pretend' || input.stage2Pretend ? 'pretend' : 'flash',
    fail_mode: input.failMode,
    grubenv: grubenvInFs ? relative(grubenvInFs) : '',
    grubenv_b64: grub.envFile ? (grub.envBase64 ?? '') : '',
    work_dev: `UUID=${workDev.uuid}`,
    work_fstype: work.fstype,
    work_path: workInFs === '/' ? '.' : relative(workInFs),
    install_disk_of: `UUID=${rootDev.uuid}`,
    install_disk_size: installDisk.sizeBytes,
    image_file: imageName,
    image_compression: compression,
    image_sha256: input.image.fileSha256,
    image_size: input.image.fileSizeBytes,
    image_raw_size: input.image.rawSizeBytes,
    image_raw_sha256: input.image.rawSha256,
    config_file: CONFIG_JSON_NAME,
    config_sha256: input.configJson.sha256,
    network_files: networkFiles.map((f) => f.name).join(' '),
    network_sha256: networkFiles.map((f) => f.sha256).join(' '),
    ram_margin: ram.marginForStage2,
    boot_label: 'resin-boot',
    log_name: STAGE2_LOG_NAME,
    log_device: input.logDevice ?? '',
    watchdog: watchdog?.device ?? '',
    cleanup: [relative(grubBootSubdir), STAGE2_CONFIG_NAME].join(' '),
    // stage2 moves the copy of the former grub.cfg back first thing, so a host that never
    // reaches the orchestrator again is left with its own grub.cfg, byte for byte
    restore_count: 1,
    restore_1_from: relative(posix.join(grubBootSubdir, GRUB_CFG_BACKUP_NAME)),
    restore_1_to: relative(grubCfgInFs),
  };
  const problems = checkStage2Config(stage2Config);
  if (problems.length > 0) {
    return { ok: false, reasons: problems.map((p) => `the stage2 config would be invalid: ${p}`) };
  }

  // ---- payload ------------------------------------------------------------------------------
  const payload: PayloadFile[] = [
    {
      role: 'image',
      source: { kind: 'file', path: input.image.path },
      remotePath: posix.join(workDir, imageName),
      sizeBytes: input.image.fileSizeBytes,
      sha256: input.image.fileSha256,
      mode: 0o600,
    },
    {
      role: 'config-json',
      source: { kind: 'file', path: input.configJson.path },
      remotePath: posix.join(workDir, CONFIG_JSON_NAME),
      sizeBytes: input.configJson.sizeBytes,
      sha256: input.configJson.sha256,
      mode: 0o600,
    },
    {
      role: 'initramfs',
      source: { kind: 'bytes', data: input.initramfs.data },
      remotePath: posix.join(workDir, INITRAMFS_NAME),
      sizeBytes: initramfsBytes,
      sha256: input.initramfs.sha256,
      mode: 0o644,
    },
  ];
  for (const f of networkFiles) {
    payload.push({
      role: 'network',
      source: { kind: 'bytes', data: f.data },
      remotePath: posix.join(workDir, f.name),
      sizeBytes: f.data.length,
      sha256: f.sha256,
      mode: 0o600,
    });
  }
  if (input.kernel.source === 'file') {
    payload.push({
      role: 'kernel',
      source: { kind: 'file', path: input.kernel.file.path },
      remotePath: posix.join(workDir, KERNEL_NAME),
      sizeBytes: input.kernel.file.sizeBytes,
      sha256: input.kernel.file.sha256,
      mode: 0o644,
    });
  }

  // ---- steps --------------------------------------------------------------------------------
  const oneShotArgv = [grub.reboot, GRUB_ENTRY_ID];
  const steps: ApplyStep[] = [
    {
      kind: 'mkdir',
      path: hostBootSubdir,
      mode: 0o755,
      description: `create ${hostBootSubdir} for the stage2 kernel and initramfs`,
    },
    {
      kind: 'copy',
      from: kernelFrom,
      to: posix.join(hostBootSubdir, KERNEL_NAME),
      mode: 0o644,
      description: `copy the ${input.kernel.source === 'host' ? "host's installed" : 'supplied'} kernel ${kernelFrom}`,
      ...(kernelSha ? { sha256: kernelSha } : {}),
    },
    {
      kind: 'copy',
      from: posix.join(workDir, INITRAMFS_NAME),
      to: posix.join(hostBootSubdir, INITRAMFS_NAME),
      mode: 0o644,
      description: 'copy the stage2 initramfs',
      sha256: input.initramfs.sha256,
    },
    {
      // cp -p: stage2 moves this copy back, mode and times included
      kind: 'exec',
      argv: ['cp', '-p', grubCfg, grubCfgBackup],
      undo: [],
      backup: [grubCfgBackup],
      description: `keep a copy of ${grubCfg} for stage2 to put back`,
    },
    {
      kind: 'write',
      path: GRUB_D_SCRIPT,
      content: renderGrubEntryScript({
        bootFsUuid,
        partModules,
        fsModule,
        kernelPath: posix.join(grubBootSubdir, KERNEL_NAME),
        initramfsPath: posix.join(grubBootSubdir, INITRAMFS_NAME),
        consoles: stage2KernelArgs(facts.kernel.cmdline),
      }),
      mode: 0o755,
      description: `add the GRUB menu entry ${GRUB_ENTRY_ID}`,
    },
    {
      // undo puts back the bytes saved here (no second grub-mkconfig: it could differ, and it is
      // slow); grubenv too, which some grub2-mkconfig versions edit (kernelopts)
      kind: 'exec',
      argv: mkconfigArgv,
      undo: [],
      backup: [grubCfg, grubenvPath],
      description: `regenerate ${grubCfg}`,
    },
    {
      kind: 'exec',
      argv: ['grep', '-q', '-F', '-e', `--id ${GRUB_ENTRY_ID}`, grubCfg],
      undo: [],
      description: `check that ${grubCfg} now has the stage2 entry`,
    },
    {
      kind: 'write',
      path: stage2ConfigPath,
      content: renderStage2Config(stage2Config),
      mode: 0o644,
      description: `write the stage2 config ${stage2ConfigPath}`,
    },
    {
      kind: 'exec',
      argv: oneShotArgv,
      undo: [],
      backup: [grubenvPath],
      description: `boot ${GRUB_ENTRY_ID} once, on the next reboot`,
    },
    {
      kind: 'exec',
      argv: ['grep', '-q', '-x', '-F', '-e', `next_entry=${GRUB_ENTRY_ID}`, grubenvPath],
      undo: [],
      description: `check that ${grubenvPath} now names the one-shot entry`,
    },
  ];

  notes.push(
    `boot: ${facts.firmware.type.toUpperCase()} firmware, GRUB (${grub.dir}), ${boot.path} on ${bootDev?.name} ` +
      `(${boot.fstype}${boot.mountpoint === boot.path ? ', its own partition' : `, part of ${boot.mountpoint}`})`,
    `kernel: ${kernelFrom} (${formatBytes(kernelBytes)}), initramfs ${formatBytes(initramfsBytes)}, ` +
      `both copied to ${hostBootSubdir}`,
    `install disk: ${installDisk.name} (${formatBytes(installDisk.sizeBytes)}) holding / on ${rootDev.name}; ` +
      `image ${formatBytes(input.image.rawSizeBytes)} raw`,
    `work dir: ${workDir} on ${workDev.name} (${work.fstype}), ${formatBytes(work.freeBytes)} free, ` +
      `payload ${formatBytes(payloadBytes)}`,
    `RAM: stage2 needs ${formatBytes(ramNeed)} of ${formatBytes(facts.memory.availableBytes)} available`,
    `one-shot: ${oneShotArgv.join(' ')}; GRUB clears it at boot, stage2 restores ${grubenvPath} and ${grubCfg}`,
    `image: ${compression}, ${formatBytes(input.image.fileSizeBytes)} in RAM, written ` +
      `${formatBytes(input.image.rawSizeBytes)} and read back against its sha256`,
    ...(watchdog ? [`watchdog: stage2 kicks ${watchdog.device} while it works: ${watchdog.why}`] : []),
    ...(input.logDevice ? [`log: stage2 also saves its log on ${input.logDevice}`] : []),
    ...(input.stage2Pretend
      ? ['stage2 pretend: stage2 checks everything, writes nothing and boots the old OS again']
      : []),
    ...(input.network?.notes ?? []),
  );

  const plan: Plan = {
    host: input.hostName,
    deviceType: GENERIC_X86_64,
    bootManager: 'grub',
    installDisk: { name: installDisk.name, sizeBytes: installDisk.sizeBytes },
    workDir,
    payload,
    steps,
    oneShot: { mechanism: 'grub-reboot', argv: oneShotArgv },
    stage2Config,
    stage2ConfigPath,
    ram: { neededBytes: ramNeed, availableBytes: facts.memory.availableBytes },
    notes,
  };
  return { ok: true, plan };
}
