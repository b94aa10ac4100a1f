// One SSH connection to one host: connect (verified host key, agent or key files), run
// commands (optionally as root through sudo), read files, upload files, open tunnels for
// jump hosts. The only module outside orchestrator/ssh that other code needs.

import type { Duplex, Writable } from 'node:stream';
import pLimit from 'p-limit';
import ssh2, { type SFTPWrapper, type Client as Ssh2Client } from 'ssh2';
import { AuthError, RemoteCommandError, UnreachableError } from '../errors.ts';
import { gatherCredentials, makeAuthHandler } from './auth.ts';
import { connectError, droppedError } from './connect-errors.ts';
import { execOnChannel, type RawExecResult } from './exec.ts';
import { declineHostKeyProofs } from './host-key-rotation.ts';
import { type HostShell, parseShellProbe, SHELL_PROBE_COMMAND } from './host-shell.ts';
import { hostKeyAlgorithmPreference, makeHostVerifier } from './host-verifier.ts';
import { shellJoin } from './quote.ts';
import {
  passwordStdin,
  SUDO_PROBE,
  type SudoMode,
  scrubSecret,
  sudoRefusesUser,
  sudoWantsPassword,
  sudoWrap,
} from './sudo.ts';
import {
  type RunningCommand,
  type UploadOptions,
  type UploadResult,
  type UploadSource,
  uploadFile,
} from './upload.ts';

// ssh2 is CommonJS: Node's ESM loader sees only its default export.
const { Client } = ssh2;

export interface ConnectOptions {
  host: string;
  port: number;
  username: string;
  /** Private key files; an encrypted one asks askPassphrase once per file per process. */
  identityFiles?: string[];
  /** Default process.env.SSH_AUTH_SOCK; null = no agent. */
  agentSocket?: string | null;
  /** Host keys are always verified against this file. */
  knownHostsFile: string;
  /** Trust on first use: record unknown keys. A changed key is refused regardless. */
  acceptNewHostKeys?: boolean;
  /** Record new host keys hashed (default true, like Debian's HashKnownHosts yes). */
  hashKnownHosts?: boolean;
  askPassphrase?: (keyPath: string) => Promise<string>;
  /** Asked at most once per session, only when sudo wants a password. */
  sudoPassword?: () => Promise<string>;
  readyTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /** A ready-made stream to talk SSH over (a jump host's forwardOut). */
  sock?: Duplex;
  /** Every command line sent to the host, as sent. Never contains a secret. */
  log?: (line: string) => void;
}

export interface ExecResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  /** The command outran `timeoutMs`: it was sent SIGTERM (delivered by OpenSSH for non-root logins only). */
  timedOut: boolean;
}

export interface ExecOptions {
  stdin?: string | Buffer;
  /** Run as root: directly when logged in as root, else through sudo. */
  sudo?: boolean;
  timeoutMs?: number;
}

/** OpenSSH allows 10 channels per connection (MaxSessions); stay under it, with room for SFTP. */
const MAX_CHANNELS = 8;
/** The last this many characters of stderr go into a RemoteCommandError message. */
const STDERR_TAIL = 2000;

export class SshSession {
  private closed = false;
  private lastError: Error | undefined;
  private sftpChannel: Promise<SFTPWrapper> | undefined;
  private sudoMode: Promise<SudoMode> | undefined;
  private sudoSecret: string | undefined;
  private readonly channels = pLimit(MAX_CHANNELS);

  private constructor(
    private readonly client: Ssh2Client,
    private readonly opts: ConnectOptions,
    /** `user@host:port`, for messages. */
    readonly target: string,
  ) {
    client.on('error', (err: Error) => {
      this.lastError = err;
    });
    client.on('close', () => {
      this.closed = true;
      this.sftpChannel = undefined;
    });
  }

  private root = false;

  /** Whether the login user is root (by name, else learned with `id -u` right after connecting). */
  get isRoot(): boolean {
    return this.root;
  }

  private hostShell: HostShell = 'posix';

  /** The shell that runs our commands: sh on Linux, cmd.exe or PowerShell on Windows (host-shell.ts). */
  get shell(): HostShell {
    return this.hostShell;
  }

