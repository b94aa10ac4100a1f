// Runs the real probe.sh on this machine under every shell it must support, and parses what
// it prints. Mount tests need root and loop devices; they are skipped where those are missing.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { hostname, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Facts } from '../../orchestrator/facts/facts.ts';
import { parseFacts } from '../../orchestrator/facts/parse.ts';

const PROBE = join(import.meta.dirname, '../../remote-payload/probe.sh');
const SHELLS: [string, string[]][] = [
  ['dash', ['dash']],
  ['bash', ['bash']],
  ['busybox ash', ['busybox', 'ash']],
];

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

function runProbe(shell: string[], workDir: string): string {
  return execFileSync(shell[0]!, [...shell.slice(1), PROBE, workDir], { encoding: 'utf8', timeout: 30_000 });
}

/** Facts with what changes from second to second (free RAM and disk, loop devices) taken out. */
function stable(f: Facts): unknown {
  const noLoop = <T extends { name?: string; source?: string }>(xs: T[]): T[] =>
    xs.filter((x) => !(x.name ?? x.source ?? '').match(/loop\d/));
  return {
    ...f,
    memory: { totalBytes: f.memory.totalBytes },
    blockDevices: noLoop(f.blockDevices),
    mounts: noLoop(f.mounts),
    bootDir: { ...f.bootDir, freeBytes: 0 },
    workDir: { ...f.workDir, freeBytes: 0 },
    rootDir: { ...f.rootDir, freeBytes: 0 },
  };
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'probe-test-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('probe.sh on this machine', () => {
  const outputs = new Map<string, Facts>();

  for (const [name, shell] of SHELLS) {
    it(`runs under ${name} and prints facts that parse and match this machine`, () => {
      const work = join(tmp, 'not', 'yet', 'there');
      const facts = parseFacts(runProbe(shell, work));
      outputs.set(name, facts);
      expect(facts.hostname).toBe(hostname());
      expect(facts.arch).toBe(execFileSync('uname', ['-m'], { encoding: 'utf8' }).trim());
      expect(facts.kernel.release).toBe(release());
      expect(facts.kernel.cmdline).toBe(readFileSync('/proc/cmdline', 'utf8').trim());
      expect(facts.memory.totalBytes).toBe(totalmem());
      expect(facts.memory.availableBytes).toBeGreaterThan(0);
      const names = readdirSync('/sys/class/block').filter((n) => !/^loop\d/.test(n));
      expect(facts.blockDevices.map((b) => b.name).filter((n) => !/^loop\d/.test(n))).toEqual(names.sort());
      expect(facts.rootDir).toMatchObject({ path: '/', exists: true, mountpoint: '/' });
      expect(facts.workDir).toMatchObject({ path: work, exists: false, probedPath: tmp });
      expect(facts.workDir.freeBytes).toBeGreaterThan(0);
      expect(facts.mounts.some((m) => m.target === '/')).toBe(true);
      expect(facts.tools.sha256sum).toBe(true);
      expect(facts.tools.setsid).toBe(has('setsid'));
      expect(facts.grub.grubDDir).toBe(existsSync('/etc/grub.d'));
    });
  }

  it('gives the same facts under dash, bash and busybox ash', () => {
    const [first, ...rest] = [...outputs.values()].map(stable);
    expect(rest.length).toBe(2);
    for (const other of rest) expect(other).toEqual(first);
  });

  for (const [name, shell] of SHELLS) {
    it(`gives the same facts under ${name} when fed on stdin to \`sh -s\`, the way the orchestrator sends it`, () => {
      const work = join(tmp, 'not', 'yet', 'there');
      const viaStdin = execFileSync(shell[0]!, [...shell.slice(1), '-s', '--', work], {
        input: readFileSync(PROBE),
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(stable(parseFacts(viaStdin))).toEqual(stable(parseFacts(runProbe(shell, work))));
    });
  }

  it('changes nothing: the work dir it was asked about still does not exist', () => {
    const work = join(tmp, 'fresh-work');
    runProbe(['sh'], work);
    expect(existsSync(work)).toBe(false);
  });

  it('passes through a hostile work dir path byte for byte and never runs what is in it', () => {
    const marker = join(tmp, 'pwned');
    const work = join(tmp, `a b\tc\nd'e"f$(touch ${marker})\`touch ${marker}\`\\g`, 'w');
    for (const [, shell] of SHELLS) {
      const facts = parseFacts(runProbe(shell, work));
      expect(facts.workDir.path).toBe(work);
      expect(facts.workDir.probedPath).toBe(tmp);
    }
    expect(existsSync(marker)).toBe(false);
  });

  it('passes shellcheck as POSIX sh', () => {
    if (!has('shellcheck')) return;
    const r = spawnSync('shellcheck', ['-s', 'sh', PROBE], { encoding: 'utf8' });
    expect(r.stdout).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('probe.sh on real mounts', () => {
  const isRoot = process.getuid?.() === 0;
  let img: string;
  let mnt: string;
  let bind: string;
  let mounted = false;
  let bound = false;
  let tmpfsDir: string;
  let tmpfsMounted = false;
  const label = `a b\\c'd`;

  beforeAll(() => {
    if (!isRoot || !has('mkfs.ext4')) return;
    img = join(tmp, 'fs.img');
    mnt = join(tmp, 'mount point\twith tab');
    bind = join(tmp, 'bind');
    tmpfsDir = join(tmp, 'ram');
    for (const d of [mnt, bind, tmpfsDir]) mkdirSync(d, { recursive: true });
    writeFileSync(img, Buffer.alloc(0));
    execFileSync('truncate', ['-s', '32M', img]);
    execFileSync('mkfs.ext4', ['-q', '-L', label, img]);
    mounted = spawnSync('mount', ['-o', 'loop', img, mnt]).status === 0;
    if (mounted) {
      mkdirSync(join(mnt, 'inner', 'deeper'), { recursive: true });
      bound = spawnSync('mount', ['--bind', join(mnt, 'inner'), bind]).status === 0;
    }
    tmpfsMounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', tmpfsDir]).status === 0;
  });
  afterAll(() => {
    if (bound) spawnSync('umount', [bind]);
    if (mounted) spawnSync('umount', [mnt]);
    if (tmpfsMounted) spawnSync('umount', [tmpfsDir]);
  });

  it('finds the loop device, UUID, odd label and escaped mount point of the work dir filesystem', (ctx) => {
    if (!mounted) ctx.skip();
    const uuid = execFileSync('blkid', ['-o', 'value', '-s', 'UUID', img], { encoding: 'utf8' }).trim();
    for (const [, shell] of SHELLS) {
      const facts = parseFacts(runProbe(shell, join(mnt, 'sub dir', 'work')));
      expect(facts.workDir).toMatchObject({
        mountpoint: mnt,
        fstype: 'ext4',
        exists: false,
        probedPath: mnt,
        fsRoot: '/',
      });
      const dev = facts.blockDevices.find((b) => b.name === facts.workDir.device);
      expect(dev).toMatchObject({ type: 'other', uuid, label, fstype: 'ext4', sizeBytes: 32 * 1024 * 1024 });
      expect(facts.mounts.find((m) => m.target === mnt)?.fstype).toBe('ext4');
    }
  });

  it('reports the directory a bind mount shows, so paths inside the filesystem come out right', (ctx) => {
    if (!bound) ctx.skip();
    const facts = parseFacts(runProbe(['dash'], join(bind, 'deeper')));
    expect(facts.workDir).toMatchObject({ mountpoint: bind, fsRoot: '/inner', exists: true, fstype: 'ext4' });
  });

  it('reports a tmpfs work dir with no block device', (ctx) => {
    if (!tmpfsMounted) ctx.skip();
    const facts = parseFacts(runProbe(['busybox', 'ash'], join(tmpfsDir, 'w')));
    expect(facts.workDir).toMatchObject({
      fstype: 'tmpfs',
      device: null,
      mountpoint: tmpfsDir,
      source: 'tmpfs',
    });
  });
});
