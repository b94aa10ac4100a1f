import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkStage2Config, parseStage2Config } from '../../stage2/build/stage2-config.ts';
import { runInitShell } from '../fixtures/stage2/init-shell.ts';
import {
  copySysroot,
  type HostCopy,
  runScript,
  stage2Restore,
  treeDigest,
  writeScripts,
} from '../fixtures/sysroot-apply.ts';
import { plan, SYSROOTS, sysrootInput, WORK_DIR } from '../fixtures/sysroot-plans.ts';

// The Raspberry Pi boot setup, run for real: apply.sh (rendered from the plan, every path moved
// into a copy of the fixture) changes the boot partition; then the first thing stage2 does,
// the restore from stage2/init itself, must leave the boot files byte for byte as they were.
// And undo.sh, the way back when the setup fails, must do the same.

const TS = '20261126T041500Z';
let host: HostCopy | undefined;
afterEach(() => {
  host?.cleanup();
  host = undefined;
});

function applied(fixture: string, deviceType: string) {
  const p = plan(sysrootInput(fixture, deviceType));
  host = copySysroot(fixture, WORK_DIR);
  const work = writeScripts(p, host.root);
  const run = runScript(work, 'apply.sh', ['--foreground']);
  expect(run.output).not.toMatch(/failed/);
  expect([run.status, run.state]).toEqual([0, 'committed']);
  return { p, root: host.root, work };
}

describe('Raspberry Pi OS bullseye on a Pi 3 B+: config.txt, then stage2 puts it back', () => {
  const fixture = 'rpi3bplus-raspios-bullseye';
  const original = readFileSync(join(SYSROOTS, fixture, 'boot/config.txt'));

  it('applies: stage2 files in /boot/balena-migrate, config.txt backed up and given the stage2 section', () => {
    const { root } = applied(fixture, 'raspberrypi3');
    const boot = join(root, 'boot');
    expect(readFileSync(join(boot, `config.txt.${TS}`))).toEqual(original);
    expect(readFileSync(join(boot, 'config.txt'), 'utf8')).toMatch(
      /\[all\]\nkernel=balena-migrate\/kernel.img\n/,
    );
    expect(readFileSync(join(boot, 'balena-migrate/kernel.img'))).toEqual(
      readFileSync(join(boot, 'kernel7.img')),
    );
    expect(existsSync(join(boot, 'balena-migrate/initramfs.gz'))).toBe(true);
    expect(existsSync(join(boot, 'balena-stage2.yml'))).toBe(true);
  });

  it("stage2's restore leaves config.txt byte-identical to the original and the backup gone", () => {
    const { root } = applied(fixture, 'raspberrypi3');
    const boot = join(root, 'boot');
    const r = stage2Restore(boot);
    expect(r.stdout).toContain('restore=0');
    expect(r.stdout).toContain(`restore: config.txt replaced from config.txt.${TS}`);
    expect(readFileSync(join(boot, 'config.txt'))).toEqual(original);
    expect(existsSync(join(boot, `config.txt.${TS}`))).toBe(false);
    expect(readFileSync(join(boot, 'cmdline.txt'))).toEqual(
      readFileSync(join(SYSROOTS, fixture, 'boot/cmdline.txt')),
    );
  });

  it('a second restore (stage2 on its way back after a failure) changes nothing and succeeds', () => {
    const { root } = applied(fixture, 'raspberrypi3');
    stage2Restore(join(root, 'boot'));
    const r = stage2Restore(join(root, 'boot'));
    expect(r.stdout).toContain('restore=0');
    expect(r.stdout).toContain(`restore: config.txt.${TS} is gone and config.txt is there: restored before`);
    expect(readFileSync(join(root, 'boot/config.txt'))).toEqual(original);
  });

  it('undo.sh leaves the whole boot partition as it was, byte for byte', () => {
    const { root, work } = applied(fixture, 'raspberrypi3');
    const undo = runScript(work, 'undo.sh');
    expect([undo.status, undo.state]).toEqual([0, 'undone']);
    expect(treeDigest(join(root, 'boot'))).toEqual(treeDigest(join(SYSROOTS, fixture, 'boot')));
  });

  it('undo.sh after stage2 came back to the old OS also leaves the boot partition as it was', () => {
    const { root, work } = applied(fixture, 'raspberrypi3');
    stage2Restore(join(root, 'boot'));
    const undo = runScript(work, 'undo.sh');
    expect([undo.status, undo.state]).toEqual([0, 'undone']);
    expect(treeDigest(join(root, 'boot'))).toEqual(treeDigest(join(SYSROOTS, fixture, 'boot')));
  });
});

