import { appendFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadJournal } from '../../orchestrator/fleet/journal.ts';
import { readEvents, readLines, startFleetChild, waitUntil } from '../fixtures/fleet/child-process.ts';
import { removeTempRunDirs, tempRunDir } from '../fixtures/fleet/scripted-hosts.ts';

afterAll(removeTempRunDirs);

describe('resuming a fleet run after kill -9', () => {
  it('does not re-run migrated hosts and continues the others from where they stopped', async () => {
    const runDir = tempRunDir('kill9');
    const callsFile = join(dirname(runDir), 'calls.txt');
    const config = { runDir, callsFile, hosts: 8, concurrency: 2, uploadMs: 400, phaseMs: 15 };

    // First attempt: killed without warning once three hosts migrated.
    const first = startFleetChild(config);
    await waitUntil('three migrated hosts in the journal', () => {
      const migrated = [...loadJournal(runDir).hosts.values()].filter((h) => h.outcome === 'migrated');
      return migrated.length >= 3;
    });
    first.child.kill('SIGKILL');
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // A write cut short by the kill leaves half a line behind.
    appendFileSync(join(runDir, 'journal.jsonl'), '{"type":"phase","at":"2026-11-26T04:5');

    const afterKill = loadJournal(runDir);
    const migrated = [...afterKill.hosts].filter(([, h]) => h.outcome === 'migrated').map(([name]) => name);
    const cutOff = [...afterKill.hosts].filter(([, h]) => h.outcome === null);
    expect(migrated.length).toBeGreaterThanOrEqual(3);
    expect(migrated.length).toBeLessThan(8);
    expect(afterKill.skippedLines).toBe(1);
    const firstCalls = readLines(callsFile);

    // Second attempt on the same run directory.
    const second = startFleetChild({ ...config, resume: true });
    const { code } = await second.exited;
    expect(code, second.output()).toBe(0);

    const secondCalls = readLines(callsFile).slice(firstCalls.length);
    const rerun = secondCalls.map((line) => line.split(' ')[1]);
    for (const name of migrated) expect(rerun).not.toContain(name);
    expect([...rerun, ...migrated].sort()).toEqual([
      'host-01',
      'host-02',
      'host-03',
      'host-04',
      'host-05',
      'host-06',
      'host-07',
      'host-08',
    ]);
    // Hosts cut off mid-way are told the last phase they reached.
    for (const [name, entry] of cutOff) {
      expect(secondCalls).toContain(`start ${name} ${entry.lastPhase ?? '-'}`);
    }
    expect(cutOff.some(([, entry]) => entry.lastPhase !== null)).toBe(true);

    const final = loadJournal(runDir);
    expect([...final.hosts.values()].every((h) => h.outcome === 'migrated')).toBe(true);
    expect(readFileSync(join(runDir, 'failed-hosts.txt'), 'utf8')).toBe('');
    const kept = readEvents(runDir).filter((e) => e.type === 'host-skipped' && e.outcome === 'migrated');
    expect(kept.map((e) => (e as { host: string }).host).sort()).toEqual([...migrated].sort());
    expect(second.output()).toContain(`(resumed: ${migrated.length} kept)`);
  });
});
