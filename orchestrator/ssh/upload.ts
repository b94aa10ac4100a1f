// Put a file on a host, resumably and verified. Data goes to `<remote>.part` (created with
// the final mode, so a secret is never readable by others), a dropped connection leaves
// the .part behind for the next attempt to continue, and only a .part whose sha256 the
// host itself confirms is renamed into place.

import { open as openLocal } from 'node:fs/promises';
import type { SFTPWrapper } from 'ssh2';
import { RemoteCommandError } from '../errors.ts';
import { shellJoin } from './quote.ts';

export type UploadSource = { path: string } | { data: Buffer };

export interface UploadOptions {
  sha256: string;
  sizeBytes: number;
  mode: number;
  onProgress?: (done: number, total: number) => void;
}

export interface UploadResult {
  bytesSent: number;
  resumedFrom: number;
  skipped: boolean;
}

/** What upload needs from a session. */
export interface UploadTransport {
  target: string;
  sftp(): Promise<SFTPWrapper>;
  /** Run a command as the login user; resolves with exit code and output. */
  run(command: string): Promise<{ exitCode: number | null; stdout: string; stderr: string }>;
}

/** Bytes per SFTP write: OpenSSH's sftp-server takes up to 256 KiB messages. */
const CHUNK = 255 * 1024;
/** Writes in flight at once; about 2 MiB, enough to keep a long link busy. */
const IN_FLIGHT = 8;

// Constant scripts, with paths passed as positional parameters ($1...) rather than pasted
// into the script: nothing about a path can change what runs.
const STATE_SCRIPT = [
  'f=$1 p=$2 want=$3',
  'if [ -f "$f" ]; then s=$(wc -c < "$f" | tr -d " ")',
  '  echo "final $s"',
  '  if [ "$s" = "$want" ]; then echo "hash $(sha256sum < "$f" | cut -d " " -f 1)"; fi',
  'fi',
  'if [ -f "$p" ]; then echo "part $(wc -c < "$p" | tr -d " ")"; fi',
  'exit 0',
].join('\n');

const FINISH_SCRIPT = [
  'p=$1 f=$2 want=$3 mode=$4',
  'h=$(sha256sum < "$p" | cut -d " " -f 1)',
  '[ -n "$h" ] || exit 3',
  'if [ "$h" != "$want" ]; then echo "mismatch $h"; exit 0; fi',
  'chmod "$mode" "$p" && mv -f "$p" "$f" && echo ok',
].join('\n');

/** Upload `source` to `remotePath` unless the host already has exactly that file. */
export async function uploadFile(
  t: UploadTransport,
  source: UploadSource,
  remotePath: string,
  opts: UploadOptions,
): Promise<UploadResult> {
  const want = opts.sha256.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(want))
    throw new TypeError(`upload: sha256 must be 64 hex digits, got ${opts.sha256}`);
  const part = `${remotePath}.part`;
  const state = await remoteState(t, remotePath, part, opts.sizeBytes);
  if (state.finalHash === want) {
    opts.onProgress?.(opts.sizeBytes, opts.sizeBytes);
    return { bytesSent: 0, resumedFrom: 0, skipped: true };
  }

  const reader = await openSource(source, opts.sizeBytes);
  try {
    const sftp = await t.sftp();
    // A .part longer than the file cannot be ours: start over.
    const resumedFrom = state.partSize !== undefined && state.partSize <= opts.sizeBytes ? state.partSize : 0;
    let bytesSent = await writePart(sftp, part, reader, resumedFrom, opts);
    let verdict = await finish(t, part, remotePath, want, opts.mode);
    if (verdict !== 'ok') {
      // The .part may hold an older version's bytes, or a resumed tail went wrong: once more from 0.
      bytesSent += await writePart(sftp, part, reader, 0, opts);
      verdict = await finish(t, part, remotePath, want, opts.mode);
      if (verdict !== 'ok') {
        throw new RemoteCommandError(
          `upload of ${remotePath} to ${t.target} failed verification twice: expected sha256 ${want}, ` +
            `the host computed ${verdict}. The local source does not match its recorded hash, or the ` +
            `disk on the device is failing.`,
          null,
          '',
        );
      }
    }
    return { bytesSent, resumedFrom, skipped: false };
  } finally {
    await reader.close();
  }
}

async function remoteState(
  t: UploadTransport,
  remotePath: string,
  part: string,
  size: number,
): Promise<{ finalHash?: string; partSize?: number }> {
  const r = await t.run(shellJoin(['sh', '-c', STATE_SCRIPT, 'sh', remotePath, part, String(size)]));
  if (r.exitCode !== 0) {
    throw new RemoteCommandError(
      `cannot inspect ${remotePath} on ${t.target} (exit ${r.exitCode}): ${r.stderr.trim()}`,
      r.exitCode,
      r.stderr,
    );
  }
  const out: { finalHash?: string; partSize?: number } = {};
  for (const line of r.stdout.split('\n')) {
    const [what, value = ''] = line.trim().split(' ');
    if (what === 'hash') out.finalHash = value.toLowerCase();
    if (what === 'part' && /^\d+$/.test(value)) out.partSize = Number(value);
  }
  return out;
}

