// NetworkManager keyfiles: written from a NetConnection, and checked (ours and the ones the
// operator supplies) before they are uploaded. balenaOS copies resin-boot/system-connections/*
// into NetworkManager's configuration at boot, so a file NetworkManager cannot read would
// leave the device without its network: a bad file is refused on the laptop.
import { createHash } from 'node:crypto';
import { allValues, type IniDocument, type IniSection, parseIni, sectionsNamed } from './ini.ts';
import { type IpSettings, isCidr, isIp, type NetConnection } from './model.ts';

/** Escapes a string value the way GKeyFile reads it back. */
function esc(v: string): string {
  return v
    .replace(/\\/g, '\\\\')
    .replace(/\n/g, '\\n')
    .replace(/\t/g, '\\t')
    .replace(/\r/g, '\\r')
    .replace(/^ /, '\\s');
}

/** A printable SSID as text; anything else as NetworkManager's list of byte values. */
export function keyfileSsid(ssid: Buffer): string {
  const text = ssid.toString('utf8');
  const printable =
    Buffer.from(text, 'utf8').equals(ssid) &&
    /^[^\x00-\x1f\x7f;\\]+$/.test(text) &&
    text.trim() === text &&
    !/^[0-9;]+$/.test(text);
  return printable ? text : `${[...ssid].join(';')};`;
}

