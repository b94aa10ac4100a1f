// Connecting and authenticating against a real OpenSSH sshd: key files, ssh-agent,
// encrypted keys, refusals, and the ways a connection fails to come up or goes away.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, UnreachableError } from '../../orchestrator/errors.ts';
import { type ConnectOptions, SshSession } from '../../orchestrator/ssh/session.ts';
import { startCutProxy } from '../helpers/cut-proxy.ts';
import {
  connectOptions,
  freePort,
  generateKey,
  type Sshd,
  startSshd,
  writeKnownHostsFor,
} from '../helpers/sshd.ts';

const run = promisify(execFile);

let sshd: Sshd;
let dir: string;

beforeAll(async () => {
  sshd = await startSshd();
  dir = await mkdtemp(join(tmpdir(), 'bm-ssh-auth-'));
});

afterAll(async () => {
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
});

const options = (extra: Partial<ConnectOptions> = {}): ConnectOptions => connectOptions(sshd, extra);

async function startAgent(keyPaths: string[]): Promise<{ socket: string; stop: () => Promise<void> }> {
  const socket = join(dir, `agent-${Math.random().toString(36).slice(2)}.sock`);
  const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
  const deadline = Date.now() + 5000;
  while (
    !(await stat(socket).then(
      (s) => s.isSocket(),
      () => false,
    ))
  ) {
    if (Date.now() > deadline) throw new Error('ssh-agent did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
  for (const key of keyPaths)
    await run('ssh-add', ['-q', key], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
  return {
    socket,
    stop: async () => {
      agent.kill();
      await new Promise((r) => agent.once('exit', r));
    },
  };
}

describe('SshSession.connect', () => {
  it('logs in with a key file and learns that the user is root', async () => {
    const session = await SshSession.connect(options());
    expect(session.isRoot).toBe(true);
    expect((await session.exec('whoami')).stdout).toBe('root\n');
    await session.close();
  });

  it('logs in through ssh-agent when no key file is given', async () => {
    const agent = await startAgent([sshd.clientKeyPath]);
    try {
      const session = await SshSession.connect(options({ identityFiles: [], agentSocket: agent.socket }));
      expect((await session.exec('true')).exitCode).toBe(0);
      await session.close();
    } finally {
      await agent.stop();
    }
  });

  it('falls back to the key file when the agent holds no key the server accepts', async () => {
    const stranger = await generateKey(join(dir, 'agent-stranger'));
    const agent = await startAgent([stranger.path]);
    try {
      const session = await SshSession.connect(options({ agentSocket: agent.socket }));
      expect((await session.exec('true')).exitCode).toBe(0);
      await session.close();
    } finally {
      await agent.stop();
    }
  });

  it('uses SSH_AUTH_SOCK when no agent socket is given', async () => {
    const agent = await startAgent([sshd.clientKeyPath]);
    const saved = process.env.SSH_AUTH_SOCK;
    process.env.SSH_AUTH_SOCK = agent.socket;
    try {
      const { agentSocket: _drop, ...opts } = options({ identityFiles: [] });
      const session = await SshSession.connect(opts);
      await session.close();
    } finally {
      process.env.SSH_AUTH_SOCK = saved;
      await agent.stop();
    }
  });

  it('asks for the passphrase of an encrypted key once, across two connections', async () => {
    const key = await generateKey(join(dir, 'encrypted'), { passphrase: 'correct horse' });
    await sshd.authorizeKey(key.pub);
    const asked: string[] = [];
    const askPassphrase = async (path: string) => {
      asked.push(path);
      return 'correct horse';
    };
    const [first, second] = await Promise.all([
      SshSession.connect(options({ identityFiles: [key.path], askPassphrase })),
      SshSession.connect(options({ identityFiles: [key.path], askPassphrase })),
    ]);
    const third = await SshSession.connect(options({ identityFiles: [key.path], askPassphrase }));
    expect(asked).toEqual([key.path]);
    for (const s of [first, second, third]) await s.close();
  });

  it('asks again after a mistyped passphrase, then gets in', async () => {
    const key = await generateKey(join(dir, 'encrypted-typo'), { passphrase: 'right' });
    await sshd.authorizeKey(key.pub);
    const answers = ['wrong', 'right'];
    const session = await SshSession.connect(
      options({ identityFiles: [key.path], askPassphrase: async () => answers.shift()! }),
    );
    expect(answers).toEqual([]);
    await session.close();
  });

  it('refuses with AuthError naming the key it offered when the server does not accept it', async () => {
    const stranger = await generateKey(join(dir, 'stranger'));
    const err = await SshSession.connect(options({ identityFiles: [stranger.path] })).catch((e) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect(err.message).toContain(stranger.path);
    expect(err.message).toContain('authorized_keys');
  });

  it('refuses with AuthError, before connecting, when there is nothing to offer', async () => {
    const err = await SshSession.connect(options({ identityFiles: [join(dir, 'no-such-key')] })).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(AuthError);
    expect(err.message).toContain('no-such-key');
  });

  it('refuses with AuthError when an encrypted key has no passphrase prompt', async () => {
    const key = await generateKey(join(dir, 'encrypted-no-prompt'), { passphrase: 'x' });
    await sshd.authorizeKey(key.pub);
    const err = await SshSession.connect(options({ identityFiles: [key.path] })).catch((e) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect(err.message).toMatch(/encrypted/);
  });

  it('reports a closed port as UnreachableError', async () => {
    const port = await freePort();
    const err = await SshSession.connect(options({ port })).catch((e) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect(err.message).toMatch(/ECONNREFUSED/);
  });

  it('reports a server that never speaks SSH as UnreachableError after the ready timeout', async () => {
    const silent: Server = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as { port: number }).port;
    try {
      const started = Date.now();
      const err = await SshSession.connect(options({ port, readyTimeoutMs: 500 })).catch((e) => e);
      expect(err).toBeInstanceOf(UnreachableError);
      expect(err.message).toMatch(/handshake/i);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      silent.close();
    }
  });

  it('turns a connection cut in the middle of a command into UnreachableError', async () => {
    const proxy = await startCutProxy({ targetPort: sshd.port });
    const kh = await writeKnownHostsFor(sshd, join(dir, 'known_hosts_proxy'), proxy.port);
    try {
      const session = await SshSession.connect(options({ port: proxy.port, knownHostsFile: kh }));
      const pending = session.exec('sleep 10');
      setTimeout(() => proxy.cut(), 200);
      const err = await pending.catch((e) => e);
      expect(err).toBeInstanceOf(UnreachableError);
      expect(err.message).toMatch(/dropped/);
      // And the session stays honest about it afterwards.
      expect(await session.exec('true').catch((e) => e)).toBeInstanceOf(UnreachableError);
    } finally {
      await proxy.close();
    }
  });

  it('notices a link that silently stops carrying data, through keepalives', async () => {
    const proxy = await startCutProxy({ targetPort: sshd.port });
    const kh = await writeKnownHostsFor(sshd, join(dir, 'known_hosts_frozen'), proxy.port);
    try {
      const session = await SshSession.connect(
        options({ port: proxy.port, knownHostsFile: kh, keepaliveIntervalMs: 200, keepaliveCountMax: 2 }),
      );
      const started = Date.now();
      const pending = session.exec('sleep 30');
      proxy.freeze();
      const err = await pending.catch((e) => e);
      expect(err).toBeInstanceOf(UnreachableError);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await proxy.close();
    }
  });

  it('reaches a host through a jump host with forwardOut', async () => {
    const jump = await SshSession.connect(options());
    const tunnel = await jump.forwardOut('127.0.0.1', sshd.port);
    const inner = await SshSession.connect(options({ sock: tunnel }));
    expect((await inner.exec('echo through')).stdout).toBe('through\n');
    await inner.close();
    await jump.close();
  });
});
