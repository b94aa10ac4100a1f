// The Windows boot manager for x86-64 UEFI PCs: stage2's kernel and initramfs go into
// \EFI\balena-migrate\ on the EFI system partition, balena-stage2.yml to the ESP's root, and
// a UEFI boot option of our own (Boot####, with the kernel command line as its load options)
// is started once through BootNext. The firmware deletes BootNext when it uses it, so if
// stage2 does not come up the next boot is Windows again, untouched.
//
// Why not `bcdedit /copy {bootmgr}` + `bcdedit /set {fwbootmgr} bootsequence`: an entry that
// bcdedit syncs to the firmware carries Windows' own load options (a "WINDOWS" header and
// BCDOBJECT={guid}), and an EFI-stub Linux kernel takes its load options as its command
// line, so it would start without initrd= and root=. We therefore write the EFI_LOAD_OPTION
// ourselves (SetFirmwareEnvironmentVariableEx, the way efibootmgr does on Linux) and set
// BootNext, which is exactly what `bootsequence` does for a {fwbootmgr} entry.
//
// Pure: facts and sizes in, a WindowsPlan or the reasons for refusing out.
import {
  checkStage2Config,
  renderStage2Config,
  STAGE2_COMPRESSIONS,
} from '../../../stage2/build/stage2-config.ts';
import type { WindowsFacts, WindowsPartition } from '../../facts/windows.ts';
import {
  bootVariableName,
  encodeLoadOption,
  encodeLoadOptionsText,
  normaliseGuid,
} from '../../facts/windows-efi.ts';
import type { PayloadFile, Plan, PlanInput, PlanResult, Stage2Config } from '../../plan/plan.ts';
import { GENERIC_X86_64 } from '../device.ts';
import { formatBytes } from '../grub.ts';
import { checkKernelConfig, parseKernelConfig } from './kernel-config.ts';

export type WindowsFallback = 'none' | 'startup-nsh';

/** What the Windows planner needs: the usual plan input, with Windows facts. */
export interface WindowsPlanInput extends Omit<PlanInput, 'facts'> {
  facts: WindowsFacts;
  /** the text of `<kernel>.config` beside a supplied kernel, when the operator put one there */
  kernelConfig: string | null;
  /** `startup-nsh`: also move Windows' boot files aside for firmware that ignores BootNext (opt-in) */
  windowsFallback: WindowsFallback;
}

/** A path on the EFI system partition, from its root: `\EFI\balena-migrate\vmlinuz.efi`. */
export type EspPath = string;

/**
 * One step of the Windows transaction; `undo` says in words what undoing it does. The
 * renderer (render.ts) turns each kind into a PowerShell function pair.
 */
export type WindowsStep =
  /** create a directory on the ESP; undo removes it if this step created it and it is empty */
  | { kind: 'esp-mkdir'; path: EspPath; description: string; undo: string }
  /** copy a file of the work dir to the ESP, verified by sha256; an existing target is backed up */
  | { kind: 'esp-copy'; from: string; to: EspPath; sha256: string; description: string; undo: string }
  /** write exact bytes (UTF-8 text) to the ESP; an existing target is backed up */
  | { kind: 'esp-write'; path: EspPath; content: string; description: string; undo: string }
  /** move a file on the ESP (the opt-in fallback); undo moves it back */
  | { kind: 'esp-move'; from: EspPath; to: EspPath; description: string; undo: string }
  /** create the UEFI variable Boot#### (it must not exist); undo deletes it */
  | { kind: 'efi-boot-option'; number: number; valueHex: string; description: string; undo: string }
  /** set BootNext to a boot option; the old value is backed up and undo puts it back */
  | { kind: 'efi-boot-next'; number: number; description: string; undo: string };

export interface WindowsBootSetup {
  /** the ESP the plan writes to and the firmware boots from (the install disk holds it) */
  esp: { diskNumber: number; partitionNumber: number; guid: string; offsetBytes: number; sizeBytes: number };
  /** the ESP paths of stage2's kernel and initramfs */
  kernelPath: EspPath;
  initramfsPath: EspPath;
  /** the boot option started once */
  bootOption: { number: number; name: string; description: string; loadOptions: string };
  fallback: WindowsFallback;
  /** files the fallback moves aside, which stage2 moves back first (restore_N_from → restore_N_to) */
  restores: Array<{ from: EspPath; to: EspPath }>;
  steps: WindowsStep[];
}

