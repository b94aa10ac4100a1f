// The real CLI (`node bin/balena-migrate.js check`) over real OpenSSH sshd hosts on loopback:
// every host ends in the outcome its sshd calls for, each with a JSON report, and the exit code
// says whether the fleet made it. The hosts are this machine, which has no GRUB, so a healthy
// host is `refused` with reasons; a host whose os-release says balenaOS is `ready`.
import { readdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseHostReport } from '../../orchestrator/report/fleet-report.ts';
import { fleetFlags, readFailedHosts, readHostReports, runCli } from '../helpers/fleet-hosts.ts';
import { fleetPerFile } from '../helpers/fleet-per-file.ts';

const bed = fleetPerFile(
  'outcomes',
  [
    { name: 'nuc-1' },
    { name: 'nuc-2' },
    { name: 'gone', kind: 'down' },
    { name: 'stranger', kind: 'refuses-auth' },
    { name: 'locked', kind: 'probe-fails' },
    { name: 'done-1', balenaOS: true },
  ],
  { nucs: ['nuc-1', 'nuc-2'] },
);

const runsDir = () => join(bed.dir, 'runs');
const check = (...args: string[]) =>
  runCli(['check', '-i', bed.inventory, ...fleetFlags(bed.fleet, runsDir()), ...args], runsDir());

describe('check over real sshd hosts', () => {
  it('ends every host in the outcome its sshd calls for, with a JSON report each, and exits 1', async () => {
    const r = await check('--concurrency', '6');
    expect(r.code, r.stderr).toBe(1);
    const reports = readHostReports(r.runDir!);
    const outcomes = Object.fromEntries([...reports].map(([name, report]) => [name, report.outcome]));
    expect(outcomes).toEqual({
      'nuc-1': 'refused',
      'nuc-2': 'refused',
      gone: 'unreachable',
      stranger: 'unreachable',
      locked: 'failed',
      'done-1': 'ready',
    });
    // Every report.json holds to the report contract.
    for (const report of reports.values()) expect(() => parseHostReport(report)).not.toThrow();

    const nuc = parseHostReport(reports.get('nuc-1'));
    expect(nuc).toMatchObject({ address: '127.0.0.1', port: bed.fleet.host('nuc-1').port, command: 'check' });
    expect(nuc.phases.map((p) => [p.name, p.ok])).toEqual([
      ['connect', true],
      ['probe', true],
      ['plan', false],
    ]);
    expect(nuc.refusalReasons.join('\n')).toMatch(/GRUB/);
    expect(nuc.facts?.hostname).toBe(hostname());

    const gone = parseHostReport(reports.get('gone'));
    expect(gone.error?.class).toBe('UnreachableError');
    expect(gone.phases.map((p) => p.name)).toEqual(['connect']);
    const stranger = parseHostReport(reports.get('stranger'));
    expect(stranger.error?.class).toBe('AuthError');
    expect(stranger.error?.message).toContain(bed.fleet.clientKeyPath);
    const locked = parseHostReport(reports.get('locked'));
    expect(locked.error?.message).toMatch(/probe exited with code 126.*may not run scripts/);
    expect(locked.phases.find((p) => p.name === 'probe')?.ok).toBe(false);
    const done = parseHostReport(reports.get('done-1'));
    expect(done.facts?.os.isBalenaOS).toBe(true);
    expect(done.failed).toBe(false);

    expect(readFailedHosts(r.runDir!).sort()).toEqual(['gone', 'locked', 'nuc-1', 'nuc-2', 'stranger']);
    const fleetJson = JSON.parse(readFileSync(join(r.runDir!, 'fleet.json'), 'utf8'));
    expect(fleetJson.hosts).toHaveLength(6);
    expect(JSON.parse(readFileSync(join(r.runDir!, 'run.json'), 'utf8'))).toMatchObject({
      command: 'check',
      exitCode: 1,
    });
    expect(r.stdout).toContain(`--limit @${join(r.runDir!, 'failed-hosts.txt')}`);
  });

  it('exits 0 when every selected host is ready, with an empty failed-hosts.txt', async () => {
    const r = await check('--limit', 'done-1');
    expect(r.code, r.stderr).toBe(0);
    expect([...readHostReports(r.runDir!).keys()]).toEqual(['done-1']);
    expect(readFailedHosts(r.runDir!)).toEqual([]);
  });

  it('exits 2 on bad input and contacts no host', async () => {
    const logBefore = readFileSync(bed.fleet.host('nuc-1').logFile!, 'utf8');
    const runsBefore = readdirSync(runsDir()).length;

    const typo = await check('--limit', 'nuc-3');
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/--limit pattern 'nuc-3' matches no host or group.*\n.*did you mean 'nuc-1'/);

    const waves = await check('--waves', '50%,10%');
    expect(waves.code).toBe(2);
    expect(waves.stderr).toMatch(/--waves 50%,10%/);

    const image = await runCli(
      ['check', '-i', bed.inventory, ...fleetFlags(bed.fleet, runsDir()), '--image', bed.inventory],
      runsDir(),
    );
    expect(image.code).toBe(2);

    expect(readdirSync(runsDir()).length).toBe(runsBefore);
    expect(readFileSync(bed.fleet.host('nuc-1').logFile!, 'utf8')).toBe(logBefore);
  });
});
