// What a supplied migration kernel must have built in to run stage2 on a Windows PC: read
// from the kernel's `.config`, which the operator puts beside it as `<kernel>.config`.
// The Windows path carries no kernel modules, so everything needed is `=y`, not `=m`.
import { existsSync, readFileSync } from 'node:fs';

export type KernelConfig = Map<string, string>;

/** `CONFIG_X=y` lines → X → y; `# CONFIG_X is not set` and comments are skipped. */
export function parseKernelConfig(text: string): KernelConfig {
  const out: KernelConfig = new Map();
  for (const line of text.split(/\r?\n/)) {
    const m = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1]!, m[2]!.replace(/^"(.*)"$/, '$1'));
  }
  return out;
}

/** The kernel config beside KERNELPATH (`<kernel>.config`), or null when there is none. I/O. */
export function readKernelConfigBeside(kernelPath: string): string | null {
  const p = `${kernelPath}.config`;
  return existsSync(p) ? readFileSync(p, 'utf8') : null;
}

/** Built-in options stage2 cannot do without, and why. */
export const REQUIRED_BUILTINS: ReadonlyArray<[option: string, why: string]> = [
  ['EFI_STUB', 'the firmware starts the kernel as an EFI application'],
  ['BLK_DEV_INITRD', 'stage2 is an initramfs'],
  ['RD_GZIP', 'the stage2 initramfs is gzip-compressed'],
  ['DEVTMPFS', 'stage2 finds the disks in /dev'],
  ['TMPFS', 'stage2 holds the image in a tmpfs'],
  ['EFI_PARTITION', 'the Windows disk has a GPT partition table'],
  ['MSDOS_PARTITION', 'stage2 reads the partition table of the written image'],
  ['VFAT_FS', 'balena-stage2.yml is on the EFI system partition (FAT)'],
];

/** Storage drivers by Windows bus type; a bus not listed cannot be checked. */
export const BUS_DRIVERS: Readonly<Record<string, string[]>> = {
  NVMe: ['BLK_DEV_NVME'],
  SATA: ['SATA_AHCI'],
  ATA: ['SATA_AHCI'],
  USB: ['USB_STORAGE'],
  SD: ['MMC_SDHCI'],
  MMC: ['MMC_BLOCK'],
};

export interface KernelCheck {
  /** refusals: something stage2 needs is missing */
  missing: string[];
  /** what the plan should know without refusing */
  notes: string[];
  /** `ntfs3`, `ntfs` or null: the NTFS driver built in */
  ntfs: 'ntfs3' | 'ntfs' | null;
}

/** Checks a kernel config against what stage2 on this host needs (BUSES: the disks' bus types). */
export function checkKernelConfig(config: KernelConfig, buses: readonly string[]): KernelCheck {
  const missing: string[] = [];
  const notes: string[] = [];
  const y = (o: string): boolean => config.get(o) === 'y';
  for (const [option, why] of REQUIRED_BUILTINS) {
    if (!y(option)) missing.push(`CONFIG_${option}=y (${why}); it is ${config.get(option) ?? 'not set'}`);
  }
  // vfat mounts with the default code page and iocharset; both NLS tables must be built in.
  const codepage = config.get('FAT_DEFAULT_CODEPAGE') ?? '437';
  const iocharset = (config.get('FAT_DEFAULT_IOCHARSET') ?? 'iso8859-1').toUpperCase().replace(/-/g, '_');
  for (const nls of [`NLS_CODEPAGE_${codepage}`, `NLS_${iocharset}`]) {
    if (!y(nls)) missing.push(`CONFIG_${nls}=y (mounting the FAT EFI system partition needs it)`);
  }
  for (const bus of new Set(buses)) {
    const drivers = BUS_DRIVERS[bus];
    if (!drivers) {
      notes.push(`the kernel config could not be checked for a driver of ${bus} disks`);
      continue;
    }
    for (const d of drivers) {
      if (!y(d))
        missing.push(`CONFIG_${d}=y (the driver for ${bus} disks); it is ${config.get(d) ?? 'not set'}`);
    }
  }
  const ntfs = y('NTFS3_FS') ? 'ntfs3' : y('NTFS_FS') ? 'ntfs' : null;
  if (ntfs === 'ntfs') {
    notes.push(
      'the kernel has only the old read-only NTFS driver (CONFIG_NTFS_FS): stage2 can read the image, ' +
        'but its log goes to the EFI system partition instead of the work dir',
    );
  }
  return { missing, notes, ntfs };
}
