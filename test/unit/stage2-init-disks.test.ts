import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runInitShell } from '../fixtures/stage2/init-shell.ts';

// The init has no blkid: it reads labels, UUIDs and PARTUUIDs from the disk structures itself.
// These tests run those readers on real filesystem and disk images and compare with blkid/sfdisk.

const dir = mkdtempSync(join(tmpdir(), 'stage2-disks-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = (cmd: string, args: string[], input?: string) =>
  execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
const blkid = (file: string, tag: string) => run('blkid', ['-p', '-s', tag, '-o', 'value', file]).trim();
const initSays = (fn: string, ...args: string[]) => {
  const r = runInitShell(`${fn} "$@"`, args);
  return r.status === 0 ? r.stdout.trim() : `(status ${r.status})`;
};

describe('the init script reading disks without blkid', () => {
  it('reads type, label and UUID of an ext4 filesystem as blkid does', () => {
    const f = join(dir, 'root.ext4');
    run('mkfs.ext4', ['-q', '-L', 'host-root', f, '8M']);
    expect(initSays('fs_type', f)).toBe('ext4');
    expect(initSays('fs_label', f)).toBe('host-root');
    expect(initSays('fs_uuid', f)).toBe(blkid(f, 'UUID'));
  });

  it('reads type, label and UUID of FAT16 and FAT32 filesystems as blkid does', () => {
    for (const [bits, label] of [
      ['16', 'resin-boot'],
      ['32', 'BIGBOOT'],
    ] as const) {
      const f = join(dir, `boot${bits}.vfat`);
      run('mkfs.vfat', ['-C', '-F', bits, '-n', label, f, bits === '32' ? '40000' : '16384']);
      expect(initSays('fs_type', f)).toBe('vfat');
      expect(initSays('fs_label', f)).toBe(label);
      expect(initSays('fs_uuid', f)).toBe(blkid(f, 'UUID'));
    }
  });

  it('says nothing is there for a disk of zeros', () => {
    const f = join(dir, 'zeros.img');
    run('truncate', ['-s', '2M', f]);
    expect(initSays('fs_type', f)).toBe('(status 1)');
    expect(initSays('fs_label', f)).toBe('(status 1)');
  });

  it('computes the PARTUUID of an MBR partition from the disk signature', () => {
    const f = join(dir, 'mbr.img');
    run('truncate', ['-s', '8M', f]);
    run('sfdisk', ['-q', f], 'label: dos\nlabel-id: 0x9d40c85f\nsize=2M, type=83\nsize=2M, type=c\n');
    expect(initSays('partuuid_at', f, '2')).toBe('9d40c85f-02');
  });

  it('reads the PARTUUID of a GPT partition from the partition entry', () => {
    const f = join(dir, 'gpt.img');
    run('truncate', ['-s', '8M', f]);
    run('sfdisk', ['-q', f], 'label: gpt\nsize=2M, type=L\nsize=2M, type=U\n');
    const want = run('sfdisk', ['--part-uuid', f, '2']).trim().toLowerCase();
    expect(want).toMatch(/^[0-9a-f-]{36}$/);
    expect(initSays('partuuid_at', f, '2')).toBe(want);
  });

  it('accepts only plain relative paths for cleanup and the work dir', () => {
    const verdict = (p: string) => runInitShell('is_relpath "$1"', [p]).status === 0;
    expect(['boot/balena-migrate', 'balena-stage2.yml', 'a/b.c/d-e_f'].every(verdict)).toBe(true);
    for (const bad of ['', '/etc', '../x', 'a/../b', 'a/./b', 'a//b', 'a/', '.', '..'])
      expect(verdict(bad), bad).toBe(false);
  });

  it('formats byte counts for people in MiB', () => {
    expect(initSays('mib', String(3 * 1048576 + 524288))).toBe('3.5 MiB');
  });
});
