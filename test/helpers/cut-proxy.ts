// A TCP relay on 127.0.0.1 that a test can sabotage: cut every connection after N more
// bytes from the client, cut on demand, or freeze (a link that silently stops carrying
// data, which only keepalives notice).

import { createConnection, createServer, type Socket } from 'node:net';

export interface CutProxy {
  port: number;
  /** Bytes relayed client → target / target → client, over all connections. */
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Cut every open connection once it has relayed `bytes` more from the client. */
  cutAfter(bytes: number): void;
  /** Cut every open connection now. */
  cut(): void;
  /** Drop everything in both directions from now on, without closing anything. */
  freeze(): void;
  /** Resolves when the cut armed with cutAfter() has happened. */
  readonly wasCut: Promise<void>;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  target: Socket;
  up: number;
  /** Being cut after a byte count: let the target receive what came before the cut. */
  draining: boolean;
}

/** Relay 127.0.0.1:<new port> → targetHost:targetPort. */
export async function startCutProxy(opts: {
  targetPort: number;
  targetHost?: string;
  /** Same as calling cutAfter(n) right away. */
  cutAfterBytes?: number;
}): Promise<CutProxy> {
  const pairs = new Set<Pair>();
  let bytesUp = 0;
  let bytesDown = 0;
  let connections = 0;
  let frozen = false;
  /** Cut when a connection's `up` count reaches this. */
  let cutAt: ((p: Pair) => number) | null = null;
  let markCut: () => void = () => {};
  const wasCut = new Promise<void>((r) => {
    markCut = r;
  });

  const cutPair = (p: Pair) => {
    p.client.destroy();
    p.target.destroy();
    pairs.delete(p);
  };

  const server = createServer((client) => {
    connections++;
    const target = createConnection({ host: opts.targetHost ?? '127.0.0.1', port: opts.targetPort });
    const pair: Pair = { client, target, up: 0, draining: false };
    pairs.add(pair);
    client.on('data', (chunk: Buffer) => {
      if (frozen || pair.draining) return;
      const limit = cutAt ? cutAt(pair) : Number.POSITIVE_INFINITY;
      const room = limit - pair.up;
      const part = room < chunk.length ? chunk.subarray(0, Math.max(0, room)) : chunk;
      pair.up += part.length;
      bytesUp += part.length;
      if (part.length > 0 && !target.write(part)) client.pause();
      if (part.length < chunk.length) {
        // Let the bytes before the cut reach the target before tearing both sides down.
        pair.draining = true;
        client.destroy();
        target.end(() => target.destroy());
      }
    });
    target.on('drain', () => client.resume());
    target.on('data', (chunk: Buffer) => {
      if (frozen) return;
      bytesDown += chunk.length;
      if (!client.write(chunk)) target.pause();
    });
    client.on('drain', () => target.resume());
    const clientGone = () => {
      if (!pair.draining) cutPair(pair);
    };
    const targetGone = () => {
      cutPair(pair);
      if (pair.draining) markCut();
    };
    client.on('close', clientGone).on('error', clientGone);
    target.on('close', targetGone).on('error', targetGone);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('cut proxy has no port');

  const proxy: CutProxy = {
    port: address.port,
    get bytesUp() {
      return bytesUp;
    },
    get bytesDown() {
      return bytesDown;
    },
    get connections() {
      return connections;
    },
    wasCut,
    cutAfter(bytes) {
      const base = new Map<Pair, number>();
      for (const p of pairs) base.set(p, p.up);
      cutAt = (p) => {
        if (!base.has(p)) base.set(p, p.up);
        return base.get(p)! + bytes;
      };
    },
    cut() {
      for (const p of [...pairs]) cutPair(p);
    },
    freeze() {
      frozen = true;
    },
    close() {
      proxy.cut();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  if (opts.cutAfterBytes !== undefined) proxy.cutAfter(opts.cutAfterBytes);
  return proxy;
}
