// Typed facts about a host, validated from what the probe prints. Nothing downstream reads
// raw command output: planners see only this shape.
import { z } from 'zod';

export const BlockDevice = z.object({
  /** kernel name, e.g. `vda`, `vda1`, `mmcblk0p1`, `nvme0n1p2` */
  name: z.string(),
  type: z.enum(['disk', 'part', 'other']),
  /** for partitions: the kernel name of the whole disk */
  parent: z.string().nullable(),
  sizeBytes: z.number().int().nonnegative(),
  /** partition number on its disk (partitions only) */
  partNumber: z.number().int().positive().nullable(),
  /** partition table of a disk: `dos` (MBR) or `gpt` */
  ptType: z.enum(['dos', 'gpt']).nullable(),
  uuid: z.string().nullable(),
  partuuid: z.string().nullable(),
  label: z.string().nullable(),
  fstype: z.string().nullable(),
  removable: z.boolean(),
  readOnly: z.boolean(),
});
export type BlockDevice = z.infer<typeof BlockDevice>;

export const Mount = z.object({
  source: z.string(),
  target: z.string(),
  fstype: z.string(),
  options: z.string(),
});
export type Mount = z.infer<typeof Mount>;

/** Where a directory lives: which mount, which block device, how much room. */
export const DirLocation = z.object({
  path: z.string(),
  exists: z.boolean(),
  /** mount point of the filesystem holding the path */
  mountpoint: z.string(),
  /** block device kernel name of that filesystem, null for tmpfs/overlay/network */
  device: z.string().nullable(),
  fstype: z.string(),
  freeBytes: z.number().int().nonnegative(),
  writable: z.boolean(),
});
export type DirLocation = z.infer<typeof DirLocation>;

export const Facts = z.object({
  probeVersion: z.literal(1),
  hostname: z.string(),
  /** `uname -m`: x86_64, aarch64, armv7l, ... */
  arch: z.string(),
  os: z.object({
    id: z.string(),
    versionId: z.string().nullable(),
    prettyName: z.string(),
    /** true when the host already runs balenaOS (nothing to migrate) */
    isBalenaOS: z.boolean(),
  }),
  kernel: z.object({
    release: z.string(),
    /** /lib/modules/RELEASE, if it exists */
    modulesDir: z.string().nullable(),
    /** the installed kernel image of the running kernel, e.g. /boot/vmlinuz-6.1.0-18-cloud-amd64 */
    image: z.string().nullable(),
    imageSizeBytes: z.number().int().nonnegative().nullable(),
    cmdline: z.string(),
  }),
  firmware: z.object({
    type: z.enum(['bios', 'uefi', 'devicetree']),
    /** null when it cannot be told (no efivars) */
    secureBoot: z.boolean().nullable(),
  }),
  hardware: z.object({
    dmiSysVendor: z.string().nullable(),
    dmiProductName: z.string().nullable(),
    dmiBoardName: z.string().nullable(),
    dtModel: z.string().nullable(),
    dtCompatible: z.array(z.string()),
    cpuModel: z.string().nullable(),
  }),
  memory: z.object({
    totalBytes: z.number().int().nonnegative(),
    /** MemAvailable: what stage2 can count on, not MemFree or MemTotal */
    availableBytes: z.number().int().nonnegative(),
  }),
  blockDevices: z.array(BlockDevice),
  mounts: z.array(Mount),
  /** kernel name of the block device mounted at / (null when not a plain block device) */
  rootDevice: z.string().nullable(),
  bootDir: DirLocation,
  workDir: DirLocation,
  /** kernel modules on the path from the root disk to the bus (e.g. virtio_blk, virtio_pci, ahci, nvme) */
  storageModules: z.array(z.string()),
  grub: z.object({
    /** grub-mkconfig or update-grub is present */
    installed: z.boolean(),
    mkconfig: z.string().nullable(),
    reboot: z.string().nullable(),
    editenv: z.string().nullable(),
    /** /boot/grub or /boot/grub2 */
    dir: z.string().nullable(),
    /** the grubenv file, when it exists */
    envFile: z.string().nullable(),
    /** whether GRUB itself can rewrite grubenv at boot (not on LVM, md RAID, btrfs, ...) */
    envWritableAtBoot: z.boolean(),
    /** /etc/grub.d exists */
    grubDDir: z.boolean(),
    /** grub.cfg honours next_entry (the one-shot that grub-reboot sets) */
    honoursNextEntry: z.boolean(),
  }),
  tools: z.object({
    setsid: z.boolean(),
    sha256sum: z.boolean(),
    efibootmgr: z.boolean(),
  }),
});
export type Facts = z.infer<typeof Facts>;
