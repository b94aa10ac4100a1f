// agent.wifiSsid and `network.*` agree: the agent's Wi-Fi reaches the device as one more
// NetworkManager keyfile (read back by NetworkManager's own parser), counts for
// network.requireNetwork, and replaces the old OS's profile of the same SSID instead of
// doubling it. Also: agent.sshKeyFiles into config.json, and the agent flags.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultAgentSettings } from '../../orchestrator/agent/config.ts';
import { deviceConfigJson } from '../../orchestrator/agent/device-config.ts';
import { agentOverridesFromFlags } from '../../orchestrator/agent/flags.ts';
import { readPublicKeys } from '../../orchestrator/agent/ssh-keys.ts';
import { agentWifi, agentWifiKeyfile, withAgentWifi } from '../../orchestrator/agent/wifi.ts';
import { ConfigError } from '../../orchestrator/errors.ts';
import type { Facts, NetInterface } from '../../orchestrator/facts/facts.ts';
import { parseFacts } from '../../orchestrator/facts/parse.ts';
import type { SourceFile } from '../../orchestrator/network/model.ts';
import { planNetwork } from '../../orchestrator/network/plan-network.ts';

const FIXTURES = join(import.meta.dirname, '../fixtures');
const NM_CHECK = join(import.meta.dirname, '../helpers/nm-keyfile-check.py');
const scratch = mkdtempSync(join(tmpdir(), 'agent-wifi-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function filesUnder(root: string): SourceFile[] {
  return readdirSync(root, { recursive: true, encoding: 'utf8' })
    .sort()
    .map((f) => join(root, f))
    .filter((p) => statSync(p).isFile())
    .map((p) => ({ path: `/${relative(root, p)}`, data: readFileSync(p) }));
}

/** The wpa_supplicant fixture: home-wifi, workshop, cafe guest, old-printer. */
const wpaSupplicant = filesUnder(join(FIXTURES, 'network/wpa_supplicant/root'));

function wifiHost(): Facts {
  const f = parseFacts(readFileSync(join(FIXTURES, 'facts/debian-bookworm-bios-virtio.txt'), 'utf8'));
  const wlan0: NetInterface = {
    name: 'wlan0',
    kind: 'wifi',
    mac: 'b8:27:eb:65:43:21',
    up: true,
    physical: true,
    driver: null,
    ipv4: [{ cidr: '192.168.1.23/24', dynamic: true }],
    ipv6: [],
  };
  return {
    ...f,
    network: { interfaces: [wlan0], defaultRoutes: [{ dev: 'wlan0', proto: 'dhcp' }], services: [] },
  };
}

function settings(over: Partial<ReturnType<typeof defaultAgentSettings>>) {
  return { ...defaultAgentSettings(), ...over };
}

function keyFile(name: string, text: string): string {
  const p = join(scratch, name);
  writeFileSync(p, text, { mode: 0o600 });
  return p;
}

describe("the agent's Wi-Fi and network.*", () => {
  it('becomes a keyfile NetworkManager reads as that network, with the passphrase from the key file', () => {
    const wifi = agentWifi(
      settings({ wifiSsid: 'lab-wifi', wifiKeyFile: keyFile('k1', 'correct horse battery\n') }),
      'balena-migrate.yml',
    )!;
    const path = join(scratch, 'agent.nmconnection');
    writeFileSync(path, agentWifiKeyfile(wifi), { mode: 0o600 });
    const [nm] = execFileSync('/usr/bin/python3', [NM_CHECK, path], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(nm).toMatchObject({ ok: true, type: '802-11-wireless', ssid: 'lab-wifi' });
    expect(agentWifiKeyfile(wifi).toString()).toMatch(/^psk=correct horse battery$/m);
  });

  it('is carried to a host whose old Wi-Fi is left out by network.wifi: none, so the host is not refused', () => {
    const wifi = agentWifi(
      settings({ wifiSsid: 'lab-wifi', wifiKeyFile: keyFile('k2', 'correct horse battery\n') }),
      undefined,
    );
    const network = withAgentWifi(
      { wifi: 'none' as const, requireNetwork: true, extraFiles: [] },
      wifi,
      scratch,
    );
    expect(network.extraFiles).toEqual([join(scratch, 'agent', 'network', 'agent-wifi.nmconnection')]);
    expect(statSync(network.extraFiles[0]!).mode & 0o777).toBe(0o600);
    const plan = planNetwork({
      facts: wifiHost(),
      sources: wpaSupplicant,
      options: {
        ...network,
        extraFiles: network.extraFiles.map((p) => ({ path: p, data: readFileSync(p) })),
      },
    });
    expect(plan.reasons).toEqual([]);
    expect(plan.usable).toBe(true);
    expect(plan.files.map((f) => f.name)).toEqual(['bm-extra-01-agent-wifi.nmconnection']);
    // without it, the same host is refused: nothing would bring wlan0 up on balenaOS
    const without = planNetwork({
      facts: wifiHost(),
      sources: wpaSupplicant,
      options: { wifi: 'none', requireNetwork: true, extraFiles: [] },
    });
    expect(without.usable).toBe(false);
  });

  it("replaces the old OS's profile of the same SSID instead of carrying two that could disagree", () => {
    const wifi = agentWifi(
      settings({ wifiSsid: 'home-wifi', wifiKeyFile: keyFile('k3', 'a new passphrase 2026\n') }),
      undefined,
    )!;
    const plan = planNetwork({
      facts: wifiHost(),
      sources: wpaSupplicant,
      options: {
        wifi: 'all',
        requireNetwork: true,
        extraFiles: [{ path: '/run/agent-wifi.nmconnection', data: agentWifiKeyfile(wifi) }],
      },
    });
    const homeProfiles = plan.files.filter((f) => /ssid=home-wifi$/m.test(f.data.toString()));
    expect(homeProfiles.map((f) => f.name)).toEqual([expect.stringMatching(/^bm-extra-\d+-agent-wifi/)]);
    expect(homeProfiles[0]!.data.toString()).toMatch(/^psk=a new passphrase 2026$/m);
    expect(plan.notes).toContain(
      'network: Wi-Fi home-wifi (wpa_supplicant /etc/wpa_supplicant/wpa_supplicant.conf) is not carried: a supplied keyfile configures home-wifi',
    );
    // the old OS's other networks are still carried
    expect(plan.files.some((f) => /ssid=workshop$/m.test(f.data.toString()))).toBe(true);
  });

  it('refuses a Wi-Fi key file without a network name, and a key file that holds no WPA passphrase', () => {
    expect(() =>
      agentWifi(settings({ wifiKeyFile: keyFile('k4', 'correct horse battery\n') }), 'x.yml'),
    ).toThrow(/agent.wifiKeyFile is set but agent.wifiSsid is not/);
    const short = keyFile('k5', 'short\n');
    const err = (() => {
      try {
        agentWifi(settings({ wifiSsid: 'lab', wifiKeyFile: short }), 'x.yml');
      } catch (e) {
        return e as ConfigError;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.message).toMatch(/does not hold a WPA passphrase/);
    expect(err!.message).not.toContain('short\n');
    expect(agentWifi(settings({}), 'x.yml')).toBeNull();
  });

  it('leaves the network settings alone without agent.wifiSsid', () => {
    const network = { wifi: 'all' as const, requireNetwork: true, extraFiles: ['/op/a.nmconnection'] };
    expect(withAgentWifi(network, null, scratch)).toBe(network);
  });
});

describe('agent.sshKeyFiles', () => {
  const pub = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDn+Pzs9Fn98p378Df+4udb0sAkoGwD+9HPB2sGCCmDb op@laptop';

  it("puts the public keys into the device's config.json as os.sshKeys, next to the backend's", () => {
    const keys = readPublicKeys([keyFile('id.pub', `${pub}\n`)]);
    const config = deviceConfigJson(
      { applicationId: 11, apiKey: 'provisioning', os: { sshKeys: ['ssh-rsa AAAAB3 other'] } },
      { id: 5, uuid: 'u'.repeat(32), deviceApiKey: 'dk' },
      new Date(0),
      keys,
    );
    expect(config.os).toEqual({ sshKeys: ['ssh-rsa AAAAB3 other', pub] });
    expect(config).not.toHaveProperty('apiKey');
  });

  it('refuses a private key named by mistake, without echoing it', () => {
    const secret =
      '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n';
    const file = keyFile('id', secret);
    expect(() => readPublicKeys([file])).toThrow(/is a private key/);
    try {
      readPublicKeys([file]);
    } catch (e) {
      expect((e as ConfigError).format()).not.toContain('b3BlbnNzaC1rZXktdjEAAAAA');
    }
  });

  it('names the line of a file that is not a public key', () => {
    const file = keyFile('mixed.pub', `# laptop\n${pub}\nnot a key\n`);
    try {
      readPublicKeys([file]);
      expect.unreachable();
    } catch (e) {
      expect((e as ConfigError).format()).toMatch(new RegExp(`^${file}:3:1: agent.sshKeyFiles: line 3 of`));
    }
  });
});

describe('agent flags', () => {
  it('--host-download turns the host-side download on; without it the option stays as the file says', () => {
    expect(agentOverridesFromFlags({ hostDownload: true })).toEqual({ hostDownload: true });
    expect(agentOverridesFromFlags({})).toBeUndefined();
    expect(defaultAgentSettings().hostDownload).toBe(false);
  });
});
