// Running the host tools a build needs, with their output kept in a build log.
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';

export interface RunOptions {
  /** Append the command line and its output to this file. */
  log?: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  /** Resolve even when the exit code is not 0. */
  allowFailure?: boolean;
}

export interface RunResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program without a shell and returns its output; rejects with the output tail on failure. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  if (opts.log) appendFileSync(opts.log, `\n$ ${[cmd, ...args].join(' ')}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => {
      out.push(chunk);
      if (opts.log) appendFileSync(opts.log, chunk);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      err.push(chunk);
      if (opts.log) appendFileSync(opts.log, chunk);
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    child.on('error', (error) => reject(new Error(`cannot run ${cmd}: ${error.message}`)));
    child.on('close', (exitCode) => {
      const result = {
        exitCode,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
      if (exitCode === 0 || opts.allowFailure) resolve(result);
      else {
        const tail = (result.stderr || result.stdout).trim().split('\n').slice(-15).join('\n');
        reject(new Error(`${cmd} ${args.join(' ')} exited with ${exitCode}\n${tail}`));
      }
    });
  });
}

/** Runs a shell snippet (`sh -c`), for pipelines. */
export function sh(script: string, opts: RunOptions = {}): Promise<RunResult> {
  return run('sh', ['-c', script], opts);
}

/** Quotes a string for a POSIX shell. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Writes a progress line to stderr and to the build log. */
export function step(log: string | undefined, message: string): void {
  const line = `[vm-harness] ${new Date().toISOString().slice(11, 19)} ${message}`;
  process.stderr.write(`${line}\n`);
  if (log) appendFileSync(log, `\n${line}\n`);
}

/** Unmounts everything mounted at or below `dir` (deepest first), e.g. after a failed chroot step. */
export async function unmountUnder(dir: string): Promise<void> {
  let mounts: string[];
  try {
    mounts = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[1] ?? '')
      .map((point) => point.replace(/\\040/g, ' '))
      .filter((point) => point === dir || point.startsWith(`${dir}/`));
  } catch {
    return;
  }
  for (const point of mounts.sort((a, b) => b.length - a.length)) {
    await run('umount', ['-l', point], { allowFailure: true });
  }
}
