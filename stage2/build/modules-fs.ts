// The I/O half of module selection: read modules.dep and the .ko files from a
// /lib/modules/RELEASE directory on this machine (or an unpacked kernel package).

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ModuleClosure, resolveModules } from './modules.ts';

export interface ModulesFromDir extends ModuleClosure {
  /** the files to hand to buildInitramfs, in load order */
  files: { relPath: string; data: Buffer }[];
}

/** Resolves `wanted` against MODULES_DIR/modules.dep and reads every file of the closure. */
export async function readModulesFromDir(
  modulesDir: string,
  wanted: readonly string[],
): Promise<ModulesFromDir> {
  const modulesDep = await readFile(join(modulesDir, 'modules.dep'), 'utf8').catch(
    (e: NodeJS.ErrnoException) => {
      throw new Error(
        `${modulesDir}/modules.dep cannot be read (${e.code ?? e.message}): run \`depmod -b ROOT RELEASE\` to create it`,
      );
    },
  );
  const modulesBuiltin = await readFile(join(modulesDir, 'modules.builtin'), 'utf8').catch(() => '');
  const closure = resolveModules({ modulesDep, modulesBuiltin, wanted });
  const files = await Promise.all(
    closure.load.map(async (m) => ({
      relPath: m.relPath,
      data: await readFile(join(modulesDir, m.relPath)),
    })),
  );
  return { ...closure, files };
}
