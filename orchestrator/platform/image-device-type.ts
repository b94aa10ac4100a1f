// Reads which device type a balenaOS image is for, from the image itself: the device-type.json
// that balenaOS puts at the root of its boot partition (resin-boot, partition 1 on most
// boards), the file balena's own tools read. The partition table is read with balena's
// `partitioninfo`, the FAT filesystem with `balena-image-fs`; nothing is mounted.
//
// A compressed image (gzip, xz, zip) is decompressed lazily into a temporary file, only as far
// as the reads need: the boot partition is near the start of the image (4 MiB in), so reading
// device-type.json costs a few MiB of decompression, not the whole image. Reads past
// `maxBytes` (256 MiB) are refused rather than decompressing gigabytes.
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Disk, FileDisk, type ReadResult, type WriteResult, withOpenFile } from 'file-disk';
import { getPartitions } from 'partitioninfo';
import { openRaw, openZipEntry } from '../phases/image.ts';
import type { ImageInfo } from '../plan/plan.ts';

export const DEVICE_TYPE_FILE = '/device-type.json';
const DEFAULT_MAX_BYTES = 256 * 1024 * 1024;

export interface ImageDeviceType {
  /** the slug in device-type.json, null when no FAT partition of the image has the file */
  slug: string | null;
  /** the partition that holds it (1-based) */
  partition: number | null;
  /** how many raw bytes had to be read (decompressed) to find it */
  rawBytesRead: number;
}

/**
 * A read-only Disk over a decompression stream: bytes are decompressed into a scratch file up
 * to the furthest offset read so far. Reads are serialised (the stream has one position).
 */
export class StreamedImageDisk extends Disk {
  private have = 0;
  private ended = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly iterator: AsyncIterator<Buffer>;

  constructor(
    stream: Readable,
    private readonly scratch: import('node:fs/promises').FileHandle,
    private readonly rawSize: number,
    private readonly maxBytes: number,
  ) {
    super(true);
    this.iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** Raw bytes decompressed so far. */
  get decompressedBytes(): number {
    return this.have;
  }

  private async fill(upTo: number): Promise<void> {
    if (upTo > this.maxBytes) {
      throw new Error(
        `reading the image's boot partition needs its first ${Math.ceil(upTo / 1048576)} MiB decompressed, ` +
          `more than the ${this.maxBytes / 1048576} MiB allowed`,
      );
    }
    while (this.have < upTo && !this.ended) {
      const next = await this.iterator.next();
      if (next.done) {
        this.ended = true;
        break;
      }
      const chunk = next.value;
      await this.scratch.write(chunk, 0, chunk.length, this.have);
      this.have += chunk.length;
    }
  }

  protected async _getCapacity(): Promise<number> {
    return this.rawSize;
  }

  protected _read(
    buffer: Buffer,
    bufferOffset: number,
    length: number,
    fileOffset: number,
  ): Promise<ReadResult> {
    const run = this.queue.then(async () => {
      await this.fill(fileOffset + length);
      const n = Math.max(0, Math.min(length, this.have - fileOffset));
      if (n < length) buffer.fill(0, bufferOffset + n, bufferOffset + length);
      if (n > 0) await this.scratch.read(buffer, bufferOffset, n, fileOffset);
      return { bytesRead: length, buffer };
    });
    this.queue = run.catch(() => {});
    return run;
  }

  protected async _write(): Promise<WriteResult> {
    throw new Error('the image is read-only here');
  }

  protected async _flush(): Promise<void> {}

  /** Stops the decompressor. */
  async close(): Promise<void> {
    await this.iterator.return?.();
  }
}

/** MBR partition types of FAT filesystems (FAT12/16/32, LBA or not, and the EFI system partition). */
const FAT_MBR_TYPES = new Set([0x01, 0x04, 0x06, 0x0b, 0x0c, 0x0e, 0xef]);

/** Whether the partition starting at OFFSET holds a FAT filesystem, from its boot sector. */
async function isFat(disk: Disk, offset: number): Promise<boolean> {
  const sector = Buffer.alloc(512);
  await disk.read(sector, 0, 512, offset);
  if (sector[510] !== 0x55 || sector[511] !== 0xaa) return false;
  return sector.toString('latin1', 54, 58) === 'FAT1' || sector.toString('latin1', 82, 87) === 'FAT32';
}

/** Looks for device-type.json in each FAT partition of DISK, in partition order. */
export async function deviceTypeOnDisk(
  disk: Disk,
): Promise<{ slug: string | null; partition: number | null }> {
  const table = await getPartitions(disk, { includeExtended: false, getLogical: false });
  for (const p of table.partitions) {
    if (table.type === 'mbr' && !FAT_MBR_TYPES.has(p.type as number)) continue;
    if (!(await isFat(disk, p.offset))) continue;
    // loaded on first use: its ext2fs (WebAssembly) module installs process-wide error handlers
    const { interact } = await import('balena-image-fs');
    const text = await interact(disk, p.index, (fs) =>
      fs.promises.readFile(DEVICE_TYPE_FILE, { encoding: 'utf8' }).catch(() => null),
    ).catch(() => null);
    if (text === null) continue;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`${DEVICE_TYPE_FILE} on partition ${p.index} of the image is not JSON`);
    }
    const slug = (json as { slug?: unknown }).slug;
    if (typeof slug !== 'string' || !/^[a-z0-9][a-z0-9-]*$/.test(slug)) {
      throw new Error(`${DEVICE_TYPE_FILE} on partition ${p.index} of the image has no device type slug`);
    }
    return { slug, partition: p.index };
  }
  return { slug: null, partition: null };
}

/** The device type of the image at PATH (raw, gzip, xz or zip, as ImageInfo says). */
export async function readImageDeviceType(
  image: Pick<ImageInfo, 'path' | 'compression' | 'rawSizeBytes'>,
  opts: { maxBytes?: number } = {},
): Promise<ImageDeviceType> {
  if (image.compression === 'none') {
    return withOpenFile(image.path, 'r', async (handle) => {
      const found = await deviceTypeOnDisk(new FileDisk(handle, true));
      return { ...found, rawBytesRead: 0 };
    });
  }
  const scratchDir = await mkdtemp(join(tmpdir(), 'balena-migrate-image-'));
  const scratch = await open(join(scratchDir, 'head.img'), 'w+');
  let stream: Readable;
  if (image.compression === 'zip') stream = (await openZipEntry(image.path)).stream;
  else if (image.compression === 'gzip')
    stream = createReadStream(image.path, { highWaterMark: 1 << 20 }).pipe(createGunzip());
  else stream = openRaw(image.path, image.compression);
  const disk = new StreamedImageDisk(stream, scratch, image.rawSizeBytes, opts.maxBytes ?? DEFAULT_MAX_BYTES);
  try {
    const found = await deviceTypeOnDisk(disk);
    return { ...found, rawBytesRead: disk.decompressedBytes };
  } finally {
    await disk.close().catch(() => {});
    stream.destroy();
    await scratch.close();
    await rm(scratchDir, { recursive: true, force: true });
  }
}
