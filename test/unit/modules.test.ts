import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  moduleNameOf,
  normalizeModuleName,
  parseModulesBuiltin,
  parseModulesDep,
  resolveModuleClosure,
  resolveModules,
} from '../../stage2/build/modules.ts';

const fixture = (name: string) =>
  readFileSync(new URL(`../fixtures/stage2/${name}`, import.meta.url), 'utf8');
const modulesDep = fixture('modules.dep');
const modulesBuiltin = fixture('modules.builtin');
const names = (wanted: string[]) =>
  resolveModules({ modulesDep, modulesBuiltin, wanted }).load.map((m) => m.name);

describe('module selection from modules.dep', () => {
  it('loads every dependency before the module that needs it', () => {
    const load = names(['virtio_pci', 'virtio_blk']);
    expect(load).toEqual([
      'virtio_ring',
      'virtio',
      'virtio_pci_modern_dev',
      'virtio_pci_legacy_dev',
      'virtio_pci',
      'virtio_blk',
    ]);
  });

  it('keeps dependency order valid for every module of the fixture', () => {
    const dep = parseModulesDep(modulesDep);
    const load = names([...dep.keys()]);
    expect(new Set(load).size).toBe(load.length);
    for (const [name, mod] of dep) {
      for (const d of mod.deps) expect(load.indexOf(moduleNameOf(d))).toBeLessThan(load.indexOf(name));
    }
  });

  it('treats "-" and "_" in module names as the same character', () => {
    expect(names(['usb-storage', 'nls_iso8859-1'])).toEqual(names(['usb_storage', 'nls-iso8859_1']));
    expect(names(['usb-storage'])).toContain('usb_storage');
    expect(normalizeModuleName('nls_iso8859-1')).toBe('nls_iso8859_1');
  });

  it('skips built-in modules and reports names the kernel does not have', () => {
    const closure = resolveModules({
      modulesDep,
      modulesBuiltin,
      wanted: ['ext4', 'vfat', 'ahci', 'nvme', 'ahci'],
    });
    expect(closure.load.map((m) => m.name)).toEqual(['fat', 'vfat']);
    expect(closure.builtin).toEqual(['ext4', 'nvme']);
    expect(closure.unknown).toEqual(['ahci']);
  });

  it('keeps the compressed file names (.ko.xz, .ko.zst, .ko.gz) as the paths to carry', () => {
    const closure = resolveModules({ modulesDep, wanted: ['virtio_blk', 'sd_mod', 'vfat'] });
    expect(closure.load.map((m) => m.relPath)).toEqual([
      'kernel/drivers/virtio/virtio_ring.ko',
      'kernel/drivers/virtio/virtio.ko',
      'kernel/drivers/block/virtio_blk.ko.xz',
      'kernel/drivers/scsi/scsi_common.ko.zst',
      'kernel/drivers/scsi/scsi_mod.ko.zst',
      'kernel/drivers/scsi/sd_mod.ko.zst',
      'kernel/fs/fat/fat.ko.gz',
      'kernel/fs/fat/vfat.ko.gz',
    ]);
  });

  it('lists a module needed by two wanted modules only once', () => {
    const load = names(['virtio_scsi', 'usb_storage', 'sd_mod']);
    expect(load.filter((n) => n === 'scsi_mod')).toHaveLength(1);
    expect(load).toEqual([
      'virtio_ring',
      'virtio',
      'scsi_common',
      'scsi_mod',
      'virtio_scsi',
      'usb_common',
      'usb_storage',
      'sd_mod',
    ]);
  });

  it('derives module names from paths with any module suffix', () => {
    expect(moduleNameOf('kernel/fs/nls/nls_iso8859-1.ko.zst')).toBe('nls_iso8859_1');
    expect(moduleNameOf('a/b/virtio_blk.ko.xz')).toBe('virtio_blk');
    expect(moduleNameOf('fat.ko.gz')).toBe('fat');
    expect(() => moduleNameOf('kernel/fs/fat/fat.o')).toThrow(/not a kernel module path/);
  });

  it('reads modules.builtin into names', () => {
    expect([...parseModulesBuiltin(modulesBuiltin)]).toEqual(['ext4', 'nls_base', 'nvme', 'crc32']);
  });

  it('refuses a modules.dep whose dependencies form a cycle or name a missing line', () => {
    const cyclic = 'a.ko: b.ko\nb.ko: a.ko\n';
    expect(() => resolveModules({ modulesDep: cyclic, wanted: ['a'] })).toThrow(/cycle: a → b → a/);
    expect(() => resolveModules({ modulesDep: 'a.ko: missing.ko\n', wanted: ['a'] })).toThrow(/"missing"/);
    expect(() => parseModulesDep('no colon here\n')).toThrow(/line 1/);
  });
});

describe('the positional form used by the payload phase', () => {
  it('gives the same closure and its paths in load order', () => {
    const closure = resolveModuleClosure(modulesDep, modulesBuiltin, ['vfat', 'ext4']);
    expect(closure.paths).toEqual(['kernel/fs/fat/fat.ko.gz', 'kernel/fs/fat/vfat.ko.gz']);
    expect(closure.builtin).toEqual(['ext4']);
  });
});
