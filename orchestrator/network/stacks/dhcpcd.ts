// dhcpcd.conf (Raspberry Pi OS up to bullseye): DHCP everywhere unless an `interface NAME`
// block gives `static ip_address=`, `static routers=`, `static domain_name_servers=`. Wi-Fi
// networks come from wpa_supplicant.conf; a static block for wlan0 addresses all of them.
import {
  autoIp,
  type InterfaceIp,
  type IpSettings,
  isCidr,
  isIp,
  looksWireless,
  type NetConnection,
  type ParsedStack,
  type SourceFile,
} from '../model.ts';

export function parseDhcpcd(files: SourceFile[]): ParsedStack {
  const out: ParsedStack = { connections: [], notes: [], interfaceIp: [] };
  for (const f of files) {
    const blocks = new Map<string, { statics: Map<string, string>; line: number; fallback?: string }>();
    let current: string | null = null;
    let inProfile = false;
    f.data
      .toString('utf8')
      .split(/\r?\n/)
      .forEach((raw, i) => {
        const t = raw.replace(/#.*$/, '').trim();
        if (!t) return;
        const [head, ...rest] = t.split(/\s+/);
        if (head === 'interface') {
          current = rest[0] ?? null;
          inProfile = false;
          if (current && !blocks.has(current)) blocks.set(current, { statics: new Map(), line: i + 1 });
          return;
        }
        if (head === 'profile' || head === 'ssid') {
          current = null;
          inProfile = true;
          return;
        }
        if (!current || inProfile) return;
        const block = blocks.get(current)!;
        if (head === 'static') {
          const kv = rest.join(' ');
          const eq = kv.indexOf('=');
          if (eq > 0) block.statics.set(kv.slice(0, eq).trim(), kv.slice(eq + 1).trim());
        } else if (head === 'fallback') block.fallback = rest[0];
      });
    for (const [iface, block] of blocks) {
      if (block.fallback)
        out.notes.push(`${f.path}: ${iface}: the fallback profile ${block.fallback} is not carried`);
      if (block.statics.size === 0) continue;
      const ipv4: IpSettings = autoIp();
      const ipv6: IpSettings = autoIp();
      const warnings: string[] = [];
      const v4 = block.statics.get('ip_address');
      if (v4) {
        const cidr = v4.includes('/') ? v4 : `${v4}/24`;
        if (isCidr(cidr)) {
          ipv4.method = 'manual';
          ipv4.addresses.push(cidr);
        } else warnings.push(`${iface}: ip_address ${v4} does not parse`);
      }
      const v6 = block.statics.get('ip6_address');
      if (v6 && isCidr(v6)) {
        ipv6.method = 'manual';
        ipv6.addresses.push(v6);
      }
      const routers = (block.statics.get('routers') ?? '').split(/\s+/).filter(isIp);
      if (routers[0]) ipv4.gateway = routers[0];
      const dns = (block.statics.get('domain_name_servers') ?? '').split(/\s+/).filter(isIp);
      ipv4.dns = dns.filter((d) => !d.includes(':'));
      ipv6.dns = dns.filter((d) => d.includes(':'));
      ipv4.dnsSearch = (block.statics.get('domain_search') ?? '').split(/\s+/).filter(Boolean);
      if (ipv4.method === 'auto' && ipv4.dns.length) ipv4.ignoreAutoDns = true;
      const source = `dhcpcd ${f.path}`;
      if (looksWireless(iface)) {
        out.interfaceIp!.push({ interfaceName: iface, ipv4, ipv6, source });
        continue;
      }
      const c: NetConnection = {
        id: `${iface} (${ipv4.method === 'manual' ? 'static' : 'DHCP'})`,
        type: 'ethernet',
        source,
        interfaceName: iface,
        autoconnect: true,
        ipv4,
        ipv6,
        warnings,
      };
      out.connections.push(c);
    }
  }
  return out;
}

export type { InterfaceIp };
