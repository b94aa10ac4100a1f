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

/** A network interface as the probe saw it (no configuration, no secrets). */
export const NetInterface = z.object({
  name: z.string(),
  /** wifi: has a wireless phy; ethernet: ARP type ether without a DEVTYPE (no bridge, vlan, bond) */
  kind: z.enum(['ethernet', 'wifi', 'other']),
  mac: z.string().nullable(),
  /** operstate up */
  up: z.boolean(),
  /** backed by a device (not virtual) */
  physical: z.boolean(),
  driver: z.string().nullable(),
  /** global IPv4 addresses; dynamic: leased (DHCP), not configured statically */
  ipv4: z.array(z.object({ cidr: z.string(), dynamic: z.boolean() })),
  ipv6: z.array(z.string()),
});
export type NetInterface = z.infer<typeof NetInterface>;

/** A file that tells a firmware or u-boot how to boot (config.txt, cmdline.txt, uEnv.txt, MLO, ...). */
export const BootFile = z.object({
  /** absolute path on the host, e.g. /boot/firmware/config.txt, /uEnv.txt */
  path: z.string(),
  sizeBytes: z.number().int().nonnegative(),
  /** the exact bytes of a small text file, base64; null for binaries and large files */
  contentBase64: z.string().nullable(),
});
export type BootFile = z.infer<typeof BootFile>;

/** u-boot written raw to a disk or eMMC boot partition, found by its image header. */
export const RawBootloader = z.object({
  /** kernel name of the disk, e.g. mmcblk1 or mmcblk1boot0 */
  device: z.string(),
  offsetBytes: z.number().int().nonnegative(),
  format: z.enum(['uimage', 'fit']),
});
export type RawBootloader = z.infer<typeof RawBootloader>;

/** A UEFI boot entry (the variable Boot####). */
export const EfiBootEntry = z.object({
  /** four upper-case hex digits, e.g. `0001` */
  num: z.string().regex(/^[0-9A-F]{4}$/),
  /** LOAD_OPTION_ACTIVE */
  active: z.boolean(),
  /** its description; characters that are not printable ASCII read `?` */
  label: z.string(),
});
export type EfiBootEntry = z.infer<typeof EfiBootEntry>;

/** A hardware watchdog device (/sys/class/watchdog). */
export const WatchdogDevice = z.object({
  device: z.string(),
  /** active: running now (it resets the machine unless it is kicked); null: the kernel does not say */
  state: z.enum(['active', 'inactive']).nullable(),
  identity: z.string().nullable(),
  timeoutSeconds: z.number().int().nonnegative().nullable(),
  /** its driver module, to carry into the stage2 initramfs */
  module: z.string().nullable(),
});
export type WatchdogDevice = z.infer<typeof WatchdogDevice>;

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
    /** the installed image is an EFI stub (PE/COFF), so UEFI firmware can start it itself */
    imageEfiStub: z.boolean().nullable().optional(),
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
    /** Raspberry Pi board revision code from /proc/cpuinfo (`a020d3`), or the device tree's `linux,revision` */
    cpuRevision: z.string().nullable().optional(),
    /** the `Hardware` line of /proc/cpuinfo (`BCM2835` on every Raspberry Pi kernel) */
    cpuHardware: z.string().nullable().optional(),
    /** Raspberry Pi 4/5 bootloader EEPROM build time (seconds since 1970), from the device tree */
    bootloaderTimestamp: z.number().int().nonnegative().nullable().optional(),
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
    /** where grubenv points when it is a symlink (e.g. into the EFI system partition) */
    envSymlinkTarget: z.string().nullable().optional(),
  }),
  tools: z.object({
    setsid: z.boolean(),
    /** flock (util-linux): the apply transaction's lock */
    flock: z.boolean().optional(),
    sha256sum: z.boolean(),
    efibootmgr: z.boolean(),
    /** curl / wget: agent.hostDownload fetches the image with one of them */
    curl: z.boolean().optional(),
    wget: z.boolean().optional(),
  }),
  /** how filesystem identities were read: blkid, lsblk, udev, busybox-blkid, none */
  idTool: z.string().optional(),
  /** things the probe could not find out, for the operator */
  warnings: z.array(z.string()).optional(),
  /** network interfaces, default routes and the daemons managing them */
  network: z
    .object({
      interfaces: z.array(NetInterface),
      /** interfaces that carry an IPv4 default route, with its protocol (dhcp, static, ...) */
      defaultRoutes: z.array(z.object({ dev: z.string(), proto: z.string().nullable() })),
      /** NetworkManager, systemd-network, connmand, dhcpcd, wpa_supplicant, dhclient, ... */
      services: z.array(z.string()),
    })
    .optional(),
  /** the Raspberry Pi firmware's and u-boot's boot files; u-boot written raw to disks */
  boot: z
    .object({
      files: z.array(BootFile),
      rawBootloaders: z.array(RawBootloader),
      /** where /boot/firmware and /boot/uboot live, when they exist */
      firmwareDir: DirLocation.nullable(),
      ubootDir: DirLocation.nullable(),
      /** the running kernel's device trees (u-boot boards), e.g. /boot/dtbs/5.10.168-ti-r71 */
      dtbDir: z.string().nullable(),
      dtbNames: z.array(z.string()),
    })
    .optional(),
  /** UEFI hosts: the firmware's boot entries as efivarfs shows them, and the EFI system partition */
  efi: z
    .object({
      /** efivarfs is mounted read-write: boot entries can be written */
      varsWritable: z.boolean(),
      /** the entry the running system was started from, e.g. `0001` */
      bootCurrent: z.string().nullable(),
      /** a one-shot already pending (a firmware update, another tool) */
      bootNext: z.string().nullable(),
      bootOrder: z.array(z.string()),
      entries: z.array(EfiBootEntry),
      /** the EFI system partition as mounted at /boot/efi, /efi or /boot (vfat), if it is */
      esp: DirLocation.nullable(),
    })
    .optional(),
  /** hardware watchdogs, and who on the old OS keeps them running */
  watchdog: z
    .object({
      devices: z.array(WatchdogDevice),
      /** systemd's RuntimeWatchdogUSec ("0" when systemd does not use it) */
      systemdRuntime: z.string().nullable(),
      /** a watchdog daemon process (watchdog, wd_keepalive) */
      daemon: z.string().nullable(),
    })
    .optional(),
});
export type Facts = z.infer<typeof Facts>;
