// Measures the operator's balenaOS image once, by streaming it: the format (from its content,
// not its name), the size and sha256 of the file as uploaded and of the raw disk inside, and
// whether the raw bytes start with a partition table. Nothing is ever expanded on disk.
//
// Formats: a raw .img, gzip, xz (through the xz tool) and .zip (the dashboard's download),
// each read the way stage2's busybox will read it (gunzip -c, unxz -c, unzip -p), so a file
// stage2 could not decompress is refused here, before any upload. Zip archives are read with
// yauzl: it takes the sizes from the central directory (streamed zips leave them out of the
// local header), understands zip64, and inflates the one entry as a stream.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { PassThrough, type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { crc32, createGunzip } from 'node:zlib';
import yauzl from 'yauzl';
import { ConfigError } from '../errors.ts';
import type { ImageInfo } from '../plan/plan.ts';

export type Compression = ImageInfo['compression'];

/** Tells the compression of a file from its first bytes. */
export function detectCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])))
    return 'xz';
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) return 'zip';
  return 'none';
}

/** A raw disk image starts with an MBR boot signature (GPT disks carry a protective MBR too). */
export function hasPartitionTable(firstSectors: Buffer): boolean {
  if (firstSectors.length < 512) return false;
  const mbr = firstSectors[510] === 0x55 && firstSectors[511] === 0xaa;
  const gpt = firstSectors.length >= 520 && firstSectors.subarray(512, 520).toString('latin1') === 'EFI PART';
  return mbr || gpt;
}

/** Streams the decompressed bytes of an image file. */
export function openRaw(path: string, compression: Compression): Readable {
  const file = createReadStream(path, { highWaterMark: 1 << 20 });
  if (compression === 'none') return file;
  if (compression === 'gzip') return file.pipe(createGunzip());
  if (compression === 'xz') {
    // Node has no xz decoder; the xz tool (xz-utils) streams it.
    const child = spawn('xz', ['-dc'], { stdio: ['pipe', 'pipe', 'inherit'] });
    file.pipe(child.stdin);
    const out = new PassThrough();
    child.stdout.pipe(out);
    child.on('error', (err) => out.destroy(err));
    child.on('close', (code) => {
      if (code !== 0) out.destroy(new Error(`xz -dc exited with code ${code}`));
    });
    return out;
  }
  throw new Error(`${path}: a .zip is read with openZipEntry, not openRaw`);
}

/** What stage2's busybox `unzip -p` can stream: one file, stored or deflated, no zip64. */
export interface ZipImageEntry {
  name: string;
  compressedSize: number;
  uncompressedSize: number;
  crc32: number;
}

const ZIP64_EXTRA = 0x0001;
const U32_MAX = 0xffffffff;

function zipError(path: string, what: string, fix: string): ConfigError {
  return new ConfigError(`${path}: ${what}`, { file: path }, fix);
}

/**
 * Opens the single file inside a .zip image as a stream of raw bytes, after checking that
 * stage2's busybox `unzip -p` can read it the same way. Throws ConfigError otherwise.
 */
export async function openZipEntry(path: string): Promise<{ entry: ZipImageEntry; stream: Readable }> {
  const repack = 'unpack it and compress the .img with xz or gzip (`unzip -p FILE | xz -T0 > balena.img.xz`)';
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.open(path, { lazyEntries: true, autoClose: false, strictFileNames: false }, (err, z) =>
      err ? reject(zipError(path, `is not a readable .zip: ${err.message}`, repack)) : resolve(z),
    ),
  );
  const entries: yauzl.Entry[] = [];
  await new Promise<void>((resolve, reject) => {
    zip.on('entry', (e: yauzl.Entry) => {
      entries.push(e);
      zip.readEntry();
    });
    zip.on('end', () => resolve());
    zip.on('error', (err: Error) => reject(zipError(path, `is not a readable .zip: ${err.message}`, repack)));
    zip.readEntry();
  });
  const files = entries.filter((e) => !e.fileName.endsWith('/'));
  const close = () => zip.close();
  if (files.length !== 1) {
    close();
    throw zipError(
      path,
      `holds ${files.length} files (${files
        .slice(0, 5)
        .map((e) => e.fileName)
        .join(', ')}); a balenaOS .zip holds exactly one, the disk image`,
      'download the image again, or unpack the .img and point `image` at it',
    );
  }
  const e = files[0]!;
  const zip64 =
    e.extraFields.some((f) => f.id === ZIP64_EXTRA) ||
    e.compressedSize >= U32_MAX ||
    e.uncompressedSize >= U32_MAX ||
    e.relativeOffsetOfLocalHeader >= U32_MAX;
  const problem = e.isEncrypted()
    ? 'is encrypted'
    : e.compressionMethod !== 0 && e.compressionMethod !== 8
      ? `uses compression method ${e.compressionMethod}; stage2's unzip reads only stored and deflated files`
      : zip64
        ? "uses zip64 (a file of 4 GiB or more), which stage2's busybox unzip cannot read"
        : null;
  if (problem) {
    close();
    throw zipError(path, `${e.fileName} ${problem}`, repack);
  }
  const stream = await new Promise<Readable>((resolve, reject) =>
    zip.openReadStream(e, (err, s) => (err ? reject(err) : resolve(s))),
  );
  stream.on('close', close);
  stream.on('error', close);
  return {
    entry: {
      name: e.fileName,
      compressedSize: e.compressedSize,
      uncompressedSize: e.uncompressedSize,
      crc32: e.crc32,
    },
    stream,
  };
}

