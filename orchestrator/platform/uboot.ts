// The u-boot boot manager (BeagleBone Black and Green and their kind). u-boot has no one-shot
// boot that Linux can set, so the setup changes the one file u-boot reads first and stage2
// puts the original back before anything else.
//
// Where u-boot comes from decides where that file goes:
// - MLO / u-boot.img as files in a partition (older images: a FAT "BOOT" partition), or u-boot
//   written raw to a disk (SPL at 128 KiB, u-boot.img at 384 KiB: the Debian images for
//   BeagleBones) or to an eMMC boot partition: uEnv.txt goes to the root of that partition, or
//   of the disk's first partition. u-boot imports it and runs its `uenvcmd` before its own boot
//   (the beagleboard.org u-boot reads /uEnv.txt from the first partition of the boot disk).
// - otherwise, a u-boot that boots /boot/extlinux/extlinux.conf (distro boot): an entry for
//   stage2 becomes the default; extlinux has no one-shot either, stage2 restores the file.
//
// Stage2 boots the host's own kernel (zImage) with the device tree the board needs and the
// stage2 initramfs, root= the partition holding uEnv.txt (or extlinux.conf), with
// balena-stage2.yml at its root. Pure: facts and sizes in, a Plan or the reasons out.
import { posix } from 'node:path';
import type { BlockDevice, DirLocation, Facts } from '../facts/facts.ts';
import type { ApplyStep, Plan, PlanInput, PlanResult } from '../plan/plan.ts';
import {
  backupStep,
  bootFileBefore,
  initramfsCopyStep,
  kernelCopyStep,
  restoreEntry,
  stage2ConfigStep,
  stage2KernelArgs,
  stage2KernelSource,
} from './boot-partition-files.ts';
import type { Device } from './device.ts';
import {
  blockByName,
  bootPartitionProblems,
  commonNotes,
  firmwareStage2Config,
  hasBootFile,
  hostProblems,
  imageNameFor,
  installDiskOf,
  payloadFiles,
  sizeProblems,
  workDirOf,
} from './firmware-common.ts';
import { BOOT_SUBDIR, formatBytes, STAGE2_CONFIG_NAME } from './grub.ts';

export const UBOOT_KERNEL_NAME = 'vmlinuz';
export const UBOOT_INITRAMFS_NAME = 'initramfs.gz';
export const EXTLINUX_LABEL = 'balena-migrate-stage2';

/** How this board's u-boot is made to boot stage2. */
export type UbootMethod =
  | { kind: 'uenv'; dir: DirLocation; part: BlockDevice; why: string }
  | { kind: 'extlinux'; dir: DirLocation; part: BlockDevice; confPath: string; why: string };

/** Mounted directories, the partition of each, for finding where u-boot's files are. */
function mountedDirs(facts: Facts): DirLocation[] {
  return [facts.boot?.ubootDir, facts.bootDir, facts.rootDir].filter(
    (d): d is DirLocation => d?.exists === true && d.mountpoint === d.path,
  );
}

/** The disk a raw u-boot sits on: mmcblk1boot0 is on mmcblk1. */
function diskOfRaw(device: string): string {
  return device.replace(/boot[0-9]+$/, '');
}

