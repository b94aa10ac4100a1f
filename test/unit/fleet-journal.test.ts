import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  JOURNAL_FILE,
  loadJournal,
  openJournal,
  readJournalText,
  writeFailedHosts,
} from '../../orchestrator/fleet/journal.ts';
import { runFleet } from '../../orchestrator/fleet/runner.ts';
import type { PhaseName } from '../../orchestrator/report/host-report.ts';
import { hostsNamed, removeTempRunDirs, reportFor, tempRunDir } from '../fixtures/fleet/scripted-hosts.ts';

afterAll(removeTempRunDirs);

const at = '2026-11-26T04:50:00.000Z';

function freshDir(): string {
  const dir = tempRunDir('journal');
  mkdirSync(dir, { recursive: true });
  return dir;
}

describe('the run journal', () => {
  it('tells per host the last phase reached and the final outcome', () => {
    const dir = freshDir();
    const [a, b] = hostsNamed(2) as [{ name: string }, { name: string }];
    const journal = openJournal(dir);
    journal.append({ type: 'run', at, command: 'run', hosts: 2, resumed: false });
    journal.append({ type: 'start', at, host: a.name, wave: 1, resumeFrom: null });
    journal.append({ type: 'phase', at, host: a.name, phase: 'connect' });
    journal.append({ type: 'phase', at, host: a.name, phase: 'verify' });
    journal.append({
      type: 'outcome',
      at,
      host: a.name,
      outcome: 'migrated',
      report: reportFor(a, 'migrated'),
    });
    journal.append({ type: 'start', at, host: b.name, wave: 1, resumeFrom: null });
    journal.append({ type: 'phase', at, host: b.name, phase: 'upload' });
    journal.close();

    const state = loadJournal(dir);
    expect(state.hosts.get(a.name)).toMatchObject({ lastPhase: 'verify', outcome: 'migrated', attempts: 1 });
    expect(state.hosts.get(a.name)?.report?.host).toBe(a.name);
    expect(state.hosts.get(b.name)).toEqual({
      lastPhase: 'upload',
      outcome: null,
      report: null,
      attempts: 1,
    });
    expect(state.skippedLines).toBe(0);
  });

  it('tolerates a torn last line after a kill, and starts the next record on a line of its own', () => {
    const dir = freshDir();
    const journal = openJournal(dir);
    journal.append({ type: 'start', at, host: 'a', wave: 1, resumeFrom: null });
    journal.append({ type: 'phase', at, host: 'a', phase: 'upload' });
    journal.close();
    appendFileSync(join(dir, JOURNAL_FILE), '{"type":"phase","at":"2026-11-26T04:5');

    expect(loadJournal(dir).hosts.get('a')?.lastPhase).toBe('upload');
    expect(loadJournal(dir).skippedLines).toBe(1);

    const again = openJournal(dir);
    again.append({ type: 'phase', at, host: 'a', phase: 'apply' });
    again.close();
    const state = loadJournal(dir);
    expect(state.hosts.get('a')?.lastPhase).toBe('apply');
    expect(state.skippedLines).toBe(1);
    expect(readFileSync(join(dir, JOURNAL_FILE), 'utf8').split('\n').at(-2)).toContain('"apply"');
  });

  it('skips lines that are not journal records instead of trusting them', () => {
    const state = readJournalText(
      [
        '{"type":"phase","at":"x","host":"a","phase":"teleport"}',
        '{"type":"outcome","at":"x","host":"a","outcome":"migrated"}',
        '[1,2,3]',
        'garbage',
        '{"type":"phase","at":"x","host":"a","phase":"probe"}',
      ].join('\n'),
    );
    expect(state.skippedLines).toBe(4);
    expect(state.hosts.get('a')).toMatchObject({ lastPhase: 'probe', outcome: null });
  });

  it('forgets an earlier outcome when the host is started again, but keeps the phase it resumes after', () => {
    const a = { name: 'a' };
    const state = readJournalText(
      [
        { type: 'start', at, host: 'a', wave: 1, resumeFrom: null },
        { type: 'phase', at, host: 'a', phase: 'apply' },
        { type: 'outcome', at, host: 'a', outcome: 'failed', report: reportFor(a, 'failed') },
        { type: 'start', at, host: 'a', wave: 1, resumeFrom: 'apply' },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    expect(state.hosts.get('a')).toEqual({ lastPhase: 'apply', outcome: null, report: null, attempts: 2 });
  });

  it('reads a missing journal as an empty one', () => {
    expect(loadJournal(freshDir()).hosts.size).toBe(0);
  });

  it('writes failed-hosts.txt as one host name per line, replacing an older list', () => {
    const dir = freshDir();
    writeFileSync(join(dir, 'failed-hosts.txt'), 'old\n');
    const path = writeFailedHosts(dir, ['pi-3', 'nuc-7']);
    expect(readFileSync(path, 'utf8')).toBe('pi-3\nnuc-7\n');
  });
});

describe('resuming a run', () => {
  it('keeps migrated hosts and their reports, and tells the others where they stopped', async () => {
    const runDir = tempRunDir('resume');
    const hosts = hostsNamed(4);
    // A first attempt: host-01 migrated, host-02 failed in probe, host-03 was cut off in upload.
    const first = await runFleet(
      hosts.slice(0, 3),
      { command: 'run', concurrency: 3, runDir, maxFailures: { kind: 'unlimited' }, signals: false },
      async (host, ctx) => {
        const script: Record<string, PhaseName[]> = {
          'host-01': ['connect', 'probe', 'verify'],
          'host-02': ['connect', 'probe'],
          'host-03': ['connect', 'upload'],
        };
        for (const phase of script[host.name] ?? []) ctx.phase(phase);
        if (host.name === 'host-03') throw new Error('cut off');
        return reportFor(host, host.name === 'host-01' ? 'migrated' : 'failed', ctx.wave, 'first attempt');
      },
    );
    expect(first.counts).toEqual({ migrated: 1, failed: 2 });

    const calls: string[] = [];
    const second = await runFleet(
      hosts,
      {
        command: 'run',
        concurrency: 2,
        runDir,
        resume: true,
        maxFailures: { kind: 'unlimited' },
        signals: false,
      },
      async (host, ctx) => {
        calls.push(
          `${host.name} after ${ctx.resumeFrom ?? 'nothing'} (previously ${ctx.previousOutcome ?? 'unfinished'})`,
        );
        ctx.phase('verify');
        return reportFor(host, 'migrated', ctx.wave);
      },
    );
    expect(calls.sort()).toEqual([
      'host-02 after probe (previously failed)',
      'host-03 after upload (previously failed)',
      'host-04 after nothing (previously unfinished)',
    ]);
    expect(second.reports[0]?.error).toBeNull();
    expect(second.reports[0]?.startedAt).toBe(first.reports[0]?.startedAt);
    expect(second.counts).toEqual({ migrated: 4 });
    expect(readFileSync(second.failedHostsFile, 'utf8')).toBe('');
    expect(loadJournal(runDir).hosts.get('host-02')).toMatchObject({ attempts: 2, outcome: 'migrated' });
  });
});
