// Typed facts about a Windows host, validated from the one JSON object that
// remote-payload/windows/probe.ps1 prints. The probe keeps the property names of the cmdlets
// it asks (Get-Disk, Get-Partition, Get-Volume, Get-BitLockerVolume, Win32_OperatingSystem);
// this file checks that shape (RawWindowsProbe) and turns it into WindowsFacts, the only
// thing the Windows planner reads. Pure: text in, data out.
import { z } from 'zod';
import {
  bootVariableName,
  decodeLoadOption,
  decodeUint16List,
  isGuid,
  normaliseGuid,
} from './windows-efi.ts';
import { parseBcdeditEnum, parseManageBdeStatus } from './windows-text.ts';

/** GPT type of an EFI system partition. */
export const ESP_GPT_TYPE = 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b';

/** The probe's JSON could not be understood. */
export class WindowsProbeParseError extends Error {
  override name = 'WindowsProbeParseError';
}

// ---- the raw shape: what the probe prints -----------------------------------------------------

const Int = z.number().int();
const Bytes = z.number().int().nonnegative();
/** A value the cmdlet may leave out or print as null. */
const opt = <T extends z.ZodType>(t: T) => t.nullable().optional();

/** Storage enums arrive as names ("NVMe") or, from some hosts, as their numbers. */
function enumText(names: Record<number, string>) {
  return z
    .union([z.string(), Int])
    .transform((v) => (typeof v === 'number' || /^\d+$/.test(v) ? (names[Number(v)] ?? String(v)) : v));
}

/** MSFT_Disk.BusType */
const BUS_TYPES: Record<number, string> = {
  0: 'Unknown',
  1: 'SCSI',
  2: 'ATAPI',
  3: 'ATA',
  4: '1394',
  5: 'SSA',
  6: 'Fibre Channel',
  7: 'USB',
  8: 'RAID',
  9: 'iSCSI',
  10: 'SAS',
  11: 'SATA',
  12: 'SD',
  13: 'MMC',
  14: 'Virtual',
  15: 'File Backed Virtual',
  16: 'Storage Spaces',
  17: 'NVMe',
};
/** MSFT_Disk.PartitionStyle */
const PARTITION_STYLES: Record<number, string> = { 0: 'RAW', 1: 'MBR', 2: 'GPT' };

const RawDisk = z.object({
  Number: Int,
  FriendlyName: opt(z.string()),
  Size: Bytes,
  BusType: enumText(BUS_TYPES),
  PartitionStyle: enumText(PARTITION_STYLES),
  IsBoot: opt(z.boolean()),
  IsSystem: opt(z.boolean()),
  IsReadOnly: opt(z.boolean()),
  IsOffline: opt(z.boolean()),
  LogicalSectorSize: opt(Int),
  Guid: opt(z.string()),
  Signature: opt(Int),
});

const RawPartition = z.object({
  DiskNumber: Int,
  PartitionNumber: Int,
  Guid: opt(z.string()),
  GptType: opt(z.string()),
  MbrType: opt(Int),
  Offset: Bytes,
  Size: Bytes,
  DriveLetter: opt(z.string()),
  IsSystem: opt(z.boolean()),
  IsBoot: opt(z.boolean()),
  Type: opt(z.string()),
  AccessPaths: opt(z.array(z.string())),
});

const RawVolume = z.object({
  DriveLetter: opt(z.string()),
  FileSystem: opt(z.string()),
  FileSystemLabel: opt(z.string()),
  Size: Bytes,
  SizeRemaining: Bytes,
  Path: opt(z.string()),
  UniqueId: opt(z.string()),
});

const RawBitLockerVolume = z.object({
  MountPoint: z.string(),
  VolumeType: opt(z.string()),
  VolumeStatus: opt(z.string()),
  ProtectionStatus: opt(z.string()),
  EncryptionPercentage: opt(z.number()),
  LockStatus: opt(z.string()),
  EncryptionMethod: opt(z.string()),
});

