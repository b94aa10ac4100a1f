// Measures the operator's balenaOS image once, by streaming it: the format (from its content,
// not its name), the size and sha256 of the file as uploaded and of the raw disk inside, and
// whether the raw bytes start with a partition table. Nothing is ever expanded on disk.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { PassThrough, type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
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
  throw new ConfigError(
    `${path}: .zip images are not supported yet`,
    { file: path },
    'unzip it and point `image` at the .img inside (or gzip it)',
  );
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
  let first = Buffer.alloc(0);
  await pipeline(
    openRaw(path, compression),
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        if (first.length < 1024) first = Buffer.concat([first, chunk.subarray(0, 1024 - first.length)]);
        rawHash.update(chunk);
        rawSize += chunk.length;
        cb();
      },
    }),
  );
  await fileHashing;

  if (!hasPartitionTable(first)) {
    throw new ConfigError(
      `${path} is not a disk image: no partition table after decompression (${compression})`,
      { file: path },
      'download the balenaOS image again (the .img, .img.gz or .img.xz from the dashboard)',
    );
  }
  return {
    path,
    compression,
    fileSizeBytes: st.size,
    fileSha256: fileHash.digest('hex'),
    rawSizeBytes: rawSize,
    rawSha256: rawHash.digest('hex'),
  };
}
