// NetworkManager's own keyfiles (/etc/NetworkManager/system-connections/*.nmconnection, and the
// older files without a suffix). They are read into the common model rather than copied, so
// what does not hold on balenaOS (interface names, user permissions, certificate paths) is
// dropped or reported, and every file written is one of ours.
import { type IniDocument, type IniSection, lastValue, parseIni, sectionsNamed } from '../ini.ts';
import {
  autoIp,
  type IpSettings,
  isCidr,
  isIp,
  type NetConnection,
  type ParsedStack,
  type SourceFile,
  type WifiSecurity,
} from '../model.ts';

function section(doc: IniDocument, ...names: string[]): IniSection | undefined {
  return sectionsNamed(doc, ...names)[0];
}

function ssidBytes(v: string): Buffer {
  return /^(\d{1,3};)+$/.test(v)
    ? Buffer.from(v.split(';').filter(Boolean).map(Number))
    : Buffer.from(v, 'utf8');
}

function list(v: string | undefined): string[] {
  return (v ?? '')
    .split(/[;,]/)
    .map((x) => x.trim())
    .filter(Boolean);
}

/** [ipv4]/[ipv6] of a keyfile: addresses (address1=, addresses=), gateway, dns, routes. */
export function nmIp(sec: IniSection | undefined, family: 4 | 6): IpSettings {
  const ip = autoIp();
  if (!sec) return ip;
  ip.method = lastValue(sec, 'method') ?? 'auto';
  for (const e of sec.entries.filter((x) => /^address(es)?\d*$/.test(x.key))) {
    for (const item of e.value.split(';').filter(Boolean)) {
      const [cidr, gw] = item.split(',').map((s) => s.trim());
      if (cidr && isCidr(cidr)) ip.addresses.push(cidr);
      if (gw && isIp(gw) && !ip.gateway) ip.gateway = gw;
    }
  }
  const gw = lastValue(sec, 'gateway');
  if (gw && isIp(gw)) ip.gateway = gw;
  ip.dns = list(lastValue(sec, 'dns')).filter(isIp);
  ip.dnsSearch = list(lastValue(sec, 'dns-search'));
  if (lastValue(sec, 'ignore-auto-dns') === 'true') ip.ignoreAutoDns = true;
  for (const e of sec.entries.filter((x) => /^routes?\d*$/.test(x.key))) {
    const [to, via, metric] = e.value.split(',').map((s) => s.trim());
    if (to && isCidr(to)) {
      const zero = family === 4 ? '0.0.0.0' : '::';
      ip.routes.push({
        to,
        ...(via && via !== zero && isIp(via) ? { via } : {}),
        ...(metric && /^\d+$/.test(metric) ? { metric: Number(metric) } : {}),
      });
    }
  }
  return ip;
}

function nmSecurity(doc: IniDocument, id: string): WifiSecurity | string {
  const sec = section(doc, 'wifi-security', '802-11-wireless-security');
  if (!sec) return { kind: 'open' };
  const mgmt = lastValue(sec, 'key-mgmt') ?? 'none';
  const flags = lastValue(sec, 'psk-flags');
  if (mgmt === 'wpa-psk' || mgmt === 'sae') {
    const psk = lastValue(sec, 'psk');
    if (!psk) {
      return flags && flags !== '0'
        ? `${id}: its key is kept by a secret agent (psk-flags=${flags}), not in the file`
        : `${id}: ${mgmt} without a psk`;
    }
    return { kind: mgmt, psk };
  }
  if (mgmt === 'none') {
    const keys = [0, 1, 2, 3].map((i) => lastValue(sec, `wep-key${i}`) ?? '');
    if (!keys.some(Boolean)) return { kind: 'open' };
    if (lastValue(sec, 'wep-key-type') === '2')
      return `${id}: a WEP passphrase (wep-key-type=2) is not carried`;
    return { kind: 'wep', keys, txKeyIndex: Number(lastValue(sec, 'wep-tx-keyidx') ?? 0) || 0 };
  }
  if (mgmt === 'wpa-eap') {
    const eap = section(doc, '802-1x');
    const methods = list(eap ? lastValue(eap, 'eap') : undefined);
    if (!eap || methods.length === 0) return `${id}: wpa-eap without an [802-1x] eap method`;
    if (methods.includes('tls'))
      return `${id}: 802.1x with EAP-TLS needs client certificates, which are not carried`;
    const password = lastValue(eap, 'password');
    if (!password && lastValue(eap, 'password-flags') && lastValue(eap, 'password-flags') !== '0') {
      return `${id}: its 802.1x password is kept by a secret agent, not in the file`;
    }
    const identity = lastValue(eap, 'identity');
    const anonymous = lastValue(eap, 'anonymous-identity');
    const phase2 = lastValue(eap, 'phase2-auth');
    return {
      kind: 'wpa-eap',
      eap: {
        methods,
        ...(identity !== undefined ? { identity } : {}),
        ...(anonymous !== undefined ? { anonymousIdentity: anonymous } : {}),
        ...(password !== undefined ? { password } : {}),
        ...(phase2 ? { phase2 } : {}),
      },
    };
  }
  return `${id}: key-mgmt ${mgmt} is not supported`;
}

