import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readImageDeviceType } from '../../orchestrator/platform/image-device-type.ts';
import { deviceTypeJson, makeBootImage } from '../fixtures/balena-boot-image.ts';
import { makeZip } from '../helpers/zip.ts';

// The image says itself which device type it is for: device-type.json on its FAT boot
// partition, read with balena's partitioninfo and balena-image-fs, without mounting anything
// and, for a compressed image, without decompressing more than the boot partition needs.

const MiB = 1024 * 1024;
let dir: string;
let raw: { path: string; sizeBytes: number };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'image-device-type-'));
  raw = makeBootImage(dir, 'pi4.img', {
    deviceTypeJson: deviceTypeJson('raspberrypi4-64'),
    before: { 'kernel8.img': randomBytes(4 * MiB) },
    dataMiB: 32,
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const info = (path: string, compression: 'none' | 'gzip' | 'xz' | 'zip') => ({
  path,
  compression,
  rawSizeBytes: raw.sizeBytes,
});

describe('reading the device type out of a balenaOS image', () => {
  it('finds raspberrypi4-64 in device-type.json on the resin-boot partition of a raw image', async () => {
    expect(await readImageDeviceType(info(raw.path, 'none'))).toEqual({
      slug: 'raspberrypi4-64',
      partition: 1,
      rawBytesRead: 0,
    });
  });

  it('reads a gzip image by decompressing only the start of it, not the data partition behind', async () => {
    const gz = join(dir, 'pi4.img.gz');
    writeFileSync(gz, gzipSync(readFileSync(raw.path), { level: 1 }));
    const found = await readImageDeviceType(info(gz, 'gzip'));
    expect(found.slug).toBe('raspberrypi4-64');
    expect(found.rawBytesRead).toBeGreaterThan(4 * MiB);
    // the boot partition ends at 44 MiB; the 32 MiB of data after it were never decompressed
    expect(found.rawBytesRead).toBeLessThan(46 * MiB);
    expect(found.rawBytesRead).toBeLessThan(raw.sizeBytes / 2);
  });

  it('reads an xz image through the xz tool the same way', async () => {
    // (a small image: xz compresses random bytes slowly)
    const small = makeBootImage(dir, 'small.img', {
      deviceTypeJson: deviceTypeJson('raspberrypi3'),
      dataMiB: 4,
    });
    execFileSync('xz', ['-k', '-0', '-T1', small.path]);
    const found = await readImageDeviceType({
      path: `${small.path}.xz`,
      compression: 'xz',
      rawSizeBytes: small.sizeBytes,
    });
    expect(found).toMatchObject({ slug: 'raspberrypi3', partition: 1 });
    expect(found.rawBytesRead).toBeLessThan(small.sizeBytes - 4 * MiB);
  });

  it('reads the one disk image inside a .zip as the dashboard serves it', async () => {
    const zip = join(dir, 'pi4.zip');
    writeFileSync(zip, makeZip([{ name: 'balena.img', data: readFileSync(raw.path) }]));
    expect((await readImageDeviceType(info(zip, 'zip'))).slug).toBe('raspberrypi4-64');
  });

  it('says null for an image whose boot partition has no device-type.json', async () => {
    const bare = makeBootImage(dir, 'bare.img', { deviceTypeJson: null, dataMiB: 1 });
    expect(
      await readImageDeviceType({ path: bare.path, compression: 'none', rawSizeBytes: bare.sizeBytes }),
    ).toEqual({
      slug: null,
      partition: null,
      rawBytesRead: 0,
    });
  });

  it('refuses to decompress beyond its limit instead of inflating a whole image', async () => {
    const gz = join(dir, 'limit.img.gz');
    writeFileSync(gz, gzipSync(readFileSync(raw.path), { level: 1 }));
    await expect(readImageDeviceType(info(gz, 'gzip'), { maxBytes: 2 * MiB })).rejects.toThrow(
      /first 5 MiB decompressed, more than the 2 MiB allowed/,
    );
  });

  it('names the partition and the problem when device-type.json is not JSON', async () => {
    const broken = makeBootImage(dir, 'broken.img', { deviceTypeJson: '{ not json', dataMiB: 1 });
    await expect(
      readImageDeviceType({ path: broken.path, compression: 'none', rawSizeBytes: broken.sizeBytes }),
    ).rejects.toThrow('/device-type.json on partition 1 of the image is not JSON');
  });
});
