// Becoming root through sudo as a non-root login user, with NOPASSWD and with a password.
// The test users are real local accounts (created here, removed afterwards); sshd runs on
// this machine, so its process list is ours to inspect.

import { readdir, readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, RemoteCommandError } from '../../orchestrator/errors.ts';
import { shellJoin } from '../../orchestrator/ssh/quote.ts';
import { type ConnectOptions, SshSession } from '../../orchestrator/ssh/session.ts';
import { connectOptions, ensureTestUser, removeTestUser, type Sshd, startSshd } from '../helpers/sshd.ts';

const NOPASSWD_USER = 'bm-sudo-nopw';
const PASSWORD_USER = 'bm-sudo-pw';
const NO_SUDO_USER = 'bm-sudo-none';
// Spaces and shell metacharacters: it must survive stdin and never touch a command line.
const PASSWORD = 'Pw-7q$(id) `x` "y" z!';

let sshd: Sshd;

beforeAll(async () => {
  await ensureTestUser({ name: NOPASSWD_USER, sudo: 'nopasswd' });
  await ensureTestUser({ name: PASSWORD_USER, password: PASSWORD, sudo: 'password' });
  await ensureTestUser({ name: NO_SUDO_USER, password: PASSWORD, sudo: 'none' });
  sshd = await startSshd();
});

afterAll(async () => {
  await sshd?.stop();
  for (const u of [NOPASSWD_USER, PASSWORD_USER, NO_SUDO_USER]) await removeTestUser(u);
});

function connect(username: string, extra: Partial<ConnectOptions> = {}): Promise<SshSession> {
  return SshSession.connect(connectOptions(sshd, { username, ...extra }));
}

/** Every command line of every process on this machine, read from /proc. */
async function allCommandLines(): Promise<string[]> {
  const lines: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline) lines.push(cmdline.replaceAll('\0', ' '));
  }
  return lines;
}

describe('sudo with NOPASSWD', () => {
  it('runs the command as root and never asks for a password', async () => {
    let asked = 0;
    const s = await connect(NOPASSWD_USER, {
      sudoPassword: async () => {
        asked++;
        return 'unused';
      },
    });
    expect(s.isRoot).toBe(false);
    expect((await s.exec('id -u')).stdout).not.toBe('0\n');
    expect((await s.exec('id -u', { sudo: true })).stdout).toBe('0\n');
    expect((await s.exec('id -u', { sudo: true })).stdout).toBe('0\n');
    expect(asked).toBe(0);
    await s.close();
  });

  it('keeps the login user’s uid in SUDO_UID for commands that hand files back to it', async () => {
    const s = await connect(NOPASSWD_USER);
    const uid = (await s.exec('id -u')).stdout;
    expect((await s.exec('echo "$SUDO_UID"', { sudo: true })).stdout).toBe(uid);
    await s.close();
  });

  it('passes hostile arguments and stdin through the sudo layer unchanged', async () => {
    const s = await connect(NOPASSWD_USER);
    const args = ["it's", '$(id)', 'a\nb', '*', ''];
    const r = await s.exec(`printf '%s\\0' ${shellJoin(args)}; cat`, { sudo: true, stdin: 'from stdin' });
    const parts = r.stdout.split('\0');
    expect(parts.slice(0, -1)).toEqual(args);
    expect(parts.at(-1)).toBe('from stdin');
    await s.close();
  });

  it('reads a root-only file with readFile', async () => {
    const s = await connect(NOPASSWD_USER);
    expect((await s.readFile('/etc/shadow', { sudo: true })).toString()).toContain('root:');
    expect(await s.readFile('/etc/shadow').catch((e) => e)).toBeInstanceOf(RemoteCommandError);
    await s.close();
  });
});

