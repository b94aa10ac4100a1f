// Builds the stage2 initramfs for one host: the host's own kernel needs its own modules to
// reach its disks, so they are read from the host's /lib/modules/RELEASE (closure from
// modules.dep) and packed with busybox and the stage2 init.
import { createHash } from 'node:crypto';
import { buildInitramfs } from '../../stage2/build/initramfs.ts';
import { resolveModuleClosure } from '../../stage2/build/modules.ts';
import type { Facts } from '../facts/facts.ts';
import type { SshSession } from '../ssh/session.ts';

/** Filesystems and disk drivers stage2 may need beyond the root disk's own driver chain. */
const ALWAYS_WANTED = ['vfat', 'nls_cp437', 'nls_iso8859_1', 'nls_ascii', 'ext4', 'crc32c_generic'];

export function wantedModules(facts: Facts): string[] {
  const fs = [facts.bootDir.fstype, facts.workDir.fstype].filter((t) => /^[a-z0-9_]+$/.test(t));
  return [...new Set([...facts.storageModules, ...fs, ...ALWAYS_WANTED])];
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
  const data = buildInitramfs({ busybox, modules, kernelRelease: facts.kernel.release });
  return {
    data,
    sha256: createHash('sha256').update(data).digest('hex'),
    modules: modules.map((m) => m.relPath),
  };
}
