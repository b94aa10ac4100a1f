// The EFI boot manager for x86-64 Linux hosts on UEFI firmware, for when GRUB cannot boot stage2
// once (no GRUB, or a grubenv GRUB cannot rewrite at boot: /boot on LVM, md RAID, btrfs, or a
// grubenv symlinked onto the ESP), and on request (`stage2.bootManager: efi`).
//
// Stage2's kernel (the host's EFI-stub kernel, or a supplied one) and initramfs go to
// \EFI\balena-migrate\ on the EFI system partition, balena-stage2.yml to the ESP's root, and a
// boot entry of our own, Boot#### "balena-migrate stage2", carries the kernel command line
// (initrd=, root= the ESP) as its load options. It is created with `efibootmgr --create-only`,
// so it never enters BootOrder, and started once through BootNext. The firmware deletes
// BootNext when it boots it: whatever happens in stage2, a kernel panic included, the next boot
// is BootOrder's first entry, the old OS. There is no boot loop to fear.
//
// Who removes the entry: stage2, first thing (it mounts efivarfs and deletes the variable named
// by the config key `efi_remove_entry`; Boot#### is a standard variable, which efivarfs does
// not make immutable, so busybox `rm` does it), so a migrated host keeps no dangling entry; the
// orchestrator's undo when the host comes back on its old OS, and the transaction's rollback.
// Both check the entry's description before deleting it, so an entry the firmware may have
// created under the same number since is left alone.
//
// Everything that is not the boot mechanism (the host, kernel, image, install disk, work dir,
// RAM, network, watchdog and the stage2 config) is decided by the GRUB planner: planEfiBoot
// asks planGrubBoot for the plan of the same host with its boot files on the ESP, keeps its
// checks, payload and stage2 config, and replaces GRUB's steps with the EFI ones. One set of
// rules for both x86 boot managers.
//
// Pure: facts and sizes in, a Plan or the reasons for refusing out.
import { posix } from 'node:path';
import { checkStage2Config, renderStage2Config } from '../../stage2/build/stage2-config.ts';
import type { BlockDevice, DirLocation, Facts } from '../facts/facts.ts';
import type { ApplyStep, Plan, PlanInput, PlanResult, Stage2Config } from '../plan/plan.ts';
import type { BootManagerName } from './device.ts';
import {
  formatBytes,
  INITRAMFS_NAME,
  KERNEL_NAME,
  planGrubBoot,
  STAGE2_CONFIG_NAME,
  stage2KernelArgs,
} from './grub.ts';

/** The ESP directory of stage2's files, from the ESP's root. */
export const ESP_SUBDIR = 'EFI/balena-migrate';
export const ESP_KERNEL_NAME = 'vmlinuz.efi';
export const ESP_INITRAMFS_NAME = INITRAMFS_NAME;
/** The boot entry's description; stage2 and the undo delete only an entry that says this. */
export const EFI_ENTRY_LABEL = 'balena-migrate stage2';
/** EFI_GLOBAL_VARIABLE: the vendor GUID of Boot####, BootNext, BootOrder. */
export const EFI_GLOBAL_GUID = '8be4df61-93ca-11d2-aa0d-00e098032b8c';
export const EFIVARS_DIR = '/sys/firmware/efi/efivars';
/** The stage2 config key naming the entry stage2 deletes (an extra key, beside STAGE2_CONFIG_KEYS). */
export const EFI_REMOVE_ENTRY_KEY = 'efi_remove_entry';

/** x86 boot managers an operator may ask for (stage2.bootManager). */
export type X86BootManagerChoice = 'auto' | 'grub' | 'efi';

