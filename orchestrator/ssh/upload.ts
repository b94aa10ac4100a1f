// Put a file on a host, resumably and verified. Data goes to `<remote>.part` (created with
// the final mode, so a secret is never readable by others), a dropped connection leaves
// the .part behind for the next attempt to continue, and only a .part whose sha256 the
// host itself confirms is renamed into place.
//
// The host hashes the .part while it is being written: a second channel runs a small script
// that reads the file back up to the point every write below has been acknowledged, so the
// check costs no extra pass over a multi-gigabyte file at the end (`npm run bench`: hashing
// afterwards made a 512 MiB upload ~1.7x slower than scp, which verifies nothing).

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
  /** how the host checks and moves the file; default: sh and sha256sum (posixUploadVerifier) */
  verifier?: UploadVerifier;
}

/** A command line for the host, and what to write on its stdin. */
export interface VerifierCommand {
  command: string;
  stdin?: string;
}

/**
 * The host's side of an upload, as commands whose output upload reads: sh and sha256sum on
 * Linux (posixUploadVerifier, below), PowerShell and Get-FileHash on Windows
 * (platform/windows/upload-verifier.ts). Every command prints in the same form.
 */
export interface UploadVerifier {
  /** prints `final SIZE` and, if SIZE is WANTSIZE, `hash SHA256` for FINAL; `part SIZE` for PART; each if there */
  state(finalPath: string, part: string, wantSize: number): VerifierCommand;
  /** gives PART its mode and moves it over FINAL; prints `ok` */
  move(part: string, finalPath: string, mode: number): VerifierCommand;
  /** hashes PART: prints `mismatch SHA256` when it is not WANT, else moves it like `move` and prints `ok` */
  finish(part: string, finalPath: string, want: string, mode: number): VerifierCommand;
  /**
   * A command that hashes PART while it is written: stdin lines are offsets below which every
   * byte is written, end of stdin means complete; it prints the sha256. Absent: hash afterwards.
   */
  streamingHash?(part: string): string;
  /** whether SFTP's fchmod sets the file's mode (not on Windows, where the work dir's ACL rules) */
  sftpModes: boolean;
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
  run(command: string, stdin?: string): Promise<{ exitCode: number | null; stdout: string; stderr: string }>;
  /**
   * Start a command as the login user whose stdin is written while it runs. Optional: without
   * it (or when it fails) the host hashes the file once the transfer is over.
   */
  start?(command: string): Promise<RunningCommand>;
  /**
   * Run `fn`, sending what it writes to the connection as one batch (one system call rather
   * than one per SSH packet: an SFTP write of 255 KiB is 8 packets). Optional.
   */
  batch?(fn: () => void): void;
}

/** A command started with UploadTransport.start. */
export interface RunningCommand {
  write(text: string): void;
  /** Close stdin and wait for the exit. */
  finish(): Promise<{ exitCode: number | null; stdout: string; stderr: string }>;
  /** Stop it (the upload failed); never throws. */
  abort(): void;
}

/** Bytes per SFTP write: OpenSSH's sftp-server takes up to 256 KiB messages. */
const CHUNK = 255 * 1024;
/** Bytes in flight at once; about 2 MiB (8 writes to OpenSSH), enough to keep a long link busy. */
const IN_FLIGHT_BYTES = 8 * CHUNK;
/** The host's hasher is told how far the file is complete every this many bytes. */
const HASH_STEP = 4 * 1024 * 1024;
/** Below this, hashing afterwards is cheaper than a second channel. */
const STREAM_HASH_MIN = 16 * 1024 * 1024;

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

// Reads the .part back as it is written and prints its sha256. Every stdin line is an offset
// below which all bytes are written; end of stdin means the file is complete. It reads whole
// 1 MiB blocks from one descriptor (the offset carries over between dd runs), then the rest
// with cat. A read that fails says so on stderr, which voids the hash. OpenSSL hashes several
// times faster than coreutils where it is installed.
const HASH_SCRIPT = [
  'p=$1 pos=0',
  'empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  'if [ "$(openssl dgst -sha256 -r </dev/null 2>/dev/null | cut -c 1-64)" = "$empty" ]; then',
  '  digest() { openssl dgst -sha256 -r; }',
  'else',
  '  digest() { sha256sum; }',
  'fi',
  'exec 3<"$p" || exit 3',
  '{',
  '  while read -r upto; do',
  '    n=$(((upto - pos) / 1048576))',
  '    [ "$n" -gt 0 ] || continue',
  '    dd bs=1048576 count="$n" <&3 2>/dev/null || { echo "reading $p failed" >&2; exit 4; }',
  '    pos=$((pos + n * 1048576))',
  '  done',
  '  cat <&3 || { echo "reading $p failed" >&2; exit 4; }',
  '} | digest | cut -d " " -f 1',
].join('\n');

