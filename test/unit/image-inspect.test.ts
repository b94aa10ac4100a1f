import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../orchestrator/errors.ts';
import { inspectImage } from '../../orchestrator/phases/image.ts';
import { makeZip } from '../helpers/zip.ts';

// The laptop measures the image by streaming it in the format its content says, the way
// stage2's busybox will read it, and refuses what stage2 could not write before any upload.

const dir = mkdtempSync(join(tmpdir(), 'image-inspect-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A 3 MiB disk image: an MBR with one partition, then some noise and zeros. */
function diskImage(): Buffer {
  const img = Buffer.alloc(3 * 1024 * 1024);
  img[446 + 4] = 0x0e;
  img.writeUInt32LE(2048, 446 + 8);
  img.writeUInt32LE(4096, 446 + 12);
  img[510] = 0x55;
  img[511] = 0xaa;
  for (let i = 1024 * 1024; i < 1024 * 1024 + 65536; i += 4) img.writeUInt32LE((i * 2654435761) >>> 0, i);
  return img;
}
const image = diskImage();

function file(name: string, data: Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}

const xz = (data: Buffer) => spawnSync('xz', ['-c', '-6'], { input: data }).stdout as Buffer;

async function refusal(path: string): Promise<ConfigError> {
  const err = await inspectImage(path).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return err as ConfigError;
}

describe('measuring the balenaOS image on the laptop', () => {
  it('tells raw, gzip, xz and zip apart by content and measures the same disk inside each', async () => {
    const variants = {
      'raw.img': { data: image, compression: 'none' },
      'gzipped.img.gz': { data: gzipSync(image), compression: 'gzip' },
      'packed.img.xz': { data: xz(image), compression: 'xz' },
      'dashboard.zip': { data: makeZip([{ name: 'balena.img', data: image }]), compression: 'zip' },
      'stored.zip': { data: makeZip([{ name: 'balena.img', data: image, method: 0 }]), compression: 'zip' },
      'streamed.zip': {
        data: makeZip([{ name: 'balena.img', data: image, dataDescriptor: true }]),
        compression: 'zip',
      },
      // names lie; content decides
      'misnamed.img': { data: gzipSync(image), compression: 'gzip' },
      'misnamed.img.gz': { data: xz(image), compression: 'xz' },
    } as const;
    for (const [name, v] of Object.entries(variants)) {
      const info = await inspectImage(file(name, v.data));
      expect(info.compression, name).toBe(v.compression);
      expect(info.fileSizeBytes, name).toBe(v.data.length);
      expect(info.fileSha256, name).toBe(sha256(v.data));
      expect(info.rawSizeBytes, name).toBe(image.length);
      expect(info.rawSha256, name).toBe(sha256(image));
    }
  });

  it('learns how much RAM the xz decoder needs from the file, and nothing for the other formats', async () => {
    const info = await inspectImage(file('mem.img.xz', xz(image)));
    // xz -6 uses an 8 MiB dictionary
    expect(info.decoderMemoryBytes).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    expect((await inspectImage(file('mem.img.gz', gzipSync(image)))).decoderMemoryBytes).toBeUndefined();
  });

  it('refuses a file that holds no disk image after decompression', async () => {
    const notDisk = Buffer.from('this is a README, not a disk image\n'.repeat(100));
    for (const [name, data] of [
      ['readme.img', notDisk],
      ['readme.img.gz', gzipSync(notDisk)],
      ['readme.zip', makeZip([{ name: 'README.txt', data: notDisk }])],
    ] as const) {
      const err = await refusal(file(name, data));
      expect(err.message).toMatch(/is not a disk image: no partition table after decompression/);
      expect(err.hint).toMatch(/\.img, \.img\.gz, \.img\.xz or \.zip/);
    }
  });

  it('refuses a truncated gzip image instead of measuring half a disk', async () => {
    const gz = gzipSync(image);
    const err = await refusal(file('cut.img.gz', gz.subarray(0, gz.length - 100)));
    expect(err.message).toMatch(/does not decompress \(gzip\)/);
  });

  it("refuses the .zip files stage2's busybox unzip could not stream: several files, zip64, encryption, other methods, damage", async () => {
    const cases: [string, Buffer, RegExp][] = [
      [
        'two.zip',
        makeZip([
          { name: 'balena.img', data: image },
          { name: 'README', data: Buffer.from('hi') },
        ]),
        /holds 2 files \(balena.img, README\); a balenaOS .zip holds exactly one/,
      ],
      ['z64.zip', makeZip([{ name: 'balena.img', data: image, zip64: true }]), /balena.img uses zip64/],
      [
        'locked.zip',
        makeZip([{ name: 'balena.img', data: image, encryptedFlag: true }]),
        /balena.img is encrypted/,
      ],
      [
        'bzip2.zip',
        makeZip([{ name: 'balena.img', data: image, method: 12 }]),
        /balena.img uses compression method 12/,
      ],
    ];
    for (const [name, data, says] of cases) {
      const err = await refusal(file(name, data));
      expect(err.message, name).toMatch(says);
    }
    // one flipped byte in the stored data: the CRC the archive records catches it
    const damaged = makeZip([{ name: 'balena.img', data: image, method: 0 }]);
    damaged[100_000] = damaged[100_000]! ^ 0xff;
    expect((await refusal(file('damaged.zip', damaged))).message).toMatch(
      /is damaged: balena.img does not match/,
    );
  });

  it('streams: nothing is written next to the image', async () => {
    const sub = mkdtempSync(join(dir, 'quiet-'));
    const path = join(sub, 'balena.zip');
    writeFileSync(path, makeZip([{ name: 'balena.img', data: image }]));
    await inspectImage(path);
    expect(readdirSync(sub)).toEqual(['balena.zip']);
  });
});