describe('Raspberry Pi OS bookworm on a Pi 4: tryboot.txt, config.txt never touched', () => {
  const fixture = 'rpi4-raspios-bookworm';
  const firmware = (root: string) => join(root, 'boot/firmware');

  it('applies without changing config.txt or cmdline.txt, and stage2 removes tryboot.txt first', () => {
    const { root } = applied(fixture, 'raspberrypi4-64');
    const before = treeDigest(join(SYSROOTS, fixture, 'boot/firmware'));
    const after = treeDigest(firmware(root));
    expect(after['config.txt']).toBe(before['config.txt']);
    expect(after['cmdline.txt']).toBe(before['cmdline.txt']);
    expect(readFileSync(join(firmware(root), 'tryboot.txt'), 'utf8')).toMatch(
      /cmdline=balena-migrate\/cmdline.txt\n/,
    );
    const r = stage2Restore(firmware(root));
    expect(r.stdout).toContain('restore=0');
    expect(r.stdout).toContain('restore: removed tryboot.txt (there was none before the migration)');
    expect(existsSync(join(firmware(root), 'tryboot.txt'))).toBe(false);
  });

  it('undo.sh leaves /boot/firmware as it was, byte for byte', () => {
    const { root, work } = applied(fixture, 'raspberrypi4-64');
    expect(runScript(work, 'undo.sh').state).toBe('undone');
    expect(treeDigest(firmware(root))).toEqual(treeDigest(join(SYSROOTS, fixture, 'boot/firmware')));
  });

  it('rolls back on its own when config.txt changed since the probe (tryboot.txt would be made from an old one)', () => {
    const p = plan(sysrootInput(fixture, 'raspberrypi4-64'));
    host = copySysroot(fixture, WORK_DIR);
    const config = join(host.root, 'boot/firmware/config.txt');
    const edited = `${readFileSync(config, 'utf8')}dtoverlay=disable-bt\n`;
    writeFileSync(config, edited);
    const work = writeScripts(p, host.root);
    const run = runScript(work, 'apply.sh', ['--foreground']);
    expect([run.status, run.state]).toEqual([1, 'rolled-back']);
    expect(readFileSync(join(work, 'apply.state'), 'utf8')).toMatch(
      /step 6 \(check that \/boot\/firmware\/config.txt is still what was probed .*\) failed: .*config.txt copied with sha256 [0-9a-f]{64}, expected/,
    );
    expect(existsSync(join(host.root, 'boot/firmware/tryboot.txt'))).toBe(false);
    expect(existsSync(join(host.root, 'boot/firmware/balena-migrate'))).toBe(false);
    expect(readFileSync(config, 'utf8')).toBe(edited);
  });
});

