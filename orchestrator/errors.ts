// A handful of small error classes. The CLI's one exit point maps them to exit codes;
// every message tells the operator what to do next.

/** Bad input on the operator's side (inventory, config, flags). Exit code 2. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    message: string,
    readonly where?: { file: string; line?: number; col?: number },
    readonly hint?: string,
  ) {
    super(message);
  }

  /** `file:line:col: message` followed by the hint, the form editors can jump to. */
  format(): string {
    const at = this.where
      ? `${this.where.file}${this.where.line ? `:${this.where.line}:${this.where.col ?? 1}` : ''}: `
      : '';
    return `${at}${this.message}${this.hint ? `\n  fix: ${this.hint}` : ''}`;
  }
}

/** The host could not be reached over TCP, or the connection dropped. */
export class UnreachableError extends Error {
  override name = 'UnreachableError';
}

/** The host answered but refused every credential we offered. */
export class AuthError extends Error {
  override name = 'AuthError';
}

/** The host key is unknown (and trust-on-first-use is off) or has changed. */
export class HostKeyError extends Error {
  override name = 'HostKeyError';
  constructor(
    message: string,
    readonly kind: 'unknown' | 'changed',
    readonly fingerprint: string,
  ) {
    super(message);
  }
}

/** A remote command exited non-zero. */
export class RemoteCommandError extends Error {
  override name = 'RemoteCommandError';
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
  }
}

/** The host was checked and must not be migrated; `reasons` say why. */
export class RefusalError extends Error {
  override name = 'RefusalError';
  constructor(readonly reasons: string[]) {
    super(`refused: ${reasons.join('; ')}`);
  }
}

/** The process exit codes, documented in the README. */
export const ExitCode = {
  ok: 0,
  /** at least one host did not reach migrated (run) or ready (check); probe's host could not be probed */
  hostsFailed: 1,
  /** bad input: config, inventory, flags */
  usage: 2,
  /** interrupted by a signal before every host finished */
  interrupted: 130,
  /** a bug: an error nobody expected */
  internal: 70,
} as const;
