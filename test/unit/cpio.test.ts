import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { type CpioEntry, normalizeCpioPath, writeCpio, writeCpioGz } from '../../stage2/build/cpio.ts';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'cpio-test-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const binary = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7) % 256));
const entries: CpioEntry[] = [
  { type: 'dir', path: '/bin' },
  { type: 'file', path: '/init', data: '#!/bin/sh\necho hi\n', mode: 0o755 },
  { type: 'file', path: 'bin/busybox', data: binary, mode: 0o755 },
  { type: 'symlink', path: 'bin/sh', target: 'busybox' },
  { type: 'file', path: 'etc/secret', data: 'x', mode: 0o600 },
  { type: 'file', path: 'etc/empty', data: '' },
  { type: 'file', path: 'lib/modules/6.1.0-test/kernel/fs/fat/vfat.ko', data: 'not really elf' },
  { type: 'char', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
  { type: 'dir', path: 'tmp', mode: 0o1777 },
];

function cpio(args: string[], input: Buffer, cwd?: string): string {
  return execFileSync('cpio', args, { input, cwd, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

describe('the newc cpio writer', () => {
  it('writes an archive GNU cpio lists with every member, parents before children', () => {
    const listed = cpio(['-t', '--quiet'], writeCpio(entries)).trim().split('\n');
    expect(listed).toEqual([
      'bin',
      'init',
      'bin/busybox',
      'bin/sh',
      'etc',
      'etc/secret',
      'etc/empty',
      'lib',
      'lib/modules',
      'lib/modules/6.1.0-test',
      'lib/modules/6.1.0-test/kernel',
      'lib/modules/6.1.0-test/kernel/fs',
      'lib/modules/6.1.0-test/kernel/fs/fat',
      'lib/modules/6.1.0-test/kernel/fs/fat/vfat.ko',
      'dev',
      'dev/console',
      'tmp',
    ]);
  });

  it('extracts with cpio -idm to the same contents, modes, symlinks and device nodes', () => {
    const out = tempDir();
    cpio(['-idm', '--quiet', '--no-absolute-filenames'], writeCpio(entries, { mtime: 1_700_000_000 }), out);
    expect(readFileSync(join(out, 'init'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect(readFileSync(join(out, 'bin/busybox')).equals(binary)).toBe(true);
    expect(readFileSync(join(out, 'etc/empty')).length).toBe(0);
    expect(lstatSync(join(out, 'init')).mode & 0o7777).toBe(0o755);
    expect(lstatSync(join(out, 'etc/secret')).mode & 0o7777).toBe(0o600);
    expect(lstatSync(join(out, 'etc/empty')).mode & 0o7777).toBe(0o644);
    expect(lstatSync(join(out, 'bin/sh')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(out, 'bin/sh'))).toBe('busybox');
    expect(lstatSync(join(out, 'lib/modules')).isDirectory()).toBe(true);
    expect(lstatSync(join(out, 'init')).mtimeMs).toBe(1_700_000_000_000);
    const console = lstatSync(join(out, 'dev/console'));
    expect(console.isCharacterDevice()).toBe(true);
    expect([Math.floor(console.rdev / 256) & 0xfff, console.rdev & 0xff]).toEqual([5, 1]);
    // cpio -idm honours the umask for directories; the sticky bit of tmp must still be there
    expect(lstatSync(join(out, 'tmp')).mode & 0o1000).toBe(0o1000);
  });

  it('shows the same modes in a verbose listing as it was given', () => {
    const lines = cpio(['-tv', '--quiet'], writeCpio(entries)).trim().split('\n');
    const modeOf = (name: string) =>
      lines.find((l) => l.endsWith(` ${name}`) || l.includes(` ${name} -> `))?.split(' ')[0];
    expect(modeOf('init')).toBe('-rwxr-xr-x');
    expect(modeOf('etc/secret')).toBe('-rw-------');
    expect(modeOf('bin/sh')).toBe('lrwxrwxrwx');
    expect(modeOf('dev/console')).toBe('crw-------');
    expect(modeOf('tmp')).toBe('drwxrwxrwt');
  });

  it('pads every record to four bytes and ends with the TRAILER!!! record', () => {
    const archive = writeCpio([{ type: 'file', path: 'a', data: 'abc' }]);
    expect(archive.length % 4).toBe(0);
    expect(archive.subarray(0, 6).toString()).toBe('070701');
    expect(archive.includes(Buffer.from('TRAILER!!!\0'))).toBe(true);
    expect(archive.subarray(archive.lastIndexOf('070701')).toString()).toMatch(/^070701.{104}TRAILER!!!\0/);
  });

  it('gzips to exactly the uncompressed archive', () => {
    expect(gunzipSync(writeCpioGz(entries)).equals(writeCpio(entries))).toBe(true);
  });

  it('produces the same bytes for the same entries, so builds are reproducible', () => {
    expect(writeCpioGz(entries).equals(writeCpioGz(entries))).toBe(true);
  });

  it('refuses paths with "..", empty paths and members given twice', () => {
    expect(() => writeCpio([{ type: 'file', path: 'a/../../etc/passwd', data: '' }])).toThrow(/\.\./);
    expect(() => writeCpio([{ type: 'dir', path: '/' }])).toThrow(/empty path/);
    expect(() =>
      writeCpio([
        { type: 'file', path: 'a', data: '' },
        { type: 'file', path: '/a', data: '' },
      ]),
    ).toThrow(/twice/);
  });

  it('normalizes leading slashes and "." parts away', () => {
    expect(normalizeCpioPath('/./bin//sh')).toBe('bin/sh');
  });
});
