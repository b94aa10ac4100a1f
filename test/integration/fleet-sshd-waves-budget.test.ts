// Rollout waves and the failure budget, with the real CLI over real sshd hosts: read back from
// the run's events.jsonl, journal and reports, and from the hosts' own sshd logs (a host that
// was never started was never connected to).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FleetEvent } from '../../orchestrator/cli/events.ts';
import {
  fleetFlags,
  nativeInventory,
  readFailedHosts,
  readHostReports,
  readJsonLines,
  runCli,
} from '../helpers/fleet-hosts.ts';
import { fleetPerFile } from '../helpers/fleet-per-file.ts';

const WAVE_HOSTS = ['canary', 'w-2', 'w-3', 'w-4', 'w-5', 'w-6', 'w-7', 'w-8'];
const BUDGET_HOSTS = ['b-gone', 'b-ok-1', 'b-stranger', 'b-locked', 'b-ok-2', 'b-ok-3', 'b-ok-4', 'b-ok-5'];

const bed = fleetPerFile('waves', [
  // The canary is slow: were the next wave not waiting for it, its hosts would start meanwhile.
  { name: 'canary', slowMs: 400 },
  ...WAVE_HOSTS.slice(1).map((name) => ({ name })),
  { name: 'b-gone', kind: 'down' },
  { name: 'b-ok-1' },
  { name: 'b-stranger', kind: 'refuses-auth' },
  { name: 'b-locked', kind: 'probe-fails' },
  ...BUDGET_HOSTS.slice(4).map((name) => ({ name })),
]);

function checkOver(names: string[], ...args: string[]) {
  const inventory = join(bed.dir, `${names[0]}.yml`);
  writeFileSync(
    inventory,
    nativeInventory(
      bed.fleet,
      {},
      names.map((n) => bed.fleet.host(n)),
    ),
  );
  const runsDir = join(bed.dir, 'runs');
  return runCli(['check', '-i', inventory, ...fleetFlags(bed.fleet, runsDir), ...args], runsDir);
}

const events = (runDir: string) => readJsonLines<FleetEvent>(join(runDir, 'events.jsonl'));
const indexOf = (list: FleetEvent[], match: (e: FleetEvent) => boolean) => list.findIndex(match);
const sshdConnections = (name: string) =>
  (readFileSync(bed.fleet.host(name).logFile!, 'utf8').match(/Connection from/g) ?? []).length;

describe('waves', () => {
  it('finishes the canary before the next wave starts, and every wave before the one after it', async () => {
    const r = await checkOver(WAVE_HOSTS, '--waves', '1,50%,100%', '--concurrency', '8');
    expect(r.code, r.stderr).toBe(1);
    const log = events(r.runDir!);
    const started = log.find((e) => e.type === 'run-started');
    expect(started).toMatchObject({ waveSizes: [1, 3, 4] });

    const waveOf = new Map<string, number>();
    for (const e of log) if (e.type === 'wave-started') for (const h of e.hosts) waveOf.set(h, e.wave);
    expect([...waveOf]).toEqual(WAVE_HOSTS.map((h, i) => [h, i === 0 ? 1 : i < 4 ? 2 : 3]));

    const canaryDone = indexOf(log, (e) => e.type === 'host-finished' && e.host === 'canary');
    const wave1Done = indexOf(log, (e) => e.type === 'wave-finished' && e.wave === 1);
    expect(canaryDone).toBeGreaterThan(0);
    expect(wave1Done).toBeGreaterThan(canaryDone);
    for (const wave of [2, 3]) {
      const previousDone = indexOf(log, (e) => e.type === 'wave-finished' && e.wave === wave - 1);
      const firstStart = indexOf(log, (e) => e.type === 'host-started' && e.wave === wave);
      expect(firstStart).toBeGreaterThan(previousDone);
      // Every host of the previous wave had finished by then.
      for (const [host, w] of waveOf) {
        if (w !== wave - 1) continue;
        expect(indexOf(log, (e) => e.type === 'host-finished' && e.host === host)).toBeLessThan(firstStart);
      }
    }
    // The canary's own timing: the second wave began after the canary's end, by the clock too.
    const canaryEnd = Date.parse((log[canaryDone] as Extract<FleetEvent, { type: 'host-finished' }>).at);
    const wave2Start = log.find((e) => e.type === 'host-started' && e.wave === 2)!;
    expect(Date.parse(wave2Start.at)).toBeGreaterThanOrEqual(canaryEnd);

    const reports = readHostReports(r.runDir!);
    expect(reports.get('canary')?.wave).toBe(1);
    expect(reports.get('w-4')?.wave).toBe(2);
    expect(reports.get('w-8')?.wave).toBe(3);
  });
});

