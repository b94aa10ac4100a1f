// agent.wifiSsid / agent.wifiKeyFile and the migration config's `network.*` describe one thing,
// the networks balenaOS will use, so they are made to agree instead of being two sources:
//   - what reaches the device is decided in one place, stage2's NetworkManager keyfiles on
//     resin-boot (network/plan-network.ts). The agent's Wi-Fi becomes one of them, exactly like
//     a `network.extraFiles` keyfile: the plan lists it, and network.requireNetwork counts it;
//   - the backend's config.json is generated with the same network (network: wifi, the SSID and
//     passphrase), so config.json never names a network the device was not given;
//   - a Wi-Fi of the old OS with the same SSID is not carried as well (the extra keyfile wins:
//     two profiles for one SSID with different passphrases would be a contradiction on the
//     device), and `network.wifi` keeps meaning what it says: which of the *old OS's* networks
//     are carried; `network.wifi: none` still gets the agent's Wi-Fi, as it gets extraFiles.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.ts';
import { renderKeyfile } from '../network/keyfile.ts';
import type { NetConnection } from '../network/model.ts';
import type { AgentSettingsResolved } from './config.ts';
import { writeSecretText } from './device-config.ts';

/** RunSettings.network when the config says nothing (the same as phases/run-host.ts assumes). */
export const DEFAULT_NETWORK = { wifi: 'all' as const, requireNetwork: true, extraFiles: [] as string[] };

export interface AgentWifi {
  ssid: string;
  /** the passphrase; undefined for an open network */
  passphrase: string | undefined;
}

/** The agent's Wi-Fi, or null without agent.wifiSsid; a key file alone is refused. */
export function agentWifi(agent: AgentSettingsResolved, source: string | undefined): AgentWifi | null {
  if (!agent.wifiSsid) {
    if (agent.wifiKeyFile) {
      throw new ConfigError(
        'agent.wifiKeyFile is set but agent.wifiSsid is not: the passphrase would be for no network',
        { file: source ?? 'command line' },
        'add agent.wifiSsid (the network name), or remove agent.wifiKeyFile',
      );
    }
    return null;
  }
  const passphrase = agent.wifiKeyFile
    ? readFileSync(agent.wifiKeyFile, 'utf8').replace(/\r?\n$/, '')
    : undefined;
  if (passphrase !== undefined && !/^([\x20-\x7e]{8,63}|[0-9a-fA-F]{64})$/.test(passphrase)) {
    throw new ConfigError(
      `agent.wifiKeyFile: ${agent.wifiKeyFile} does not hold a WPA passphrase (8 to 63 printable characters, or 64 hex digits)`,
      { file: agent.wifiKeyFile! },
      'write the passphrase alone into the file',
    );
  }
  return { ssid: agent.wifiSsid, passphrase };
}

/** The NetworkManager keyfile for the agent's Wi-Fi (DHCP, as balenaOS' own Wi-Fi setup does). */
export function agentWifiKeyfile(wifi: AgentWifi): Buffer {
  const connection: NetConnection = {
    id: wifi.ssid,
    type: 'wifi',
    source: 'agent.wifiSsid',
    autoconnect: true,
    wifi: {
      ssid: Buffer.from(wifi.ssid, 'utf8'),
      hidden: false,
      security: wifi.passphrase === undefined ? { kind: 'open' } : { kind: 'wpa-psk', psk: wifi.passphrase },
    },
    ipv4: { method: 'auto', addresses: [], dns: [], dnsSearch: [], routes: [] },
    ipv6: { method: 'auto', addresses: [], dns: [], dnsSearch: [], routes: [] },
    warnings: [],
  };
  return Buffer.from(renderKeyfile(connection), 'utf8');
}

/**
 * Writes the agent's Wi-Fi keyfile into the run directory (0600: it holds the passphrase) and
 * returns the network settings with it added as an extra file, for every host of the run.
 */
export function withAgentWifi<N extends { extraFiles: string[] }>(
  network: N,
  wifi: AgentWifi | null,
  runDir: string,
): N {
  if (!wifi) return network;
  const path = join(runDir, 'agent', 'network', 'agent-wifi.nmconnection');
  writeSecretText(path, agentWifiKeyfile(wifi));
  return { ...network, extraFiles: [...network.extraFiles, path] };
}
