// A writer for the cpio "newc" format (the one the Linux kernel unpacks as an initramfs).
// Pure: entries in, bytes out. No external cpio is needed to build a stage2 initramfs.

import { gzipSync } from 'node:zlib';

/** One member of the archive. Paths are relative to the archive root ("bin/sh", "/init" is accepted too). */
export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; data: Buffer | string; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'char' | 'block'; path: string; major: number; minor: number; mode?: number };

export interface CpioOptions {
  /** modification time of every member, seconds since the epoch; 0 keeps builds reproducible */
  mtime?: number;
  uid?: number;
  gid?: number;
  /** add missing parent directories (mode 0755) before their children; on by default */
  addParents?: boolean;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const MAX_U32 = 0xffffffff;

/** Canonical member name: no leading "/" or "./", no empty, "." or ".." components. */
export function normalizeCpioPath(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0) throw new Error(`cpio: empty path "${path}"`);
  if (parts.includes('..')) throw new Error(`cpio: path "${path}" must not contain ".."`);
  if (parts.some((p) => p.includes('\0'))) throw new Error(`cpio: path "${path}" contains a NUL byte`);
  return parts.join('/');
}

function hex8(n: number, what: string): string {
  if (!Number.isInteger(n) || n < 0 || n > MAX_U32)
    throw new Error(`cpio: ${what} ${n} does not fit newc's 32 bits`);
  return n.toString(16).padStart(8, '0');
}

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

interface Header {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  size: number;
  rdevMajor: number;
  rdevMinor: number;
}

// One header + name + data record, each part padded to 4 bytes as newc requires.
function record(name: string, h: Header, data: Buffer): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  const fields = [
    h.ino,
    h.mode,
    h.uid,
    h.gid,
    h.nlink,
    h.mtime,
    h.size,
    0, // devmajor of the filesystem holding the file: meaningless here
    0,
    h.rdevMajor,
    h.rdevMinor,
    nameBytes.length,
    0, // check: unused by newc (only by crc)
  ];
  const header = Buffer.from(
    `070701${fields.map((f, i) => hex8(f, `field ${i} of "${name}"`)).join('')}`,
    'ascii',
  );
  const head = Buffer.concat([header, nameBytes]);
  return [head, pad4(head.length), data, pad4(data.length)];
}

function typeBits(entry: CpioEntry): number {
  switch (entry.type) {
    case 'dir':
      return S_IFDIR;
    case 'file':
      return S_IFREG;
    case 'symlink':
      return S_IFLNK;
    case 'char':
      return S_IFCHR;
    case 'block':
      return S_IFBLK;
  }
}

function defaultMode(entry: CpioEntry): number {
  switch (entry.type) {
    case 'dir':
      return 0o755;
    case 'file':
      return 0o644;
    case 'symlink':
      return 0o777;
    default:
      return 0o600;
  }
}

/** Builds an uncompressed newc archive, ending with the TRAILER!!! record. */
export function writeCpio(entries: readonly CpioEntry[], options: CpioOptions = {}): Buffer {
  const mtime = options.mtime ?? 0;
  const uid = options.uid ?? 0;
  const gid = options.gid ?? 0;
  const addParents = options.addParents ?? true;
  const seen = new Set<string>();
  const chunks: Buffer[] = [];
  let ino = 1;

  const emit = (name: string, entry: CpioEntry): void => {
    if (seen.has(name)) throw new Error(`cpio: "${name}" is in the archive twice`);
    seen.add(name);
    const perm = entry.type === 'symlink' ? 0o777 : (entry.mode ?? defaultMode(entry));
    if (perm & ~0o7777) throw new Error(`cpio: mode ${perm.toString(8)} of "${name}" has bits outside 07777`);
    let data: Buffer = Buffer.alloc(0);
    if (entry.type === 'file') data = typeof entry.data === 'string' ? Buffer.from(entry.data) : entry.data;
    if (entry.type === 'symlink') {
      if (entry.target === '') throw new Error(`cpio: symlink "${name}" has an empty target`);
      data = Buffer.from(entry.target, 'utf8');
    }
    const isDev = entry.type === 'char' || entry.type === 'block';
    chunks.push(
      ...record(
        name,
        {
          ino: ino++,
          mode: typeBits(entry) | perm,
          uid,
          gid,
          nlink: entry.type === 'dir' ? 2 : 1,
          mtime,
          size: data.length,
          rdevMajor: isDev ? entry.major : 0,
          rdevMinor: isDev ? entry.minor : 0,
        },
        data,
      ),
    );
  };

  for (const entry of entries) {
    const name = normalizeCpioPath(entry.path);
    if (addParents) {
      const parts = name.split('/');
      for (let i = 1; i < parts.length; i++) {
        const parent = parts.slice(0, i).join('/');
        if (!seen.has(parent)) emit(parent, { type: 'dir', path: parent });
      }
    }
    emit(name, entry);
  }
  chunks.push(
    ...record(
      'TRAILER!!!',
      { ino: 0, mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, size: 0, rdevMajor: 0, rdevMinor: 0 },
      Buffer.alloc(0),
    ),
  );
  return Buffer.concat(chunks);
}

/** The same archive, gzipped: what the kernel takes as an initrd. */
export function writeCpioGz(entries: readonly CpioEntry[], options: CpioOptions = {}): Buffer {
  return gzipSync(writeCpio(entries, options), { level: 9 });
}
