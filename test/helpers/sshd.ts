// A real OpenSSH sshd on 127.0.0.1 for integration tests: its own temporary directory,
// host key, client key and authorized_keys, on a free port. Tests run as root (sshd needs
// root for privilege separation and to log users in).

import { execFile, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { appendFile, chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ConnectOptions } from '../../orchestrator/ssh/session.ts';

const run = promisify(execFile);
const SSHD = '/usr/sbin/sshd';

export interface SshdOptions {
  /** Only these users may log in (AllowUsers); default: anyone with the client key. */
  allowUsers?: string[];
  /** More public key lines (`ssh-ed25519 AAAA... comment`) accepted for every user. */
  extraAuthorizedKeys?: string[];
  /** Host key type; ed25519 unless a test needs another. */
  hostKeyType?: 'ed25519' | 'ecdsa' | 'rsa';
  /** More host keys of other types, offered too (listed in `hostKeys`). */
  extraHostKeyTypes?: ('ed25519' | 'ecdsa' | 'rsa')[];
  /** sshd's MaxStartups (e.g. "10:30:100"); OpenSSH's default drops unauthenticated connections past 10. */
  maxStartups?: string;
  /** sshd's MaxSessions (channels per connection; OpenSSH default 10). */
  maxSessions?: number;
  /** Extra raw sshd_config lines; they win over the defaults (e.g. `LogLevel DEBUG3`). */
  extraConfig?: string[];
}

export interface Sshd {
  host: '127.0.0.1';
  port: number;
  /** The temporary directory; removed by stop(). */
  dir: string;
  /** `ssh-ed25519 AAAA...` of the server's host key. */
  hostKeyPub: string;
  /** The key blob of the host key (what ssh2 hands to a host verifier). */
  hostKeyBlob: Buffer;
  /** Every host key sshd has: the main one first, then extraHostKeyTypes. */
  hostKeys: { type: string; pub: string; blob: Buffer; path: string }[];
  /** A plain known_hosts line for this server: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`. */
  knownHostsLine: string;
  /** A known_hosts file (in `dir`) holding just `knownHostsLine`. */
  knownHostsFile: string;
  /** An unencrypted ed25519 client key, authorized for every user. */
  clientKeyPath: string;
  clientKeyPub: string;
  /** sshd's own log (-E), handy when a test fails. */
  logFile: string;
  /** Accept one more public key line from now on. */
  authorizeKey(pubLine: string): Promise<void>;
  stop(): Promise<void>;
}

/** Generate an unencrypted key pair (or encrypted, with `passphrase`) with ssh-keygen. */
export async function generateKey(
  path: string,
  opts: { type?: 'ed25519' | 'ecdsa' | 'rsa'; passphrase?: string; comment?: string } = {},
): Promise<{ path: string; pub: string }> {
  const type = opts.type ?? 'ed25519';
  const args = ['-q', '-t', type, '-N', opts.passphrase ?? '', '-C', opts.comment ?? 'test', '-f', path];
  if (type === 'rsa') args.push('-b', '2048');
  await run('ssh-keygen', args);
  return { path, pub: (await readFile(`${path}.pub`, 'utf8')).trim() };
}

/** A TCP port nobody listens on right now (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Start sshd and wait until it answers with its SSH banner. */
export async function startSshd(opts: SshdOptions = {}): Promise<Sshd> {
  const dir = await mkdtemp(join(tmpdir(), 'bm-sshd-'));
  // Users other than root read authorized_keys with their own rights.
  await chmod(dir, 0o755);
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

  const hostKeys: Sshd['hostKeys'] = [];
  for (const [i, type] of [opts.hostKeyType ?? 'ed25519', ...(opts.extraHostKeyTypes ?? [])].entries()) {
    const path = join(dir, i === 0 ? 'host_key' : `host_key_${i}`);
    const { pub } = await generateKey(path, { type, comment: 'host' });
    const [keyType = '', b64 = ''] = pub.split(' ');
    hostKeys.push({ type: keyType, pub: `${keyType} ${b64}`, blob: Buffer.from(b64, 'base64'), path });
  }
  const hostKey = hostKeys[0]!;
  const client = await generateKey(join(dir, 'client_key'), { comment: 'client' });
  const authorizedKeys = join(dir, 'authorized_keys');
  await writeFile(authorizedKeys, [client.pub, ...(opts.extraAuthorizedKeys ?? [])].join('\n') + '\n', {
    mode: 0o644,
  });

  // sshd keeps the first value it reads for a keyword: the caller's lines go first so they
  // can override any default below.
  const config = [
    ...(opts.extraConfig ?? []),
    'ListenAddress 127.0.0.1',
    ...hostKeys.map((k) => `HostKey ${k.path}`),
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${authorizedKeys}`,
    'UsePAM no',
    'StrictModes no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    'Subsystem sftp internal-sftp',
    'LogLevel VERBOSE',
    ...(opts.allowUsers ? [`AllowUsers ${opts.allowUsers.join(' ')}`] : []),
    ...(opts.maxStartups ? [`MaxStartups ${opts.maxStartups}`] : []),
    ...(opts.maxSessions ? [`MaxSessions ${opts.maxSessions}`] : []),
  ];
  const configFile = join(dir, 'sshd_config');
  await writeFile(configFile, config.join('\n') + '\n');
  const logFile = join(dir, 'sshd.log');

  // The port is free when picked but may be taken before sshd binds it: try a few.
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const knownHostsFile = await writeKnownHostsFor(
      { hostKeyPub: hostKey.pub, port },
      join(dir, 'known_hosts'),
    );
    try {
      const stop = await launch(configFile, port, logFile);
      return {
        host: '127.0.0.1',
        port,
        dir,
        hostKeyPub: hostKey.pub,
        hostKeyBlob: hostKey.blob,
        hostKeys,
        knownHostsLine: `[127.0.0.1]:${port} ${hostKey.pub}`,
        knownHostsFile,
        clientKeyPath: client.path,
        clientKeyPub: client.pub,
        logFile,
        authorizeKey: (pub) => appendFile(authorizedKeys, `${pub.trim()}\n`),
        stop: async () => {
          await stop();
          await rm(dir, { recursive: true, force: true });
        },
      };
    } catch (err) {
      lastError = err;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}

async function launch(configFile: string, port: number, logFile: string): Promise<() => Promise<void>> {
  const child = spawn(SSHD, ['-D', '-f', configFile, '-p', String(port), '-E', logFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let gone = false;
  void exited.then(() => {
    gone = true;
  });

  const deadline = Date.now() + 10_000;
  while (!(await answersWithBanner(port, '127.0.0.1', 1000))) {
    if (gone || Date.now() > deadline) {
      child.kill('SIGKILL');
      const log = await readFile(logFile, 'utf8').catch(() => '');
      throw new Error(`sshd did not start on port ${port}: ${stderr}${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return async () => {
    if (!gone) child.kill('SIGTERM');
    await exited;
  };
}

/** True when HOST:PORT answers with an SSH banner within TIMEOUT_MS. */
export function answersWithBanner(port: number, host = '127.0.0.1', timeoutMs = 2000): Promise<boolean> {
  return new Promise((done) => {
    const sock = createConnection({ host, port });
    const finish = (ok: boolean) => {
      sock.destroy();
      done(ok);
    };
    sock.setTimeout(timeoutMs, () => finish(false));
    sock.once('error', () => finish(false));
    sock.once('data', (d) => finish(d.toString('latin1').startsWith('SSH-2.0-')));
  });
}

/**
 * Writes a known_hosts file at PATH that trusts SSHD's host key at 127.0.0.1:PORT: its own
 * port, or that of a proxy in front of it.
 */
export async function writeKnownHostsFor(
  sshd: Pick<Sshd, 'hostKeyPub' | 'port'>,
  path: string,
  port = sshd.port,
): Promise<string> {
  await writeFile(path, `[127.0.0.1]:${port} ${sshd.hostKeyPub}\n`);
  return path;
}

/** Options to log in to SSHD as root with its client key, no agent, trusting its known_hosts file; EXTRA wins. */
export function connectOptions(sshd: Sshd, extra: Partial<ConnectOptions> = {}): ConnectOptions {
  return {
    host: '127.0.0.1',
    port: sshd.port,
    username: 'root',
    identityFiles: [sshd.clientKeyPath],
    agentSocket: null,
    knownHostsFile: sshd.knownHostsFile,
    ...extra,
  };
}

export interface TestUser {
  name: string;
  /** Login password (also what sudo asks for). Set via chpasswd's stdin, never argv. */
  password?: string;
  /** none: no sudo rights; nopasswd: `NOPASSWD: ALL`; password: sudo asks for the password. */
  sudo?: 'none' | 'nopasswd' | 'password';
}

// useradd/userdel lock /etc/passwd; test files running in parallel may collide: retry.
async function withPasswdLockRetry(args: [string, string[]]): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await run(...args);
      return;
    } catch (err) {
      const msg = String((err as { stderr?: string }).stderr ?? err);
      if (attempt < 20 && /lock|try again/i.test(msg)) {
        await new Promise((r) => setTimeout(r, 100 + attempt * 50));
        continue;
      }
      throw err;
    }
  }
}

