// After the reboot, waits (bounded) to see which system comes back: balenaOS answering on
// its SSH port means stage2 wrote the image; the old OS with a new boot id means stage2
// went back; nothing before the deadline means a human must look.
import { setTimeout as sleep } from 'node:timers/promises';
import type { SshSession } from '../ssh/session.ts';

export type Comeback =
  | { kind: 'balena'; session: SshSession; osRelease: string }
  | { kind: 'old-os'; session: SshSession }
  | { kind: 'timeout'; lastError: string };

export interface VerifyOptions {
  connectBalena: () => Promise<SshSession>;
  connectOld: () => Promise<SshSession>;
  oldBootId: string;
  timeoutMs: number;
  pollMs?: number;
  signal?: AbortSignal;
  onWait?: (elapsedMs: number) => void;
  /** the old OS's boot id, null if unreadable; default: Linux's /proc boot_id (Windows: host-os.ts) */
  readBootId?: (session: SshSession) => Promise<string | null>;
}

async function linuxBootId(s: SshSession): Promise<string | null> {
  const id = await s.exec('cat /proc/sys/kernel/random/boot_id');
  return id.exitCode === 0 ? id.stdout.trim() : null;
}

/** `ID=balena-os` in os-release is how balenaOS names itself. */
export function isBalenaOsRelease(osRelease: string): boolean {
  return /^ID="?balena-os"?$/m.test(osRelease);
}

export async function waitForComeback(opts: VerifyOptions): Promise<Comeback> {
  const start = Date.now();
  let lastError = 'no answer yet';
  while (Date.now() - start < opts.timeoutMs) {
    if (opts.signal?.aborted) return { kind: 'timeout', lastError: 'aborted by the operator' };
    try {
      const s = await opts.connectBalena();
      const rel = await s.exec('cat /etc/os-release');
      if (isBalenaOsRelease(rel.stdout)) return { kind: 'balena', session: s, osRelease: rel.stdout };
      await s.close();
      lastError = 'the balenaOS port answered but os-release is not balenaOS';
    } catch (err) {
      lastError = `balenaOS port: ${(err as Error).message}`;
    }
    try {
      const s = await opts.connectOld();
      const id = await (opts.readBootId ?? linuxBootId)(s);
      if (id !== null && id !== opts.oldBootId) return { kind: 'old-os', session: s };
      await s.close();
      lastError = 'the old OS still answers with the same boot id (not rebooted yet)';
    } catch (err) {
      lastError = `old OS port: ${(err as Error).message}`;
    }
    opts.onWait?.(Date.now() - start);
    await sleep(opts.pollMs ?? 3000);
  }
  return { kind: 'timeout', lastError };
}
