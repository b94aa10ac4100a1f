// Host key verification on real connections: unknown keys refused by default, recorded
// on first use when asked, verified from the file afterwards; changed keys always refused.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostKeyError } from '../../orchestrator/errors.ts';
import { fingerprintSha256 } from '../../orchestrator/ssh/known-hosts.ts';
import { type ConnectOptions, SshSession } from '../../orchestrator/ssh/session.ts';
import { connectOptions, generateKey, type Sshd, startSshd } from '../helpers/sshd.ts';

const run = promisify(execFile);

let sshd: Sshd;
let dir: string;
let fileCounter = 0;

beforeAll(async () => {
  // An ed25519 key and an RSA key, to check that a host known by one is asked for that one.
  sshd = await startSshd({ extraHostKeyTypes: ['rsa'] });
  dir = await mkdtemp(join(tmpdir(), 'bm-ssh-hostkeys-'));
});

afterAll(async () => {
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function knownHosts(content?: string): Promise<string> {
  const file = join(dir, `known_hosts_${++fileCounter}`);
  if (content !== undefined) await writeFile(file, content);
  return file;
}

const options = (knownHostsFile: string, extra: Partial<ConnectOptions> = {}): ConnectOptions =>
  connectOptions(sshd, { knownHostsFile, ...extra });

async function fingerprintOf(pubFile: string): Promise<string> {
  const { stdout } = await run('ssh-keygen', ['-lf', pubFile]);
  return stdout.split(' ')[1]!;
}

describe('host key verification', () => {
  it('refuses an unknown host by default, naming the fingerprint ssh-keygen shows and the flag to accept it', async () => {
    const file = await knownHosts();
    const err = await SshSession.connect(options(file)).catch((e) => e);
    expect(err).toBeInstanceOf(HostKeyError);
    expect(err.kind).toBe('unknown');
    expect(err.fingerprint).toBe(await fingerprintOf(`${sshd.hostKeys[0]!.path}.pub`));
    expect(err.message).toContain(err.fingerprint);
    expect(err.message).toContain('--accept-new-host-keys');
  });

  it('records an unknown host with acceptNewHostKeys, then verifies it from the file alone', async () => {
    const file = await knownHosts();
    const first = await SshSession.connect(options(file, { acceptNewHostKeys: true }));
    await first.close();
    const text = await readFile(file, 'utf8');
    expect(text.trim().split('\n')).toHaveLength(1);
    expect(text).not.toContain('127.0.0.1'); // hashed
    // OpenSSH agrees the recorded key is this server's key.
    const found = await run('ssh-keygen', ['-F', `[127.0.0.1]:${sshd.port}`, '-f', file]);
    expect(found.stdout).toContain(sshd.hostKeyPub.split(' ')[1]);

    const second = await SshSession.connect(options(file));
    await second.close();
    expect(await readFile(file, 'utf8')).toBe(text); // nothing appended the second time
  });

  it('records plain host names when hashing is turned off', async () => {
    const file = await knownHosts();
    const s = await SshSession.connect(options(file, { acceptNewHostKeys: true, hashKnownHosts: false }));
    await s.close();
    expect(await readFile(file, 'utf8')).toBe(`${sshd.knownHostsLine}\n`);
  });

  it('accepts a host whose entry ssh-keygen -H hashed', async () => {
    const file = await knownHosts(`# fleet\n${sshd.knownHostsLine}\n`);
    await run('ssh-keygen', ['-H', '-f', file]);
    expect(await readFile(file, 'utf8')).not.toContain('127.0.0.1');
    const s = await SshSession.connect(options(file));
    await s.close();
  });

  it('refuses a changed host key, even with acceptNewHostKeys, and leaves the file alone', async () => {
    const impostor = await generateKey(join(dir, 'impostor'));
    const [type, b64] = impostor.pub.split(' ');
    const content = `[127.0.0.1]:${sshd.port} ${type} ${b64}\n`;
    const file = await knownHosts(content);
    const err = await SshSession.connect(options(file, { acceptNewHostKeys: true })).catch((e) => e);
    expect(err).toBeInstanceOf(HostKeyError);
    expect(err.kind).toBe('changed');
    expect(err.fingerprint).toBe(fingerprintSha256(sshd.hostKeyBlob));
    expect(err.message).toContain(`ssh-keygen -R '[127.0.0.1]:${sshd.port}' -f ${file}`);
    expect(err.message).toContain(fingerprintSha256(Buffer.from(b64!, 'base64')));
    expect(await readFile(file, 'utf8')).toBe(content);
  });

  it('refuses a host key marked @revoked', async () => {
    const file = await knownHosts(`${sshd.knownHostsLine}\n@revoked * ${sshd.hostKeyPub}\n`);
    const err = await SshSession.connect(options(file)).catch((e) => e);
    expect(err).toBeInstanceOf(HostKeyError);
    expect(err.message).toMatch(/revoked/);
  });

  it('asks the server for the key type on record, so a host known by its RSA key still matches', async () => {
    const rsa = sshd.hostKeys.find((k) => k.type === 'ssh-rsa')!;
    const file = await knownHosts(`[127.0.0.1]:${sshd.port} ${rsa.pub}\n`);
    const s = await SshSession.connect(options(file));
    await s.close();
  });

  it('keeps a key recorded on first use even when authentication then fails, as ssh does', async () => {
    const file = await knownHosts();
    const stranger = await generateKey(join(dir, 'stranger'));
    await SshSession.connect(
      options(file, { identityFiles: [stranger.path], acceptNewHostKeys: true }),
    ).catch(() => {});
    // The key is recorded during the handshake, before authentication; the next connect
    // (without acceptNewHostKeys) verifies against it.
    const s = await SshSession.connect(options(file));
    await s.close();
  });
});
