// agent.hostDownload: a host that reaches the balena backend fetches the balenaOS image itself
// (curl or wget, as the probe found them), so a large fleet does not pull every image through
// the operator's uplink. No credential goes to the host: balenaCloud serves the images of
// public device types to anyone, so the URL is all it needs. What the host fetched is used
// only when its size and sha256 are those of the image the laptop downloaded and verified;
// anything else (no tool, a refused or broken download, other bytes) leaves the push to do it.
import { setTimeout as sleep } from 'node:timers/promises';
import { shellJoin, shellQuote } from '../ssh/quote.ts';
import type { SshSession } from '../ssh/session.ts';

export interface HostImageDownload {
  /** the image's download URL on the backend, without credentials */
  url: string;
  /** of the image as the laptop downloaded and verified it */
  sha256: string;
  sizeBytes: number;
}

export interface HostDownloadTools {
  curl?: boolean | undefined;
  wget?: boolean | undefined;
}

export type HostDownloadResult =
  | { ok: true; tool: 'curl' | 'wget'; attempts: number; resumedFrom: number[] }
  | { ok: false; tool: 'curl' | 'wget' | null; attempts: number; reason: string };

/** Tries per host download, each continuing the partial file of the one before. */
const ATTEMPTS = 3;
/** A download slower than 1 KiB/s for this long is given up (then continued, or pushed). */
const STALL_SECONDS = 60;

/** The host's command line for one try: continue `part` from its current length. */
export function downloadCommand(tool: 'curl' | 'wget', url: string, part: string): string {
  return tool === 'curl'
    ? shellJoin([
        'curl',
        '-fsSL',
        '--connect-timeout',
        '20',
        '--speed-limit',
        '1024',
        '--speed-time',
        String(STALL_SECONDS),
        '-C',
        '-',
        '-o',
        part,
        '--',
        url,
      ])
    : shellJoin(['wget', '-q', '-c', '-T', String(STALL_SECONDS), '-t', '1', '-O', part, '--', url]);
}

/**
 * Fetches the image on the host into `remotePath` (through `remotePath.download`), verified.
 * Never throws for a failed download: the result says why, and the caller pushes instead.
 */
export async function downloadOnHost(
  session: SshSession,
  remotePath: string,
  mode: number,
  dl: HostImageDownload,
  tools: HostDownloadTools,
  log: (message: string) => void,
  onProgress?: (doneBytes: number) => void,
): Promise<HostDownloadResult> {
  const tool = tools.curl ? 'curl' : tools.wget ? 'wget' : null;
  if (!tool) return { ok: false, tool, attempts: 0, reason: 'the host has neither curl nor wget' };
  const part = `${remotePath}.download`;
  const size = async (): Promise<number> => {
    const q = shellQuote(part);
    const r = await session.exec(`if [ -f ${q} ]; then wc -c < ${q}; else echo 0; fi`);
    return Number(r.stdout.trim()) || 0;
  };
  const discard = () => session.exec(shellJoin(['rm', '-f', '--', part])).catch(() => {});

  const resumedFrom: number[] = [];
  let attempts = 0;
  let lastError = '';
  let have = await size();
  if (have > dl.sizeBytes) {
    await discard();
    have = 0;
  }
  while (have < dl.sizeBytes && attempts < ATTEMPTS) {
    attempts++;
    if (have > 0) resumedFrom.push(have);
    log(
      `the host downloads the image with ${tool}${have > 0 ? `, continuing from byte ${have}` : ''} (try ${attempts} of ${ATTEMPTS})`,
    );
    const r = await whileWatching(session.exec(downloadCommand(tool, dl.url, part)), size, onProgress);
    if (r.exitCode !== 0) {
      lastError = `${tool} exited with ${r.exitCode ?? r.signal ?? 'no status'}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').pop()}` : ''}`;
    }
    have = await size();
    if (have > dl.sizeBytes) break;
  }
  if (have !== dl.sizeBytes) {
    await discard();
    return {
      ok: false,
      tool,
      attempts,
      reason:
        have > dl.sizeBytes
          ? `the host's download is longer than the image (${have} > ${dl.sizeBytes} bytes)`
          : `the host's download stopped at ${have} of ${dl.sizeBytes} bytes${lastError ? ` (${lastError})` : ''}`,
    };
  }
  const hash = await session.exec(shellJoin(['sha256sum', '--', part]));
  const got = hash.stdout.trim().split(/\s+/)[0] ?? '';
  if (hash.exitCode !== 0 || got !== dl.sha256) {
    await discard();
    return {
      ok: false,
      tool,
      attempts,
      reason: `the image the host downloaded is not the verified one (sha256 ${got || 'unreadable'}, expected ${dl.sha256})`,
    };
  }
  const mv = await session.exec(
    `${shellJoin(['chmod', mode.toString(8), '--', part])} && ${shellJoin(['mv', '-f', '--', part, remotePath])}`,
  );
  if (mv.exitCode !== 0) {
    await discard();
    return { ok: false, tool, attempts, reason: `cannot move the download into place: ${mv.stderr.trim()}` };
  }
  return { ok: true, tool, attempts, resumedFrom };
}

/** Reports the partial file's length every few seconds while `work` runs (the progress bar). */
async function whileWatching<T>(
  work: Promise<T>,
  size: () => Promise<number>,
  onProgress: ((doneBytes: number) => void) | undefined,
  everyMs = 2000,
): Promise<T> {
  if (!onProgress) return work;
  const stop = new AbortController();
  const watcher = (async () => {
    while (!stop.signal.aborted) {
      const ticked = await sleep(everyMs, true, { signal: stop.signal }).catch(() => false);
      if (!ticked) return;
      const n = await size().catch(() => null);
      if (n !== null && !stop.signal.aborted) onProgress(n);
    }
  })();
  try {
    return await work;
  } finally {
    stop.abort();
    await watcher;
  }
}
