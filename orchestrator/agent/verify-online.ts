// Agent mode's extra proof: balenaOS answering on the host is not enough, the backend must
// also see the device online (the dashboard's green dot) within a bounded wait. A host that
// runs balenaOS but never shows up online is past the point of no return without proof that
// it joined the fleet: `needs-attention`, never `migrated`.
import { setTimeout as sleep } from 'node:timers/promises';
import type { HostError, Outcome } from '../report/host-report.ts';

export type OnlineWait =
  | { online: true; afterMs: number; polls: number }
  | { online: false; afterMs: number; polls: number; lastError: string | null };

export interface OnlineWaitOptions {
  isOnline: () => Promise<boolean>;
  timeoutMs: number;
  /** between two questions to the backend (default 5 s) */
  pollMs?: number;
  signal?: AbortSignal;
  onWait?: (elapsedMs: number) => void;
}

/** Asks the backend until it says online or the time is up; a failed question is retried. */
export async function waitForDeviceOnline(opts: OnlineWaitOptions): Promise<OnlineWait> {
  const start = Date.now();
  let polls = 0;
  let lastError: string | null = null;
  for (;;) {
    if (opts.signal?.aborted) {
      return { online: false, afterMs: Date.now() - start, polls, lastError: 'aborted by the operator' };
    }
    polls++;
    try {
      if (await opts.isOnline()) return { online: true, afterMs: Date.now() - start, polls };
      lastError = null;
    } catch (err) {
      lastError = (err as Error).message;
    }
    const elapsed = Date.now() - start;
    if (elapsed >= opts.timeoutMs) return { online: false, afterMs: elapsed, polls, lastError };
    opts.onWait?.(elapsed);
    const pause = Math.min(opts.pollMs ?? 5000, Math.max(0, opts.timeoutMs - elapsed));
    await sleep(pause, undefined, { signal: opts.signal }).catch(() => {});
  }
}

export interface DeviceRef {
  uuid: string;
  dashboardUrl: string;
}

export type OnlineVerdict =
  | { ok: true; wait: OnlineWait }
  | { ok: false; wait: OnlineWait; error: HostError };

/** What a finished wait means for the host. */
export function onlineVerdict(wait: OnlineWait, device: DeviceRef): OnlineVerdict {
  if (wait.online) return { ok: true, wait };
  const seconds = Math.round(wait.afterMs / 1000);
  const why = wait.lastError ? ` (last answer: ${wait.lastError})` : '';
  return {
    ok: false,
    wait,
    error: {
      class: 'DeviceNotOnline',
      message: `balenaOS answers on the host, but the balena backend did not see device ${device.uuid} online within ${seconds}s${why}`,
      nextStep: `check that the device reaches the balena API and VPN (outbound TCP 443) and that its config.json is for this fleet; watch it at ${device.dashboardUrl}`,
    },
  };
}

/** Waits for the backend and judges: the step run-host takes after balenaOS answered. */
export async function confirmDeviceOnline(
  opts: OnlineWaitOptions & { device: DeviceRef },
): Promise<OnlineVerdict> {
  return onlineVerdict(await waitForDeviceOnline(opts), opts.device);
}

/** What the host check found after the reboot (phases/verify.ts's Comeback kinds). */
export type HostCheck = 'balena' | 'old-os' | 'timeout';

export interface AgentVerification {
  outcome: Extract<Outcome, 'migrated' | 'reverted' | 'needs-attention'>;
  /** null when the backend was not asked (the host did not come back on balenaOS) */
  online: boolean | null;
  error: HostError | null;
}

/**
 * The whole verify step of agent mode: the host check first; only a host that answers as
 * balenaOS is looked up in the backend, and only a device the backend sees online is migrated.
 */
export async function verifyAgainstBackend(
  opts: OnlineWaitOptions & { device: DeviceRef; hostCheck: () => Promise<HostCheck> },
): Promise<AgentVerification> {
  const host = await opts.hostCheck();
  if (host === 'old-os') {
    return {
      outcome: 'reverted',
      online: null,
      error: {
        class: 'Stage2Reverted',
        message: 'the host came back on its old OS',
        nextStep: 'read the stage2 log in this report, fix the cause, and re-run this host',
      },
    };
  }
  if (host === 'timeout') {
    return {
      outcome: 'needs-attention',
      online: null,
      error: {
        class: 'VerifyTimeout',
        message: 'neither balenaOS nor the old OS answered on the host',
        nextStep:
          'look at the device (console, network): stage2 may still be writing, or it may need a human',
      },
    };
  }
  const verdict = await confirmDeviceOnline(opts);
  return verdict.ok
    ? { outcome: 'migrated', online: true, error: null }
    : { outcome: 'needs-attention', online: false, error: verdict.error };
}
