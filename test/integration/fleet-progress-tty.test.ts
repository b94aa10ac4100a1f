import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { CHILD_SCRIPT, REPO_ROOT } from '../fixtures/fleet/child-process.ts';
import type { ChildConfig } from '../fixtures/fleet/fleet-child.ts';
import { replayTerminal } from '../fixtures/fleet/screen.ts';
import { removeTempRunDirs, tempRunDir } from '../fixtures/fleet/scripted-hosts.ts';

afterAll(removeTempRunDirs);

const run = promisify(execFile);

/** Runs the fleet child under a pseudo-terminal of the given size (util-linux `script`). */
async function underPty(
  config: ChildConfig,
  columns = 110,
  rows = 30,
): Promise<{ output: string; code: number }> {
  const command = `stty cols ${columns} rows ${rows}; exec '${process.execPath}' --import tsx '${CHILD_SCRIPT}'`;
  try {
    const { stdout } = await run('script', ['-qec', command, '/dev/null'], {
      cwd: REPO_ROOT,
      env: { ...process.env, TERM: 'xterm-256color', FLEET_CHILD: JSON.stringify(config) },
      timeout: 60_000,
    });
    return { output: stdout, code: 0 };
  } catch (error) {
    const failed = error as { stdout?: string; code?: number };
    return { output: failed.stdout ?? '', code: failed.code ?? -1 };
  }
}

describe('the progress display on a terminal', () => {
  it('draws an overall bar and a bar per host in flight, prints results above them, and ends with the summary', async () => {
    const runDir = tempRunDir('tty');
    const { output, code } = await underPty({
      runDir,
      callsFile: join(dirname(runDir), 'calls.txt'),
      hosts: 5,
      concurrency: 2,
      uploadMs: 1_200,
      waves: '1,100%',
      failing: ['host-04'],
      maxFailures: '1',
    });
    expect(code, output).toBe(1);

    // While it ran: the cursor was hidden, the bars were redrawn in place, and the slot bars
    // showed the host, its phase, the bytes and the rate.
    expect(output).toContain('\u001b[?25l');
    expect(output).toMatch(/\u001b\[\d+A/);
    expect(output).toMatch(/fleet [█░]{20} \d\/5 hosts {2}wave \d\/2/);
    expect(output).toMatch(/ {2}host-0\d +upload image +[█░]{20} +\d+% [\d.]+ MiB\/64\.0 MiB/);
    expect(output).toMatch(/MiB\/s {2}ETA [\d.]+s/);
    // At the end: the cursor is back.
    expect(output.lastIndexOf('\u001b[?25h')).toBeGreaterThan(output.lastIndexOf('\u001b[?25l'));

    const screen = replayTerminal(output).filter((line) => line !== '');
    expect(screen[0]).toBe(
      `run: 5 of 5 hosts, waves of 1/4, concurrency 2, max failures 1; run directory ${runDir}`,
    );
    const results = screen.filter((line) => /^[✔✖]/.test(line)).map((line) => line.replace(/\s+/g, ' '));
    expect(results.map((line) => line.split(' ').slice(0, 3).join(' ')).sort()).toEqual([
      '✔ host-01 migrated',
      '✔ host-02 migrated',
      '✔ host-03 migrated',
      '✔ host-05 migrated',
      '✖ host-04 failed',
    ]);
    expect(results.find((line) => line.includes('host-04'))).toContain('scripted failure');
    expect(screen).toContain('wave 2/2 finished: 3 migrated, 1 failed');
    // The final screen keeps the full overall bar and the summary, and no stale slot bars.
    expect(screen.at(-2)).toMatch(/^fleet █{20} 5\/5 hosts {2}wave 2\/2 {2}[\d.]+s {2}4 migrated, 1 failed$/);
    expect(screen.at(-1)).toBe(
      `finished in ${screen.at(-1)?.match(/in (\S+):/)?.[1]}: 4 migrated, 1 failed; hosts to re-run are listed in ${runDir}/failed-hosts.txt`,
    );
    expect(screen.some((line) => line.includes('idle') || line.includes('upload image'))).toBe(false);
  });

  it('shows no more slot bars than the terminal has room for, and counts the others', async () => {
    const runDir = tempRunDir('tty-small');
    const { output, code } = await underPty(
      { runDir, callsFile: join(dirname(runDir), 'calls.txt'), hosts: 12, concurrency: 12, uploadMs: 800 },
      100,
      10,
    );
    expect(code, output).toBe(0);
    expect(output).toContain('12 in flight (8 not shown)');
    const screen = replayTerminal(output).filter((line) => line !== '');
    expect(screen.filter((line) => line.startsWith('✔ host-'))).toHaveLength(12);
    expect(screen.at(-1)).toMatch(/^finished in .+: 12 migrated$/);
  });
});
