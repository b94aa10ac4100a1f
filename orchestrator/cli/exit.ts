// The one exit point: every error that reaches the top is mapped to an exit code here,
// printed as a sentence for the operator, never as a stack trace (unless it is a bug and
// BALENA_MIGRATE_DEBUG is set).
import { ConfigError, ExitCode } from '../errors.ts';

export function exitCodeFor(err: unknown): number {
  if (err instanceof ConfigError) return ExitCode.usage;
  if (err && typeof err === 'object' && 'code' in err) {
    const code = (err as { code: unknown }).code;
    // commander's own usage errors (unknown option, missing argument)
    if (typeof code === 'string' && code.startsWith('commander.')) return ExitCode.usage;
  }
  return ExitCode.internal;
}

export function formatError(err: unknown): string {
  if (err instanceof ConfigError) return `error: ${err.format()}`;
  if (err instanceof Error) {
    const debug = process.env.BALENA_MIGRATE_DEBUG ? `\n${err.stack}` : '';
    return `internal error: ${err.message}${debug}\n  this is a bug in balena-migrate; re-run with BALENA_MIGRATE_DEBUG=1 and report it`;
  }
  return `internal error: ${String(err)}`;
}

export function exitWith(code: number): never {
  process.exit(code);
}
