// ConnMan: the services it remembers (/var/lib/connman/<service>/settings, one group named
// after the service: wifi_<mac>_<ssid hex>_managed_<security>, ethernet_<mac>_cable) and the
// provisioning files an administrator writes (/var/lib/connman/*.config, [service_*] groups).
import { type IniSection, lastValue, parseIni } from '../ini.ts';
import {
  autoIp,
  IPV4,
  type IpSettings,
  isIp,
  type NetConnection,
  netmaskToPrefix,
  type ParsedStack,
  type SourceFile,
  ssidText,
  type WifiSecurity,
} from '../model.ts';

function list(v: string | undefined): string[] {
  return (v ?? '')
    .split(/[;,]/)
    .map((x) => x.trim())
    .filter(Boolean);
}

/** IPv4 from a settings group: IPv4.method dhcp|manual|off, local_address, netmask_prefixlen, gateway. */
function settingsIpv4(g: IniSection): IpSettings {
  const ip = autoIp();
  const method = lastValue(g, 'IPv4.method');
  if (method === 'off') ip.method = 'disabled';
  if (method === 'manual' || method === 'fixed') {
    const addr = lastValue(g, 'IPv4.local_address');
    const prefix = lastValue(g, 'IPv4.netmask_prefixlen');
    if (addr && IPV4.test(addr) && prefix && /^\d+$/.test(prefix)) {
      ip.method = 'manual';
      ip.addresses.push(`${addr}/${prefix}`);
      const gw = lastValue(g, 'IPv4.gateway');
      if (gw && IPV4.test(gw)) ip.gateway = gw;
    }
  }
  ip.dns = list(lastValue(g, 'Nameservers')).filter(isIp);
  ip.dnsSearch = list(lastValue(g, 'Domains'));
  if (ip.method === 'auto' && ip.dns.length) ip.ignoreAutoDns = true;
  return ip;
}

function ipv6Of(method: string | undefined): IpSettings {
  const ip = autoIp();
  if (method === 'off') ip.method = 'ignore';
  return ip;
}

/** A remembered service (…/settings). */
function settingsService(g: IniSection, path: string): NetConnection | string {
  const m =
    /^(wifi|ethernet)_([0-9a-f]{12})_(?:([0-9a-f]+)_(managed|adhoc)_(none|wep|psk|ieee8021x|wps|sae)|cable)$/.exec(
      g.name,
    );
  if (!m) return `${g.name}: not a Wi-Fi or Ethernet service`;
  const mac = m[2]!.replace(/(..)(?!$)/g, '$1:');
  const base = {
    source: `connman ${path}`,
    autoconnect: lastValue(g, 'AutoConnect') !== 'false',
    ipv4: settingsIpv4(g),
    ipv6: ipv6Of(lastValue(g, 'IPv6.method')),
    warnings: [] as string[],
  };
  if (m[1] === 'ethernet') return { ...base, id: `ethernet ${mac}`, type: 'ethernet', macAddress: mac };
  const ssid = Buffer.from(lastValue(g, 'SSID') ?? m[3]!, 'hex');
  const name = lastValue(g, 'Name') ?? ssidText(ssid);
  if (m[4] === 'adhoc') return `${name}: an ad-hoc network`;
  const pass = lastValue(g, 'Passphrase');
  let security: WifiSecurity;
  switch (m[5]) {
    case 'none':
      security = { kind: 'open' };
      break;
    case 'psk':
    case 'wps':
    case 'sae':
      if (!pass) return `${name}: no passphrase was saved for it`;
      security = { kind: m[5] === 'sae' ? 'sae' : 'wpa-psk', psk: pass };
      break;
    case 'wep':
      if (!pass) return `${name}: no WEP key was saved for it`;
      security = { kind: 'wep', keys: [pass, '', '', ''], txKeyIndex: 0 };
      break;
    default:
      return `${name}: 802.1x services keep their settings in a provisioning file, not here`;
  }
  return {
    ...base,
    id: name,
    type: 'wifi',
    wifi: { ssid, hidden: lastValue(g, 'Hidden') === 'true', security },
  };
}

