// Uploads over SFTP to a real sshd: verified by the host's sha256sum, skipped when the
// file is already right, resumed after the link is cut mid-file, mode applied from the
// first byte. sshd runs on this machine, so the "remote" files are ours to inspect.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteCommandError, UnreachableError } from '../../orchestrator/errors.ts';
import { type ConnectOptions, SshSession } from '../../orchestrator/ssh/session.ts';
import { type CutProxy, startCutProxy } from '../helpers/cut-proxy.ts';
import { connectOptions, type Sshd, startSshd, writeKnownHostsFor } from '../helpers/sshd.ts';

const MiB = 1024 * 1024;

let sshd: Sshd;
let dir: string;
let session: SshSession;
let image: { path: string; size: number; sha256: string };

beforeAll(async () => {
  sshd = await startSshd();
  dir = await mkdtemp(join(tmpdir(), 'bm-ssh-upload-'));
  const bytes = randomBytes(24 * MiB);
  image = { path: join(dir, 'image.img'), size: bytes.length, sha256: sha256(bytes) };
  await writeFile(image.path, bytes);
  session = await SshSession.connect(options());
});

afterAll(async () => {
  await session?.close();
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
});

const options = (extra: Partial<ConnectOptions> = {}): ConnectOptions => connectOptions(sshd, extra);

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function remoteSha256(path: string): Promise<string> {
  return sha256(await readFile(path));
}

function modeOf(path: string): number {
  return statSync(path).mode & 0o777;
}

async function connectThroughProxy(): Promise<{ proxy: CutProxy; session: SshSession }> {
  const proxy = await startCutProxy({ targetPort: sshd.port });
  const kh = await writeKnownHostsFor(sshd, join(dir, `known_hosts_${proxy.port}`), proxy.port);
  return { proxy, session: await SshSession.connect(options({ port: proxy.port, knownHostsFile: kh })) };
}

