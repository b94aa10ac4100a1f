// Facts about the machine a benchmark ran on, and small timing helpers the benchmarks share.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';

export interface MachineFacts {
  date: string;
  cpus: number;
  cpuModel: string;
  memTotalMiB: number;
  kernel: string;
  node: string;
  openssh: string;
  ansible: string;
  /** 1-minute load average when the benchmark started: other work on the machine skews figures */
  loadAtStart: number;
}

function firstLine(cmd: string, args: string[]): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.trim().split('\n')[0] ?? '';
  } catch {
    return '';
  }
}

export function machineFacts(): MachineFacts {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  // ssh -V prints its version on stderr
  const sshV = spawnSync('ssh', ['-V'], { encoding: 'utf8' });
  const openssh = `${sshV.stderr}${sshV.stdout}`.trim().split('\n')[0] || 'unknown';
  return {
    date: new Date().toISOString(),
    cpus: availableParallelism(),
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    memTotalMiB: Math.round(Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0) / 1024),
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    node: process.version,
    openssh,
    ansible: firstLine('ansible', ['--version']) || 'not installed',
    loadAtStart: loadavg()[0] ?? 0,
  };
}

/** Seconds since `start` (from process.hrtime.bigint()). */
export function secondsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** CPU seconds (user + system, itself and reaped children) of a live process, from /proc. */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0);
  return ticks / 100;
}

export function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}