/** A provisioning [service_*] group (*.config). */
function provisionedService(g: IniSection, path: string): NetConnection | string {
  const type = lastValue(g, 'Type');
  const name = lastValue(g, 'Name');
  const ipv4 = autoIp();
  const v4 = lastValue(g, 'IPv4');
  if (v4 === 'off') ipv4.method = 'disabled';
  else if (v4 && v4 !== 'dhcp') {
    const [addr, mask, gw] = v4.split('/');
    const prefix = mask && (/^\d+$/.test(mask) ? Number(mask) : netmaskToPrefix(mask));
    if (!addr || !IPV4.test(addr) || prefix === undefined || prefix === '')
      return `${g.name}: IPv4 = ${v4} is not address/netmask/gateway`;
    ipv4.method = 'manual';
    ipv4.addresses.push(`${addr}/${prefix}`);
    if (gw && IPV4.test(gw)) ipv4.gateway = gw;
  }
  ipv4.dns = list(lastValue(g, 'Nameservers')).filter(isIp);
  ipv4.dnsSearch = list(lastValue(g, 'SearchDomains') ?? lastValue(g, 'Domains'));
  if (ipv4.method === 'auto' && ipv4.dns.length) ipv4.ignoreAutoDns = true;
  const macRaw = lastValue(g, 'MAC');
  const mac =
    macRaw && /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(macRaw) ? macRaw.toLowerCase() : undefined;
  const base = {
    source: `connman ${path}`,
    autoconnect: true,
    ipv4,
    ipv6: ipv6Of(lastValue(g, 'IPv6')),
    warnings: [] as string[],
    ...(mac ? { macAddress: mac } : {}),
  };
  if (type === 'ethernet') return { ...base, id: name ?? `ethernet ${g.name.slice(8)}`, type: 'ethernet' };
  if (type !== 'wifi') return `${g.name}: Type = ${type ?? '(none)'} is not carried`;
  const ssidHex = lastValue(g, 'SSID');
  const ssid =
    ssidHex && /^([0-9a-fA-F]{2})+$/.test(ssidHex)
      ? Buffer.from(ssidHex, 'hex')
      : name
        ? Buffer.from(name)
        : undefined;
  if (!ssid) return `${g.name}: neither Name nor SSID`;
  const label = name ?? ssidText(ssid);
  const pass = lastValue(g, 'Passphrase');
  const eap = lastValue(g, 'EAP');
  const sec = lastValue(g, 'Security') ?? (eap ? 'ieee8021x' : pass ? 'psk' : 'none');
  let security: WifiSecurity;
  if (sec === 'ieee8021x' || eap) {
    if (!eap || eap === 'tls') return `${label}: 802.1x with ${eap ?? 'no'} EAP method is not carried`;
    const identity = lastValue(g, 'Identity');
    const anonymous = lastValue(g, 'AnonymousIdentity');
    const phase2 = lastValue(g, 'Phase2')?.toLowerCase().replace(/^eap-/, '');
    security = {
      kind: 'wpa-eap',
      eap: {
        methods: [eap.toLowerCase()],
        ...(identity !== undefined ? { identity } : {}),
        ...(anonymous !== undefined ? { anonymousIdentity: anonymous } : {}),
        ...(pass !== undefined ? { password: pass } : {}),
        ...(phase2 ? { phase2 } : {}),
      },
    };
  } else if (sec === 'psk') {
    if (!pass) return `${label}: Security = psk without a Passphrase`;
    security = { kind: 'wpa-psk', psk: pass };
  } else if (sec === 'wep') {
    if (!pass) return `${label}: Security = wep without a Passphrase`;
    security = { kind: 'wep', keys: [pass, '', '', ''], txKeyIndex: 0 };
  } else security = { kind: 'open' };
  return {
    ...base,
    id: label,
    type: 'wifi',
    wifi: { ssid, hidden: lastValue(g, 'Hidden') === 'true', security },
  };
}

export function parseConnman(files: SourceFile[]): ParsedStack {
  const out: ParsedStack = { connections: [], notes: [] };
  for (const f of files) {
    const doc = parseIni(f.data.toString('utf8'), { unescape: true });
    const provisioning = f.path.endsWith('.config');
    for (const g of doc.sections) {
      if (provisioning && !g.name.startsWith('service_')) continue;
      const c = provisioning ? provisionedService(g, f.path) : settingsService(g, f.path);
      if (typeof c === 'string') out.notes.push(`${f.path}: not carried: ${c}`);
      else out.connections.push(c);
    }
  }
  return out;
}