export const RawWindowsProbe = z.object({
  ProbeVersion: z.literal(1),
  ComputerName: z.string(),
  OperatingSystem: z.object({
    Caption: z.string(),
    Version: z.string(),
    BuildNumber: z.string(),
    OSArchitecture: opt(z.string()),
    TotalVisibleMemorySize: Bytes,
    FreePhysicalMemory: Bytes,
  }),
  ComputerSystem: z.object({
    Manufacturer: opt(z.string()),
    Model: opt(z.string()),
    TotalPhysicalMemory: Bytes,
  }),
  ProcessorArchitecture: z.string(),
  ProcessorArchiteW6432: opt(z.string()),
  PSVersion: z.string(),
  IsAdministrator: z.boolean(),
  FirmwareType: opt(z.string()),
  SecureBoot: z.object({ Enabled: z.boolean().nullable(), Error: opt(z.string()) }),
  BitLockerVolumes: opt(z.array(RawBitLockerVolume)),
  BitLockerError: opt(z.string()),
  ManageBdeStatus: opt(z.string()),
  Disks: z.array(RawDisk),
  Partitions: z.array(RawPartition),
  Volumes: z.array(RawVolume),
  EspMount: z.object({
    DriveLetter: opt(z.string()),
    MountedByProbe: z.boolean(),
    FreeBytes: opt(Bytes),
    Files: opt(z.record(z.string(), z.boolean())),
    Error: opt(z.string()),
  }),
  WorkDir: z.object({
    Path: z.string(),
    Exists: z.boolean(),
    ProbedPath: opt(z.string()),
    Writable: z.boolean(),
  }),
  BcdFirmware: opt(z.string()),
  BcdError: opt(z.string()),
  EfiVariables: z.object({
    BootOrder: opt(z.string()),
    BootNext: opt(z.string()),
    BootCurrent: opt(z.string()),
    Options: z.array(z.object({ Name: z.string(), Value: z.string() })),
    Error: opt(z.string()),
  }),
  HiberbootEnabled: opt(Int),
  Warnings: z.array(z.string()),
});
export type RawWindowsProbe = z.infer<typeof RawWindowsProbe>;

// ---- the facts the planner reads ---------------------------------------------------------------

export const WindowsDisk = z.object({
  number: Int,
  friendlyName: z.string().nullable(),
  sizeBytes: Bytes,
  /** NVMe, SATA, RAID, USB, SAS, SCSI, Virtual, ... */
  busType: z.string(),
  partitionStyle: z.enum(['GPT', 'MBR', 'RAW', 'Unknown']),
  isBoot: z.boolean(),
  isSystem: z.boolean(),
  readOnly: z.boolean(),
  offline: z.boolean(),
  logicalSectorSize: Int,
});
export type WindowsDisk = z.infer<typeof WindowsDisk>;

export const WindowsPartition = z.object({
  diskNumber: Int,
  partitionNumber: Int,
  /** GPT unique partition GUID, lowercase without braces (null on MBR disks) */
  guid: z.string().nullable(),
  gptType: z.string().nullable(),
  offsetBytes: Bytes,
  sizeBytes: Bytes,
  driveLetter: z.string().nullable(),
  isSystem: z.boolean(),
  isBoot: z.boolean(),
  type: z.string().nullable(),
  /** from Get-Volume, when the partition holds a volume Windows knows */
  fileSystem: z.string().nullable(),
  freeBytes: Bytes.nullable(),
  volumePath: z.string().nullable(),
});
export type WindowsPartition = z.infer<typeof WindowsPartition>;

export const BitLockerState = z.object({
  /** `C:`, or a volume path for volumes without a letter */
  mountPoint: z.string(),
  /** FullyDecrypted, FullyEncrypted, EncryptionInProgress, DecryptionInProgress, ...Paused */
  volumeStatus: z.string().nullable(),
  /** On, Off, Unknown */
  protectionStatus: z.string().nullable(),
  encryptionPercentage: z.number().nullable(),
  lockStatus: z.string().nullable(),
});
export type BitLockerState = z.infer<typeof BitLockerState>;

export const FirmwareBootOption = z.object({
  /** 0x0003 for Boot0003 */
  number: Int,
  name: z.string(),
  description: z.string(),
  filePath: z.string().nullable(),
  partitionGuid: z.string().nullable(),
  /** the load options start with the WINDOWS/BCDOBJECT marker bcdedit writes */
  bcdObject: z.boolean(),
});
export type FirmwareBootOption = z.infer<typeof FirmwareBootOption>;