/**
 * Create (or reset) a local user that the test sshd lets in with its client key, with the
 * sudo rights asked for. Idempotent; undo with removeTestUser.
 */
export async function ensureTestUser(user: TestUser): Promise<void> {
  const exists = await run('id', ['-u', user.name]).then(
    () => true,
    () => false,
  );
  if (!exists) await withPasswdLockRetry(['useradd', ['-m', '-s', '/bin/sh', user.name]]);
  // With UsePAM no, sshd refuses a locked account ("!" in shadow) even for key logins:
  // give it a real password or the unlocked "no password" marker.
  if (user.password !== undefined) {
    await new Promise<void>((resolve, reject) => {
      const p = execFile('chpasswd', (err) => (err ? reject(err) : resolve()));
      p.stdin?.end(`${user.name}:${user.password}\n`);
    });
  } else {
    await withPasswdLockRetry(['usermod', ['-p', '*', user.name]]);
  }
  const sudoers = join('/etc/sudoers.d', `bm-test-${user.name}`);
  const rule =
    user.sudo === 'nopasswd'
      ? `${user.name} ALL=(ALL:ALL) NOPASSWD: ALL\n`
      : user.sudo === 'password'
        ? `${user.name} ALL=(ALL:ALL) ALL\n`
        : null;
  if (rule) await writeFile(sudoers, rule, { mode: 0o440 });
  else await rm(sudoers, { force: true });
}

/** Remove a user made by ensureTestUser, its home and its sudoers file. */
export async function removeTestUser(name: string): Promise<void> {
  await rm(join('/etc/sudoers.d', `bm-test-${name}`), { force: true });
  const exists = await run('id', ['-u', name]).then(
    () => true,
    () => false,
  );
  if (exists) await withPasswdLockRetry(['userdel', ['-r', '-f', name]]).catch(() => {});
}
