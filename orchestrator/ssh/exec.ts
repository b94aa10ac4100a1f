// Run one command on an open SSH connection and collect everything it did: one flat
// record for success and failure alike (execa's shape), raw bytes so binary output
// (readFile) survives.

import type { Client, ClientChannel } from 'ssh2';

export interface RawExecResult {
  exitCode: number | null;
  signal: string | null;
  stdout: Buffer;
  stderr: Buffer;
  durationMs: number;
  /** The command ran past its timeout: it was sent SIGTERM and no longer waited for. */
  timedOut: boolean;
  /** The channel closed without an exit status (usually: the connection dropped). */
  noExitStatus: boolean;
}

export interface RawExecOptions {
  stdin?: string | Buffer;
  timeoutMs?: number;
}

/**
 * sshd counts a session against MaxSessions until it has reaped the session's process, a
 * little after the channel closed on our side: an open refused then is tried again after a
 * short wait (a loaded device can take a while), a refusal that persists is an error.
 */
const REOPEN_WAITS_MS = [25, 50, 100, 200, 400, 800];

/** Open an exec channel for `command`, feed stdin, wait for the channel to close. */
export async function execOnChannel(
  client: Client,
  command: string,
  opts: RawExecOptions = {},
): Promise<RawExecResult> {
  const started = performance.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await new Promise<RawExecResult>((resolve, reject) => {
        // Listeners go on in the callback itself: the command's output, exit status and close
        // can arrive in the same read as the open confirmation, and an `exit` event emitted
        // before anyone listens is gone (a microtask later is too late).
        client.exec(command, (err, channel) =>
          err ? reject(err) : collect(channel, opts, started, resolve),
        );
      });
    } catch (err) {
      const wait = REOPEN_WAITS_MS[attempt];
      if (wait === undefined || !isOpenRefusal(err)) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** ssh2's error for SSH_MSG_CHANNEL_OPEN_FAILURE (the connection itself is fine). */
function isOpenRefusal(err: unknown): boolean {
  return err instanceof Error && /^\(SSH\) Channel open failure/.test(err.message);
}

function collect(
  channel: ClientChannel,
  opts: RawExecOptions,
  started: number,
  resolve: (r: RawExecResult) => void,
): void {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let exitCode: number | null = null;
  let signal: string | null = null;
  let sawExit = false;
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  const settle = () => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    resolve({
      exitCode,
      signal,
      stdout: Buffer.concat(out),
      stderr: Buffer.concat(err),
      durationMs: Math.round(performance.now() - started),
      timedOut,
      noExitStatus: !sawExit,
    });
  };

  channel.on('data', (d: Buffer) => out.push(d));
  channel.stderr.on('data', (d: Buffer) => err.push(d));
  channel.on('exit', (code: number | null, sig?: string) => {
    sawExit = true;
    exitCode = code ?? null;
    signal = sig ?? null;
  });
  channel.on('close', settle);

  if (opts.timeoutMs !== undefined) {
    timer = setTimeout(() => {
      timedOut = true;
      sendSignal(channel, 'TERM');
      channel.close();
      // sshd answers our close only once the command has exited; do not wait forever.
      timer = setTimeout(settle, KILL_GRACE_MS);
    }, opts.timeoutMs);
  }

  const stdin = opts.stdin;
  if (stdin !== undefined && stdin.length > 0) channel.end(stdin);
  else channel.end();
}

/** How long a timed-out command gets to die after SIGTERM before we stop waiting for it. */
const KILL_GRACE_MS = 2000;

/**
 * Send a signal request on a session channel. ssh2's channel.signal() refuses once our
 * side has sent EOF (which every command gets, so reads of stdin end), though the protocol
 * allows it; so the request goes through ssh2's protocol object. OpenSSH delivers it for
 * non-root logins only ("session signalling requires privilege separation"), and the login
 * user may not signal a root-owned sudo: for a root login or a sudo command the command
 * keeps running on the host and we merely stop waiting for it.
 */
function sendSignal(channel: ClientChannel, name: string): void {
  const internals = channel as unknown as {
    outgoing?: { id?: number; state?: string };
    _client?: { _protocol?: { signal?: (id: number, name: string) => void } };
  };
  const id = internals.outgoing?.id;
  const state = internals.outgoing?.state;
  const protocol = internals._client?._protocol;
  if (id !== undefined && (state === 'open' || state === 'eof') && typeof protocol?.signal === 'function') {
    protocol.signal(id, name);
  }
}
