// Turns an error into the sentence an operator needs: what happened and what to do next.
import { AuthError, HostKeyError, RefusalError, RemoteCommandError, UnreachableError } from '../errors.ts';
import type { HostError } from '../report/host-report.ts';

/** `phase`: where it happened, when the caller knows (the fleet pipeline does, the CLI's exit point does not). */
export function describeError(err: unknown, context: { phase?: string }): HostError {
  const message = err instanceof Error ? err.message : String(err);
  const cls = err instanceof Error ? err.name : 'Error';
  const during = context.phase ? ` during ${context.phase}` : '';
  let nextStep: string;
  if (err instanceof UnreachableError) {
    nextStep = 'check that the host is up and that address/port in the inventory are right, then re-run';
  } else if (err instanceof AuthError) {
    nextStep =
      'check the user, identity file or ssh-agent for this host (ssh -v USER@HOST shows what is offered)';
  } else if (err instanceof HostKeyError) {
    nextStep =
      err.kind === 'changed'
        ? 'the host key CHANGED: find out why before anything else; if the change is expected, remove the old key with ssh-keygen -R and re-run'
        : 'verify the host key out of band, then add it to known_hosts or re-run with --accept-new-host-keys';
  } else if (err instanceof RemoteCommandError) {
    nextStep = `a remote command failed${during}; its stderr is in the message, fix the cause on the host and re-run`;
  } else if (err instanceof RefusalError) {
    nextStep = 'fix what the reasons say (nothing was changed on the host), then re-run';
  } else {
    nextStep = `unexpected error${during}; the per-host report and events.jsonl have details`;
  }
  return { class: cls, message, nextStep };
}
