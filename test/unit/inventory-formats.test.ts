import { describe, expect, it } from 'vitest';
import { loadInventory } from '../../orchestrator/config/inventory.ts';
import type { ResolvedHost } from '../../orchestrator/config/inventory-types.ts';
import { configErrorFrom, fixturePath } from '../fixtures/config/config-error.ts';

const inventory = (name: string) => loadInventory(fixturePath(`inventory/${name}`));
const withoutSource = (hosts: ResolvedHost[]) => hosts.map(({ source: _source, ...host }) => host);

describe('inventory formats', () => {
  it('gives the same hosts for one fleet written in our format, Ansible YAML and Ansible INI', () => {
    const ours = inventory('fleet.yml');
    const ansibleYaml = inventory('fleet-ansible.yml');
    const ansibleIni = inventory('fleet-ansible.ini');
    expect(ours.format).toBe('balena-migrate');
    expect(ansibleYaml.format).toBe('ansible-yaml');
    expect(ansibleIni.format).toBe('ansible-ini');
    expect(withoutSource(ansibleYaml.hosts)).toEqual(withoutSource(ours.hosts));
    expect(withoutSource(ansibleIni.hosts)).toEqual(withoutSource(ours.hosts));
    const groups = (inv: typeof ours) => inv.groups.map(({ source: _source, ...group }) => group);
    expect(groups(ansibleYaml)).toEqual(groups(ours));
    expect(groups(ansibleIni)).toEqual(groups(ours));
  });

  it('resolves the reference fleet to the hosts an operator expects', () => {
    const base = fixturePath('inventory');
    expect(withoutSource(inventory('fleet.yml').hosts)).toEqual([
      {
        name: 'nuc-1',
        address: '192.0.2.10',
        port: 22,
        user: 'admin',
        become: 'sudo',
        identityFile: `${base}/keys/fleet`,
        jump: [
          {
            name: 'bastion.example',
            address: 'bastion.example',
            port: 2222,
            user: 'ops',
            identityFile: undefined,
          },
        ],
        workDir: '/data/bm',
        image: undefined,
        configJson: undefined,
        vars: {},
        groups: ['lab'],
      },
      {
        name: 'nuc-2',
        address: '192.0.2.11',
        port: 22,
        user: 'root',
        become: 'none',
        identityFile: undefined,
        jump: [],
        workDir: '/data/bm',
        image: undefined,
        configJson: `${base}/images/config.json`,
        vars: {},
        groups: ['lab'],
      },
      {
        name: 'pi-1',
        address: '192.0.2.20',
        port: 2222,
        user: 'pi',
        become: 'none',
        identityFile: undefined,
        jump: [],
        workDir: '/data/bm',
        image: `${base}/images/balena.img`,
        configJson: undefined,
        vars: { rack: 12 },
        groups: ['lab', 'lab-east'],
      },
    ]);
  });

  it('records where each host is defined, for later error messages', () => {
    expect(inventory('fleet.yml').hosts[1]!.source).toEqual({
      file: fixturePath('inventory/fleet.yml'),
      line: 11,
      col: 3,
    });
    expect(inventory('fleet-ansible.ini').hosts[2]!.source).toEqual({
      file: fixturePath('inventory/fleet-ansible.ini'),
      line: 4,
      col: 1,
    });
  });

  it('expands INI host ranges and reads a port written after the host name', () => {
    const hosts = inventory('formats/ranges.ini').hosts;
    expect(hosts.map((host) => host.name)).toEqual(['web-01', 'web-02', 'web-03', 'db-a.lab', 'db-b.lab']);
    expect(hosts[0]).toMatchObject({ address: 'web-01', user: 'deploy', port: 22, groups: ['web'] });
    expect(hosts[3]).toMatchObject({ address: 'db-a.lab', port: 2201 });
  });

  it('types INI host-line values like Ansible does, but keeps [group:vars] values as text', () => {
    const db = inventory('formats/ranges.ini').hosts[4]!;
    expect(db.vars).toEqual({ note: 'primary db', rack: 7, enabled: true, site: 'east 1' });
  });

  it('treats INI hosts before any section as hosts of no group', () => {
    const hosts = inventory('formats/ungrouped.ini').hosts;
    expect(hosts.map((host) => [host.name, host.address, host.groups])).toEqual([
      ['nuc-1', '192.0.2.10', []],
      ['nuc-2', '192.0.2.11', []],
    ]);
  });

  it('drops Ansible password variables so secrets never travel further', () => {
    const nuc2 = inventory('formats/ungrouped.ini').hosts[1]!;
    expect(JSON.stringify(nuc2)).not.toContain('hunter2');
    expect(nuc2.vars).toEqual({});
  });

  it('reads Ansible YAML groups at the top level, legacy variable names and text ports', () => {
    const hosts = inventory('formats/ansible-top-level-groups.yml').hosts;
    expect(
      hosts.map(({ name, address, port, user, become, groups }) => ({
        name,
        address,
        port,
        user,
        become,
        groups,
      })),
    ).toEqual([
      {
        name: 'nuc-1',
        address: '192.0.2.10',
        port: 2222,
        user: 'admin',
        become: 'sudo',
        groups: ['lab', 'office'],
      },
      { name: 'nuc-2', address: '192.0.2.11', port: 22, user: 'legacy', become: 'none', groups: ['office'] },
    ]);
  });

  it('reports a YAML syntax error when a file is neither valid YAML nor INI', () => {
    const error = configErrorFrom(() => loadInventory(fixturePath('inventory/bad/yaml-syntax.yml')));
    expect(error.message).toMatch(/^YAML syntax error/);
  });
});

