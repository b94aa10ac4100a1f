// Inputs shared by every host of a run, measured once: the image (streamed and hashed),
// config.json, busybox, and a supplied kernel. Hosts with per-host overrides get their own
// entries; nothing is measured twice.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { ConfigError } from '../errors.ts';
import type { ImageInfo, LocalFile } from '../plan/plan.ts';
import { readImageDeviceType } from '../platform/image-device-type.ts';
import { inspectImage } from './image.ts';

export async function hashFile(path: string): Promise<LocalFile> {
  const st = await stat(path).catch(() => null);
  if (!st?.isFile()) throw new ConfigError(`file not found: ${path}`, { file: path });
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return { path, sizeBytes: st.size, sha256: hash.digest('hex') };
}

export class RunResources {
  private images = new Map<string, Promise<ImageInfo>>();
  private files = new Map<string, Promise<LocalFile>>();
  private buffers = new Map<string, Promise<Buffer>>();
  private deviceTypes = new Map<string, Promise<string | null>>();

  /** An image measured elsewhere (agent mode measures each download as it verifies it). */
  adoptImage(info: ImageInfo): void {
    this.images.set(info.path, Promise.resolve(info));
  }

  image(path: string): Promise<ImageInfo> {
    let p = this.images.get(path);
    if (!p) {
      p = inspectImage(path);
      this.images.set(path, p);
    }
    return p;
  }

  /** The device type the image is for (device-type.json on its boot partition), null when it has none. */
  imageDeviceType(path: string): Promise<string | null> {
    const key = `image:${path}`;
    let p = this.deviceTypes.get(key);
    if (!p) {
      p = this.image(path)
        .then((info) => readImageDeviceType(info))
        .then(
          (found) => found.slug,
          (err: Error) => {
            if (err instanceof ConfigError) throw err;
            throw new ConfigError(
              `${path}: its device type cannot be read: ${err.message}`,
              { file: path },
              'download the balenaOS image again',
            );
          },
        );
      this.deviceTypes.set(key, p);
    }
    return p;
  }

  /** config.json's `deviceType` (not a secret, unlike the rest of it), null when it has none. */
  configDeviceType(path: string): Promise<string | null> {
    const key = `config:${path}`;
    let p = this.deviceTypes.get(key);
    if (!p) {
      p = this.configJson(path).then(async () => {
        const value = JSON.parse(await readFile(path, 'utf8')) as { deviceType?: unknown };
        return typeof value.deviceType === 'string' ? value.deviceType : null;
      });
      this.deviceTypes.set(key, p);
    }
    return p;
  }

  /** config.json must be a JSON object; its content is a secret and never logged. */
  configJson(path: string): Promise<LocalFile> {
    let p = this.files.get(path);
    if (!p) {
      p = (async () => {
        const text = await readFile(path, 'utf8').catch(() => {
          throw new ConfigError(
            `config.json not found: ${path}`,
            { file: path },
            'check `configJson` or --config-json',
          );
        });
        try {
          const value = JSON.parse(text);
          if (typeof value !== 'object' || value === null || Array.isArray(value))
            throw new Error('not an object');
        } catch {
          throw new ConfigError(`${path} is not a JSON object`, { file: path }, 'download config.json again');
        }
        return hashFile(path);
      })();
      this.files.set(path, p);
    }
    return p;
  }

  file(path: string): Promise<LocalFile> {
    let p = this.files.get(path);
    if (!p) {
      p = hashFile(path);
      this.files.set(path, p);
    }
    return p;
  }

  bytes(path: string, what: string): Promise<Buffer> {
    let p = this.buffers.get(path);
    if (!p) {
      p = readFile(path).catch(() => {
        throw new ConfigError(`${what} not found: ${path}`, { file: path });
      });
      this.buffers.set(path, p);
    }
    return p;
  }
}
