// `run` killed with SIGKILL in the middle of a fleet, then `run --resume RUNDIR`: the hosts that
// had finished (migrated) are kept and never contacted again; every other host runs again. The
// real CLI over real sshd hosts: hosts whose os-release says balenaOS end `migrated` at once,
// slow ordinary hosts end `refused` (no GRUB here) and keep the run busy.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FleetEvent } from '../../orchestrator/cli/events.ts';
import { loadJournal } from '../../orchestrator/fleet/journal.ts';
import { fleetFlags, readHostReports, readJsonLines, runCli, startCli } from '../helpers/fleet-hosts.ts';
import { fleetPerFile } from '../helpers/fleet-per-file.ts';

const ORDER = ['m-1', 'm-2', 's-1', 's-2', 'm-3', 's-3', 'm-4', 's-4'];

const bed = fleetPerFile(
  'resume',
  ORDER.map((name) => (name.startsWith('m-') ? { name, balenaOS: true } : { name, slowMs: 600 })),
);

const logins = (name: string) =>
  (readFileSync(bed.fleet.host(name).logFile!, 'utf8').match(/Accepted publickey/g) ?? []).length;

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('run --resume after kill -9', () => {
  it('keeps the hosts that finished, contacts them no more, and runs every other host again', async () => {
    const runsDir = join(bed.dir, 'runs');
    const args = [
      'run',
      '-i',
      bed.inventory,
      ...fleetFlags(bed.fleet, runsDir),
      '--concurrency',
      '2',
      '--json',
    ];
    const first = startCli(args, runsDir);
    let runDir = '';
    await until('the run directory', () => {
      const made = existsSync(runsDir) ? readdirSync(runsDir) : [];
      if (made.length === 1) runDir = join(runsDir, made[0]!);
      return runDir !== '';
    });
    // Killed once two hosts are migrated and another is on its way.
    await until('two migrated hosts and one in flight', () => {
      const hosts = [...loadJournal(runDir).hosts.values()];
      return (
        hosts.filter((h) => h.outcome === 'migrated').length >= 2 &&
        hosts.some((h) => h.outcome === null && h.attempts > 0)
      );
    });
    first.child.kill('SIGKILL');
    const killed = await first.done;
    expect(killed.signal).toBe('SIGKILL');

    const atKill = loadJournal(runDir);
    const migrated = [...atKill.hosts].filter(([, h]) => h.outcome === 'migrated').map(([n]) => n);
    const cutOff = [...atKill.hosts].filter(([, h]) => h.outcome === null).map(([n]) => n);
    expect(migrated.length).toBeGreaterThanOrEqual(2);
    expect(cutOff.length).toBeGreaterThanOrEqual(1);
    // The kill left no final reports behind: run.json has no end.
    expect(JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8')).endedAt).toBeNull();
    const loginsBefore = Object.fromEntries(ORDER.map((h) => [h, logins(h)]));

    const second = await runCli([...args, '--resume', runDir], runsDir);
    expect(second.code, second.stderr).toBe(1);

    // Kept hosts: reported as kept, never logged into again.
    const events = readJsonLines<FleetEvent>(join(runDir, 'events.jsonl'));
    const resumedAt = events.findIndex((e) => e.type === 'run-started' && e.resumed);
    expect(resumedAt).toBeGreaterThan(0);
    const after = events.slice(resumedAt);
    const kept = after.filter((e) => e.type === 'host-skipped' && e.outcome === 'migrated');
    expect(kept.map((e) => (e as { host: string }).host).sort()).toEqual([...migrated].sort());
    for (const h of migrated) expect(logins(h)).toBe(loginsBefore[h]);
    // Every other host ran again, the ones cut off by the kill included.
    const rerun = after.filter((e) => e.type === 'host-started').map((e) => (e as { host: string }).host);
    expect([...rerun].sort()).toEqual(ORDER.filter((h) => !migrated.includes(h)).sort());
    for (const h of cutOff) expect(rerun).toContain(h);
    for (const h of rerun) expect(logins(h)).toBeGreaterThan(loginsBefore[h]!);

    const final = loadJournal(runDir);
    const outcomes = Object.fromEntries(ORDER.map((h) => [h, final.hosts.get(h)?.outcome]));
    expect(outcomes).toEqual(
      Object.fromEntries(ORDER.map((h) => [h, h.startsWith('m-') ? 'migrated' : 'refused'])),
    );
    const reports = readHostReports(runDir);
    expect([...reports.keys()].sort()).toEqual([...ORDER].sort());
    expect(JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8'))).toMatchObject({ exitCode: 1 });
  });
});