/** A UUID derived from NAME, so the same connection always gets the same file. */
export function stableUuid(name: string): string {
  const h = createHash('sha256').update(`balena-migrate network ${name}`).digest('hex');
  const variant = ((Number.parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function ipLines(ip: IpSettings, family: 4 | 6): string[] {
  const out = [`method=${ip.method}`];
  ip.addresses.forEach((a, i) => {
    out.push(`address${i + 1}=${a}${i === 0 && ip.gateway ? `,${ip.gateway}` : ''}`);
  });
  if (ip.dns.length) out.push(`dns=${ip.dns.join(';')};`);
  if (ip.dnsSearch.length) out.push(`dns-search=${ip.dnsSearch.map(esc).join(';')};`);
  if (ip.ignoreAutoDns) out.push('ignore-auto-dns=true');
  ip.routes.forEach((r, i) => {
    out.push(
      `route${i + 1}=${r.to}${r.via || r.metric !== undefined ? `,${r.via ?? (family === 4 ? '0.0.0.0' : '::')}` : ''}${r.metric !== undefined ? `,${r.metric}` : ''}`,
    );
  });
  if (family === 6 && ip.method !== 'ignore' && ip.method !== 'disabled')
    out.push('addr-gen-mode=stable-privacy');
  return out;
}

/** The keyfile text of a connection (sections in the order NetworkManager writes them). */
export function renderKeyfile(c: NetConnection): string {
  const key = c.wifi
    ? `wifi:${c.wifi.ssid.toString('hex')}`
    : `ethernet:${c.macAddress ?? c.interfaceName ?? c.id}`;
  const sections: string[][] = [];
  const connection = [`id=${esc(c.id)}`, `uuid=${stableUuid(key)}`, `type=${c.type}`];
  if (!c.autoconnect) connection.push('autoconnect=false');
  if (c.priority !== undefined && c.priority !== 0) connection.push(`autoconnect-priority=${c.priority}`);
  if (!c.macAddress && c.interfaceName && c.type === 'ethernet' && c.ipv4.method === 'manual') {
    connection.push(`interface-name=${c.interfaceName}`);
  }
  sections.push(['[connection]', ...connection]);
  if (c.type === 'ethernet') {
    sections.push(['[ethernet]', ...(c.macAddress ? [`mac-address=${c.macAddress.toUpperCase()}`] : [])]);
  }
  if (c.wifi) {
    const wifi = ['[wifi]', 'mode=infrastructure', `ssid=${keyfileSsid(c.wifi.ssid)}`];
    if (c.wifi.hidden) wifi.push('hidden=true');
    sections.push(wifi);
    const s = c.wifi.security;
    if (s.kind === 'wpa-psk' || s.kind === 'sae') {
      sections.push(['[wifi-security]', 'auth-alg=open', `key-mgmt=${s.kind}`, `psk=${esc(s.psk)}`]);
    } else if (s.kind === 'wep') {
      const keys = s.keys.map((k, i) => (k ? `wep-key${i}=${esc(k)}` : '')).filter(Boolean);
      // type 1: a key (hex or 5/13 ASCII characters), as wpa_supplicant takes it
      sections.push([
        '[wifi-security]',
        'auth-alg=open',
        'key-mgmt=none',
        ...keys,
        'wep-key-type=1',
        `wep-tx-keyidx=${s.txKeyIndex}`,
      ]);
    } else if (s.kind === 'wpa-eap') {
      sections.push(['[wifi-security]', 'auth-alg=open', 'key-mgmt=wpa-eap']);
      const eap = ['[802-1x]', `eap=${s.eap.methods.join(';')};`];
      if (s.eap.identity !== undefined) eap.push(`identity=${esc(s.eap.identity)}`);
      if (s.eap.anonymousIdentity !== undefined)
        eap.push(`anonymous-identity=${esc(s.eap.anonymousIdentity)}`);
      if (s.eap.password !== undefined) eap.push(`password=${esc(s.eap.password)}`);
      if (s.eap.phase2) eap.push(`phase2-auth=${s.eap.phase2}`);
      sections.push(eap);
    }
  }
  sections.push(['[ipv4]', ...ipLines(c.ipv4, 4)]);
  sections.push(['[ipv6]', ...ipLines(c.ipv6, 6)]);
  return `${sections.map((s) => s.join('\n')).join('\n\n')}\n`;
}

// ---- checking a keyfile ------------------------------------------------------------------------

const TYPES: Record<string, string> = {
  wifi: 'wifi',
  '802-11-wireless': 'wifi',
  ethernet: 'ethernet',
  '802-3-ethernet': 'ethernet',
};
const OTHER_TYPES = [
  'vlan',
  'bond',
  'bridge',
  'bond-slave',
  'bridge-slave',
  'gsm',
  'cdma',
  'wireguard',
  'vpn',
  'pppoe',
  'infiniband',
  'loopback',
  'dummy',
  'tun',
  'wifi-p2p',
  'bluetooth',
  'olpc-mesh',
  'team',
  'macvlan',
  'ip-tunnel',
  'veth',
];
const KEY_MGMT = ['none', 'ieee8021x', 'wpa-psk', 'sae', 'wpa-eap', 'owe', 'wpa-eap-suite-b-192'];
const IPV4_METHODS = ['auto', 'manual', 'disabled', 'link-local', 'shared'];
const IPV6_METHODS = ['auto', 'dhcp', 'manual', 'ignore', 'disabled', 'link-local', 'shared'];
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** A checked keyfile: what it is for (for notes), or the problems found. */
export interface KeyfileCheck {
  problems: string[];
  /** connection.id */
  id?: string;
  /** wifi or ethernet (other types are carried when valid, e.g. a vlan) */
  type?: string;
  ssid?: string;
  /** ipv4 method */
  ipv4Method?: string;
}

function one(doc: IniDocument, problems: string[], ...names: string[]): IniSection | undefined {
  const found = sectionsNamed(doc, ...names);
  if (found.length > 1) problems.push(`[${names[0]}] appears ${found.length} times`);
  return found[0];
}

function get(section: IniSection | undefined, key: string): string | undefined {
  if (!section) return undefined;
  const values = allValues(section, key);
  return values.at(-1);
}

/**
 * Checks TEXT as a NetworkManager keyfile: INI syntax, one value per key, the keys a
 * connection needs for its type, addresses that parse. Problems never quote a secret.
 */
export function checkKeyfile(text: string): KeyfileCheck {
  const problems: string[] = [];
  if (text.includes('\0')) return { problems: ['it holds NUL bytes: not a text file'] };
  const doc = parseIni(text, { unescape: true });
  for (const n of doc.badLines) problems.push(`line ${n} is neither [section], key=value nor a # comment`);
  for (const n of doc.orphanLines) problems.push(`line ${n} comes before the first [section]`);
  for (const s of doc.sections) {
    const seen = new Set<string>();
    for (const e of s.entries) {
      if (seen.has(e.key)) problems.push(`[${s.name}] sets ${e.key} twice (line ${e.line})`);
      seen.add(e.key);
    }
  }
  const connection = one(doc, problems, 'connection');
  if (!connection) return { problems: [...problems, 'there is no [connection] section'] };
  const id = get(connection, 'id');
  const rawType = get(connection, 'type');
  const uuid = get(connection, 'uuid');
  if (!id) problems.push('[connection] has no id');
  if (!rawType) problems.push('[connection] has no type');
  if (uuid !== undefined && !UUID.test(uuid)) problems.push('[connection] uuid is not a UUID');
  const type = rawType ? (TYPES[rawType] ?? rawType) : undefined;
  if (rawType && !TYPES[rawType] && !OTHER_TYPES.includes(rawType)) {
    problems.push(`[connection] type ${rawType} is not a NetworkManager connection type`);
  }
  const perms = get(connection, 'permissions');
  if (perms) problems.push('[connection] permissions limit it to users balenaOS does not have');
  const result: KeyfileCheck = { problems, id, type };
  if (type === 'wifi') {
    const wifi = one(doc, problems, 'wifi', '802-11-wireless');
    const ssid = get(wifi, 'ssid');
    if (!ssid) problems.push('[wifi] has no ssid');
    else
      result.ssid = /^(\d+;)+$/.test(ssid)
        ? Buffer.from(ssid.split(';').filter(Boolean).map(Number)).toString('utf8')
        : ssid;
    const mode = get(wifi, 'mode');
    if (mode && !['infrastructure', 'adhoc', 'ap', 'mesh'].includes(mode))
      problems.push(`[wifi] mode ${mode} is unknown`);
    const security = one(doc, problems, 'wifi-security', '802-11-wireless-security');
    if (security) {
      const mgmt = get(security, 'key-mgmt');
      if (!mgmt || !KEY_MGMT.includes(mgmt))
        problems.push(`[wifi-security] key-mgmt must be one of ${KEY_MGMT.join(', ')}`);
      const flags = get(security, 'psk-flags');
      if ((mgmt === 'wpa-psk' || mgmt === 'sae') && !get(security, 'psk')) {
        problems.push(
          flags && flags !== '0'
            ? '[wifi-security] keeps its psk in a secret agent (psk-flags), which balenaOS does not have: put the psk in the file'
            : '[wifi-security] has no psk',
        );
      }
      const psk = get(security, 'psk');
      if (
        psk !== undefined &&
        mgmt === 'wpa-psk' &&
        !(/^[0-9a-fA-F]{64}$/.test(psk) || (psk.length >= 8 && psk.length <= 63))
      ) {
        problems.push('[wifi-security] psk must be 8-63 characters or 64 hex digits');
      }
      if (mgmt === 'wpa-eap' || mgmt === 'ieee8021x') {
        const eap = one(doc, problems, '802-1x');
        if (!get(eap, 'eap')) problems.push('[802-1x] has no eap method');
        for (const k of ['ca-cert', 'client-cert', 'private-key', 'phase2-ca-cert']) {
          const v = get(eap, k);
          if (v && !v.startsWith('data:'))
            problems.push(`[802-1x] ${k} names a file on the old OS, which balenaOS will not have`);
        }
      }
    }
  }
  for (const [name, methods] of [
    ['ipv4', IPV4_METHODS],
    ['ipv6', IPV6_METHODS],
  ] as const) {
    const ip = one(doc, problems, name);
    if (!ip) continue;
    const method = get(ip, 'method');
    if (method && !(methods as readonly string[]).includes(method))
      problems.push(`[${name}] method ${method} is unknown`);
    if (name === 'ipv4') result.ipv4Method = method;
    const addresses = ip.entries.filter((e) => /^address(es)?\d*$/.test(e.key));
    if (method === 'manual' && addresses.length === 0)
      problems.push(`[${name}] method manual needs an address1`);
    for (const a of addresses) {
      for (const item of a.value.split(';').filter(Boolean)) {
        const [cidr, gw] = item.split(',');
        if (!cidr || !isCidr(cidr.trim())) problems.push(`[${name}] ${a.key} is not an address/prefix`);
        if (gw && !isIp(gw.trim())) problems.push(`[${name}] ${a.key} has a gateway that is not an address`);
      }
    }
    const gateway = get(ip, 'gateway');
    if (gateway && !isIp(gateway)) problems.push(`[${name}] gateway is not an address`);
    for (const d of (get(ip, 'dns') ?? '').split(';').filter(Boolean)) {
      if (!isIp(d.trim())) problems.push(`[${name}] dns has ${d.trim()}, which is not an address`);
    }
  }
  return result;
}
