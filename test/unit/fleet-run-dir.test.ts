import { existsSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRunDir, runDirName } from '../../orchestrator/fleet/run-dir.ts';
import { removeTempRunDirs, tempRunDir } from '../fixtures/fleet/scripted-hosts.ts';

afterAll(removeTempRunDirs);

describe('the run directory', () => {
  const when = new Date('2026-11-26T04:50:00.123Z');

  it('is named for the start time without colons, and the command', () => {
    expect(runDirName(when, 'run')).toBe('2026-11-26T04-50-00Z-run');
    expect(runDirName(when, 'check')).toBe('2026-11-26T04-50-00Z-check');
  });

  it('is created fresh, with a suffix when a run started in the same second', () => {
    const base = dirname(tempRunDir('rundir'));
    const first = createRunDir(`${base}/runs`, 'run', when);
    const second = createRunDir(`${base}/runs`, 'run', when);
    expect(basename(first)).toBe('2026-11-26T04-50-00Z-run');
    expect(basename(second)).toBe('2026-11-26T04-50-00Z-run-2');
    expect(existsSync(second)).toBe(true);
  });
});
