// Applies the plan's boot setup on the host as one journaled transaction that runs detached
// from the SSH session: a dropped link leaves the host either untouched or fully set up,
// and this side only polls the transaction's state file (reconnecting if it must).

import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { RemoteCommandError, UnreachableError } from '../errors.ts';
import type { Plan } from '../plan/plan.ts';
import {
  applyStateCommand,
  parseApplyState,
  renderApplyScripts,
  startApplyCommand,
  undoCommand,
} from '../plan/render-apply.ts';
import type { SshSession } from '../ssh/session.ts';

export interface SessionSource {
  /** the current session; may be replaced after a reconnect */
  get(): SshSession;
  /** drops the current session and connects again */
  reconnect(): Promise<SshSession>;
}

async function readState(session: SshSession, workDir: string) {
  const res = await session.execChecked(applyStateCommand(workDir), { sudo: true });
  return parseApplyState(res.stdout);
}

/** Uploads apply.sh/undo.sh, starts the transaction detached and waits for it to end. */
export async function applyPlan(
  sessions: SessionSource,
  plan: Plan,
  opts: { timeoutMs?: number; pollMs?: number; signal?: AbortSignal } = {},
): Promise<void> {
  const scripts = renderApplyScripts(plan);
  let session = sessions.get();
  const existing = await readState(session, plan.workDir);
  // Resume: a transaction that already committed for this very plan is not repeated.
  if (!(existing.state === 'committed' && existing.planHash === scripts.planHash)) {
    for (const [name, text] of [
      ['apply.sh', scripts.apply],
      ['undo.sh', scripts.undo],
    ] as const) {
      const data = Buffer.from(text);
      await session.upload({ data }, `${plan.workDir}/${name}`, {
        sha256: createHash('sha256').update(data).digest('hex'),
        sizeBytes: data.length,
        mode: 0o700,
      });
    }
    await session.execChecked(startApplyCommand(plan.workDir), { sudo: true });
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 10 * 60_000);
  while (Date.now() < deadline) {
    let status: ReturnType<typeof parseApplyState>;
    try {
      status = await readState(session, plan.workDir);
    } catch (err) {
      if (!(err instanceof UnreachableError)) throw err;
      // The transaction goes on without us; come back and read how it ended.
      await sleep(opts.pollMs ?? 1000);
      session = await sessions.reconnect();
      continue;
    }
    switch (status.state) {
      case 'committed':
        if (status.planHash === scripts.planHash) return;
        throw new RemoteCommandError('a different plan is committed on the host; undo will run', 1, '');
      case 'rolled-back':
        throw new RemoteCommandError(`apply failed and was rolled back: ${status.reason}`, 1, status.reason);
      case 'rollback-failed':
        throw new RemoteCommandError(
          `apply failed AND its rollback failed: ${status.reason}`,
          1,
          status.reason,
        );
      case 'interrupted':
        throw new RemoteCommandError(`apply was interrupted: ${status.reason}`, 1, status.reason);
      case 'running':
      case 'rolling-back':
        break;
      default:
        throw new RemoteCommandError(
          `apply is in an unexpected state ${status.state}: ${status.reason}`,
          1,
          '',
        );
    }
    await sleep(opts.pollMs ?? 500);
  }
  throw new RemoteCommandError('apply did not finish in time; undo will run', null, '');
}

/** Undoes every step the transaction began, from its journal; safe to run twice. */
export async function undoApply(session: SshSession, workDir: string): Promise<void> {
  await session.execChecked(undoCommand(workDir), { sudo: true });
}
