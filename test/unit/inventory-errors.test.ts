import { describe, expect, it } from 'vitest';
import { loadInventory } from '../../orchestrator/config/inventory.ts';
import { configErrorFrom, fixturePath } from '../fixtures/config/config-error.ts';

const bad = (name: string) => fixturePath(`inventory/bad/${name}`);

// [fixture, line, col, message, file the location is in when it is not the fixture]
const cases: Array<[string, number, number, string, string?]> = [
  ['empty.yml', 1, 1, 'the inventory is empty'],
  ['comments-only.yml', 1, 1, 'the inventory is empty'],
  ['binary.yml', 3, 8, 'this is a binary file (it contains NUL bytes), not inventory text'],
  ['latin1.yml', 3, 6, 'this file is not valid UTF-8 text (bad byte 0xe9)'],
  [
    'yaml-syntax.yml',
    3,
    3,
    'YAML syntax error: Flow map in block collection must be sufficiently indented and end with a }',
  ],
  [
    'sequence-root.yml',
    1,
    1,
    'the inventory must be a mapping with a hosts: section (or an Ansible inventory)',
  ],
  ['duplicate-host.yml', 4, 3, "'nuc-1' appears twice in hosts (first at line 2, column 3)"],
  [
    'host-and-jump-host.yml',
    5,
    3,
    "'bastion' is defined both as a host and as a jump host (first at line 3)",
  ],
  ['host-and-group-same-name.yml', 4, 3, "'lab' is the name of both a host and a group"],
  ['unknown-top-level-key.yml', 3, 1, "unknown key 'group' at the top level"],
  ['unknown-host-key.yml', 3, 5, "unknown key 'adress' in hosts.nuc-1"],
  ['group-address.yml', 6, 13, "unknown key 'address' in groups.lab.vars"],
  ['hosts-as-list.yml', 2, 3, 'hosts must be a mapping of name: settings (got a list)'],
  ['no-hosts.yml', 2, 8, 'the inventory defines no hosts'],
  [
    'port-not-a-number.yml',
    2,
    39,
    'hosts.nuc-1.port must be a whole number from 1 to 65535 (got "twenty-two")',
  ],
  ['port-out-of-range.yml', 2, 9, 'defaults.port must be a whole number from 1 to 65535 (got 70000)'],
  ['invalid-ipv4.yml', 2, 21, 'hosts.nuc-1.address must be an IP address or a DNS name (got "192.0.2.300")'],
  [
    'address-with-space.yml',
    3,
    14,
    'hosts.nuc-1.address must be an IP address or a DNS name (got "nuc 1.lab")',
  ],
  ['become-su.yml', 2, 54, 'hosts.nuc-1.become must be sudo or none (got "su")'],
  ['user-with-space.yml', 2, 9, 'defaults.user must be a user name (letters, digits, . _ -) (got "ad min")'],
  ['vars-not-a-map.yml', 2, 39, 'hosts.nuc-1.vars must be a mapping of name: value (got a list)'],
  [
    'workdir-relative.yml',
    7,
    16,
    'groups.lab.vars.workDir must be an absolute path (starting with /) (got "data/balena-migrate")',
  ],
  ['workdir-dotdot.yml', 2, 42, `hosts.nuc-1.workDir must not contain '..' (got "/var/tmp/../../etc")`],
  ['group-unknown-host.yml', 6, 20, "group 'lab' lists unknown host 'nuc-3'"],
  ['group-unknown-child.yml', 6, 16, "group 'lab' lists unknown child group 'lab-eats'"],
  ['group-cycle.yml', 10, 16, 'groups form a cycle: lab → east → rack-3 → lab'],
  ['group-contains-itself.yml', 6, 16, 'groups form a cycle: lab → lab'],
  ['jump-cycle.yml', 5, 37, 'jump hosts form a cycle: nuc-1 → gw-a → gw-b → gw-a'],
  ['image-missing.yml', 6, 20, `balenaOS image not found: ${fixturePath('inventory/images/balena-v6.img')}`],
  [
    'config-json-broken.yml',
    4,
    1,
    'config.json is not valid JSON: expected a property name in double quotes',
    bad('broken-config.json'),
  ],
  ['ini-bad-section.ini', 4, 5, "unknown section kind 'lab:variables'"],
  ['ini-bad-port.ini', 2, 44, 'ansible_port must be a whole number from 1 to 65535 (got "ssh")'],
  ['ini-become-su.ini', 6, 23, "ansible_become_method 'su' is not supported"],
  ['ini-missing-equals.ini', 2, 31, "expected key=value after the host name, got 'admin'"],
  ['ini-bad-range.ini', 2, 1, "bad host range in 'nuc-[1:x]'"],
  [
    'ansible-yaml-hosts-list.yml',
    5,
    9,
    'all.children.lab.hosts must be a mapping of host name: variables (write `nuc-1:` on a line of its own) (got a list)',
  ],
  ['ansible-yaml-unknown-key.yml', 4, 7, "unknown key 'host' in all.children.lab"],
  [
    'ansible-yaml-bad-address.yml',
    4,
    21,
    'ansible_host must be an IP address or a DNS name (got "10.0.0.256")',
  ],
  [
    'ansible-yaml-proxycommand.yml',
    5,
    32,
    'ansible_ssh_common_args uses ProxyCommand, which balena-migrate cannot follow',
  ],
];

describe('a bad inventory', () => {
  it.each(cases)(
    '%s is refused at line %i, column %i with a message naming the problem',
    (name, line, col, message, file) => {
      const error = configErrorFrom(() => loadInventory(bad(name)));
      expect(error.where).toEqual({ file: file ?? bad(name), line, col });
      expect(error.message).toBe(message);
    },
  );

  it.each(cases)('%s comes with a hint and prints without a stack trace', (name) => {
    const error = configErrorFrom(() => loadInventory(bad(name)));
    expect(error.hint?.length).toBeGreaterThan(10);
    expect(error.format()).toMatch(/^\S+:\d+:\d+: .+\n {2}fix: .+$/);
    expect(error.format()).not.toMatch(/\bat .+\.ts:\d+/);
  });

  it('that is missing is refused by path, with a hint about where relative paths start', () => {
    const error = configErrorFrom(() => loadInventory(bad('no-such-inventory.yml')));
    expect(error.where).toEqual({ file: bad('no-such-inventory.yml') });
    expect(error.message).toBe('inventory file not found');
    expect(error.hint).toContain(process.cwd());
  });

  it('that is a directory is refused as such', () => {
    const error = configErrorFrom(() => loadInventory(fixturePath('inventory/bad')));
    expect(error.message).toBe('this is a directory, not a file');
    expect(error.hint).toBe('give the path of the inventory file');
  });

  it('with a misspelt key suggests the key that was meant', () => {
    expect(configErrorFrom(() => loadInventory(bad('unknown-host-key.yml'))).hint).toBe(
      "did you mean 'address'?",
    );
    expect(configErrorFrom(() => loadInventory(bad('unknown-top-level-key.yml'))).hint).toBe(
      "did you mean 'groups'?",
    );
    expect(configErrorFrom(() => loadInventory(bad('group-unknown-child.yml'))).hint).toContain("'lab-east'");
  });

  it('with a broken config.json never prints the secrets around the error', () => {
    const error = configErrorFrom(() => loadInventory(bad('config-json-broken.yml')));
    expect(error.format()).not.toContain('genericx86');
  });
});
