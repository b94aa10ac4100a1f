// Upload throughput: one file to one loopback sshd with our SshSession.upload and with
// OpenSSH's scp, same sshd, same file, alternating, the median of several rounds. Ours is
// timed like scp's whole process: connect, upload, verify on the host, close. scp verifies
// nothing, so "scp + sha256sum" (scp, then the host hashes the file over ssh) is shown too.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { SshSession } from '../../orchestrator/ssh/session.ts';
import { fleetSpecs, startFleetHosts } from '../helpers/fleet-hosts.ts';
import { log, median, secondsSince } from './machine.ts';

export interface UploadBenchResult {
  sizeMiB: number;
  rounds: number;
  /** MB/s (10^6 bytes per second), medians */
  scp: number;
  scpThenSha256: number;
  ours: number;
  /** ours, up to the last write acknowledged (the host has hashed along the way) */
  oursTransfer: number;
  /** ours / scp */
  ratio: number;
  oursCpuSeconds: number;
  samples: Record<string, number[]>;
}

/** A file of incompressible bytes, written in pieces. */
async function makeFile(path: string, sizeMiB: number): Promise<string> {
  const hash = createHash('sha256');
  const fh = await open(path, 'w');
  try {
    const piece = 8 * 1024 * 1024;
    for (let done = 0; done < sizeMiB * 1024 * 1024; done += piece) {
      const bytes = randomBytes(piece);
      hash.update(bytes);
      await fh.write(bytes);
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

export async function runUploadBench(opts: { sizeMiB: number; rounds: number; workDir: string }) {
  mkdirSync(opts.workDir, { recursive: true });
  const file = join(opts.workDir, 'upload-source.bin');
  log(`upload: writing a ${opts.sizeMiB} MiB source file`);
  const sha256 = await makeFile(file, opts.sizeMiB);
  const size = statSync(file).size;
  const fleet = await startFleetHosts(fleetSpecs('upload', 1), { logLevel: 'ERROR' });
  const host = fleet.hosts[0]!;
  const dest = join(opts.workDir, 'upload-dest');
  mkdirSync(dest, { recursive: true });
  const sshArgs = [
    '-i',
    fleet.clientKeyPath,
    '-o',
    `UserKnownHostsFile=${fleet.knownHostsFile}`,
    '-o',
    'BatchMode=yes',
  ];
  const samples: Record<string, number[]> = { scp: [], scpThenSha256: [], ours: [], oursTransfer: [] };
  const cpu: number[] = [];
  const mb = size / 1e6;
  try {
    for (let round = 1; round <= opts.rounds; round++) {
      // scp, then the same followed by a hash on the host
      for (const verify of [false, true]) {
        const target = join(dest, 'scp.bin');
        rmSync(target, { force: true });
        const start = process.hrtime.bigint();
        const scp = spawnSync('scp', [
          '-q',
          ...sshArgs,
          '-P',
          String(host.port),
          file,
          `root@127.0.0.1:${target}`,
        ]);
        if (scp.status !== 0) throw new Error(`scp failed: ${scp.stderr}`);
        if (verify) {
          const ssh = spawnSync(
            'ssh',
            [...sshArgs, '-p', String(host.port), 'root@127.0.0.1', `sha256sum ${target}`],
            {
              encoding: 'utf8',
            },
          );
          if (!ssh.stdout.startsWith(sha256))
            throw new Error(`scp's copy does not hash right: ${ssh.stdout}`);
        }
        (verify ? samples.scpThenSha256! : samples.scp!).push(mb / secondsSince(start));
      }
      // ours
      const target = join(dest, 'ours.bin');
      rmSync(target, { force: true });
      const cpuBefore = process.cpuUsage();
      const start = process.hrtime.bigint();
      let transfer = 0;
      const session = await SshSession.connect({
        host: '127.0.0.1',
        port: host.port,
        username: 'root',
        identityFiles: [fleet.clientKeyPath],
        agentSocket: null,
        knownHostsFile: fleet.knownHostsFile,
      });
      const result = await session.upload({ path: file }, target, {
        sha256,
        sizeBytes: size,
        mode: 0o644,
        onProgress: (done, total) => {
          if (done === total && transfer === 0) transfer = secondsSince(start);
        },
      });
      await session.close();
      const seconds = secondsSince(start);
      const used = process.cpuUsage(cpuBefore);
      if (result.skipped || result.bytesSent !== size) throw new Error('upload did not send the whole file');
      samples.ours!.push(mb / seconds);
      samples.oursTransfer!.push(mb / transfer);
      cpu.push((used.user + used.system) / 1e6);
      log(
        `upload round ${round}/${opts.rounds}: scp ${samples.scp!.at(-1)!.toFixed(0)} MB/s, ` +
          `scp+sha256sum ${samples.scpThenSha256!.at(-1)!.toFixed(0)} MB/s, ours ${samples.ours!.at(-1)!.toFixed(0)} MB/s`,
      );
    }
  } finally {
    rmSync(dest, { recursive: true, force: true });
    rmSync(file, { force: true });
    await fleet.stop();
  }
  const result: UploadBenchResult = {
    sizeMiB: opts.sizeMiB,
    rounds: opts.rounds,
    scp: median(samples.scp!),
    scpThenSha256: median(samples.scpThenSha256!),
    ours: median(samples.ours!),
    oursTransfer: median(samples.oursTransfer!),
    ratio: median(samples.ours!) / median(samples.scp!),
    oursCpuSeconds: median(cpu),
    samples,
  };
  writeFileSync(join(opts.workDir, 'upload.json'), JSON.stringify(result, null, 2));
  return result;
}
