// Runs the rendered apply.sh and undo.sh for real, with sh (and bash, busybox ash), against a
// temporary tree: every path the steps touch is inside a temp dir.
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ApplyStep } from '../../orchestrator/plan/plan.ts';
import {
  applyStateCommand,
  parseApplyState,
  renderApplyScripts,
  startApplyCommand,
  undoCommand,
} from '../../orchestrator/plan/render-apply.ts';
import { planGrubBoot } from '../../orchestrator/platform/grub.ts';
import { factsFixture } from '../fixtures/facts-plans.ts';

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** Every entry under DIR: type, permission bits, and content hash or link target. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out[r] = `link ${readlinkSync(p)}`;
      else if (st.isDirectory()) {
        out[r] = `dir ${mode}`;
        walk(p, r);
      } else out[r] = `file ${mode} ${sha(readFileSync(p))}`;
    }
  };
  walk(dir, '');
  return out;
}

interface Bed {
  root: string;
  tree: string;
  work: string;
  kernel: Buffer;
}

/** A tree that looks a little like a host: an existing config, a grubenv, a symlink. */
function bed(): Bed {
  const root = mkdtempSync(join(tmpdir(), 'apply-test-'));
  roots.push(root);
  const tree = join(root, 'tree');
  const work = join(root, 'work');
  mkdirSync(join(tree, 'boot', 'grub'), { recursive: true });
  mkdirSync(join(tree, 'etc', 'grub.d'), { recursive: true });
  mkdirSync(work);
  writeFileSync(join(tree, 'etc', 'existing.conf'), 'original = 1\n', { mode: 0o640 });
  writeFileSync(
    join(tree, 'boot', 'grub', 'grubenv'),
    Buffer.concat([Buffer.from('# GRUB Environment Block\n'), Buffer.alloc(999, '#')]),
  );
  symlinkSync('existing.conf', join(tree, 'etc', 'link.conf'));
  const kernel = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251));
  writeFileSync(join(work, 'vmlinuz'), kernel);
  return { root, tree, work, kernel };
}

/** The usual shape of a plan, with a last step the test chooses. */
function steps(b: Bed, last: string[] = ['true']): ApplyStep[] {
  const t = b.tree;
  return [
    {
      kind: 'mkdir',
      path: join(t, 'boot', 'balena-migrate'),
      mode: 0o755,
      description: 'create the kernel dir',
    },
    {
      kind: 'copy',
      from: join(b.work, 'vmlinuz'),
      to: join(t, 'boot', 'balena-migrate', 'vmlinuz'),
      mode: 0o644,
      description: 'copy the kernel',
      sha256: sha(b.kernel),
    },
    {
      kind: 'write',
      path: join(t, 'etc', 'grub.d', '42_test'),
      content: '#!/bin/sh\necho entry\n',
      mode: 0o755,
      description: 'add the entry',
    },
    {
      kind: 'write',
      path: join(t, 'etc', 'existing.conf'),
      content: 'replaced = 2\n',
      mode: 0o600,
      description: 'replace the config',
    },
    {
      kind: 'exec',
      argv: ['sh', '-c', 'printf "next_entry=x\\n" >"$0"', join(t, 'boot', 'grub', 'grubenv')],
      undo: [],
      backup: [join(t, 'boot', 'grub', 'grubenv')],
      description: 'set the one-shot',
    },
    { kind: 'exec', argv: last, undo: [], description: 'the last step' },
  ];
}

function install(b: Bed, s: ApplyStep[]): string {
  const scripts = renderApplyScripts({ workDir: b.work, steps: s });
  writeFileSync(join(b.work, 'apply.sh'), scripts.apply, { mode: 0o700 });
  writeFileSync(join(b.work, 'undo.sh'), scripts.undo, { mode: 0o700 });
  return scripts.planHash;
}

function sh(command: string, shell: string[] = ['sh']): SpawnSyncReturns<string> {
  return spawnSync(shell[0]!, [...shell.slice(1), '-c', command], { encoding: 'utf8', timeout: 60_000 });
}