/** A Plan for a Windows host: its steps are Windows steps, in `windows.steps`. */
export interface WindowsPlan extends Plan {
  bootManager: 'windows';
  windows: WindowsBootSetup;
}

export type WindowsPlanResult = { ok: true; plan: WindowsPlan } | { ok: false; reasons: string[] };

export const ESP_DIR: EspPath = '\\EFI\\balena-migrate';
export const ESP_KERNEL: EspPath = `${ESP_DIR}\\vmlinuz.efi`;
export const ESP_INITRAMFS: EspPath = `${ESP_DIR}\\initramfs.gz`;
export const ESP_STAGE2_CONFIG: EspPath = '\\balena-stage2.yml';
export const ESP_STARTUP_NSH: EspPath = '\\startup.nsh';
export const ESP_BACKUP_DIR: EspPath = '\\efi_backup';
/** Windows' boot files the startup-nsh fallback moves into \efi_backup (same path below it). */
export const FALLBACK_MOVES: readonly EspPath[] = [
  '\\EFI\\Boot\\bootx64.efi',
  '\\EFI\\Microsoft\\Boot\\bootmgfw.efi',
];
export const BOOT_OPTION_DESCRIPTION = 'balena-migrate stage2';

export const WORK_KERNEL_NAME = 'vmlinuz.efi';
export const WORK_INITRAMFS_NAME = 'stage2-initramfs.gz';
export const CONFIG_JSON_NAME = 'config.json';
export const STAGE2_LOG_NAME = 'stage2.log';

/** The image's name in the work dir says how it is compressed. */
const IMAGE_SUFFIX: Record<string, string> = {
  none: '.img',
  gzip: '.img.gz',
  xz: '.img.xz',
  zip: '.img.zip',
};

const MiB = 1024 * 1024;
/** ESP room beyond our files: FAT clusters and directory entries */
export const ESP_MARGIN_BYTES = 1 * MiB;
/** work dir room beyond the payload: scripts, backups, logs */
export const WORK_MARGIN_BYTES = 16 * MiB;
/** what stage2 keeps in RAM for its log (the init's LOG_RESERVE) */
export const STAGE2_LOG_BYTES = 1 * MiB;
/**
 * RAM that is not stage2's: firmware reservations, the kernel and the unpacked initramfs.
 * Windows' own free memory says nothing about stage2, which boots into an empty machine, so
 * the plan counts installed memory less this; stage2 checks MemAvailable again itself.
 */
export const STAGE2_RAM_RESERVE_BYTES = 384 * MiB;

