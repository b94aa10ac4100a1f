// UEFI boot variables as bytes: the EFI_LOAD_OPTION of a Boot#### variable (UEFI spec 3.1.3)
// and the UINT16 lists of BootOrder / BootNext. Pure: the probe hands us hex, the planner
// hands the apply script hex; both directions are worked out here, where they can be tested.

/** The vendor GUID of the UEFI global variables (Boot####, BootOrder, BootNext). */
export const EFI_GLOBAL_VARIABLE_GUID = '{8BE4DF61-93CA-11D2-AA0D-00E098032B8C}';
/** NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS: what Boot#### and BootNext carry. */
export const EFI_BOOT_VARIABLE_ATTRIBUTES = 0x7;
/** LOAD_OPTION_ACTIVE */
export const LOAD_OPTION_ACTIVE = 0x1;

const GUID_TEXT = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i;

/** A GUID's 16 bytes as UEFI and GPT store them: the first three fields little-endian. */
export function guidToBytes(guid: string): Buffer {
  const m = GUID_TEXT.exec(guid.trim());
  if (!m) throw new Error(`"${guid}" is not a GUID`);
  const b = Buffer.alloc(16);
  b.writeUInt32LE(Number.parseInt(m[1]!, 16), 0);
  b.writeUInt16LE(Number.parseInt(m[2]!, 16), 4);
  b.writeUInt16LE(Number.parseInt(m[3]!, 16), 6);
  Buffer.from(m[4]! + m[5]!, 'hex').copy(b, 8);
  return b;
}

/** The inverse of guidToBytes, lowercase without braces (the way Linux prints a PARTUUID). */
export function bytesToGuid(b: Buffer): string {
  if (b.length !== 16) throw new Error('a GUID is 16 bytes');
  const h = (n: number, w: number): string => n.toString(16).padStart(w, '0');
  const tail = b.subarray(8).toString('hex');
  return `${h(b.readUInt32LE(0), 8)}-${h(b.readUInt16LE(4), 4)}-${h(b.readUInt16LE(6), 4)}-${tail.slice(0, 4)}-${tail.slice(4)}`;
}

/** `{C3F9...}` or `c3f9...` → `c3f9...`: the form stage2 and Linux compare. */
export function normaliseGuid(guid: string): string {
  return bytesToGuid(guidToBytes(guid));
}

export function isGuid(text: string): boolean {
  return GUID_TEXT.test(text.trim());
}

/** A GPT partition as the firmware finds it: HD(number, GPT, GUID, start, size). */
export interface HardDrivePath {
  partitionNumber: number;
  startLba: bigint;
  sizeLba: bigint;
  partitionGuid: string;
}

export interface LoadOption {
  attributes: number;
  description: string;
  /** the hard-drive media node, when the path has one */
  hardDrive: HardDrivePath | null;
  /** the file path node, e.g. `\EFI\Microsoft\Boot\bootmgfw.efi` */
  filePath: string | null;
  /** what the firmware hands the loaded image as its load options */
  optionalData: Buffer;
}

function ucs2z(text: string): Buffer {
  for (const ch of text) {
    if (ch.codePointAt(0)! > 0xffff || ch === '\0') throw new Error(`"${text}" cannot be written as UCS-2`);
  }
  return Buffer.from(`${text}\0`, 'utf16le');
}

function node(type: number, subType: number, body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt8(type, 0);
  head.writeUInt8(subType, 1);
  head.writeUInt16LE(4 + body.length, 2);
  return Buffer.concat([head, body]);
}

/**
 * A Boot#### value: an active entry that starts FILEPATH on the GPT partition HD with
 * OPTIONAL_DATA as its load options. The path is the short form HD(...)/File(...) that
 * efibootmgr writes too; firmware finds the disk by the partition GUID.
 */
export function encodeLoadOption(opt: {
  description: string;
  hardDrive: HardDrivePath;
  filePath: string;
  optionalData: Buffer;
  attributes?: number;
}): Buffer {
  if (!/^\\[^\0]+$/.test(opt.filePath))
    throw new Error(`the EFI file path ${opt.filePath} must start with \\`);
  const hd = Buffer.alloc(38);
  hd.writeUInt32LE(opt.hardDrive.partitionNumber, 0);
  hd.writeBigUInt64LE(opt.hardDrive.startLba, 4);
  hd.writeBigUInt64LE(opt.hardDrive.sizeLba, 12);
  guidToBytes(opt.hardDrive.partitionGuid).copy(hd, 20);
  hd.writeUInt8(0x02, 36); // partition format: GUID partition table
  hd.writeUInt8(0x02, 37); // signature type: GUID
  const path = Buffer.concat([
    node(0x04, 0x01, hd),
    node(0x04, 0x04, ucs2z(opt.filePath)),
    node(0x7f, 0xff, Buffer.alloc(0)),
  ]);
  const head = Buffer.alloc(6);
  head.writeUInt32LE(opt.attributes ?? LOAD_OPTION_ACTIVE, 0);
  head.writeUInt16LE(path.length, 4);
  return Buffer.concat([head, ucs2z(opt.description), path, opt.optionalData]);
}

/** Reads a Boot#### value; throws on a value too short or inconsistent to be one. */
export function decodeLoadOption(value: Buffer): LoadOption {
  if (value.length < 6) throw new Error('a load option is at least 6 bytes');
  const attributes = value.readUInt32LE(0);
  const pathLength = value.readUInt16LE(4);
  let end = 6;
  while (end + 1 < value.length && value.readUInt16LE(end) !== 0) end += 2;
  if (end + 1 >= value.length) throw new Error('the load option description is not terminated');
  const description = value.subarray(6, end).toString('utf16le');
  const pathStart = end + 2;
  const pathEnd = pathStart + pathLength;
  if (pathEnd > value.length) throw new Error('the load option device path runs past its end');
  let hardDrive: HardDrivePath | null = null;
  let filePath: string | null = null;
  let at = pathStart;
  while (at + 4 <= pathEnd) {
    const type = value.readUInt8(at);
    const subType = value.readUInt8(at + 1);
    const len = value.readUInt16LE(at + 2);
    if (len < 4 || at + len > pathEnd) throw new Error('a device path node has a bad length');
    const body = value.subarray(at + 4, at + len);
    if (type === 0x7f && subType === 0xff) break;
    if (type === 0x04 && subType === 0x01 && body.length >= 38 && body.readUInt8(37) === 0x02) {
      hardDrive = {
        partitionNumber: body.readUInt32LE(0),
        startLba: body.readBigUInt64LE(4),
        sizeLba: body.readBigUInt64LE(12),
        partitionGuid: bytesToGuid(body.subarray(20, 36)),
      };
    } else if (type === 0x04 && subType === 0x04) {
      const text = body.toString('utf16le');
      filePath = (filePath ?? '') + text.replace(/\0+$/, '');
    }
    at += len;
  }
  return { attributes, description, hardDrive, filePath, optionalData: value.subarray(pathEnd) };
}

/** `Boot00A7` for 0xa7. */
export function bootVariableName(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new Error(`${n} is not a boot option number`);
  return `Boot${n.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** A UINT16 list (BootOrder) from its bytes. */
export function decodeUint16List(value: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < value.length; i += 2) out.push(value.readUInt16LE(i));
  return out;
}

/** The bytes of a UINT16 (BootNext). */
export function encodeUint16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n, 0);
  return b;
}

/** Load options as the EFI stub reads them: UCS-2, NUL-terminated. */
export function encodeLoadOptionsText(text: string): Buffer {
  return ucs2z(text);
}
