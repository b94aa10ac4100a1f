// `balena-migrate probe HOST` through the real CLI against real sshd hosts on loopback: a host
// that cannot be reached, refuses our key, has a key we do not know, or does not let the probe
// run is the host's problem, not a bug: exit 1 (the one host did not make it), the error and
// the next step, no stack trace.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type FleetHosts, runCli } from '../helpers/fleet-hosts.ts';
import { fleetPerFile } from '../helpers/fleet-per-file.ts';

const bed = fleetPerFile('probe-cli', [
  { name: 'nuc-1' },
  { name: 'gone', kind: 'down' },
  { name: 'stranger', kind: 'refuses-auth' },
  { name: 'locked', kind: 'probe-fails' },
]);

const sshFlags = (fleet: FleetHosts, knownHosts = fleet.knownHostsFile) => [
  '--known-hosts',
  knownHosts,
  '--identity',
  fleet.clientKeyPath,
  '--no-agent',
  '--connect-timeout',
  '10',
];
const probe = (host: string, ...extra: string[]) =>
  runCli(['probe', host, '-i', bed.inventory, ...sshFlags(bed.fleet), ...extra], join(bed.dir, 'runs'));

/** What the operator sees for a host problem: an error line, a next step, nothing else. */
function expectHostProblem(
  r: { code: number | null; stdout: string; stderr: string },
  error: RegExp,
  next: RegExp,
) {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(2);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(error);
  expect(lines.at(-1)).toMatch(/^ {2}next: /);
  expect(lines.at(-1)).toMatch(next);
  expect(r.stderr).not.toMatch(/internal error|this is a bug|\n\s+at /);
}

describe('probe HOST through the real CLI', () => {
  it('prints the facts of a host it can reach, and exits 0', async () => {
    const r = await probe('nuc-1');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ os: expect.any(Object) });
  });

  it('exits 1 with the next step, not as a bug, when nothing listens on the port', async () => {
    const r = await probe('gone');
    expectHostProblem(r, new RegExp(String(bed.fleet.host('gone').port)), /host is up.*address\/port/);
  });

  it('exits 1 with the next step, not as a bug, when sshd refuses the key', async () => {
    const r = await probe('stranger');
    expectHostProblem(r, new RegExp(bed.fleet.clientKeyPath), /user, identity file or ssh-agent/);
  });

  it('exits 1 with the next step, not as a bug, when the host key is not known', async () => {
    const empty = join(bed.dir, 'empty_known_hosts');
    writeFileSync(empty, '');
    const r = await runCli(
      ['probe', 'nuc-1', '-i', bed.inventory, ...sshFlags(bed.fleet, empty)],
      join(bed.dir, 'runs'),
    );
    expectHostProblem(r, /key/i, /--accept-new-host-keys/);
  });

  it('exits 1 with the next step, not as a bug, when the host does not let the probe run', async () => {
    const r = await probe('locked');
    expectHostProblem(r, /probe exited with code 126/, /remote command failed/);
  });
});