  /** Connect, verify the host key, authenticate. Throws UnreachableError, AuthError or HostKeyError. */
  static async connect(opts: ConnectOptions): Promise<SshSession> {
    const target = `${opts.username}@${opts.host}:${opts.port}`;
    const creds = await gatherCredentials(opts);
    if (!creds.agentSocket && creds.keys.length === 0) {
      const why = creds.notes.length > 0 ? `: ${creds.notes.join('; ')}` : '';
      throw new AuthError(
        `no credentials to offer ${target}${why}. Start ssh-agent and ssh-add a key, or give --identity FILE.`,
      );
    }
    const auth = makeAuthHandler(opts.username, creds);
    const hostKey = makeHostVerifier({
      host: opts.host,
      port: opts.port,
      knownHostsFile: opts.knownHostsFile,
      acceptNewHostKeys: opts.acceptNewHostKeys ?? false,
      hashKnownHosts: opts.hashKnownHosts ?? true,
    });
    const serverHostKey = await hostKeyAlgorithmPreference(opts.knownHostsFile, opts.host, opts.port);

    const client = new Client();
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error & { level?: string }) => {
        if (settled) return;
        // A broken agent is not fatal: ssh2 moves on to the next credential.
        if (err.level === 'agent') return;
        settled = true;
        client.end();
        reject(hostKey.rejection() ?? connectError(err, { target, tried: auth.tried(), notes: creds.notes }));
      };
      const closed = () => fail(Object.assign(new Error('connection closed'), { level: 'protocol' }));
      client.once('ready', () => {
        settled = true;
        client.off('error', fail).off('close', closed);
        resolve();
      });
      client.on('error', fail);
      client.on('close', closed);
      client.connect({
        host: opts.host,
        port: opts.port,
        username: opts.username,
        sock: opts.sock,
        authHandler: auth.handler,
        hostVerifier: hostKey.verify,
        algorithms: serverHostKey ? { serverHostKey } : undefined,
        readyTimeout: opts.readyTimeoutMs ?? 20_000,
        keepaliveInterval: opts.keepaliveIntervalMs ?? 10_000,
        keepaliveCountMax: opts.keepaliveCountMax ?? 3,
      });
      declineHostKeyProofs(client);
      // Small SFTP requests and command round trips must not wait for Nagle.
      client.setNoDelay(true);
    });

    const session = new SshSession(client, opts, target);
    // First ask which shell this is: `id -u` would be an error in cmd.exe and PowerShell.
    const shell = parseShellProbe(await session.exec(SHELL_PROBE_COMMAND));
    if (shell.kind === 'unknown') {
      await session.close();
      throw new RemoteCommandError(
        `cannot tell which shell runs commands on ${target}: ${shell.detail}. ` +
          'The login shell must be sh-compatible (Linux) or cmd.exe/PowerShell (Windows OpenSSH).',
        null,
        '',
      );
    }
    session.hostShell = shell.kind;
    // Windows: no root, no sudo; whether the user is an administrator is the probe's business.
    if (shell.kind !== 'posix') return session;
    // The login named root is uid 0: skip a round trip (and a process start on the device)
    // that every host of a fleet would pay.
    if (opts.username === 'root') {
      session.root = true;
      return session;
    }
    const id = await session.exec('id -u');
    if (id.exitCode !== 0) {
      await session.close();
      throw new RemoteCommandError(
        `\`id -u\` failed on ${target}: ${id.stderr.trim()}`,
        id.exitCode,
        id.stderr,
      );
    }
    session.root = id.stdout.trim() === '0';
    return session;
  }

  /** Run a shell command line (build it with shellJoin). Resolves whatever the exit code. */
  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const raw = await this.execRaw(command, opts);
    return {
      exitCode: raw.exitCode,
      signal: raw.signal,
      stdout: this.scrub(raw.stdout.toString('utf8')),
      stderr: this.scrub(raw.stderr.toString('utf8')),
      durationMs: raw.durationMs,
      timedOut: raw.timedOut,
    };
  }

  /** Like exec, but a non-zero exit (or a timeout) throws RemoteCommandError with the stderr tail. */
  async execChecked(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const r = await this.exec(command, opts);
    if (r.exitCode !== 0 || r.timedOut) throw this.commandError(command, r);
    return r;
  }

  /** Upload a file resumably, verified by sha256 on the host; skipped when already there. */
  upload(source: UploadSource, remotePath: string, opts: UploadOptions): Promise<UploadResult> {
    return this.guard(`upload of ${remotePath}`, () =>
      uploadFile(
        {
          target: this.target,
          sftp: () => this.sftp(),
          run: (cmd, stdin) => this.exec(cmd, stdin === undefined ? {} : { stdin }),
          start: (cmd) => this.start(cmd),
          batch: (fn) => this.batch(fn),
        },
        source,
        remotePath,
        opts,
      ),
    );
  }

  /** The bytes of a remote file, as the login user or as root. */
  async readFile(remotePath: string, opts: { sudo?: boolean } = {}): Promise<Buffer> {
    const command = shellJoin(['cat', '--', remotePath]);
    const raw = await this.execRaw(command, { sudo: opts.sudo });
    if (raw.exitCode !== 0) {
      throw this.commandError(command, {
        exitCode: raw.exitCode,
        signal: raw.signal,
        stdout: '',
        stderr: this.scrub(raw.stderr.toString('utf8')),
        durationMs: raw.durationMs,
        timedOut: raw.timedOut,
      });
    }
    return raw.stdout;
  }

  /** A TCP stream from the host to host:port: pass it as `sock` to reach a host behind this one. */
  forwardOut(host: string, port: number): Promise<Duplex> {
    return this.guard(`a tunnel to ${host}:${port}`, () =>
      this.channels(
        () =>
          new Promise<Duplex>((resolve, reject) => {
            this.client.forwardOut('127.0.0.1', 0, host, port, (err, stream) =>
              err ? reject(err) : resolve(stream),
            );
          }),
      ),
    );
  }

  /** Close the connection; resolves once it is closed. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // The peer did not answer our disconnect: drop the socket.
        (this.client as unknown as { destroy(): void }).destroy();
        resolve();
      }, 2000);
      this.client.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.client.end();
    });
  }

  // ---- internals -------------------------------------------------------------------------

  private async execRaw(command: string, opts: ExecOptions): Promise<RawExecResult> {
    let line = command;
    let stdin = opts.stdin;
    if (opts.sudo) {
      if (this.hostShell !== 'posix') {
        throw new RemoteCommandError(`sudo is not available on ${this.target} (a Windows host)`, null, '');
      }
      const mode = await this.resolveSudoMode();
      if (mode !== 'root') line = sudoWrap(command, mode);
      if (mode === 'password') stdin = passwordStdin(this.sudoSecret!, stdin);
    }
    return this.run(line, { stdin, timeoutMs: opts.timeoutMs });
  }

  /** Send one command line as is; the only place a channel is opened for a command. */
  private run(line: string, opts: { stdin?: string | Buffer; timeoutMs?: number }): Promise<RawExecResult> {
    return this.guard(`\`${short(line)}\``, async () => {
      this.opts.log?.(line);
      const r = await this.channels(() => execOnChannel(this.client, line, opts));
      if (r.noExitStatus && this.closed)
        throw droppedError(this.target, `\`${short(line)}\``, this.lastError);
      return r;
    });
  }

  /**
   * Run `fn` with the connection's socket corked, so the SSH packets it writes leave in one
   * writev on the next tick instead of one write each.
   */
  private batch(fn: () => void): void {
    const sock = (this.client as unknown as { _sock?: Writable })._sock;
    if (!sock || typeof sock.cork !== 'function') {
      fn();
      return;
    }
    sock.cork();
    try {
      fn();
    } finally {
      process.nextTick(() => sock.uncork());
    }
  }

  /**
   * Start a command as the login user whose stdin is written while it runs (the upload's
   * streaming hash). It holds a channel slot until it exits.
   */
  private start(line: string): Promise<RunningCommand> {
    return this.guard(`\`${short(line)}\``, async () => {
      this.opts.log?.(line);
      return new Promise<RunningCommand>((resolve, reject) => {
        // The slot is held (the inner promise pending) until the channel closes.
        void this.channels(
          () =>
            new Promise<void>((held) => {
              this.client.exec(line, (err, channel) => {
                if (err) {
                  held();
                  reject(err);
                  return;
                }
                const out: Buffer[] = [];
                const errOut: Buffer[] = [];
                let exitCode: number | null = null;
                const closed = new Promise<void>((r) =>
                  channel.once('close', () => {
                    held();
                    r();
                  }),
                );
                channel.on('error', () => {});
                channel.on('data', (d: Buffer) => out.push(d));
                channel.stderr.on('data', (d: Buffer) => errOut.push(d));
                channel.on('exit', (code: number | null) => {
                  exitCode = code ?? null;
                });
                resolve({
                  write: (text) => {
                    if (channel.writable) channel.write(text);
                  },
                  finish: async () => {
                    channel.end();
                    await closed;
                    return {
                      exitCode,
                      stdout: this.scrub(Buffer.concat(out).toString('utf8')),
                      stderr: this.scrub(Buffer.concat(errOut).toString('utf8')),
                    };
                  },
                  abort: () => {
                    try {
                      channel.end();
                      channel.close();
                    } catch {
                      // already gone
                    }
                  },
                });
              });
            }),
        );
      });
    });
  }

  /** Learn once per session how to become root, asking for the sudo password only if sudo wants one. */
  private resolveSudoMode(): Promise<SudoMode> {
    this.sudoMode ??= (async (): Promise<SudoMode> => {
      if (this.isRoot) return 'root';
      const probe = await this.run(SUDO_PROBE, {});
      if (probe.exitCode === 0) return 'nopasswd';
      const stderr = probe.stderr.toString('utf8');
      if (!sudoWantsPassword(stderr)) {
        throw new RemoteCommandError(
          `cannot become root on ${this.target} with sudo: ${stderr.trim() || `exit ${probe.exitCode}`}. ` +
            `Log in as root, or give ${this.opts.username} sudo rights.`,
          probe.exitCode,
          stderr,
        );
      }
      if (!this.opts.sudoPassword) {
        throw new RemoteCommandError(
          `sudo on ${this.target} wants a password for ${this.opts.username}: ` +
            `ask for it (--ask-sudo-password) or allow NOPASSWD for this user.`,
          probe.exitCode,
          stderr,
        );
      }
      this.sudoSecret = await this.opts.sudoPassword();
      // Check the password once with a no-op, so a wrong one fails here rather than sudo
      // reading the caller's stdin as further password attempts.
      const check = await this.run(sudoWrap('true', 'password'), { stdin: passwordStdin(this.sudoSecret) });
      const checkStderr = this.scrub(check.stderr.toString('utf8'));
      if (check.exitCode !== 0 && sudoRefusesUser(checkStderr)) {
        // sudo asks unlisted users for their password too, and only then says no.
        throw new RemoteCommandError(
          `cannot become root on ${this.target} with sudo: ${checkStderr.trim()}. ` +
            `Log in as root, or give ${this.opts.username} sudo rights.`,
          check.exitCode,
          checkStderr,
        );
      }
      if (check.exitCode !== 0) {
        throw new AuthError(
          `sudo on ${this.target} rejected the password for ${this.opts.username}; ` +
            `check it and run again (${checkStderr.trim()}).`,
        );
      }
      return 'password';
    })();
    return this.sudoMode;
  }

  private sftp(): Promise<SFTPWrapper> {
    if (!this.sftpChannel) {
      const opening = this.channels(
        () =>
          new Promise<SFTPWrapper>((resolve, reject) =>
            this.client.sftp((err, s) => (err ? reject(err) : resolve(s))),
          ),
      );
      this.sftpChannel = opening;
      opening.then(
        (s) =>
          s.on('close', () => {
            if (this.sftpChannel === opening) this.sftpChannel = undefined;
          }),
        () => {
          if (this.sftpChannel === opening) this.sftpChannel = undefined;
        },
      );
    }
    return this.sftpChannel;
  }

  /** Turn any failure that happens because the connection is gone into UnreachableError. */
  private async guard<T>(during: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw droppedError(this.target, during, this.lastError);
    try {
      return await fn();
    } catch (err) {
      // Whatever failed (an SFTP request, a channel), with the connection gone the cause is the drop.
      if (this.closed && !(err instanceof UnreachableError))
        throw droppedError(this.target, during, err as Error);
      throw err;
    }
  }

  private commandError(command: string, r: ExecResult): RemoteCommandError {
    const tail = r.stderr.length > STDERR_TAIL ? `…${r.stderr.slice(-STDERR_TAIL)}` : r.stderr;
    const how = r.timedOut
      ? `timed out after ${r.durationMs} ms`
      : r.exitCode === null
        ? `was killed by ${r.signal ?? 'an unknown signal'}`
        : `exited with ${r.exitCode}`;
    const detail = tail.trim() ? `:\n${tail.trimEnd()}` : ' (no stderr)';
    return new RemoteCommandError(
      `\`${short(command)}\` on ${this.target} ${how}${detail}`,
      r.exitCode,
      tail,
    );
  }

  private scrub(text: string): string {
    return scrubSecret(text, this.sudoSecret);
  }
}

function short(command: string): string {
  const oneLine = command.replace(/\s+/g, ' ');
  return oneLine.length > 200 ? `${oneLine.slice(0, 200)}…` : oneLine;
}