export const WindowsFacts = z.object({
  windowsProbeVersion: z.literal(1),
  hostname: z.string(),
  os: z.object({ caption: z.string(), version: z.string(), build: Int, architecture: z.string().nullable() }),
  /** x86_64, arm64, x86 (the machine, not the PowerShell process) */
  arch: z.string(),
  manufacturer: z.string().nullable(),
  model: z.string().nullable(),
  powershellVersion: z.string(),
  isAdmin: z.boolean(),
  firmware: z.object({ type: z.enum(['uefi', 'bios', 'unknown']), detail: z.string() }),
  /** null when it cannot be told; `reason` says why */
  secureBoot: z.object({ enabled: z.boolean().nullable(), reason: z.string().nullable() }),
  bitlocker: z.object({
    source: z.enum(['Get-BitLockerVolume', 'manage-bde', 'none']),
    volumes: z.array(BitLockerState),
    error: z.string().nullable(),
  }),
  memory: z.object({ totalBytes: Bytes, freeBytes: Bytes }),
  disks: z.array(WindowsDisk),
  partitions: z.array(WindowsPartition),
  /** the EFI system partition Windows booted from (IsSystem, GPT type ESP) */
  esp: WindowsPartition.extend({
    /** free space as measured through a temporary drive letter (or Get-Volume) */
    freeBytes: Bytes.nullable(),
    /** files the probe looked for, by ESP path: `\EFI\Boot\bootx64.efi` → exists */
    files: z.record(z.string(), z.boolean()),
  }).nullable(),
  /** why no ESP could be described, when esp is null */
  espProblem: z.string().nullable(),
  workDir: z.object({
    path: z.string(),
    exists: z.boolean(),
    probedPath: z.string().nullable(),
    writable: z.boolean(),
    /** the partition holding the drive letter of the path, when there is one */
    partition: WindowsPartition.nullable(),
  }),
  /** `bcdedit /enum firmware`, parsed: the firmware's boot entries as Windows sees them */
  bcdFirmware: z.array(z.object({ heading: z.string(), fields: z.record(z.string(), z.array(z.string())) })),
  efi: z.object({
    bootOrder: z.array(Int).nullable(),
    bootNext: Int.nullable(),
    bootCurrent: Int.nullable(),
    options: z.array(FirmwareBootOption),
    /** why the UEFI variables could not be read, if they could not */
    error: z.string().nullable(),
  }),
  /** Fast Startup (HiberbootEnabled): a shutdown leaves NTFS hibernated; a restart does not */
  fastStartup: z.boolean().nullable(),
  warnings: z.array(z.string()),
});
export type WindowsFacts = z.infer<typeof WindowsFacts>;

// ---- raw → facts ----------------------------------------------------------------------------------

function guidOrNull(text: string | null | undefined): string | null {
  if (!text) return null;
  const t = text.trim();
  if (!isGuid(t)) return null;
  const g = normaliseGuid(t);
  // MBR partitions report no GUID; some hosts print an all-zero one instead
  return /^[0-]+$/.test(g) ? null : g;
}

/** A drive letter as `C`, or null for none (the cmdlets print a NUL character or a space). */
function letter(text: string | null | undefined): string | null {
  const t = (text ?? '').replace(/[\0\s:\\]/g, '');
  return /^[A-Za-z]$/.test(t) ? t.toUpperCase() : null;
}

function machineArch(raw: RawWindowsProbe): string {
  // A 32-bit PowerShell on 64-bit Windows sees x86 and the real one in PROCESSOR_ARCHITEW6432.
  const a = (raw.ProcessorArchiteW6432 || raw.ProcessorArchitecture).toUpperCase();
  if (a === 'AMD64') return 'x86_64';
  if (a === 'ARM64') return 'arm64';
  if (a === 'X86') return 'x86';
  return a.toLowerCase();
}

function firmwareType(raw: RawWindowsProbe): WindowsFacts['firmware'] {
  const t = (raw.FirmwareType ?? '').trim();
  if (/^uefi$/i.test(t)) return { type: 'uefi', detail: `firmware_type=${t}` };
  if (/^(legacy|bios)$/i.test(t)) return { type: 'bios', detail: `firmware_type=${t}` };
  return { type: 'unknown', detail: t ? `firmware_type=${t}` : 'firmware_type is not set' };
}

function secureBoot(raw: RawWindowsProbe): WindowsFacts['secureBoot'] {
  if (raw.SecureBoot.Enabled !== null) return { enabled: raw.SecureBoot.Enabled, reason: null };
  const err = raw.SecureBoot.Error?.trim() ?? '';
  let reason = err || 'Confirm-SecureBootUEFI gave no answer';
  if (/not supported on this platform/i.test(err))
    reason = 'not supported on this platform (BIOS, or no Secure Boot)';
  else if (/access was denied|unable to set proper privileges/i.test(err))
    reason = 'access denied (the probe does not run as administrator)';
  return { enabled: null, reason };
}