describe('inventory precedence', () => {
  const hosts = () => inventory('formats/precedence.yml').hosts;

  it('lets a host setting win over its groups and the defaults', () => {
    expect(hosts()[0]!.port).toBe(22);
  });

  it('lets a child group win over its parent, and orders sibling groups by name', () => {
    // a: parent (depth 0) and alpha (depth 0) before zeta (depth 1); zeta's user wins.
    const a = hosts()[0]!;
    expect(a.groups).toEqual(['alpha', 'parent', 'zeta']);
    expect(a.user).toBe('zeta');
    expect(a.workDir).toBe('/srv/parent');
    expect(a.become).toBe('sudo');
  });

  it('lets group settings win over the defaults', () => {
    expect(hosts()[1]).toMatchObject({ user: 'alpha', port: 2200, workDir: '/srv/alpha', groups: ['alpha'] });
  });

  it('merges free-form vars key by key in the same order', () => {
    expect(hosts()[0]!.vars).toEqual({ site: 'zeta', tier: 'gold' });
    expect(hosts()[1]!.vars).toEqual({ site: 'default', tier: 'bronze' });
  });

  it('uses the host name as the address when none is given', () => {
    expect(hosts()[2]).toMatchObject({ name: 'c', address: 'c', user: 'root', port: 2200, become: 'none' });
  });

  it('lists every host of a group and of its children', () => {
    const groups = inventory('formats/precedence.yml').groups;
    expect(groups.map((group) => [group.name, group.hosts])).toEqual([
      ['zeta', ['a']],
      ['alpha', ['a', 'b']],
      ['parent', ['a']],
    ]);
  });
});

describe('jump hosts', () => {
  const hosts = () => inventory('formats/nested-jumps.yml').hosts;

  it('resolves a named jump host, and the jump host it is itself reached through, first hop first', () => {
    expect(hosts()[0]!.jump).toEqual([
      { name: 'outer', address: '198.51.100.1', port: 2222, user: 'ops', identityFile: undefined },
      {
        name: 'inner',
        address: '10.0.0.1',
        port: 22,
        user: 'root',
        identityFile: fixturePath('inventory/keys/fleet'),
      },
    ]);
  });

  it('reads a comma-separated chain that mixes names and user@[ipv6]:port', () => {
    expect(hosts()[1]!.jump.map((hop) => `${hop.user}@${hop.address}:${hop.port}`)).toEqual([
      'ops@198.51.100.1:2222',
      'admin@2001:db8::1:2200',
    ]);
  });

  it('reaches a host through another inventory host', () => {
    expect(hosts()[2]!.jump.map((hop) => hop.name)).toEqual(['outer', 'inner', 'nuc-1']);
  });

  it('connects directly when jump is none', () => {
    expect(hosts()[3]!.jump).toEqual([]);
  });

  it('never lists jump hosts among the hosts to migrate', () => {
    expect(hosts().map((host) => host.name)).toEqual(['nuc-1', 'nuc-2', 'nuc-3', 'nuc-4']);
  });
});
