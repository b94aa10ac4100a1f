// Running commands and reading files over a real SSH connection.

import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteCommandError, UnreachableError } from '../../orchestrator/errors.ts';
import { shellJoin } from '../../orchestrator/ssh/quote.ts';
import { SshSession } from '../../orchestrator/ssh/session.ts';
import { connectOptions, type Sshd, startSshd } from '../helpers/sshd.ts';

let sshd: Sshd;
let dir: string;
let session: SshSession;
const logged: string[] = [];

beforeAll(async () => {
  sshd = await startSshd();
  dir = await mkdtemp(join(tmpdir(), 'bm-ssh-exec-'));
  session = await SshSession.connect(connectOptions(sshd, { log: (line) => logged.push(line) }));
});

afterAll(async () => {
  await session?.close();
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('SshSession.exec', () => {
  it('returns exit code, stdout, stderr and duration of a command', async () => {
    const r = await session.exec('echo out; echo err >&2; exit 7');
    expect(r).toMatchObject({ exitCode: 7, signal: null, stdout: 'out\n', stderr: 'err\n', timedOut: false });
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('feeds stdin to the command and closes it, text or binary', async () => {
    expect((await session.exec('cat', { stdin: 'line 1\nline 2\n' })).stdout).toBe('line 1\nline 2\n');
    const bytes = randomBytes(300_000);
    const r = await session.exec('sha256sum', { stdin: bytes });
    const { createHash } = await import('node:crypto');
    expect(r.stdout.split(' ')[0]).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it('gives a command without stdin an immediate end of input', async () => {
    const r = await session.exec('cat; echo done', { timeoutMs: 5000 });
    expect(r).toMatchObject({ exitCode: 0, stdout: 'done\n', timedOut: false });
  });

  it('carries hostile arguments built with shellJoin to the remote command unchanged', async () => {
    const args = ["it's", '$(id)', '`id`', 'a\nb', '; rm -rf /', '*', '', '-n', 'ünï 🙂', '"\\'];
    const r = await session.exec(`printf '%s\\0' ${shellJoin(args)}`);
    const got = r.stdout.split('\0');
    got.pop();
    expect(got).toEqual(args);
  });

  it('reports a command killed by a signal with the signal name and no exit code', async () => {
    const r = await session.exec('kill -TERM $$');
    expect(r.exitCode).toBeNull();
    expect(r.signal).toBe('SIGTERM');
  });

  it('stops waiting for a command that outruns its timeout and says so', async () => {
    const started = Date.now();
    const r = await session.exec('sleep 20', { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('runs many commands at once on one connection, beyond sshd’s 10 sessions', async () => {
    const results = await Promise.all(Array.from({ length: 25 }, (_, i) => session.exec(`echo ${i}`)));
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 25 }, (_, i) => `${i}\n`));
  });

  it('waits for sshd to free a session when it allows fewer at once than are asked for', async () => {
    const strict = await startSshd({ extraConfig: ['MaxSessions 2'] });
    const s = await SshSession.connect(connectOptions(strict));
    try {
      const results = await Promise.all(Array.from({ length: 4 }, (_, i) => s.exec(`sleep 0.3; echo ${i}`)));
      expect(results.map((r) => r.stdout)).toEqual(['0\n', '1\n', '2\n', '3\n']);
    } finally {
      await s.close();
      await strict.stop();
    }
  });

  it('logs every command line it sends', async () => {
    await session.exec('echo logged-command');
    expect(logged).toContain('echo logged-command');
  });
});

describe('SshSession.execChecked', () => {
  it('resolves like exec when the command succeeds', async () => {
    expect((await session.execChecked('echo ok')).stdout).toBe('ok\n');
  });

  it('throws RemoteCommandError with the exit code and the tail of stderr', async () => {
    const noisy = 'x'.repeat(5000);
    const err = await session
      .execChecked(`echo ${noisy} >&2; echo 'the real reason' >&2; exit 4`)
      .catch((e) => e);
    expect(err).toBeInstanceOf(RemoteCommandError);
    expect(err.exitCode).toBe(4);
    expect(err.stderr).toContain('the real reason');
    expect(err.stderr.length).toBeLessThan(2100);
    expect(err.message).toContain('exited with 4');
    expect(err.message).toContain('the real reason');
  });

  it('throws RemoteCommandError for a timeout', async () => {
    const err = await session.execChecked('sleep 20', { timeoutMs: 200 }).catch((e) => e);
    expect(err).toBeInstanceOf(RemoteCommandError);
    expect(err.message).toMatch(/timed out/);
  });
});

describe('SshSession.readFile', () => {
  it('returns the exact bytes of a binary file', async () => {
    const file = join(dir, 'binary name with spaces');
    const bytes = randomBytes(2_000_000);
    await writeFile(file, bytes);
    expect((await session.readFile(file)).equals(bytes)).toBe(true);
  });

  it('throws RemoteCommandError for a file that is not there', async () => {
    const err = await session.readFile(join(dir, 'missing')).catch((e) => e);
    expect(err).toBeInstanceOf(RemoteCommandError);
    expect(err.stderr).toMatch(/No such file/);
  });

  it('reads a root-only file with sudo when already root, without calling sudo', async () => {
    const file = join(dir, 'secret');
    await writeFile(file, 'top secret');
    await chmod(file, 0o600);
    logged.length = 0;
    expect((await session.readFile(file, { sudo: true })).toString()).toBe('top secret');
    expect(logged.join('\n')).not.toContain('sudo');
  });
});

describe('a closed session', () => {
  it('refuses further commands with UnreachableError', async () => {
    const s = await SshSession.connect(connectOptions(sshd));
    await s.close();
    await s.close(); // twice is fine
    expect(await s.exec('true').catch((e) => e)).toBeInstanceOf(UnreachableError);
  });
});