describe('sudo with a password', () => {
  it('asks for the password once per session and runs each command as root', async () => {
    let asked = 0;
    const s = await connect(PASSWORD_USER, {
      sudoPassword: async () => {
        asked++;
        return PASSWORD;
      },
    });
    for (let i = 0; i < 3; i++) expect((await s.exec('id -u', { sudo: true })).stdout).toBe('0\n');
    expect(asked).toBe(1);
    await s.close();
  });

  it('hands the command exactly the caller’s stdin, with the password consumed by sudo', async () => {
    const s = await connect(PASSWORD_USER, { sudoPassword: async () => PASSWORD });
    const stdin = Buffer.concat([Buffer.from('first line\nsecond\n'), Buffer.from([0, 1, 2, 255])]);
    const r = await s.exec('od -An -tx1 -v', { sudo: true, stdin });
    expect(r.stdout.replace(/\s+/g, ' ').trim()).toBe(
      [...stdin].map((b) => b.toString(16).padStart(2, '0')).join(' '),
    );
    await s.close();
  });

  it('never shows the password in any process command line, in the logged commands or in output', async () => {
    const logged: string[] = [];
    const s = await connect(PASSWORD_USER, {
      sudoPassword: async () => PASSWORD,
      log: (l) => logged.push(l),
    });
    const seen: string[] = [];
    let running = true;
    const watcher = (async () => {
      while (running) {
        seen.push(...(await allCommandLines()).filter((l) => l.includes('sleep 5')));
        const leaked = (await allCommandLines()).filter((l) => l.includes(PASSWORD) || l.includes('Pw-7q'));
        expect(leaked).toEqual([]);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const r = await s.exec('sleep 5; echo done', { sudo: true });
    running = false;
    await watcher;
    expect(r.stdout).toBe('done\n');
    expect(seen.some((l) => l.includes('sudo -k -S'))).toBe(true); // the watcher did see the command run
    expect(logged.join('\n')).not.toContain('Pw-7q');
    expect(logged.some((l) => l.startsWith('sudo -k -S'))).toBe(true);
    await s.close();
  });

  it('masks the password if a command prints it', async () => {
    const s = await connect(PASSWORD_USER, { sudoPassword: async () => PASSWORD });
    const r = await s.exec('cat', { sudo: true, stdin: `echoed: ${PASSWORD}\n` });
    expect(r.stdout).toBe('echoed: ********\n');
    await s.close();
  });

  it('fails with AuthError, without the password in the message, when sudo rejects it', async () => {
    const wrong = 'not-the-Password-42';
    const s = await connect(PASSWORD_USER, { sudoPassword: async () => wrong });
    const err = await s.exec('id -u', { sudo: true }).catch((e) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect(err.message).toMatch(/rejected the password/);
    expect(err.message).not.toContain(wrong);
    await s.close();
  });

  it('explains how to proceed when sudo wants a password and none can be asked for', async () => {
    const s = await connect(PASSWORD_USER);
    const err = await s.exec('id -u', { sudo: true }).catch((e) => e);
    expect(err).toBeInstanceOf(RemoteCommandError);
    expect(err.message).toMatch(/wants a password/);
    expect(err.message).toMatch(/NOPASSWD/);
    await s.close();
  });
});

describe('a non-root login', () => {
  // OpenSSH delivers signal requests only to non-root sessions, and a user may not signal
  // the root-owned sudo: this is the one case where a timed-out command is stopped on the host.
  it('terminates a command on the host when it outruns its timeout', async () => {
    const s = await connect(NOPASSWD_USER);
    const r = await s.exec('sleep 37.5', { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    await new Promise((done) => setTimeout(done, 300));
    expect((await allCommandLines()).filter((l) => l.startsWith('sleep 37.5'))).toEqual([]);
    await s.close();
  });
});

describe('sudo without rights', () => {
  it('fails with RemoteCommandError that says the user cannot become root, even with the right password', async () => {
    const s = await connect(NO_SUDO_USER, { sudoPassword: async () => PASSWORD });
    const err = await s.exec('id -u', { sudo: true }).catch((e) => e);
    expect(err).toBeInstanceOf(RemoteCommandError);
    expect(err.message).toMatch(/cannot become root/);
    expect(err.message).toMatch(/not in the sudoers file/);
    await s.close();
  });
});
