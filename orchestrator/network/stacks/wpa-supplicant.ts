// wpa_supplicant.conf (Raspberry Pi OS before bookworm, ifupdown wpa-conf, networkd setups):
// `network={ ... }` blocks with ssid, psk, key_mgmt, wep_key0-3, eap, identity, password,
// scan_ssid, priority, disabled. Strings are "quoted"; an unquoted ssid or psk is hex.
import {
  autoIp,
  type NetConnection,
  type ParsedStack,
  type SourceFile,
  ssidText,
  type WifiSecurity,
} from '../model.ts';

/** One network={} block as key → raw value (quotes kept, so hex and text stay apart). */
export function wpaBlocks(text: string): { fields: Map<string, string>; line: number }[] {
  const blocks: { fields: Map<string, string>; line: number }[] = [];
  let current: Map<string, string> | null = null;
  let start = 0;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (/^network\s*=\s*\{$/.test(line)) {
      current = new Map();
      start = i + 1;
      return;
    }
    if (line === '}') {
      if (current) blocks.push({ fields: current, line: start });
      current = null;
      return;
    }
    if (!current) return;
    const eq = line.indexOf('=');
    if (eq > 0) (current as Map<string, string>).set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  });
  return blocks;
}

const unquote = (v: string) =>
  v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : undefined;

/** A wpa_supplicant string value: "text", or hex bytes (P"..." printf-escaped is rare; taken as text). */
export function wpaBytes(v: string | undefined): Buffer | undefined {
  if (v === undefined) return undefined;
  const q = unquote(v);
  if (q !== undefined) return Buffer.from(q, 'utf8');
  if (/^P".*"$/.test(v)) return Buffer.from(v.slice(2, -1), 'utf8');
  return /^([0-9a-fA-F]{2})+$/.test(v) ? Buffer.from(v, 'hex') : undefined;
}

const EAP_METHODS: Record<string, string> = {
  PEAP: 'peap',
  TTLS: 'ttls',
  PWD: 'pwd',
  LEAP: 'leap',
  MD5: 'md5',
  FAST: 'fast',
  TLS: 'tls',
};

/** Converts one wpa_supplicant network block; returns a reason instead when it cannot. */
export function wpaNetwork(fields: Map<string, string>, source: string): NetConnection | string {
  const ssid = wpaBytes(fields.get('ssid'));
  if (!ssid || ssid.length === 0 || ssid.length > 32) return 'a network block without a valid ssid';
  const name = ssidText(ssid);
  if (fields.get('mode') && fields.get('mode') !== '0')
    return `${name}: an access-point or ad-hoc network (mode=${fields.get('mode')})`;
  const mgmt = (fields.get('key_mgmt') ?? 'WPA-PSK').split(/\s+/);
  const warnings: string[] = [];
  let security: WifiSecurity;
  const psk = fields.get('psk');
  const saePassword = fields.get('sae_password');
  if (mgmt.includes('WPA-EAP') || mgmt.includes('IEEE8021X')) {
    const methods = (fields.get('eap') ?? 'PEAP')
      .split(/\s+/)
      .map((m) => EAP_METHODS[m.toUpperCase()] ?? m.toLowerCase());
    if (methods.includes('tls'))
      return `${name}: 802.1x with EAP-TLS needs client certificates, which are not carried`;
    if (fields.has('ca_cert'))
      warnings.push(
        `${name}: the CA certificate ${unquote(fields.get('ca_cert')!) ?? ''} is not carried; the server is not verified`,
      );
    const phase2 = unquote(fields.get('phase2') ?? '')
      ?.replace(/^auth(eap)?=/i, '')
      .toLowerCase();
    const password = fields.get('password');
    if (password && !unquote(password))
      return `${name}: its 802.1x password is stored as a hash, which NetworkManager cannot use`;
    security = {
      kind: 'wpa-eap',
      eap: {
        methods,
        ...(fields.has('identity') ? { identity: unquote(fields.get('identity')!) ?? '' } : {}),
        ...(fields.has('anonymous_identity')
          ? { anonymousIdentity: unquote(fields.get('anonymous_identity')!) ?? '' }
          : {}),
        ...(password ? { password: unquote(password)! } : {}),
        ...(phase2 ? { phase2 } : {}),
      },
    };
  } else if (mgmt.includes('SAE') && !mgmt.includes('WPA-PSK')) {
    const pass = unquote(saePassword ?? psk ?? '');
    if (!pass) return `${name}: WPA3 (SAE) without a password in the file`;
    security = { kind: 'sae', psk: pass };
  } else if (mgmt.includes('WPA-PSK') || mgmt.includes('WPA-PSK-SHA256') || mgmt.includes('SAE')) {
    if (!psk) return `${name}: WPA-PSK without a psk in the file`;
    const text = unquote(psk);
    if (text !== undefined) security = { kind: 'wpa-psk', psk: text };
    else if (/^[0-9a-fA-F]{64}$/.test(psk)) security = { kind: 'wpa-psk', psk: psk.toLowerCase() };
    else return `${name}: its psk is neither a quoted passphrase nor 64 hex digits`;
  } else if (mgmt.includes('NONE')) {
    const keys = [0, 1, 2, 3].map((i) => {
      const v = fields.get(`wep_key${i}`);
      if (v === undefined) return '';
      return unquote(v) ?? v;
    });
    security = keys.some(Boolean)
      ? { kind: 'wep', keys, txKeyIndex: Number(fields.get('wep_tx_keyidx') ?? 0) || 0 }
      : { kind: 'open' };
  } else {
    return `${name}: key_mgmt ${mgmt.join(' ')} is not supported`;
  }
  const priority = Number(fields.get('priority') ?? 0);
  return {
    id: name,
    type: 'wifi',
    source,
    autoconnect: fields.get('disabled') !== '1',
    ...(Number.isInteger(priority) && priority !== 0 ? { priority } : {}),
    wifi: { ssid, hidden: fields.get('scan_ssid') === '1', security },
    ipv4: autoIp(),
    ipv6: autoIp(),
    warnings,
  };
}

export function parseWpaSupplicant(files: SourceFile[]): ParsedStack {
  const out: ParsedStack = { connections: [], notes: [] };
  for (const f of files) {
    const source = `wpa_supplicant ${f.path}`;
    for (const block of wpaBlocks(f.data.toString('utf8'))) {
      const c = wpaNetwork(block.fields, source);
      if (typeof c === 'string')
        out.notes.push(`${f.path} (network at line ${block.line}): not carried: ${c}`);
      else out.connections.push(c);
    }
  }
  return out;
}
