// ifupdown (Debian's /etc/network/interfaces and interfaces.d/*): `iface NAME inet|inet6
// METHOD` stanzas with address/netmask/gateway, dns-nameservers/dns-search from resolvconf,
// and wpa-ssid/wpa-psk (or wpa-conf FILE, read from the wpa_supplicant files) for Wi-Fi.
import {
  autoIp,
  type IpSettings,
  isCidr,
  isIp,
  looksWireless,
  netmaskToPrefix,
  type ParsedStack,
  type SourceFile,
  ssidText,
  type WifiSecurity,
} from '../model.ts';
import { wpaBytes } from './wpa-supplicant.ts';

interface Stanza {
  iface: string;
  family: 'inet' | 'inet6';
  method: string;
  options: Map<string, string[]>;
  file: string;
  line: number;
}

function stanzas(file: SourceFile): Stanza[] {
  const out: Stanza[] = [];
  let current: Stanza | null = null;
  const lines = file.data.toString('utf8').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i]!.trim()}`;
    const t = line.replace(/#.*$/, '').trim();
    if (!t) continue;
    const words = t.split(/\s+/);
    const head = words[0]!;
    if (head === 'iface' && words.length >= 4) {
      current = {
        iface: words[1]!,
        family: words[2] === 'inet6' ? 'inet6' : 'inet',
        method: words[3]!,
        options: new Map(),
        file: file.path,
        line: i + 1,
      };
      if (words[2] === 'inet' || words[2] === 'inet6') out.push(current);
      continue;
    }
    if (
      [
        'auto',
        'allow-hotplug',
        'source',
        'source-directory',
        'mapping',
        'rename',
        'no-auto-down',
        'no-scripts',
      ].includes(head) ||
      head.startsWith('allow-')
    ) {
      current = null;
      continue;
    }
    if (current) {
      const value = t.slice(head.length).trim();
      current.options.set(head, [...(current.options.get(head) ?? []), value]);
    }
  }
  return out;
}

const opt = (s: Stanza, k: string) => s.options.get(k)?.at(-1);

function stanzaIp(s: Stanza, warnings: string[]): IpSettings {
  const ip = autoIp();
  const family = s.family;
  switch (s.method) {
    case 'dhcp':
    case 'auto':
      break;
    case 'static': {
      const addr = opt(s, 'address');
      if (!addr) {
        warnings.push(`${s.iface}: static without an address`);
        break;
      }
      let cidr = addr;
      if (!addr.includes('/')) {
        const mask = opt(s, 'netmask');
        const prefix = mask
          ? /^\d+$/.test(mask)
            ? Number(mask)
            : netmaskToPrefix(mask)
          : family === 'inet'
            ? 24
            : 64;
        cidr = `${addr}/${prefix}`;
      }
      if (!isCidr(cidr)) {
        warnings.push(`${s.iface}: address ${addr} does not parse`);
        break;
      }
      ip.method = 'manual';
      ip.addresses.push(cidr);
      for (const extra of s.options.get('address')?.slice(0, -1) ?? [])
        if (isCidr(extra)) ip.addresses.unshift(extra);
      const gw = opt(s, 'gateway');
      if (gw && isIp(gw)) ip.gateway = gw;
      break;
    }
    case 'manual':
    case 'loopback':
      ip.method = family === 'inet' ? 'disabled' : 'ignore';
      break;
    default:
      warnings.push(`${s.iface}: method ${s.method} is not carried; balenaOS will try DHCP`);
  }
  ip.dns = (opt(s, 'dns-nameservers') ?? '').split(/\s+/).filter(isIp);
  ip.dnsSearch = (opt(s, 'dns-search') ?? opt(s, 'dns-domain') ?? '').split(/\s+/).filter(Boolean);
  if (ip.method === 'auto' && ip.dns.length) ip.ignoreAutoDns = true;
  for (const cmd of ['up', 'post-up', 'pre-up']) {
    if (s.options.has(cmd)) warnings.push(`${s.iface}: its ${cmd} commands are not carried`);
  }
  return ip;
}

function wifiSecurity(s: Stanza, name: string): WifiSecurity | string {
  const psk = opt(s, 'wpa-psk');
  const mgmt = opt(s, 'wpa-key-mgmt') ?? (psk ? 'WPA-PSK' : 'NONE');
  if (mgmt.includes('WPA-EAP'))
    return `${name}: 802.1x settings in interfaces are not carried (use wpa-conf)`;
  if (mgmt.includes('WPA-PSK') || mgmt.includes('SAE')) {
    if (!psk) return `${name}: wpa-psk is missing`;
    const quoted = psk.length >= 2 && psk.startsWith('"') && psk.endsWith('"') ? psk.slice(1, -1) : undefined;
    if (quoted !== undefined) return { kind: 'wpa-psk', psk: quoted };
    // ifupdown passes an unquoted value of 64 hex digits as a PSK, anything else as a passphrase
    return { kind: 'wpa-psk', psk: /^[0-9a-fA-F]{64}$/.test(psk) ? psk.toLowerCase() : psk };
  }
  const keys = [0, 1, 2, 3].map((i) => opt(s, `wpa-wep-key${i}`)?.replace(/^"(.*)"$/, '$1') ?? '');
  return keys.some(Boolean)
    ? { kind: 'wep', keys, txKeyIndex: Number(opt(s, 'wpa-wep-tx-keyidx') ?? 0) || 0 }
    : { kind: 'open' };
}

export function parseIfupdown(files: SourceFile[]): ParsedStack {
  const out: ParsedStack = { connections: [], notes: [], interfaceIp: [] };
  const all = files.flatMap(stanzas);
  const byIface = new Map<string, Stanza[]>();
  for (const s of all) byIface.set(s.iface, [...(byIface.get(s.iface) ?? []), s]);
  for (const [iface, list] of byIface) {
    if (iface === 'lo') continue;
    const v4 = list.find((s) => s.family === 'inet');
    const v6 = list.find((s) => s.family === 'inet6');
    const first = v4 ?? v6!;
    const source = `ifupdown ${first.file}`;
    const virtual = [
      'bridge_ports',
      'bridge-ports',
      'bond-slaves',
      'bond_slaves',
      'vlan-raw-device',
      'vlan_raw_device',
    ];
    if (virtual.some((k) => first.options.has(k))) {
      out.notes.push(`${first.file}: not carried: ${iface} is a bridge, bond or VLAN`);
      continue;
    }
    const warnings: string[] = [];
    const ipv4 = v4 ? stanzaIp(v4, warnings) : autoIp();
    const ipv6 = v6 ? stanzaIp(v6, warnings) : autoIp();
    const wireless =
      looksWireless(iface) || list.some((s) => [...s.options.keys()].some((k) => k.startsWith('wpa-')));
    if (!wireless) {
      out.connections.push({
        id: `${iface} (${ipv4.method === 'manual' ? 'static' : 'DHCP'})`,
        type: 'ethernet',
        source,
        interfaceName: iface,
        autoconnect: true,
        ipv4,
        ipv6,
        warnings,
      });
      continue;
    }
    const ssidRaw = v4 ? opt(v4, 'wpa-ssid') : v6 ? opt(v6, 'wpa-ssid') : undefined;
    if (!ssidRaw) {
      // the networks are in a wpa-conf file (or wpa_supplicant's own); this gives the addressing
      out.interfaceIp!.push({ interfaceName: iface, ipv4, ipv6, source });
      for (const w of warnings) out.notes.push(`${first.file}: ${w}`);
      continue;
    }
    const ssid = wpaBytes(ssidRaw) ?? Buffer.from(ssidRaw);
    const name = ssidText(ssid);
    const security = wifiSecurity(v4 ?? v6!, name);
    if (typeof security === 'string') {
      out.notes.push(`${first.file}: not carried: ${security}`);
      continue;
    }
    out.connections.push({
      id: name,
      type: 'wifi',
      source,
      interfaceName: iface,
      autoconnect: true,
      wifi: { ssid, hidden: opt(v4 ?? v6!, 'wpa-scan-ssid') === '1', security },
      ipv4,
      ipv6,
      warnings,
    });
  }
  return out;
}