describe('SshSession.upload', () => {
  it('uploads a new file, verifies it on the host and gives it the requested mode', async () => {
    const dest = join(dir, 'fresh.img');
    const progress: number[] = [];
    const started = performance.now();
    const r = await session.upload({ path: image.path }, dest, {
      sha256: image.sha256,
      sizeBytes: image.size,
      mode: 0o644,
      onProgress: (done, total) => {
        expect(total).toBe(image.size);
        progress.push(done);
      },
    });
    const seconds = (performance.now() - started) / 1000;
    console.info(`uploaded ${image.size / MiB} MiB in ${seconds.toFixed(2)} s`);
    expect(r).toEqual({ bytesSent: image.size, resumedFrom: 0, skipped: false });
    expect(await remoteSha256(dest)).toBe(image.sha256);
    expect(modeOf(dest)).toBe(0o644);
    expect(existsSync(`${dest}.part`)).toBe(false);
    expect(progress.at(-1)).toBe(image.size);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
  });

  it('skips a file the host already has with the same size and sha256', async () => {
    const dest = join(dir, 'already.img');
    await writeFile(dest, await readFile(image.path));
    const before = (await stat(dest)).mtimeMs;
    const r = await session.upload({ path: image.path }, dest, {
      sha256: image.sha256,
      sizeBytes: image.size,
      mode: 0o644,
    });
    expect(r).toEqual({ bytesSent: 0, resumedFrom: 0, skipped: true });
    expect((await stat(dest)).mtimeMs).toBe(before);
  });

  it('replaces a file of the same size but different content', async () => {
    const dest = join(dir, 'same-size.img');
    await writeFile(dest, randomBytes(image.size));
    const r = await session.upload({ path: image.path }, dest, {
      sha256: image.sha256,
      sizeBytes: image.size,
      mode: 0o644,
    });
    expect(r.skipped).toBe(false);
    expect(await remoteSha256(dest)).toBe(image.sha256);
  });

  it('resumes from the .part after the connection is cut mid-file, and ends with the right hash', async () => {
    const dest = join(dir, 'resumed.img');
    const { proxy, session: viaProxy } = await connectThroughProxy();
    try {
      proxy.cutAfter(6 * MiB);
      const err = await viaProxy
        .upload({ path: image.path }, dest, { sha256: image.sha256, sizeBytes: image.size, mode: 0o600 })
        .catch((e) => e);
      expect(err).toBeInstanceOf(UnreachableError);
      expect(err.message).toMatch(/dropped during upload/);
    } finally {
      await proxy.close();
    }
    const partSize = (await stat(`${dest}.part`)).size;
    expect(partSize).toBeGreaterThan(0);
    expect(partSize).toBeLessThan(image.size);
    // A secret is never readable by others, not even half-written.
    expect(modeOf(`${dest}.part`)).toBe(0o600);

    const r = await session.upload({ path: image.path }, dest, {
      sha256: image.sha256,
      sizeBytes: image.size,
      mode: 0o600,
    });
    expect(r.resumedFrom).toBe(partSize);
    expect(r.resumedFrom).toBeGreaterThan(0);
    expect(r.bytesSent).toBe(image.size - partSize);
    expect(await remoteSha256(dest)).toBe(image.sha256);
    expect(modeOf(dest)).toBe(0o600);
    expect(existsSync(`${dest}.part`)).toBe(false);
  });

  it('starts over once when a resumed .part turns out to hold other bytes', async () => {
    const dest = join(dir, 'stale-part.img');
    await writeFile(`${dest}.part`, randomBytes(3 * MiB));
    const r = await session.upload({ path: image.path }, dest, {
      sha256: image.sha256,
      sizeBytes: image.size,
      mode: 0o644,
    });
    expect(r.resumedFrom).toBe(3 * MiB);
    expect(r.bytesSent).toBe(image.size - 3 * MiB + image.size);
    expect(await remoteSha256(dest)).toBe(image.sha256);
  });

  it('ignores a .part longer than the file and writes from the start', async () => {
    const dest = join(dir, 'long-part.bin');
    const data = randomBytes(100_000);
    await writeFile(`${dest}.part`, randomBytes(200_000));
    const r = await session.upload({ data }, dest, {
      sha256: sha256(data),
      sizeBytes: data.length,
      mode: 0o644,
    });
    expect(r).toEqual({ bytesSent: data.length, resumedFrom: 0, skipped: false });
    expect((await readFile(dest)).equals(data)).toBe(true);
  });

  it('makes a secret 0600 from the moment its .part exists, even if an old .part was world-readable', async () => {
    const dest = join(dir, 'config.json');
    await writeFile(`${dest}.part`, '');
    await chmod(`${dest}.part`, 0o666);
    const data = Buffer.from(JSON.stringify({ apiKey: 'secret' }));
    const modesSeen: number[] = [];
    await session.upload({ data }, dest, {
      sha256: sha256(data),
      sizeBytes: data.length,
      mode: 0o600,
      onProgress: () => {
        if (existsSync(`${dest}.part`)) modesSeen.push(modeOf(`${dest}.part`));
      },
    });
    expect(modesSeen.length).toBeGreaterThan(0);
    expect(new Set(modesSeen)).toEqual(new Set([0o600]));
    expect(modeOf(dest)).toBe(0o600);
  });

  it('uploads an empty file', async () => {
    const dest = join(dir, 'empty');
    const data = Buffer.alloc(0);
    const r = await session.upload({ data }, dest, { sha256: sha256(data), sizeBytes: 0, mode: 0o644 });
    expect(r.skipped).toBe(false);
    expect((await stat(dest)).size).toBe(0);
  });

  it('handles a remote path with spaces, quotes and shell syntax', async () => {
    const dest = join(dir, `it's a $(touch pwned) \`name\`; *.json`);
    const data = Buffer.from('{}');
    await session.upload({ data }, dest, { sha256: sha256(data), sizeBytes: 2, mode: 0o644 });
    expect(await readFile(dest, 'utf8')).toBe('{}');
    expect(existsSync(join(dir, 'pwned'))).toBe(false);
  });

  it('fails with RemoteCommandError when the source does not match the expected hash', async () => {
    const dest = join(dir, 'wrong-hash.bin');
    const data = randomBytes(1000);
    const err = await session
      .upload({ data }, dest, { sha256: 'a'.repeat(64), sizeBytes: data.length, mode: 0o644 })
      .catch((e) => e);
    expect(err).toBeInstanceOf(RemoteCommandError);
    expect(err.message).toMatch(/failed verification twice/);
    expect(existsSync(dest)).toBe(false);
  });

  it('refuses a source whose size is not the one announced, before touching the host', async () => {
    const dest = join(dir, 'size-mismatch.bin');
    const err = await session
      .upload({ path: image.path }, dest, { sha256: image.sha256, sizeBytes: image.size - 1, mode: 0o644 })
      .catch((e) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect(existsSync(`${dest}.part`)).toBe(false);
  });

  it('says which directory is missing when the destination cannot be created', async () => {
    const data = Buffer.from('x');
    const err = await session
      .upload({ data }, join(dir, 'no', 'such', 'dir', 'f'), {
        sha256: sha256(data),
        sizeBytes: 1,
        mode: 0o644,
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(RemoteCommandError);
    expect(err.message).toMatch(/does the directory exist/);
  });
});
