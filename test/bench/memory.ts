// Memory: the peak RSS of a process pushing one large file to many loopback hosts at once.
// `run` cannot reach its upload on these hosts (the plan refuses: no GRUB here), so
// upload-many.ts drives the same upload layer in a process of its own; its VmHWM is the
// figure, cross-checked by sampling its VmRSS from here.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { fleetSpecs, REPO_ROOT, startFleetHosts } from '../helpers/fleet-hosts.ts';
import { log } from './machine.ts';
import type { UploadManyConfig } from './upload-many.ts';

export interface MemoryBenchResult {
  hosts: number;
  sizeMiB: number;
  peakRssMiB: number;
  /** the highest VmRSS seen while sampling every 100 ms */
  sampledPeakRssMiB: number;
  rssAtStartMiB: number;
  /** the JS heap and Buffer memory when RSS peaked (sampled every 50 ms) */
  atPeak: { heapUsed: number; arrayBuffers: number };
  seconds: number;
  /** MB/s over all hosts together */
  aggregateMBps: number;
}

/** One pseudo-random file, written piecewise from a repeated 16 MiB block (fast to make). */
async function makeFile(path: string, sizeMiB: number): Promise<string> {
  const block = randomBytes(16 * 1024 * 1024);
  const hash = createHash('sha256');
  const fh = await open(path, 'w');
  try {
    for (let done = 0; done < sizeMiB * 1024 * 1024; done += block.length) {
      const piece = block.subarray(0, Math.min(block.length, sizeMiB * 1024 * 1024 - done));
      // A counter in each piece keeps the pieces different from each other.
      piece.writeUInt32BE(done / block.length, 0);
      hash.update(piece);
      await fh.write(piece);
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

export async function runMemoryBench(opts: { hosts: number; sizeMiB: number; workDir: string }) {
  mkdirSync(opts.workDir, { recursive: true });
  const file = join(opts.workDir, 'memory-source.bin');
  log(`memory: writing a ${opts.sizeMiB} MiB source file`);
  const sha256 = await makeFile(file, opts.sizeMiB);
  const remoteRoot = join(opts.workDir, 'memory-hosts');
  mkdirSync(remoteRoot, { recursive: true });
  const fleet = await startFleetHosts(fleetSpecs('mem', opts.hosts), { logLevel: 'ERROR' });
  try {
    const config: UploadManyConfig = {
      ports: fleet.hosts.map((h) => h.port),
      keyPath: fleet.clientKeyPath,
      knownHostsFile: fleet.knownHostsFile,
      file,
      sizeBytes: opts.sizeMiB * 1024 * 1024,
      sha256,
      workDirPrefix: join(remoteRoot, 'host'),
    };
    log(`memory: pushing ${opts.sizeMiB} MiB to ${opts.hosts} hosts at once`);
    const env: NodeJS.ProcessEnv = { ...process.env, BENCH_UPLOAD_MANY: JSON.stringify(config) };
    delete env.SSH_AUTH_SOCK;
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test/bench/upload-many.ts')], {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    let sampledPeakKiB = 0;
    const sampler = setInterval(() => {
      const status = `/proc/${child.pid}/status`;
      if (!existsSync(status)) return;
      try {
        const rss = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(status, 'utf8'))?.[1] ?? 0);
        sampledPeakKiB = Math.max(sampledPeakKiB, rss);
      } catch {
        // exited between the check and the read
      }
    }, 100);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearInterval(sampler);
    if (code !== 0) throw new Error(`upload-many exited with ${code}: ${stderr}`);
    const r = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as {
      hosts: number;
      bytesSent: number;
      seconds: number;
      rssAtStartKiB: number;
      peakRssKiB: number;
      atPeakMiB: { heapUsed: number; arrayBuffers: number };
    };
    if (r.bytesSent !== opts.hosts * config.sizeBytes)
      throw new Error(`sent ${r.bytesSent} bytes, not all of them`);
    const result: MemoryBenchResult = {
      hosts: r.hosts,
      sizeMiB: opts.sizeMiB,
      peakRssMiB: r.peakRssKiB / 1024,
      sampledPeakRssMiB: sampledPeakKiB / 1024,
      rssAtStartMiB: r.rssAtStartKiB / 1024,
      atPeak: r.atPeakMiB,
      seconds: r.seconds,
      aggregateMBps: r.bytesSent / 1e6 / r.seconds,
    };
    log(`memory: peak RSS ${result.peakRssMiB.toFixed(0)} MiB over ${result.seconds.toFixed(0)} s`);
    return result;
  } finally {
    await fleet.stop();
    rmSync(remoteRoot, { recursive: true, force: true });
    rmSync(file, { force: true });
  }
}
