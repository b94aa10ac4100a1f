import { describe, expect, it } from 'vitest';
import {
  confirmDeviceOnline,
  verifyAgainstBackend,
  waitForDeviceOnline,
} from '../../orchestrator/agent/verify-online.ts';

const device = {
  uuid: '0123456789abcdef0123456789abcdef',
  dashboardUrl: 'https://dashboard.example/devices/0123/summary',
};

/** A backend that answers from a script: true/false, or throws for an Error. */
function scripted(answers: Array<boolean | Error>): {
  isOnline: () => Promise<boolean>;
  calls: () => number;
} {
  let calls = 0;
  return {
    isOnline: async () => {
      const a = answers[Math.min(calls++, answers.length - 1)]!;
      if (a instanceof Error) throw a;
      return a;
    },
    calls: () => calls,
  };
}

describe('waiting for the backend to see a device online', () => {
  it('stops asking as soon as the backend says online', async () => {
    const backend = scripted([false, false, true]);
    const wait = await waitForDeviceOnline({ isOnline: backend.isOnline, timeoutMs: 5000, pollMs: 5 });
    expect(wait).toMatchObject({ online: true, polls: 3 });
  });

  it('keeps asking through failed questions until the deadline, and reports the last failure', async () => {
    const backend = scripted([new Error('ECONNRESET')]);
    const wait = await waitForDeviceOnline({ isOnline: backend.isOnline, timeoutMs: 100, pollMs: 10 });
    expect(wait).toMatchObject({ online: false, lastError: 'ECONNRESET' });
    expect(backend.calls()).toBeGreaterThan(2);
  });

  it('gives up at once when the operator aborts', async () => {
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 30);
    const started = Date.now();
    const wait = await waitForDeviceOnline({
      isOnline: scripted([false]).isOnline,
      timeoutMs: 60_000,
      pollMs: 10_000,
      signal: abort.signal,
    });
    expect(wait).toMatchObject({ online: false, lastError: 'aborted by the operator' });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('turns a device never seen online into an error naming the device and where to look', async () => {
    const verdict = await confirmDeviceOnline({
      isOnline: scripted([false]).isOnline,
      timeoutMs: 30,
      pollMs: 10,
      device,
    });
    expect(verdict.ok).toBe(false);
    if (verdict.ok) return;
    expect(verdict.error.class).toBe('DeviceNotOnline');
    expect(verdict.error.message).toContain(device.uuid);
    expect(verdict.error.nextStep).toContain(device.dashboardUrl);
  });
});

describe('the verify step of agent mode', () => {
  it('is migrated only when the host answers as balenaOS and the backend sees the device online', async () => {
    const verdict = await verifyAgainstBackend({
      hostCheck: async () => 'balena',
      isOnline: scripted([false, true]).isOnline,
      timeoutMs: 5000,
      pollMs: 5,
      device,
    });
    expect(verdict).toEqual({ outcome: 'migrated', online: true, error: null });
  });

  it('is needs-attention when balenaOS answers but the backend never sees the device online', async () => {
    const verdict = await verifyAgainstBackend({
      hostCheck: async () => 'balena',
      isOnline: scripted([false]).isOnline,
      timeoutMs: 50,
      pollMs: 10,
      device,
    });
    expect(verdict.outcome).toBe('needs-attention');
    expect(verdict.online).toBe(false);
  });

  it('leaves the backend alone when the host did not come back on balenaOS', async () => {
    const backend = scripted([true]);
    const reverted = await verifyAgainstBackend({
      hostCheck: async () => 'old-os',
      isOnline: backend.isOnline,
      timeoutMs: 50,
      device,
    });
    const unknown = await verifyAgainstBackend({
      hostCheck: async () => 'timeout',
      isOnline: backend.isOnline,
      timeoutMs: 50,
      device,
    });
    expect([reverted.outcome, unknown.outcome]).toEqual(['reverted', 'needs-attention']);
    expect(backend.calls()).toBe(0);
  });
});
