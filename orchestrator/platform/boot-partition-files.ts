// The files the Raspberry Pi and u-boot planners put on the partition the firmware or boot
// loader reads: stage2's kernel, initramfs and config copied there, the backup of a boot file
// (config.txt, tryboot.txt, uEnv.txt, extlinux.conf) taken before it is rewritten, and the
// restore entry by which stage2 (and undo) puts that file back first. Pure.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { renderStage2Config } from '../../stage2/build/stage2-config.ts';
import type { BlockDevice, Facts } from '../facts/facts.ts';
import type { ApplyStep, PlanInput, Stage2Config } from '../plan/plan.ts';
import { bootFileContent, hasBootFile, INITRAMFS_NAME } from './firmware-common.ts';
import { stage2Consoles } from './grub.ts';

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** The kernel stage2 boots, where the setup copies it from. */
export interface Stage2Kernel {
  from: string;
  bytes: number;
  /** known for a supplied kernel, which the copy checks */
  sha256?: string;
}

/**
 * The supplied kernel (uploaded to the work dir), or the host's installed image of the running
 * kernel; null when the host has no such image (each planner says what else it looked for).
 */
export function stage2KernelSource(input: PlanInput): Stage2Kernel | null {
  if (input.kernel.source === 'file') {
    return {
      from: posix.join(input.workDir, 'vmlinuz'),
      bytes: input.kernel.file.sizeBytes,
      sha256: input.kernel.file.sha256,
    };
  }
  const { image, imageSizeBytes } = input.facts.kernel;
  return image ? { from: image, bytes: imageSizeBytes ?? 0 } : null;
}

/** Stage2's kernel arguments: the host's consoles, root= the boot partition by PARTUUID. */
export function stage2KernelArgs(facts: Facts, bootPart: BlockDevice): string {
  return `${stage2Consoles(facts.kernel.cmdline).join(' ')} root=PARTUUID=${bootPart.partuuid} rootwait panic=10`;
}

/** Copies the stage2 kernel to TO (checked against its sha256 when one is known). */
export function kernelCopyStep(input: PlanInput, kernel: Stage2Kernel, to: string): ApplyStep {
  return {
    kind: 'copy',
    from: kernel.from,
    to,
    mode: 0o644,
    description: `copy the ${input.kernel.source === 'host' ? "host's own" : 'supplied'} kernel ${kernel.from}`,
    ...(kernel.sha256 ? { sha256: kernel.sha256 } : {}),
  };
}

/** Copies the uploaded stage2 initramfs to TO, checked against its sha256. */
export function initramfsCopyStep(input: PlanInput, to: string): ApplyStep {
  return {
    kind: 'copy',
    from: posix.join(input.workDir, INITRAMFS_NAME),
    to,
    mode: 0o644,
    description: 'copy the stage2 initramfs',
    sha256: input.initramfs.sha256,
  };
}

/** Writes balena-stage2.yml at PATH. */
export function stage2ConfigStep(path: string, config: Stage2Config): ApplyStep {
  return {
    kind: 'write',
    path,
    content: renderStage2Config(config),
    mode: 0o644,
    description: `write the stage2 config ${path}`,
  };
}

/**
 * The probed bytes of a boot file the setup rewrites (null when there is none) and, when it
 * exists but its bytes were not read, the reason to refuse: it could not be put back exactly.
 */
export function bootFileBefore(facts: Facts, path: string): { before: Buffer | null; reasons: string[] } {
  const before = bootFileContent(facts, path);
  return {
    before,
    reasons:
      hasBootFile(facts, path) && !before
        ? [`${path} exists but could not be read: it could not be put back byte for byte`]
        : [],
  };
}

/** Copies PATH to PATH.TS; the copy checks PATH is still BEFORE, the bytes that were probed. */
export function backupStep(
  path: string,
  ts: string,
  before: Buffer,
  opts: { mode: number; sayChecked: boolean },
): ApplyStep {
  return {
    kind: 'copy',
    from: path,
    to: `${path}.${ts}`,
    mode: opts.mode,
    description: `back up ${path} to ${path}.${ts}${opts.sayChecked ? ' (and check it is still what was probed)' : ''}`,
    sha256: sha256(before),
  };
}

/**
 * Stage2's restore entry for REL (a path inside the partition): its backup REL.TS moves back,
 * or, for a file that did not exist before (`from` empty), the setup's file is removed.
 */
export function restoreEntry(rel: string, ts: string, existed: boolean): { from: string; to: string } {
  return { from: existed ? `${rel}.${ts}` : '', to: rel };
}
