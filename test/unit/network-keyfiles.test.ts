import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Facts, NetInterface } from '../../orchestrator/facts/facts.ts';
import { parseNetworkCollection } from '../../orchestrator/network/collect.ts';
import { checkKeyfile } from '../../orchestrator/network/keyfile.ts';
import type { SourceFile } from '../../orchestrator/network/model.ts';
import { type NetworkOptions, planNetwork } from '../../orchestrator/network/plan-network.ts';
import { redactSecrets } from '../../orchestrator/network/redact.ts';
import { factsFixture } from '../fixtures/facts-plans.ts';

// The old OS's network configuration, from realistic files of each stack, becomes the
// NetworkManager keyfiles balenaOS reads from resin-boot/system-connections. The goldens are
// checked byte for byte, and each one is read by NetworkManager's own keyfile parser (libnm).

const FIXTURES = join(import.meta.dirname, '../fixtures/network');
const NM_CHECK = join(import.meta.dirname, '../helpers/nm-keyfile-check.py');
const STACKS = ['wpa_supplicant', 'networkmanager', 'connman', 'ifupdown', 'netplan', 'dhcpcd', 'networkd'];
const scratch = mkdtempSync(join(tmpdir(), 'network-keyfiles-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Every secret written in the fixtures: none may appear in a note. */
const SECRETS = [
  'correct horse battery',
  '0f3b1c9d4e2a7b6c5d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e',
  'abcde',
  'peap-password-1',
  'unicode ssid key',
  'nm-home-passphrase',
  'hotspot-secret-99',
  'corp-8021x-pass',
  'connman-home-pass',
  'floor-8021x-secret',
  'backup-ap-key',
  'yard-passphrase-7',
  'netplan-home-pass',
  'warehouse-eap-pass',
  'greenhouse-wpa2',
  'field-ap-key-2024',
];

function filesUnder(root: string): SourceFile[] {
  const out: SourceFile[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push({ path: `/${relative(root, p)}`, data: readFileSync(p) });
    }
  };
  walk(root);
  return out;
}

function iface(
  name: string,
  kind: NetInterface['kind'],
  mac: string,
  ipv4: NetInterface['ipv4'] = [],
): NetInterface {
  return { name, kind, mac, up: true, physical: true, driver: null, ipv4, ipv6: [] };
}

/** A host with the interfaces the fixtures talk about. */
function hostFacts(interfaces: NetInterface[], defaultDev?: string, proto: string | null = null): Facts {
  const f = factsFixture('debian-bookworm-bios-virtio');
  return {
    ...f,
    network: { interfaces, defaultRoutes: defaultDev ? [{ dev: defaultDev, proto }] : [], services: [] },
  };
}

const fixtureHost = hostFacts([
  iface('eth0', 'ethernet', 'b8:27:eb:12:34:56', [{ cidr: '192.0.2.10/24', dynamic: false }]),
  iface('wlan0', 'wifi', 'b8:27:eb:65:43:21', [{ cidr: '192.168.1.23/24', dynamic: true }]),
]);

const allOptions: NetworkOptions = { wifi: 'all', requireNetwork: false, extraFiles: [] };

function nmRead(paths: string[]): Record<string, unknown>[] {
  const out = execFileSync('/usr/bin/python3', [NM_CHECK, ...paths], { encoding: 'utf8' });
  return out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('network configuration carried to balenaOS', () => {
  for (const stack of STACKS) {
    it(`turns the ${stack} fixtures into the golden keyfiles, which NetworkManager reads`, () => {
      const plan = planNetwork({
        facts: fixtureHost,
        sources: filesUnder(join(FIXTURES, stack, 'root')),
        options: allOptions,
      });
      const expectedDir = join(FIXTURES, stack, 'expected');
      const notes = `${plan.notes.join('\n')}\n`;
      if (process.env.UPDATE_GOLDEN === '1') {
        rmSync(expectedDir, { recursive: true, force: true });
        mkdirSync(expectedDir, { recursive: true });
        for (const f of plan.files) writeFileSync(join(expectedDir, f.name), f.data);
        writeFileSync(join(expectedDir, 'notes.txt'), notes);
      }
      if (!existsSync(expectedDir)) throw new Error(`${expectedDir} is missing: run with UPDATE_GOLDEN=1`);
      const golden = readdirSync(expectedDir)
        .filter((n) => n.endsWith('.nmconnection'))
        .sort();
      expect(plan.files.map((f) => f.name)).toEqual(golden);
      for (const f of plan.files)
        expect(f.data.toString(), f.name).toBe(readFileSync(join(expectedDir, f.name), 'utf8'));
      expect(notes).toBe(readFileSync(join(expectedDir, 'notes.txt'), 'utf8'));
      for (const secret of SECRETS) expect(notes).not.toContain(secret);
      // NetworkManager's own parser reads and verifies every file we write
      const dir = mkdtempSync(join(scratch, `${stack}-`));
      const paths = plan.files.map((f) => {
        writeFileSync(join(dir, f.name), f.data);
        return join(dir, f.name);
      });
      for (const r of nmRead(paths)) expect(r, JSON.stringify(r)).toMatchObject({ ok: true });
    });
  }

  it('carries what each kind of Wi-Fi network needs, as NetworkManager understands it', () => {
    const plan = planNetwork({
      facts: fixtureHost,
      sources: filesUnder(join(FIXTURES, 'wpa_supplicant', 'root')),
      options: allOptions,
    });
    const dir = mkdtempSync(join(scratch, 'wifi-kinds-'));
    const read = nmRead(
      plan.files.map((f) => {
        writeFileSync(join(dir, f.name), f.data);
        return join(dir, f.name);
      }),
    );
    const bySsid = Object.fromEntries(read.map((r) => [r.ssid, r]));
    expect(bySsid['home-wifi']).toMatchObject({ keyMgmt: 'wpa-psk', hasPsk: true, hidden: false });
    expect(bySsid.workshop).toMatchObject({ keyMgmt: 'wpa-psk', hasPsk: true, hidden: true });
    expect(bySsid['cafe guest']).toMatchObject({ type: '802-11-wireless' });
    expect(bySsid['cafe guest']?.keyMgmt).toBeUndefined();
    expect(bySsid['old-printer']).toMatchObject({ keyMgmt: 'none' });
    expect(bySsid.campus).toMatchObject({ keyMgmt: 'wpa-eap', eap: ['peap'], hasPassword: true });
    expect(bySsid['Home ☃']).toMatchObject({ keyMgmt: 'wpa-psk' });
    // EAP-TLS needs certificates that are not carried: left out, with the reason in the notes
    expect(bySsid['lab-tls']).toBeUndefined();
    expect(plan.notes.join('\n')).toMatch(/lab-tls: 802.1x with EAP-TLS needs client certificates/);
  });

  it('carries only the Wi-Fi networks the operator names, or none', () => {
    const sources = filesUnder(join(FIXTURES, 'wpa_supplicant', 'root'));
    const some = planNetwork({
      facts: fixtureHost,
      sources,
      options: { ...allOptions, wifi: ['workshop', 'nowhere'] },
    });
    expect(some.files.map((f) => f.name)).toEqual(['bm-net-01-workshop.nmconnection']);
    expect(some.notes).toContain(
      'network: network.wifi names nowhere, which this host has no configuration for',
    );
    const none = planNetwork({ facts: fixtureHost, sources, options: { ...allOptions, wifi: 'none' } });
    expect(none.files).toEqual([]);
  });
});

describe('whether balenaOS will reach the network', () => {
  const ifupdown = filesUnder(join(FIXTURES, 'ifupdown', 'root'));
  const wifiOnly = filesUnder(join(FIXTURES, 'wpa_supplicant', 'root'));
  const require: NetworkOptions = { wifi: 'all', requireNetwork: true, extraFiles: [] };

  it('is usable with plain DHCP on a wired interface and no files at all (balenaOS does DHCP by default)', () => {
    const facts = hostFacts(
      [iface('ens3', 'ethernet', '52:54:00:12:34:56', [{ cidr: '10.0.2.15/24', dynamic: true }])],
      'ens3',
      'dhcp',
    );
    const plan = planNetwork({ facts, sources: [], options: require });
    expect(plan).toMatchObject({ usable: true, reasons: [], files: [] });
    expect(plan.notes).toContain(
      'network: balenaOS will reach the network through ens3 (wired, 10.0.2.15/24 from DHCP): DHCP, which balenaOS does on wired interfaces by default',
    );
  });

  it('is usable with a static wired address when its configuration is carried, bound to its MAC', () => {
    const facts = hostFacts(
      [iface('eth0', 'ethernet', 'b8:27:eb:12:34:56', [{ cidr: '192.0.2.10/24', dynamic: false }])],
      'eth0',
      'static',
    );
    const plan = planNetwork({ facts, sources: ifupdown, options: require });
    expect(plan.usable).toBe(true);
    const eth0 = plan.files.find((f) => f.name.includes('eth0'));
    expect(eth0?.data.toString()).toContain('mac-address=B8:27:EB:12:34:56');
  });

  it('refuses a host on Wi-Fi when no Wi-Fi network is carried, and explains how to go on', () => {
    const facts = hostFacts(
      [iface('wlan0', 'wifi', 'b8:27:eb:65:43:21', [{ cidr: '192.168.1.23/24', dynamic: true }])],
      'wlan0',
      'dhcp',
    );
    const plan = planNetwork({ facts, sources: wifiOnly, options: { ...require, wifi: 'none' } });
    expect(plan.usable).toBe(false);
    expect(plan.reasons).toEqual([
      'no usable network configuration for balenaOS: wlan0 (Wi-Fi, 192.168.1.23/24 from DHCP) is on Wi-Fi, but no Wi-Fi network is carried (network.wifi: none); the device would come up unreachable. Carry its Wi-Fi (network.wifi), supply a keyfile (network.extraFiles), or set network.requireNetwork: false to migrate anyway',
    ]);
    // with requireNetwork off it is a warning, not a refusal
    const lenient = planNetwork({
      facts,
      sources: wifiOnly,
      options: { ...require, wifi: 'none', requireNetwork: false },
    });
    expect(lenient.reasons).toEqual([]);
    expect(lenient.notes.join('\n')).toMatch(/WARNING: no usable network configuration/);
  });

  it('refuses a static wired address nothing could carry, and accepts it once the operator supplies a keyfile', () => {
    const facts = hostFacts(
      [iface('eth0', 'ethernet', 'b8:27:eb:12:34:56', [{ cidr: '198.51.100.7/24', dynamic: false }])],
      'eth0',
      'static',
    );
    const refused = planNetwork({ facts, sources: [], options: require });
    expect(refused.reasons[0]).toMatch(
      /eth0 \(wired, 198.51.100.7\/24\) has a static address and no configuration for it could be carried/,
    );
    const supplied = readFileSync(
      join(FIXTURES, 'networkmanager/root/etc/NetworkManager/system-connections/office-static.nmconnection'),
    );
    const plan = planNetwork({
      facts,
      sources: [],
      options: { ...require, extraFiles: [{ path: '/op/office-static.nmconnection', data: supplied }] },
    });
    expect(plan).toMatchObject({ usable: true, reasons: [] });
    expect(plan.files.map((f) => f.name)).toEqual(['bm-extra-01-office-static.nmconnection']);
    expect(plan.files[0]?.data.equals(supplied)).toBe(true);
  });

  it('refuses a supplied keyfile NetworkManager could not use, without quoting its secrets', () => {
    const facts = hostFacts([
      iface('ens3', 'ethernet', '52:54:00:12:34:56', [{ cidr: '10.0.2.15/24', dynamic: true }]),
    ]);
    const bad = Buffer.from(
      '[connection]\nid=x\ntype=wifi\n[wifi]\nssid=x\n[wifi-security]\nkey-mgmt=wpa-psk\npsk=short\n',
    );
    const plan = planNetwork({
      facts,
      sources: [],
      options: { ...require, extraFiles: [{ path: '/op/x.nmconnection', data: bad }] },
    });
    expect(plan.reasons).toEqual([
      'network.extraFiles: /op/x.nmconnection is not a usable NetworkManager keyfile: [wifi-security] psk must be 8-63 characters or 64 hex digits',
    ]);
  });
});

describe('keyfile checks on the laptop', () => {
  it('find the same files bad that NetworkManager refuses', () => {
    const cases: [string, RegExp][] = [
      ['[connection]\nid=a\ntype=wifi\n[wifi]\nmode=infrastructure\n', /\[wifi\] has no ssid/],
      ['[connection]\nid=a\ntype=ethernet\n[ipv4]\nmethod=manual\n', /method manual needs an address1/],
      [
        '[connection]\nid=a\ntype=ethernet\n[ipv4]\nmethod=manual\naddress1=10.0.0.300/24\n',
        /address1 is not an address\/prefix/,
      ],
      ['[connection]\ntype=ethernet\n[ipv4]\nmethod=bogus\n', /method bogus is unknown/],
    ];
    const dir = mkdtempSync(join(scratch, 'bad-'));
    cases.forEach(([text, says], i) => {
      expect(checkKeyfile(text).problems.join('; ')).toMatch(says);
      writeFileSync(join(dir, `${i}.nmconnection`), text);
    });
    const nm = nmRead(cases.map((_, i) => join(dir, `${i}.nmconnection`)));
    for (const r of nm) expect(r.ok, JSON.stringify(r)).toBe(false);
  });
});

describe('collecting and redacting', () => {
  it('decodes the collection script output, and refuses a cut-off one', () => {
    const text = [
      'file\t/etc/wpa_supplicant/wpa_supplicant.conf\t12\tbase64',
      Buffer.from('network={}\n\n').toString('base64'),
      'end-file',
      'skipped\t/etc/netplan/huge.yaml\tlarger than 262144 bytes',
      'file\t/etc/dhcpcd.conf\t3\thex',
      '616263',
      'end-file',
      'end\tok',
      '',
    ].join('\n');
    const { files, skipped } = parseNetworkCollection(text);
    expect(files.map((f) => [f.path, f.data.toString()])).toEqual([
      ['/etc/wpa_supplicant/wpa_supplicant.conf', 'network={}\n\n'],
      ['/etc/dhcpcd.conf', 'abc'],
    ]);
    expect(skipped).toEqual(['/etc/netplan/huge.yaml: larger than 262144 bytes']);
    expect(() => parseNetworkCollection(text.replace('end\tok\n', ''))).toThrow(/truncated/);
  });

  it('runs the collection script under busybox sh and ends with its end line', () => {
    const out = execFileSync(
      'busybox',
      ['sh', join(import.meta.dirname, '../../remote-payload/network-collect.sh')],
      {
        encoding: 'utf8',
      },
    );
    expect(() => parseNetworkCollection(out)).not.toThrow();
  });

  it('replaces the values of psk, password and wep keys in a log, keeping the rest of the line', () => {
    expect(
      redactSecrets('[3.2] | psk=hunter2-secret key-mgmt=wpa-psk\n"apiKey": "abc123", wep-key0=12345'),
    ).toBe('[3.2] | psk=<redacted> key-mgmt=wpa-psk\n"apiKey": "<redacted>", wep-key0=<redacted>');
  });
});
