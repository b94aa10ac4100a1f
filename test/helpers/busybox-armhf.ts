// Debian's busybox-static for armhf (a 32-bit ARM build: `long` is 32 bits there), fetched with
// apt-get into a private apt state (no change to the machine's sources or architectures) and
// unpacked into the cache, for running stage2's shell code as a 32-bit board would, under
// qemu-arm (Debian package qemu-user).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cacheRoot } from './kernel.ts';

const exec = promisify(execFile);

/** The cached armhf busybox, downloaded and unpacked on first use. */
export async function ensureArmhfBusybox(): Promise<string> {
  const dir = join(cacheRoot(), 'busybox-armhf');
  const binary = join(dir, 'bin', 'busybox');
  if (existsSync(binary)) return binary;
  await mkdir(cacheRoot(), { recursive: true });
  const scratch = await mkdtemp(join(cacheRoot(), '.busybox-armhf-'));
  try {
    for (const d of ['lists/partial', 'cache/archives/partial', 'dl'])
      await mkdir(join(scratch, d), { recursive: true });
    const apt = [
      '-o',
      `Dir::State::Lists=${join(scratch, 'lists')}`,
      '-o',
      `Dir::Cache=${join(scratch, 'cache')}`,
      '-o',
      'APT::Architecture=armhf',
      '-o',
      'APT::Architectures::=armhf',
      '-o',
      'Debug::NoLocking=1',
    ];
    // some index files of other suites may fail; the main one is what counts
    await exec('apt-get', [...apt, 'update']).catch(() => {});
    await exec('apt-get', [...apt, 'download', 'busybox-static:armhf'], { cwd: join(scratch, 'dl') });
    const deb = (await readdir(join(scratch, 'dl'))).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error('apt-get download busybox-static:armhf left no .deb');
    await exec('dpkg-deb', ['-x', join(scratch, 'dl', deb), join(scratch, 'root')]);
    await rename(join(scratch, 'root'), dir).catch(async (e) => {
      if (!existsSync(binary)) throw e;
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return binary;
}
