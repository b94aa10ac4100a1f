// Debian's armmp kernel (32-bit ARM, runs on QEMU's `virt` machine) for the u-boot VM test:
// fetched with apt-get into a private apt state (no change to the machine's sources or
// architectures), unpacked and depmod'ed into the cache, like the cloud kernel of kernel.ts.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cacheRoot, type TestKernel } from './kernel.ts';

const exec = promisify(execFile);

async function unpacked(dir: string): Promise<TestKernel | undefined> {
  if (!existsSync(join(dir, 'ready'))) return undefined;
  const base = join(dir, 'root', 'lib', 'modules');
  for (const release of await readdir(base)) {
    const vmlinuz = join(dir, 'root', 'boot', `vmlinuz-${release}`);
    if (existsSync(vmlinuz)) return { release, vmlinuz, modulesDir: join(base, release) };
  }
  return undefined;
}

/** The cached armmp kernel, downloaded and unpacked on first use. */
export async function ensureArmhfKernel(): Promise<TestKernel> {
  const dir = join(cacheRoot(), 'kernel-armmp');
  const have = await unpacked(dir);
  if (have) return have;
  await mkdir(cacheRoot(), { recursive: true });
  const scratch = await mkdtemp(join(cacheRoot(), '.kernel-armmp-'));
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
    await exec('apt-get', [...apt, 'update']).catch(() => {});
    const { stdout } = await exec('apt-cache', [...apt, 'depends', 'linux-image-armmp']);
    const name = /Depends:\s+(linux-image-[0-9][^\s]*-armmp)\b/.exec(stdout)?.[1];
    if (!name) throw new Error('apt-cache depends linux-image-armmp names no kernel package');
    await exec('apt-get', [...apt, 'download', `${name}:armhf`], { cwd: join(scratch, 'dl') });
    const deb = (await readdir(join(scratch, 'dl'))).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${name}:armhf left no .deb`);
    const root = join(scratch, 'root');
    await exec('dpkg-deb', ['-x', join(scratch, 'dl', deb), root]);
    const release = name.replace(/^linux-image-/, '');
    await exec('depmod', ['-b', root, release]);
    await writeFile(join(scratch, 'ready'), `${name}\n`);
    await rm(join(scratch, 'dl'), { recursive: true, force: true });
    await rename(scratch, dir).catch(async (e) => {
      if (!(await unpacked(dir))) throw e;
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  const got = await unpacked(dir);
  if (!got) throw new Error(`${dir}: the armmp kernel did not unpack`);
  return got;
}