function bitlocker(raw: RawWindowsProbe): WindowsFacts['bitlocker'] {
  if (raw.BitLockerVolumes) {
    return {
      source: 'Get-BitLockerVolume',
      volumes: raw.BitLockerVolumes.map((v) => ({
        mountPoint: v.MountPoint,
        volumeStatus: v.VolumeStatus ?? null,
        protectionStatus: v.ProtectionStatus ?? null,
        encryptionPercentage: v.EncryptionPercentage ?? null,
        lockStatus: v.LockStatus ?? null,
      })),
      error: null,
    };
  }
  if (raw.ManageBdeStatus) {
    return { source: 'manage-bde', volumes: parseManageBdeStatus(raw.ManageBdeStatus), error: null };
  }
  return { source: 'none', volumes: [], error: raw.BitLockerError ?? 'no BitLocker information' };
}

function partitions(raw: RawWindowsProbe): WindowsPartition[] {
  return raw.Partitions.map((p) => {
    const paths = (p.AccessPaths ?? []).map((a) => a.toLowerCase());
    const l = letter(p.DriveLetter);
    const vol =
      raw.Volumes.find((v) => {
        const vp = (v.Path ?? v.UniqueId ?? '').toLowerCase();
        return vp !== '' && paths.includes(vp);
      }) ?? (l ? raw.Volumes.find((v) => letter(v.DriveLetter) === l) : undefined);
    return {
      diskNumber: p.DiskNumber,
      partitionNumber: p.PartitionNumber,
      guid: guidOrNull(p.Guid),
      gptType: guidOrNull(p.GptType),
      offsetBytes: p.Offset,
      sizeBytes: p.Size,
      driveLetter: l,
      isSystem: p.IsSystem ?? false,
      isBoot: p.IsBoot ?? false,
      type: p.Type ?? null,
      fileSystem: vol?.FileSystem || null,
      freeBytes: vol ? vol.SizeRemaining : null,
      volumePath: vol?.Path ?? vol?.UniqueId ?? null,
    };
  });
}

function partitionStyle(s: string): WindowsDisk['partitionStyle'] {
  const u = s.toUpperCase();
  return u === 'GPT' || u === 'MBR' || u === 'RAW' ? u : 'Unknown';
}

function hexOrNull(hex: string | null | undefined): Buffer | null {
  if (!hex) return null;
  if (!/^([0-9a-fA-F]{2})*$/.test(hex))
    throw new WindowsProbeParseError(`"${hex.slice(0, 20)}..." is not hex`);
  return Buffer.from(hex, 'hex');
}

function efiVariables(raw: RawWindowsProbe): WindowsFacts['efi'] {
  const v = raw.EfiVariables;
  const order = hexOrNull(v.BootOrder);
  const next = hexOrNull(v.BootNext);
  const current = hexOrNull(v.BootCurrent);
  const options: FirmwareBootOption[] = [];
  for (const o of v.Options) {
    const m = /^Boot([0-9A-Fa-f]{4})$/.exec(o.Name);
    if (!m) throw new WindowsProbeParseError(`EfiVariables.Options: "${o.Name}" is not a Boot#### name`);
    const number = Number.parseInt(m[1]!, 16);
    const value = hexOrNull(o.Value) ?? Buffer.alloc(0);
    try {
      const lo = decodeLoadOption(value);
      options.push({
        number,
        name: bootVariableName(number),
        description: lo.description,
        filePath: lo.filePath,
        partitionGuid: lo.hardDrive?.partitionGuid ?? null,
        bcdObject: lo.optionalData.subarray(0, 8).toString('latin1') === 'WINDOWS\0',
      });
    } catch (e) {
      options.push({
        number,
        name: bootVariableName(number),
        description: `(unreadable: ${(e as Error).message})`,
        filePath: null,
        partitionGuid: null,
        bcdObject: false,
      });
    }
  }
  return {
    bootOrder: order ? decodeUint16List(order) : null,
    bootNext: next && next.length >= 2 ? next.readUInt16LE(0) : null,
    bootCurrent: current && current.length >= 2 ? current.readUInt16LE(0) : null,
    options,
    error: v.Error ?? null,
  };
}

