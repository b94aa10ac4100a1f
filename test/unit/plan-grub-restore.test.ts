import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ApplyStep, Plan } from '../../orchestrator/plan/plan.ts';
import { renderApplyScripts } from '../../orchestrator/plan/render-apply.ts';
import { runInitShell } from '../fixtures/stage2/init-shell.ts';
import { copySysroot, type HostCopy, rebaseStep, runScript, treeDigest } from '../fixtures/sysroot-apply.ts';
import { plan, SYSROOTS, sysrootInput, WORK_DIR } from '../fixtures/sysroot-plans.ts';

// The GRUB boot setup, run for real on a copy of the Ubuntu NUC fixture with /boot on its own
// partition: apply.sh copies grub.cfg aside, adds the grub.d entry, regenerates grub.cfg (a
// stand-in grub-mkconfig that runs /etc/grub.d, so grub.cfg really changes) and sets the
// one-shot with grub-editenv. Stage2's own restore (from stage2/init) and undo.sh must each
// put grub.cfg and grubenv back byte for byte, mode included, without regenerating anything.

const fixture = 'nuc-ubuntu-bios-separate-boot';
let host: HostCopy | undefined;
afterEach(() => {
  host?.cleanup();
  host = undefined;
});

/** Every file of the copy but the work dir the test made itself, with grub.cfg's mode. */
function state(root: string): Record<string, string> {
  const files = Object.entries(treeDigest(root)).filter(([k]) => !k.startsWith('var/'));
  const mode = (p: string) => (statSync(join(root, p)).mode & 0o7777).toString(8);
  return { ...Object.fromEntries(files), 'mode of boot/grub/grub.cfg': mode('boot/grub/grub.cfg') };
}

/**
 * The plan's steps moved under ROOT: paths in argv and backups point into the copy, the GRUB
 * tools are stand-ins that change the same files the real ones do.
 */
function rebase(step: ApplyStep, root: string, mkconfig: string): ApplyStep {
  if (step.kind !== 'exec') return rebaseStep(step, root);
  const at = (p: string) => (p.startsWith('/') ? join(root, p) : p);
  const [cmd = '', ...args] = step.argv;
  const tools: Record<string, string[]> = {
    '/usr/sbin/update-grub': ['sh', mkconfig],
    '/usr/sbin/grub-reboot': [
      'sh',
      '-c',
      'grub-editenv "$0" set next_entry="$1"',
      join(root, 'boot/grub/grubenv'),
    ],
  };
  const argv = tools[cmd] ? [...tools[cmd], ...args] : [cmd, ...args.map(at)];
  return { ...step, argv, undo: step.undo.map((u) => u.map(at)), backup: step.backup?.map(at) };
}

function applied(): { root: string; work: string; plan: Plan } {
  const p = plan(sysrootInput(fixture, 'genericx86-64-ext'));
  host = copySysroot(fixture, WORK_DIR);
  const root = host.root;
  // grub-mkconfig's way: the header, then every executable /etc/grub.d script, into grub.cfg.new, mode 444
  const mkconfig = join(root, WORK_DIR, 'stand-in-grub-mkconfig');
  writeFileSync(
    mkconfig,
    [
      'set -e',
      `cfg=${join(root, 'boot/grub/grub.cfg')}`,
      '{ sed -n "1,/### END/p" "$cfg"; for s in ' +
        `${join(root, 'etc/grub.d')}/*; do if [ -x "$s" ]; then sh "$s"; fi; done; } >"$cfg.new"`,
      'chmod 444 "$cfg.new"',
      'mv -f "$cfg.new" "$cfg"',
      '',
    ].join('\n'),
  );
  const work = join(root, p.workDir);
  const scripts = renderApplyScripts({ workDir: work, steps: p.steps.map((s) => rebase(s, root, mkconfig)) });
  writeFileSync(join(work, 'apply.sh'), scripts.apply);
  writeFileSync(join(work, 'undo.sh'), scripts.undo);
  const run = runScript(work, 'apply.sh', ['--foreground']);
  expect([run.status, run.state], run.output + readFileSync(join(work, 'apply.log'), 'utf8')).toEqual([
    0,
    'committed',
  ]);
  return { root, work, plan: p };
}

/** What stage2 does first on the /boot partition, then its cleanup on the way back to the old OS. */
function stage2Restore(bootPartition: string): string {
  const r = runInitShell(
    [
      // a directory stands in for the mounted, writable partition
      'is_mounted() { return 0; }; make_writable() { return 0; }',
      'MNT_HOST="$1"; mkdir -p "$STATE"; load_config "$MNT_HOST/balena-stage2.yml" || exit 3',
      'restore_grubenv; echo "grubenv=$?"; restore_files; echo "restore=$?"; cleanup_boot_partition',
    ].join('\n'),
    [bootPartition],
  );
  return r.stdout + r.stderr;
}

describe('GRUB with /boot on its own partition: grub.cfg back byte for byte, never regenerated', () => {
  it('applies: a copy of grub.cfg beside the stage2 files, the regenerated grub.cfg with the entry, next_entry set', () => {
    const { root } = applied();
    const original = readFileSync(join(SYSROOTS, fixture, 'boot/grub/grub.cfg'));
    expect(readFileSync(join(root, 'boot/balena-migrate/grub.cfg.orig'))).toEqual(original);
    const cfg = readFileSync(join(root, 'boot/grub/grub.cfg'), 'utf8');
    expect(cfg).toContain("menuentry 'balena-migrate stage2' --id balena-migrate-stage2");
    expect(readFileSync(join(root, 'boot/grub/grubenv'), 'utf8')).toMatch(
      /^next_entry=balena-migrate-stage2$/m,
    );
  });

  it("stage2's restore puts grub.cfg and grubenv back and its cleanup leaves /boot as it was", () => {
    const { root } = applied();
    const log = stage2Restore(join(root, 'boot'));
    expect(log).toContain('grubenv=0');
    expect(log).toContain('restore=0');
    expect(log).toContain('restore: grub/grub.cfg replaced from balena-migrate/grub.cfg.orig');
    const boot = (s: Record<string, string>) =>
      Object.fromEntries(Object.entries(s).filter(([k]) => k.startsWith('boot/')));
    expect(boot(state(root))).toEqual(boot(state(join(SYSROOTS, fixture))));
  });

  it('undo.sh leaves /boot and /etc as they were, byte for byte, without running grub-mkconfig', () => {
    const { root, work } = applied();
    const mkconfigRuns = () => readFileSync(join(work, 'apply.log'), 'utf8').match(/stand-in-grub-mkconfig/g);
    expect(mkconfigRuns()).toHaveLength(1);
    expect(runScript(work, 'undo.sh').state).toBe('undone');
    expect(state(root)).toEqual(state(join(SYSROOTS, fixture)));
    expect(mkconfigRuns()).toHaveLength(1);
  });

  it('undo.sh after stage2 came back to the old OS also leaves everything as it was', () => {
    const { root, work } = applied();
    stage2Restore(join(root, 'boot'));
    expect(runScript(work, 'undo.sh').state).toBe('undone');
    expect(state(root)).toEqual(state(join(SYSROOTS, fixture)));
  });
});
