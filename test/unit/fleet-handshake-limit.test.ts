import { describe, expect, it } from 'vitest';
import {
  backoffDelay,
  createHandshakeLimiter,
  isHandshakeDrop,
  retryWithJitter,
  withHandshakeSlot,
} from '../../orchestrator/fleet/handshake-limit.ts';
import { sleep } from '../fixtures/fleet/scripted-hosts.ts';

describe('withHandshakeSlot', () => {
  it('lets no more than the limit of handshakes to one destination run at once', async () => {
    const limiter = createHandshakeLimiter(3);
    let now = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 12 }, () =>
        limiter.withHandshakeSlot('bastion:22', async () => {
          now++;
          peak = Math.max(peak, now);
          expect(limiter.inProgress('bastion:22')).toBeLessThanOrEqual(3);
          await sleep(5);
          now--;
        }),
      ),
    );
    expect(peak).toBe(3);
    expect(limiter.inProgress('bastion:22')).toBe(0);
  });

  it('limits each destination on its own', async () => {
    const limiter = createHandshakeLimiter(2);
    const peaks = new Map<string, number>();
    const current = new Map<string, number>();
    const attempt = (destination: string) =>
      limiter.withHandshakeSlot(destination, async () => {
        current.set(destination, (current.get(destination) ?? 0) + 1);
        peaks.set(destination, Math.max(peaks.get(destination) ?? 0, current.get(destination)!));
        await sleep(5);
        current.set(destination, current.get(destination)! - 1);
      });
    await Promise.all([...Array(6)].flatMap(() => [attempt('a:22'), attempt('b:22')]));
    expect(Object.fromEntries(peaks)).toEqual({ 'a:22': 2, 'b:22': 2 });
  });

  it('frees the slot when the handshake fails, and passes the error on', async () => {
    const limiter = createHandshakeLimiter(1);
    await expect(
      limiter.withHandshakeSlot('h:22', async () => {
        throw new Error('auth failed');
      }),
    ).rejects.toThrow('auth failed');
    await expect(limiter.withHandshakeSlot('h:22', async () => 'second')).resolves.toBe('second');
  });

  it('allows 8 handshakes per destination by default', async () => {
    let now = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 20 }, () =>
        withHandshakeSlot('default-limit:22', async () => {
          peak = Math.max(peak, ++now);
          await sleep(2);
          now--;
        }),
      ),
    );
    expect(peak).toBe(8);
  });

  it('refuses a limit below one', () => {
    expect(() => createHandshakeLimiter(0)).toThrow(RangeError);
  });
});

describe('retryWithJitter', () => {
  const drop = Object.assign(new Error('Connection lost before handshake'), { level: 'client-socket' });

  it('retries a retryable failure until it succeeds, saying so before each wait', async () => {
    const seen: string[] = [];
    const result = await retryWithJitter(
      async (attempt) => {
        if (attempt < 3) throw drop;
        return `connected on try ${attempt}`;
      },
      {
        attempts: 5,
        baseMs: 4,
        isRetryable: isHandshakeDrop,
        onRetry: (_, attempt, delayMs) => seen.push(`${attempt}:${delayMs}`),
        random: () => 0.5,
      },
    );
    expect(result).toBe('connected on try 3');
    expect(seen).toEqual(['1:3', '2:6']);
  });

  it('gives up at once on a failure that is not retryable', async () => {
    let tries = 0;
    await expect(
      retryWithJitter(
        async () => {
          tries++;
          throw new Error('All configured authentication methods failed');
        },
        { attempts: 5, baseMs: 1, isRetryable: isHandshakeDrop },
      ),
    ).rejects.toThrow('authentication methods failed');
    expect(tries).toBe(1);
  });

  it('rethrows the last failure when the tries run out', async () => {
    let tries = 0;
    await expect(
      retryWithJitter(
        async () => {
          tries++;
          throw drop;
        },
        { attempts: 3, baseMs: 1, isRetryable: () => true },
      ),
    ).rejects.toBe(drop);
    expect(tries).toBe(3);
  });

  it('stops waiting when the run is aborted', async () => {
    const controller = new AbortController();
    const reason = new Error('aborted by the operator');
    setTimeout(() => controller.abort(reason), 10);
    const started = Date.now();
    await expect(
      retryWithJitter(
        async () => {
          throw drop;
        },
        { attempts: 5, baseMs: 60_000, isRetryable: () => true, signal: controller.signal },
      ),
    ).rejects.toBe(reason);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('backs off at least half and at most all of a doubling delay, capped', () => {
    expect(backoffDelay(1, 100, 10_000, () => 0)).toBe(50);
    expect(backoffDelay(1, 100, 10_000, () => 0.999999)).toBe(100);
    expect(backoffDelay(4, 100, 10_000, () => 0)).toBe(400);
    expect(backoffDelay(20, 100, 1_000, () => 0.999999)).toBe(1_000);
  });

  it('refuses fewer than one attempt', async () => {
    await expect(
      retryWithJitter(async () => 1, { attempts: 0, baseMs: 1, isRetryable: () => true }),
    ).rejects.toThrow(RangeError);
  });
});

describe('isHandshakeDrop', () => {
  it.each([
    [Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), true],
    [new Error('Connection lost before handshake'), true],
    [new Error('kex_exchange_identification: read: Connection reset by peer'), true],
    [new Error('Connection closed by remote host'), true],
    [new Error('Timed out while waiting for handshake'), false],
    [new Error('All configured authentication methods failed'), false],
    [Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:22'), { code: 'ECONNREFUSED' }), false],
    ['a string', false],
  ])('classifies %s as %s', (error, expected) => {
    expect(isHandshakeDrop(error)).toBe(expected);
  });
});
