// Unauthenticated SSH handshakes, limited per destination. OpenSSH starts dropping
// connections that have not authenticated yet once MaxStartups (default 10:30:100) is
// reached: at 10 pending handshakes it drops 30 % of new ones, at 100 all of them. A fleet
// run behind one bastion, or many hosts behind one NAT port range, hits that at once. So
// handshakes to one destination queue behind a small limit, and the ones that are dropped
// anyway are retried with jittered backoff so the retries do not arrive together.

/** Below OpenSSH's MaxStartups start (10), with room for the operator's own sessions. */
export const DEFAULT_HANDSHAKES_PER_DESTINATION = 8;

export interface HandshakeLimiter {
  /**
   * Runs `fn` (connect and authenticate, nothing more) once fewer than the limit of handshakes
   * to `destination` are in progress. `destination` is the sshd that sees the handshake:
   * `host:port` of the host, or of the jump host when one is used.
   */
  withHandshakeSlot<T>(destination: string, fn: () => Promise<T>): Promise<T>;
  /** handshakes to `destination` in progress now */
  inProgress(destination: string): number;
}

interface Gate {
  active: number;
  waiting: Array<() => void>;
}

/** A limiter with its own per-destination queues; the module-level one is shared by a run. */
export function createHandshakeLimiter(
  perDestination = DEFAULT_HANDSHAKES_PER_DESTINATION,
): HandshakeLimiter {
  if (!Number.isInteger(perDestination) || perDestination < 1) {
    throw new RangeError(
      `handshakes per destination must be a whole number of at least 1, not ${perDestination}`,
    );
  }
  const gates = new Map<string, Gate>();

  const acquire = async (destination: string): Promise<Gate> => {
    let gate = gates.get(destination);
    if (!gate) {
      gate = { active: 0, waiting: [] };
      gates.set(destination, gate);
    }
    if (gate.active >= perDestination) {
      const queued = gate;
      // The slot is handed over by release(): `active` is not decremented in between.
      await new Promise<void>((resolve) => queued.waiting.push(resolve));
    } else {
      gate.active++;
    }
    return gate;
  };

  const release = (destination: string, gate: Gate): void => {
    const next = gate.waiting.shift();
    if (next) {
      next();
      return;
    }
    gate.active--;
    if (gate.active === 0) gates.delete(destination);
  };

  return {
    async withHandshakeSlot(destination, fn) {
      const gate = await acquire(destination);
      try {
        return await fn();
      } finally {
        release(destination, gate);
      }
    },
    inProgress(destination) {
      return gates.get(destination)?.active ?? 0;
    },
  };
}

const sharedLimiter = createHandshakeLimiter();

/** Runs a handshake under the process-wide per-destination limit (8 at a time). */
export function withHandshakeSlot<T>(destination: string, fn: () => Promise<T>): Promise<T> {
  return sharedLimiter.withHandshakeSlot(destination, fn);
}

export interface RetryOptions {
  /** total tries, the first included */
  attempts: number;
  /** the backoff before the second try; it doubles each time, up to maxMs */
  baseMs: number;
  maxMs?: number;
  isRetryable: (error: unknown) => boolean;
  /** stops waiting and rethrows the signal's reason */
  signal?: AbortSignal;
  /** told before each wait, e.g. to count a retry in the host's report */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** for tests: a source of numbers in [0, 1) */
  random?: () => number;
}

/**
 * The wait after failed try `attempt` (1-based): half the capped exponential backoff plus a
 * random share of the other half. The fixed half guarantees backing off; the random half
 * spreads hosts that failed together.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Calls `fn` until it succeeds, a failure is not retryable, or the tries run out. */
export async function retryWithJitter<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const { attempts, baseMs, maxMs = 30_000, isRetryable, signal, onRetry, random = Math.random } = options;
  if (!Number.isInteger(attempts) || attempts < 1) {
    throw new RangeError(`attempts must be a whole number of at least 1, not ${attempts}`);
  }
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) throw signal.reason;
    try {
      return await fn(attempt);
    } catch (error) {
      if (attempt >= attempts || !isRetryable(error)) throw error;
      const delayMs = backoffDelay(attempt, baseMs, maxMs, random);
      onRetry?.(error, attempt, delayMs);
      await sleep(delayMs, signal);
    }
  }
}

/**
 * True for the ways a handshake dies when sshd sheds load (MaxStartups) or a NAT drops a
 * fresh connection: reset or closed before the SSH banner or key exchange finished. A timeout
 * is not one of them: sshd drops at once, and a silent host would only cost more waiting.
 */
export function isHandshakeDrop(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (code === 'ECONNRESET' || code === 'EPIPE') return true;
  return (
    typeof message === 'string' &&
    /before handshake|kex_exchange_identification|connection reset|closed by remote host/i.test(message)
  );
}