/** `0x7` → `0007`, the way efibootmgr and the variable names write entry numbers. */
export function bootNumberText(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

/** The efivarfs file of a global variable, e.g. `Boot0007` or `BootNext`. */
export function efiVarPath(name: string): string {
  return `${EFIVARS_DIR}/${name}-${EFI_GLOBAL_GUID}`;
}

/** `\EFI\balena-migrate\vmlinuz.efi`: an ESP path as firmware and the EFI stub read it. */
export function espPath(relative: string): string {
  return `\\${relative.replace(/\//g, '\\')}`;
}

/**
 * The lowest entry number (0000-00FF) no Boot#### variable, BootOrder item or BootCurrent uses;
 * null when all are taken.
 */
export function freeBootNumber(efi: NonNullable<Facts['efi']>): number | null {
  const used = new Set<number>();
  for (const e of efi.entries) used.add(Number.parseInt(e.num, 16));
  for (const n of efi.bootOrder) used.add(Number.parseInt(n, 16));
  if (efi.bootCurrent) used.add(Number.parseInt(efi.bootCurrent, 16));
  for (let n = 0; n <= 0xff; n++) if (!used.has(n)) return n;
  return null;
}

/**
 * Why GRUB cannot boot stage2 exactly once on this host, or null when it can: grub-reboot's
 * next_entry is cleared by GRUB at boot only if GRUB can rewrite grubenv there, and stage2 can
 * restore grubenv only where it sits in /boot itself.
 */
export function grubOneShotProblem(facts: Facts): string | null {
  const g = facts.grub;
  if (!g.installed || !g.reboot)
    return 'GRUB (update-grub or grub-mkconfig, and grub-reboot) is not installed';
  if (!g.dir) return 'there is no GRUB directory (/boot/grub or /boot/grub2)';
  if (!g.honoursNextEntry) return `${g.dir}/grub.cfg does not honour next_entry (grub-reboot)`;
  if (!g.envWritableAtBoot) return g.envNotWritableReason ?? 'GRUB cannot rewrite grubenv at boot';
  if (g.envSymlinkTarget) {
    return `${g.envFile ?? `${g.dir}/grubenv`} is a symlink to ${g.envSymlinkTarget}, where stage2 cannot restore it`;
  }
  return null;
}

/**
 * Which boot manager takes an x86 host into stage2: what the operator asked for, else GRUB,
 * unless the host is UEFI and GRUB cannot boot stage2 once, where a one-shot EFI entry is safe.
 * Hosts whose device is not booted through GRUB keep their boot manager; asking for grub or
 * efi there is refused.
 */
export function pickX86BootManager(
  facts: Facts,
  deviceBootManager: BootManagerName,
  requested: X86BootManagerChoice = 'auto',
): { ok: true; name: BootManagerName; note: string | null } | { ok: false; reasons: string[] } {
  if (deviceBootManager !== 'grub') {
    if (requested === 'auto') return { ok: true, name: deviceBootManager, note: null };
    return {
      ok: false,
      reasons: [
        `stage2.bootManager ${requested} is for x86-64 PCs; this host is booted through ${deviceBootManager}: ` +
          'leave stage2.bootManager at auto for it',
      ],
    };
  }
  if (requested === 'grub') return { ok: true, name: 'grub', note: 'boot manager: grub (asked for)' };
  if (requested === 'efi') return { ok: true, name: 'efi', note: 'boot manager: efi (asked for)' };
  const problem = facts.firmware.type === 'uefi' ? grubOneShotProblem(facts) : null;
  if (problem) {
    return {
      ok: true,
      name: 'efi',
      note: `boot manager: efi, a one-shot UEFI boot entry, because GRUB cannot boot stage2 once: ${problem}`,
    };
  }
  return { ok: true, name: 'grub', note: null };
}

/** The mount of the ESP that the probe found, as the GRUB planner's /boot would be. */
function grubViewOfEsp(facts: Facts, esp: DirLocation): Facts {
  return {
    ...facts,
    bootDir: esp,
    grub: {
      // a GRUB that needs nothing: only the planner's non-GRUB checks matter here
      installed: true,
      mkconfig: 'grub-mkconfig',
      reboot: 'grub-reboot',
      editenv: null,
      dir: posix.join(esp.mountpoint, ESP_SUBDIR),
      envFile: null,
      envWritableAtBoot: true,
      grubDDir: true,
      honoursNextEntry: true,
      updateGrub: null,
      envNotWritableReason: null,
      envBase64: null,
      envSymlinkTarget: null,
    },
  };
}

/** Plans the one-shot EFI boot entry into stage2, or refuses with every reason that applies. */
export function planEfiBoot(input: PlanInput): PlanResult {
  const { facts } = input;
  const reasons: string[] = [];
  const notes: string[] = [];
  const refuse = (why: string): void => {
    reasons.push(why);
  };
  const block = (name: string | null | undefined): BlockDevice | undefined =>
    name ? facts.blockDevices.find((b) => b.name === name) : undefined;

  // ---- the firmware and its variables ---------------------------------------------------------
  const efi = facts.efi;
  if (facts.firmware.type !== 'uefi') {
    refuse(
      `the EFI boot manager needs UEFI firmware; this host boots with ${facts.firmware.type === 'bios' ? 'a BIOS' : 'a device tree'}: ` +
        'leave stage2.bootManager at auto (or grub) for it',
    );
  } else if (!efi) {
    refuse('the probe found no UEFI variables (efivarfs): boot entries cannot be read or written');
  } else {
    if (!efi.varsWritable) {
      refuse(
        `efivarfs is not mounted read-write at ${EFIVARS_DIR}: the stage2 boot entry cannot be written; ` +
          `mount it (mount -t efivarfs efivarfs ${EFIVARS_DIR}) or remount it read-write`,
      );
    }
    if (efi.bootNext !== null) {
      refuse(
        `BootNext is already set (to Boot${efi.bootNext}: a pending firmware update or another tool): ` +
          'boot once to use it up, or delete it with efibootmgr --delete-bootnext, then check again',
      );
    }
  }
  if (!facts.tools.efibootmgr) {
    refuse('efibootmgr is missing: the stage2 boot entry is made with it; install efibootmgr');
  }
  const bootNumber = efi ? freeBootNumber(efi) : null;
  if (efi && bootNumber === null) refuse('no free boot entry number between Boot0000 and Boot00FF');
  const leftovers = efi?.entries.filter((e) => e.label === EFI_ENTRY_LABEL) ?? [];
  if (leftovers.length > 0) {
    notes.push(
      `an earlier "${EFI_ENTRY_LABEL}" boot entry exists (${leftovers.map((e) => `Boot${e.num}`).join(', ')}); ` +
        'it is left alone and a new one is made',
    );
  }

  // ---- the EFI system partition ---------------------------------------------------------------
  const esp = efi?.esp ?? null;
  const espDev = block(esp?.device);
  const espDisk = block(espDev?.parent);
  if (facts.firmware.type === 'uefi' && efi) {
    if (!esp) {
      refuse(
        'no EFI system partition is mounted at /boot/efi, /efi or /boot: mount it (stage2 boots from it) and check again',
      );
    } else if (espDev?.type !== 'part' || !espDisk || !espDev.partNumber) {
      refuse(`the EFI system partition (${esp.path}) is not a partition of a disk the probe found`);
    }
  }

  // ---- the kernel the firmware starts ---------------------------------------------------------
  if (input.kernel.source === 'host') {
    if (facts.kernel.imageEfiStub === false) {
      refuse(
        `the installed kernel ${facts.kernel.image} is not an EFI stub (it was built without CONFIG_EFI_STUB), ` +
          'so firmware cannot start it: supply a migration kernel, or use GRUB',
      );
    } else if (facts.kernel.imageEfiStub == null && facts.kernel.image) {
      notes.push(`could not tell whether ${facts.kernel.image} is an EFI stub; the firmware will find out`);
    }
  } else {
    notes.push('the supplied kernel must be an EFI stub (CONFIG_EFI_STUB): the firmware starts it directly');
  }

  // ---- everything else: the GRUB planner's checks, with the ESP as the boot filesystem ---------
  // (without an ESP there is no boot filesystem to check: its reasons about /boot would mislead)
  if (!esp) {
    if (reasons.length === 0) reasons.push('internal: the EFI planner is missing facts it needs');
    return { ok: false, reasons };
  }
  const viaGrub = planGrubBoot({ ...input, facts: grubViewOfEsp(facts, esp) });
  if (!viaGrub.ok) {
    for (const why of viaGrub.reasons) if (!reasons.includes(why)) reasons.push(why);
  }
  if (reasons.length > 0 || !viaGrub.ok || !espDev || !espDisk || bootNumber === null) {
    if (reasons.length === 0) reasons.push('internal: the EFI planner is missing facts it needs');
    return { ok: false, reasons };
  }
  const base = viaGrub.plan;

  // ---- paths and the entry ----------------------------------------------------------------------
  const num = bootNumberText(bootNumber);
  const entryVar = efiVarPath(`Boot${num}`);
  const hostDir = posix.join(esp.mountpoint, ESP_SUBDIR);
  const hostEfiDir = posix.dirname(hostDir);
  const kernelTarget = posix.join(hostDir, ESP_KERNEL_NAME);
  const initramfsTarget = posix.join(hostDir, ESP_INITRAMFS_NAME);
  const rootSpec = espDev.partuuid ? `PARTUUID=${espDev.partuuid}` : `UUID=${espDev.uuid}`;
  const loadOptions = [
    `initrd=${espPath(`${ESP_SUBDIR}/${ESP_INITRAMFS_NAME}`)}`,
    `root=${rootSpec}`,
    ...stage2KernelArgs(facts.kernel.cmdline),
    'panic=10',
  ].join(' ');

  // a root on btrfs or xfs (the hosts this boot manager is for) is named by its partition's
  // PARTUUID, read from the disk's table: stage2 reads btrfs and xfs UUIDs too, but a btrfs
  // filesystem spanning several devices has the same UUID on each of them
  const rootPart = block(facts.rootDevice);
  const rootByPartuuid =
    rootPart?.type === 'part' &&
    rootPart.partuuid &&
    !['ext2', 'ext3', 'ext4', 'vfat'].includes(rootPart.fstype ?? '');
  // GRUB's restore pairs (its grub.cfg copy) are not ours: this plan does not touch GRUB
  const { restore_count: _n, restore_1_from: _from, restore_1_to: _to, ...grubConfig } = base.stage2Config;
  const stage2Config: Stage2Config = {
    ...grubConfig,
    grubenv: '',
    grubenv_b64: '',
    ...(rootByPartuuid ? { install_disk_of: `PARTUUID=${rootPart.partuuid}` } : {}),
    cleanup: [ESP_SUBDIR, STAGE2_CONFIG_NAME].join(' '),
  };
  const problems = checkStage2Config(stage2Config);
  if (problems.length > 0) {
    return { ok: false, reasons: problems.map((p) => `the stage2 config would be invalid: ${p}`) };
  }
  stage2Config[EFI_REMOVE_ENTRY_KEY] = `Boot${num}`;

  // ---- steps ------------------------------------------------------------------------------------
  // the same kernel the GRUB plan boots: the installed one, or the supplied one from the work dir
  const kernelFrom =
    input.kernel.source === 'host' ? facts.kernel.image : posix.join(input.workDir, KERNEL_NAME);
  const kernelSha = input.kernel.source === 'file' ? input.kernel.file.sha256 : undefined;
  if (!kernelFrom) return { ok: false, reasons: ['internal: the EFI planner has no kernel to copy'] };
  const initramfsFrom = posix.join(input.workDir, INITRAMFS_NAME);
  const efibootmgrUndoEntry = [
    'sh',
    '-c',
    'if [ -e "$1" ] && tr -d "\\000" <"$1" | grep -q -F -e "$2"; then efibootmgr --quiet --bootnum "$3" --delete-bootnum; fi',
    'sh',
    entryVar,
    EFI_ENTRY_LABEL,
    num,
  ];
  const bootNextArgv = ['efibootmgr', '--quiet', '--bootnext', num];
  const steps: ApplyStep[] = [
    {
      kind: 'mkdir',
      path: hostEfiDir,
      mode: 0o755,
      description: `make sure ${hostEfiDir} exists on the EFI system partition`,
    },
    {
      kind: 'mkdir',
      path: hostDir,
      mode: 0o755,
      description: `create ${hostDir} for the stage2 kernel and initramfs`,
    },
    {
      kind: 'copy',
      from: kernelFrom,
      to: kernelTarget,
      mode: 0o644,
      description: `copy the ${input.kernel.source === 'host' ? "host's installed" : 'supplied'} kernel ${kernelFrom} (an EFI stub)`,
      ...(kernelSha ? { sha256: kernelSha } : {}),
    },
    {
      kind: 'copy',
      from: initramfsFrom,
      to: initramfsTarget,
      mode: 0o644,
      description: 'copy the stage2 initramfs',
      sha256: input.initramfs.sha256,
    },
    {
      kind: 'write',
      path: base.stage2ConfigPath,
      content: renderStage2Config(stage2Config),
      mode: 0o644,
      description: `write the stage2 config ${base.stage2ConfigPath}`,
    },
    {
      kind: 'exec',
      argv: ['test', '!', '-e', entryVar],
      undo: [],
      description: `check that boot entry number ${num} is still free`,
    },
    {
      kind: 'exec',
      argv: [
        'efibootmgr',
        '--quiet',
        '--create-only',
        '--bootnum',
        num,
        '--disk',
        `/dev/${espDisk.name}`,
        '--part',
        String(espDev.partNumber),
        '--label',
        EFI_ENTRY_LABEL,
        '--loader',
        espPath(`${ESP_SUBDIR}/${ESP_KERNEL_NAME}`),
        '--unicode',
        loadOptions,
      ],
      undo: [efibootmgrUndoEntry],
      description: `create the boot entry Boot${num} "${EFI_ENTRY_LABEL}" (not in BootOrder)`,
    },
    {
      kind: 'exec',
      argv: ['sh', '-c', 'tr -d "\\000" <"$1" | grep -q -F -e "$2"', 'sh', entryVar, EFI_ENTRY_LABEL],
      undo: [],
      description: `check that Boot${num} is "${EFI_ENTRY_LABEL}"`,
    },
    {
      kind: 'exec',
      argv: bootNextArgv,
      undo: [
        [
          'sh',
          '-c',
          'if efibootmgr | grep -q -x -F -e "BootNext: $1"; then efibootmgr --quiet --delete-bootnext; fi',
          'sh',
          num,
        ],
      ],
      description: `boot Boot${num} once, on the next reboot (BootNext)`,
    },
    {
      kind: 'exec',
      argv: ['sh', '-c', 'efibootmgr | grep -q -x -F -e "BootNext: $1"', 'sh', num],
      undo: [],
      description: `check that BootNext is ${num}`,
    },
  ];

  const kernelBytes =
    input.kernel.source === 'host' ? (facts.kernel.imageSizeBytes ?? 0) : input.kernel.file.sizeBytes;
  const bootOrder = efi?.bootOrder.length ? efi.bootOrder.join(',') : 'empty';
  notes.push(
    `boot: UEFI firmware, one-shot boot entry Boot${num} on ${esp.path} (${espDev.name}, partition ${espDev.partNumber} ` +
      `of ${espDisk.name}), ${formatBytes(esp.freeBytes)} free`,
    `kernel: ${kernelFrom} (${formatBytes(kernelBytes)}) as ${espPath(`${ESP_SUBDIR}/${ESP_KERNEL_NAME}`)}, ` +
      `initramfs ${formatBytes(input.initramfs.data.length)}; load options: ${loadOptions}`,
    `one-shot: ${bootNextArgv.join(' ')}; the firmware deletes BootNext when it boots Boot${num}, so the boot ` +
      `after stage2 is BootOrder (${bootOrder}) again; stage2 deletes Boot${num} first thing`,
    ...base.notes.filter((n) => !/^(boot|kernel|one-shot): /.test(n)),
  );

  const plan: Plan = {
    ...base,
    bootManager: 'efi',
    steps,
    oneShot: { mechanism: 'efi-bootnext', argv: bootNextArgv },
    stage2Config,
    notes,
  };
  return { ok: true, plan };
}