/** One keyfile into the model; a reason when it is not a Wi-Fi or Ethernet connection we carry. */
export function nmConnection(file: SourceFile): NetConnection | string {
  const doc = parseIni(file.data.toString('utf8'), { unescape: true });
  const conn = section(doc, 'connection');
  if (!conn) return 'no [connection] section';
  const id =
    lastValue(conn, 'id') ??
    file.path
      .split('/')
      .pop()!
      .replace(/\.nmconnection$/, '');
  const type = lastValue(conn, 'type');
  const kind =
    type === 'wifi' || type === '802-11-wireless'
      ? 'wifi'
      : type === 'ethernet' || type === '802-3-ethernet'
        ? 'ethernet'
        : null;
  if (!kind) return `${id}: a ${type ?? 'typeless'} connection (only Wi-Fi and Ethernet are carried)`;
  const warnings: string[] = [];
  if (lastValue(conn, 'permissions'))
    warnings.push(`${id}: the user permissions are dropped (balenaOS has no such users)`);
  const priority = Number(lastValue(conn, 'autoconnect-priority') ?? 0);
  const base = {
    id,
    type: kind,
    source: `NetworkManager ${file.path}`,
    autoconnect: lastValue(conn, 'autoconnect') !== 'false',
    ...(Number.isInteger(priority) && priority !== 0 ? { priority } : {}),
    ipv4: nmIp(section(doc, 'ipv4'), 4),
    ipv6: nmIp(section(doc, 'ipv6'), 6),
    warnings,
  };
  const iface = lastValue(conn, 'interface-name');
  if (kind === 'ethernet') {
    const eth = section(doc, 'ethernet', '802-3-ethernet');
    const mac = eth ? lastValue(eth, 'mac-address') : undefined;
    return {
      ...base,
      type: 'ethernet',
      ...(iface ? { interfaceName: iface } : {}),
      ...(mac && /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac) ? { macAddress: mac.toLowerCase() } : {}),
    };
  }
  const wifi = section(doc, 'wifi', '802-11-wireless');
  const ssid = wifi ? lastValue(wifi, 'ssid') : undefined;
  if (!wifi || !ssid) return `${id}: a Wi-Fi connection without an ssid`;
  const mode = lastValue(wifi, 'mode');
  if (mode && mode !== 'infrastructure') return `${id}: a Wi-Fi ${mode} network (a hotspot is not carried)`;
  const security = nmSecurity(doc, id);
  if (typeof security === 'string') return security;
  return {
    ...base,
    type: 'wifi',
    ...(iface ? { interfaceName: iface } : {}),
    wifi: { ssid: ssidBytes(ssid), hidden: lastValue(wifi, 'hidden') === 'true', security },
  };
}

export function parseNetworkManager(files: SourceFile[]): ParsedStack {
  const out: ParsedStack = { connections: [], notes: [] };
  for (const f of files) {
    const c = nmConnection(f);
    if (typeof c === 'string') out.notes.push(`${f.path}: not carried: ${c}`);
    else out.connections.push(c);
  }
  return out;
}
