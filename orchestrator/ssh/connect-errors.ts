// ssh2 reports every failure as a plain Error with a `level` (and sometimes a `code`).
// Here they become the project's error classes, each with a message that says what
// happened to which host and what the operator can do about it.

import { AuthError, UnreachableError } from '../errors.ts';

type Ssh2Error = Error & { level?: string; code?: string | number };

const NETWORK_HINTS: Record<string, string> = {
  ECONNREFUSED: 'nothing listens on that port: is sshd running, is the port right?',
  ETIMEDOUT: 'no answer: is the device on, on this network, behind a firewall?',
  EHOSTUNREACH: 'no route to the host: is the device on, and on this network?',
  ENETUNREACH: 'no route to that network from this machine',
  ECONNRESET: 'the connection was reset (a firewall, or sshd refusing connections: MaxStartups?)',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name could not be resolved right now (DNS)',
};

/** Map an error seen while connecting to UnreachableError or AuthError. */
export function connectError(
  err: Ssh2Error,
  ctx: { target: string; tried: string[]; notes: string[] },
): UnreachableError | AuthError {
  if (err.level === 'client-authentication') {
    const offered = ctx.tried.length > 0 ? ctx.tried.join(', ') : 'nothing';
    const notes = ctx.notes.length > 0 ? ` (${ctx.notes.join('; ')})` : '';
    return new AuthError(
      `${ctx.target} refused every credential; offered: ${offered}${notes}. ` +
        `Add one of these public keys to the user's ~/.ssh/authorized_keys on the device, ` +
        `or give the right key with --identity / ssh-agent.`,
      { cause: err },
    );
  }
  const code = typeof err.code === 'string' ? err.code : undefined;
  const hint = (code && NETWORK_HINTS[code]) ?? describeLevel(err);
  return new UnreachableError(`cannot connect to ${ctx.target}: ${err.message}; ${hint}`, { cause: err });
}

function describeLevel(err: Ssh2Error): string {
  switch (err.level) {
    case 'client-timeout':
      return 'the SSH handshake did not finish in time (the device is slow, overloaded, or not an SSH server)';
    case 'protocol':
      return 'the server closed the connection before the SSH handshake (MaxStartups, a firewall, or TCP wrappers)';
    case 'handshake':
      return 'the SSH handshake failed (no common algorithms?)';
    case 'client-dns':
      return 'the host name does not resolve';
    default:
      return 'check the address and that sshd runs on the device';
  }
}

/** The connection went away while we were using it. */
export function droppedError(target: string, during: string, cause?: Error): UnreachableError {
  const why = cause ? ` (${cause.message})` : '';
  return new UnreachableError(`connection to ${target} dropped during ${during}${why}`, { cause });
}
