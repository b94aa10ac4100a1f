// Turns the old OS's network configuration into the NetworkManager keyfiles stage2 puts on
// resin-boot, and decides whether balenaOS will reach the network at all. Pure: the config
// files (in memory), the facts and the operator's choices in; keyfiles, notes and refusal
// reasons out. Notes and reasons name interfaces, SSIDs and addresses, never a key.
//
// "Usable" means: among the physical interfaces that are up with an address today (the ones
// the device is reachable through), at least one will come up on balenaOS:
//   - a wired interface whose address is leased by DHCP: balenaOS's NetworkManager runs DHCP
//     on every wired interface without any configuration;
//   - a wired interface whose static configuration is carried (or supplied by the operator);
//   - a Wi-Fi interface when at least one Wi-Fi network is carried (or supplied).
import { createHash } from 'node:crypto';
import type { Facts, NetInterface } from '../facts/facts.ts';
import { checkKeyfile, renderKeyfile } from './keyfile.ts';
import { type NetConnection, type ParsedStack, type SourceFile, ssidText } from './model.ts';
import { parseConnman } from './stacks/connman.ts';
import { parseDhcpcd } from './stacks/dhcpcd.ts';
import { parseIfupdown } from './stacks/ifupdown.ts';
import { parseNetplan } from './stacks/netplan.ts';
import { parseNetworkd } from './stacks/networkd.ts';
import { parseNetworkManager } from './stacks/networkmanager.ts';
import { parseWpaSupplicant } from './stacks/wpa-supplicant.ts';

export interface NetworkOptions {
  /** which Wi-Fi networks to carry: all, none, or these SSIDs */
  wifi: 'all' | 'none' | string[];
  /** refuse a host whose network would not come up on balenaOS */
  requireNetwork: boolean;
  /** keyfiles supplied by the operator, already read */
  extraFiles: SourceFile[];
}

export const DEFAULT_NETWORK_OPTIONS: NetworkOptions = { wifi: 'all', requireNetwork: true, extraFiles: [] };

export interface NetworkFile {
  /** file name in the work dir and in resin-boot/system-connections */
  name: string;
  data: Buffer;
  sha256: string;
  /** what it is, for notes: "Wi-Fi home-wifi (wpa-psk) from wpa_supplicant /etc/..." */
  what: string;
}

export interface NetworkPlan {
  files: NetworkFile[];
  notes: string[];
  /** refusal reasons (empty when fine, or when requireNetwork is off) */
  reasons: string[];
  usable: boolean;
}

/** The stacks in the order their word counts: the one that manages the network first. */
const STACKS: { name: string; owns: (p: string) => boolean; parse: (f: SourceFile[]) => ParsedStack }[] = [
  {
    name: 'NetworkManager',
    owns: (p) => p.startsWith('/etc/NetworkManager/system-connections/'),
    parse: parseNetworkManager,
  },
  { name: 'netplan', owns: (p) => /^\/(etc|run|lib)\/netplan\/[^/]+\.ya?ml$/.test(p), parse: parseNetplan },
  { name: 'connman', owns: (p) => p.startsWith('/var/lib/connman/'), parse: parseConnman },
  {
    name: 'systemd-networkd',
    owns: (p) => /^\/(etc|run)\/systemd\/network\/[^/]+\.network$/.test(p),
    parse: parseNetworkd,
  },
  {
    name: 'ifupdown',
    owns: (p) => p === '/etc/network/interfaces' || p.startsWith('/etc/network/interfaces.d/'),
    parse: parseIfupdown,
  },
  { name: 'dhcpcd', owns: (p) => p === '/etc/dhcpcd.conf', parse: parseDhcpcd },
  {
    name: 'wpa_supplicant',
    owns: (p) => /^\/etc\/wpa_supplicant(\/[^/]+)?\.conf$/.test(p),
    parse: parseWpaSupplicant,
  },
];

function slug(text: string): string {
  const s = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 32)
    .replace(/-+$/, '');
  return s || 'connection';
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function describe(c: NetConnection): string {
  if (c.wifi)
    return `Wi-Fi ${ssidText(c.wifi.ssid)} (${c.wifi.security.kind}${c.wifi.hidden ? ', hidden' : ''}${c.ipv4.method === 'manual' ? `, ${c.ipv4.addresses.join(' ')}` : ''})`;
  const bind = c.macAddress ? ` on ${c.macAddress}` : c.interfaceName ? ` on ${c.interfaceName}` : '';
  return `wired ${c.id}${bind}${c.ipv4.method === 'manual' ? `: ${c.ipv4.addresses.join(' ')}${c.ipv4.gateway ? ` via ${c.ipv4.gateway}` : ''}` : ''}`;
}

