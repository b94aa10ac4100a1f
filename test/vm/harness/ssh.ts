// A small SSH client for the harness's own checks (the product has its own SSH layer).
import { readFileSync } from 'node:fs';
import { Client } from 'ssh2';

export interface SshTarget {
  port: number;
  user: string;
  privateKeyPath: string;
  host?: string;
  /** "ssh-ed25519 AAAA..." of the server; when given, any other host key is refused. */
  hostPublicKey?: string;
}

export interface SshExecResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/** The known_hosts line for a server forwarded to 127.0.0.1:port, e.g. for OpenSSH's -o UserKnownHostsFile. */
export function knownHostsLine(port: number, hostPublicKey: string, host = '127.0.0.1'): string {
  const [type, blob] = hostPublicKey.trim().split(/\s+/);
  return `[${host}]:${port} ${type} ${blob}`;
}

/** Runs one command and collects its output. Rejects when connecting or authenticating fails. */
export function sshExec(target: SshTarget, command: string, timeoutMs = 60_000): Promise<SshExecResult> {
  const expectedKey = target.hostPublicKey
    ? Buffer.from(target.hostPublicKey.trim().split(/\s+/)[1] ?? '', 'base64')
    : undefined;
  return new Promise((resolveExec, reject) => {
    const client = new Client();
    const timer = setTimeout(() => {
      client.end();
      reject(
        new Error(`ssh ${target.user}@127.0.0.1:${target.port} "${command}" timed out after ${timeoutMs} ms`),
      );
    }, timeoutMs);
    const fail = (error: Error) => {
      clearTimeout(timer);
      client.end();
      reject(error);
    };
    client.on('error', fail);
    client.on('ready', () => {
      client.exec(command, (error, stream) => {
        if (error) return fail(error);
        let stdout = '';
        let stderr = '';
        let exitCode: number | null = null;
        stream.on('data', (chunk: Buffer) => {
          stdout += chunk.toString('utf8');
        });
        stream.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk.toString('utf8');
        });
        stream.on('exit', (code: number | null) => {
          exitCode = code;
        });
        stream.on('close', () => {
          clearTimeout(timer);
          client.end();
          resolveExec({ exitCode, stdout, stderr });
        });
      });
    });
    client.connect({
      host: target.host ?? '127.0.0.1',
      port: target.port,
      username: target.user,
      privateKey: readFileSync(target.privateKeyPath),
      readyTimeout: Math.min(timeoutMs, 30_000),
      algorithms: expectedKey ? { serverHostKey: ['ssh-ed25519'] } : undefined,
      hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
        verify(expectedKey === undefined || key.equals(expectedKey));
      },
    });
  });
}

/** Like sshExec, but rejects unless the command exits with 0. */
export async function sshRun(target: SshTarget, command: string, timeoutMs?: number): Promise<string> {
  const result = await sshExec(target, command, timeoutMs);
  if (result.exitCode !== 0) {
    throw new Error(
      `ssh ${target.user}@:${target.port} "${command}" exited with ${result.exitCode}: ${result.stderr.trim()}`,
    );
  }
  return result.stdout;
}

/** Retries a trivial command until SSH logins work (sshd can greet before it accepts logins). */
export async function waitForSsh(target: SshTarget, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const result = await sshExec(target, 'true', Math.max(5_000, Math.min(30_000, deadline - Date.now())));
      if (result.exitCode === 0) return;
      last = new Error(`"true" exited with ${result.exitCode}`);
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(
    `SSH to ${target.user}@127.0.0.1:${target.port} did not work within ${timeoutMs} ms: ${String(last)}`,
  );
}