describe("stage2's restore keys and restore step", () => {
  const sampleConfig = (extra: string): string =>
    `${readFileSync(join(SYSROOTS, '../plans/rpi3bplus-raspios-bullseye.json'), 'utf8')
      .match(/"content": "(# balena-migrate stage2 configuration[^"]*)"/)![1]!
      .replace(/\\n/g, '\n')
      .replace(/restore_count: 1\nrestore_1_from: '[^']*'\nrestore_1_to: '[^']*'\n/, '')}${extra}`;

  function initAccepts(text: string): { ok: boolean; log: string } {
    host = copySysroot('rpi3bplus-raspios-bullseye', WORK_DIR);
    const file = join(host.root, 'cfg.yml');
    writeFileSync(file, text);
    const r = runInitShell(
      'mkdir -p "$STATE"; load_config "$1"; echo "rc=$? count=$c_restore_count"; cat "$LOG"',
      [file],
    );
    return { ok: r.stdout.includes('rc=0'), log: r.stdout };
  }

  it('takes a config without restore keys as restoring nothing (the GRUB planner writes none)', () => {
    const r = initAccepts(sampleConfig(''));
    expect(r.ok).toBe(true);
    expect(r.log).toContain('count=0');
  });

  it('refuses pairs beyond restore_count, missing halves and paths that climb out', () => {
    for (const [extra, problem] of [
      [
        "restore_count: 1\nrestore_1_to: 'config.txt'\nrestore_1_from: ''\nrestore_2_to: 'x'\n",
        'restore_2_to is beyond restore_count (1)',
      ],
      ["restore_count: 1\nrestore_1_to: 'config.txt'\n", 'restore_1_from is missing'],
      [
        "restore_count: 1\nrestore_1_to: '../etc/passwd'\nrestore_1_from: ''\n",
        'restore_1_to must be a relative path',
      ],
      [
        "restore_count: 1\nrestore_1_to: 'config.txt'\nrestore_1_from: '/abs'\n",
        'restore_1_from must be empty or a relative path',
      ],
      ['restore_count: 100\n', 'restore_count must be a whole number below 100'],
    ] as const) {
      const r = initAccepts(sampleConfig(extra));
      expect(r.ok, extra).toBe(false);
      expect(r.log, extra).toContain(`config: ${problem}`);
      host?.cleanup();
    }
  });

  it('agrees with the TypeScript check of the same keys', () => {
    const base = {
      restore_count: 2,
      restore_1_from: 'a.txt.1',
      restore_1_to: 'a.txt',
      restore_2_from: '',
      restore_2_to: 'b.txt',
    };
    const check = (extra: Record<string, string | number>) =>
      checkStage2Config({ ...parseStage2Config(sampleConfig('')), ...extra }).filter((p) =>
        p.startsWith('restore'),
      );
    expect(check(base)).toEqual([]);
    expect(check({ ...base, restore_3_to: 'c' })).toEqual(['restore_3_to is beyond restore_count (2)']);
    expect(check({ restore_count: 1, restore_1_to: '../x', restore_1_from: '' })).toEqual([
      'restore_1_to must be a relative path, not "../x"',
    ]);
  });

  it('moves a file back from a backup directory and removes the directories that emptied (the Windows fallback)', () => {
    host = copySysroot('rpi3bplus-raspios-bullseye', WORK_DIR);
    const esp = join(host.root, 'boot');
    execFileSync('mkdir', ['-p', join(esp, 'efi_backup/EFI/Boot'), join(esp, 'EFI/Boot')]);
    writeFileSync(join(esp, 'efi_backup/EFI/Boot/bootx64.efi'), 'the firmware default loader');
    const r = runInitShell(
      'restore_file "$1" efi_backup/EFI/Boot/bootx64.efi EFI/Boot/bootx64.efi; echo "rc=$?"',
      [esp],
    );
    expect(r.stdout).toContain('rc=0');
    expect(readFileSync(join(esp, 'EFI/Boot/bootx64.efi'), 'utf8')).toBe('the firmware default loader');
    expect(existsSync(join(esp, 'efi_backup'))).toBe(false);
  });

  it('fails (a failure before the point of no return) when neither the backup nor the file is there', () => {
    host = copySysroot('rpi3bplus-raspios-bullseye', WORK_DIR);
    const r = runInitShell('restore_file "$1" gone.txt.1 gone.txt; echo "rc=$?"', [join(host.root, 'boot')]);
    expect(r.stdout).toContain('rc=1');
    expect(r.stderr).toContain('restore: neither gone.txt.1 nor gone.txt exists');
  });
});
