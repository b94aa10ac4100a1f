// Builds the stage2 initramfs for one host: the host's own kernel needs its own modules to
// reach its disks, so they are read from the host's /lib/modules/RELEASE (closure from
// modules.dep) and packed with busybox and the stage2 init.
import { createHash } from 'node:crypto';
import { buildInitramfs } from '../../stage2/build/initramfs.ts';
import { resolveModuleClosure } from '../../stage2/build/modules.ts';
import type { Facts } from '../facts/facts.ts';
import { watchdogToKick } from '../platform/stage2-common.ts';
import type { SshSession } from '../ssh/session.ts';

/**
 * Filesystems and disk drivers stage2 may need beyond the root disk's own driver chain; loop
 * lets stage2 reach resin-boot by its offset if the kernel makes no partition node for it.
 */
const ALWAYS_WANTED = ['vfat', 'nls_cp437', 'nls_iso8859_1', 'nls_ascii', 'ext4', 'crc32c_generic', 'loop'];

export function wantedModules(facts: Facts): string[] {
  const fs = [facts.bootDir.fstype, facts.workDir.fstype].filter((t) => /^[a-z0-9_]+$/.test(t));
  // the driver of the hardware watchdog stage2 must keep kicking (see platform/stage2-common.ts)
  const watchdog = watchdogToKick(facts)?.module;
  // UEFI: stage2 mounts efivarfs to delete its one-shot boot entry (platform/efi.ts)
  const efi = facts.firmware.type === 'uefi' ? ['efivarfs'] : [];
  return [
    ...new Set([...facts.storageModules, ...fs, ...ALWAYS_WANTED, ...(watchdog ? [watchdog] : []), ...efi]),
  ];
}

export interface BuiltInitramfs {
  data: Buffer;
  sha256: string;
  modules: string[];
}

export async function buildHostInitramfs(
  session: SshSession,
  facts: Facts,
  busybox: Buffer,
): Promise<BuiltInitramfs> {
  const modulesDir = facts.kernel.modulesDir;
  let modules: { relPath: string; data: Buffer }[] = [];
  if (modulesDir) {
    const dep = (await session.readFile(`${modulesDir}/modules.dep`)).toString('utf8');
    const builtin = await session
      .readFile(`${modulesDir}/modules.builtin`)
      .then((b) => b.toString('utf8'))
      .catch(() => '');
    const closure = resolveModuleClosure(dep, builtin, wantedModules(facts));
    modules = [];
    for (const relPath of closure.paths) {
      modules.push({ relPath, data: await session.readFile(`${modulesDir}/${relPath}`) });
    }
  }
  return buildOnce(busybox, modules, facts.kernel.release);
}

/**
 * Initramfs builds by what goes into them. Building means gzip -9 of busybox and the modules,
 * about 0.2 s of CPU on the event loop per host; the hosts of a fleet mostly run the same
 * kernel with the same modules, so one build serves them all (measured by `npm run bench`:
 * without this, `check` over 100 loopback hosts spent 22 of its 36 CPU seconds here).
 */
const builds = new Map<string, BuiltInitramfs>();
const busyboxHashes = new WeakMap<Buffer, string>();

function buildOnce(
  busybox: Buffer,
  modules: { relPath: string; data: Buffer }[],
  kernelRelease: string,
): BuiltInitramfs {
  let busyboxHash = busyboxHashes.get(busybox);
  if (!busyboxHash) {
    busyboxHash = createHash('sha256').update(busybox).digest('hex');
    busyboxHashes.set(busybox, busyboxHash);
  }
  const key = createHash('sha256').update(`${kernelRelease}\0${busyboxHash}\0`);
  for (const m of modules) key.update(`${m.relPath}\0${m.data.length}\0`).update(m.data);
  const id = key.digest('hex');
  let built = builds.get(id);
  if (!built) {
    const data = buildInitramfs({ busybox, modules, kernelRelease });
    built = {
      data,
      sha256: createHash('sha256').update(data).digest('hex'),
      modules: modules.map((m) => m.relPath),
    };
    builds.set(id, built);
  }
  return built;
}
