import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runInitShell } from '../fixtures/stage2/init-shell.ts';

// Roots on btrfs and xfs (openSUSE, Fedora, RHEL): stage2 finds the install disk by the root
// filesystem's UUID, so its own disk readers must know these two filesystems as well as blkid
// does. Real filesystems made by mkfs.btrfs and mkfs.xfs (btrfs-progs, xfsprogs).

const dir = mkdtempSync(join(tmpdir(), 'stage2-btrfs-xfs-'));
const loops: string[] = [];
afterAll(() => {
  for (const l of loops) execFileSync('losetup', ['-d', l]);
  rmSync(dir, { recursive: true, force: true });
});

const run = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
const blkid = (file: string, tag: string) => run('blkid', ['-p', '-s', tag, '-o', 'value', file]).trim();
const initSays = (script: string, ...args: string[]) => {
  const r = runInitShell(script, args);
  return r.status === 0 ? r.stdout.trim() : `(status ${r.status}) ${r.stderr}`;
};

/** A filesystem image made by the real mkfs, MiB in size. */
function makeFs(kind: 'btrfs' | 'xfs', label: string, mib: number): string {
  const f = join(dir, `${kind}.img`);
  run('truncate', ['-s', `${mib}M`, f]);
  if (kind === 'btrfs') run('mkfs.btrfs', ['-q', '-f', '-L', label, f]);
  else run('mkfs.xfs', ['-q', '-f', '-L', label, f]);
  return f;
}

const cases = [
  ['btrfs', 'opensuse-root', 128],
  ['xfs', 'rhel-root', 300],
] as const;

describe('the init script reading btrfs and xfs without blkid', () => {
  for (const [kind, label, mib] of cases) {
    it(`reads type, label and UUID of a ${kind} filesystem as blkid does`, () => {
      const f = makeFs(kind, label, mib);
      expect(blkid(f, 'TYPE')).toBe(kind);
      expect(initSays('fs_type "$1"', f)).toBe(kind);
      expect(initSays('fs_label "$1"', f)).toBe(label);
      expect(initSays('fs_uuid "$1"', f)).toBe(blkid(f, 'UUID'));
    });

    it(`finds a ${kind} block device by UUID= and LABEL=, with and without findfs`, () => {
      const f = makeFs(kind, label, mib);
      const loop = run('losetup', ['-f', '--show', f]).trim();
      loops.push(loop);
      const uuid = blkid(f, 'UUID');
      // busybox's findfs first (as in the initramfs), then the init's own readers alone
      expect(initSays('find_dev "UUID=$1"', uuid)).toBe(loop);
      expect(initSays('findfs() { return 1; }; find_dev "UUID=$1"', uuid.toUpperCase())).toBe(loop);
      expect(initSays('findfs() { return 1; }; find_dev "LABEL=$1"', label)).toBe(loop);
    });
  }
});