/** A wired connection that says nothing balenaOS's default DHCP does not already do. */
function isDefaultWired(c: NetConnection): boolean {
  return (
    c.type === 'ethernet' &&
    c.ipv4.method === 'auto' &&
    !c.ipv4.dns.length &&
    !c.ipv4.routes.length &&
    !c.ipv4.ignoreAutoDns &&
    (c.ipv6.method === 'auto' || c.ipv6.method === 'dhcp') &&
    !c.ipv6.addresses.length
  );
}

function ifaceText(i: NetInterface): string {
  const addrs = i.ipv4.map((a) => `${a.cidr}${a.dynamic ? ' from DHCP' : ''}`).join(', ');
  return `${i.name} (${i.kind === 'wifi' ? 'Wi-Fi' : 'wired'}${addrs ? `, ${addrs}` : ''})`;
}

export function planNetwork(input: {
  facts: Facts;
  sources: SourceFile[];
  options: NetworkOptions;
}): NetworkPlan {
  const { facts, options } = input;
  const notes: string[] = [];
  const reasons: string[] = [];
  const connections: NetConnection[] = [];
  const dhcpInterfaces = new Set<string>();
  const wifiIp: NonNullable<ParsedStack['interfaceIp']> = [];
  const used = new Set<string>();
  for (const stack of STACKS) {
    const files = input.sources.filter((f) => !used.has(f.path) && stack.owns(f.path));
    for (const f of files) used.add(f.path);
    if (files.length === 0) continue;
    const parsed = stack.parse(files);
    notes.push(...parsed.notes.map((n) => `network: ${n}`));
    wifiIp.push(...(parsed.interfaceIp ?? []));
    for (const c of parsed.connections) {
      if (c.type === 'ethernet' && c.ipv4.method === 'auto' && c.interfaceName)
        dhcpInterfaces.add(c.interfaceName);
      connections.push(c);
    }
  }

  // addressing given to a Wi-Fi interface elsewhere applies to the networks that have none
  for (const c of connections) {
    if (c.type !== 'wifi' || c.ipv4.method !== 'auto' || c.ipv4.dns.length) continue;
    const ip = wifiIp.find((w) => !c.interfaceName || w.interfaceName === c.interfaceName) ?? wifiIp[0];
    if (!ip || (ip.ipv4.method === 'auto' && !ip.ipv4.dns.length)) continue;
    c.ipv4 = structuredClone(ip.ipv4);
    c.ipv6 = structuredClone(ip.ipv6);
    c.source += ` + ${ip.source}`;
  }

  // Wi-Fi networks an extra keyfile (network.extraFiles, agent.wifiSsid) supplies: the old OS's
  // profile of the same SSID is not carried too, two profiles for one SSID would contradict
  const suppliedSsids = new Set(
    options.extraFiles.flatMap((e) => {
      const check = checkKeyfile(e.data.toString('utf8'));
      return check.type === 'wifi' && check.ssid && !check.problems.length ? [check.ssid] : [];
    }),
  );
  // one connection per Wi-Fi network and per wired interface: the first stack wins
  const kept: NetConnection[] = [];
  const seen = new Map<string, NetConnection>();
  const macOf = new Map(
    (facts.network?.interfaces ?? []).filter((i) => i.mac).map((i) => [i.name, i.mac!.toLowerCase()]),
  );
  for (const c of connections) {
    if (c.type === 'ethernet' && !c.macAddress && c.interfaceName && macOf.has(c.interfaceName)) {
      c.macAddress = macOf.get(c.interfaceName);
    }
    const key = c.wifi
      ? `wifi:${c.wifi.ssid.toString('hex')}`
      : `eth:${c.macAddress ?? c.interfaceName ?? c.id}`;
    const first = seen.get(key);
    if (first) {
      notes.push(`network: ${describe(c)} from ${c.source} is also in ${first.source}; that one is carried`);
      continue;
    }
    seen.set(key, c);
    if (c.wifi) {
      const name = ssidText(c.wifi.ssid);
      if (suppliedSsids.has(name)) {
        notes.push(
          `network: Wi-Fi ${name} (${c.source}) is not carried: a supplied keyfile configures ${name}`,
        );
        continue;
      }
      if (options.wifi === 'none' || (Array.isArray(options.wifi) && !options.wifi.includes(name))) {
        notes.push(`network: Wi-Fi ${name} (${c.source}) is not carried: network.wifi leaves it out`);
        continue;
      }
    }
    if (isDefaultWired(c)) {
      notes.push(
        `network: ${c.id} (${c.source}) needs no file: balenaOS does DHCP on wired interfaces by default`,
      );
      continue;
    }
    kept.push(c);
  }
  if (Array.isArray(options.wifi)) {
    const found = new Set(kept.filter((c) => c.wifi).map((c) => ssidText(c.wifi!.ssid)));
    for (const want of options.wifi) {
      if (!found.has(want))
        notes.push(`network: network.wifi names ${want}, which this host has no configuration for`);
    }
  }

  // the files: ours, then the operator's
  const files: NetworkFile[] = [];
  const carriedWifi: string[] = [];
  const carriedWired: { mac?: string; iface?: string }[] = [];
  kept.forEach((c) => {
    const data = Buffer.from(renderKeyfile(c), 'utf8');
    const check = checkKeyfile(data.toString('utf8'));
    if (check.problems.length) {
      notes.push(`network: ${describe(c)} is not carried: ${check.problems.join('; ')}`);
      return;
    }
    const name = `bm-net-${String(files.length + 1).padStart(2, '0')}-${slug(c.id)}.nmconnection`;
    files.push({ name, data, sha256: sha256(data), what: `${describe(c)} from ${c.source}` });
    for (const w of c.warnings) notes.push(`network: ${w}`);
    if (c.wifi) carriedWifi.push(ssidText(c.wifi.ssid));
    else
      carriedWired.push({
        ...(c.macAddress ? { mac: c.macAddress } : {}),
        ...(c.interfaceName ? { iface: c.interfaceName } : {}),
      });
  });
  for (const extra of options.extraFiles) {
    const check = checkKeyfile(extra.data.toString('utf8'));
    if (check.problems.length) {
      reasons.push(
        `network.extraFiles: ${extra.path} is not a usable NetworkManager keyfile: ${check.problems.join('; ')}`,
      );
      continue;
    }
    const base = extra.path
      .split('/')
      .pop()!
      .replace(/\.nmconnection$/, '');
    const name = `bm-extra-${String(files.length + 1).padStart(2, '0')}-${slug(base)}.nmconnection`;
    files.push({
      name,
      data: extra.data,
      sha256: sha256(extra.data),
      what: `${check.type} ${check.id} supplied as ${extra.path}`,
    });
    if (check.type === 'wifi') carriedWifi.push(check.ssid ?? check.id ?? '?');
    else if (check.type === 'ethernet') carriedWired.push({});
  }
  for (const f of files) notes.push(`network: ${f.name}: ${f.what}`);

  // will balenaOS reach the network?
  const net = facts.network;
  let usable: boolean;
  if (!net) {
    usable = true;
    notes.push(
      'network: the probe reported no interfaces; whether balenaOS will reach the network was not checked',
    );
  } else {
    const physical = net.interfaces.filter((i) => i.physical && i.kind !== 'other' && i.up);
    const relevant = physical.some((i) => i.ipv4.length) ? physical.filter((i) => i.ipv4.length) : physical;
    const covered: string[] = [];
    const uncovered: string[] = [];
    for (const i of relevant) {
      if (i.kind === 'wifi') {
        if (carriedWifi.length) covered.push(`${ifaceText(i)}: Wi-Fi ${carriedWifi.join(', ')} carried`);
        else
          uncovered.push(
            `${ifaceText(i)} is on Wi-Fi, but no Wi-Fi network is carried${options.wifi === 'none' ? ' (network.wifi: none)' : ''}`,
          );
        continue;
      }
      const mac = i.mac?.toLowerCase();
      const bound = carriedWired.some(
        (w) => (w.mac && w.mac === mac) || (w.iface && w.iface === i.name) || (!w.mac && !w.iface),
      );
      const dhcp =
        i.ipv4.some((a) => a.dynamic) ||
        net.defaultRoutes.some((r) => r.dev === i.name && r.proto === 'dhcp') ||
        dhcpInterfaces.has(i.name);
      if (bound) covered.push(`${ifaceText(i)}: its configuration is carried`);
      else if (dhcp)
        covered.push(`${ifaceText(i)}: DHCP, which balenaOS does on wired interfaces by default`);
      else if (i.ipv4.length)
        uncovered.push(`${ifaceText(i)} has a static address and no configuration for it could be carried`);
      else uncovered.push(`${ifaceText(i)} has no IPv4 address and no configuration for it is carried`);
    }
    usable = covered.length > 0;
    for (const c of covered) notes.push(`network: balenaOS will reach the network through ${c}`);
    for (const u of uncovered) notes.push(`network: not covered: ${u}`);
    const def = net.defaultRoutes[0]?.dev;
    if (usable && def && !covered.some((c) => c.startsWith(`${def} `))) {
      notes.push(`network: the default route goes through ${def} today, which balenaOS will not bring up`);
    }
    if (!usable) {
      const why = relevant.length
        ? uncovered.join('; ')
        : 'no physical network interface is up (the host is reached some other way?)';
      const text =
        `no usable network configuration for balenaOS: ${why}; the device would come up unreachable. ` +
        'Carry its Wi-Fi (network.wifi), supply a keyfile (network.extraFiles), or set network.requireNetwork: false to migrate anyway';
      if (options.requireNetwork) reasons.push(text);
      else
        notes.push(
          `network: WARNING: ${text.replace(/^no usable/, 'no usable')}; network.requireNetwork is false`,
        );
    }
  }
  return { files, notes, reasons, usable };
}