const execFileAsync = promisify(execFile);

/** The memory the xz decoder needs for FILE (its dictionary), from `xz --robot --list -vv`. */
export async function xzDecoderMemory(path: string): Promise<number> {
  const { stdout } = await execFileAsync('xz', ['--robot', '--list', '-vv', path]);
  const summary = stdout.split('\n').find((l) => l.startsWith('summary\t'));
  const bytes = Number(summary?.split('\t')[1]);
  if (!Number.isSafeInteger(bytes) || bytes <= 0)
    throw new Error(`xz --list gave no memory figure for ${path}`);
  return bytes;
}

/** Streams the whole image once and returns its measurements. */
export async function inspectImage(path: string): Promise<ImageInfo> {
  const st = await stat(path).catch(() => null);
  if (!st?.isFile()) {
    throw new ConfigError(`image not found: ${path}`, { file: path }, 'check the `image` setting or --image');
  }
  const head = Buffer.alloc(8);
  const fh = await open(path, 'r');
  try {
    await fh.read(head, 0, 8, 0);
  } finally {
    await fh.close();
  }
  const compression = detectCompression(head);

  const fileHash = createHash('sha256');
  const fileHashing = pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), async (src) => {
    for await (const chunk of src) fileHash.update(chunk as Buffer);
  });

  const rawHash = createHash('sha256');
  let rawSize = 0;
  let rawCrc = 0;
  let first = Buffer.alloc(0);
  const zip = compression === 'zip' ? await openZipEntry(path) : null;
  await pipeline(
    zip ? zip.stream : openRaw(path, compression),
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        if (first.length < 1024) first = Buffer.concat([first, chunk.subarray(0, 1024 - first.length)]);
        rawHash.update(chunk);
        if (zip) rawCrc = crc32(chunk, rawCrc);
        rawSize += chunk.length;
        cb();
      },
    }),
  ).catch((err: unknown) => {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(
      `${path} does not decompress (${compression}): ${(err as Error).message}`,
      { file: path },
      'download the balenaOS image again: the file is damaged or truncated',
    );
  });
  await fileHashing;
  if (zip && (rawCrc >>> 0 !== zip.entry.crc32 >>> 0 || rawSize !== zip.entry.uncompressedSize)) {
    throw new ConfigError(
      `${path} is damaged: ${zip.entry.name} does not match the size and CRC its archive records`,
      { file: path },
      'download the balenaOS image again',
    );
  }
  const decoderMemoryBytes = compression === 'xz' ? await xzDecoderMemory(path) : undefined;

  if (!hasPartitionTable(first)) {
    throw new ConfigError(
      `${path} is not a disk image: no partition table after decompression (${compression})`,
      { file: path },
      'point `image` at a balenaOS image: the .img, .img.gz, .img.xz or .zip from the balena dashboard',
    );
  }
  return {
    path,
    compression,
    fileSizeBytes: st.size,
    fileSha256: fileHash.digest('hex'),
    rawSizeBytes: rawSize,
    rawSha256: rawHash.digest('hex'),
    ...(decoderMemoryBytes !== undefined ? { decoderMemoryBytes } : {}),
  };
}
