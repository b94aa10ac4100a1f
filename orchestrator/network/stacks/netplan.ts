// netplan (Ubuntu): /etc/netplan/*.yaml, `network: { ethernets, wifis }` with dhcp4/dhcp6,
// addresses, routes (or gateway4/gateway6), nameservers, match.macaddress, and for Wi-Fi
// access-points with a password or an auth block. Later files override earlier ones (netplan
// merges them in lexical order); here the later definition of an interface wins.
import { parse as parseYaml } from 'yaml';
import {
  autoIp,
  type IpSettings,
  isCidr,
  isIp,
  type ParsedStack,
  type SourceFile,
  type WifiSecurity,
} from '../model.ts';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const truthy = (v: unknown) => v === true || v === 'true' || v === 'yes' || v === 'on';
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

function addressesOf(v: unknown): string[] {
  if (Array.isArray(v))
    return v.map((a) => (isObj(a) ? Object.keys(a)[0] : String(a))).filter((a): a is string => !!a);
  return isObj(v) ? Object.keys(v) : [];
}

function ipOf(def: Obj, family: 4 | 6, warnings: string[], name: string): IpSettings {
  const ip = autoIp();
  const dhcp = truthy(def[family === 4 ? 'dhcp4' : 'dhcp6']);
  const addrs = addressesOf(def.addresses).filter((a) => (family === 4 ? !a.includes(':') : a.includes(':')));
  for (const a of addrs) {
    if (isCidr(a)) ip.addresses.push(a);
    else warnings.push(`${name}: address ${a} does not parse`);
  }
  // netplan configures no IPv4 without dhcp4 or addresses; IPv6 router advertisements still apply
  if (ip.addresses.length) ip.method = 'manual';
  else if (!dhcp && family === 4) ip.method = 'disabled';
  const gw = def[family === 4 ? 'gateway4' : 'gateway6'];
  if (typeof gw === 'string' && isIp(gw)) ip.gateway = gw;
  for (const r of Array.isArray(def.routes) ? def.routes : []) {
    if (!isObj(r)) continue;
    const to = String(r.to ?? '');
    const via = typeof r.via === 'string' ? r.via : undefined;
    const v6 = (via ?? to).includes(':');
    if ((family === 6) !== v6) continue;
    if ((to === 'default' || to === '0.0.0.0/0' || to === '::/0') && via && isIp(via)) {
      ip.gateway = via;
    } else if (isCidr(to)) {
      ip.routes.push({
        to,
        ...(via && isIp(via) ? { via } : {}),
        ...(typeof r.metric === 'number' ? { metric: r.metric } : {}),
      });
    }
  }
  const ns = isObj(def.nameservers) ? def.nameservers : {};
  ip.dns = strings(ns.addresses).filter(
    (a) => isIp(a) && (family === 4 ? !a.includes(':') : a.includes(':')),
  );
  if (family === 4) ip.dnsSearch = strings(ns.search);
  if (ip.method === 'auto' && ip.dns.length && def[family === 4 ? 'dhcp4-overrides' : 'dhcp6-overrides']) {
    const o = def[family === 4 ? 'dhcp4-overrides' : 'dhcp6-overrides'];
    if (isObj(o) && o['use-dns'] === false) ip.ignoreAutoDns = true;
  }
  return ip;
}

function security(ap: Obj, ssid: string): WifiSecurity | string {
  const auth = isObj(ap.auth) ? ap.auth : undefined;
  const password =
    typeof ap.password === 'string'
      ? ap.password
      : typeof auth?.password === 'string'
        ? auth.password
        : undefined;
  const mgmt = String(auth?.['key-management'] ?? (password ? 'psk' : 'none'));
  if (mgmt === 'none') return { kind: 'open' };
  if (mgmt === 'psk' || mgmt === 'sae') {
    if (!password) return `${ssid}: ${mgmt} without a password`;
    return { kind: mgmt === 'sae' ? 'sae' : 'wpa-psk', psk: password };
  }
  if (mgmt === 'eap' || mgmt === '802.1x') {
    const method = String(auth?.method ?? 'peap').toLowerCase();
    if (method === 'tls')
      return `${ssid}: 802.1x with EAP-TLS needs client certificates, which are not carried`;
    return {
      kind: 'wpa-eap',
      eap: {
        methods: [method],
        ...(typeof auth?.identity === 'string' ? { identity: auth.identity } : {}),
        ...(typeof auth?.['anonymous-identity'] === 'string'
          ? { anonymousIdentity: auth['anonymous-identity'] }
          : {}),
        ...(password !== undefined ? { password } : {}),
        ...(typeof auth?.['phase2-auth'] === 'string' ? { phase2: auth['phase2-auth'].toLowerCase() } : {}),
      },
    };
  }
  return `${ssid}: key-management ${mgmt} is not supported`;
}

