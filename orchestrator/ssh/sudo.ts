// Running a command as root on a host where we log in as someone else. The password, when
// sudo wants one, travels as the first line of stdin (`sudo -S`): never on a command line,
// where `ps` on the host would show it, and never in a message or a log.

import { shellJoin } from './quote.ts';

/** How this session becomes root: it already is, sudo without a password, or with one. */
export type SudoMode = 'root' | 'nopasswd' | 'password';

/**
 * The command that runs `command` (a shell command line) as root via sudo. `-k` in password
 * mode makes sudo read the password even when it has cached credentials, so the password
 * line we send is always consumed by sudo and never reaches the command's stdin.
 */
export function sudoWrap(command: string, mode: 'nopasswd' | 'password'): string {
  const sudo = mode === 'nopasswd' ? ['sudo', '-n'] : ['sudo', '-k', '-S', '-p', ''];
  return shellJoin([...sudo, '--', 'sh', '-c', command]);
}

/** Asks sudo, without a password, to run a no-op the same way real commands will run. */
export const SUDO_PROBE = sudoWrap('true', 'nopasswd');

/** The probe failed only because sudo wants a password (not: not allowed, not installed). */
export function sudoWantsPassword(stderr: string): boolean {
  return /password is required/i.test(stderr);
}

/** sudo accepted the password but the policy does not let this user run the command. */
export function sudoRefusesUser(stderr: string): boolean {
  return /not in the sudoers file|is not allowed to (run|execute)/i.test(stderr);
}

/** What goes to stdin in password mode: the password line, then the caller's input. */
export function passwordStdin(password: string, stdin?: string | Buffer): Buffer {
  const line = Buffer.from(`${password}\n`, 'utf8');
  if (stdin === undefined) return line;
  return Buffer.concat([line, typeof stdin === 'string' ? Buffer.from(stdin, 'utf8') : stdin]);
}

/** Replace every occurrence of the password in text we hand back, in case a command echoed it. */
export function scrubSecret(text: string, secret: string | undefined): string {
  if (!secret) return text;
  return text.split(secret).join('********');
}
