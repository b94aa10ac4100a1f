// Kernel module selection for the stage2 initramfs: which .ko files to carry and in which
// order to insmod them. Pure: the text of modules.dep / modules.builtin in, a load list out.

/** Suffixes a module file may have in modules.dep, longest first. */
export const MODULE_SUFFIXES = ['.ko.zst', '.ko.xz', '.ko.gz', '.ko'] as const;

/**
 * Modules stage2 asks for by default: disk controllers and buses an x86 host may boot from,
 * the filesystems it mounts (ext4 for the host and the work dir, vfat for resin-boot) and
 * the code pages vfat needs. Names the kernel lacks are reported as unknown, not fatal.
 */
export const STAGE2_DEFAULT_MODULES: readonly string[] = [
  // virtual machines
  'virtio_pci',
  'virtio_blk',
  'virtio_scsi',
  // SATA, SCSI, NVMe, SD/eMMC, USB disks
  'ahci',
  'ata_piix',
  'sd_mod',
  'nvme',
  'mmc_block',
  'sdhci_pci',
  'sdhci_acpi',
  'xhci_pci',
  'ehci_pci',
  'usb_storage',
  'uas',
  // filesystems and code pages
  'ext4',
  'vfat',
  'nls_cp437',
  'nls_ascii',
  'nls_utf8',
  'nls_iso8859_1',
];

/** A module the initramfs must carry. `relPath` is relative to /lib/modules/RELEASE. */
export interface ModuleFile {
  name: string;
  relPath: string;
}

export interface ModuleClosure {
  /** every module to insmod, dependencies before the modules that need them */
  load: ModuleFile[];
  /** wanted names that are built into the kernel: nothing to load */
  builtin: string[];
  /** wanted names that are neither in modules.dep nor built in */
  unknown: string[];
}

/** "kernel/fs/nls/nls_iso8859-1.ko.xz" → "nls_iso8859_1": the name the kernel uses. */
export function moduleNameOf(relPath: string): string {
  const base = relPath.slice(relPath.lastIndexOf('/') + 1);
  const suffix = MODULE_SUFFIXES.find((s) => base.endsWith(s));
  if (!suffix)
    throw new Error(`"${relPath}" is not a kernel module path (expected ${MODULE_SUFFIXES.join(', ')})`);
  return normalizeModuleName(base.slice(0, -suffix.length));
}

/** Module names treat "-" and "_" as the same character; "_" is canonical. */
export function normalizeModuleName(name: string): string {
  return name.trim().replaceAll('-', '_');
}

/** Parses modules.dep: each line is `path: dep-path dep-path ...`. Keyed by module name. */
export function parseModulesDep(text: string): Map<string, { relPath: string; deps: string[] }> {
  const modules = new Map<string, { relPath: string; deps: string[] }>();
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`modules.dep line ${i + 1}: expected "path: deps", got "${line}"`);
    const relPath = line.slice(0, colon).trim();
    const deps = line
      .slice(colon + 1)
      .split(/\s+/)
      .filter((d) => d !== '');
    modules.set(moduleNameOf(relPath), { relPath, deps });
  });
  return modules;
}

/** Parses modules.builtin (one path per line) into the set of built-in module names. */
export function parseModulesBuiltin(text: string): Set<string> {
  const names = new Set<string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line !== '' && !line.startsWith('#')) names.add(moduleNameOf(line));
  }
  return names;
}

/**
 * The modules to load for `wanted`, closed over their dependencies, in load order. Built-in
 * modules are skipped; names nowhere to be found are reported, not thrown.
 */
export function resolveModules(input: {
  modulesDep: string;
  modulesBuiltin?: string;
  wanted: readonly string[];
}): ModuleClosure {
  const dep = parseModulesDep(input.modulesDep);
  const builtinNames = parseModulesBuiltin(input.modulesBuiltin ?? '');
  const load: ModuleFile[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  const builtin: string[] = [];
  const unknown: string[] = [];

  // Depth-first, dependencies emitted before their dependents. modules.dep lists a module's
  // whole dependency set with the one to load first last, so walk that list from the end.
  const visit = (name: string, chain: string[]): void => {
    if (done.has(name)) return;
    if (visiting.has(name))
      throw new Error(`modules.dep has a dependency cycle: ${[...chain, name].join(' → ')}`);
    const mod = dep.get(name);
    if (!mod) {
      if (builtinNames.has(name)) return;
      throw new Error(
        `modules.dep names "${name}" as a dependency of "${chain.at(-1)}" but has no line for it`,
      );
    }
    visiting.add(name);
    for (const d of [...mod.deps].reverse()) visit(moduleNameOf(d), [...chain, name]);
    visiting.delete(name);
    done.add(name);
    load.push({ name, relPath: mod.relPath });
  };

  for (const raw of input.wanted) {
    const name = normalizeModuleName(raw);
    if (name === '') continue;
    if (dep.has(name)) visit(name, []);
    else if (builtinNames.has(name)) {
      if (!builtin.includes(name)) builtin.push(name);
    } else if (!unknown.includes(name)) unknown.push(name);
  }
  return { load, builtin, unknown };
}

/**
 * resolveModules with positional arguments, plus `paths`: the relPaths in load order. The
 * form the payload phase calls.
 */
export function resolveModuleClosure(
  modulesDep: string,
  modulesBuiltin: string,
  wanted: readonly string[],
): ModuleClosure & { paths: string[] } {
  const closure = resolveModules({ modulesDep, modulesBuiltin, wanted });
  return { ...closure, paths: closure.load.map((m) => m.relPath) };
}