async function finish(t: UploadTransport, part: string, remotePath: string, want: string, mode: number) {
  const modeText = (mode & 0o7777).toString(8);
  const r = await t.run(shellJoin(['sh', '-c', FINISH_SCRIPT, 'sh', part, remotePath, want, modeText]));
  const out = r.stdout.trim();
  if (r.exitCode === 0 && out === 'ok') return 'ok';
  if (r.exitCode === 0 && out.startsWith('mismatch ')) return out.slice('mismatch '.length);
  throw new RemoteCommandError(
    `cannot verify and move ${part} into place on ${t.target} (exit ${r.exitCode}): ${r.stderr.trim()}`,
    r.exitCode,
    r.stderr,
  );
}

interface SourceReader {
  read(position: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** Read the source in pieces: a multi-GB image is streamed from disk, never held in memory. */
async function openSource(source: UploadSource, sizeBytes: number): Promise<SourceReader> {
  if ('data' in source) {
    if (source.data.length !== sizeBytes) {
      throw new TypeError(`upload: data is ${source.data.length} bytes but sizeBytes says ${sizeBytes}`);
    }
    return { read: async (pos, len) => source.data.subarray(pos, pos + len), close: async () => {} };
  }
  const fh = await openLocal(source.path, 'r');
  const { size } = await fh.stat();
  if (size !== sizeBytes) {
    await fh.close();
    throw new TypeError(`upload: ${source.path} is ${size} bytes but sizeBytes says ${sizeBytes}`);
  }
  return {
    read: async (pos, len) => {
      const buf = Buffer.allocUnsafe(len);
      const { bytesRead } = await fh.read(buf, 0, len, pos);
      if (bytesRead !== len) throw new Error(`${source.path} changed while it was being uploaded`);
      return buf;
    },
    close: () => fh.close(),
  };
}

/** Write bytes [from, size) of the source into the .part, several writes in flight. Returns bytes written. */
async function writePart(
  sftp: SFTPWrapper,
  part: string,
  reader: SourceReader,
  from: number,
  opts: UploadOptions,
): Promise<number> {
  const lifeline = watchChannel(sftp);
  // Every SFTP request races the channel's end; a refusal by the server becomes a
  // RemoteCommandError, a drop stays a plain error that the session reports as unreachable.
  const request = <T>(what: string, fn: (cb: (err: Error | null | undefined, value?: T) => void) => void) =>
    Promise.race([call<T>(fn), lifeline.gone]).catch((err: Error) => {
      if (lifeline.isGone()) throw err;
      throw new RemoteCommandError(`${what} ${part} failed: ${err.message}`, null, err.message);
    });
  const mode = opts.mode & 0o7777;
  let handle: Buffer | undefined;
  try {
    // 'r+' keeps what is there (resume); 'w' creates or truncates. The mode is given at
    // creation and set again with fchmod before any byte is written, in case the .part
    // already existed with looser permissions.
    handle = await request<Buffer>(
      'opening (does the directory exist, and may the login user write there?)',
      (cb) => sftp.open(part, from > 0 ? 'r+' : 'w', { mode }, cb),
    );
    const h = handle;
    await request<void>('chmod of', (cb) => sftp.fchmod(h, mode, cb));
    const total = opts.sizeBytes;
    let done = from;
    let next = from;
    let failure: unknown;
    const inFlight = new Set<Promise<void>>();
    opts.onProgress?.(done, total);
    while (next < total && failure === undefined) {
      const position = next;
      const length = Math.min(CHUNK, total - position);
      next += length;
      const data = await reader.read(position, length);
      const write = request<void>('writing', (cb) =>
        sftp.write(h, data, 0, length, position, (err) => cb(err)),
      ).then(
        () => {
          done += length;
          opts.onProgress?.(done, total);
        },
        (err) => {
          failure ??= err;
        },
      );
      inFlight.add(write);
      void write.finally(() => inFlight.delete(write));
      if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    return total - from;
  } finally {
    const h = handle;
    if (h && !lifeline.isGone()) await request<void>('closing', (cb) => sftp.close(h, cb)).catch(() => {});
    lifeline.stop();
  }
}

/**
 * A promise that rejects once the SFTP channel ends (alone, or with the connection). ssh2
 * fails the requests pending at that moment but never answers one made afterwards, so
 * every request races this.
 */
function watchChannel(sftp: SFTPWrapper): { gone: Promise<never>; isGone: () => boolean; stop: () => void } {
  let isGone = false;
  let onGone: () => void = () => {};
  const gone = new Promise<never>((_, reject) => {
    onGone = () => {
      isGone = true;
      reject(new Error('the SFTP channel closed'));
    };
  });
  gone.catch(() => {}); // only ever observed through Promise.race
  sftp.once('end', onGone).once('close', onGone);
  return {
    gone,
    isGone: () => isGone,
    stop: () => {
      sftp.off('end', onGone).off('close', onGone);
    },
  };
}

/** Promisify one ssh2 callback call. */
function call<T>(fn: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    fn((err, value) => (err ? reject(err) : resolve(value as T)));
  });
}