function applyForeground(b: Bed, shell: string[] = ['sh']): SpawnSyncReturns<string> {
  return spawnSync(shell[0]!, [...shell.slice(1), join(b.work, 'apply.sh'), '--foreground'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
}

function state(b: Bed) {
  return parseApplyState(sh(applyStateCommand(b.work)).stdout);
}

async function waitFor(what: string, test: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!test()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const SHELLS: [string, string[]][] = [
  ['sh', ['sh']],
  ['bash', ['bash']],
  ['busybox ash', ['busybox', 'ash']],
];

describe('apply.sh', () => {
  for (const [name, shell] of SHELLS) {
    it(`commits when every step succeeds (${name})`, () => {
      const b = bed();
      const before = snapshot(b.tree);
      const hash = install(b, steps(b));
      const r = applyForeground(b, shell);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(state(b)).toEqual({ state: 'committed', planHash: hash, reason: 'all 6 steps done' });
      expect(readFileSync(join(b.tree, 'boot', 'balena-migrate', 'vmlinuz'))).toEqual(b.kernel);
      expect(readFileSync(join(b.tree, 'etc', 'existing.conf'), 'utf8')).toBe('replaced = 2\n');
      expect(lstatSync(join(b.tree, 'etc', 'existing.conf')).mode & 0o777).toBe(0o600);
      expect(lstatSync(join(b.tree, 'etc', 'grub.d', '42_test')).mode & 0o777).toBe(0o755);
      expect(readFileSync(join(b.tree, 'boot', 'grub', 'grubenv'), 'utf8')).toBe('next_entry=x\n');
      expect(readdirSync(join(b.tree, 'boot', 'balena-migrate'))).toEqual(['vmlinuz']);
      // the backups hold the bytes that were replaced
      const backups = join(b.work, 'backup');
      expect(readFileSync(join(backups, '4'), 'utf8')).toBe('original = 1\n');
      expect(sha(readFileSync(join(backups, '5.1')))).toBe(before['boot/grub/grubenv']!.split(' ')[2]);
      const journal = readFileSync(join(b.work, 'apply.journal'), 'utf8').split('\n');
      expect(journal[0]).toBe(`plan ${hash}`);
      expect(journal.filter((l) => l.startsWith('done '))).toEqual([
        'done 1',
        'done 2',
        'done 3',
        'done 4',
        'done 5',
        'done 6',
      ]);
    });

    it(`rolls back a failing step and leaves the tree byte-identical (${name})`, () => {
      const b = bed();
      const before = snapshot(b.tree);
      install(b, steps(b, ['sh', '-c', 'echo disk on fire >&2; exit 7']));
      const r = applyForeground(b, shell);
      expect(r.status).toBe(1);
      expect(snapshot(b.tree)).toEqual(before);
      expect(state(b)).toMatchObject({
        state: 'rolled-back',
        reason: "step 6 (the last step) failed: exit status 7 from sh -c 'echo disk on fire >&2; exit 7'",
      });
      expect(readFileSync(join(b.work, 'apply.log'), 'utf8')).toContain('disk on fire');
    });
  }

  it('rolls back a copy whose bytes do not match the planned sha256', () => {
    const b = bed();
    const before = snapshot(b.tree);
    const s = steps(b);
    s[1] = { ...(s[1] as Extract<ApplyStep, { kind: 'copy' }>), sha256: '0'.repeat(64) };
    install(b, s);
    expect(applyForeground(b).status).toBe(1);
    expect(snapshot(b.tree)).toEqual(before);
    expect(state(b).reason).toMatch(
      /^step 2 \(copy the kernel\) failed: .*vmlinuz copied with sha256 [0-9a-f]{64}, expected 0{64}$/,
    );
  });

  it('starts detached with startApplyCommand, returns at once, and the runner commits on its own', async () => {
    const b = bed();
    const hash = install(b, steps(b, ['sleep', '1']));
    const t0 = Date.now();
    const r = sh(startApplyCommand(b.work));
    expect(r.stdout).toBe('started\n');
    expect(Date.now() - t0).toBeLessThan(900);
    expect(state(b).state).toBe('running');
    await waitFor('commit', () => state(b).state === 'committed');
    expect(state(b).planHash).toBe(hash);
    const pid = Number(readFileSync(join(b.work, 'apply.pid'), 'utf8'));
    expect(pid).toBeGreaterThan(1);
  });

  it('survives kill -9 mid-step: the state says interrupted, and undo.sh restores the tree', async () => {
    const b = bed();
    const before = snapshot(b.tree);
    const marker = join(b.root, 'in-last-step');
    install(b, steps(b, ['sh', '-c', 'touch "$0"; sleep 30', marker]));
    expect(sh(startApplyCommand(b.work)).status).toBe(0);
    await waitFor('the last step to start', () => existsSync(marker));
    const pid = Number(readFileSync(join(b.work, 'apply.pid'), 'utf8'));
    process.kill(-pid, 'SIGKILL');
    await waitFor('the lock to be released', () => state(b).state === 'interrupted');
    expect(snapshot(b.tree)).not.toEqual(before);

    const undo = sh(undoCommand(b.work));
    expect(undo.stdout).toBe('undone\n');
    expect(undo.status).toBe(0);
    expect(snapshot(b.tree)).toEqual(before);
    expect(state(b)).toMatchObject({ state: 'undone', reason: 'undone by undo.sh (was running)' });

    const again = sh(undoCommand(b.work));
    expect(again.status).toBe(0);
    expect(again.stdout).toBe('nothing to undo: undone\n');
    expect(snapshot(b.tree)).toEqual(before);
  });

  it('after a kill -9, running apply.sh again first undoes the remains and then commits', async () => {
    const b = bed();
    const marker = join(b.root, 'in-last-step');
    const blocking = steps(b, ['sh', '-c', 'if [ ! -e "$0" ]; then touch "$0"; sleep 30; fi', marker]);
    install(b, blocking);
    sh(startApplyCommand(b.work));
    await waitFor('the last step to start', () => existsSync(marker));
    process.kill(-Number(readFileSync(join(b.work, 'apply.pid'), 'utf8')), 'SIGKILL');
    await waitFor('the lock to be released', () => state(b).state === 'interrupted');

    const r = applyForeground(b);
    expect(r.status).toBe(0);
    expect(state(b).state).toBe('committed');
    const log = readFileSync(join(b.work, 'apply.log'), 'utf8');
    expect(log).toMatch(/has steps that were not undone; undoing them first/);
    expect(readFileSync(join(b.work, 'backup', '4'), 'utf8')).toBe('original = 1\n');
    expect(readFileSync(join(b.tree, 'etc', 'existing.conf'), 'utf8')).toBe('replaced = 2\n');
  });

  it('does nothing when run again after it committed the same plan', () => {
    const b = bed();
    install(b, steps(b));
    expect(applyForeground(b).status).toBe(0);
    const tree = snapshot(b.tree);
    const journal = readFileSync(join(b.work, 'apply.journal'));
    const backups = snapshot(join(b.work, 'backup'));
    const again = sh(startApplyCommand(b.work));
    expect(again.stdout).toBe('committed\n');
    expect(again.status).toBe(0);
    expect(applyForeground(b).stdout).toBe('committed\n');
    expect(snapshot(b.tree)).toEqual(tree);
    expect(readFileSync(join(b.work, 'apply.journal'))).toEqual(journal);
    expect(snapshot(join(b.work, 'backup'))).toEqual(backups);
    expect(state(b).state).toBe('committed');
  });

  it('refuses to start when the undo.sh of the same plan is not next to it', () => {
    const b = bed();
    install(b, steps(b));
    rmSync(join(b.work, 'undo.sh'));
    const r = applyForeground(b);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/undo\.sh of plan [0-9a-f]{64} must be next to apply\.sh/);
    expect(state(b).state).toBe('absent');
  });

  it('replaces a committed plan by undoing it first with its own saved undo script', () => {
    const b = bed();
    const before = snapshot(b.tree);
    install(b, steps(b));
    expect(applyForeground(b).status).toBe(0);
    const second = steps(b).slice(0, 4);
    second[3] = { ...(second[3] as Extract<ApplyStep, { kind: 'write' }>), content: 'third = 3\n' };
    const hash2 = install(b, second);
    expect(applyForeground(b).status).toBe(0);
    expect(state(b)).toMatchObject({ state: 'committed', planHash: hash2 });
    // the first plan's one-shot was undone, the second plan never set one
    expect(readFileSync(join(b.tree, 'boot', 'grub', 'grubenv'))).toEqual(
      Buffer.concat([Buffer.from('# GRUB Environment Block\n'), Buffer.alloc(999, '#')]),
    );
    expect(readFileSync(join(b.tree, 'etc', 'existing.conf'), 'utf8')).toBe('third = 3\n');
    expect(sh(undoCommand(b.work)).status).toBe(0);
    expect(snapshot(b.tree)).toEqual(before);
  });

  it('reports rollback-failed, naming the undo that failed, and then refuses to start again', () => {
    const b = bed();
    const s: ApplyStep[] = [
      ...steps(b).slice(0, 4),
      {
        kind: 'exec',
        argv: ['true'],
        undo: [['sh', '-c', 'exit 9']],
        description: 'a step whose undo fails',
      },
      { kind: 'exec', argv: ['false'], undo: [], description: 'a failing step' },
    ];
    install(b, s);
    expect(applyForeground(b).status).toBe(2);
    const st = state(b);
    expect(st.state).toBe('rollback-failed');
    expect(st.reason).toBe(
      "step 6 (a failing step) failed: exit status 1 from false; and then: undo of step 5 (a step whose undo fails) failed: exit status 9 from sh -c 'exit 9'",
    );
    // the other steps were still undone
    expect(readFileSync(join(b.tree, 'etc', 'existing.conf'), 'utf8')).toBe('original = 1\n');
    const again = applyForeground(b);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/ended rollback-failed .*a human must look first/);
  });
});

describe('undo.sh', () => {
  it('restores the tree byte for byte after a commit, and a second run changes nothing', () => {
    const b = bed();
    const before = snapshot(b.tree);
    install(b, steps(b));
    expect(applyForeground(b).status).toBe(0);
    const r = sh(undoCommand(b.work));
    expect(r.stdout).toBe('undone\n');
    expect(snapshot(b.tree)).toEqual(before);
    expect(state(b)).toMatchObject({ state: 'undone', reason: 'undone by undo.sh (was committed)' });
    expect(sh(undoCommand(b.work)).stdout).toBe('nothing to undo: undone\n');
    expect(snapshot(b.tree)).toEqual(before);
  });

  it('copes with files stage2 already deleted on its way back to the old OS', () => {
    const b = bed();
    const before = snapshot(b.tree);
    install(b, steps(b));
    expect(applyForeground(b).status).toBe(0);
    rmSync(join(b.tree, 'boot', 'balena-migrate'), { recursive: true });
    expect(sh(undoCommand(b.work)).status).toBe(0);
    expect(snapshot(b.tree)).toEqual(before);
  });

  it('has nothing to do in a work dir where apply never ran', () => {
    const b = bed();
    expect(sh(undoCommand(b.work)).stdout).toBe('nothing to undo: no undo.sh\n');
    install(b, steps(b));
    expect(sh(undoCommand(b.work)).stdout).toBe(`nothing to undo: no journal in ${b.work}\n`);
  });
});

describe('hostile names and content', () => {
  it('survive quotes, $(), backticks, newlines, tabs and backslashes, and nothing in them runs', () => {
    const b = bed();
    // cwd of the scripts is /, so a command that escaped its quotes would create /NAME
    const name = `bm-pwned-${process.pid}-${Date.now()}`;
    const markers = [join('/', name), join(b.root, name), join(process.cwd(), name)];
    const evilName = `it's "x" $(touch ${name}) \`touch ${name}\` \\n\\\\ \ttab\nnew line; touch ${name} #`;
    const evil = `${evilName} $(touch ${markers[1]}) /etc/passwd`;
    const dir = join(b.tree, `dir ${evilName}`);
    const file = join(b.tree, 'etc', `file ${evilName}`);
    const existing = join(b.tree, `-x $(touch ${name})'`);
    writeFileSync(existing, `old ${evil}`);
    const before = snapshot(b.tree);
    const content = `${evil}\n${evil}`; // no trailing newline: written exactly
    const s: ApplyStep[] = [
      { kind: 'mkdir', path: dir, mode: 0o700, description: `mkdir ${evil}` },
      {
        kind: 'copy',
        from: join(b.work, 'vmlinuz'),
        to: join(dir, evilName),
        mode: 0o644,
        description: evil,
        sha256: sha(b.kernel),
      },
      { kind: 'write', path: file, content, mode: 0o644, description: evil },
      { kind: 'write', path: existing, content: evil, mode: 0o600, description: evil },
      {
        kind: 'exec',
        argv: ['sh', '-c', 'printf "%s" "$1" >"$2"', 'sh', evil, join(dir, 'exec-out')],
        undo: [['rm', '-f', join(dir, 'exec-out')]],
        backup: [existing],
        description: evil,
      },
    ];
    install(b, s);
    expect(applyForeground(b).status).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe(content);
    expect(readFileSync(existing, 'utf8')).toBe(evil);
    expect(readFileSync(join(dir, 'exec-out'), 'utf8')).toBe(evil);
    expect(readFileSync(join(dir, evilName))).toEqual(b.kernel);
    for (const m of markers) expect(existsSync(m)).toBe(false);

    expect(sh(undoCommand(b.work)).status).toBe(0);
    expect(snapshot(b.tree)).toEqual(before);
    for (const m of markers) expect(existsSync(m)).toBe(false);
  });

  it('keeps a failure reason from a hostile description on one state line', () => {
    const b = bed();
    install(b, [{ kind: 'exec', argv: ['false'], undo: [], description: 'two\nlines' }]);
    expect(applyForeground(b).status).toBe(1);
    expect(state(b).reason).toBe('step 1 (two lines) failed: exit status 1 from false');
  });

  it('refuses to render a step with a NUL byte or a relative path', () => {
    expect(() =>
      renderApplyScripts({
        workDir: '/w',
        steps: [{ kind: 'write', path: 'rel', content: '', mode: 0o644, description: '' }],
      }),
    ).toThrow(/must be an absolute path/);
    expect(() =>
      renderApplyScripts({
        workDir: '/w',
        steps: [{ kind: 'write', path: '/a', content: 'a\0b', mode: 0o644, description: '' }],
      }),
    ).toThrow(/NUL/);
  });
});

describe('the rendered scripts', () => {
  const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

  it('for a real GRUB plan are valid POSIX sh that shellcheck accepts', () => {
    const facts = factsFixture('ubuntu-nuc-uefi-separate-boot');
    const r = planGrubBoot({
      hostName: 'nuc',
      facts,
      mode: 'standalone',
      image: {
        path: '/i',
        compression: 'gzip',
        fileSizeBytes: 1 << 28,
        fileSha256: 'a'.repeat(64),
        rawSizeBytes: 1 << 30,
        rawSha256: 'b'.repeat(64),
      },
      configJson: { path: '/c', sizeBytes: 1000, sha256: 'c'.repeat(64) },
      workDir: '/var/tmp/balena-migrate',
      kernel: { source: 'host' },
      initramfs: { data: Buffer.from('x'), sha256: 'd'.repeat(64) },
      failMode: 'reboot',
      ramMarginBytes: 1 << 26,
      timestamp: '20261126T041500Z',
    });
    if (!r.ok) throw new Error(r.reasons.join('; '));
    const scripts = renderApplyScripts(r.plan);
    const dir = mkdtempSync(join(tmpdir(), 'render-'));
    roots.push(dir);
    for (const [name, text] of [
      ['apply.sh', scripts.apply],
      ['undo.sh', scripts.undo],
    ] as const) {
      const p = join(dir, name);
      writeFileSync(p, text);
      for (const shell of ['dash', 'bash']) expect(spawnSync(shell, ['-n', p]).status).toBe(0);
      if (has('shellcheck')) {
        const check = spawnSync('shellcheck', ['-s', 'sh', p], { encoding: 'utf8' });
        expect(check.stdout).toBe('');
      }
    }
    expect(scripts.apply).toContain(`PLAN=${scripts.planHash}\n`);
    expect(scripts.apply).toContain('W=/var/tmp/balena-migrate\n');
  });

  it('change hash when a step changes and keep it when nothing does', () => {
    const a = renderApplyScripts({
      workDir: '/w',
      steps: [{ kind: 'exec', argv: ['true'], undo: [], description: 'x' }],
    });
    const b = renderApplyScripts({
      workDir: '/w',
      steps: [{ kind: 'exec', argv: ['true'], undo: [], description: 'x' }],
    });
    const c = renderApplyScripts({
      workDir: '/w',
      steps: [{ kind: 'exec', argv: ['false'], undo: [], description: 'x' }],
    });
    expect(a.planHash).toBe(b.planHash);
    expect(a.planHash).not.toBe(c.planHash);
  });
});

describe('parseApplyState', () => {
  it('reads state, plan hash and reason', () => {
    const h = 'f'.repeat(64);
    expect(parseApplyState(`rolled-back\nplan ${h}\nstep 2 (x) failed: y\n`)).toEqual({
      state: 'rolled-back',
      planHash: h,
      reason: 'step 2 (x) failed: y',
    });
  });

  it('reads a work dir without a transaction as absent', () => {
    expect(parseApplyState('absent\n')).toEqual({ state: 'absent', planHash: null, reason: '' });
  });
});
