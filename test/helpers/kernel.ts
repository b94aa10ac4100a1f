// Debian's cloud kernel for the VM tests, unpacked into a cache without being installed:
// `apt-get download` + `dpkg-deb -x` + `depmod -b`. Cached per package version.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface TestKernel {
  /** `uname -r` of the kernel, e.g. 6.1.0-56-cloud-amd64 */
  release: string;
  /** path of the bootable kernel image */
  vmlinuz: string;
  /** /lib/modules/RELEASE of the unpacked package, with modules.dep */
  modulesDir: string;
}

export const META_PACKAGE = 'linux-image-cloud-amd64';

/** $BALENA_MIGRATE_CACHE, or ~/.cache/balena-migrate. */
export function cacheRoot(): string {
  return process.env.BALENA_MIGRATE_CACHE || join(homedir(), '.cache', 'balena-migrate');
}

// "linux-image-6.1.0-56-cloud-amd64" from `apt-cache depends linux-image-cloud-amd64`.
async function resolveKernelPackage(): Promise<{ name: string; version: string }> {
  const { stdout } = await exec('apt-cache', ['depends', META_PACKAGE]);
  const name = /Depends:\s+(linux-image-[0-9][^\s]*-cloud-amd64)\b/.exec(stdout)?.[1];
  if (!name) throw new Error(`apt-cache depends ${META_PACKAGE} names no kernel package: run apt-get update`);
  const policy = await exec('apt-cache', ['policy', name]);
  const version = /Candidate:\s+(\S+)/.exec(policy.stdout)?.[1];
  if (!version || version === '(none)')
    throw new Error(`apt has no candidate for ${name}: run apt-get update`);
  return { name, version };
}

async function findUnpacked(dir: string): Promise<TestKernel | undefined> {
  if (!existsSync(join(dir, 'ready'))) return undefined;
  for (const base of [join(dir, 'root', 'lib', 'modules'), join(dir, 'root', 'usr', 'lib', 'modules')]) {
    if (!existsSync(base)) continue;
    for (const release of await readdir(base)) {
      const vmlinuz = join(dir, 'root', 'boot', `vmlinuz-${release}`);
      const modulesDir = join(base, release);
      if (existsSync(vmlinuz) && existsSync(join(modulesDir, 'modules.dep')))
        return { release, vmlinuz, modulesDir };
    }
  }
  return undefined;
}

async function depmod(root: string, release: string): Promise<void> {
  for (const cmd of [
    ['depmod', ['-b', root, release]],
    ['busybox', ['depmod', '-b', root, release]],
  ] as const) {
    try {
      await exec(cmd[0], [...cmd[1]]);
      return;
    } catch {}
  }
  throw new Error('depmod failed: install kmod (apt-get install kmod)');
}

let pending: Promise<TestKernel> | undefined;

/**
 * The cloud kernel apt offers now, downloaded and unpacked once per version. Without apt
 * lists (offline), the newest kernel already in the cache is used.
 */
export function ensureTestKernel(): Promise<TestKernel> {
  pending ??= fetchTestKernel().catch((e) => {
    pending = undefined;
    throw e;
  });
  return pending;
}

async function fetchTestKernel(): Promise<TestKernel> {
  const root = join(cacheRoot(), 'kernels');
  await mkdir(root, { recursive: true });
  let pkg: { name: string; version: string };
  try {
    pkg = await resolveKernelPackage();
  } catch (e) {
    const cached = (await readdir(root)).sort().reverse();
    for (const d of cached) {
      const k = await findUnpacked(join(root, d));
      if (k) return k;
    }
    throw e;
  }
  const dir = join(root, `${pkg.name}_${pkg.version.replaceAll(':', '%3a')}`);
  const ready = await findUnpacked(dir);
  if (ready) return ready;

  // Download and unpack into a scratch directory, then move it into place: a run that dies
  // half-way leaves no half-unpacked kernel in the cache.
  const scratch = await mkdtemp(join(root, '.unpack-'));
  try {
    await exec('apt-get', ['download', `${pkg.name}=${pkg.version}`], { cwd: scratch });
    const deb = (await readdir(scratch)).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${pkg.name} left no .deb`);
    await exec('dpkg-deb', ['-x', join(scratch, deb), join(scratch, 'root')]);
    await rm(join(scratch, deb));
    const modulesBase = [
      join(scratch, 'root', 'lib', 'modules'),
      join(scratch, 'root', 'usr', 'lib', 'modules'),
    ].find((p) => existsSync(p));
    if (!modulesBase) throw new Error(`${pkg.name} has no lib/modules`);
    const release = (await readdir(modulesBase))[0];
    if (!release) throw new Error(`${pkg.name} has an empty lib/modules`);
    await depmod(join(scratch, 'root'), release);
    await writeFile(join(scratch, 'ready'), `${pkg.name} ${pkg.version}\n`);
    // another test worker may have finished the same kernel first: theirs is as good
    await rename(scratch, dir).catch(async (e) => {
      if (!(await findUnpacked(dir))) throw e;
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  const unpacked = await findUnpacked(dir);
  if (!unpacked) throw new Error(`unpacking ${pkg.name} gave no vmlinuz or modules.dep`);
  return unpacked;
}