describe('the failure budget', () => {
  it('starts no new host once it is spent: the rest are not-started, never contacted, and listed', async () => {
    const before = Object.fromEntries(
      BUDGET_HOSTS.map((h) => [h, bed.fleet.host(h).logFile ? sshdConnections(h) : 0]),
    );
    const r = await checkOver(BUDGET_HOSTS, '--max-failures', '2', '--concurrency', '1');
    expect(r.code, r.stderr).toBe(1);

    const reports = readHostReports(r.runDir!);
    const outcomes = BUDGET_HOSTS.map((h) => [h, reports.get(h)?.outcome]);
    expect(outcomes).toEqual([
      // unreachable (port closed, key refused) counts as a failure, like a failed probe
      ['b-gone', 'unreachable'],
      ['b-ok-1', 'refused'],
      ['b-stranger', 'unreachable'],
      ['b-locked', 'failed'],
      ['b-ok-2', 'not-started'],
      ['b-ok-3', 'not-started'],
      ['b-ok-4', 'not-started'],
      ['b-ok-5', 'not-started'],
    ]);
    expect(reports.get('b-ok-2')?.error).toMatchObject({
      class: 'NotStarted',
      message: expect.stringMatching(/failure budget was spent \(3 failures, --max-failures 2 tolerates 2\)/),
    });

    const log = events(r.runDir!);
    const spent = indexOf(log, (e) => e.type === 'budget-spent');
    expect(log[spent]).toMatchObject({ failures: 3, limit: 2 });
    expect(log.slice(spent).some((e) => e.type === 'host-started')).toBe(false);
    expect(log.filter((e) => e.type === 'host-skipped').map((e) => (e as { host: string }).host)).toEqual(
      BUDGET_HOSTS.slice(4),
    );
    for (const h of BUDGET_HOSTS.slice(4)) expect(sshdConnections(h)).toBe(before[h]);
    expect(sshdConnections('b-ok-1')).toBeGreaterThan(before['b-ok-1']!);

    // Everything that did not end ready, the not-started hosts included, is there to re-run.
    expect(readFailedHosts(r.runDir!)).toEqual(BUDGET_HOSTS);
  });

  it('lets the hosts in flight finish when the budget runs out, and starts none after', async () => {
    const r = await checkOver(BUDGET_HOSTS, '--max-failures', '0', '--concurrency', '3');
    expect(r.code, r.stderr).toBe(1);
    const log = events(r.runDir!);
    const spent = indexOf(log, (e) => e.type === 'budget-spent');
    expect(spent).toBeGreaterThan(0);
    expect(log.slice(spent).some((e) => e.type === 'host-started')).toBe(false);
    const startedBefore = log
      .slice(0, spent)
      .filter((e) => e.type === 'host-started')
      .map((e) => (e as { host: string }).host);
    // Every host that started got to the end of its pipeline; every other host is not-started.
    const reports = readHostReports(r.runDir!);
    for (const h of BUDGET_HOSTS) {
      if (startedBefore.includes(h)) expect(reports.get(h)?.outcome).not.toBe('not-started');
      else expect(reports.get(h)?.outcome).toBe('not-started');
    }
    expect(startedBefore.length).toBeGreaterThanOrEqual(1);
    expect(startedBefore.length).toBeLessThan(BUDGET_HOSTS.length);
  });
});
