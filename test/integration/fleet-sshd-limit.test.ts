// --limit with the real CLI over real sshd hosts: by name, group, glob, exclusion, and @file
// with the failed-hosts.txt an earlier run wrote. Which hosts a run touched is read from its
// reports and from the hosts' own sshd logs.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fleetFlags, readFailedHosts, readHostReports, runCli } from '../helpers/fleet-hosts.ts';
import { fleetPerFile } from '../helpers/fleet-per-file.ts';

const ALL = ['web-1', 'web-2', 'db-1', 'db-2', 'edge-1'];

const bed = fleetPerFile(
  'limit',
  [
    { name: 'web-1' },
    { name: 'web-2', kind: 'down' },
    { name: 'db-1' },
    { name: 'db-2', balenaOS: true },
    { name: 'edge-1' },
  ],
  { web: ['web-1', 'web-2'], db: ['db-1', 'db-2'] },
);

const runsDir = () => join(bed.dir, 'runs');
const connections = () =>
  Object.fromEntries(
    bed.fleet.hosts.map((h) => [
      h.name,
      h.logFile ? (readFileSync(h.logFile, 'utf8').match(/Accepted publickey/g) ?? []).length : 0,
    ]),
  );

/** Runs check with --limit and returns the hosts it reported on and the hosts that saw a login. */
async function checkLimited(limit: string) {
  const before = connections();
  const r = await runCli(
    ['check', '-i', bed.inventory, ...fleetFlags(bed.fleet, runsDir()), '--limit', limit],
    runsDir(),
  );
  expect(r.code === 0 || r.code === 1, r.stderr).toBe(true);
  const after = connections();
  return {
    r,
    reported: [...readHostReports(r.runDir!).keys()].sort(),
    loggedInto: ALL.filter((h) => after[h]! > before[h]!).sort(),
  };
}

describe('--limit over real sshd hosts', () => {
  it('selects one host by name', async () => {
    const { reported, loggedInto } = await checkLimited('web-1');
    expect(reported).toEqual(['web-1']);
    expect(loggedInto).toEqual(['web-1']);
  });

  it('selects a group by its name', async () => {
    const { r, reported, loggedInto } = await checkLimited('db');
    expect(reported).toEqual(['db-1', 'db-2']);
    expect(loggedInto).toEqual(['db-1', 'db-2']);
    expect(readHostReports(r.runDir!).get('db-2')?.outcome).toBe('ready');
  });

  it('selects hosts by a glob, a down host included', async () => {
    const { r, reported, loggedInto } = await checkLimited('web-*');
    expect(reported).toEqual(['web-1', 'web-2']);
    expect(loggedInto).toEqual(['web-1']);
    expect(readHostReports(r.runDir!).get('web-2')?.outcome).toBe('unreachable');
  });

  it('leaves out what a !pattern excludes', async () => {
    const { reported } = await checkLimited('!db');
    expect(reported).toEqual(['edge-1', 'web-1', 'web-2']);
    const both = await checkLimited('all,!web-*,!edge-1');
    expect(both.reported).toEqual(['db-1', 'db-2']);
  });

  it('re-runs exactly the hosts an earlier run listed in failed-hosts.txt, with @file', async () => {
    const first = await checkLimited('web-*,db');
    const failed = readFailedHosts(first.r.runDir!);
    // db-2 is ready: only the others are listed.
    expect(failed.sort()).toEqual(['db-1', 'web-1', 'web-2']);
    const again = await checkLimited(`@${join(first.r.runDir!, 'failed-hosts.txt')}`);
    expect(again.reported).toEqual(['db-1', 'web-1', 'web-2']);
    expect(again.loggedInto).toEqual(['db-1', 'web-1']);
    // The command the summary suggests is exactly this one.
    expect(first.r.stdout).toContain(`--limit @${join(first.r.runDir!, 'failed-hosts.txt')}`);
  });

  it('refuses a pattern that matches nothing, with exit 2, before contacting any host', async () => {
    const before = connections();
    const r = await runCli(
      ['check', '-i', bed.inventory, ...fleetFlags(bed.fleet, runsDir()), '--limit', 'web-1,edge-l'],
      runsDir(),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/'edge-l' matches no host or group[\s\S]*did you mean 'edge-1'/);
    expect(connections()).toEqual(before);
  });
});