export function parseNetplan(files: SourceFile[]): ParsedStack {
  const out: ParsedStack = { connections: [], notes: [] };
  const ethernets = new Map<string, { def: Obj; file: string }>();
  const wifis = new Map<string, { def: Obj; file: string }>();
  for (const f of [...files].sort((a, b) => (a.path.split('/').pop()! < b.path.split('/').pop()! ? -1 : 1))) {
    let doc: unknown;
    try {
      doc = parseYaml(f.data.toString('utf8'));
    } catch {
      out.notes.push(`${f.path}: not carried: not valid YAML`);
      continue;
    }
    const net = isObj(doc) && isObj(doc.network) ? doc.network : undefined;
    if (!net) continue;
    for (const [kind, into] of [
      ['ethernets', ethernets],
      ['wifis', wifis],
    ] as const) {
      const defs = net[kind];
      if (!isObj(defs)) continue;
      for (const [name, def] of Object.entries(defs)) if (isObj(def)) into.set(name, { def, file: f.path });
    }
    for (const kind of ['bonds', 'bridges', 'vlans', 'tunnels', 'modems', 'vrfs']) {
      if (isObj(net[kind]))
        out.notes.push(`${f.path}: not carried: ${kind} (${Object.keys(net[kind] as Obj).join(', ')})`);
    }
  }
  for (const [name, { def, file }] of ethernets) {
    const warnings: string[] = [];
    const match = isObj(def.match) ? def.match : {};
    const mac = typeof match.macaddress === 'string' ? match.macaddress.toLowerCase() : undefined;
    const iface =
      typeof def['set-name'] === 'string'
        ? def['set-name']
        : typeof match.name === 'string' && !/[*?[]/.test(match.name)
          ? match.name
          : isObj(def.match)
            ? undefined
            : name;
    const ipv4 = ipOf(def, 4, warnings, name);
    if (ipv4.method === 'disabled') {
      out.notes.push(`${file}: not carried: ${name} has no IPv4 configuration (no dhcp4, no addresses)`);
      continue;
    }
    out.connections.push({
      id: `${iface ?? name} (${ipv4.method === 'manual' ? 'static' : 'DHCP'})`,
      type: 'ethernet',
      source: `netplan ${file}`,
      ...(iface ? { interfaceName: iface } : {}),
      ...(mac ? { macAddress: mac } : {}),
      autoconnect: true,
      ipv4,
      ipv6: ipOf(def, 6, warnings, name),
      warnings,
    });
  }
  for (const [name, { def, file }] of wifis) {
    const aps = isObj(def['access-points']) ? def['access-points'] : {};
    for (const [ssid, apRaw] of Object.entries(aps)) {
      const ap = isObj(apRaw) ? apRaw : {};
      if (ap.mode && ap.mode !== 'infrastructure') {
        out.notes.push(`${file}: not carried: ${ssid} is an ${String(ap.mode)} network`);
        continue;
      }
      const sec = security(ap, ssid);
      if (typeof sec === 'string') {
        out.notes.push(`${file}: not carried: ${sec}`);
        continue;
      }
      const warnings: string[] = [];
      out.connections.push({
        id: ssid,
        type: 'wifi',
        source: `netplan ${file}`,
        interfaceName: name,
        autoconnect: true,
        wifi: { ssid: Buffer.from(ssid, 'utf8'), hidden: truthy(ap.hidden), security: sec },
        ipv4: ipOf(def, 4, warnings, name),
        ipv6: ipOf(def, 6, warnings, name),
        warnings,
      });
    }
  }
  return out;
}
