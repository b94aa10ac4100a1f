// The same fleet written three ways (our inventory, an Ansible INI and an Ansible YAML
// inventory) gives the same hosts and the same outcomes over real sshd hosts, groups and
// --limit included.
import { writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ansibleIniInventory,
  ansibleYamlInventory,
  fleetFlags,
  nativeInventory,
  readHostReports,
  runCli,
} from '../helpers/fleet-hosts.ts';
import { fleetPerFile } from '../helpers/fleet-per-file.ts';

const files: Record<string, string> = {};
const GROUPS = { lab: ['pc-1', 'pc-gone', 'pc-locked'], field: ['pc-2', 'pc-stranger', 'pc-done'] };

const bed = fleetPerFile('ansible', [
  { name: 'pc-1' },
  { name: 'pc-gone', kind: 'down' },
  { name: 'pc-locked', kind: 'probe-fails' },
  { name: 'pc-2' },
  { name: 'pc-stranger', kind: 'refuses-auth' },
  { name: 'pc-done', balenaOS: true },
]);

beforeAll(() => {
  for (const [format, text] of [
    ['ours.yml', nativeInventory(bed.fleet, GROUPS)],
    ['ansible.ini', ansibleIniInventory(bed.fleet, GROUPS)],
    ['ansible.yml', ansibleYamlInventory(bed.fleet, GROUPS)],
  ] as const) {
    files[format] = join(bed.dir, format);
    writeFileSync(files[format], text);
  }
});

/** What must not depend on the inventory's format: per host, where it was reached and how it ended. */
async function checkWith(inventory: string, ...args: string[]) {
  // A runs directory per call: the three formats run at once.
  const runsDir = join(bed.dir, `runs-${basename(inventory)}-${args.join('_')}`);
  const r = await runCli(['check', '-i', inventory, ...fleetFlags(bed.fleet, runsDir), ...args], runsDir);
  expect(r.code, r.stderr).toBe(1);
  return Object.fromEntries(
    [...readHostReports(r.runDir!)]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, report]) => [
        name,
        {
          outcome: report.outcome,
          address: report.address,
          port: report.port,
          error: (report.error as { class?: string } | null)?.class ?? null,
          phases: (report.phases as { name: string; ok: boolean }[]).map((p) => `${p.name}:${p.ok}`),
        },
      ]),
  );
}

describe('Ansible inventories over real sshd hosts', () => {
  it('reach the same hosts with the same outcomes as our own inventory format', async () => {
    const [ours, ini, yaml] = await Promise.all([
      checkWith(files['ours.yml']!, '--concurrency', '6'),
      checkWith(files['ansible.ini']!, '--concurrency', '6'),
      checkWith(files['ansible.yml']!, '--concurrency', '6'),
    ]);
    expect(Object.keys(ours)).toHaveLength(6);
    expect(ours['pc-1']).toMatchObject({
      outcome: 'refused',
      address: '127.0.0.1',
      port: bed.fleet.host('pc-1').port,
    });
    expect(ours['pc-gone']).toMatchObject({ outcome: 'unreachable', error: 'UnreachableError' });
    expect(ours['pc-stranger']).toMatchObject({ outcome: 'unreachable', error: 'AuthError' });
    expect(ours['pc-locked']).toMatchObject({ outcome: 'failed' });
    expect(ours['pc-done']).toMatchObject({ outcome: 'ready' });
    expect(ini).toEqual(ours);
    expect(yaml).toEqual(ours);
  });

  it('select the same hosts for a group with --limit', async () => {
    const [ours, ini, yaml] = await Promise.all([
      checkWith(files['ours.yml']!, '--limit', 'field'),
      checkWith(files['ansible.ini']!, '--limit', 'field'),
      checkWith(files['ansible.yml']!, '--limit', 'field'),
    ]);
    expect(Object.keys(ours)).toEqual(['pc-2', 'pc-done', 'pc-stranger']);
    expect(ini).toEqual(ours);
    expect(yaml).toEqual(ours);
  });
});
