// Cached, atomic, lock-protected builds of VM artefacts outside the repository.
//
// Layout: $BALENA_MIGRATE_CACHE (or ~/.cache/balena-migrate) / vm / <kind>-<hash> / ...
// A build runs in a `.tmp-*` sibling and is renamed into place when complete, so a
// directory with the final name is always a finished build. A lock file per artefact
// makes a second process (another test file) wait for the first one's build.
import { createHash } from 'node:crypto';
import { existsSync, constants as fsConstants, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import { join, relative } from 'node:path';
import { unmountUnder } from './run.ts';

// Bump when the cache layout (not a builder) changes incompatibly.
const LAYOUT_VERSION = '1';
const MANIFEST = 'manifest.json';

/** Root of every cached VM artefact. */
export function vmCacheDir(): string {
  const root = process.env.BALENA_MIGRATE_CACHE || join(homedir(), '.cache', 'balena-migrate');
  return join(root, 'vm');
}

/** A short hex digest of the given files (directories are walked, sorted) and extra strings. */
export function hashSources(paths: string[], extra: string[] = []): string {
  const hash = createHash('sha256');
  hash.update(`layout:${LAYOUT_VERSION}\n`);
  for (const item of extra) hash.update(`extra:${item}\n`);
  for (const path of paths) {
    for (const file of listFiles(path)) {
      hash.update(`file:${relative(path, file)}\n`);
      hash.update(readFileSync(file));
    }
  }
  return hash.digest('hex').slice(0, 16);
}

// Every regular file under `path` (or `path` itself), in a stable order.
function listFiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .flatMap((entry) => listFiles(join(path, entry.name)));
}

export interface CachedBuild<M> {
  dir: string;
  manifest: M;
}

const inProcess = new Map<string, Promise<CachedBuild<unknown>>>();

/**
 * Returns the finished build `<name>` from the cache, building it with `build(tmpDir)` first if
 * needed. `build` fills tmpDir and returns the manifest (paths in it relative to the dir).
 */
export function cachedBuild<M>(name: string, build: (tmpDir: string) => Promise<M>): Promise<CachedBuild<M>> {
  const existing = inProcess.get(name);
  if (existing) return existing as Promise<CachedBuild<M>>;
  const promise = buildUnderLock(name, build);
  inProcess.set(name, promise as Promise<CachedBuild<unknown>>);
  promise.catch(() => inProcess.delete(name));
  return promise;
}

async function buildUnderLock<M>(
  name: string,
  build: (tmpDir: string) => Promise<M>,
): Promise<CachedBuild<M>> {
  const root = vmCacheDir();
  const dir = join(root, name);
  const done = readFinished<M>(dir);
  if (done) return done;
  await mkdir(join(root, 'locks'), { recursive: true });
  const release = await acquireLock(join(root, 'locks', `${name}.lock`), () =>
    existsSync(join(dir, MANIFEST)),
  );
  try {
    const finished = readFinished<M>(dir);
    if (finished) return finished;
    await removeAbandonedBuilds(root, name);
    const tmpDir = join(root, `.tmp-${name}-${process.pid}-${Date.now()}`);
    await mkdir(tmpDir, { recursive: true });
    try {
      const manifest = await build(tmpDir);
      await writeFile(join(tmpDir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
      await rename(tmpDir, dir);
    } catch (error) {
      await keepFailedLog(tmpDir, join(root, `${name}.failed.log`));
      await unmountUnder(tmpDir);
      if (!process.env.BALENA_MIGRATE_KEEP_FAILED_BUILD) await rm(tmpDir, { recursive: true, force: true });
      throw error;
    }
    return readFinished<M>(dir)!;
  } finally {
    await release();
  }
}

/**
 * Removes finished builds of the given kinds ("debian-base", ...) other than `keep`, skipping
 * any whose lock is held. Returns the removed directory names.
 */
export async function pruneVmCache(kinds: string[], keep: string[]): Promise<string[]> {
  const root = vmCacheDir();
  if (!existsSync(root)) return [];
  const removed: string[] = [];
  for (const entry of readdirSync(root)) {
    const kind = kinds.find((k) => entry.startsWith(`${k}-`));
    if (!kind || keep.includes(entry) || existsSync(join(root, 'locks', `${entry}.lock`))) continue;
    await rm(join(root, entry), { recursive: true, force: true });
    removed.push(entry);
  }
  return removed;
}

// Removes `.tmp-<name>-*` left by builds whose process died (we hold the lock, so none is live).
async function removeAbandonedBuilds(root: string, name: string): Promise<void> {
  for (const entry of readdirSync(root)) {
    if (!entry.startsWith(`.tmp-${name}-`)) continue;
    await unmountUnder(join(root, entry));
    await rm(join(root, entry), { recursive: true, force: true });
  }
}

function readFinished<M>(dir: string): CachedBuild<M> | undefined {
  const path = join(dir, MANIFEST);
  if (!existsSync(path)) return undefined;
  return { dir, manifest: JSON.parse(readFileSync(path, 'utf8')) as M };
}

// Keeps build.log of a failed build next to the cache entries so it can be read afterwards.
async function keepFailedLog(tmpDir: string, to: string): Promise<void> {
  try {
    await writeFile(to, await readFile(join(tmpDir, 'build.log')));
    process.stderr.write(`[vm-harness] build failed; log kept at ${to}\n`);
  } catch {
    // no log written yet
  }
}

/**
 * Takes an exclusive lock file (O_EXCL create), waiting while another live process holds it.
 * A lock whose owner process is gone is taken over. `satisfied` lets a waiter stop early once
 * the holder has produced what it needed.
 */
export async function acquireLock(
  path: string,
  satisfied: () => boolean = () => false,
  timeoutMs = 60 * 60_000,
): Promise<() => Promise<void>> {
  const started = Date.now();
  let announced = false;
  for (;;) {
    try {
      const handle = await open(path, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, 0o644);
      await handle.writeFile(
        JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() }),
      );
      await handle.close();
      return async () => {
        await unlink(path).catch(() => undefined);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    if (satisfied()) return async () => undefined;
    if (lockIsStale(path)) {
      await unlink(path).catch(() => undefined);
      continue;
    }
    if (!announced) {
      process.stderr.write(`[vm-harness] waiting for another build holding ${path}\n`);
      announced = true;
    }
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out waiting for lock ${path}; remove it if stale`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// A lock is stale when its owner (same host) no longer runs. Unreadable locks are young or foreign.
function lockIsStale(path: string): boolean {
  try {
    const owner = JSON.parse(readFileSync(path, 'utf8')) as { pid?: number; host?: string };
    if (owner.host !== hostname() || typeof owner.pid !== 'number') return false;
    try {
      process.kill(owner.pid, 0);
      return false;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ESRCH';
    }
  } catch {
    // Half-written lock: stale only if it has been like that for a while.
    try {
      return Date.now() - statSync(path).mtimeMs > 30_000;
    } catch {
      return false;
    }
  }
}
