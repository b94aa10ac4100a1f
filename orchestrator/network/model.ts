// What a network connection is, whatever stack it was read from: the shape every parser in
// stacks/ produces and the keyfile writer consumes. Secrets (psk, WEP keys, 802.1x
// passwords) live only in these objects in memory and in the keyfiles; never in a note.

export type WifiSecurity =
  | { kind: 'open' }
  /** WPA/WPA2 personal: an 8-63 character passphrase or 64 hex digits */
  | { kind: 'wpa-psk'; psk: string }
  /** WPA3 personal */
  | { kind: 'sae'; psk: string }
  /** keys as written (5/13 characters or 10/26 hex digits); txKeyIndex 0-3 */
  | { kind: 'wep'; keys: string[]; txKeyIndex: number }
  | { kind: 'wpa-eap'; eap: EapSettings };

export interface EapSettings {
  /** NetworkManager's names: peap, ttls, pwd, leap, md5, fast */
  methods: string[];
  identity?: string;
  anonymousIdentity?: string;
  password?: string;
  /** mschapv2, pap, chap, gtc, md5, mschap */
  phase2?: string;
}

export interface IpSettings {
  /** ipv4: auto | manual | disabled | link-local; ipv6: auto | dhcp | manual | ignore | disabled */
  method: string;
  /** CIDR, e.g. 192.0.2.10/24 */
  addresses: string[];
  gateway?: string;
  dns: string[];
  dnsSearch: string[];
  routes: { to: string; via?: string; metric?: number }[];
  /** with method auto: keep only the DNS servers given here */
  ignoreAutoDns?: boolean;
}

export interface NetConnection {
  /** a human name, e.g. the SSID or "eth0 (static)"; becomes connection.id */
  id: string;
  type: 'wifi' | 'ethernet';
  /** stack and file it came from, e.g. "wpa_supplicant /etc/wpa_supplicant/wpa_supplicant.conf" */
  source: string;
  /** the interface name on the old OS (informational: names may differ on balenaOS) */
  interfaceName?: string;
  /** bind to this hardware address (lowercase aa:bb:..) */
  macAddress?: string;
  autoconnect: boolean;
  /** higher is preferred (NetworkManager's autoconnect-priority) */
  priority?: number;
  wifi?: { ssid: Buffer; hidden: boolean; security: WifiSecurity };
  ipv4: IpSettings;
  ipv6: IpSettings;
  /** what could not be carried over, for the operator (never a secret) */
  warnings: string[];
}

/** A config file read from the host, in memory on the laptop only. */
export interface SourceFile {
  path: string;
  data: Buffer;
}

/**
 * Addressing for a Wi-Fi interface whose networks are defined elsewhere (dhcpcd.conf or
 * /etc/network/interfaces give wlan0 a static address, wpa_supplicant.conf the networks).
 */
export interface InterfaceIp {
  interfaceName: string;
  ipv4: IpSettings;
  ipv6: IpSettings;
  source: string;
}

/** What one stack's parser found. */
export interface ParsedStack {
  connections: NetConnection[];
  /** files or entries that were left out, and why (never a secret) */
  notes: string[];
  /** addressing for Wi-Fi interfaces, applied to the Wi-Fi networks carried from other files */
  interfaceIp?: InterfaceIp[];
}

/** Whether NAME is a Wi-Fi interface by the names kernels and udev give them. */
export function looksWireless(name: string): boolean {
  return /^(wlan|wlp|wlx|wl|ath|ra)\w*/.test(name);
}

export function autoIp(): IpSettings {
  return { method: 'auto', addresses: [], dns: [], dnsSearch: [], routes: [] };
}

export function ssidText(ssid: Buffer): string {
  const s = ssid.toString('utf8');
  return Buffer.from(s, 'utf8').equals(ssid) && /^[\x20-\x7e\u00a0-\uffff]*$/.test(s)
    ? s
    : `0x${ssid.toString('hex')}`;
}

/** Netmask (255.255.255.0) to prefix length (24); undefined when not a contiguous mask. */
export function netmaskToPrefix(mask: string): number | undefined {
  const parts = mask.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  const bits = parts.map((p) => p.toString(2).padStart(8, '0')).join('');
  if (!/^1*0*$/.test(bits)) return undefined;
  const zero = bits.indexOf('0');
  return zero === -1 ? 32 : zero;
}

export const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
export const IPV6 = /^[0-9a-fA-F:]+(%[A-Za-z0-9_.-]+)?$/;

export function isIp(s: string): boolean {
  return IPV4.test(s) || (s.includes(':') && IPV6.test(s));
}

/** "192.0.2.10/24" or "2001:db8::1/64", checked. */
export function isCidr(s: string): boolean {
  const [ip, prefix, extra] = s.split('/');
  if (extra !== undefined || !ip || prefix === undefined || !/^\d{1,3}$/.test(prefix)) return false;
  return IPV4.test(ip) ? Number(prefix) <= 32 : IPV6.test(ip) && ip.includes(':') && Number(prefix) <= 128;
}
