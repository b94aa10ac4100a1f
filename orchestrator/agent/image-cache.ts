// balenaOS images downloaded from the backend, kept on the operator's machine, one file per
// device type and version: CACHEDIR/<device type>/<version>/balena-<type>-<version>.img.gz.
// A download goes to a .part file and continues from where it stopped (a Range request)
// after a dropped or stalled link, in this run or the next. A finished file is verified before
// it is used (complete length, gzip decodes to the end, a partition table inside) and its
// sha256 is kept beside it, so a later run notices a cached file that changed on disk.
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inspectImage } from '../phases/image.ts';
import type { ImageInfo } from '../plan/plan.ts';
import { BackendError, type ImageStream } from './backend.ts';

export interface ImageSource {
  readonly apiUrl: string;
  openImage(deviceType: string, version: string, fromByte: number): Promise<ImageStream>;
}

export interface CachedImage {
  deviceType: string;
  version: string;
  path: string;
  info: ImageInfo;
  /** false when the file was already in the cache */
  downloaded: boolean;
  /** byte offsets that downloads continued from (Range requests), in order */
  resumedFrom: number[];
}

export interface EnsureImageOptions {
  source: ImageSource;
  cacheDir: string;
  deviceType: string;
  version: string;
  /** tries, counting the first; each continues the .part file (default 4) */
  attempts?: number;
  /** a download that delivers nothing for this long is treated as cut (default 60 s) */
  stallMs?: number;
  onProgress?: (doneBytes: number, totalBytes: number | undefined) => void;
  log?: (message: string) => void;
}

/** What the cache keeps beside a finished image. */
interface ImageStamp {
  deviceType: string;
  version: string;
  fileSizeBytes: number;
  fileSha256: string;
  rawSha256: string;
  downloadedAt: string;
}

/** What the cache keeps beside a partial download, so a resume asks for the same file. */
interface PartStamp {
  deviceType: string;
  version: string;
  totalBytes: number | null;
}

/** Version strings hold `+`; keep the cache path to a portable character set. */
function safeName(text: string): string {
  return text.replace(/[^A-Za-z0-9._+-]/g, '_').replace(/^\.*$/, (dots) => `_${dots}`);
}

export function cachedImagePath(cacheDir: string, deviceType: string, version: string): string {
  const dir = join(cacheDir, safeName(deviceType), safeName(version));
  return join(dir, `balena-${safeName(deviceType)}-${safeName(version)}.img.gz`);
}

