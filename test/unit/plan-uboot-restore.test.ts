import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  copySysroot,
  type HostCopy,
  runScript,
  stage2Restore,
  treeDigest,
  writeScripts,
} from '../fixtures/sysroot-apply.ts';
import { plan, SYSROOTS, sysrootInput, WORK_DIR } from '../fixtures/sysroot-plans.ts';

// The BeagleBone boot setup, run for real on a copy of the Debian eMMC fixture: apply.sh puts
// /uEnv.txt and stage2's files on the root partition; stage2's own restore (from stage2/init)
// and undo.sh must each leave the partition as it was.

const MiB = 1024 * 1024;
const fixture = 'bbb-debian11-emmc';
let host: HostCopy | undefined;
afterEach(() => {
  host?.cleanup();
  host = undefined;
});

/** Every file and directory of a tree, without the work dir the test itself made. */
function partition(root: string): Record<string, string> {
  return Object.fromEntries(Object.entries(treeDigest(root)).filter(([k]) => !k.startsWith('var/')));
}

function applied() {
  const p = plan(
    sysrootInput(fixture, 'beaglebone-black', (i) => {
      i.image.fileSizeBytes = 150 * MiB;
    }),
  );
  host = copySysroot(fixture, WORK_DIR);
  const work = writeScripts(p, host.root);
  const run = runScript(work, 'apply.sh', ['--foreground']);
  expect([run.status, run.state]).toEqual([0, 'committed']);
  return { root: host.root, work };
}

describe('BeagleBone Black: /uEnv.txt, then stage2 takes it away', () => {
  it('applies: uEnv.txt, the kernel, device tree and initramfs in /balena-migrate, balena-stage2.yml at the root', () => {
    const { root } = applied();
    expect(readFileSync(join(root, 'uEnv.txt'), 'utf8')).toMatch(/^uenvcmd=load mmc/m);
    for (const f of ['vmlinuz', 'am335x-boneblack.dtb', 'initramfs.gz']) {
      expect(existsSync(join(root, 'balena-migrate', f))).toBe(true);
    }
    expect(existsSync(join(root, 'balena-stage2.yml'))).toBe(true);
    expect(readFileSync(join(root, 'boot/uEnv.txt'))).toEqual(
      readFileSync(join(SYSROOTS, fixture, 'boot/uEnv.txt')),
    );
  });

  it("stage2's restore removes /uEnv.txt first, so u-boot boots Debian again", () => {
    const { root } = applied();
    const r = stage2Restore(root);
    expect(r.stdout).toContain('restore=0');
    expect(r.stdout).toContain('restore: removed uEnv.txt (there was none before the migration)');
    expect(existsSync(join(root, 'uEnv.txt'))).toBe(false);
  });

  it('undo.sh leaves the root partition as it was, byte for byte', () => {
    const { root, work } = applied();
    expect(runScript(work, 'undo.sh').state).toBe('undone');
    expect(partition(root)).toEqual(partition(join(SYSROOTS, fixture)));
  });

  it('undo.sh after stage2 came back to Debian also leaves it as it was', () => {
    const { root, work } = applied();
    stage2Restore(root);
    expect(runScript(work, 'undo.sh').state).toBe('undone');
    expect(partition(root)).toEqual(partition(join(SYSROOTS, fixture)));
  });
});