/** The .part's hash is known to be right: give it its mode and move it into place. */
const MOVE_SCRIPT = ['p=$1 f=$2 mode=$3', 'chmod "$mode" "$p" && mv -f "$p" "$f" && echo ok'].join('\n');

const FINISH_SCRIPT = [
  'p=$1 f=$2 want=$3 mode=$4',
  'h=$(sha256sum < "$p" | cut -d " " -f 1)',
  '[ -n "$h" ] || exit 3',
  'if [ "$h" != "$want" ]; then echo "mismatch $h"; exit 0; fi',
  'chmod "$mode" "$p" && mv -f "$p" "$f" && echo ok',
].join('\n');

const octal = (mode: number): string => (mode & 0o7777).toString(8);

/** Linux and every POSIX host: sh, coreutils' sha256sum (or openssl), chmod and mv. */
export const posixUploadVerifier: UploadVerifier = {
  state: (f, p, size) => ({ command: shellJoin(['sh', '-c', STATE_SCRIPT, 'sh', f, p, String(size)]) }),
  move: (p, f, mode) => ({ command: shellJoin(['sh', '-c', MOVE_SCRIPT, 'sh', p, f, octal(mode)]) }),
  finish: (p, f, want, mode) => ({
    command: shellJoin(['sh', '-c', FINISH_SCRIPT, 'sh', p, f, want, octal(mode)]),
  }),
  streamingHash: (p) => shellJoin(['sh', '-c', HASH_SCRIPT, 'sh', p]),
  sftpModes: true,
};

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
  const v = opts.verifier ?? posixUploadVerifier;
  const state = await remoteState(t, v, remotePath, part, opts.sizeBytes);
  if (state.finalHash === want) {
    opts.onProgress?.(opts.sizeBytes, opts.sizeBytes);
    return { bytesSent: 0, resumedFrom: 0, skipped: true };
  }

  const reader = await openSource(source, opts.sizeBytes);
  try {
    const sftp = await t.sftp();
    // A .part longer than the file cannot be ours: start over.
    const resumedFrom = state.partSize !== undefined && state.partSize <= opts.sizeBytes ? state.partSize : 0;
    let streamed: string | null = null;
    let bytesSent = await writePart(sftp, part, reader, resumedFrom, opts, v, t, (hash) => {
      streamed = hash;
    });
    let verdict =
      streamed === want
        ? await move(t, v, part, remotePath, opts.mode)
        : // A hash streamed by the host that differs is a verdict too; without one, hash now.
          (streamed ?? (await finish(t, v, part, remotePath, want, opts.mode)));
    if (verdict !== 'ok') {
      // The .part may hold an older version's bytes, or a resumed tail went wrong: once more from 0.
      bytesSent += await writePart(sftp, part, reader, 0, opts, v);
      verdict = await finish(t, v, part, remotePath, want, opts.mode);
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
  v: UploadVerifier,
  remotePath: string,
  part: string,
  size: number,
): Promise<{ finalHash?: string; partSize?: number }> {
  const c = v.state(remotePath, part, size);
  const r = await t.run(c.command, c.stdin);
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

async function move(
  t: UploadTransport,
  v: UploadVerifier,
  part: string,
  remotePath: string,
  mode: number,
): Promise<'ok'> {
  const c = v.move(part, remotePath, mode);
  const r = await t.run(c.command, c.stdin);
  if (r.exitCode === 0 && r.stdout.trim() === 'ok') return 'ok';
  throw new RemoteCommandError(
    `cannot move ${part} into place on ${t.target} (exit ${r.exitCode}): ${r.stderr.trim()}`,
    r.exitCode,
    r.stderr,
  );
}

/**
 * Starts the host's hasher for `part`, already told that bytes [0, from) are there. Null when
 * the host cannot run it; the upload then hashes afterwards.
 */
async function startHasher(
  t: UploadTransport,
  v: UploadVerifier,
  part: string,
  from: number,
): Promise<Hasher | null> {
  if (!t.start || !v.streamingHash) return null;
  let cmd: RunningCommand;
  try {
    cmd = await t.start(v.streamingHash(part));
  } catch {
    return null;
  }
  // Completed writes, start → end, until they join the complete prefix.
  const done = new Map<number, number>();
  let complete = from;
  let told = 0;
  const tell = (upTo: number) => {
    cmd.write(`${upTo}\n`);
    told = upTo;
  };
  if (from > 0) tell(from);
  return {
    written(position, length) {
      done.set(position, position + length);
      let end = done.get(complete);
      while (end !== undefined) {
        done.delete(complete);
        complete = end;
        end = done.get(complete);
      }
      if (complete - told >= HASH_STEP) tell(complete);
    },
    async result() {
      const r = await cmd.finish();
      const hash = r.stdout.trim().toLowerCase();
      return r.exitCode === 0 && r.stderr.trim() === '' && /^[0-9a-f]{64}$/.test(hash) ? hash : null;
    },
    abort: () => cmd.abort(),
  };
}

interface Hasher {
  /** bytes [position, position + length) are written */
  written(position: number, length: number): void;
  /** every byte is written: the hash the host read back, or null if it could not */
  result(): Promise<string | null>;
  abort(): void;
}

async function finish(
  t: UploadTransport,
  v: UploadVerifier,
  part: string,
  remotePath: string,
  want: string,
  mode: number,
) {
  const c = v.finish(part, remotePath, want, mode);
  const r = await t.run(c.command, c.stdin);
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
  /**
   * Bytes [position, position + length). With `transient`, the result may be a view of a buffer
   * the next read overwrites: the caller copies it before reading again.
   */
  read(position: number, length: number, transient?: boolean): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * A file whose pieces are copied right away is read into one reused buffer of this size. One
 * write's worth: larger blocks saved little CPU and cost memory (`npm run bench`: 20 uploads
 * at once peaked ~45 MiB higher with 2 MiB blocks).
 */
const READ_BLOCK = CHUNK;

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
  const changed = () => new Error(`${source.path} changed while it was being uploaded`);
  // One reusable block for transient reads: [blockStart, blockStart + blockLength) of the file.
  let block: Buffer | undefined;
  let blockStart = 0;
  let blockLength = 0;
  return {
    read: async (pos, len, transient) => {
      if (!transient || len > READ_BLOCK) {
        const buf = Buffer.allocUnsafe(len);
        const { bytesRead } = await fh.read(buf, 0, len, pos);
        if (bytesRead !== len) throw changed();
        return buf;
      }
      if (!block || pos < blockStart || pos + len > blockStart + blockLength) {
        block ??= Buffer.allocUnsafe(READ_BLOCK);
        const want = Math.min(READ_BLOCK, sizeBytes - pos);
        const { bytesRead } = await fh.read(block, 0, want, pos);
        if (bytesRead !== want) throw changed();
        blockStart = pos;
        blockLength = want;
      }
      return block.subarray(pos - blockStart, pos - blockStart + len);
    },
    close: () => fh.close(),
  };
}

/**
 * Write bytes [from, size) of the source into the .part, several writes in flight. Returns bytes
 * written. With `t` and `onHash`, the host hashes the .part as it fills, and onHash gets that
 * hash (or null) before this returns.
 */
async function writePart(
  sftp: SFTPWrapper,
  part: string,
  reader: SourceReader,
  from: number,
  opts: UploadOptions,
  v: UploadVerifier,
  t?: UploadTransport,
  onHash?: (hash: string | null) => void,
): Promise<number> {
  const lifeline = watchChannel(sftp);
  // Every SFTP request races the channel's end; a refusal by the server becomes a
  // RemoteCommandError, a drop stays a plain error that the session reports as unreachable.
  const request = <T>(what: string, fn: (cb: (err: Error | null | undefined, value?: T) => void) => void) =>
    lifeline.call<T>(fn).catch((err: Error) => {
      if (lifeline.isGone()) throw err;
      throw new RemoteCommandError(`${what} ${part} failed: ${err.message}`, null, err.message);
    });
  const mode = opts.mode & 0o7777;
  let handle: Buffer | undefined;
  let hasher: Hasher | null = null;
  try {
    // 'r+' keeps what is there (resume); 'w' creates or truncates. The mode is given at
    // creation and set again with fchmod before any byte is written, in case the .part
    // already existed with looser permissions.
    handle = await request<Buffer>(
      'opening (does the directory exist, and may the login user write there?)',
      (cb) => sftp.open(part, from > 0 ? 'r+' : 'w', { mode }, cb),
    );
    const h = handle;
    if (v.sftpModes) await request<void>('chmod of', (cb) => sftp.fchmod(h, mode, cb));
    // Opened after the SFTP open, so the hasher reads the file this upload writes.
    hasher = t && onHash && opts.sizeBytes >= STREAM_HASH_MIN ? await startHasher(t, v, part, from) : null;
    const total = opts.sizeBytes;
    // ssh2 splits a write longer than the server takes into parts sent one after the other,
    // each from our buffer. A write that fits is copied into its SSH packet at once, so the
    // file can be read into one reused buffer: a multi-GB upload allocates a few hundred KiB
    // of its own instead of its size, which the garbage collector then has to chase.
    const serverMax = (sftp as unknown as { _maxWriteLen?: unknown })._maxWriteLen;
    const fits = typeof serverMax === 'number' && serverMax > 0;
    const chunk = fits ? Math.min(CHUNK, serverMax) : CHUNK;
    const maxInFlight = Math.max(1, Math.ceil(IN_FLIGHT_BYTES / chunk));
    let done = from;
    let next = from;
    let failure: unknown;
    const inFlight = new Set<Promise<void>>();
    opts.onProgress?.(done, total);
    while (next < total && failure === undefined) {
      const position = next;
      const length = Math.min(chunk, total - position);
      next += length;
      const data = await reader.read(position, length, fits);
      const write = request<void>('writing', (cb) => {
        const send = () => sftp.write(h, data, 0, length, position, (err) => cb(err));
        if (t?.batch) t.batch(send);
        else send();
      }).then(
        () => {
          done += length;
          hasher?.written(position, length);
          opts.onProgress?.(done, total);
        },
        (err) => {
          failure ??= err;
        },
      );
      inFlight.add(write);
      void write.finally(() => inFlight.delete(write));
      if (inFlight.size >= maxInFlight) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    await request<void>('closing', (cb) => sftp.close(h, cb)).catch(() => {});
    handle = undefined;
    if (hasher) {
      const running = hasher;
      hasher = null;
      onHash?.(await running.result());
    } else onHash?.(null);
    return total - from;
  } finally {
    hasher?.abort();
    const h = handle;
    if (h && !lifeline.isGone()) await request<void>('closing', (cb) => sftp.close(h, cb)).catch(() => {});
    lifeline.stop();
  }
}

/**
 * Calls into the SFTP channel that fail once the channel ends (alone, or with the connection).
 * ssh2 fails the requests pending at that moment but never answers one made afterwards, so a
 * request made after the end fails at once. (Not Promise.race with one long-lived promise:
 * every race leaves a reaction on it, thousands per large upload, freed only at its end.)
 */
function watchChannel(sftp: SFTPWrapper): {
  call<T>(fn: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T>;
  isGone: () => boolean;
  stop: () => void;
} {
  let isGone = false;
  const pending = new Set<(err: Error) => void>();
  const onGone = () => {
    if (isGone) return;
    isGone = true;
    const err = new Error('the SFTP channel closed');
    for (const fail of pending) fail(err);
    pending.clear();
  };
  sftp.once('end', onGone).once('close', onGone);
  return {
    call<T>(fn: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
      if (isGone) return Promise.reject(new Error('the SFTP channel closed'));
      return new Promise<T>((resolve, reject) => {
        pending.add(reject);
        fn((err, value) => {
          pending.delete(reject);
          if (err) reject(err);
          else resolve(value as T);
        });
      });
    },
    isGone: () => isGone,
    stop: () => {
      sftp.off('end', onGone).off('close', onGone);
    },
  };
}