/** The cached image for this device type and version: reused if intact, else downloaded. */
export async function ensureImage(opts: EnsureImageOptions): Promise<CachedImage> {
  const { cacheDir, deviceType, version } = opts;
  const log = opts.log ?? (() => {});
  const path = cachedImagePath(cacheDir, deviceType, version);
  const stampPath = `${path}.sha256.json`;
  const partPath = `${path}.part`;
  const partStampPath = `${partPath}.json`;
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });

  if (existsSync(path)) {
    const stamp = readJson<ImageStamp>(stampPath);
    const info = await inspectImage(path).catch(() => null);
    if (info && stamp && stamp.fileSha256 === info.fileSha256 && stamp.fileSizeBytes === info.fileSizeBytes) {
      log(`balenaOS ${version} for ${deviceType}: using the cached image ${path}`);
      return { deviceType, version, path, info, downloaded: false, resumedFrom: [] };
    }
    log(
      `balenaOS ${version} for ${deviceType}: the cached image changed since it was downloaded; downloading it again`,
    );
    rmSync(path, { force: true });
    rmSync(stampPath, { force: true });
  }

  const attempts = opts.attempts ?? 4;
  const resumedFrom: number[] = [];
  let lastError = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    let have = existsSync(partPath) ? statSync(partPath).size : 0;
    const partStamp = readJson<PartStamp>(partStampPath);
    if (have > 0 && (partStamp?.deviceType !== deviceType || partStamp.version !== version)) {
      rmSync(partPath, { force: true });
      have = 0;
    }
    let image: ImageStream;
    try {
      image = await opts.source.openImage(deviceType, version, have);
    } catch (err) {
      if (err instanceof BackendError && err.statusCode === 416) {
        // The partial file is as long as the image or longer: it cannot be continued.
        rmSync(partPath, { force: true });
        lastError = 'the backend refused to continue the partial download';
        continue;
      }
      throw err;
    }
    let from = have;
    if (have > 0 && image.status !== 206) {
      log(`the backend sent the whole image instead of the rest: starting over`);
      from = 0;
    } else if (have > 0) {
      if (
        partStamp?.totalBytes != null &&
        image.totalBytes !== undefined &&
        image.totalBytes !== partStamp.totalBytes
      ) {
        // The file behind the URL changed: what we have belongs to another file.
        image.stream.destroy();
        rmSync(partPath, { force: true });
        lastError = 'the image on the backend changed during the download';
        continue;
      }
      resumedFrom.push(have);
      log(`continuing the download of balenaOS ${version} for ${deviceType} from byte ${have}`);
    }
    const total = image.totalBytes ?? partStamp?.totalBytes ?? undefined;
    writeJson(partStampPath, { deviceType, version, totalBytes: total ?? null } satisfies PartStamp);
    let streamError = '';
    try {
      await appendStream(image.stream, partPath, from, opts.stallMs ?? 60_000, (n) =>
        opts.onProgress?.(n, total),
      );
    } catch (err) {
      streamError = (err as Error).message;
    }
    const size = statSync(partPath).size;
    if (total !== undefined && size > total) {
      rmSync(partPath, { force: true });
      lastError = `the partial download is longer than the image (${size} > ${total} bytes)`;
      continue;
    }
    if (total === undefined ? streamError !== '' : size < total) {
      lastError = `stopped at ${size} of ${total ?? '?'} bytes${streamError ? ` (${streamError})` : ''}`;
      log(`the download of balenaOS ${version} for ${deviceType} ${lastError}`);
      continue;
    }
    // Complete: verify before it may be used.
    const info = await inspectImage(partPath).catch((err: Error) => {
      rmSync(partPath, { force: true });
      rmSync(partStampPath, { force: true });
      throw new BackendError(
        `the downloaded balenaOS ${version} image for ${deviceType} is damaged: ${err.message}`,
        { file: opts.source.apiUrl },
        'run again to download it anew',
      );
    });
    renameSync(partPath, path);
    rmSync(partStampPath, { force: true });
    writeJson(stampPath, {
      deviceType,
      version,
      fileSizeBytes: info.fileSizeBytes,
      fileSha256: info.fileSha256,
      rawSha256: info.rawSha256,
      downloadedAt: new Date().toISOString(),
    } satisfies ImageStamp);
    log(
      `balenaOS ${version} for ${deviceType}: downloaded and verified (${info.fileSizeBytes} bytes, sha256 ${info.fileSha256})`,
    );
    return { deviceType, version, path, info: { ...info, path }, downloaded: true, resumedFrom };
  }
  throw new BackendError(
    `the download of balenaOS ${version} for ${deviceType} did not complete after ${attempts} tries: ${lastError}`,
    { file: opts.source.apiUrl },
    `run again to continue it (the partial file ${partPath} is kept), or check the network`,
  );
}

/**
 * Writes the stream to `path` from byte `from` (truncating anything after it). A stream that
 * delivers nothing for `stallMs` is destroyed: the SDK's stream neither ends nor fails when
 * the connection under a response with a Content-Length drops.
 */
async function appendStream(
  stream: Readable,
  path: string,
  from: number,
  stallMs: number,
  onBytes: (doneBytes: number) => void,
): Promise<void> {
  let done = from;
  let timer: NodeJS.Timeout | undefined;
  const watchdog = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      arm();
      done += chunk.length;
      onBytes(done);
      cb(null, chunk);
    },
    flush(cb) {
      clearTimeout(timer);
      cb();
    },
  });
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const err = new Error(
        `no data for ${stallMs >= 1000 ? `${Math.round(stallMs / 1000)} s` : `${stallMs} ms`}`,
      );
      stream.destroy(err);
      watchdog.destroy(err);
    }, stallMs);
  };
  arm();
  // The SDK reports transport errors as 'error' events on its stream; pipeline sees them.
  const out = createWriteStream(path, from > 0 ? { flags: 'r+', start: from } : { flags: 'w' });
  try {
    await pipeline(stream, watchdog, out);
  } finally {
    clearTimeout(timer);
  }
}

function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
}
