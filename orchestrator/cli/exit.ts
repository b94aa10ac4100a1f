// The one exit point: every error that reaches the top is mapped to an exit code here,
// printed as a sentence for the operator, never as a stack trace (unless it is a bug and
// BALENA_MIGRATE_DEBUG is set).
import {
  AuthError,
  ConfigError,
  ExitCode,
  HostKeyError,
  RefusalError,
  RemoteCommandError,
  UnreachableError,
} from '../errors.ts';
import { describeError } from '../phases/next-step.ts';

/**
 * The host's side of a problem: it could not be reached, refused the login or its key is not
 * the one we know, a command on it failed, or its checks said no. Fleet commands turn these
 * into a host's outcome; a command about one host (`probe`) ends with them, and that host did
 * not make it: exit 1, as for a fleet with a host that ended otherwise.
 */
function isHostProblem(err: unknown): err is Error {
  return (
    err instanceof UnreachableError ||
    err instanceof AuthError ||
    err instanceof HostKeyError ||
    err instanceof RemoteCommandError ||
    err instanceof RefusalError
  );
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof ConfigError) return ExitCode.usage;
  if (isHostProblem(err)) return ExitCode.hostsFailed;
  if (err && typeof err === 'object' && 'code' in err) {
    const code = (err as { code: unknown }).code;
    // commander's own usage errors (unknown option, missing argument)
    if (typeof code === 'string' && code.startsWith('commander.')) return ExitCode.usage;
  }
  return ExitCode.internal;
}

export function formatError(err: unknown): string {
  if (err instanceof ConfigError) return `error: ${err.format()}`;
  if (isHostProblem(err)) {
    // one line for what happened (a remote stderr may span lines), one for what to do
    const { message, nextStep } = describeError(err, {});
    return `error: ${message.replace(/\s*\n\s*/g, ' ').trim()}\n  next: ${nextStep}`;
  }
  if (err instanceof Error) {
    const debug = process.env.BALENA_MIGRATE_DEBUG ? `\n${err.stack}` : '';
    return `internal error: ${err.message}${debug}\n  this is a bug in balena-migrate; re-run with BALENA_MIGRATE_DEBUG=1 and report it`;
  }
  return `internal error: ${String(err)}`;
}

export function exitWith(code: number): never {
  process.exit(code);
}