/** What may appear in a path stage2 reads from its config (see stage2-config.ts). */
const STAGE2_PATH = /^[A-Za-z0-9._/+,=-]+$/;
/** An absolute Windows path on a drive letter, normalised, not the drive root. */
const WINDOWS_DIR = /^[A-Za-z]:(\\[^\\/:*?"<>|\0-\x1f]+)+$/;

/** `C:\balena-migrate\x` → `C:/balena-migrate/x`: the form Windows' SFTP server takes. */
export function sftpPath(windowsPath: string): string {
  return windowsPath.replace(/\\/g, '/');
}

/** The kernel command line stage2 boots with, as the boot option's load options. */
export function stage2LoadOptions(espGuid: string): string {
  return `initrd=${ESP_INITRAMFS} root=PARTUUID=${espGuid} console=tty0 panic=10`;
}

/**
 * startup.nsh for the UEFI shell (fallback only): finds the ESP among the shell's file
 * systems and starts the stage2 kernel with the same command line as the boot option.
 */
export function renderStartupNsh(loadOptions: string): string {
  const lines = [
    '@echo -off',
    '# balena-migrate: start stage2 when the firmware falls back to the UEFI shell.',
    '# Windows boot files were moved to \\efi_backup; stage2 moves them back first.',
    'for %i in 0 1 2 3 4 5 6 7 8 9',
    `  if exist fs%i:${ESP_KERNEL} then`,
    '    fs%i:',
    `    ${ESP_KERNEL} ${loadOptions}`,
    '  endif',
    'endfor',
    '',
  ];
  return lines.join('\r\n');
}

/** `\EFI\Boot\bootx64.efi` → `EFI/Boot/bootx64.efi`: an ESP path as stage2 sees it. */
function espRelative(p: EspPath): string {
  return p.replace(/^\\+/, '').replace(/\\/g, '/');
}

/** The lowest Boot#### number that the probe saw unused (and that BootOrder does not name). */
export function freeBootNumber(facts: WindowsFacts): number | null {
  const used = new Set<number>([...facts.efi.options.map((o) => o.number), ...(facts.efi.bootOrder ?? [])]);
  if (facts.efi.bootCurrent !== null) used.add(facts.efi.bootCurrent);
  for (let n = 0; n <= 0xff; n++) if (!used.has(n)) return n;
  return null;
}

function bitlockerOf(facts: WindowsFacts, letter: string | null) {
  if (!letter) return undefined;
  return facts.bitlocker.volumes.find((v) => v.mountPoint.toUpperCase() === `${letter}:`);
}

function describePartition(p: WindowsPartition): string {
  return `disk ${p.diskNumber} partition ${p.partitionNumber}${p.driveLetter ? ` (${p.driveLetter}:)` : ''}`;
}

/** Plans the one-shot UEFI boot into stage2 on a Windows PC, or refuses with every reason. */
export function planWindowsBoot(input: WindowsPlanInput): WindowsPlanResult {
  const { facts } = input;
  const reasons: string[] = [];
  const notes: string[] = [];
  const refuse = (why: string): void => {
    reasons.push(why);
  };

  // ---- the host as a whole --------------------------------------------------------------------
  if (!facts.isAdmin) {
    refuse(
      `the SSH user is not an administrator on ${facts.hostname}: the probe and the boot setup need an ` +
        'elevated session; log in as a member of the Administrators group',
    );
  }
  if (facts.arch !== 'x86_64') {
    refuse(`the Windows planner handles x86_64 PCs only; this host is ${facts.arch}`);
  }
  if (facts.firmware.type === 'bios') {
    refuse(
      `${facts.os.caption} boots through legacy BIOS (${facts.firmware.detail}): the Windows path needs UEFI ` +
        'firmware boot entries; such hosts are not supported',
    );
  } else if (facts.firmware.type !== 'uefi') {
    refuse(`the firmware type could not be told (${facts.firmware.detail}): only UEFI hosts are supported`);
  }
  if (facts.secureBoot.enabled === true) {
    refuse(
      'Secure Boot is enabled: the stage2 kernel is not signed for it and the firmware would refuse to start ' +
        'it; disable Secure Boot in the firmware setup (suspend BitLocker first if it is on), then run check again',
    );
  } else if (facts.secureBoot.enabled === null && facts.firmware.type === 'uefi') {
    notes.push(`Secure Boot state could not be read (${facts.secureBoot.reason}); assuming it is off`);
  }

  // ---- kernel ---------------------------------------------------------------------------------
  let kernelBytes = 0;
  let ntfsDriver: 'ntfs3' | 'ntfs' | null = null;
  let kernelChecked = false;
  if (input.kernel.source === 'host') {
    refuse(
      'stage2.kernel is "host", but a Windows host has no Linux kernel to boot: supply a migration kernel ' +
        '(an x86_64 bzImage with CONFIG_EFI_STUB, NTFS3, FAT and the disk drivers built in) with ' +
        'stage2.kernel, and its .config beside it as <kernel>.config',
    );
  } else {
    kernelBytes = input.kernel.file.sizeBytes;
  }

  // ---- image ----------------------------------------------------------------------------------
  const compression = input.image.compression;
  if (!(STAGE2_COMPRESSIONS as readonly string[]).includes(compression)) {
    refuse(
      `the image is ${compression}-compressed; stage2 reads ${STAGE2_COMPRESSIONS.join(', ')} images: recompress it with gzip`,
    );
  }
  const imageName = `balena-image${IMAGE_SUFFIX[compression]}`;

  // ---- the EFI system partition and the install disk -------------------------------------------
  const esp = facts.esp;
  const installDisk = esp ? facts.disks.find((d) => d.number === esp.diskNumber) : undefined;
  if (!esp) {
    refuse(`no EFI system partition to boot stage2 from: ${facts.espProblem ?? 'none was found'}`);
  } else {
    if (!esp.guid) refuse(`the EFI system partition (${describePartition(esp)}) has no partition GUID`);
    if (esp.freeBytes === null) {
      refuse(
        `the free space of the EFI system partition could not be measured (${describePartition(esp)}): ` +
          'check the probe warnings',
      );
    }
    if (!installDisk)
      refuse(`disk ${esp.diskNumber}, which holds the EFI system partition, was not in the probe`);
    else {
      if (installDisk.partitionStyle !== 'GPT') {
        refuse(`the install disk ${installDisk.number} is ${installDisk.partitionStyle}, not GPT`);
      }
      if (installDisk.readOnly) refuse(`the install disk ${installDisk.number} is read-only`);
      if (installDisk.offline) refuse(`the install disk ${installDisk.number} is offline`);
      if (installDisk.sizeBytes < input.image.rawSizeBytes) {
        refuse(
          `the install disk ${installDisk.number} (${formatBytes(installDisk.sizeBytes)}) is smaller than the ` +
            `image (${formatBytes(input.image.rawSizeBytes)} raw)`,
        );
      }
    }
  }

  // ---- work dir -------------------------------------------------------------------------------
  const workDir = input.workDir;
  const work = facts.workDir;
  const workPart = work.partition;
  let workInFs: string | null = null;
  if (!WINDOWS_DIR.test(workDir) || /\\\.\.?(\\|$)/.test(workDir)) {
    refuse(
      `the work dir "${workDir}" must be an absolute Windows path below a drive root, such as C:\\balena-migrate`,
    );
  } else {
    workInFs = workDir.slice(3).replace(/\\/g, '/');
    if (!STAGE2_PATH.test(workInFs)) {
      refuse(
        `the work dir path ${workDir} has characters stage2 cannot use (spaces among them); ` +
          'use only letters, digits and . _ = + , -',
      );
    }
  }
  if (work.path !== workDir)
    refuse(`the facts were probed for the work dir ${work.path}, not ${workDir}: probe again`);
  if (!work.writable)
    refuse(`the work dir ${workDir} (checked at ${work.probedPath ?? work.path}) is not writable`);
  let workFsType: string | null = null;
  if (!workPart) {
    refuse(`the work dir ${workDir} is not on a partition with a drive letter that the probe saw`);
  } else {
    if (!workPart.guid) {
      refuse(
        `the work dir ${workDir} is on ${describePartition(workPart)}, which has no partition GUID ` +
          `(an MBR disk): stage2 finds the work dir by PARTUUID; choose a work dir on a GPT disk, such as the system disk`,
      );
    }
    const fs = (workPart.fileSystem ?? '').toUpperCase();
    if (fs === 'NTFS') workFsType = 'ntfs';
    else if (fs === 'FAT32' || fs === 'FAT') workFsType = 'vfat';
    else {
      refuse(
        `the work dir ${workDir} is on ${workPart.fileSystem ?? 'an unknown file system'}, which stage2 cannot ` +
          'mount; choose a directory on an NTFS or FAT32 volume',
      );
    }
    const workDisk = facts.disks.find((d) => d.number === workPart.diskNumber);
    if (workDisk?.busType === 'RAID' && workDisk.number !== installDisk?.number) {
      refuse(
        `the work dir is on disk ${workDisk.number}, a RAID volume Linux cannot see; choose another disk`,
      );
    }
  }

  // ---- BitLocker ------------------------------------------------------------------------------
  const encrypted = (letter: string | null): string | null => {
    const v = bitlockerOf(facts, letter);
    if (!v) return null;
    if (v.volumeStatus === 'FullyDecrypted' && v.protectionStatus !== 'On') return null;
    if (v.volumeStatus === null && v.protectionStatus === null) return null;
    return `${v.volumeStatus ?? 'status unknown'}, protection ${v.protectionStatus ?? 'unknown'}`;
  };
  const lockedLetters = new Set<string>();
  if (workPart?.driveLetter) {
    const state = encrypted(workPart.driveLetter);
    if (state) {
      lockedLetters.add(workPart.driveLetter);
      refuse(
        `BitLocker is on for ${workPart.driveLetter}: (${state}), which holds the work dir: stage2 cannot read ` +
          `BitLocker volumes; turn it off (manage-bde -off ${workPart.driveLetter}:) and wait until it is fully ` +
          'decrypted, or choose a work dir on an unencrypted volume',
      );
    }
  }
  if (esp) {
    for (const p of facts.partitions.filter((x) => x.diskNumber === esp.diskNumber && x.driveLetter)) {
      const state = encrypted(p.driveLetter);
      if (state && !lockedLetters.has(p.driveLetter!)) {
        refuse(
          `BitLocker is on for ${p.driveLetter}: (${state}) on the install disk ${esp.diskNumber}: stage2 cannot ` +
            `read BitLocker volumes; turn it off (manage-bde -off ${p.driveLetter}:) and wait until it is fully decrypted`,
        );
      }
    }
  }
  if (facts.bitlocker.source === 'none') {
    notes.push(
      `BitLocker state unknown (${facts.bitlocker.error}); stage2 fails safely if the work dir is encrypted`,
    );
  } else if (workPart?.driveLetter && !bitlockerOf(facts, workPart.driveLetter)) {
    notes.push(`BitLocker reported nothing for ${workPart.driveLetter}:; assuming it is not encrypted`);
  }

  // ---- the kernel's config --------------------------------------------------------------------
  if (input.kernel.source === 'file') {
    const buses = [
      installDisk?.busType,
      facts.disks.find((d) => d.number === workPart?.diskNumber)?.busType,
    ].filter((b): b is string => !!b);
    if (buses.includes('RAID')) {
      refuse(
        `the install disk ${installDisk?.number} is behind a RAID controller (bus type RAID, e.g. Intel RST): ` +
          'Linux does not see such disks; this host is not supported',
      );
    }
    if (input.kernelConfig === null) {
      notes.push(
        `no ${input.kernel.file.path}.config beside the kernel: it could not be checked for CONFIG_EFI_STUB, ` +
          'CONFIG_NTFS3_FS, FAT and the disk drivers; stage2 assumes ntfs3',
      );
    } else {
      kernelChecked = true;
      const check = checkKernelConfig(parseKernelConfig(input.kernelConfig), buses);
      for (const m of check.missing) refuse(`the migration kernel lacks ${m}`);
      notes.push(...check.notes);
      ntfsDriver = check.ntfs;
      if (workFsType === 'ntfs' && !ntfsDriver) {
        refuse(
          'the migration kernel reads no NTFS (neither CONFIG_NTFS3_FS=y nor CONFIG_NTFS_FS=y) and the work dir ' +
            `${workDir} is on NTFS: rebuild the kernel with CONFIG_NTFS3_FS=y`,
        );
      }
    }
  }
  const stage2FsType = workFsType === 'ntfs' ? (ntfsDriver ?? 'ntfs3') : workFsType;

  // ---- boot variables -------------------------------------------------------------------------
  let bootNumber: number | null = null;
  if (facts.firmware.type === 'uefi') {
    if (facts.efi.error) {
      refuse(
        `the UEFI boot variables could not be read (${facts.efi.error}): the one-shot boot cannot be set up`,
      );
    } else {
      if (facts.efi.bootNext !== null) {
        refuse(
          `BootNext is already set to ${bootVariableName(facts.efi.bootNext)}: another one-shot boot is pending ` +
            '(a firmware update?); reboot once, then run check again',
        );
      }
      bootNumber = freeBootNumber(facts);
      if (bootNumber === null) refuse('no free boot option number between Boot0000 and Boot00FF');
      const old = facts.efi.options.filter((o) => o.description === BOOT_OPTION_DESCRIPTION);
      if (old.length > 0) {
        notes.push(
          `an earlier ${BOOT_OPTION_DESCRIPTION} boot option exists (${old.map((o) => o.name).join(', ')}); ` +
            'it is left alone, a new one is created',
        );
      }
    }
  }

  // ---- fallback -------------------------------------------------------------------------------
  const restores: Array<{ from: EspPath; to: EspPath }> = [];
  if (input.windowsFallback === 'startup-nsh' && esp) {
    if (esp.files[ESP_BACKUP_DIR]) {
      refuse(
        `${ESP_BACKUP_DIR} already exists on the EFI system partition (from an earlier run?): look at what it ` +
          'holds and move the files back before using the startup-nsh fallback',
      );
    }
    for (const f of FALLBACK_MOVES) {
      if (esp.files[f]) restores.push({ from: `${ESP_BACKUP_DIR}${f}`, to: f });
      else notes.push(`fallback: ${f} is not on the EFI system partition; nothing to move for it`);
    }
  }

  // ---- sizes ----------------------------------------------------------------------------------
  const initramfsBytes = input.initramfs.data.length;
  const payloadBytes = input.image.fileSizeBytes + input.configJson.sizeBytes + initramfsBytes + kernelBytes;
  const espNeed =
    kernelBytes +
    initramfsBytes +
    4096 +
    (input.windowsFallback === 'startup-nsh' ? 4096 : 0) +
    ESP_MARGIN_BYTES;
  if (esp && esp.freeBytes !== null && espNeed > esp.freeBytes) {
    refuse(
      `the EFI system partition has ${formatBytes(esp.freeBytes)} free, but the stage2 kernel and initramfs ` +
        `need ${formatBytes(espNeed)} with margin; a smaller kernel or initramfs would fit, or free space on it`,
    );
  }
  const workNeed = payloadBytes + WORK_MARGIN_BYTES;
  if (workPart && workPart.freeBytes !== null && workNeed > workPart.freeBytes) {
    refuse(
      `the work dir ${workDir} has ${formatBytes(workPart.freeBytes)} free, but the payload needs ` +
        `${formatBytes(workNeed)} with margin; free some space or choose another work dir`,
    );
  }
  const ramAvailable = Math.max(0, facts.memory.totalBytes - STAGE2_RAM_RESERVE_BYTES);
  const ramNeed =
    input.image.fileSizeBytes + input.configJson.sizeBytes + STAGE2_LOG_BYTES + input.ramMarginBytes;
  if (ramNeed > ramAvailable) {
    refuse(
      `stage2 holds the image in RAM: it needs ${formatBytes(ramNeed)} (image ${formatBytes(input.image.fileSizeBytes)}` +
        ` + config + log + margin ${formatBytes(input.ramMarginBytes)}), but this PC has ` +
        `${formatBytes(facts.memory.totalBytes)} installed, about ${formatBytes(ramAvailable)} of it for stage2; ` +
        'use a compressed image or a smaller RAM margin',
    );
  }

  if (
    reasons.length > 0 ||
    !esp ||
    !esp.guid ||
    !installDisk ||
    !workPart?.guid ||
    workInFs === null ||
    !stage2FsType ||
    bootNumber === null ||
    input.kernel.source !== 'file'
  ) {
    if (reasons.length === 0) reasons.push('internal: the Windows planner is missing facts it needs');
    return { ok: false, reasons };
  }

  // ---- stage2 config ----------------------------------------------------------------------------
  const espGuid = normaliseGuid(esp.guid);
  const baseConfig: Stage2Config = {
    version: 1,
    mode: input.mode === 'pretend' || input.stage2Pretend ? 'pretend' : 'flash',
    fail_mode: input.failMode,
    grubenv: '',
    grubenv_b64: '',
    work_dev: `PARTUUID=${normaliseGuid(workPart.guid)}`,
    work_fstype: stage2FsType,
    work_path: workInFs,
    install_disk_of: `PARTUUID=${espGuid}`,
    install_disk_size: installDisk.sizeBytes,
    image_file: imageName,
    image_compression: compression,
    image_sha256: input.image.fileSha256,
    image_size: input.image.fileSizeBytes,
    image_raw_size: input.image.rawSizeBytes,
    image_raw_sha256: input.image.rawSha256,
    config_file: CONFIG_JSON_NAME,
    config_sha256: input.configJson.sha256,
    network_files: '',
    network_sha256: '',
    ram_margin: input.ramMarginBytes,
    boot_label: 'resin-boot',
    log_name: STAGE2_LOG_NAME,
    // the ESP is the root= partition: stage2 saves its log there when the work dir fails it
    log_device: '',
    watchdog: '',
    cleanup: [
      espRelative(ESP_DIR),
      espRelative(ESP_STAGE2_CONFIG),
      ...(input.windowsFallback === 'startup-nsh' ? [espRelative(ESP_STARTUP_NSH)] : []),
    ].join(' '),
  };
  const problems = checkStage2Config(baseConfig);
  const restoreConfig: Stage2Config = { restore_count: restores.length };
  restores.forEach((r, i) => {
    restoreConfig[`restore_${i + 1}_from`] = espRelative(r.from);
    restoreConfig[`restore_${i + 1}_to`] = espRelative(r.to);
  });
  for (const [k, v] of Object.entries(restoreConfig)) {
    if (k !== 'restore_count' && !STAGE2_PATH.test(String(v)))
      problems.push(`${k}: "${v}" is not a plain path`);
  }
  if (problems.length > 0) {
    return { ok: false, reasons: problems.map((p) => `the stage2 config would be invalid: ${p}`) };
  }
  const stage2Config: Stage2Config = { ...baseConfig, ...restoreConfig };

  // ---- payload ------------------------------------------------------------------------------
  const inWork = (name: string): string => `${workDir}\\${name}`;
  const payload: PayloadFile[] = [
    {
      role: 'image',
      source: { kind: 'file', path: input.image.path },
      remotePath: sftpPath(inWork(imageName)),
      sizeBytes: input.image.fileSizeBytes,
      sha256: input.image.fileSha256,
      mode: 0o600,
    },
    {
      role: 'config-json',
      source: { kind: 'file', path: input.configJson.path },
      remotePath: sftpPath(inWork(CONFIG_JSON_NAME)),
      sizeBytes: input.configJson.sizeBytes,
      sha256: input.configJson.sha256,
      mode: 0o600,
    },
    {
      role: 'initramfs',
      source: { kind: 'bytes', data: input.initramfs.data },
      remotePath: sftpPath(inWork(WORK_INITRAMFS_NAME)),
      sizeBytes: initramfsBytes,
      sha256: input.initramfs.sha256,
      mode: 0o644,
    },
    {
      role: 'kernel',
      source: { kind: 'file', path: input.kernel.file.path },
      remotePath: sftpPath(inWork(WORK_KERNEL_NAME)),
      sizeBytes: input.kernel.file.sizeBytes,
      sha256: input.kernel.file.sha256,
      mode: 0o644,
    },
  ];

  // ---- steps --------------------------------------------------------------------------------
  const loadOptions = stage2LoadOptions(espGuid);
  const bootName = bootVariableName(bootNumber);
  const optionValue = encodeLoadOption({
    description: BOOT_OPTION_DESCRIPTION,
    hardDrive: {
      partitionNumber: esp.partitionNumber,
      startLba: BigInt(Math.floor(esp.offsetBytes / installDisk.logicalSectorSize)),
      sizeLba: BigInt(Math.floor(esp.sizeBytes / installDisk.logicalSectorSize)),
      partitionGuid: espGuid,
    },
    filePath: ESP_KERNEL,
    optionalData: encodeLoadOptionsText(loadOptions),
  });
  const steps: WindowsStep[] = [
    {
      kind: 'esp-mkdir',
      path: ESP_DIR,
      description: `create ${ESP_DIR} on the EFI system partition`,
      undo: `remove ${ESP_DIR} if this step created it`,
    },
    {
      kind: 'esp-copy',
      from: inWork(WORK_KERNEL_NAME),
      to: ESP_KERNEL,
      sha256: input.kernel.file.sha256,
      description: 'copy the migration kernel to the EFI system partition',
      undo: `delete ${ESP_KERNEL} (or put back the file it replaced)`,
    },
    {
      kind: 'esp-copy',
      from: inWork(WORK_INITRAMFS_NAME),
      to: ESP_INITRAMFS,
      sha256: input.initramfs.sha256,
      description: 'copy the stage2 initramfs to the EFI system partition',
      undo: `delete ${ESP_INITRAMFS} (or put back the file it replaced)`,
    },
    {
      kind: 'esp-write',
      path: ESP_STAGE2_CONFIG,
      content: renderStage2Config(stage2Config),
      description: `write the stage2 config ${ESP_STAGE2_CONFIG}`,
      undo: `delete ${ESP_STAGE2_CONFIG} (or put back the file it replaced)`,
    },
  ];
  if (input.windowsFallback === 'startup-nsh') {
    steps.push({
      kind: 'esp-write',
      path: ESP_STARTUP_NSH,
      content: renderStartupNsh(loadOptions),
      description: `write ${ESP_STARTUP_NSH} for the UEFI shell`,
      undo: `delete ${ESP_STARTUP_NSH} (or put back the file it replaced)`,
    });
    const dirs = new Set<string>();
    for (const r of restores) {
      const parts = r.from.split('\\').filter(Boolean);
      for (let i = 1; i < parts.length; i++) dirs.add(`\\${parts.slice(0, i).join('\\')}`);
    }
    for (const d of [...dirs].sort(
      (a, b) => a.split('\\').length - b.split('\\').length || a.localeCompare(b),
    )) {
      steps.push({
        kind: 'esp-mkdir',
        path: d,
        description: `create ${d} for the fallback`,
        undo: `remove ${d} if this step created it`,
      });
    }
    for (const r of restores) {
      steps.push({
        kind: 'esp-move',
        from: r.to,
        to: r.from,
        description: `move ${r.to} aside to ${r.from} (fallback; stage2 moves it back first)`,
        undo: `move ${r.from} back to ${r.to}`,
      });
    }
  }
  steps.push(
    {
      kind: 'efi-boot-option',
      number: bootNumber,
      valueHex: optionValue.toString('hex'),
      description: `create the UEFI boot option ${bootName} "${BOOT_OPTION_DESCRIPTION}" for ${ESP_KERNEL}`,
      undo: `delete ${bootName}`,
    },
    {
      kind: 'efi-boot-next',
      number: bootNumber,
      description: `boot ${bootName} once, on the next reboot (BootNext)`,
      undo: 'put BootNext back as it was (absent)',
    },
  );

  notes.push(
    `boot: UEFI, ${facts.os.caption} (build ${facts.os.build}); one-shot boot option ${bootName} through BootNext, ` +
      'which the firmware clears when it uses it: if stage2 does not start, the next boot is Windows',
    `kernel: ${input.kernel.file.path} (${formatBytes(kernelBytes)}${kernelChecked ? ', config checked' : ''}), ` +
      `initramfs ${formatBytes(initramfsBytes)}, both copied to ${ESP_DIR} on ${describePartition(esp)} ` +
      `(${formatBytes(esp.freeBytes ?? 0)} free)`,
    `kernel command line: ${loadOptions}`,
    `install disk: disk ${installDisk.number} ${installDisk.friendlyName ?? ''} (${installDisk.busType}, ` +
      `${formatBytes(installDisk.sizeBytes)}), the disk of the EFI system partition; image ${formatBytes(input.image.rawSizeBytes)} raw`,
    `work dir: ${workDir} on ${describePartition(workPart)}, ${workPart.fileSystem} (read by stage2 as ${stage2FsType}), ` +
      `${formatBytes(workPart.freeBytes ?? 0)} free, payload ${formatBytes(payloadBytes)}`,
    `RAM: stage2 needs ${formatBytes(ramNeed)} of about ${formatBytes(ramAvailable)} (${formatBytes(facts.memory.totalBytes)} installed)`,
  );
  if (workPart.diskNumber !== installDisk.number) {
    notes.push(
      `the work dir is on disk ${workPart.diskNumber}, not on the install disk ${installDisk.number}`,
    );
  }
  if (input.windowsFallback === 'startup-nsh') {
    notes.push(
      `fallback startup-nsh: ${restores.map((r) => r.to).join(' and ')} moved to ${ESP_BACKUP_DIR}, so firmware ` +
        'that ignores BootNext falls through to the UEFI shell and startup.nsh; if stage2 then does not start, ' +
        'Windows does not come back by itself: move the files back from the UEFI shell or run undo.ps1 from ' +
        'recovery media',
    );
  }
  if (facts.fastStartup) {
    notes.push(
      'Fast Startup is on: the host must be restarted (not shut down) so NTFS is left clean for stage2',
    );
  }

  const plan: WindowsPlan = {
    host: input.hostName,
    deviceType: GENERIC_X86_64,
    bootManager: 'windows',
    installDisk: { name: `PhysicalDrive${installDisk.number}`, sizeBytes: installDisk.sizeBytes },
    workDir,
    payload,
    steps: [],
    oneShot: { mechanism: 'uefi-bootnext', argv: ['BootNext', bootName] },
    stage2Config,
    stage2ConfigPath: `ESP:${ESP_STAGE2_CONFIG}`,
    ram: { neededBytes: ramNeed, availableBytes: ramAvailable },
    notes,
    windows: {
      esp: {
        diskNumber: esp.diskNumber,
        partitionNumber: esp.partitionNumber,
        guid: espGuid,
        offsetBytes: esp.offsetBytes,
        sizeBytes: esp.sizeBytes,
      },
      kernelPath: ESP_KERNEL,
      initramfsPath: ESP_INITRAMFS,
      bootOption: { number: bootNumber, name: bootName, description: BOOT_OPTION_DESCRIPTION, loadOptions },
      fallback: input.windowsFallback,
      restores,
      steps,
    },
  };
  return { ok: true, plan };
}

/** planWindowsBoot as a PlanResult, for callers that hold plans of every boot manager. */
export function planWindowsMigration(input: WindowsPlanInput): PlanResult {
  return planWindowsBoot(input);
}