/** Finds where u-boot boots from, or why that cannot be told. */
export function findUbootMethod(facts: Facts): { method: UbootMethod | null; reasons: string[] } {
  const dirs = mountedDirs(facts);
  // 1. MLO or u-boot.img as files at the root of a mounted partition
  for (const d of dirs) {
    const root = d.path === '/' ? '' : d.path;
    const found = ['MLO', 'u-boot.img', 'u-boot.bin'].find((f) => hasBootFile(facts, `${root}/${f}`));
    const part = blockByName(facts, d.device);
    if (found && part?.type === 'part') {
      return {
        method: { kind: 'uenv', dir: d, part, why: `${root}/${found} is on ${part.name}` },
        reasons: [],
      };
    }
  }
  // 2. u-boot written raw to a disk or to an eMMC boot partition: the disk's first partition
  const raw = facts.boot?.rawBootloaders ?? [];
  if (raw.length > 0) {
    const disk = diskOfRaw(raw[0]!.device);
    const first = facts.blockDevices.find(
      (b) => b.type === 'part' && b.parent === disk && b.partNumber === 1,
    );
    const where = `u-boot (${raw[0]!.format}) is written raw to ${raw[0]!.device} at ${raw[0]!.offsetBytes} bytes`;
    if (!first) return { method: null, reasons: [`${where}, but ${disk} has no partition 1 for uEnv.txt`] };
    const d = dirs.find((x) => x.device === first.name);
    if (!d) {
      return {
        method: null,
        reasons: [
          `${where}; its first partition ${first.name} holds uEnv.txt but is not mounted: mount it and re-run`,
        ],
      };
    }
    return {
      method: { kind: 'uenv', dir: d, part: first, why: `${where}; uEnv.txt goes on ${first.name}` },
      reasons: [],
    };
  }
  // 3. distro boot through extlinux.conf
  for (const d of dirs) {
    const part = blockByName(facts, d.device);
    const confs =
      d.path === '/'
        ? ['/boot/extlinux/extlinux.conf', '/extlinux/extlinux.conf']
        : [`${d.path}/extlinux/extlinux.conf`];
    const confPath = confs.find((c) => hasBootFile(facts, c));
    if (confPath && part?.type === 'part') {
      return {
        method: { kind: 'extlinux', dir: d, part, confPath, why: `u-boot boots ${confPath}` },
        reasons: [],
      };
    }
  }
  return {
    method: null,
    reasons: [
      'cannot tell where u-boot boots from: no MLO or u-boot.img in a mounted partition, no u-boot written raw ' +
        'to a disk, and no extlinux/extlinux.conf',
    ],
  };
}

/** A u-boot environment variable reference, `${name}`. */
const uvar = (name: string): string => `\${${name}}`;

/** uEnv.txt that makes u-boot boot stage2 (u-boot runs `uenvcmd` after importing the file). */
export function renderUenv(opts: {
  partNumber: number;
  dirInPartition: string;
  dtb: string;
  bootargs: string;
  ts: string;
}): string {
  const load = (addr: string, name: string): string =>
    `load mmc ${uvar('mmcdev')}:${opts.partNumber} ${uvar(addr)} ${posix.join(opts.dirInPartition, name)}`;
  const cmd = [
    load('loadaddr', UBOOT_KERNEL_NAME),
    load('fdtaddr', opts.dtb),
    load('rdaddr', UBOOT_INITRAMFS_NAME),
    `setenv bootargs ${opts.bootargs}`,
    `bootz ${uvar('loadaddr')} ${uvar('rdaddr')}:${uvar('filesize')} ${uvar('fdtaddr')}`,
  ].join('; ');
  return [
    '# balena-migrate: boot the stage2 migration environment; stage2 puts the former uEnv.txt back first',
    `# (uEnv.txt.${opts.ts}, or none)`,
    `uenvcmd=${cmd}`,
    '',
  ].join('\n');
}

/** extlinux.conf with a stage2 entry that is the default (the other entries as they were). */
export function withExtlinuxEntry(
  conf: string,
  entry: { kernel: string; fdt: string; initrd: string; append: string },
): string {
  const lines = conf.split('\n');
  const kept = lines.filter((l) => !/^\s*default\s/i.test(l));
  const body = kept.join('\n');
  return [
    '# balena-migrate: the stage2 migration environment is the default for one boot; stage2 restores this file first',
    `default ${EXTLINUX_LABEL}`,
    '',
    `label ${EXTLINUX_LABEL}`,
    `    kernel ${entry.kernel}`,
    `    fdt ${entry.fdt}`,
    `    initrd ${entry.initrd}`,
    `    append ${entry.append}`,
    '',
    body.endsWith('\n') || body === '' ? body : `${body}\n`,
  ].join('\n');
}

/** The kernel path the existing default extlinux entry uses, to place stage2's files the same way. */
function extlinuxKernelDir(conf: string): string | null {
  const m = /^\s*(?:kernel|linux)\s+(\S+)/im.exec(conf);
  return m ? posix.dirname(m[1]!) : null;
}

