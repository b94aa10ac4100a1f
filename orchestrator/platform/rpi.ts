// The Raspberry Pi boot manager. The Pi's firmware reads config.txt from the FAT boot
// partition (/boot/firmware since Raspberry Pi OS bookworm and on Ubuntu, /boot before); it
// names the kernel, the initramfs and the file holding the kernel command line (`kernel=`,
// `initramfs FILE followkernel`, `cmdline=`, raspberrypi/documentation config_txt/boot.adoc).
//
// Stage2 boots the host's own kernel (its SD/eMMC drivers are built into Raspberry Pi
// kernels) with the stage2 initramfs, root= the boot partition, both copied into
// balena-migrate/ on it, with balena-stage2.yml at its root.
//
// - tryboot (Pi 4, 400, CM4 with a bootloader from 2021-03-18 on; Pi 5): stage2's settings go
//   into tryboot.txt (config.txt + a section naming stage2's files) and the host reboots with
//   `reboot '0 tryboot'`. The firmware reads tryboot.txt for that one boot only: any failure
//   brings config.txt, untouched, back.
// - otherwise: config.txt is copied to config.txt.TIMESTAMP and gets the same section at its
//   end, in one write (cmdline.txt is not touched: the section names stage2's own cmdline
//   file). Stage2 moves config.txt.TIMESTAMP back over config.txt before anything else.
//
// Pure: facts and sizes in, a Plan or the reasons for refusing out.
import { posix } from 'node:path';
import type { DirLocation, Facts } from '../facts/facts.ts';
import type { ApplyStep, Plan, PlanInput, PlanResult } from '../plan/plan.ts';
import {
  backupStep,
  bootFileBefore,
  initramfsCopyStep,
  kernelCopyStep,
  restoreEntry,
  type Stage2Kernel,
  sha256,
  stage2ConfigStep,
  stage2KernelArgs,
  stage2KernelSource,
} from './boot-partition-files.ts';
import type { Device } from './device.ts';
import {
  bootFileContent,
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
import { TRYBOOT_BOOTLOADER_SINCE } from './registry.ts';

/** Stage2's files in balena-migrate/ on the boot partition. */
export const RPI_KERNEL_NAME = 'kernel.img';
export const RPI_INITRAMFS_NAME = 'initramfs.gz';
export const RPI_CMDLINE_NAME = 'cmdline.txt';
/** The reboot argument that sets the firmware's one-shot tryboot flag (partition 0: the default). */
export const TRYBOOT_REBOOT_ARGUMENT = '0 tryboot';

/** The kernel the firmware boots for each kernel flavour (uname -r suffix), Raspberry Pi OS names. */
const KERNEL_BY_FLAVOUR: [RegExp, string][] = [
  [/-(rpi-)?2712\+?$/, 'kernel_2712.img'],
  [/-(rpi-)?v8(-16k)?\+?$/, 'kernel8.img'],
  [/-(rpi-)?v7l\+?$/, 'kernel7l.img'],
  [/-(rpi-)?v7\+?$/, 'kernel7.img'],
  [/(-rpi-v6|\+)$/, 'kernel.img'],
];

/** The FAT partition the firmware reads: the one of /boot/firmware or /boot that has config.txt. */
export function rpiBootDir(facts: Facts): DirLocation | null {
  const firmware = facts.boot?.firmwareDir;
  if (firmware && hasBootFile(facts, `${firmware.path}/config.txt`)) return firmware;
  if (hasBootFile(facts, '/boot/config.txt') && facts.bootDir.mountpoint === '/boot') return facts.bootDir;
  return null;
}

/** Lines that are settings (not comments), trimmed. */
function settings(configTxt: string): string[] {
  return configTxt
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** The section stage2 adds at the end of config.txt (or tryboot.txt); the last word on each setting. */
export function renderStage2Section(opts: { arm64: boolean; why: string }): string {
  const dir = BOOT_SUBDIR;
  return [
    '',
    `# balena-migrate: boot the stage2 migration environment (${opts.why})`,
    '[all]',
    `kernel=${dir}/${RPI_KERNEL_NAME}`,
    `initramfs ${dir}/${RPI_INITRAMFS_NAME} followkernel`,
    `cmdline=${dir}/${RPI_CMDLINE_NAME}`,
    `arm_64bit=${opts.arm64 ? 1 : 0}`,
    '',
  ].join('\n');
}

/** config.txt with the stage2 section at its end (a missing final newline is added first). */
export function withStage2Section(configTxt: string, section: string): string {
  const base = configTxt === '' || configTxt.endsWith('\n') ? configTxt : `${configTxt}\n`;
  return base + section;
}

/** Whether this Pi's firmware takes the one-shot tryboot, and why (or why not). */
export function trybootSupport(facts: Facts, device: Device): { ok: boolean; why: string } {
  const tryboot = device.model.tryboot;
  if (!tryboot)
    return { ok: false, why: `the ${device.name}'s firmware has no tryboot in balena-migrate's registry` };
  const [maj = 0, min = 0] = facts.kernel.release.split(/[.-]/).map(Number);
  if (maj < 5 || (maj === 5 && min < 10)) {
    return { ok: false, why: `the kernel ${facts.kernel.release} predates the tryboot reboot flag (5.10)` };
  }
  if (tryboot === 'always') return { ok: true, why: `the ${device.name}'s firmware always has tryboot` };
  const ts = facts.hardware.bootloaderTimestamp;
  if (ts == null) return { ok: false, why: 'the bootloader EEPROM version could not be read' };
  const when = new Date(ts * 1000).toISOString().slice(0, 10);
  return ts >= TRYBOOT_BOOTLOADER_SINCE
    ? { ok: true, why: `the bootloader EEPROM (${when}) has tryboot` }
    : {
        ok: false,
        why: `the bootloader EEPROM (${when}) predates tryboot (2021-03-18); update it with rpi-eeprom-update`,
      };
}

/** Plans the boot into stage2 on a Raspberry Pi, or refuses with every reason that applies. */
export function planRpiBoot(input: PlanInput, device: Device): PlanResult {
  const { facts } = input;
  const reasons: string[] = [...hostProblems(facts)];
  const notes: string[] = [];

  // ---- the boot partition and config.txt ---------------------------------------------------
  const boot = rpiBootDir(facts);
  if (!boot) {
    return {
      ok: false,
      reasons: [
        ...reasons,
        'no Raspberry Pi boot partition: neither /boot/firmware/config.txt nor /boot/config.txt is on a mounted ' +
          'FAT partition; mount the boot partition (the first, FAT one) at /boot/firmware and re-run',
      ],
    };
  }
  const bootPart = bootPartitionProblems(facts, boot, 'the Raspberry Pi boot partition');
  reasons.push(...bootPart.reasons);
  if (boot.fstype !== 'vfat')
    reasons.push(`${boot.path} is ${boot.fstype}, but the Pi firmware reads FAT only`);
  const configPath = `${boot.path}/config.txt`;
  const configBytes = bootFileContent(facts, configPath);
  if (!configBytes)
    reasons.push(`${configPath} could not be read (over 64 KiB?): its exact new content cannot be planned`);
  const configTxt = configBytes?.toString('latin1') ?? '';
  for (const line of settings(configTxt)) {
    const key = /^([A-Za-z0-9_]+)\s*=/.exec(line)?.[1];
    if (key === 'os_prefix' || key === 'upstream_kernel') {
      reasons.push(
        `${configPath} sets ${key}, which moves where the firmware looks for the kernel and initramfs; ` +
          'stage2 cannot be booted from balena-migrate/ with it',
      );
    }
  }

  // ---- kernel ------------------------------------------------------------------------------
  let kernel: Stage2Kernel | null = stage2KernelSource(input);
  if (!kernel) {
    // no /boot/vmlinuz-RELEASE: the firmware's kernel*.img of the running kernel's flavour
    const name = KERNEL_BY_FLAVOUR.find(([re]) => re.test(facts.kernel.release))?.[1];
    const file = name ? facts.boot?.files.find((f) => f.path === `${boot.path}/${name}`) : undefined;
    if (file) {
      kernel = { from: file.path, bytes: file.sizeBytes };
    } else {
      reasons.push(
        `the running kernel ${facts.kernel.release} has no image: neither /boot/vmlinuz-${facts.kernel.release} ` +
          `nor ${name ? `${boot.path}/${name}` : `a ${boot.path}/kernel*.img of its flavour`} exists; reboot into ` +
          'the installed kernel, or supply a migration kernel',
      );
    }
  }
  if (input.kernel.source === 'host' && !facts.kernel.modulesDir) {
    reasons.push(
      `/lib/modules/${facts.kernel.release} is missing: the stage2 initramfs needs this kernel's modules; ` +
        'reboot into the installed kernel, or supply a migration kernel',
    );
  }

  // ---- disks, work dir, image, sizes ---------------------------------------------------------
  const image = imageNameFor(input);
  reasons.push(...image.reasons, ...(input.network?.reasons ?? []));
  const install = installDiskOf(facts, input.image.rawSizeBytes);
  reasons.push(...install.reasons);
  if (bootPart.part && install.disk && bootPart.part.parent !== install.disk.name) {
    reasons.push(
      `the boot partition ${bootPart.part.name} is on ${bootPart.part.parent}, but / is on ${install.disk.name}: ` +
        'balenaOS would be written to a disk this Pi does not boot from',
    );
  }
  const work = workDirOf(facts, input.workDir);
  reasons.push(...work.reasons);
  const bootFilesBytes = (kernel?.bytes ?? 0) + input.initramfs.data.length + configTxt.length * 2 + 8192;
  const sizes = sizeProblems(input, boot, bootFilesBytes);
  reasons.push(...sizes.reasons);

  const tryboot = trybootSupport(facts, device);
  const trybootPath = `${boot.path}/tryboot.txt`;
  const { before: trybootBefore, reasons: trybootReasons } = bootFileBefore(facts, trybootPath);
  if (tryboot.ok) reasons.push(...trybootReasons);

  if (
    reasons.length > 0 ||
    !bootPart.part ||
    !configBytes ||
    !kernel ||
    !install.disk ||
    !install.rootPart ||
    !work.dev ||
    work.inFs === null
  ) {
    if (reasons.length === 0) reasons.push('internal: the Raspberry Pi planner is missing facts it needs');
    return { ok: false, reasons };
  }

  // ---- what goes where -----------------------------------------------------------------------
  const dir = posix.join(boot.path, BOOT_SUBDIR);
  const stage2ConfigPath = posix.join(boot.path, STAGE2_CONFIG_NAME);
  const ts = input.timestamp;
  const arm64 = facts.arch === 'aarch64';
  const cmdline = `${stage2KernelArgs(facts, bootPart.part)}\n`;
  const restores: { from: string; to: string }[] = [];
  const steps: ApplyStep[] = [
    {
      kind: 'mkdir',
      path: dir,
      mode: 0o755,
      description: `create ${dir} for the stage2 kernel and initramfs`,
    },
    kernelCopyStep(input, kernel, posix.join(dir, RPI_KERNEL_NAME)),
    initramfsCopyStep(input, posix.join(dir, RPI_INITRAMFS_NAME)),
    {
      kind: 'write',
      path: posix.join(dir, RPI_CMDLINE_NAME),
      content: cmdline,
      mode: 0o644,
      description: `write stage2's kernel command line ${posix.join(dir, RPI_CMDLINE_NAME)}`,
    },
  ];
  let oneShot: Plan['oneShot'];
  let rebootArgument: string | undefined;
  if (tryboot.ok) {
    const content = withStage2Section(
      configTxt,
      renderStage2Section({ arm64, why: 'read by the firmware for one tryboot reboot only' }),
    );
    steps.push({
      kind: 'copy',
      from: configPath,
      to: posix.join(dir, 'config.txt.probed'),
      mode: 0o644,
      description: `check that ${configPath} is still what was probed (tryboot.txt is made from it)`,
      sha256: sha256(configBytes),
    });
    if (trybootBefore)
      steps.push(backupStep(trybootPath, ts, trybootBefore, { mode: 0o644, sayChecked: false }));
    restores.push(restoreEntry('tryboot.txt', ts, trybootBefore !== null));
    steps.push({
      kind: 'write',
      path: trybootPath,
      content,
      mode: 0o755,
      description: `write ${trybootPath}: config.txt with stage2's kernel, initramfs and cmdline, for one tryboot reboot`,
    });
    rebootArgument = TRYBOOT_REBOOT_ARGUMENT;
    oneShot = { mechanism: 'rpi-tryboot', argv: ['reboot', TRYBOOT_REBOOT_ARGUMENT] };
    notes.push(
      `one-shot: tryboot (${tryboot.why}): the firmware reads ${trybootPath} for one boot only; ${configPath} is not changed`,
    );
  } else {
    const content = withStage2Section(
      configTxt,
      renderStage2Section({
        arm64,
        why: `one boot: stage2 moves config.txt.${ts} back over this file first`,
      }),
    );
    steps.push(backupStep(configPath, ts, configBytes, { mode: 0o755, sayChecked: true }), {
      kind: 'write',
      path: configPath,
      content,
      mode: 0o755,
      description: `add the stage2 section to ${configPath}: the next boot starts stage2`,
    });
    restores.push(restoreEntry('config.txt', ts, true));
    oneShot = { mechanism: 'rpi-config-txt', argv: [] };
    notes.push(
      `boot into stage2: ${configPath} gets a stage2 section (no one-shot: ${tryboot.why}); stage2 moves ` +
        `config.txt.${ts} back over it before anything else, and undo puts it back if the setup fails`,
    );
  }

  const stage2 = firmwareStage2Config({
    input,
    imageName: image.name,
    workDev: work.dev,
    workInFs: work.inFs,
    rootPart: install.rootPart,
    installDisk: install.disk,
    restores,
    cleanup: [BOOT_SUBDIR, STAGE2_CONFIG_NAME],
  });
  if (stage2.problems.length > 0) return { ok: false, reasons: stage2.problems };
  // balena-stage2.yml goes before the switch (config.txt or tryboot.txt), which comes last
  steps.splice(4, 0, stage2ConfigStep(stage2ConfigPath, stage2.config));

  notes.unshift(
    `device: ${device.name} (${device.evidence.join(', ')}), balena device type ${device.deviceType}`,
    `boot: Raspberry Pi firmware, ${boot.path} on ${bootPart.part.name} (${boot.fstype}, PARTUUID ${bootPart.part.partuuid})`,
    `kernel: ${kernel.from} (${formatBytes(kernel.bytes)}, ${arm64 ? '64' : '32'}-bit), initramfs ` +
      `${formatBytes(input.initramfs.data.length)}, both copied to ${dir}; the SD/eMMC drivers (sdhci-iproc, ` +
      `bcm2835-sdhost, mmc_block) are built into Raspberry Pi kernels, modules carried: ` +
      `${facts.storageModules.join(', ') || 'none needed for the boot disk'}`,
  );
  notes.push(...commonNotes(input, install.disk, install.rootPart, work.dev, sizes));

  const plan: Plan = {
    host: input.hostName,
    deviceType: device.deviceType,
    bootManager: 'rpi',
    installDisk: { name: install.disk.name, sizeBytes: install.disk.sizeBytes },
    workDir: input.workDir,
    payload: payloadFiles(input, image.name),
    steps,
    oneShot,
    ...(rebootArgument ? { rebootArgument } : {}),
    stage2Config: stage2.config,
    stage2ConfigPath,
    ram: { neededBytes: sizes.ramNeedBytes, availableBytes: facts.memory.availableBytes },
    notes,
  };
  return { ok: true, plan };
}
