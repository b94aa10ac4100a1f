import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../orchestrator/errors.ts';
import { readEvents, readLines, startFleetChild, waitUntil } from '../fixtures/fleet/child-process.ts';
import { removeTempRunDirs, tempRunDir } from '../fixtures/fleet/scripted-hosts.ts';

afterAll(removeTempRunDirs);

function setup(label: string) {
  const runDir = tempRunDir(label);
  return { runDir, callsFile: join(dirname(runDir), 'calls.txt') };
}

describe('a fleet run and Ctrl-C', () => {
  it('on the first SIGINT finishes the hosts in flight, starts no new one, and exits with a summary', async () => {
    const { runDir, callsFile } = setup('sigint');
    const run = startFleetChild({ runDir, callsFile, hosts: 6, concurrency: 2, uploadMs: 600 });
    await waitUntil('two hosts uploading', () =>
      readEvents(runDir).some((e) => e.type === 'host-phase' && e.host === 'host-02' && e.phase === 'upload'),
    );
    run.child.kill('SIGINT');
    const { code } = await run.exited;
    const output = run.output();

    expect(code, output).toBe(ExitCode.interrupted);
    expect(readLines(callsFile)).toEqual(['start host-01 -', 'start host-02 -']);
    expect(output).toContain(
      'stopping: finishing 2 hosts in flight; Ctrl-C again to abort what is safe to abort',
    );
    expect(output).toMatch(/host-01: migrated in /);
    expect(output).toMatch(/host-02: migrated in /);
    expect(output).toContain('host-03: not-started: the run was stopped by SIGINT');
    const summary = output.trimEnd().split('\n').at(-1);
    expect(summary).toMatch(
      /^interrupted in .+: 2 migrated, 4 not-started; hosts to re-run are listed in .+failed-hosts\.txt$/,
    );
    expect(readFileSync(join(runDir, 'failed-hosts.txt'), 'utf8')).toBe(
      'host-03\nhost-04\nhost-05\nhost-06\n',
    );
  });

  it('on a second SIGINT aborts the hosts in flight through their abort signal', async () => {
    const { runDir, callsFile } = setup('sigint2');
    const run = startFleetChild({ runDir, callsFile, hosts: 5, concurrency: 2, uploadMs: 30_000 });
    await waitUntil('two hosts uploading', () =>
      readEvents(runDir).some((e) => e.type === 'host-phase' && e.host === 'host-02' && e.phase === 'upload'),
    );
    run.child.kill('SIGINT');
    await waitUntil('the stopping message', () => run.output().includes('stopping: finishing 2 hosts'));
    run.child.kill('SIGINT');
    const { code } = await run.exited;
    const output = run.output();

    expect(code, output).toBe(ExitCode.interrupted);
    expect(readLines(callsFile).sort()).toEqual([
      'aborted host-01',
      'aborted host-02',
      'start host-01 -',
      'start host-02 -',
    ]);
    expect(output).toContain('aborting: 2 hosts in flight will stop at the next point where that is safe');
    expect(output).toContain('host-01: failed in');
    expect(output).toContain('aborted by the operator during upload');
    const finished = readEvents(runDir).find((e) => e.type === 'run-finished');
    expect(finished).toMatchObject({ interrupted: true, counts: { failed: 2, 'not-started': 3 } });
  });

  it('treats SIGTERM like Ctrl-C: no new hosts, the ones in flight finish', async () => {
    const { runDir, callsFile } = setup('sigterm');
    const run = startFleetChild({ runDir, callsFile, hosts: 4, concurrency: 1, uploadMs: 300 });
    await waitUntil('the first host uploading', () =>
      readEvents(runDir).some((e) => e.type === 'host-phase' && e.phase === 'upload'),
    );
    run.child.kill('SIGTERM');
    const { code } = await run.exited;
    expect(code, run.output()).toBe(ExitCode.interrupted);
    expect(readLines(callsFile)).toEqual(['start host-01 -']);
    expect(run.output()).toContain('host-01: migrated in');
  });
});