/** Plans the boot into stage2 on a u-boot board, or refuses with every reason that applies. */
export function planUbootBoot(input: PlanInput, device: Device): PlanResult {
  const { facts } = input;
  const reasons: string[] = [...hostProblems(facts)];
  const notes: string[] = [];
  const found = findUbootMethod(facts);
  reasons.push(...found.reasons);
  const method = found.method;

  // ---- kernel and device tree ----------------------------------------------------------------
  const kernel = stage2KernelSource(input);
  if (!kernel) {
    reasons.push(
      `the running kernel ${facts.kernel.release} has no image at /boot/vmlinuz-${facts.kernel.release}: ` +
        'reboot into the installed kernel, or supply a migration kernel',
    );
  }
  if (input.kernel.source === 'host' && !facts.kernel.modulesDir) {
    reasons.push(
      `/lib/modules/${facts.kernel.release} is missing: the stage2 initramfs needs this kernel's modules`,
    );
  }
  const dtbName = device.model.dtb;
  const dtbDir = facts.boot?.dtbDir ?? null;
  if (!dtbName) reasons.push(`balena-migrate does not know which device tree the ${device.name} needs`);
  else if (!dtbDir || !facts.boot?.dtbNames.includes(dtbName)) {
    reasons.push(
      `the device tree ${dtbName} of the running kernel was not found (looked in /boot/dtbs/${facts.kernel.release}, ` +
        `/usr/lib/linux-image-${facts.kernel.release}, /boot/dtbs)`,
    );
  }

  // ---- the partition u-boot reads ---------------------------------------------------------------
  const part = method
    ? bootPartitionProblems(facts, method.dir, 'the partition u-boot reads')
    : { part: undefined, reasons: [] };
  reasons.push(...part.reasons);
  const image = imageNameFor(input);
  reasons.push(...image.reasons, ...(input.network?.reasons ?? []));
  const install = installDiskOf(facts, input.image.rawSizeBytes);
  reasons.push(...install.reasons);
  if (part.part && install.disk && part.part.parent !== install.disk.name) {
    notes.push(
      `the partition u-boot reads (${part.part.name}) is not on the install disk ${install.disk.name}: ` +
        'the board must boot from the install disk once balenaOS is on it',
    );
  }
  const work = workDirOf(facts, input.workDir);
  reasons.push(...work.reasons);

  let confPath = '';
  let confBefore: Buffer | null = null;
  if (method) {
    const root = method.dir.path === '/' ? '' : method.dir.path;
    confPath = method.kind === 'uenv' ? `${root}/uEnv.txt` : method.confPath;
    const conf = bootFileBefore(facts, confPath);
    confBefore = conf.before;
    reasons.push(...conf.reasons);
    if (method.kind === 'extlinux' && !confBefore) reasons.push(`${confPath} could not be read`);
  }
  const bootFilesBytes = (kernel?.bytes ?? 0) + input.initramfs.data.length + 512 * 1024 + 8192;
  const sizes = method ? sizeProblems(input, method.dir, bootFilesBytes) : null;
  reasons.push(...(sizes?.reasons ?? []));

  if (
    reasons.length > 0 ||
    !method ||
    !sizes ||
    !part.part ||
    !kernel ||
    !dtbName ||
    !dtbDir ||
    !install.disk ||
    !install.rootPart ||
    !work.dev ||
    work.inFs === null
  ) {
    if (reasons.length === 0) reasons.push('internal: the u-boot planner is missing facts it needs');
    return { ok: false, reasons };
  }

  // ---- what goes where ------------------------------------------------------------------------
  const mp = method.dir.path;
  const inPart = (hostPath: string): string => (mp === '/' ? hostPath : hostPath.slice(mp.length) || '/');
  let dir = posix.join(mp, BOOT_SUBDIR);
  if (method.kind === 'extlinux') {
    // beside the kernel the default entry boots, so the entry's paths work the same way
    const kdir = extlinuxKernelDir(confBefore!.toString('utf8'));
    if (kdir?.startsWith('/')) dir = posix.join(mp, kdir, BOOT_SUBDIR);
  }
  const stage2ConfigPath = posix.join(mp, STAGE2_CONFIG_NAME);
  const ts = input.timestamp;
  const partNumber = part.part.partNumber ?? 1;
  const bootargs = stage2KernelArgs(facts, part.part);
  const confRel = inPart(confPath).replace(/^\//, '');
  const restores = [restoreEntry(confRel, ts, confBefore !== null)];
  const stage2 = firmwareStage2Config({
    input,
    imageName: image.name,
    workDev: work.dev,
    workInFs: work.inFs,
    rootPart: install.rootPart,
    installDisk: install.disk,
    restores,
    cleanup: [inPart(dir).replace(/^\//, ''), STAGE2_CONFIG_NAME],
  });
  if (stage2.problems.length > 0) return { ok: false, reasons: stage2.problems };

  const steps: ApplyStep[] = [
    {
      kind: 'mkdir',
      path: dir,
      mode: 0o755,
      description: `create ${dir} for the stage2 kernel, device tree and initramfs`,
    },
    kernelCopyStep(input, kernel, posix.join(dir, UBOOT_KERNEL_NAME)),
    {
      kind: 'copy',
      from: posix.join(dtbDir, dtbName),
      to: posix.join(dir, dtbName),
      mode: 0o644,
      description: `copy the device tree ${posix.join(dtbDir, dtbName)}`,
    },
    initramfsCopyStep(input, posix.join(dir, UBOOT_INITRAMFS_NAME)),
    stage2ConfigStep(stage2ConfigPath, stage2.config),
  ];
  if (confBefore) steps.push(backupStep(confPath, ts, confBefore, { mode: 0o644, sayChecked: true }));
  const dirInPart = inPart(dir);
  if (method.kind === 'uenv') {
    steps.push({
      kind: 'write',
      path: confPath,
      content: renderUenv({ partNumber, dirInPartition: dirInPart, dtb: dtbName, bootargs, ts }),
      mode: 0o644,
      description: `write ${confPath}: u-boot boots stage2 next`,
    });
  } else {
    const rel = (name: string) => posix.join(inPart(dir), name);
    steps.push({
      kind: 'write',
      path: confPath,
      content: withExtlinuxEntry(confBefore!.toString('utf8'), {
        kernel: rel(UBOOT_KERNEL_NAME),
        fdt: rel(dtbName),
        initrd: rel(UBOOT_INITRAMFS_NAME),
        append: bootargs,
      }),
      mode: 0o644,
      description: `make the stage2 entry the default of ${confPath}: u-boot boots stage2 next`,
    });
  }

  notes.push(
    `device: ${device.name} (${device.evidence.join(', ')}), balena device type ${device.deviceType}`,
    `boot: u-boot; ${method.why}; ${confPath} on ${part.part.name} (${method.dir.fstype}, PARTUUID ${part.part.partuuid})`,
    `kernel: ${kernel.from} (${formatBytes(kernel.bytes)}), device tree ${dtbName}, initramfs ` +
      `${formatBytes(input.initramfs.data.length)}, all copied to ${dir}`,
    `boot into stage2: no one-shot in u-boot: ${confPath} ${confBefore ? `is backed up to ${confPath}.${ts} and ` : ''}` +
      `${method.kind === 'uenv' ? 'written' : 'gets a default stage2 entry'}; stage2 puts the former ` +
      `${posix.basename(confPath)} back before anything else, and undo does if the setup fails`,
    ...commonNotes(input, install.disk, install.rootPart, work.dev, sizes),
  );

  const plan: Plan = {
    host: input.hostName,
    deviceType: device.deviceType,
    bootManager: 'uboot',
    installDisk: { name: install.disk.name, sizeBytes: install.disk.sizeBytes },
    workDir: input.workDir,
    payload: payloadFiles(input, image.name),
    steps,
    oneShot: { mechanism: method.kind === 'uenv' ? 'uboot-uenv' : 'uboot-extlinux', argv: [] },
    stage2Config: stage2.config,
    stage2ConfigPath,
    ram: { neededBytes: sizes.ramNeedBytes, availableBytes: facts.memory.availableBytes },
    notes,
  };
  return { ok: true, plan };
}
