// The same fleet written three ways (our inventory, an Ansible INI and an Ansible YAML
// inventory) gives the same hosts and the same outcomes over real sshd hosts, groups and
// --limit included.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ansibleIniInventory,
  ansibleYamlInventory,
  type FleetHosts,
  fleetFlags,
  nativeInventory,
  readHostReports,
  runCli,
  startFleetHosts,
} from '../helpers/fleet-hosts.ts';

let fleet: FleetHosts;
let dir: string;
const files: Record<string, string> = {};
const GROUPS = { lab: ['pc-1', 'pc-gone', 'pc-locked'], field: ['pc-2', 'pc-stranger', 'pc-done'] };

beforeAll(async () => {
  fleet = await startFleetHosts([
    { name: 'pc-1' },
    { name: 'pc-gone', kind: 'down' },
    { name: 'pc-locked', kind: 'probe-fails' },
    { name: 'pc-2' },
    { name: 'pc-stranger', kind: 'refuses-auth' },
    { name: 'pc-done', balenaOS: true },
  ]);
  dir = mkdtempSync(join(tmpdir(), 'bm-fleet-ansible-'));
  for (const [format, text] of [
    ['ours.yml', nativeInventory(fleet, GROUPS)],
    ['ansible.ini', ansibleIniInventory(fleet, GROUPS)],
    ['ansible.yml', ansibleYamlInventory(fleet, GROUPS)],
  ] as const) {
    files[format] = join(dir, format);
    writeFileSync(files[format], text);
  }
});

afterAll(async () => {
  await fleet?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** What must not depend on the inventory's format: per host, where it was reached and how it ended. */
async function checkWith(inventory: string, ...args: string[]) {
  // A runs directory per call: the three formats run at once.
  const runsDir = join(dir, `runs-${basename(inventory)}-${args.join('_')}`);
  const r = await runCli(['check', '-i', inventory, ...fleetFlags(fleet, runsDir), ...args], runsDir);
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
      port: fleet.host('pc-1').port,
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
