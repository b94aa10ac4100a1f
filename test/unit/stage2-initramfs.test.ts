import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { buildInitramfs, MODULE_LOAD_LIST, STAGE2_APPLETS } from '../../stage2/build/initramfs.ts';
import { INIT_SCRIPT } from '../fixtures/stage2/init-shell.ts';
import { staticBusybox } from '../fixtures/stage2/vm.ts';

const dir = mkdtempSync(join(tmpdir(), 'stage2-initramfs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const RELEASE = '6.1.0-99-test-amd64';
const fakeKo = (name: string) =>
  Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), Buffer.from(name)]);
const compress = (tool: string, data: Buffer) => execFileSync(tool, ['-c', '-q'], { input: data });

function unpack(archive: Buffer): string {
  const out = mkdtempSync(join(dir, 'x-'));
  execFileSync('cpio', ['-idm', '--quiet', '--no-absolute-filenames'], {
    input: gunzipSync(archive),
    cwd: out,
  });
  return out;
}

const busybox = await staticBusybox();
const modules = [
  { relPath: 'kernel/drivers/virtio/virtio_ring.ko', data: fakeKo('virtio_ring') },
  { relPath: 'kernel/drivers/block/virtio_blk.ko.xz', data: compress('xz', fakeKo('virtio_blk')) },
  { relPath: 'kernel/fs/fat/fat.ko.gz', data: gzipSync(fakeKo('fat')) },
];
const archive = buildInitramfs({ busybox, modules, kernelRelease: RELEASE });

describe('the stage2 initramfs builder', () => {
  it('carries /init, busybox with its applet links, and /dev/console', () => {
    const root = unpack(archive);
    expect(readFileSync(join(root, 'init')).equals(readFileSync(INIT_SCRIPT))).toBe(true);
    expect(readFileSync(join(root, 'bin/busybox')).equals(busybox)).toBe(true);
    expect(readlinkSync(join(root, 'bin/sh'))).toBe('busybox');
    const listing = execFileSync('cpio', ['-tv', '--quiet'], {
      input: gunzipSync(archive),
      encoding: 'utf8',
    });
    expect(listing).toMatch(/^-rwxr-xr-x .* init$/m);
    expect(listing).toMatch(/^crw------- .* 5, +1 .* dev\/console$/m);
    for (const d of ['proc', 'sys', 'run', 'mnt', 'tmp'])
      expect(listing).toMatch(new RegExp(`^d.* ${d}$`, 'm'));
  });

  it('stores modules under /lib/modules/RELEASE with a load list in the given order', () => {
    const root = unpack(archive);
    const base = join(root, 'lib/modules', RELEASE);
    expect(readFileSync(join(base, MODULE_LOAD_LIST), 'utf8')).toBe(
      'kernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/block/virtio_blk.ko.xz\nkernel/fs/fat/fat.ko\n',
    );
    expect(
      readFileSync(join(base, 'kernel/drivers/virtio/virtio_ring.ko')).equals(fakeKo('virtio_ring')),
    ).toBe(true);
    // gzip is undone at build time; xz is left for busybox unxz in the init
    expect(readFileSync(join(base, 'kernel/fs/fat/fat.ko')).equals(fakeKo('fat'))).toBe(true);
    expect(
      execFileSync('xz', ['-dc', join(base, 'kernel/drivers/block/virtio_blk.ko.xz')]).equals(
        fakeKo('virtio_blk'),
      ),
    ).toBe(true);
    expect(readFileSync(join(root, 'etc/stage2-kernel-release'), 'utf8')).toBe(`${RELEASE}\n`);
  });

  it('refuses zstd modules, a dynamically linked busybox and odd release names', () => {
    // a zstd frame as `zstd` writes it starts with the magic 28 b5 2f fd
    const zst = {
      relPath: 'kernel/x.ko.zst',
      data: Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x10, 0x81, 0x00]),
    };
    expect(() => buildInitramfs({ busybox, modules: [zst], kernelRelease: RELEASE })).toThrow(
      /zstd-compressed/,
    );
    const dynamic = readFileSync('/usr/bin/cpio');
    expect(() => buildInitramfs({ busybox: dynamic, modules: [], kernelRelease: RELEASE })).toThrow(
      /dynamically linked/,
    );
    expect(() => buildInitramfs({ busybox, modules: [], kernelRelease: '6.1 ; rm' })).toThrow(
      /not a valid name/,
    );
  });

  it('links only applets this busybox has, and every applet the init checks for', () => {
    const have = new Set(execFileSync('busybox', ['--list'], { encoding: 'utf8' }).split('\n'));
    for (const a of STAGE2_APPLETS) expect(have.has(a), a).toBe(true);
    const init = readFileSync(INIT_SCRIPT, 'utf8');
    const checked = /for _a in ([^;]+); do/.exec(init)?.[1]?.replace(/\\\n/g, ' ').trim().split(/\s+/) ?? [];
    expect(checked.length).toBeGreaterThan(10);
    for (const a of checked) expect(STAGE2_APPLETS, a).toContain(a);
  });

  it('has an init script that busybox sh parses without a syntax error', () => {
    const r = spawnSync('busybox', ['sh', '-n', INIT_SCRIPT], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('builds the same bytes twice from the same input', () => {
    expect(buildInitramfs({ busybox, modules, kernelRelease: RELEASE }).equals(archive)).toBe(true);
  });
});
