// Typed facts about a host, validated from what the probe prints. Nothing downstream reads
// raw command output: planners see only this shape.
//
// Fields marked optional were added after the first version of this contract; parseFacts
// always fills them, they are optional only so that facts written by hand elsewhere still
// type-check.
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
  /** `MAJ:MIN` */
  majMin: z.string().optional(),
  /** device-mapper uuid (`LVM-...`, `CRYPT-...`) and name, for dm-* devices */
  dmUuid: z.string().nullable().optional(),
  dmName: z.string().nullable().optional(),
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
  /**
   * the directory inside its filesystem that is mounted at `mountpoint` (`/` unless it is a
   * bind mount); the path relative to the filesystem's root is fsRoot + (path - mountpoint)
   */
  fsRoot: z.string().optional(),
  /** the nearest existing ancestor of `path` that was actually looked at (`path` when it exists) */
  probedPath: z.string().optional(),
  /** the mount source, e.g. `/dev/vda1`, `/dev/mapper/vg-root`, `tmpfs` */
  source: z.string().optional(),
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
  /** where / lives (its device may be dm-*, md*, ... when rootDevice is null) */
  rootDir: DirLocation.optional(),
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
    /** update-grub / update-grub2 (Debian family); preferred over `mkconfig -o` when present */
    updateGrub: z.string().nullable().optional(),
    /** why GRUB cannot rewrite grubenv at boot, when envWritableAtBoot is false */
    envNotWritableReason: z.string().nullable().optional(),
    /** the exact bytes of grubenv (1024 bytes normally), base64; null when absent or unreadable */
    envBase64: z.string().nullable().optional(),
  }),
  tools: z.object({
    setsid: z.boolean(),
    /** flock (util-linux): the apply transaction's lock */
    flock: z.boolean().optional(),
    sha256sum: z.boolean(),
    efibootmgr: z.boolean(),
  }),
  /** how filesystem identities were read: blkid, lsblk, udev, busybox-blkid, none */
  idTool: z.string().optional(),
  /** things the probe could not find out, for the operator */
  warnings: z.array(z.string()).optional(),
});
export type Facts = z.infer<typeof Facts>;
