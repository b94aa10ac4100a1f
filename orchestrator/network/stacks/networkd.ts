// systemd-networkd (/etc/systemd/network/*.network): [Match] Name=/MACAddress=/Type=,
// [Network] DHCP=, Address=, Gateway=, DNS=, Domains=, and [Address]/[Route] sections. Wi-Fi
// credentials live in wpa_supplicant-IFACE.conf; a .network for a Wi-Fi interface gives the
// addressing for those networks.
import { allValues, type IniSection, lastValue, parseIni, sectionsNamed } from '../ini.ts';
import {
  autoIp,
  type IpSettings,
  isCidr,
  isIp,
  looksWireless,
  type ParsedStack,
  type SourceFile,
} from '../model.ts';

const words = (v: string[]) => v.flatMap((x) => x.split(/\s+/)).filter(Boolean);

export function parseNetworkd(files: SourceFile[]): ParsedStack {
  const out: ParsedStack = { connections: [], notes: [], interfaceIp: [] };
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    if (!f.path.endsWith('.network')) continue;
    const doc = parseIni(f.data.toString('utf8'), { comments: '#;', continuation: true });
    const match = sectionsNamed(doc, 'Match');
    const network = sectionsNamed(doc, 'Network');
    const all = (sections: IniSection[], key: string) => sections.flatMap((s) => allValues(s, key));
    const names = words(all(match, 'Name'));
    const macs = words(all(match, 'MACAddress')).map((m) => m.toLowerCase());
    const type = match.map((s) => lastValue(s, 'Type')).find(Boolean);
    if (names.some((n) => n === 'lo')) continue;
    if (names.length === 0 && macs.length === 0 && !type) {
      out.notes.push(`${f.path}: not carried: it matches every interface`);
      continue;
    }
    const dhcp = (network.map((s) => lastValue(s, 'DHCP')).find(Boolean) ?? 'no').toLowerCase();
    const ipv4: IpSettings = autoIp();
    const ipv6: IpSettings = autoIp();
    const addresses = [...all(network, 'Address'), ...all(sectionsNamed(doc, 'Address'), 'Address')];
    for (const a of addresses) {
      if (!isCidr(a)) continue;
      (a.includes(':') ? ipv6 : ipv4).addresses.push(a);
    }
    const gateways = [
      ...all(network, 'Gateway'),
      ...all(
        sectionsNamed(doc, 'Route').filter((r) => !lastValue(r, 'Destination')),
        'Gateway',
      ),
    ];
    for (const g of gateways) {
      if (!isIp(g)) continue;
      const ip = g.includes(':') ? ipv6 : ipv4;
      ip.gateway ??= g;
    }
    for (const r of sectionsNamed(doc, 'Route')) {
      const to = lastValue(r, 'Destination');
      const via = lastValue(r, 'Gateway');
      const metric = lastValue(r, 'Metric');
      if (!to || !isCidr(to)) continue;
      (to.includes(':') ? ipv6 : ipv4).routes.push({
        to,
        ...(via && isIp(via) ? { via } : {}),
        ...(metric && /^\d+$/.test(metric) ? { metric: Number(metric) } : {}),
      });
    }
    const v4dhcp = ['yes', 'true', 'ipv4', 'both'].includes(dhcp);
    ipv4.method = ipv4.addresses.length ? 'manual' : v4dhcp ? 'auto' : 'disabled';
    if (ipv6.addresses.length) ipv6.method = 'manual';
    const dns = words(all(network, 'DNS')).filter(isIp);
    ipv4.dns = dns.filter((d) => !d.includes(':'));
    ipv6.dns = dns.filter((d) => d.includes(':'));
    ipv4.dnsSearch = words(all(network, 'Domains')).map((d) => d.replace(/^~/, ''));
    if (ipv4.method === 'auto' && ipv4.dns.length) ipv4.ignoreAutoDns = true;
    if (ipv4.method === 'disabled' && ipv6.method !== 'manual') {
      out.notes.push(`${f.path}: not carried: neither DHCP nor an address for IPv4`);
      continue;
    }
    const exact = names.length === 1 && !/[*?[]/.test(names[0]!) ? names[0] : undefined;
    const source = `systemd-networkd ${f.path}`;
    const wireless =
      type === 'wlan' || (exact !== undefined && looksWireless(exact)) || names.some(looksWireless);
    if (wireless) {
      out.interfaceIp!.push({ interfaceName: exact ?? names[0] ?? 'wlan0', ipv4, ipv6, source });
      continue;
    }
    out.connections.push({
      id: `${exact ?? names.join(' ') ?? macs[0]} (${ipv4.method === 'manual' ? 'static' : 'DHCP'})`,
      type: 'ethernet',
      source,
      ...(exact ? { interfaceName: exact } : {}),
      ...(macs.length === 1 ? { macAddress: macs[0] } : {}),
      autoconnect: true,
      ipv4,
      ipv6,
      warnings:
        names.length && !exact ? [`${f.path}: matches ${names.join(' ')}: not bound to one interface`] : [],
    });
  }
  return out;
}