/** Validated raw probe → the facts the planner reads. */
export function windowsFactsFromRaw(raw: RawWindowsProbe): WindowsFacts {
  const parts = partitions(raw);
  const warnings = [...raw.Warnings];

  // The ESP: the system partition of GPT type ESP; Windows marks the one it booted through.
  const esps = parts.filter((p) => p.gptType === ESP_GPT_TYPE);
  const espPart = esps.find((p) => p.isSystem) ?? (esps.length === 1 ? esps[0] : undefined);
  let espProblem: string | null = null;
  if (esps.length === 0) espProblem = 'no partition of the EFI system partition type was found';
  else if (!espPart)
    espProblem = `${esps.length} EFI system partitions were found and none is marked as the system partition`;
  else if (esps.length > 1)
    warnings.push(
      `${esps.length} EFI system partitions: using disk ${espPart.diskNumber} partition ${espPart.partitionNumber}, the one Windows marks as its system partition`,
    );
  const esp = espPart
    ? {
        ...espPart,
        freeBytes: raw.EspMount.FreeBytes ?? espPart.freeBytes,
        files: raw.EspMount.Files ?? {},
      }
    : null;
  if (esp && raw.EspMount.Error) warnings.push(`ESP: ${raw.EspMount.Error}`);

  const workLetter = letter(/^([A-Za-z]):/.exec(raw.WorkDir.Path)?.[1]);
  const workPart = workLetter ? (parts.find((p) => p.driveLetter === workLetter) ?? null) : null;

  const facts: WindowsFacts = {
    windowsProbeVersion: 1,
    hostname: raw.ComputerName,
    os: {
      caption: raw.OperatingSystem.Caption.trim(),
      version: raw.OperatingSystem.Version,
      build: Number.parseInt(raw.OperatingSystem.BuildNumber, 10) || 0,
      architecture: raw.OperatingSystem.OSArchitecture ?? null,
    },
    arch: machineArch(raw),
    manufacturer: raw.ComputerSystem.Manufacturer ?? null,
    model: raw.ComputerSystem.Model ?? null,
    powershellVersion: raw.PSVersion,
    isAdmin: raw.IsAdministrator,
    firmware: firmwareType(raw),
    secureBoot: secureBoot(raw),
    bitlocker: bitlocker(raw),
    memory: {
      totalBytes: raw.ComputerSystem.TotalPhysicalMemory,
      freeBytes: raw.OperatingSystem.FreePhysicalMemory * 1024,
    },
    disks: raw.Disks.map((d) => ({
      number: d.Number,
      friendlyName: d.FriendlyName ?? null,
      sizeBytes: d.Size,
      busType: d.BusType,
      partitionStyle: partitionStyle(d.PartitionStyle),
      isBoot: d.IsBoot ?? false,
      isSystem: d.IsSystem ?? false,
      readOnly: d.IsReadOnly ?? false,
      offline: d.IsOffline ?? false,
      logicalSectorSize: d.LogicalSectorSize ?? 512,
    })),
    partitions: parts,
    esp,
    espProblem,
    workDir: {
      path: raw.WorkDir.Path,
      exists: raw.WorkDir.Exists,
      probedPath: raw.WorkDir.ProbedPath ?? null,
      writable: raw.WorkDir.Writable,
      partition: workPart,
    },
    bcdFirmware: raw.BcdFirmware ? parseBcdeditEnum(raw.BcdFirmware) : [],
    efi: efiVariables(raw),
    fastStartup:
      raw.HiberbootEnabled === undefined || raw.HiberbootEnabled === null ? null : raw.HiberbootEnabled !== 0,
    warnings: raw.BcdError ? [...warnings, `bcdedit /enum firmware: ${raw.BcdError}`] : warnings,
  };
  return WindowsFacts.parse(facts);
}

/** Parses what probe.ps1 printed (one JSON object, possibly after a BOM or blank lines). */
export function parseWindowsFacts(json: string): WindowsFacts {
  const text = json.replace(/^\uFEFF/, '').trim();
  if (!text) throw new WindowsProbeParseError('the Windows probe printed nothing');
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new WindowsProbeParseError(
      `the Windows probe did not print one JSON object (${(e as Error).message}); it may have stopped half-way`,
    );
  }
  const result = RawWindowsProbe.safeParse(data);
  if (!result.success) {
    const issues = result.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`)
      .join('; ');
    throw new WindowsProbeParseError(`the Windows probe output does not have the expected shape: ${issues}`);
  }
  return windowsFactsFromRaw(result.data);
}
