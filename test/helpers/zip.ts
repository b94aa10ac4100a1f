// A small ZIP writer for tests: the archive variants balenaOS images come in (one deflated or
// stored entry, with or without a data descriptor) and the ones stage2 cannot read (zip64,
// encrypted, several files), built byte by byte from the PKWARE APPNOTE layout.

import { crc32, deflateRawSync } from 'node:zlib';

export interface ZipEntrySpec {
  name: string;
  data: Buffer;
  /** 8 = deflate (default), 0 = stored, anything else is written as is (and is not readable) */
  method?: number;
  /** sizes and CRC after the data (general purpose bit 3), zeros in the local header */
  dataDescriptor?: boolean;
  /** zip64 extra fields with the sizes, 0xffffffff in the 32-bit fields */
  zip64?: boolean;
  /** general purpose bit 0 set (the data is not actually encrypted) */
  encryptedFlag?: boolean;
}

const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};
const u64 = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};

/** The bytes of a ZIP archive holding ENTRIES, in order. */
export function makeZip(entries: ZipEntrySpec[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const method = e.method ?? 8;
    const body = method === 8 ? deflateRawSync(e.data) : e.data;
    const crc = crc32(e.data);
    const name = Buffer.from(e.name, 'utf8');
    const flags = (e.dataDescriptor ? 0x08 : 0) | (e.encryptedFlag ? 0x01 : 0) | 0x800;
    const version = e.zip64 ? 45 : 20;
    const zip64Local = e.zip64
      ? Buffer.concat([u16(1), u16(16), u64(e.data.length), u64(body.length)])
      : null;
    const inHeader = (v: number) => (e.dataDescriptor ? 0 : e.zip64 ? 0xffffffff : v);
    const local = Buffer.concat([
      u32(0x04034b50),
      u16(version),
      u16(flags),
      u16(method),
      u16(0),
      u16(0x21),
      u32(e.dataDescriptor ? 0 : crc),
      u32(inHeader(body.length)),
      u32(inHeader(e.data.length)),
      u16(name.length),
      u16(zip64Local?.length ?? 0),
      name,
      ...(zip64Local ? [zip64Local] : []),
    ]);
    const descriptor = e.dataDescriptor
      ? e.zip64
        ? Buffer.concat([u32(0x08074b50), u32(crc), u64(body.length), u64(e.data.length)])
        : Buffer.concat([u32(0x08074b50), u32(crc), u32(body.length), u32(e.data.length)])
      : Buffer.alloc(0);
    const zip64Central = e.zip64
      ? Buffer.concat([u16(1), u16(24), u64(e.data.length), u64(body.length), u64(offset)])
      : null;
    central.push(
      Buffer.concat([
        u32(0x02014b50),
        u16(0x031e),
        u16(version),
        u16(flags),
        u16(method),
        u16(0),
        u16(0x21),
        u32(crc),
        u32(e.zip64 ? 0xffffffff : body.length),
        u32(e.zip64 ? 0xffffffff : e.data.length),
        u16(name.length),
        u16(zip64Central?.length ?? 0),
        u16(0),
        u16(0),
        u16(0),
        u32(0o100644 * 0x10000),
        u32(e.zip64 ? 0xffffffff : offset),
        name,
        ...(zip64Central ? [zip64Central] : []),
      ]),
    );
    parts.push(local, body, descriptor);
    offset += local.length + body.length + descriptor.length;
  }
  const cd = Buffer.concat(central);
  const eocd = Buffer.concat([
    u32(0x06054b50),
    u16(0),
    u16(0),
    u16(entries.length),
    u16(entries.length),
    u32(cd.length),
    u32(offset),
    u16(0),
  ]);
  return Buffer.concat([...parts, cd, eocd]);
}
